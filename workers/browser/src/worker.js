// The Worker: one grid URL, one identity, any number of jobs at once.
import { RetryPolicy } from './client.js';
import { WorkerJob } from './job.js';
import { DEFAULT_TEST_BYTES } from './speed.js';
import { defaultStore } from './storage.js';

/**
 * Joins jobs on one grid. `authToken` is the JWT the grid verifies when a job
 * requires authentication. Each job keeps its current cycle in `store`
 * (IndexedDB by default; `store: null` keeps nothing) so a reloaded page
 * resumes it.
 */
export class Worker {
  constructor(url, options = {}) {
    const {
      authToken = null,
      store = defaultStore(),
      retry = new RetryPolicy(),
      timeout = 30,
      speedTestBytes = DEFAULT_TEST_BYTES,
    } = options;
    this.url = url.replace(/\/+$/, '');
    this.authToken = authToken;
    this.store = store;
    this.retry = retry instanceof RetryPolicy ? retry : new RetryPolicy(retry);
    this.timeout = timeout;
    this.speedTestBytes = speedTestBytes;
    this.jobs = [];
  }

  /** A job to run; the newest version when version is omitted. */
  newJob({ model, version = null }) {
    const job = new WorkerJob(this, model, version);
    this.jobs.push(job);
    return job;
  }

  /** Stop every job and wait for them to end. */
  async stop() {
    await Promise.all(this.jobs.map((job) => job.stop()));
  }
}
