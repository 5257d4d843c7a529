// One job inside a worker: it asks for cycles, the app trains and reports.
import { tf } from './deps.js';
import { GridClient, sleep } from './client.js';
import { GridError, JobFinished, ProtocolError, RateLimited, WorkerError } from './errors.js';
import { Plan } from './interpreter.js';
import { measure } from './speed.js';
import { train } from './training.js';
import { decodeState, encodeState, reportBody } from './wire.js';

export const EVENTS = ['accepted', 'rejected', 'reported', 'error', 'done'];
const SESSION_MARGIN = 30; // seconds: renew a session this long before it expires

function disposeAll(tensors) {
  for (const tensor of Object.values(tensors ?? {})) tensor?.dispose?.();
}

/**
 * Runs one job's cycles until done or stopped.
 *
 * Listen with `on(kind, fn)` (accepted, rejected, reported, error, done).
 * On `accepted` the app trains (`job.train(...)`) and calls `job.report(...)`;
 * the job then asks for the next cycle. A rejection is waited out for the
 * seconds the grid suggests, then the job asks again by itself.
 */
export class WorkerJob {
  constructor(worker, name, version) {
    this.worker = worker;
    this.name = name;
    this.version = version;
    this.error = null;
    this.finished = false;
    this.assignment = null;
    this._listeners = Object.fromEntries(EVENTS.map((kind) => [kind, []]));
    this._abort = new AbortController();
    this._running = null;
    this._waiter = null;
    this._original = null;
    this._sessionExpires = 0;
    this._auth = {};
    this.client = new GridClient(worker.url, {
      retry: worker.retry,
      timeout: worker.timeout,
      signal: this._abort.signal,
    });
    this.key = `${worker.url}|${name}|${version ?? 'newest'}`;
  }

  // --- the app's side --------------------------------------------------

  on(kind, callback) {
    if (!(kind in this._listeners)) {
      throw new Error(`unknown event ${kind}; use one of ${EVENTS.join(', ')}`);
    }
    this._listeners[kind].push(callback);
    return callback;
  }

  /** Start asking for cycles; `job.finished` tells when the job has ended. */
  start() {
    if (this._running) throw new Error(`job ${this.name} was started already`);
    this._running = this._run();
    return this;
  }

  /** Stop asking for cycles and wait for the job to end. */
  async stop() {
    this._abort.abort();
    this._waiter?.resolve({ next: false });
    await this._running;
  }

  /** Resolves when the job has ended (done, error or stop). */
  join() {
    return this._running ?? Promise.resolve();
  }

  get plans() {
    return this._current().plans;
  }

  get clientConfig() {
    return this._current().clientConfig;
  }

  /**
   * Run a downloaded plan by name over the app's batches, from the saved
   * progress when the cycle was resumed, else from the checkpoint. With
   * `saveEvery: n`, progress is kept every n steps.
   */
  async train(planName, batches, options = {}) {
    const assignment = this._current();
    const plan = assignment.plans[planName];
    if (!plan) throw new Error(`the cycle has no plan ${planName}`);
    const start = assignment.progress ?? assignment.params;
    const onSave = (params) => this.saveProgress(params);
    return train(plan, start, batches, assignment.clientConfig, { onSave, ...options });
  }

  /** Keep partly trained parameters so a reloaded page can go on from them. */
  async saveProgress(params) {
    this._current();
    const store = this.worker.store;
    if (!store) return;
    const record = await store.get(this.key);
    if (!record) return;
    record.progress = encodeState(params, this._dtypes);
    await store.put(this.key, record);
  }

  /**
   * Upload trained parameters (the diff original - trained is computed) or a
   * ready `diff`. With `nextCycle` (the default) the job then asks for its
   * next cycle; otherwise it stops after this report.
   */
  async report(params, { diff = null, sampleCount = 1, metrics = {}, nextCycle = true } = {}) {
    const assignment = this._current();
    if (!Number.isInteger(sampleCount) || sampleCount < 1) {
      throw new Error(`sampleCount must be an integer >= 1, got ${sampleCount}`);
    }
    for (const [key, value] of Object.entries(metrics)) {
      if (!Number.isFinite(value)) throw new Error(`metric ${key} is not finite: ${value}`);
    }
    const delta = diff ? this._checkDiff(diff) : this._diffOf(params);
    let answer;
    try {
      const body = reportBody(
        assignment.requestKey,
        sampleCount,
        metrics,
        delta,
        this._dtypes,
      );
      answer = await this._withSession(() => this.client.report(body));
    } catch (error) {
      if (error instanceof GridError && error.status === 409) await this._finish(nextCycle);
      throw error;
    } finally {
      if (!diff) disposeAll(delta);
    }
    await this._finish(nextCycle);
    this._emit('reported', answer);
    return answer;
  }

  // --- the job's loop --------------------------------------------------

  _current() {
    if (!this.assignment) throw new Error(`job ${this.name} has no accepted cycle now`);
    return this.assignment;
  }

  _diffOf(params) {
    const lib = tf();
    const diff = {};
    for (const [name, before] of Object.entries(this._original)) {
      const after = params[name];
      if (!after) throw new Error(`the trained parameters have no ${name}`);
      if (after.shape.join() !== before.shape.join()) {
        throw new Error(`trained ${name} has shape [${after.shape}]; the checkpoint's is [${before.shape}]`);
      }
      diff[name] = lib.sub(before, lib.cast(after, before.dtype));
    }
    const extra = Object.keys(params).filter((name) => !(name in this._original));
    if (extra.length) throw new Error(`unexpected trained parameter ${extra[0]}`);
    return diff;
  }

  _checkDiff(diff) {
    const lib = tf();
    for (const [name, before] of Object.entries(this._original)) {
      const tensor = diff[name];
      if (!tensor || tensor.shape.join() !== before.shape.join()) {
        throw new Error(`diff ${name} must have the checkpoint's shape [${before.shape}]`);
      }
      if (tensor.dtype === 'float32' && !lib.tidy(() => lib.all(lib.isFinite(tensor)).dataSync()[0])) {
        throw new Error(`diff ${name} holds NaN or infinite values`);
      }
    }
    return diff;
  }

  async _finish(nextCycle) {
    await this.worker.store?.delete(this.key);
    this._waiter?.resolve({ next: nextCycle });
  }

  _emit(kind, data) {
    for (const callback of [...this._listeners[kind]]) {
      try {
        const result = callback(data);
        if (result && typeof result.catch === 'function') {
          result.catch((error) => this._callbackFailed(kind, error));
        }
      } catch (error) {
        this._callbackFailed(kind, error);
      }
    }
  }

  _callbackFailed(kind, error) {
    console.error(`[fedgrid] job=${this.name} event=${kind} callback failed:`, error);
    if (kind !== 'error') this._emit('error', error);
  }

  async _run() {
    try {
      await this._loop();
    } catch (error) {
      if (error instanceof JobFinished) {
        this.finished = true;
        this._emit('done', error.message);
      } else if (!this._abort.signal.aborted) {
        this.error = error;
        this._emit('error', error);
      }
    } finally {
      this._release();
    }
  }

  async _loop() {
    let assignment = await this._resume();
    while (!this._abort.signal.aborted) {
      if (!assignment) {
        assignment = await this._ask();
        if (!assignment) continue;
      }
      let resolve;
      const reported = new Promise((done) => {
        resolve = done;
      });
      this._waiter = { resolve };
      this.assignment = assignment;
      const remaining = assignment.deadline * 1000 - Date.now();
      const timer = setTimeout(() => resolve({ next: true, expired: true }), remaining);
      this._emit('accepted', assignment);
      const outcome = await reported;
      clearTimeout(timer);
      if (outcome.expired) await this.worker.store?.delete(this.key);
      this._release();
      assignment = null;
      if (!outcome.next) return;
    }
  }

  _release() {
    if (this.assignment) {
      disposeAll(this.assignment.params);
      disposeAll(this.assignment.progress);
      for (const plan of Object.values(this.assignment.plans)) plan.dispose();
    }
    disposeAll(this._original);
    this._original = null;
    this.assignment = null;
    this._waiter = null;
  }

  async _session() {
    if (this.client.sessionToken && Date.now() / 1000 < this._sessionExpires) return;
    this._auth = await this.client.authenticate(this.name, this.version, this.worker.authToken);
    const expiresIn = Number(this._auth.expires_in ?? 3600);
    this._sessionExpires = Date.now() / 1000 + Math.max(0, expiresIn - SESSION_MARGIN);
  }

  async _withSession(call) {
    await this._session();
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof GridError) || error.status !== 401) throw error;
      this._sessionExpires = 0;
      this.client.sessionToken = null;
      await this._session();
      return call();
    }
  }

  async _ask() {
    let answer;
    try {
      answer = await this._withSession(async () => {
        const speeds = this._auth.requires_speed_test
          ? await measure(this.client, this.worker.speedTestBytes)
          : {};
        return this.client.cycleRequest(speeds);
      });
    } catch (error) {
      if (!(error instanceof RateLimited)) throw error;
      await this._waitOut({
        reason: error.code || 'rate_limited',
        message: error.message,
        retryAfter: error.retryAfter,
      });
      return null;
    }
    if (answer.status === 'accepted') return this._accept(answer);
    if (answer.status === 'finished') {
      throw new JobFinished(String(answer.message ?? 'the job is finished'));
    }
    if (answer.status === 'rejected') {
      if (typeof answer.retry_after !== 'number') {
        throw new ProtocolError('a rejection without a numeric retry_after');
      }
      await this._waitOut({
        reason: String(answer.reason ?? ''),
        message: String(answer.message ?? ''),
        retryAfter: answer.retry_after,
      });
      return null;
    }
    throw new ProtocolError(`unknown cycle-request status ${answer.status}`);
  }

  async _waitOut(rejection) {
    this._emit('rejected', rejection);
    await sleep(Math.max(0, rejection.retryAfter), this._abort.signal);
  }

  async _accept(answer) {
    let info;
    try {
      info = {
        job: String(this._auth.job ?? this.name),
        version: String(this._auth.version ?? this.version ?? ''),
        requestKey: String(answer.request_key),
        cycleId: String(answer.cycle_id),
        cycleNumber: Number(answer.cycle_number),
        checkpoint: Number(answer.checkpoint),
        deadline: Number(answer.deadline),
        clientConfig: { ...(answer.client_config ?? {}) },
        plans: Object.keys(answer.plans ?? {}),
        protocols: (answer.protocols ?? []).map(String),
      };
    } catch (error) {
      throw new ProtocolError(`an acceptance the worker cannot read: ${error.message}`);
    }
    const key = info.requestKey;
    const checkpoint = await this.client.downloadModel(key);
    const plans = {};
    for (const name of info.plans) plans[name] = await this.client.downloadPlan(name, key);
    const protocols = {};
    for (const name of info.protocols) {
      protocols[name] = await this.client.downloadProtocol(name, key);
    }
    await this.worker.store?.put(this.key, {
      info,
      sessionToken: this.client.sessionToken,
      sessionExpires: this._sessionExpires,
      requiresSpeedTest: Boolean(this._auth.requires_speed_test),
      checkpoint,
      plans,
      protocols,
      progress: null,
    });
    return this._assignmentOf(info, checkpoint, plans, protocols, null, false);
  }

  async _assignmentOf(info, checkpointBytes, planBytes, protocols, progressBytes, resumed) {
    const { tensors, dtypes } = decodeState(checkpointBytes);
    const original = decodeState(checkpointBytes).tensors;
    const plans = {};
    try {
      for (const [name, bytes] of Object.entries(planBytes)) {
        plans[name] = await Plan.fromBytes(bytes);
      }
    } catch (error) {
      disposeAll(tensors);
      disposeAll(original);
      throw new WorkerError(error.message, { code: 'invalid_plan' });
    }
    this._original = original;
    this._dtypes = dtypes;
    return {
      ...info,
      params: tensors,
      plans,
      protocols,
      progress: progressBytes ? decodeState(progressBytes).tensors : null,
      resumed,
    };
  }

  async _resume() {
    const store = this.worker.store;
    const record = store ? await store.get(this.key) : null;
    if (!record) return null;
    if (record.info.deadline * 1000 <= Date.now()) {
      await store.delete(this.key);
      return null;
    }
    this.client.sessionToken = record.sessionToken;
    this._sessionExpires = record.sessionExpires;
    this._auth = {
      job: record.info.job,
      version: record.info.version,
      requires_speed_test: record.requiresSpeedTest,
    };
    try {
      return await this._assignmentOf(
        record.info,
        record.checkpoint,
        record.plans,
        record.protocols,
        record.progress,
        true,
      );
    } catch (error) {
      console.warn(`[fedgrid] job=${this.name} saved cycle unreadable: ${error.message}`);
      await store.delete(this.key);
      return null;
    }
  }
}
