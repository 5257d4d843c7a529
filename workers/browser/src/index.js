// fedgrid's browser worker: join a grid's jobs, train with TensorFlow.js, report.
export { initBackend, loadDependencies } from './deps.js';
export {
  GridError,
  JobFinished,
  ProtocolError,
  RateLimited,
  ServerUnavailable,
  WorkerError,
} from './errors.js';
export { GridClient, RetryPolicy } from './client.js';
export { InputKind, Plan } from './interpreter.js';
export { EVENTS, WorkerJob } from './job.js';
export { TRANSLATIONS, untranslatable } from './ops.js';
export { DEFAULT_TEST_BYTES, kbps, measure } from './speed.js';
export { IndexedDbStore, MemoryStore } from './storage.js';
export { hyperparameters, train } from './training.js';
export { decodeState, encodeState } from './wire.js';
export { Worker } from './worker.js';
