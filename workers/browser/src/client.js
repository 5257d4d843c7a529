// The gateway's HTTP API as calls, with bounded retries on faults.
import { GridError, ProtocolError, RateLimited, ServerUnavailable } from './errors.js';

export const API = '/api/v1';
const RETRY_STATUSES = new Set([500, 502, 503, 504]);

/** Exponential backoff with full jitter, bounded in attempts and delay (seconds). */
export class RetryPolicy {
  constructor({ attempts = 5, baseDelay = 0.5, maxDelay = 30 } = {}) {
    this.attempts = attempts;
    this.baseDelay = baseDelay;
    this.maxDelay = maxDelay;
  }

  delay(attempt) {
    const ceiling = Math.min(this.maxDelay, this.baseDelay * 2 ** (attempt - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }
}

/** Wait seconds, or less when the signal aborts. */
export function sleep(seconds, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, seconds * 1000);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function errorOf(response) {
  let code = '';
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const data = await response.json();
    code = String(data.error ?? '');
    message = String(data.message ?? message);
  } catch {
    // not JSON: keep the status text
  }
  if (response.status === 429) {
    const retryAfter = Number(response.headers.get('Retry-After'));
    return new RateLimited(message, {
      code,
      status: 429,
      retryAfter: Number.isFinite(retryAfter) ? retryAfter : 1,
    });
  }
  return new GridError(message, { code, status: response.status });
}

/** Calls one grid's HTTP API; 4xx answers throw GridError with the grid's code. */
export class GridClient {
  constructor(url, { retry = new RetryPolicy(), timeout = 30, signal = null } = {}) {
    this.url = url.replace(/\/+$/, '');
    this.retry = retry;
    this.timeout = timeout;
    this.signal = signal;
    this.sessionToken = null;
  }

  async request(method, path, { token, json, body, params, headers = {} } = {}) {
    const query = params ? `?${new URLSearchParams(params)}` : '';
    const url = `${this.url}${path}${query}`;
    const all = { ...headers };
    const bearer = token === undefined ? this.sessionToken : token;
    if (bearer) all.Authorization = `Bearer ${bearer}`;
    let payload = body;
    if (json !== undefined) {
      all['Content-Type'] = 'application/json';
      payload = JSON.stringify(json);
    }
    for (let attempt = 1; ; attempt += 1) {
      let response = null;
      let fault;
      try {
        response = await fetch(url, {
          method,
          headers: all,
          body: payload,
          signal: AbortSignal.timeout(this.timeout * 1000),
        });
      } catch (error) {
        fault = `no answer from ${this.url} (${error.name})`;
      }
      if (response && RETRY_STATUSES.has(response.status)) {
        fault = `HTTP ${response.status}`;
        await response.body?.cancel();
      } else if (response && response.status >= 400) {
        throw await errorOf(response);
      } else if (response) {
        return response;
      }
      if (attempt >= this.retry.attempts) {
        throw new ServerUnavailable(
          `${method} ${path} failed ${attempt} times, last with ${fault}; check that ` +
            'the grid URL is right and the grid is up',
          { code: 'unavailable' },
        );
      }
      if (!(await sleep(this.retry.delay(attempt), this.signal))) {
        throw new ServerUnavailable(`${method} ${path} interrupted by stop`, {
          code: 'stopped',
        });
      }
    }
  }

  async json(method, path, options) {
    const response = await this.request(method, path, options);
    let data;
    try {
      data = await response.json();
    } catch {
      throw new ProtocolError(`expected JSON from ${path}`);
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new ProtocolError(`expected a JSON object from ${path}`);
    }
    return data;
  }

  async bytes(path, params) {
    const response = await this.request('GET', path, { params });
    return new Uint8Array(await response.arrayBuffer());
  }

  /** Open a session for a job; keeps the session token for later calls. */
  async authenticate(job, version, authToken) {
    const body = { job };
    if (version) body.version = version;
    if (authToken) body.auth_token = authToken;
    const answer = await this.json('POST', `${API}/auth`, { json: body, token: null });
    if (typeof answer.session_token !== 'string' || !answer.session_token) {
      throw new ProtocolError("the grid's auth answer has no session_token");
    }
    this.sessionToken = answer.session_token;
    return answer;
  }

  /** Ask for a seat in the current cycle: accepted, rejected or finished. */
  cycleRequest(speeds) {
    return this.json('POST', `${API}/cycle-request`, { json: speeds });
  }

  downloadModel(requestKey) {
    return this.bytes(`${API}/model`, { request_key: requestKey });
  }

  downloadPlan(name, requestKey, format = 'ops') {
    const path = `${API}/plans/${encodeURIComponent(name)}`;
    return this.bytes(path, { request_key: requestKey, format });
  }

  downloadProtocol(name, requestKey) {
    const path = `${API}/protocols/${encodeURIComponent(name)}`;
    return this.bytes(path, { request_key: requestKey });
  }

  /** Upload a framed Report followed by the framed diff. */
  report(body) {
    return this.json('POST', `${API}/report`, {
      body,
      headers: { 'Content-Type': 'application/x-protobuf' },
    });
  }
}
