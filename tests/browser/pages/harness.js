// Shared by the test pages: load the worker, pick a backend, report results.
import * as fedgrid from '/src/index.js';

export const params = new URLSearchParams(location.search);
window.fedgridTest = { state: 'running' };

export async function setUp() {
  await fedgrid.loadDependencies('/node_modules/');
  const backend = await fedgrid.initBackend({ prefer: params.get('backend') ?? 'wasm' });
  return { fedgrid, tf: window.tf, backend };
}

export async function fetchBytes(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Plain JSON of named tensors: shape, dtype and values. */
export function describe(tensors) {
  const out = {};
  for (const [name, tensor] of Object.entries(tensors)) {
    out[name] = { shape: tensor.shape, dtype: tensor.dtype, values: Array.from(tensor.dataSync()) };
  }
  return out;
}

export function finish(result) {
  window.fedgridTest = { state: 'done', result };
}

export function requestReload() {
  window.fedgridTest = { state: 'reload' };
}

export async function run(main) {
  try {
    finish(await main());
  } catch (error) {
    console.error(error.stack ?? String(error));
    window.fedgridTest = { state: 'failed', error: String(error.message ?? error) };
  }
}
