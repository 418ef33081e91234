/**
 * load → generate → dispose. A Generator owns one native engine; every call runs off the main
 * thread (an AsyncWorker in the addon) and calls on one generator run one after another.
 */
import { Batcher, abortError } from './batcher.js';
import { FaceganError, engineError, invalidOption } from './errors.js';
import { native, type NativeGenerator, type NativeTensor } from './native.js';
import type { WAvgOrigin } from './convert/rosinality.js';
import {
  checkClasses,
  checkInteger,
  checkLatents,
  checkObject,
  checkOneOf,
  checkSynthesisOptions,
  checkTruncation,
  checkWs,
  type TruncationOptions,
  type Device,
  type ModelShape,
  type NoiseMode,
  type OutputKind,
  type Precision,
} from './options.js';

export type { Device, NoiseMode, OutputKind, Precision } from './options.js';

export interface LoadOptions {
  /** 'auto' (default) uses CUDA when a GPU and a CUDA build are present, else the CPU. */
  device?: Device;
  /** GPU ordinal for CUDA. */
  deviceIndex?: number;
  /**
   * Arithmetic precision. The CPU engine runs fp32, or opt-in 'bf16' where the CPU has AMX-BF16
   * (the engine refuses it elsewhere: ERR_NATIVE naming AMX); 'fp16' is a GPU option.
   */
  precision?: Precision;
  /** CPU worker threads (0 or absent: one per hardware thread). */
  threads?: number;
  /**
   * Micro-batching: the most images one engine call gathers from concurrent requests (a latency /
   * throughput knob for a service). It never splits a request: a request of more images runs as
   * one engine call, which the engine splits into chunks of `maxChunk`. Default: the engine's
   * chunk (`chunkImages`).
   */
  batchSize?: number;
  /**
   * The most images the engine runs at once (its memory bound): larger calls are split inside the
   * engine into chunks of this many, with the same images bit for bit (the tests use a tiny chunk).
   * Default: the backend's estimate from its memory (CPU: about 768 MiB of activations; CUDA: the
   * free device memory), halved after an out-of-memory.
   */
  maxChunk?: number;
  /**
   * Time budget (ms) of one engine call that gathers concurrent requests (micro-batching): such a
   * batch holds at most the images the engine runs in that time (measured), and at most batchSize.
   * 0: batchSize only. Default 250.
   */
  maxBatchMs?: number;
}

export interface GeneratorInfo {
  arch: string;
  resolution: number;
  imageChannels: number;
  zDim: number;
  wDim: number;
  cDim: number;
  numWs: number;
  mappingLayers: number;
  convClamp: number | null;
  numParams: number;
  backend: 'cpu' | 'cuda';
  precision: Precision;
  /** Where the weights came from (a path) and in which format. */
  source: string;
  format: string;
  /**
   * StyleGAN2: where the average w that truncation (ψ < 1) pulls towards came from — 'stored' in
   * the checkpoint, or 'computed' at load for a checkpoint without one (rosinality train.py
   * checkpoints): the mean of the mapping of `wAvgSamples` z =
   * numpy.random.RandomState(`wAvgSeed`).randn(wAvgSamples, zDim). Absent for ProGAN.
   */
  wAvg?: 'stored' | 'computed';
  wAvgSamples?: number;
  wAvgSeed?: number;
}

/** An 8-bit image, rows top to bottom, channels interleaved (HWC; RGB or gray). */
export interface Image {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
  /** The seed it came from, when it came from a seed. */
  seed?: number;
  /** The model that made it (a short name; written into the image's provenance metadata). */
  model?: string;
}

/** The raw synthesis output of one image: CHW float32, unclamped, roughly in [−1, 1]. */
export interface FloatImage {
  width: number;
  height: number;
  channels: number;
  data: Float32Array;
  seed?: number;
}

/** Cancellation: a call whose signal aborts before it reaches the engine rejects with ERR_ABORTED and never runs. */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface LatentOptions extends CallOptions {
  seed?: number;
  seeds?: number[];
  /** n × zDim latents. */
  z?: Float32Array | Float64Array | number[];
  /** Truncation ψ (1 = none). */
  psi?: number;
  /** Truncate only the first `truncationCutoff` rows of ws. */
  truncationCutoff?: number | null;
  /** Class of a conditional model: one index for all images or one per image. */
  classIndex?: number | number[];
}

export interface RenderOptions extends CallOptions {
  noiseMode?: NoiseMode;
  /** Seed of the noise for noiseMode 'random' (default: a fresh random seed per call). */
  noiseSeed?: number;
  output?: OutputKind;
}

export type GenerateOptions = LatentOptions & RenderOptions;

type ImagesFor<O> = O extends { output: 'float32' } ? FloatImage[] : Image[];

export class Generator {
  readonly info: Readonly<GeneratorInfo>;
  #native: NativeGenerator | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #randomKeys = 0;
  #batchSize: number;
  #batcher: Batcher<CallParams, EngineInput>;

  /** @internal use loadGenerator() */
  constructor(engine: NativeGenerator, info: GeneratorInfo, batchSize: number, maxBatchMs = 250) {
    this.#native = engine;
    this.info = Object.freeze(info);
    this.#batchSize = batchSize;
    this.#batcher = new Batcher<CallParams, EngineInput>({
      maxBatch: batchSize,
      maxWaitMs: BATCH_WAIT_MS,
      maxBatchMs,
      concat: concatInputs,
      enqueue: (job) => this.#run(job),
      run: async (p, input, n, signal) => {
        // Every request of this batch left: cancel the running engine call (it stops within a chunk).
        const token = native().createCancelToken();
        const onAbort = (): void => token.cancel();
        if (signal.aborted) token.cancel();
        else signal.addEventListener('abort', onAbort, { once: true });
        try {
          const render = { noiseMode: p.noiseMode, noiseSeed: p.noiseSeed, float32: p.wantFloat, uint8: !p.wantFloat, cancel: token };
          const engine = this.#native!;
          const out =
            input.ws !== undefined
              ? await engine.synthesis({ ws: input.ws, ...render })
              : await engine.generate({
                  ...(input.seeds !== undefined ? { seeds: input.seeds } : { z: input.z! }),
                  c: input.c,
                  psi: p.psi,
                  truncationCutoff: p.cutoff,
                  ...render,
                });
          return { data: (p.wantFloat ? out.float32 : out.uint8)! };
        } catch (err) {
          throw engineError(err, this.#native === undefined);
        } finally {
          signal.removeEventListener('abort', onAbort);
        }
      },
    });
  }

  /** Micro-batching counters: engine calls, images and requests through them, requests dropped by their signal. */
  get batchStats(): Readonly<{ batches: number; images: number; requests: number; dropped: number; largestBatch: number; msPerImage: number; waiting: number }> {
    return { ...this.#batcher.stats, waiting: this.#batcher.waiting };
  }

  /** Images in one gathered engine call (concurrent requests are gathered up to this many; see LoadOptions.batchSize). */
  get batchSize(): number {
    return this.#batchSize;
  }

  get disposed(): boolean {
    return this.#native === undefined;
  }

  /** numpy.random.RandomState(seed).randn(zDim): the latent the official generate.py uses. */
  zFromSeed(seed: number): Float64Array {
    checkInteger('seed', seed, 0, 2 ** 32 - 1);
    return native().numpyRandn(seed, this.info.zDim);
  }

  /** Seeds or latents → images. */
  async generate<O extends GenerateOptions>(options: O): Promise<ImagesFor<O>> {
    const opts = checkObject('options', options);
    const shape = this.#shape();
    const latents = checkLatents(opts, shape);
    const trunc = checkTruncation(opts, shape);
    const c = checkClasses(opts, shape, latents.count);
    const synth = checkSynthesisOptions(opts, shape, latents.count);
    const signal = checkSignal(opts.signal);
    if (this.info.arch === 'progan' && (trunc.psi !== 1 || trunc.cutoff !== -1)) {
      throw invalidOption('psi / truncationCutoff', 'nothing: a ProGAN model has no truncation', opts.psi ?? opts.truncationCutoff);
    }
    // One engine call from the latents to the images (the engine picks the path for the model).
    const input: EngineInput = latents.seeds ? { seeds: Uint32Array.from(latents.seeds), c } : { z: latents.z, c };
    return (await this.#images(input, latents.count, synth, trunc, latents.seeds, signal)) as ImagesFor<O>;
  }

  /** Seeds or latents → ws, n × numWs × wDim (truncation applied). */
  async mapping(options: LatentOptions): Promise<Float32Array> {
    const opts = checkObject('options', options);
    const shape = this.#shape();
    this.#requireMapping('mapping()');
    const latents = checkLatents(opts, shape);
    const trunc = checkTruncation(opts, shape);
    const c = checkClasses(opts, shape, latents.count);
    const signal = checkSignal(opts.signal);
    const z = latents.z ?? this.#zForSeeds(latents.seeds!);
    return this.#run((g) => g.mapping({ z, c, psi: trunc.psi, truncationCutoff: trunc.cutoff }), signal);
  }

  /** ws (n × numWs × wDim) → images. Style mixing is editing rows of ws. */
  async synthesis<O extends RenderOptions>(ws: Float32Array, options?: O): Promise<ImagesFor<O>> {
    const opts = checkObject('options', options);
    const shape = this.#shape();
    this.#requireMapping('synthesis(ws)');
    const checked = checkWs(ws, shape);
    const synth = checkSynthesisOptions(opts, shape, checked.count);
    return (await this.#images({ ws: checked.ws }, checked.count, synth, NO_TRUNCATION, undefined, checkSignal(opts.signal))) as ImagesFor<O>;
  }

  /**
   * Frames of a walk from one face to another (`space` 'z' with slerp by default, or 'w' with lerp):
   * `steps` images, both ends included.
   */
  async interpolate(options: import('./interpolate.js').InterpolateOptions): Promise<import('./interpolate.js').Frame[]> {
    this.#shape();
    const { interpolate } = await import('./interpolate.js');
    return interpolate(this, options);
  }

  /** The same frames, one engine batch at a time (for long walks written as they are ready). */
  async *interpolateFrames(options: import('./interpolate.js').InterpolateOptions): AsyncGenerator<import('./interpolate.js').Frame[]> {
    this.#shape();
    const { interpolationFrames } = await import('./interpolate.js');
    yield* interpolationFrames(this, options);
  }

  /**
   * Writes this generator as a standard ONNX graph (z → image, or two graphs z → ws and
   * ws → image with `graphs: 'two'`), built from the weights file it was loaded from.
   */
  async exportOnnx(dst: string, options?: import('./onnx/index.js').ExportOnnxOptions): Promise<import('./onnx/index.js').ExportOnnxResult> {
    this.#shape();
    const { exportOnnx } = await import('./onnx/index.js');
    return exportOnnx(this.info.source, dst, options);
  }

  /**
   * Frees the engine. Every call not finished rejects with ERR_DISPOSED: a native call already
   * running stops at the engine's next layer, and the engine's memory goes when it has.
   */
  dispose(): void {
    const engine = this.#native;
    this.#native = undefined;
    engine?.dispose();
  }

  #shape(): ModelShape {
    if (!this.#native) throw new FaceganError('ERR_DISPOSED', 'This generator has been disposed');
    return this.info;
  }

  #requireMapping(what: string): void {
    if (this.info.arch === 'progan') {
      throw new FaceganError('ERR_INVALID_OPTION', `${what} needs a StyleGAN2 model; a ProGAN model has no mapping network (use generate())`);
    }
  }

  #zForSeeds(seeds: number[]): Float32Array {
    const { zDim } = this.info;
    const z = new Float32Array(seeds.length * zDim);
    seeds.forEach((s, i) => z.set(native().numpyRandn(s, zDim), i * zDim));
    return z;
  }

  /**
   * Latents (generate) or ws (synthesis) → images, as one request to the micro-batcher:
   * concurrent calls share engine calls (same images as alone: the engine is batch-invariant).
   * The engine splits a large request into chunks itself.
   */
  async #images(
    input: EngineInput,
    count: number,
    synth: { noiseMode: NoiseMode; noiseSeed: number | undefined; output: OutputKind },
    trunc: TruncationOptions,
    seeds: number[] | undefined,
    signal?: AbortSignal,
  ): Promise<Image[] | FloatImage[]> {
    const { resolution: size, imageChannels: channels } = this.info;
    const wantFloat = synth.output === 'float32';
    const noiseSeed = synth.noiseSeed ?? Math.floor(Math.random() * Number.MAX_SAFE_INTEGER);
    // Random noise is keyed by (noiseSeed, image index in the engine call): such a request runs
    // alone (its own key). Const / no noise batches with any request of the same call and options.
    const call = input.ws ? 'synthesis' : `generate:${input.seeds ? 'seeds' : 'z'}:${trunc.psi}:${trunc.cutoff}`;
    const key = synth.noiseMode === 'random' && this.info.arch !== 'progan' ? `random:${++this.#randomKeys}` : `${call}:${synth.noiseMode}:${synth.output}`;
    const params: CallParams = { noiseMode: synth.noiseMode, noiseSeed, wantFloat, psi: trunc.psi, cutoff: trunc.cutoff };
    const share = await this.#batcher.submit(key, params, input, count, signal);
    const per = channels * size * size;
    const images: (Image | FloatImage)[] = [];
    for (let i = 0; i < count; i++) {
      const at = share.offset + i;
      const image = { width: size, height: size, channels, data: share.data.subarray(at * per, (at + 1) * per) } as Image | FloatImage;
      if (seeds) image.seed = seeds[i];
      if (!wantFloat) (image as Image).model = this.modelName;
      images.push(image);
    }
    return images as Image[] | FloatImage[];
  }

  /** A short name of the model: its file name without extension (e.g. 'progan-celeba128'). */
  get modelName(): string {
    const base = this.info.source.split(/[\\/]/).pop() ?? this.info.arch;
    return base.replace(/\.(safetensors|pkl|pt|json)$/i, '').replace(/\.tf$/i, '') || this.info.arch;
  }

  /** Runs one native call after the previous one, with the caller's stack on failure; dropped if `signal` aborted first. */
  #run<T>(call: (g: NativeGenerator) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const trace = new Error();
    const job = this.#queue.then(() => {
      const engine = this.#native;
      if (!engine) throw new FaceganError('ERR_DISPOSED', 'This generator has been disposed');
      if (signal?.aborted) throw abortError(signal);
      return call(engine);
    });
    this.#queue = job.catch(() => undefined);
    return job.catch((err: unknown) => {
      if (err instanceof FaceganError) throw err;
      const e = engineError(err, this.#native === undefined);
      e.stack = `${e.name}: ${e.message}\n${trace.stack?.split('\n').slice(1).join('\n') ?? ''}`;
      throw e;
    });
  }
}

/** How long a request waits for others to share its engine call while the engine is idle (ms). */
const BATCH_WAIT_MS = 2;

interface CallParams {
  noiseMode: NoiseMode;
  noiseSeed: number;
  wantFloat: boolean;
  psi: number;
  cutoff: number;
}

/** What one request gives the engine: latents (seeds or z, with class labels) for generate, or ws for synthesis. */
interface EngineInput {
  seeds?: Uint32Array;
  z?: Float32Array;
  c?: Float32Array | null;
  ws?: Float32Array;
}

const NO_TRUNCATION: TruncationOptions = { psi: 1, cutoff: -1 };

/** The inputs of requests that share a batch (same key, so the same fields), concatenated in order. */
function concatInputs(inputs: EngineInput[]): EngineInput {
  const join = <T extends Float32Array | Uint32Array>(parts: T[], make: (n: number) => T): T => {
    const out = make(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const first = inputs[0];
  const out: EngineInput = {};
  if (first.seeds) out.seeds = join(inputs.map((i) => i.seeds!), (n) => new Uint32Array(n));
  if (first.z) out.z = join(inputs.map((i) => i.z!), (n) => new Float32Array(n));
  if (first.ws) out.ws = join(inputs.map((i) => i.ws!), (n) => new Float32Array(n));
  if (first.c) out.c = join(inputs.map((i) => i.c!), (n) => new Float32Array(n));
  return out;
}

function checkSignal(v: unknown): AbortSignal | undefined {
  if (v === undefined) return undefined;
  if (!(v instanceof AbortSignal)) throw invalidOption('signal', 'an AbortSignal', v);
  return v;
}

/** The backends this process can use, best first, and why the others cannot run. */
export function availableBackends(): { backends: ('cpu' | 'cuda')[]; unavailable: string } {
  const r = native().availableBackends();
  return { backends: r.backends as ('cpu' | 'cuda')[], unavailable: r.unavailable };
}

export interface LoadedModel {
  config: Record<string, unknown>;
  tensors: NativeTensor[];
  source: string;
  format: string;
  /** How `mapping.w_avg` was obtained (see GeneratorInfo.wAvg; absent: stored); already computed here. */
  wAvg?: WAvgOrigin;
}

/** Creates the native engine for already-read weights (shared by loadGenerator and tests). */
export async function createGenerator(model: LoadedModel, options: LoadOptions = {}): Promise<Generator> {
  const opts = checkObject('options', options);
  const device = checkOneOf('device', opts.device, ['auto', 'cpu', 'cuda'] as const, 'auto');
  const deviceIndex = opts.deviceIndex === undefined ? 0 : checkInteger('deviceIndex', opts.deviceIndex, 0, 63);
  const threads = opts.threads === undefined ? 0 : checkInteger('threads', opts.threads, 0, 1024);
  const batchSize = opts.batchSize === undefined ? undefined : checkInteger('batchSize', opts.batchSize, 1, 1024);
  const maxChunk = opts.maxChunk === undefined ? 0 : checkInteger('maxChunk', opts.maxChunk, 1, 1024);
  const maxBatchMs = opts.maxBatchMs === undefined ? undefined : checkInteger('maxBatchMs', opts.maxBatchMs, 0, 3_600_000);
  const addon = native();
  const { backends, unavailable } = addon.availableBackends();
  let backend: 'cpu' | 'cuda' = 'cpu';
  if (device === 'cuda') {
    if (!backends.includes('cuda')) {
      throw new FaceganError(
        'ERR_BACKEND_UNAVAILABLE',
        `The CUDA backend is not available: ${unavailable || 'unknown reason'}. Use device: 'cpu' or 'auto'.`,
      );
    }
    backend = 'cuda';
  } else if (device === 'auto' && backends.includes('cuda')) {
    backend = 'cuda';
  }
  const precision = checkOneOf('precision', opts.precision, ['fp32', 'fp16', 'bf16'] as const, 'fp32');
  if (backend === 'cpu' && precision === 'fp16') {
    throw invalidOption('precision', "'fp32' or 'bf16' (a CPU with AMX-BF16) on the CPU backend", precision);
  }
  const trace = new Error();
  let engine: NativeGenerator;
  try {
    engine = await addon.createGenerator(JSON.stringify(model.config), model.tensors, {
      backend,
      deviceIndex,
      precision,
      threads,
      maxChunk,
    });
  } catch (err) {
    const e = new FaceganError('ERR_NATIVE', `Could not create the ${backend} engine: ${(err as Error).message}`);
    e.stack = `${e.name}: ${e.message}\n${trace.stack?.split('\n').slice(1).join('\n') ?? ''}`;
    throw e;
  }
  const raw = engine.info();
  const info: GeneratorInfo = {
    arch: raw.arch,
    resolution: raw.resolution,
    imageChannels: raw.imageChannels,
    zDim: raw.zDim,
    wDim: raw.wDim,
    cDim: raw.cDim,
    numWs: raw.numWs,
    mappingLayers: raw.mappingLayers,
    convClamp: raw.convClamp,
    numParams: raw.numParams,
    backend,
    precision,
    source: model.source,
    format: model.format,
  };
  if (raw.arch === 'stylegan2') {
    const w = model.wAvg;
    if (w?.kind === 'computed') Object.assign(info, { wAvg: 'computed', wAvgSamples: w.samples, wAvgSeed: w.seed });
    else info.wAvg = 'stored';
  }
  return new Generator(engine, info, batchSize ?? engine.chunkImages(), maxBatchMs);
}
