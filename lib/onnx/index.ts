/**
 * ONNX export: a generator's weights → standard ONNX model(s) built by this project (protobuf
 * written by lib/onnx/proto.ts; no ONNX or protobuf library), runnable by any ONNX runtime.
 *
 *   await exportOnnx('ffhq.safetensors', 'ffhq.onnx');                     // z, psi → img
 *   await exportOnnx('ffhq.safetensors', 'ffhq.onnx', { graphs: 'two' });  // ffhq.mapping.onnx + ffhq.synthesis.onnx
 *
 * Graphs (N is a dynamic batch dimension):
 * - 'one':       inputs `z` [N, z_dim] (+ `c` [N, c_dim] for a conditional model), `psi` (a
 *                float scalar, shape []) → output `img` [N, C, H, W] float32, the unclamped
 *                synthesis output (roughly in [−1, 1]; 8-bit is clamp(img·127.5 + 128, 0, 255)).
 * - 'two':       `NAME.mapping.onnx`: z[, c], psi → `ws` [N, num_ws, w_dim] (truncated);
 *                `NAME.synthesis.onnx`: `ws` → `img`.
 * Noise is baked in: 'const' (the stored noise maps, what generate.py uses; default) or 'none'.
 * ProGAN (config.arch 'progan', docs/progan.md): one graph, `z` [N, z_dim] → `img` [N, C, H, W],
 * the toRGB output v before any clip (pixels: round(clamp(v·output.scale + output.offset, 0, 255))).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { FaceganError, invalidOption } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { readCheckpoint, validateConfig, validateTensorShapes, type StyleGAN2Config } from '../convert/index.js';
import { checkModel, decodeModel, encodeModel, irVersionForOpset, type DecodedModel, type OnnxModel } from './model.js';
import { stylegan2ToOnnx, type OnnxNoiseMode } from './stylegan2.js';
import { proganToOnnx } from './progan.js';
import type { ProganConfig } from '../convert/tfjs.js';

export { checkModel, decodeModel, encodeModel, irVersionForOpset, type DecodedModel, type OnnxModel } from './model.js';

/** The ai.onnx opsets the exporter writes. */
export const MIN_OPSET = 13;
export const MAX_OPSET = 23;
export const DEFAULT_OPSET = 17;

/** Every op an exported graph may contain (all in the default ai.onnx domain). */
export const ONNX_OPS: ReadonlySet<string> = new Set([
  'Add', 'Clip', 'Concat', 'Conv', 'ConvTranspose', 'Expand', 'Gather', 'Gemm', 'Identity', 'LeakyRelu',
  'MatMul', 'Mul', 'Reciprocal', 'ReduceMean', 'Reshape', 'Resize', 'Sqrt', 'Sub', 'Unsqueeze',
]);

/**
 * A generator in memory: what `readCheckpoint` returns for StyleGAN2, or what
 * `readTfjsGraphModel` returns for ProGAN (only `config` and `tensors` are used).
 */
export interface OnnxSourceModel {
  config: StyleGAN2Config | ProganConfig;
  tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>;
}

export interface ExportOnnxOptions {
  /** 'one' (default): one graph z → img; 'two': mapping and synthesis graphs in two files. */
  graphs?: 'one' | 'two';
  /** ai.onnx opset, MIN_OPSET…MAX_OPSET (default 17; the IR version follows it). */
  opset?: number;
  /** Noise baked into the graph: 'const' (default) or 'none'. */
  noiseMode?: OnnxNoiseMode;
  /** Truncate only the first K rows of ws (default null: every row). */
  truncationCutoff?: number | null;
}

/** The model bytes: `{ model }` for graphs 'one', `{ mapping, synthesis }` for 'two'. */
export type OnnxBytes = { graphs: 'one'; model: Uint8Array } | { graphs: 'two'; mapping: Uint8Array; synthesis: Uint8Array };

export interface ExportOnnxResult {
  graphs: 'one' | 'two';
  /** The files written: [model] or [mapping, synthesis]. */
  files: string[];
  opset: number;
  irVersion: number;
  /** Total bytes written. */
  bytes: number;
}

function producerVersion(): string {
  try {
    const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
    return String((JSON.parse(readFileSync(pkg, 'utf8')) as { version?: unknown }).version ?? '0');
  } catch {
    return '0';
  }
}

interface CheckedOptions {
  graphs: 'one' | 'two';
  opset: number;
  noiseMode: OnnxNoiseMode;
  truncationCutoff: number | null;
}

function checkOptions(options: ExportOnnxOptions | undefined): CheckedOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') throw invalidOption('options', 'an object', options);
  const graphs = options.graphs ?? 'one';
  if (graphs !== 'one' && graphs !== 'two') throw invalidOption('graphs', "'one' or 'two'", graphs);
  const opset = options.opset ?? DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) throw invalidOption('opset', `an integer in [${MIN_OPSET}, ${MAX_OPSET}]`, opset);
  const noiseMode = options.noiseMode ?? 'const';
  if (noiseMode !== 'const' && noiseMode !== 'none') throw invalidOption('noiseMode', "'const' or 'none' (random noise cannot be exported)", noiseMode);
  const cutoff = options.truncationCutoff ?? null;
  if (cutoff !== null && (!Number.isInteger(cutoff) || cutoff < 0 || cutoff > 1024)) throw invalidOption('truncationCutoff', 'an integer in [0, 1024] or null', cutoff);
  return { graphs, opset, noiseMode, truncationCutoff: cutoff };
}

function checkTensorData(model: OnnxSourceModel): void {
  for (const [name, t] of model.tensors) {
    if (!(t.data instanceof Float32Array) || t.data.length !== t.shape.reduce((a: number, b: number) => a * b, 1)) {
      throw invalidOption(`tensors.get('${name}').data`, 'a Float32Array matching its shape', t.data);
    }
  }
}

/**
 * Builds the ONNX model objects (before encoding). StyleGAN2: as described above. ProGAN: one
 * graph only, input `z` → `img` (the toRGB output before any clip; no psi, no noise).
 */
export function buildOnnxModels(model: OnnxSourceModel, options?: ExportOnnxOptions): { one: OnnxModel } | { mapping: OnnxModel; synthesis: OnnxModel } {
  const opts = checkOptions(options);
  if (model === null || typeof model !== 'object' || !(model.tensors instanceof Map) || model.config === null || typeof model.config !== 'object') {
    throw invalidOption('model', 'a model path or { config, tensors: Map }', model);
  }
  if ((model.config as { arch?: unknown }).arch === 'progan') {
    if (opts.graphs === 'two') throw invalidOption('graphs', "'one' for a ProGAN model (it has no mapping network)", opts.graphs);
    checkTensorData(model);
    return { one: proganToOnnx(model.config as ProganConfig, model.tensors, { opset: opts.opset, producerVersion: producerVersion() }) };
  }
  const config = validateConfig(model.config);
  validateTensorShapes(config, model.tensors);
  checkTensorData(model);
  return stylegan2ToOnnx(config, model.tensors, { ...opts, producerVersion: producerVersion() }, opts.graphs);
}

/** Reads a model path: anything readCheckpoint reads (a TensorFlow.js ProGAN graph model included). */
async function readModel(src: string): Promise<OnnxSourceModel> {
  if (typeof src !== 'string' || src.length === 0) throw invalidOption('model', 'a file path', src);
  return readCheckpoint(src);
}

/** Builds and encodes the ONNX model(s) in memory (pass the bytes to ort.InferenceSession.create). */
export function buildOnnx(model: OnnxSourceModel, options?: ExportOnnxOptions): OnnxBytes {
  const built = buildOnnxModels(model, options);
  if ('one' in built) return { graphs: 'one', model: encodeModel(built.one) };
  return { graphs: 'two', mapping: encodeModel(built.mapping), synthesis: encodeModel(built.synthesis) };
}

/** The two file names of a two-graph export: `x.onnx` → `x.mapping.onnx`, `x.synthesis.onnx`. */
export function twoGraphPaths(dst: string): { mapping: string; synthesis: string } {
  const base = dst.toLowerCase().endsWith('.onnx') ? dst.slice(0, -5) : dst;
  return { mapping: `${base}.mapping.onnx`, synthesis: `${base}.synthesis.onnx` };
}

/**
 * Exports a generator (a path to anything `readCheckpoint` reads, a TensorFlow.js ProGAN graph
 * model directory or model.json, or `{ config, tensors }`) to
 * ONNX at `dst` ('one') or at `dst` minus `.onnx` plus `.mapping.onnx` / `.synthesis.onnx` ('two').
 * @throws FaceganError ERR_INVALID_OPTION, the errors of readCheckpoint, ERR_FILE_NOT_FOUND when a
 *   file cannot be written.
 */
export async function exportOnnx(model: OnnxSourceModel | string, dst: string, options?: ExportOnnxOptions): Promise<ExportOnnxResult> {
  if (typeof dst !== 'string' || dst.length === 0) throw invalidOption('dst', 'a file path', dst);
  const opts = checkOptions(options);
  const source = typeof model === 'string' ? await readModel(model) : model;
  const built = buildOnnx(source, opts);
  const files: string[] = [];
  let bytes = 0;
  if (built.graphs === 'one') {
    await writeFileAtomic(dst, built.model);
    files.push(dst);
    bytes = built.model.length;
  } else {
    const p = twoGraphPaths(dst);
    await writeFileAtomic(p.mapping, built.mapping);
    await writeFileAtomic(p.synthesis, built.synthesis);
    files.push(p.mapping, p.synthesis);
    bytes = built.mapping.length + built.synthesis.length;
  }
  return { graphs: opts.graphs, files, opset: opts.opset, irVersion: irVersionForOpset(opts.opset), bytes };
}

/**
 * Reads back and checks an exported file (or bytes): protobuf well-formed, IR version and opset
 * present, graph structurally sound, only {@link ONNX_OPS}. Returns the decoded model.
 * @throws FaceganError ERR_CORRUPT_FILE listing the problems.
 */
export function validateOnnx(bytes: Uint8Array): DecodedModel {
  let decoded: DecodedModel;
  try {
    decoded = decodeModel(bytes);
  } catch (err) {
    throw new FaceganError('ERR_CORRUPT_FILE', `Not a well-formed ONNX protobuf: ${(err as Error).message}`, { cause: err });
  }
  const problems = checkModel(decoded, ONNX_OPS);
  if (problems.length > 0) throw new FaceganError('ERR_CORRUPT_FILE', `Invalid ONNX model:\n  ${problems.slice(0, 20).join('\n  ')}`);
  return decoded;
}

export const EXPORT_ONNX_USAGE = `Usage: facegan export-onnx MODEL OUT.onnx [--graphs one|two] [--opset N] [--noise const|none] [--trunc-cutoff K]
  --graphs two writes OUT.mapping.onnx (z[, c], psi → ws) and OUT.synthesis.onnx (ws → img).`;

/**
 * The `facegan export-onnx MODEL OUT.onnx [...]` command: `args` are the words after
 * `export-onnx`. Prints the files written; returns them.
 */
export async function exportOnnxCli(args: string[], log: (line: string) => void = console.log): Promise<ExportOnnxResult> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      graphs: { type: 'string' },
      opset: { type: 'string' },
      noise: { type: 'string' },
      'trunc-cutoff': { type: 'string' },
    },
  });
  if (positionals.length !== 2) throw new FaceganError('ERR_INVALID_OPTION', `export-onnx needs MODEL and OUT\n${EXPORT_ONNX_USAGE}`);
  const int = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new FaceganError('ERR_INVALID_OPTION', `Expected an integer for --${name} but received '${v}'`);
    return Number(v);
  };
  const result = await exportOnnx(positionals[0]!, positionals[1]!, {
    graphs: values.graphs as 'one' | 'two' | undefined,
    opset: int('opset', values.opset),
    noiseMode: values.noise as OnnxNoiseMode | undefined,
    truncationCutoff: int('trunc-cutoff', values['trunc-cutoff']),
  });
  for (const f of result.files) log(`wrote ${f}`);
  return result;
}
