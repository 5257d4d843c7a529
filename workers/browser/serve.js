// A static server for the worker package, its demo and test pages, on
// 127.0.0.1, forwarding /api/ to the grid's gateway so pages stay same-origin.
//
// Usage: node serve.js [--port 8000] [--grid http://127.0.0.1:8080]
//                      [--mount /prefix=/folder ...]
// Prints {"port": N} on its first line once it listens.
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.map': 'application/json',
  '.bin': 'application/octet-stream',
};

function options(argv) {
  const parsed = { port: 8000, grid: null, mounts: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--port') parsed.port = Number(value);
    else if (flag === '--grid') parsed.grid = new URL(value);
    else if (flag === '--mount') {
      const [prefix, folder] = value.split('=');
      parsed.mounts.push([prefix.replace(/\/+$/, ''), resolve(folder)]);
    } else throw new Error(`unknown option ${flag}`);
  }
  const root = dirname(fileURLToPath(import.meta.url));
  parsed.mounts.push(['', root]);
  return parsed;
}

function fileFor(mounts, pathname) {
  for (const [prefix, folder] of mounts) {
    if (prefix && pathname !== prefix && !pathname.startsWith(`${prefix}/`)) continue;
    const rest = decodeURIComponent(pathname.slice(prefix.length)) || '/';
    const path = normalize(join(folder, rest));
    if (path !== folder && !path.startsWith(folder + sep)) return null;
    return path;
  }
  return null;
}

async function serveFile(mounts, url, response) {
  let path = fileFor(mounts, url.pathname);
  try {
    if (path && (await fs.stat(path)).isDirectory()) path = join(path, 'index.html');
    await fs.access(path ?? '');
  } catch {
    response.writeHead(404, { 'Content-Type': 'text/plain' });
    response.end('not found\n');
    return;
  }
  response.writeHead(200, {
    'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream',
    'Cache-Control': 'no-store',
  });
  createReadStream(path).pipe(response);
}

function forward(grid, request, response) {
  const upstream = http.request(
    {
      host: grid.hostname,
      port: grid.port,
      method: request.method,
      path: request.url,
      headers: { ...request.headers, host: grid.host },
    },
    (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    },
  );
  upstream.on('error', (error) => {
    if (!response.headersSent) {
      response.writeHead(502, { 'Content-Type': 'application/json' });
    }
    response.end(JSON.stringify({ error: 'unavailable', message: error.message }));
  });
  request.pipe(upstream);
}

const config = options(process.argv.slice(2));
const server = http.createServer((request, response) => {
  const url = new URL(request.url, 'http://127.0.0.1');
  const api = url.pathname.startsWith('/api/') || url.pathname === '/healthz';
  if (api && config.grid) forward(config.grid, request, response);
  else if (request.method === 'GET' || request.method === 'HEAD') {
    serveFile(config.mounts, url, response);
  } else {
    response.writeHead(405, { 'Content-Type': 'text/plain' });
    response.end('method not allowed\n');
  }
});
server.listen(config.port, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
const shutdown = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
