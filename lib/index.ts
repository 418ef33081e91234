/**
 * facegan-native: "this person does not exist" inside a Node.js program.
 *
 *   import { generate } from 'facegan-native';
 *   const face = await generate({ seed: 42 });  // { width, height, channels: 3, data: Uint8Array }
 */
import { checkObject } from './options.js';
import { DEFAULT_MODEL, loadGenerator, type LoadGeneratorOptions } from './load.js';
import type { Generator, GenerateOptions, Image } from './generator.js';

export { FaceganError, type FaceganErrorCode, type ServiceErrorCode } from './errors.js';
export {
  Generator,
  availableBackends,
  type Device,
  type FloatImage,
  type GenerateOptions,
  type GeneratorInfo,
  type Image,
  type LatentOptions,
  type LoadOptions,
  type NoiseMode,
  type OutputKind,
  type Precision,
  type RenderOptions,
} from './generator.js';
export { DEFAULT_MODEL, loadGenerator, type LoadGeneratorOptions } from './load.js';
export { convertCheckpoint, readCheckpoint } from './convert/index.js';
export { encodeAnimation, encodeImage, saveImage, type AnimationOptions, type EncodeOptions, type ImageFormat } from './image.js';
export {
  interpolateVectors,
  styleMixGrid,
  tileImages,
  type Frame,
  type InterpolateOptions,
  type InterpolationMethod,
  type InterpolationSpace,
  type StyleMixOptions,
} from './interpolate.js';
export { DIGITAL_SOURCE_TYPE, describeProvenance, type ProvenanceInfo } from './provenance.js';
export {
  catalog,
  cachedModel,
  findModel,
  licenceNotice,
  pullModel,
  resolveModel,
  type CatalogEntry,
  type PullOptions,
} from './catalog.js';
export { downloadFile, progressBar, type DownloadOptions, type DownloadProgress } from './download.js';
export { cacheDir } from './paths.js';
export { createFaceHandler, createFaceServer, type FaceHandlerOptions, type FaceServer, type FaceServerOptions } from './server.js';

export interface QuickGenerateOptions extends Omit<GenerateOptions, 'seeds' | 'output'> {
  /** A model path or catalogue id (default: the embedded ProGAN-128 CelebA model). */
  model?: string;
  /** Options for loading the model the first time it is used. */
  load?: LoadGeneratorOptions;
}

const loaded = new Map<string, Promise<Generator>>();

/** The generator for `model`, loaded once per process and kept. */
export function getGenerator(model: string = DEFAULT_MODEL, options?: LoadGeneratorOptions): Promise<Generator> {
  const key = `${model}\0${JSON.stringify(options ?? {})}`;
  let g = loaded.get(key);
  if (!g) {
    g = loadGenerator(model, options);
    loaded.set(key, g);
    g.catch(() => loaded.delete(key));
  }
  return g;
}

/** One face. Without a seed, a random one (a new face on every call). */
export async function generate(options: QuickGenerateOptions = {}): Promise<Image> {
  const { model, load, ...rest } = checkObject('options', options) as QuickGenerateOptions;
  const gen = await getGenerator(model ?? DEFAULT_MODEL, load);
  const seed = rest.seed === undefined && rest.z === undefined ? Math.floor(Math.random() * 2 ** 32) : rest.seed;
  const [image] = await gen.generate({ ...rest, seed, output: 'uint8' });
  return image;
}
