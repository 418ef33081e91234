/**
 * Micro-batching for one Generator: concurrent synthesis requests are gathered into one engine
 * call, so a service under load runs at the batched rate.
 *
 * A request waits at most `maxWaitMs` for company while the engine is idle; while the engine is
 * busy, requests simply gather until it is free. The batch is formed at the moment the engine
 * becomes free (late binding): a request that was aborted before that moment is dropped and never
 * runs. Once a batch runs, its engine call is cancelled (`run`'s signal) only when every request in
 * it has aborted: one request's signal never stops the images of the others. Only requests with the same `key` (same call, noise mode, truncation and output kind) share a batch, and a
 * gathered batch never holds more than `maxBatch` images (a single larger request runs alone). Results go back to their own callers in order.
 */
import { FaceganError } from './errors.js';

/** What a batch run returns: one buffer holding the images of every request, in order. */
export interface BatchOutput<D extends Uint8Array | Float32Array = Uint8Array | Float32Array> {
  data: D;
}

/** One request's share of a batch: `data` holds images `[offset, offset + count)` of the batch. */
export interface BatchShare<D extends Uint8Array | Float32Array = Uint8Array | Float32Array> {
  data: D;
  offset: number;
  /** Images in the whole batch (1 when the request ran alone). */
  batchImages: number;
}

interface Pending<P, I> {
  key: string;
  params: P;
  input: I;
  count: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  resolve: (share: BatchShare) => void;
  reject: (err: unknown) => void;
}

export interface BatcherOptions<P, I> {
  /**
   * Most images gathered into one engine call from concurrent requests (a latency / throughput
   * knob). A single request of more images still runs as one call: splitting requests to fit
   * memory is the engine's business (its chunks), not the batcher's.
   */
  maxBatch: number;
  /** Longest a request waits for others while the engine is idle (ms). */
  maxWaitMs: number;
  /**
   * Time budget of one gathered engine call (ms): batches are capped at the images the engine
   * ran in that time so far (measured), so waiting for a batch to finish stays short where batching
   * does not pay (a CPU runs images one after another). 0: no cap but maxBatch.
   */
  maxBatchMs?: number;
  /** The inputs of several requests (same key) as one, in order. */
  concat: (inputs: I[]) => I;
  /**
   * Puts `job` in the engine's queue (after the calls already there). It must reject without
   * calling `job` when the engine is gone (disposed).
   */
  enqueue: (job: () => Promise<void>) => Promise<void>;
  /**
   * Runs `n` images (inputs concatenated) with the parameters of the batch's first request.
   * `signal` aborts when every request of the batch has aborted: the engine call may stop early.
   */
  run: (params: P, input: I, n: number, signal: AbortSignal) => Promise<BatchOutput>;
}

/** The error of a request whose signal aborted before it ran. */
export function abortError(signal: AbortSignal): FaceganError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error && reason.name === 'TimeoutError' ? 'timed out' : 'was aborted';
  return new FaceganError('ERR_ABORTED', `The request ${why} before it ran`, { cause: reason });
}

export class Batcher<P, I> {
  readonly #opts: BatcherOptions<P, I>;
  #pending: Pending<P, I>[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #scheduled = false;
  /** Engine calls made and images run through them (for tests and metrics). */
  readonly stats = { batches: 0, images: 0, requests: 0, dropped: 0, largestBatch: 0, msPerImage: 0 };

  constructor(options: BatcherOptions<P, I>) {
    this.#opts = options;
  }

  /** Requests waiting for the engine. */
  get waiting(): number {
    return this.#pending.length;
  }

  /** Queues `count` images; resolves with this request's share of its batch's output. */
  submit(key: string, params: P, input: I, count: number, signal?: AbortSignal): Promise<BatchShare> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<BatchShare>((resolve, reject) => {
      const p: Pending<P, I> = { key, params, input, count, signal, onAbort: undefined, resolve, reject };
      if (signal) {
        p.onAbort = () => {
          const i = this.#pending.indexOf(p);
          if (i < 0) return; // already running: it completes normally
          this.#pending.splice(i, 1);
          this.stats.dropped++;
          reject(abortError(signal));
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.#pending.push(p);
      this.#wake();
    });
  }

  #wake(): void {
    if (this.#scheduled || this.#pending.length === 0) return;
    const images = this.#pending.reduce((s, p) => s + p.count, 0);
    if (images >= this.#limit() || this.#opts.maxWaitMs <= 0) {
      this.#schedule();
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => this.#schedule(), this.#opts.maxWaitMs);
    }
  }

  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#opts
      .enqueue(async () => {
        this.#scheduled = false;
        const batch = this.#take();
        this.#wake(); // whatever is left (or arrives meanwhile) goes next
        if (batch.length > 0) await this.#runBatch(batch);
      })
      .catch((err: unknown) => {
        // The engine is gone (disposed): everything still waiting fails the same way.
        this.#scheduled = false;
        const waiting = this.#pending;
        this.#pending = [];
        for (const p of waiting) this.#settle(p).reject(err);
      });
  }

  /** Most images in the next gathered batch: maxBatch, capped by the time budget. */
  #limit(): number {
    const budget = this.#opts.maxBatchMs ?? 0;
    const per = this.stats.msPerImage;
    if (budget <= 0) return this.#opts.maxBatch;
    if (per <= 0) return 1; // the first gathered call measures the engine (and stays small: memory grows with batch size)
    return Math.max(1, Math.min(this.#opts.maxBatch, Math.floor(budget / per)));
  }

  /** Takes the oldest request and the following ones of the same key, up to the batch limit. */
  #take(): Pending<P, I>[] {
    if (this.#pending.length === 0) return [];
    const key = this.#pending[0].key;
    const limit = this.#limit();
    const batch: Pending<P, I>[] = [];
    let images = 0;
    const rest: Pending<P, I>[] = [];
    for (const p of this.#pending) {
      if (p.key === key && (batch.length === 0 || images + p.count <= limit)) {
        batch.push(p);
        images += p.count;
      } else {
        rest.push(p);
      }
    }
    this.#pending = rest;
    for (const p of batch) this.#settle(p);
    return batch;
  }

  /** Detaches the abort listener (the request is leaving the queue). */
  #settle(p: Pending<P, I>): Pending<P, I> {
    if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
    return p;
  }

  async #runBatch(batch: Pending<P, I>[]): Promise<void> {
    const n = batch.reduce((s, p) => s + p.count, 0);
    const input = batch.length === 1 ? batch[0].input : this.#opts.concat(batch.map((p) => p.input));
    this.stats.batches++;
    this.stats.images += n;
    this.stats.requests += batch.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, n);
    // Abort the engine call when every request of the batch has aborted (all have signals).
    const whole = new AbortController();
    const detach: (() => void)[] = [];
    if (batch.every((p) => p.signal)) {
      let left = batch.filter((p) => !p.signal!.aborted).length;
      if (left === 0) whole.abort();
      for (const p of batch) {
        if (p.signal!.aborted) continue;
        const onAbort = (): void => {
          if (--left === 0) whole.abort();
        };
        p.signal!.addEventListener('abort', onAbort, { once: true });
        detach.push(() => p.signal!.removeEventListener('abort', onAbort));
      }
    }
    let out: BatchOutput;
    try {
      const t0 = performance.now();
      try {
        out = await this.#opts.run(batch[0].params, input, n, whole.signal);
      } finally {
        for (const d of detach) d();
      }
      // Engine time per image, smoothed (first call: as measured).
      const per = (performance.now() - t0) / n;
      this.stats.msPerImage = this.stats.msPerImage === 0 ? per : 0.7 * this.stats.msPerImage + 0.3 * per;
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    let offset = 0;
    for (const p of batch) {
      p.resolve({ data: out.data, offset, batchImages: n });
      offset += p.count;
    }
  }
}
