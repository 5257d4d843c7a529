// The speed test a grid may require: ping, download and upload, in kbit/s.
import { API } from './client.js';

export const DEFAULT_TEST_BYTES = 1024 * 1024;
const PINGS = 3;
const RANDOM_BLOCK = 65536; // the most crypto.getRandomValues fills at once

/** Kilobits per second for size bytes moved in seconds (the grid's unit). */
export function kbps(size, seconds) {
  return (size * 8) / 1000 / Math.max(seconds, 1e-6);
}

function randomBytes(size) {
  const bytes = new Uint8Array(size);
  for (let start = 0; start < size; start += RANDOM_BLOCK) {
    globalThis.crypto.getRandomValues(bytes.subarray(start, start + RANDOM_BLOCK));
  }
  return bytes;
}

/** Ping (best of a few, ms), download and upload speed (kbit/s) against the grid. */
export async function measure(client, size = DEFAULT_TEST_BYTES) {
  let best = Infinity;
  for (let i = 0; i < PINGS; i += 1) {
    const started = performance.now();
    await client.json('GET', `${API}/speed-test/ping`);
    best = Math.min(best, performance.now() - started);
  }

  let started = performance.now();
  const response = await client.request('GET', `${API}/speed-test/download`, {
    params: { size },
  });
  const received = (await response.arrayBuffer()).byteLength;
  const download = kbps(received, (performance.now() - started) / 1000);

  const payload = randomBytes(size);
  started = performance.now();
  await client.json('POST', `${API}/speed-test/upload`, {
    body: payload,
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  const upload = kbps(size, (performance.now() - started) / 1000);
  return { ping_ms: best, download_kbps: download, upload_kbps: upload };
}
