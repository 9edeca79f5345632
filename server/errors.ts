/**
 * The web app's typed errors. Each carries the HTTP status it maps to; the one error handler in
 * server/app.ts turns any of them (and the library's own errors) into a response.
 */

/** An error with an HTTP status and a message safe to show the client. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    /** Extra response headers, e.g. Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** 400: a request that is malformed or an upload that is empty, corrupt or truncated. */
export class BadRequestError extends HttpError {
  override name = 'BadRequestError';
  constructor(message: string) {
    super(400, message);
  }
}

/** 413: an upload over the byte limit, or an image over the decoded-pixel limit. */
export class TooLargeError extends HttpError {
  override name = 'TooLargeError';
  constructor(message: string) {
    super(413, message);
  }
}

/** 415: bytes that are not one of the raster formats we decode (SVG, PDF, text, …). */
export class UnsupportedTypeError extends HttpError {
  override name = 'UnsupportedTypeError';
  constructor(message: string) {
    super(415, message);
  }
}

/** 503 with Retry-After: the caption queue is full; the client should come back later. */
export class QueueFullError extends HttpError {
  override name = 'QueueFullError';
  constructor(retryAfterSeconds: number, why = 'caption queue full') {
    super(503, `the server is busy (${why}); retry in ${retryAfterSeconds} s`, {
      'Retry-After': String(retryAfterSeconds),
    });
  }
}

/** 503 with Retry-After: the server is shutting down or has no model worker ready. */
export class UnavailableError extends HttpError {
  override name = 'UnavailableError';
  constructor(message: string, retryAfterSeconds = 5) {
    super(503, message, { 'Retry-After': String(retryAfterSeconds) });
  }
}

/**
 * 421 Misdirected Request: the Host header names a server this is not (RFC 9110 §15.5.20). A
 * page on another site whose name was rebound to this machine's address (DNS rebinding) gets it.
 */
export class MisdirectedError extends HttpError {
  override name = 'MisdirectedError';
  constructor(message: string) {
    super(421, message);
  }
}

/** 403: a state-changing request sent by a page of another origin. */
export class ForeignOriginError extends HttpError {
  override name = 'ForeignOriginError';
  constructor(message: string) {
    super(403, message);
  }
}

/** 504: the caption was not ready within the per-request time limit. */
export class TimeoutError extends HttpError {
  override name = 'TimeoutError';
  constructor(limitMs: number) {
    super(504, `captioning took longer than the ${limitMs} ms limit`);
  }
}

/** The client went away; nothing is sent back (counted as status 499 in /metrics). */
export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor(message = 'cancelled') {
    super(message);
  }
}

/** 500: a worker failed while captioning. */
export class WorkerError extends HttpError {
  override name = 'WorkerError';
  constructor(message: string) {
    super(500, message);
  }
}
