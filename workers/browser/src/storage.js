// A job's current cycle kept in IndexedDB, so a reloaded page can still report.
//
// A record holds the cycle's metadata and session, the downloaded checkpoint
// and plans as the grid's own bytes, and the latest saved progress as a
// state stream. Nothing is evaluated on the way back in.

const DATABASE = 'fedgrid-worker';
const STORE = 'cycles';

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Records in IndexedDB, keyed by grid URL, job name and version. */
export class IndexedDbStore {
  constructor(database = DATABASE) {
    this.database = database;
    this._db = null;
  }

  async _open() {
    if (!this._db) {
      const request = indexedDB.open(this.database, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE);
      this._db = await promised(request);
    }
    return this._db;
  }

  async _call(mode, action) {
    const db = await this._open();
    const transaction = db.transaction(STORE, mode);
    const committed = new Promise((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
    const result = await promised(action(transaction.objectStore(STORE)));
    await committed;
    return result;
  }

  get(key) {
    return this._call('readonly', (store) => store.get(key));
  }

  put(key, record) {
    return this._call('readwrite', (store) => store.put(record, key));
  }

  delete(key) {
    return this._call('readwrite', (store) => store.delete(key));
  }
}

/** Records in memory only (pages that must not keep anything, and tests). */
export class MemoryStore {
  constructor() {
    this._records = new Map();
  }

  async get(key) {
    return this._records.get(key);
  }

  async put(key, record) {
    this._records.set(key, record);
  }

  async delete(key) {
    this._records.delete(key);
  }
}

/** IndexedDB where the page has it, else memory. */
export function defaultStore() {
  return typeof indexedDB === 'undefined' ? new MemoryStore() : new IndexedDbStore();
}
