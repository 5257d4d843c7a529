// TensorFlow.js and protobufjs, taken from the page's globals, and backend setup.
//
// The npm packages ship browser bundles that define `tf` and `protobuf`;
// `loadDependencies` adds them to the page, or the page loads them itself
// with <script> tags before importing this package.

const SCRIPTS = [
  '@tensorflow/tfjs-core/dist/tf-core.min.js',
  '@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.min.js',
  '@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js',
  'protobufjs/dist/light/protobuf.min.js',
];
const WASM_DIR = '@tensorflow/tfjs-backend-wasm/dist/';

let modulesBase = null;

function addScript(src) {
  return new Promise((resolve, reject) => {
    const element = document.createElement('script');
    element.src = src;
    element.onload = () => resolve();
    element.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.appendChild(element);
  });
}

/** Add the TensorFlow.js and protobufjs bundles from a node_modules URL. */
export async function loadDependencies(nodeModulesUrl) {
  modulesBase = nodeModulesUrl.endsWith('/') ? nodeModulesUrl : `${nodeModulesUrl}/`;
  if (globalThis.tf && globalThis.protobuf) return;
  for (const script of SCRIPTS) await addScript(modulesBase + script);
}

/** The TensorFlow.js namespace; throws a message that says what to load. */
export function tf() {
  const namespace = globalThis.tf;
  if (!namespace) {
    throw new Error(
      'TensorFlow.js is not loaded: call loadDependencies(nodeModulesUrl) or add ' +
        'the tfjs-core and backend <script> tags before using the worker',
    );
  }
  return namespace;
}

/** The protobufjs namespace (the light build is enough). */
export function protobuf() {
  const namespace = globalThis.protobuf;
  if (!namespace) {
    throw new Error(
      'protobufjs is not loaded: call loadDependencies(nodeModulesUrl) or add ' +
        'protobufjs/dist/light/protobuf.min.js before using the worker',
    );
  }
  return namespace;
}

/**
 * Select the WebAssembly backend, or the plain CPU backend when WebAssembly
 * cannot start. Returns the backend's name.
 */
export async function initBackend({ prefer = 'wasm', wasmPath = null } = {}) {
  const lib = tf();
  const order = prefer === 'cpu' ? ['cpu'] : ['wasm', 'cpu'];
  for (const name of order) {
    if (name === 'wasm') {
      const path = wasmPath ?? (modulesBase ? modulesBase + WASM_DIR : null);
      if (!lib.wasm || !path) continue;
      lib.wasm.setWasmPaths(path);
    }
    try {
      if (await lib.setBackend(name)) {
        await lib.ready();
        return lib.getBackend();
      }
    } catch (error) {
      console.warn(`[fedgrid] backend ${name} failed: ${error.message}`);
    }
  }
  throw new Error('neither the wasm nor the cpu TensorFlow.js backend could start');
}
