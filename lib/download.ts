/**
 * A resumable, verifying file downloader (Node's built-in fetch, no dependencies).
 *
 * - The body streams into `dest + '.part'`; `dest` appears only by an atomic rename once the whole
 *   file is there and verified, so `dest` is never a half file.
 * - A `.part` left by an interrupted call is resumed with `Range: bytes=<size>-`. A server that
 *   ignores the range (200 instead of 206, or a 206 that starts elsewhere) restarts the file from
 *   zero; a 416 means the `.part` already holds the whole file (it is then verified) or is stale
 *   (it is then discarded and the download restarts).
 * - A `dest` that already exists with the expected size (and sha256, when one is given) is kept and
 *   nothing is fetched.
 * - Size (from `expectedBytes`, else from the server's Content-Length / Content-Range) and sha256
 *   are checked; a mismatch deletes the `.part` and throws ERR_DOWNLOAD naming both values.
 * - On abort the `.part` is KEPT so that the next call resumes where this one stopped
 *   (node-llama-cpp deletes its temp file on cancel; pass `deletePartialOnAbort: true` for that).
 * - Every failure is a `FaceganError` with code ERR_DOWNLOAD; an abort's `cause` is the signal's
 *   reason.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

import { FaceganError, invalidOption } from './errors.js';

export interface DownloadProgress {
  /** Bytes of the file on disk so far (resumed bytes included). */
  downloadedSize: number;
  /** The whole file's size (from `expectedBytes` or the server), or 0 while it is unknown. */
  totalSize: number;
}

/** The part of a fetch `Response` that the downloader reads. */
export interface FetchResponseLike {
  readonly status: number;
  readonly statusText: string;
  readonly headers: { get(name: string): string | null };
  readonly body: {
    getReader(): {
      read(): Promise<{ done: boolean; value?: Uint8Array }>;
      cancel(reason?: unknown): Promise<void>;
    };
  } | null;
}

/** `globalThis.fetch`, or anything with the same shape (for tests, proxies, mirrors). */
export type FetchLike = (
  url: string,
  init: { headers: Record<string, string>; signal?: AbortSignal; redirect: 'follow' },
) => Promise<FetchResponseLike>;

export interface DownloadOptions {
  /** The file's exact size in bytes; checked before anything is written where the server says its size. */
  expectedBytes?: number;
  /** The file's SHA-256 as 64 hex digits. */
  sha256?: string;
  /** Called as bytes arrive (and once at the start, with resumed bytes, and once on a skip). */
  onProgress?: (progress: DownloadProgress) => void;
  /** Cancels the download; the call then rejects with ERR_DOWNLOAD whose `cause` is `signal.reason`. */
  signal?: AbortSignal;
  /** Delete the `.part` on abort instead of keeping it for a later resume. Default false. */
  deletePartialOnAbort?: boolean;
  /** How many times to resume automatically after a network failure, truncated body or HTTP 5xx/408/429. Default 0. */
  retries?: number;
  /** Wait before retry n (1-based) is n × this many milliseconds. Default 1000. */
  retryDelayMs?: number;
  /** Extra request headers (e.g. authorisation for a private mirror). */
  headers?: Record<string, string>;
  /** The fetch to use; `globalThis.fetch` by default. */
  fetchImpl?: FetchLike;
  /**
   * A stalled transfer fails after this many milliseconds without progress — no response
   * headers, or no body bytes — with ERR_DOWNLOAD (its `cause.code` is 'ETIMEDOUT'; the `.part`
   * is kept, and `retries` apply). Default 60000; 0 turns the watchdog off.
   */
  stallTimeoutMs?: number;
}

export interface DownloadResult {
  /** `dest`, now complete. */
  path: string;
  /** Its size. */
  bytes: number;
  /** Its SHA-256 (hex); undefined only when an existing file was kept without a checksum to check. */
  sha256: string | undefined;
  /** True when `dest` was already there and nothing was fetched. */
  skipped: boolean;
  /** True when bytes from an earlier `.part` were reused. */
  resumed: boolean;
}

const inFlight = new Set<string>();
/** Errors after which the next attempt can resume. */
const retriable = new WeakSet<object>();

function downloadError(message: string, cause?: unknown, canRetry = false): FaceganError {
  const error = new FaceganError('ERR_DOWNLOAD', message, cause === undefined ? undefined : { cause });
  if (canRetry) retriable.add(error);
  return error;
}

function validate(url: unknown, dest: unknown, options: DownloadOptions): void {
  if (typeof url !== 'string') throw invalidOption('url', 'an http(s) URL string', url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidOption('url', 'an http(s) URL string', url);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalidOption('url', 'an http(s) URL string', url);
  if (typeof dest !== 'string' || dest === '') throw invalidOption('dest', 'a non-empty file path', dest);
  const { expectedBytes, sha256, onProgress, signal, retries, retryDelayMs, fetchImpl, stallTimeoutMs } = options;
  if (expectedBytes !== undefined && !(Number.isSafeInteger(expectedBytes) && expectedBytes >= 0)) {
    throw invalidOption('expectedBytes', 'a non-negative integer', expectedBytes);
  }
  if (sha256 !== undefined && !(typeof sha256 === 'string' && /^[0-9a-fA-F]{64}$/.test(sha256))) {
    throw invalidOption('sha256', 'a SHA-256 as 64 hex digits', sha256);
  }
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidOption('onProgress', 'a function', onProgress);
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidOption('signal', 'an AbortSignal', signal);
  if (retries !== undefined && !(Number.isSafeInteger(retries) && retries >= 0)) throw invalidOption('retries', 'a non-negative integer', retries);
  if (retryDelayMs !== undefined && !(Number.isFinite(retryDelayMs) && retryDelayMs >= 0)) {
    throw invalidOption('retryDelayMs', 'a non-negative number', retryDelayMs);
  }
  if (fetchImpl !== undefined && typeof fetchImpl !== 'function') throw invalidOption('fetchImpl', 'a function', fetchImpl);
  if (stallTimeoutMs !== undefined && !(typeof stallTimeoutMs === 'number' && Number.isFinite(stallTimeoutMs) && stallTimeoutMs >= 0)) {
    throw invalidOption('stallTimeoutMs', 'a non-negative number of milliseconds (0: no limit)', stallTimeoutMs);
  }
}

/**
 * Fails a transfer that makes no progress for `ms`: `tripped` rejects with a retriable
 * ERR_DOWNLOAD, and `signal` aborts (passed to fetch, so the connection is closed). Each sign of
 * progress calls `kick()`. Awaits are raced against `tripped`, so even a fetch implementation that
 * ignores its signal cannot hang the download.
 */
class Watchdog {
  readonly signal: AbortSignal;
  readonly tripped: Promise<never>;
  #controller = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #fail!: (error: FaceganError) => void;
  #ms: number;
  #what: () => string;

  constructor(ms: number, what: () => string, outer: AbortSignal | undefined) {
    this.#ms = ms;
    this.#what = what;
    this.signal = this.#controller.signal;
    this.tripped = new Promise<never>((_, reject) => {
      this.#fail = reject;
    });
    this.tripped.catch(() => undefined);
    if (outer) {
      if (outer.aborted) this.#controller.abort(outer.reason);
      else outer.addEventListener('abort', () => this.#controller.abort(outer.reason), { once: true });
    }
    this.kick();
  }

  kick(): void {
    if (this.#ms <= 0 || this.#controller.signal.aborted) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const timeout = Object.assign(new Error(`no progress for ${this.#ms} ms`), { code: 'ETIMEDOUT' });
      const error = downloadError(`${this.#what()} stalled: nothing arrived for ${this.#ms / 1000} s (stallTimeoutMs).`, timeout, true);
      this.#controller.abort(error);
      this.#fail(error);
    }, this.#ms);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  race<T>(promise: Promise<T>): Promise<T> {
    return this.#ms > 0 ? Promise.race([promise, this.tripped]) : promise;
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

async function statFile(file: string): Promise<Stats | undefined> {
  try {
    const stats = await fs.stat(file);
    return stats.isFile() ? stats : undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw downloadError(`Cannot read ${file}: ${(error as Error).message}`, error);
  }
}

async function removeQuietly(file: string): Promise<void> {
  await fs.rm(file, { force: true }).catch(() => undefined);
}

/** Feeds a file's bytes into `hash`. */
async function hashInto(hash: Hash, file: string): Promise<void> {
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
}

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await hashInto(hash, file);
  return hash.digest('hex');
}

function parseContentLength(value: string | null): number | undefined {
  return value !== null && /^\s*\d+\s*$/.test(value) ? Number(value) : undefined;
}

// `bytes START-END/TOTAL` or `bytes */TOTAL` (416); TOTAL may be `*`.
function parseContentRange(value: string | null): { start?: number; end?: number; total?: number } | undefined {
  if (value === null) return undefined;
  const range = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (range) {
    return { start: Number(range[1]), end: Number(range[2]), total: range[3] === '*' ? undefined : Number(range[3]) };
  }
  const unsatisfied = /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(value);
  if (unsatisfied) return { total: Number(unsatisfied[1]) };
  return undefined;
}

function abortError(url: string, signal: AbortSignal, detail = ''): FaceganError {
  return downloadError(`Download of ${url} was aborted${detail}`, signal.reason);
}

async function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Resolves like `promise`, or rejects as soon as `signal` aborts (for fetch implementations that ignore it). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined, onAbort: () => Error): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const listener = (): void => reject(onAbort());
    if (signal.aborted) return listener();
    signal.addEventListener('abort', listener, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', listener);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', listener);
        reject(error);
      },
    );
  });
}

interface Job {
  url: string;
  dest: string;
  part: string;
  options: DownloadOptions;
  expectedSha: string | undefined;
  fetchImpl: FetchLike;
}

/** Verifies the complete `.part` and renames it to `dest`; a mismatch deletes the `.part`. */
async function finish(job: Job, digest: string | undefined, resumed: boolean): Promise<DownloadResult> {
  const { url, dest, part, options, expectedSha } = job;
  const stats = await statFile(part);
  const size = stats?.size ?? 0;
  if (options.expectedBytes !== undefined && size !== options.expectedBytes) {
    await removeQuietly(part);
    throw downloadError(
      `Size mismatch for ${url}: expected ${options.expectedBytes} bytes, got ${size}. The partial file was deleted.`,
    );
  }
  const sha256 = digest ?? (await sha256OfFile(part));
  if (expectedSha !== undefined && sha256 !== expectedSha) {
    await removeQuietly(part);
    throw downloadError(
      `Checksum mismatch for ${url}: expected sha256 ${expectedSha}, got ${sha256}. The downloaded file was deleted.`,
    );
  }
  try {
    await fs.rename(part, dest);
  } catch (error) {
    throw downloadError(`Cannot move ${part} to ${dest}: ${(error as Error).message}`, error);
  }
  options.onProgress?.({ downloadedSize: size, totalSize: size });
  return { path: dest, bytes: size, sha256, skipped: false, resumed };
}

/** One HTTP exchange (plus at most one restart from zero when the server cannot resume). */
async function attempt(job: Job): Promise<DownloadResult> {
  const watchdog = new Watchdog(job.options.stallTimeoutMs ?? 60_000, () => `The download of ${job.url}`, job.options.signal);
  try {
    return await attemptWith(job, watchdog);
  } finally {
    watchdog.stop();
  }
}

async function attemptWith(job: Job, watchdog: Watchdog): Promise<DownloadResult> {
  const { url, part, options, fetchImpl } = job;
  const { expectedBytes, signal } = options;

  let partSize = (await statFile(part))?.size ?? 0;
  if (expectedBytes !== undefined && partSize > expectedBytes) {
    await removeQuietly(part); // longer than the file can be: stale
    partSize = 0;
  }
  if (expectedBytes !== undefined && partSize === expectedBytes && partSize > 0) {
    return finish(job, undefined, true); // a previous call got every byte but stopped before the rename
  }

  for (let restarts = 0; ; restarts++) {
    if (signal?.aborted) throw abortError(url, signal);
    // Ask for the bytes as stored (sizes and offsets refer to them). For a Range request fetch adds
    // `accept-encoding: identity` itself.
    const headers: Record<string, string> =
      partSize > 0 ? { ...options.headers, range: `bytes=${partSize}-` } : { 'accept-encoding': 'identity', ...options.headers };

    let response: FetchResponseLike;
    try {
      response = await watchdog.race(
        raceAbort(fetchImpl(url, { headers, signal: watchdog.signal, redirect: 'follow' }), signal, () => abortError(url, signal!)),
      );
    } catch (error) {
      if (signal?.aborted) throw abortError(url, signal);
      if (watchdog.signal.aborted && watchdog.signal.reason instanceof FaceganError) throw watchdog.signal.reason;
      const cause = (error as { cause?: { message?: string } }).cause;
      const detail = cause?.message ? `${(error as Error).message} (${cause.message})` : (error as Error).message;
      throw downloadError(`Network error while downloading ${url}: ${detail}`, error, true);
    }
    const discardBody = (): void => {
      response.body?.getReader().cancel().catch(() => undefined);
    };

    const encoded = (response.headers.get('content-encoding') ?? 'identity').toLowerCase() !== 'identity';
    const contentLength = encoded ? undefined : parseContentLength(response.headers.get('content-length'));
    let offset: number;
    let total: number | undefined;

    if (response.status === 206) {
      const range = parseContentRange(response.headers.get('content-range'));
      if (range?.start !== partSize) {
        // Not the range we asked for: start the file again, without a Range header.
        discardBody();
        if (restarts > 0) {
          throw downloadError(`The server for ${url} answered 206 with an unexpected Content-Range '${response.headers.get('content-range')}'`);
        }
        await removeQuietly(part);
        partSize = 0;
        continue;
      }
      offset = partSize;
      total = range.total ?? (contentLength !== undefined ? partSize + contentLength : undefined);
    } else if (response.status === 200) {
      offset = 0; // a fresh download, or a server that ignores Range: the .part is rewritten from zero
      total = contentLength;
    } else if (response.status === 416 && partSize > 0) {
      discardBody();
      const range = parseContentRange(response.headers.get('content-range'));
      if (range?.total === partSize) return finish(job, undefined, true);
      if (restarts > 0) throw downloadError(`HTTP 416 Range Not Satisfiable from ${url}`);
      await removeQuietly(part); // the .part does not belong to the file the server has now
      partSize = 0;
      continue;
    } else {
      discardBody();
      const status = `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
      const transient = response.status >= 500 || response.status === 408 || response.status === 429;
      throw downloadError(`HTTP ${status} while downloading ${url}`, undefined, transient);
    }

    if (expectedBytes !== undefined && total !== undefined && total !== expectedBytes) {
      discardBody();
      await removeQuietly(part);
      throw downloadError(
        `Size mismatch for ${url}: expected ${expectedBytes} bytes, the server reports ${total}. Nothing was kept.`,
      );
    }
    total ??= expectedBytes;
    if (!response.body) {
      if (total === offset) return finish(job, undefined, offset > 0);
      throw downloadError(`The response from ${url} has no body`, undefined, true);
    }
    watchdog.kick();
    return receive(job, response.body, offset, total, watchdog);
  }
}

/** Streams the body onto the `.part` (appending at `offset`), hashing as it goes. */
async function receive(
  job: Job,
  body: NonNullable<FetchResponseLike['body']>,
  offset: number,
  total: number | undefined,
  watchdog: Watchdog,
): Promise<DownloadResult> {
  const { url, part, options } = job;
  const { signal, onProgress } = options;

  const hash = createHash('sha256');
  if (offset > 0) await hashInto(hash, part);
  const reader = body.getReader();
  let file: fs.FileHandle;
  try {
    file = await fs.open(part, offset > 0 ? 'a' : 'w');
  } catch (error) {
    reader.cancel().catch(() => undefined);
    throw downloadError(`Cannot write ${part}: ${(error as Error).message}`, error);
  }
  const onAbort = (): void => {
    reader.cancel(signal?.reason).catch(() => undefined);
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  let downloaded = offset;
  let failure: unknown;
  let corrupt = false; // the .part holds bytes that cannot be part of the file
  try {
    onProgress?.({ downloadedSize: downloaded, totalSize: total ?? 0 });
    for (;;) {
      let chunk: { done: boolean; value?: Uint8Array };
      try {
        chunk = await watchdog.race(reader.read());
      } catch (error) {
        if (signal?.aborted) throw abortError(url, signal);
        if (watchdog.signal.aborted && watchdog.signal.reason instanceof FaceganError) {
          reader.cancel().catch(() => undefined);
          const e = watchdog.signal.reason;
          throw downloadError(`${e.message} Got ${downloaded}${total !== undefined ? ` of ${total}` : ''} bytes; the partial file ${part} is kept; call again to resume.`, e.cause, true);
        }
        const cause = (error as { cause?: { message?: string } }).cause;
        const detail = cause?.message ? `${(error as Error).message} (${cause.message})` : (error as Error).message;
        throw downloadError(
          `Connection lost while downloading ${url} after ${downloaded}${total !== undefined ? ` of ${total}` : ''} bytes: ${detail}. ` +
            `The partial file ${part} is kept; call again to resume.`,
          error,
          true,
        );
      }
      if (signal?.aborted) throw abortError(url, signal);
      if (chunk.done) break;
      const bytes = chunk.value;
      if (!bytes || bytes.byteLength === 0) continue;
      if (total !== undefined && downloaded + bytes.byteLength > total) {
        corrupt = true;
        throw downloadError(`Size mismatch for ${url}: expected ${total} bytes, but more arrived. The partial file was deleted.`);
      }
      try {
        for (let written = 0; written < bytes.byteLength; ) {
          const { bytesWritten } = await file.write(bytes, written, bytes.byteLength - written);
          written += bytesWritten;
        }
      } catch (error) {
        // e.g. ENOSPC: what was written stays, so a later call can resume once there is room
        throw downloadError(`Cannot write ${part}: ${(error as Error).message}`, error);
      }
      hash.update(bytes);
      downloaded += bytes.byteLength;
      watchdog.kick();
      onProgress?.({ downloadedSize: downloaded, totalSize: total ?? 0 });
    }
  } catch (error) {
    failure = error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await file.close().catch(() => undefined);
  }

  if (failure !== undefined) {
    if (signal?.aborted) {
      if (options.deletePartialOnAbort) {
        await removeQuietly(part);
        throw abortError(url, signal, '; the partial file was deleted');
      }
      throw abortError(url, signal, `; ${downloaded} bytes are kept in ${part} for resuming`);
    }
    if (corrupt) await removeQuietly(part);
    throw failure;
  }

  if (total !== undefined && downloaded < total) {
    throw downloadError(
      `The download of ${url} ended early: got ${downloaded} of ${total} bytes. ` +
        `The partial file ${part} is kept; call again to resume.`,
      undefined,
      true,
    );
  }
  return finish(job, hash.digest('hex'), offset > 0);
}

/** Is the existing `dest` the file we want? Without a size or checksum to check, an existing dest counts as done:
 * `dest` is only ever written by a verified rename. */
async function isComplete(dest: string, stats: Stats, options: DownloadOptions, expectedSha: string | undefined): Promise<string | false | undefined> {
  if (options.expectedBytes !== undefined && stats.size !== options.expectedBytes) return false;
  if (expectedSha === undefined) return undefined;
  const digest = await sha256OfFile(dest);
  return digest === expectedSha ? digest : false;
}

/**
 * Downloads `url` to `dest` (see the module comment for resume, skip, verification and abort).
 * Resolves when `dest` is complete; rejects with a FaceganError (ERR_DOWNLOAD, or ERR_INVALID_OPTION for bad arguments).
 */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  validate(url, dest, options);
  const { signal } = options;
  if (signal?.aborted) throw abortError(url, signal);
  const fetchImpl = options.fetchImpl ?? (globalThis.fetch as unknown as FetchLike | undefined);
  if (typeof fetchImpl !== 'function') {
    throw downloadError('This Node.js has no global fetch; pass fetchImpl or use Node.js 18 or later');
  }

  const key = path.resolve(dest);
  if (inFlight.has(key)) throw downloadError(`${dest} is already being downloaded by this process`);
  inFlight.add(key);
  try {
    const expectedSha = options.sha256?.toLowerCase();
    const existing = await statFile(dest);
    if (existing) {
      const digest = await isComplete(dest, existing, options, expectedSha);
      if (digest !== false) {
        options.onProgress?.({ downloadedSize: existing.size, totalSize: existing.size });
        return { path: dest, bytes: existing.size, sha256: digest, skipped: true, resumed: false };
      }
    }
    try {
      await fs.mkdir(path.dirname(dest), { recursive: true });
    } catch (error) {
      throw downloadError(`Cannot create the directory for ${dest}: ${(error as Error).message}`, error);
    }

    const job: Job = { url, dest, part: `${dest}.part`, options, expectedSha, fetchImpl };
    const retries = options.retries ?? 0;
    for (let n = 0; ; n++) {
      try {
        return await attempt(job);
      } catch (error) {
        if (n >= retries || !retriable.has(error as object) || signal?.aborted) throw error;
        await delay((n + 1) * (options.retryDelayMs ?? 1000), signal);
        if (signal?.aborted) throw abortError(url, signal);
      }
    }
  } finally {
    inFlight.delete(key);
  }
}

/** `1536` → `'1.5 KiB'`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export interface ProgressBar {
  /** Pass as `onProgress`. */
  (progress: DownloadProgress): void;
  /** Draws the final state and ends the line. */
  done(): void;
}

export interface ProgressBarOptions {
  /** Shown before the bar, e.g. the model id. */
  label?: string;
  /** Minimum milliseconds between redraws on a TTY. Default 100. */
  intervalMs?: number;
}

/**
 * A one-line progress bar for the CLI: `label [#####.....]  45.2%  163.4 MiB / 361.6 MiB  12.3 MiB/s`.
 * On a TTY it redraws in place (at most every `intervalMs`); elsewhere (a log file, CI) it prints a
 * line at every 10 %.
 */
export function progressBar(
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number } = process.stderr,
  options: ProgressBarOptions = {},
): ProgressBar {
  const label = options.label ? `${options.label} ` : '';
  const interval = options.intervalMs ?? 100;
  const started = Date.now();
  let firstSize: number | undefined;
  let last: DownloadProgress = { downloadedSize: 0, totalSize: 0 };
  let lastDraw = 0;
  let lastDecile = -1;
  let finished = false;

  const render = (): string => {
    const { downloadedSize, totalSize } = last;
    const seconds = (Date.now() - started) / 1000;
    const fresh = downloadedSize - (firstSize ?? 0);
    const speed = seconds > 0.5 && fresh > 0 ? `  ${formatBytes(fresh / seconds)}/s` : '';
    if (!totalSize) return `${label}${formatBytes(downloadedSize)}${speed}`;
    const fraction = Math.min(1, downloadedSize / totalSize);
    const tail = `  ${(fraction * 100).toFixed(1).padStart(5)}%  ${formatBytes(downloadedSize)} / ${formatBytes(totalSize)}${speed}`;
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - label.length - tail.length - 3));
    const filled = Math.round(fraction * width);
    return `${label}[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]${tail}`;
  };

  const bar = ((progress: DownloadProgress): void => {
    if (finished) return;
    firstSize ??= progress.downloadedSize;
    last = progress;
    if (stream.isTTY) {
      const now = Date.now();
      const complete = progress.totalSize > 0 && progress.downloadedSize >= progress.totalSize;
      if (now - lastDraw < interval && !complete) return;
      lastDraw = now;
      stream.write(`\r${render()}\x1b[K`);
    } else if (progress.totalSize) {
      const decile = Math.floor((10 * progress.downloadedSize) / progress.totalSize);
      if (decile > lastDecile) {
        lastDecile = decile;
        stream.write(`${render()}\n`);
      }
    }
  }) as ProgressBar;

  bar.done = (): void => {
    if (finished) return;
    finished = true;
    if (stream.isTTY) stream.write(`\r${render()}\x1b[K\n`);
    else if (!last.totalSize || lastDecile < 10) stream.write(`${render()}\n`);
  };
  return bar;
}
