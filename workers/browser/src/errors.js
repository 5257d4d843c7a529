// What can go wrong between a browser worker and the grid.

/** The base of every error the worker raises. */
export class WorkerError extends Error {
  constructor(message, { code = '', status = 0 } = {}) {
    super(message);
    this.name = this.constructor.name;
    this.code = code;
    this.status = status;
  }
}

/** The grid answered with an error status (4xx); `code` is the grid's error code. */
export class GridError extends WorkerError {}

/** Too many requests: ask again after `retryAfter` seconds. */
export class RateLimited extends GridError {
  constructor(message, { retryAfter = 1, ...rest } = {}) {
    super(message, rest);
    this.retryAfter = retryAfter;
  }
}

/** The grid could not be reached, or kept failing, after bounded retries. */
export class ServerUnavailable extends WorkerError {}

/** The grid answered something this worker cannot read. */
export class ProtocolError extends WorkerError {}

/** The job has run all its cycles. */
export class JobFinished extends WorkerError {}
