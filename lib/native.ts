/**
 * The typed shape of the raw addon (native/binding/addon.cc) and the one place it is loaded.
 *
 * Load order: a local build (build/Release) → the optional CUDA package → the CPU prebuild
 * shipped in prebuilds/. If all fail, one error lists every attempt and the command that fixes it.
 */
import { createRequire } from 'node:module';
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

/** The engine's calls copy their inputs before they return the Promise. */
export interface NativeGenerator {
  info(): NativeInfo;
  mapping(z: Float32Array, c: Float32Array | null, n: number, psi: number, cutoff: number, cancel?: NativeCancelToken): Promise<Float32Array>;
  synthesis(
    ws: Float32Array,
    n: number,
    noiseMode: 'const' | 'random' | 'none',
    noiseSeed: number,
    imageOffset: number,
    wantFloat: boolean,
    wantUint8: boolean,
    cancel?: NativeCancelToken,
  ): Promise<{ float32?: Float32Array; uint8?: Uint8Array }>;
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

let cached: NativeAddon | undefined;

/** The addon, loaded once. Throws a FaceganError listing every attempt when none loads. */
export function native(): NativeAddon {
  if (cached) return cached;
  const attempts: string[] = [];
  const tryLoad = (label: string, load: () => unknown): NativeAddon | undefined => {
    try {
      return load() as NativeAddon;
    } catch (err) {
      attempts.push(`${label}: ${(err as Error).message.split('\n')[0]}`);
      return undefined;
    }
  };
  const local = path.join(packageRoot, 'build', 'Release', 'facegan.node');
  cached =
    (fs.existsSync(local) ? tryLoad(`local build ${local}`, () => require(local)) : undefined) ??
    tryLoad('CUDA package @facegan-native/linux-x64-cuda', () => {
      const dir = path.dirname(require.resolve(`@facegan-native/${process.platform}-${process.arch}-cuda/package.json`));
      return require('node-gyp-build')(dir);
    }) ??
    tryLoad(`prebuild in ${path.join(packageRoot, 'prebuilds')}`, () => require('node-gyp-build')(packageRoot));
  if (!cached) {
    throw new FaceganError(
      'ERR_NATIVE',
      `Could not load the facegan-native addon for ${process.platform}-${process.arch} (Node ${process.versions.node}).\n` +
        attempts.map((a) => `  - ${a}`).join('\n') +
        `\nBuild it from source with: npm run build:native (needs CMake and a C++17 compiler).`,
    );
  }
  return cached;
}
