/**
 * The one error class of facegan-native. Every failure the library reports, from a bad option
 * to a hostile checkpoint to a native failure, is a `FaceganError` with a stable `code`.
 */
export type FaceganErrorCode =
  /** The file does not exist or cannot be read. */
  | 'ERR_FILE_NOT_FOUND'
  /** The file is larger than the input limit (MAX_INPUT_FILE_BYTES, 4 GiB). */
  | 'ERR_FILE_TOO_LARGE'
  /** The file is not in any format this library reads. */
  | 'ERR_UNKNOWN_FORMAT'
  /** The file is in a known format but its contents are inconsistent or damaged. */
  | 'ERR_CORRUPT_FILE'
  /** The file ends before its own structure says it should. */
  | 'ERR_TRUNCATED_FILE'
  /** A pickle names a Python global outside the allow-list (it would execute code). */
  | 'ERR_FORBIDDEN_GLOBAL'
  /** The checkpoint holds a network this engine does not run (e.g. StyleGAN3 -t / -r). */
  | 'ERR_UNSUPPORTED_ARCH'
  /** An option or argument is missing, of the wrong type or out of range. */
  | 'ERR_INVALID_OPTION'
  /** The requested backend (e.g. CUDA) is not available in this process. */
  | 'ERR_BACKEND_UNAVAILABLE'
  /** The generator was used after dispose(), or disposed while the call ran. */
  | 'ERR_DISPOSED'
  /**
   * The engine produced NaN or infinite values (the weights hold values too large for float32
   * arithmetic, or the config or inputs are extreme): no image is returned.
   */
  | 'ERR_NON_FINITE'
  /** A download failed, was interrupted or did not verify. */
  | 'ERR_DOWNLOAD'
  /** The native engine reported a failure. */
  | 'ERR_NATIVE'
  /**
   * The call's AbortSignal fired before it ran (it was dropped from the queue), or the engine
   * call it was running in was cancelled.
   */
  | 'ERR_ABORTED';

/**
 * The `code` of the face service's JSON error bodies (`{ error: { code, message } }`, lib/server.ts):
 * a {@link FaceganErrorCode} when a library call failed, or one of the HTTP service's own codes,
 * which are never thrown as a FaceganError.
 */
export type ServiceErrorCode =
  | FaceganErrorCode
  /** 503: more than `maxQueue` requests are waiting for the engine (Retry-After: 1). */
  | 'ERR_BUSY'
  /** 503: the request waited `queueTimeoutMs` for the engine. */
  | 'ERR_QUEUE_TIMEOUT'
  /** 503: the server is closing (SIGTERM / close()). */
  | 'ERR_SHUTTING_DOWN'
  /** 404 / 405: no such route, or a method other than GET / HEAD. */
  | 'ERR_NOT_FOUND'
  | 'ERR_METHOD_NOT_ALLOWED'
  /** 400 / 408 / 431: Node's HTTP parser refused the request. */
  | 'ERR_BAD_REQUEST'
  | 'ERR_REQUEST_TIMEOUT'
  | 'ERR_HEADERS_TOO_LARGE'
  /** 500: a failure that is not a FaceganError (a bug). */
  | 'ERR_INTERNAL';

export class FaceganError extends Error {
  readonly code: FaceganErrorCode;

  constructor(code: FaceganErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FaceganError';
    this.code = code;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value.length > 60 ? `${value.slice(0, 57)}...` : value}'`;
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of length ${(value as unknown as { length?: number }).length ?? value.byteLength}`;
  return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
}

/**
 * The error for a bad option: its message names the option, what is allowed and what was given,
 * e.g. `Expected an integer in [0, 4294967295] for seed but received -1`.
 */
export function invalidOption(name: string, expected: string, received: unknown): FaceganError {
  return new FaceganError('ERR_INVALID_OPTION', `Expected ${expected} for ${name} but received ${describe(received)}`);
}

/**
 * The FaceganError for a failed engine call. The addon marks the failures it can tell apart
 * (`status` on the error, see lib/native.ts): 'non-finite' → ERR_NON_FINITE, 'cancelled' →
 * ERR_DISPOSED when the generator was disposed, else ERR_ABORTED; anything else → ERR_NATIVE.
 */
export function engineError(err: unknown, disposed: boolean): FaceganError {
  if (err instanceof FaceganError) return err;
  const message = (err as Error)?.message ?? String(err);
  const status = (err as { status?: unknown } | null)?.status;
  if (status === 'non-finite') {
    return new FaceganError('ERR_NON_FINITE', `The engine produced NaN or infinite values, so no image is returned: ${message}`, { cause: err });
  }
  if (status === 'cancelled') {
    return disposed
      ? new FaceganError('ERR_DISPOSED', 'The generator was disposed while the call ran', { cause: err })
      : new FaceganError('ERR_ABORTED', 'The call was aborted while it ran', { cause: err });
  }
  return new FaceganError('ERR_NATIVE', message, { cause: err });
}
