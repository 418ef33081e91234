/** loadGenerator(): a path (safetensors, .pkl, .tf.pkl) or a catalogue id → a ready Generator. */
import fs from 'node:fs';
import path from 'node:path';
import { readCheckpoint } from './convert/index.js';
import { FaceganError, invalidOption } from './errors.js';
import { createGenerator, type Generator, type LoadOptions } from './generator.js';
import { defaultModelFile, type NativeTensor } from './native.js';

/** The model that generate() and the CLI use when none is named (the weights package's file). */
export const DEFAULT_MODEL = defaultModelFile();

export interface LoadGeneratorOptions extends LoadOptions {
  /** Called while a catalogue model downloads. */
  onProgress?: (p: { downloadedSize: number; totalSize: number }) => void;
  /** Cancels a catalogue download. */
  signal?: AbortSignal;
}

async function resolveSource(source: string, options: LoadGeneratorOptions): Promise<string> {
  if (fs.existsSync(source)) return source;
  if (/^[a-z0-9][a-z0-9-]*$/.test(source)) {
    const catalog = await import('./catalog.js');
    if (catalog.catalog.some((m) => m.id === source)) {
      return catalog.resolveModel(source, { onProgress: options.onProgress, signal: options.signal });
    }
  }
  throw new FaceganError('ERR_FILE_NOT_FOUND', `No such file or catalogue model: '${source}'`);
}

/**
 * Loads a generator from an official StyleGAN2 checkpoint (.pkl from StyleGAN2-ADA / StyleGAN3,
 * TensorFlow-era .pkl), a converted .safetensors file, or a catalogue id such as 'ffhq'.
 */
export async function loadGenerator(source: string, options: LoadGeneratorOptions = {}): Promise<Generator> {
  if (typeof source !== 'string' || source.length === 0) throw invalidOption('source', 'a file path or a model id', source);
  const file = await resolveSource(source, options);
  const model = await readCheckpoint(file);
  const tensors: NativeTensor[] = [];
  for (const [name, t] of model.tensors) tensors.push({ name, dtype: t.dtype as NativeTensor['dtype'], shape: t.shape, data: t.data });
  const { onProgress: _p, signal: _s, ...engineOptions } = options;
  return createGenerator(
    { config: model.config as unknown as Record<string, unknown>, tensors, source: path.resolve(file), format: model.source, wAvg: model.wAvg },
    engineOptions,
  );
}
