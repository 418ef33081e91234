/**
 * The typed shape of the raw addon (native/binding/addon.cc) and the one place it is loaded.
 *
 * The addon ships in per-platform packages, installed by npm as optionalDependencies whose
 * os / cpu / libc fields match this machine (see npm/ and README "Install"); each holds the
 * prebuildify layout, prebuilds/<platform>-<arch>/facegan[.glibc].node (scripts/pack-local.mjs).
 * Every candidate is a directory loaded with node-gyp-build(dir), which takes dir/build/Release/*.node,
 * else the prebuild in dir/prebuilds/ that matches this platform, architecture and libc. Load order:
 *
 *   1. a local build: node-gyp-build(<package>) when <package>/build/Release/facegan.node exists
 *      (a clone, or `npx facegan build-native`);
 *   2. node-gyp-build(<dir of @facegan-native/<platform>-<arch>-cuda>), when that package is
 *      installed and an NVIDIA driver is present (kept only if its CUDA backend is usable, or when
 *      there is no CPU package to fall back on) — node-gyp-build has no GPU tag, hence a package;
 *   3. node-gyp-build(<dir of @facegan-native/<platform>-<arch>>), the CPU build;
 *   4. nothing loads: one FaceganError (ERR_NATIVE) lists every attempt and what to do, as a
 *      consumer: reinstall with optional dependencies, or build from source.
 *
 * Nothing is loaded until the first call that needs the engine, so `import` never fails.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaceganError } from './errors.js';

export type NativeDType = 'F32' | 'F16' | 'BF16';

export interface NativeTensor {
  name: string;
  dtype: NativeDType;
  shape: number[];
  data: ArrayBufferView;
}

export interface NativeLoadOptions {
  backend: 'cpu' | 'cuda';
  deviceIndex: number;
  precision: 'fp32' | 'fp16' | 'bf16';
  threads: number;
  /** The most images the backend runs at once (0 or absent: its memory estimate); see LoadOptions.maxChunk. */
  maxChunk?: number;
}

export interface NativeInfo {
  arch: string;
  zDim: number;
  wDim: number;
  cDim: number;
  resolution: number;
  imageChannels: number;
  numWs: number;
  mappingLayers: number;
  convClamp: number | null;
  numParams: number;
  backend: string;
}

/**
 * Cancels the native calls it was given to (createCancelToken()). Failed calls reject with an
 * Error whose `status` is 'cancelled' (by a token or dispose()) or 'non-finite' (NaN / ±Inf
 * output); lib/generator.ts maps them to ERR_ABORTED / ERR_DISPOSED and ERR_NON_FINITE.
 */
export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

/** Truncation and class labels of a call from latents (StyleGAN2; a ProGAN model takes neither). */
export interface NativeLatentOptions {
  /** n × cDim one-hot labels: required by a conditional model, refused by an unconditional one. */
  c?: Float32Array | null;
  /** Truncation ψ (default 1: none). */
  psi?: number;
  /** Truncate rows [0, cutoff) of ws only (default −1: all rows). */
  truncationCutoff?: number;
}

/** Noise and outputs of a call that makes images (at least one of float32 / uint8 must be true). */
export interface NativeRenderOptions {
  noiseMode?: 'const' | 'random' | 'none';
  /** Seed of the random noise (default 0). */
  noiseSeed?: number;
  /** For random noise: the first image is image #imageOffset of a larger request (default 0). */
  imageOffset?: number;
  /** Hand back the CHW float32 images. */
  float32?: boolean;
  /** Hand back the HWC uint8 images. */
  uint8?: boolean;
}

export interface NativeCallOptions {
  cancel?: NativeCancelToken;
}

export type NativeImages = { float32?: Float32Array; uint8?: Uint8Array };

/**
 * The engine's calls take one options object; n is the number of rows of the input. They copy
 * their inputs before they return the Promise, throw a TypeError / RangeError naming a bad field
 * at once, and reject as NativeCancelToken says. Requests larger than chunkImages() run in
 * chunks inside the engine (the same bits as one pass).
 */
export interface NativeGenerator {
  info(): NativeInfo;
  /** z (n × zDim) → ws (n × numWs × wDim), truncated. StyleGAN2 only. */
  mapping(options: { z: Float32Array } & NativeLatentOptions & NativeCallOptions): Promise<Float32Array>;
  /** ws (n × numWs × wDim; StyleGAN2) or z (n × zDim; ProGAN) → images. */
  synthesis(options: ({ ws: Float32Array; z?: undefined } | { z: Float32Array; ws?: undefined }) & NativeRenderOptions & NativeCallOptions): Promise<NativeImages>;
  /**
   * Latents → images in one native call (mapping, truncation and synthesis for StyleGAN2; z
   * straight into synthesis for ProGAN). seeds: z = numpy.random.RandomState(seed).randn(zDim).
   */
  generate(
    options: ({ z: Float32Array; seeds?: undefined } | { seeds: Uint32Array; z?: undefined }) & NativeLatentOptions & NativeRenderOptions & NativeCallOptions,
  ): Promise<NativeImages>;
  /** The most images the engine hands its backend at once (LoadOptions.maxChunk, or the backend's memory estimate, halved after an out-of-memory). */
  chunkImages(): number;
  /** Cancels the running and queued calls, then frees the engine when the last one ends. */
  dispose(): void;
}

export interface NativeAddon {
  createGenerator(config: string, tensors: NativeTensor[], options: NativeLoadOptions): Promise<NativeGenerator>;
  availableBackends(): { backends: string[]; unavailable: string };
  numpyRandn(seed: number, count: number): Float64Array;
  createCancelToken(): NativeCancelToken;
  builtWithCuda: boolean;
}

export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/** Platforms with a published binary package (npm/<name>); the message names them. */
export const PREBUILT_PLATFORMS = ['linux-x64', 'linux-x64-cuda', 'linux-arm64', 'darwin-arm64', 'darwin-x64', 'win32-x64'] as const;

/** The embedded default model: the weights package, or weights/ in a clone of the repository. */
export function defaultModelFile(): string {
  try {
    return require.resolve('@facegan-native/weights-progan-celeba128/progan-celeba128.safetensors');
  } catch {
    return path.join(packageRoot, 'weights', 'progan-celeba128.safetensors');
  }
}

/** One attempt of the loader: what it tried and how it ended. */
export interface NativeAttempt {
  candidate: string;
  result: 'loaded' | 'skipped' | 'failed';
  detail: string;
}

export interface NativeEnvironment {
  platform: NodeJS.Platform;
  arch: string;
  /** 'glibc' or 'musl' on Linux, undefined elsewhere. */
  libc?: 'glibc' | 'musl';
  /** Whether an NVIDIA driver seems present (Linux: /proc/driver/nvidia/version; Windows: nvcuda.dll). */
  nvidiaDriver: boolean;
  /** The directory of the facegan-native package (for the local build). */
  root: string;
  /** Loads the addon of a directory: node-gyp-build(dir) by default. */
  load: (dir: string) => unknown;
  /** The directory of an installed package; undefined when it is not installed (not "failed"). */
  packageDir: (name: string) => string | undefined;
}

function detectLibc(): 'glibc' | 'musl' | undefined {
  if (process.platform !== 'linux') return undefined;
  // The diagnostic report's header names the glibc Node runs on (none on musl). Its network part
  // can be slow (it resolves addresses); leave it out where Node allows.
  const report = process.report as (NodeJS.ProcessReport & { excludeNetwork?: boolean }) | undefined;
  if (!report) return 'glibc';
  const saved = report.excludeNetwork;
  report.excludeNetwork = true;
  try {
    const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
    return header?.glibcVersionRuntime ? 'glibc' : 'musl';
  } finally {
    report.excludeNetwork = saved;
  }
}

function detectNvidiaDriver(): boolean {
  if (process.env.FACEGAN_NO_CUDA_PACKAGE === '1') return false;
  if (process.platform === 'linux') return fs.existsSync('/proc/driver/nvidia/version');
  if (process.platform === 'win32') return fs.existsSync(path.join(process.env.SystemRoot ?? 'C:\\Windows', 'System32', 'nvcuda.dll'));
  return false;
}

export function currentEnvironment(): NativeEnvironment {
  return {
    platform: process.platform,
    arch: process.arch,
    libc: detectLibc(),
    nvidiaDriver: detectNvidiaDriver(),
    root: packageRoot,
    // Required here, not at the top: `import` never fails, and a missing node-gyp-build is an attempt's error.
    load: (dir) => (require('node-gyp-build') as (dir: string) => unknown)(dir),
    packageDir: (name) => {
      try {
        return path.dirname(require.resolve(`${name}/package.json`));
      } catch {
        return undefined;
      }
    },
  };
}

const firstLine = (err: unknown): string => String((err as Error)?.message ?? err).split('\n')[0];

function looksLikeAddon(x: unknown): x is NativeAddon {
  const a = x as NativeAddon | undefined;
  return !!a && typeof a.createGenerator === 'function' && typeof a.availableBackends === 'function' && typeof a.numpyRandn === 'function';
}

/**
 * Finds and loads the addon for `env` in the documented order. Returns the addon and the attempts,
 * or throws ERR_NATIVE with the one message that lists them and says what to do.
 */
export function loadNative(env: NativeEnvironment = currentEnvironment()): { addon: NativeAddon; attempts: NativeAttempt[] } {
  const attempts: NativeAttempt[] = [];
  const tag = `${env.platform}-${env.arch}${env.libc === 'musl' ? '-musl' : ''}`;
  const tryLoad = (candidate: string, dir: string): NativeAddon | undefined => {
    try {
      const addon = env.load(dir);
      if (!looksLikeAddon(addon)) throw new Error('it loaded but is not a facegan addon (missing exports)');
      // A binary that loads but cannot run its own code (wrong CPU, broken build) fails here.
      addon.numpyRandn(0, 1);
      attempts.push({ candidate, result: 'loaded', detail: dir });
      return addon;
    } catch (err) {
      attempts.push({ candidate, result: 'failed', detail: firstLine(err) });
      return undefined;
    }
  };

  // 1. A local build (node-gyp-build takes build/Release/*.node of the package's directory).
  const local = path.join(env.root, 'build', 'Release', 'facegan.node');
  if (fs.existsSync(local)) {
    const addon = tryLoad('local build', env.root);
    if (addon) return { addon, attempts };
  } else {
    attempts.push({ candidate: 'local build', result: 'skipped', detail: `${local} does not exist` });
  }

  // 2. The CUDA package, when a driver is there.
  const cudaPkg = `@facegan-native/${tag}-cuda`;
  const cpuPkg = `@facegan-native/${tag}`;
  const cudaDir = env.packageDir(cudaPkg);
  const cpuDir = env.packageDir(cpuPkg);
  let cudaFallback: NativeAddon | undefined;
  if (cudaDir === undefined) {
    attempts.push({ candidate: cudaPkg, result: 'skipped', detail: 'not installed' });
  } else if (!env.nvidiaDriver) {
    attempts.push({ candidate: cudaPkg, result: 'skipped', detail: 'no NVIDIA driver found' });
  } else {
    const addon = tryLoad(cudaPkg, cudaDir);
    if (addon) {
      const b = addon.availableBackends();
      if (b.backends.includes('cuda') || cpuDir === undefined) return { addon, attempts };
      attempts[attempts.length - 1] = { candidate: cudaPkg, result: 'skipped', detail: `loaded, but CUDA is not usable: ${b.unavailable}` };
      cudaFallback = addon;
    }
  }

  // 3. The CPU package.
  if (cpuDir !== undefined) {
    const addon = tryLoad(cpuPkg, cpuDir);
    if (addon) return { addon, attempts };
  } else {
    attempts.push({ candidate: cpuPkg, result: 'skipped', detail: 'not installed' });
  }
  if (cudaFallback) return { addon: cudaFallback, attempts };

  // 4. Nothing: one message.
  throw new FaceganError('ERR_NATIVE', nativeLoadMessage(env, tag, attempts));
}

export function nativeLoadMessage(env: NativeEnvironment, tag: string, attempts: NativeAttempt[]): string {
  const where = `${tag}${env.libc === 'glibc' ? ' (glibc)' : ''}, Node ${process.versions.node}`;
  const supported = (PREBUILT_PLATFORMS as readonly string[]).includes(tag);
  return [
    `facegan-native could not load its native addon on ${where}. Tried, in order:`,
    ...attempts.map((a, i) => `  ${i + 1}. ${a.candidate}: ${a.result === 'skipped' ? a.detail : `${a.result}: ${a.detail}`}`),
    'To fix it:',
    supported
      ? `  - Reinstall so that npm installs @facegan-native/${tag}: \`npm install facegan-native\` without --omit=optional / --no-optional` +
        ' (a package-lock.json made on another platform can leave it out: delete it and node_modules, then install again).'
      : `  - No prebuilt binary is published for ${tag} (there are for ${PREBUILT_PLATFORMS.join(', ')}).`,
    '  - Or build it from source (needs CMake >= 3.18 and a C++17 compiler):' +
      ' `npm install --save-dev cmake-js` then `npx facegan build-native`.',
    `  (${os.type()} ${os.release()}; details: README "Install".)`,
  ].join('\n');
}

let cached: NativeAddon | undefined;

/** The addon, loaded once. Throws a FaceganError (ERR_NATIVE) listing every attempt when none loads. */
export function native(): NativeAddon {
  if (!cached) cached = loadNative().addon;
  return cached;
}
