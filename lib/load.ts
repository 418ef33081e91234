/** loadGenerator(): a path (safetensors, .pkl, .tf.pkl) or a catalogue id → a ready Generator. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Float32Tensor, GeneratorConfig } from './convert/index.js';
import { fillComputedWAvg } from './convert/wavg.js';
import { FaceganError, invalidOption, type FaceganErrorCode } from './errors.js';
import { createGenerator, type Generator, type LoadOptions } from './generator.js';
import type { LoadWorkerReply } from './load-worker.js';
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
 * The compiled worker script. From dist/ it is the file next to this one; when this module runs
 * from its TypeScript source (the test runner), the worker is the compiled one in dist/ (a worker
 * thread runs plain JavaScript), so dist/ must be built (npm run build:ts) and current.
 */
function workerScript(): URL {
  if (!import.meta.url.endsWith('.ts')) return new URL('./load-worker.js', import.meta.url);
  const url = new URL('../dist/load-worker.js', import.meta.url);
  const compiled = fileURLToPath(url);
  if (!fs.existsSync(compiled)) throw new Error(`${compiled} is missing: run npm run build:ts (loadGenerator reads checkpoints in that worker)`);
  warnIfStale(compiled);
  return url;
}

let staleChecked = false;
function warnIfStale(compiled: string): void {
  if (staleChecked) return;
  staleChecked = true;
  const lib = path.dirname(fileURLToPath(import.meta.url));
  const dist = path.dirname(compiled);
  const stale: string[] = [];
  for (const rel of ['load-worker.ts', 'errors.ts', 'files.ts', 'safetensors.ts', ...fs.readdirSync(path.join(lib, 'convert')).map((f) => `convert/${f}`)]) {
    if (!rel.endsWith('.ts')) continue;
    const js = path.join(dist, rel.replace(/\.ts$/, '.js'));
    const src = fs.statSync(path.join(lib, rel)).mtimeMs;
    if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < src) stale.push(rel);
  }
  if (stale.length > 0) console.warn(`facegan: dist/ is older than lib/${stale.join(', lib/')}: the checkpoint reader worker runs the old code (npm run build:ts)`);
}

/**
 * Reads a checkpoint in a worker thread (lib/load-worker.ts): the main thread's event loop keeps
 * running while a pickle is parsed or a file's weights are checked. The tensors come back
 * transferred, not copied; a facegan file's F16 / BF16 tensors as stored.
 */
function readInWorker(file: string): Promise<Extract<LoadWorkerReply, { ok: true }>> {
  const trace = new Error();
  return new Promise((resolve, reject) => {
    // The worker inherits the process's Node flags, but refuses --input-type (a program run as
    // `node --input-type=module -e ...` would fail with ERR_INPUT_TYPE_NOT_ALLOWED): then it gets
    // none (an explicit list may not hold V8 flags such as --max-old-space-size either).
    const execArgv = process.execArgv.some((a) => a.startsWith('--input-type')) ? [] : undefined;
    const worker = new Worker(workerScript(), { workerData: { file }, ...(execArgv ? { execArgv } : {}) });
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      e.stack = `${e.name}: ${e.message}\n${trace.stack?.split('\n').slice(1).join('\n') ?? ''}`;
      reject(e);
    };
    worker.once('message', (reply: LoadWorkerReply) => {
      if (reply.ok) {
        settled = true;
        resolve(reply);
      } else {
        fail(reply.code === undefined ? new Error(reply.message) : new FaceganError(reply.code as FaceganErrorCode, reply.message));
      }
      void worker.terminate();
    });
    worker.once('error', (err: Error) => fail(new FaceganError('ERR_CORRUPT_FILE', `Could not read the checkpoint: its reader failed (${err.message})`, { cause: err })));
    worker.once('exit', (code) => fail(new FaceganError('ERR_CORRUPT_FILE', `Could not read the checkpoint: its reader stopped (exit code ${code})`)));
  });
}

/**
 * Loads a generator from an official StyleGAN2 checkpoint (.pkl from StyleGAN2-ADA / StyleGAN3,
 * TensorFlow-era .pkl), a converted .safetensors file, or a catalogue id such as 'ffhq'.
 * The file is read and checked in a worker thread and the engine is built on the addon's own
 * thread, so the event loop is never blocked for long; float16 / bfloat16 weights reach the
 * engine as stored, which widens them once.
 */
export async function loadGenerator(source: string, options: LoadGeneratorOptions = {}): Promise<Generator> {
  if (typeof source !== 'string' || source.length === 0) throw invalidOption('source', 'a file path or a model id', source);
  const file = await resolveSource(source, options);
  const model = await readInWorker(file);
  if (model.wAvg?.kind === 'computed') {
    // A checkpoint without an average w (rosinality train.py): computed here, with the engine
    // (async, off the main thread), not in the reader worker, which never loads the addon.
    const tensors = new Map(model.tensors.map((t) => [t.name, t as Float32Tensor]));
    await fillComputedWAvg({ config: model.config as GeneratorConfig, tensors, wAvg: model.wAvg });
    model.tensors = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.data }));
  }
  const tensors: NativeTensor[] = model.tensors;
  const { onProgress: _p, signal: _s, ...engineOptions } = options;
  return createGenerator(
    { config: model.config as Record<string, unknown>, tensors, source: path.resolve(file), format: model.source, wAvg: model.wAvg },
    engineOptions,
  );
}
