/**
 * Reads a TensorFlow.js graph model (`model.json` + binary weight shards) of a Progressive GAN
 * generator — TF-Hub `google/progan-128/1` as exported by `tensorflowjs_converter` — and maps it to
 * the canonical facegan ProGAN tensors and config described in docs/progan.md.
 *
 * Nothing is executed: the graph is pattern-matched op by op. Every node's op must be one this
 * reader understands and every node on the path from the latent to the image must fit the ProGAN
 * structure (pixel norm → 4×4 dense → [nearest ×2 → conv 3×3]… → 1×1 toRGB → clip); anything else
 * is refused with `ERR_UNSUPPORTED_ARCH` naming the node.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FaceganError } from '../errors.js';
import { readRegularFile } from '../files.js';

/** The configuration of a ProGAN generator (stored as `__metadata__.config`, see docs/progan.md). */
export interface ProganConfig {
  arch: 'progan';
  z_dim: number;
  img_resolution: number;
  img_channels: number;
  /** Feature maps per resolution: channels[i] is the width at resolution 4·2^i (4, 8, …, img_resolution). */
  channels: number[];
  /** Leaky ReLU: f(x) = max(x, lrelu_slope·x). */
  lrelu_slope: number;
  /** Pixel norm: x · 1/sqrt(mean_c(x²) + pixelnorm_eps), over channels, per pixel. */
  pixelnorm_eps: number;
  /** The latent is pixel-normalised before the dense layer. */
  normalize_latent: boolean;
  /** Upsampling between resolutions. */
  upsample: 'nearest';
  /**
   * The run-time weight gain (equalised learning rate). The graph has the He constants already
   * multiplied into its filters, so the stored weights are the effective ones and this is 1.
   */
  weight_gain: number;
  /**
   * How the toRGB output v (1×1 conv + bias, before any clip) becomes pixels:
   * pixel = round(clamp(v·scale + offset, 0, 255)). For the TF-Hub model this is
   * (v + 0.5)·127.5: v is the generator's [−1, 1] image shifted by +0.5 (see docs/progan.md).
   * `tfhub_clip` is the clip the published graph applies last (its output is clip(v, 0, 1));
   * facegan does not apply it to images — it is recorded to reproduce the module exactly.
   */
  output: { tfhub_clip: [number, number]; scale: number; offset: number };
}

/** One canonical tensor: float32, C order. */
export interface ProganTensor {
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

export interface TfjsGraphModel {
  config: ProganConfig;
  /** Canonical ProGAN tensors (docs/progan.md), in network order. */
  tensors: Map<string, ProganTensor>;
}

// ---------------------------------------------------------------------------------------------
// Graph JSON shapes (only what we read).

interface AttrValue {
  b?: boolean;
  s?: string;
  f?: number;
  i?: string | number;
  type?: string;
  list?: { i?: (string | number)[]; s?: string[] };
  shape?: unknown;
  tensor?: unknown;
}

interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, AttrValue>;
}

interface WeightEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype?: string; scale?: number; min?: number; original_dtype?: string };
}

interface WeightGroup {
  paths: string[];
  weights: WeightEntry[];
}

/** A decoded constant. */
interface ConstValue {
  shape: number[];
  data: Float32Array | Int32Array;
}

/** The ops the reader understands; any other op anywhere in the graph is refused. */
export const SUPPORTED_TFJS_OPS: ReadonlySet<string> = new Set([
  'Const', 'Placeholder', 'Identity',
  'Square', 'Mean', 'Add', 'AddV2', 'BiasAdd', 'Rsqrt', 'Mul',
  'Reshape', 'Pad', 'Conv2D', 'Maximum', 'Minimum', 'LeakyRelu',
  'Tile', 'BatchToSpaceND',
]);

function unsupported(message: string): FaceganError {
  return new FaceganError('ERR_UNSUPPORTED_ARCH', `Unsupported TensorFlow.js graph: ${message}`);
}

function unknownFormat(message: string): FaceganError {
  return new FaceganError('ERR_UNKNOWN_FORMAT', `Not a readable TensorFlow.js graph model: ${message}`);
}

/** The largest model.json read (the graph description; the weights are in the shards). */
const MAX_MODEL_JSON_BYTES = 64 * 2 ** 20;

async function readOrThrow(file: string, what: string, limit?: number): Promise<Buffer> {
  return readRegularFile(file, what, limit);
}

/** Resolves a directory or a model.json path to the model.json path. */
async function resolveModelJson(p: string): Promise<string> {
  if (typeof p !== 'string' || p.length === 0) {
    throw new FaceganError('ERR_INVALID_OPTION', `Expected a directory or model.json path but received ${JSON.stringify(p)}`);
  }
  let st;
  try {
    st = await stat(p);
  } catch (err) {
    throw new FaceganError('ERR_FILE_NOT_FOUND', `No such file or directory: ${p}`, { cause: err });
  }
  return st.isDirectory() ? path.join(p, 'model.json') : p;
}

// ---------------------------------------------------------------------------------------------
// Weights.

const HALF_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    const sign = h & 0x8000 ? -1 : 1;
    t[h] = exp === 0 ? sign * frac * 2 ** -24 : exp === 0x1f ? (frac === 0 ? sign * Infinity : NaN) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return t;
})();

/** Bytes one element of `w` takes in the shards, and how to decode it. */
function storage(w: WeightEntry): { bytes: number; kind: 'f32' | 'i32' | 'f16' } {
  const q = w.quantization;
  if (q !== undefined && q !== null) {
    if (q.dtype === 'float16' && (w.dtype === 'float32' || w.dtype === 'float16')) return { bytes: 2, kind: 'f16' };
    throw unknownFormat(
      `weight '${w.name}' is quantized to ${JSON.stringify(q.dtype)} (${w.dtype}); only float32 and float16 weights are supported — re-export the model without --quantize_uint8/--quantize_uint16`,
    );
  }
  if (w.dtype === 'float32') return { bytes: 4, kind: 'f32' };
  if (w.dtype === 'int32') return { bytes: 4, kind: 'i32' };
  if (w.dtype === 'float16') return { bytes: 2, kind: 'f16' };
  throw unknownFormat(`weight '${w.name}' has dtype ${JSON.stringify(w.dtype)}; only float32, float16 and int32 are supported`);
}

async function readWeights(dir: string, groups: WeightGroup[]): Promise<Map<string, ConstValue>> {
  const out = new Map<string, ConstValue>();
  for (const [gi, g] of groups.entries()) {
    if (g === null || typeof g !== 'object' || !Array.isArray(g.paths) || !Array.isArray(g.weights)) {
      throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt TensorFlow.js model: weightsManifest[${gi}] has no paths/weights lists`);
    }
    const shards: Buffer[] = [];
    for (const p of g.paths) {
      if (typeof p !== 'string' || p.includes('\0') || path.isAbsolute(p) || p.split(/[\\/]/).includes('..')) {
        throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt TensorFlow.js model: weight shard path ${JSON.stringify(p)} is not a plain relative path`);
      }
      shards.push(await readOrThrow(path.join(dir, p), 'weight shard'));
    }
    const buf = shards.length === 1 ? shards[0]! : Buffer.concat(shards);
    let offset = 0;
    for (const w of g.weights) {
      if (w === null || typeof w !== 'object' || typeof w.name !== 'string' || !Array.isArray(w.shape)
        || !w.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt TensorFlow.js model: a weightsManifest entry of group ${gi} has no valid name/shape`);
      }
      const { bytes, kind } = storage(w);
      const count = w.shape.reduce((a, b) => a * b, 1);
      const end = offset + count * bytes;
      if (end > buf.length) {
        throw new FaceganError(
          'ERR_TRUNCATED_FILE',
          `Truncated TensorFlow.js weights: '${w.name}' needs bytes [${offset}, ${end}) of weight group ${gi} but its ${g.paths.length} shard(s) hold only ${buf.length} bytes`,
        );
      }
      const bytesView = buf.subarray(offset, end);
      const aligned = new Uint8Array(bytesView); // copy: aligned, independent of the shard buffers
      let data: Float32Array | Int32Array;
      if (kind === 'f32') data = new Float32Array(aligned.buffer, 0, count);
      else if (kind === 'i32') data = new Int32Array(aligned.buffer, 0, count);
      else {
        const bits = new Uint16Array(aligned.buffer, 0, count);
        data = new Float32Array(count);
        for (let i = 0; i < count; i++) data[i] = HALF_TABLE[bits[i]!]!;
      }
      if (out.has(w.name)) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt TensorFlow.js model: weight '${w.name}' is listed twice`);
      out.set(w.name, { shape: w.shape.slice(), data });
      offset = end;
    }
    if (offset < buf.length) {
      throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt TensorFlow.js model: weight group ${gi} has ${buf.length - offset} bytes more than its manifest describes`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Graph pattern matching.

/** Shortest decimal that rounds to the same float32 (0.20000000298023224 → 0.2). */
function f32Short(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const y = Number(f.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return f;
}

class Graph {
  readonly nodes = new Map<string, GraphNode>();

  constructor(list: GraphNode[], readonly weights: Map<string, ConstValue>) {
    for (const n of list) {
      if (n === null || typeof n !== 'object' || typeof n.name !== 'string' || typeof n.op !== 'string') {
        throw new FaceganError('ERR_CORRUPT_FILE', 'Corrupt TensorFlow.js model: a modelTopology node has no name/op');
      }
      if (this.nodes.has(n.name)) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt TensorFlow.js model: node '${n.name}' is defined twice`);
      this.nodes.set(n.name, n);
    }
    for (const n of list) {
      if (!SUPPORTED_TFJS_OPS.has(n.op)) {
        throw unsupported(`node '${n.name}' has op '${n.op}', which the ProGAN reader does not understand (supported: ${[...SUPPORTED_TFJS_OPS].join(', ')})`);
      }
    }
  }

  /** The node producing `ref` (an input string like `name`, `name:0`), skipping Identity ops. */
  node(ref: string, from: string): GraphNode {
    let name = ref.startsWith('^') ? ref.slice(1) : ref;
    const colon = name.lastIndexOf(':');
    if (colon > 0 && /^\d+$/.test(name.slice(colon + 1))) {
      if (name.slice(colon + 1) !== '0') throw unsupported(`node '${from}' reads output ${name.slice(colon + 1)} of '${name.slice(0, colon)}'`);
      name = name.slice(0, colon);
    }
    let n = this.nodes.get(name);
    if (n === undefined) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt TensorFlow.js model: node '${from}' reads '${ref}', which is not in the graph`);
    while (n.op === 'Identity') n = this.node(this.inputs(n, 1)[0]!, n.name);
    return n;
  }

  /** The data inputs of `n` (control inputs dropped); exactly `count` of them. */
  inputs(n: GraphNode, count: number): string[] {
    const ins = (n.input ?? []).filter((s) => !s.startsWith('^'));
    if (ins.length !== count) throw unsupported(`node '${n.name}' (${n.op}) has ${ins.length} inputs, expected ${count}`);
    return ins;
  }

  expectOp(n: GraphNode, ops: string[], what: string): void {
    if (!ops.includes(n.op)) throw unsupported(`expected ${what} (${ops.join('/')}) at node '${n.name}' but found op '${n.op}'`);
  }

  /** The value of a Const node. */
  constant(n: GraphNode, what: string): ConstValue {
    if (n.op !== 'Const') throw unsupported(`expected a constant ${what} at node '${n.name}' but found op '${n.op}'`);
    const v = this.weights.get(n.name);
    if (v === undefined) throw new FaceganError('ERR_CORRUPT_FILE', `Corrupt TensorFlow.js model: constant '${n.name}' has no entry in the weights manifest`);
    return v;
  }

  scalar(n: GraphNode, what: string): number {
    const v = this.constant(n, what);
    if (v.data.length !== 1) throw unsupported(`constant '${n.name}' (${what}) has shape [${v.shape.join(', ')}], expected a scalar`);
    return v.data[0]!;
  }

  ints(n: GraphNode, what: string): number[] {
    return Array.from(this.constant(n, what).data);
  }

  attrString(n: GraphNode, key: string): string | undefined {
    const s = n.attr?.[key]?.s;
    return s === undefined ? undefined : Buffer.from(s, 'base64').toString('latin1');
  }

  attrInts(n: GraphNode, key: string): number[] | undefined {
    const l = n.attr?.[key]?.list;
    if (l === undefined) return undefined;
    return (l.i ?? []).map((v) => Number(v));
  }
}

function sameList(a: number[] | undefined, b: number[]): boolean {
  return a !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);
}

/** x · rsqrt(mean(x², axis=-1, keepdims) + eps): returns { x, eps }. */
function matchPixelNorm(g: Graph, n: GraphNode): { x: GraphNode; eps: number } {
  g.expectOp(n, ['Mul'], 'pixel norm x·rsqrt(mean(x²)+eps)');
  const [a, b] = g.inputs(n, 2).map((r) => g.node(r, n.name)) as [GraphNode, GraphNode];
  const [x, rs] = b.op === 'Rsqrt' ? [a, b] : a.op === 'Rsqrt' ? [b, a] : [undefined, undefined];
  if (x === undefined || rs === undefined) throw unsupported(`node '${n.name}' is a Mul but not a pixel norm (no Rsqrt input)`);
  const add = g.node(g.inputs(rs, 1)[0]!, rs.name);
  g.expectOp(add, ['Add', 'AddV2'], 'pixel norm epsilon add');
  const [p, q] = g.inputs(add, 2).map((r) => g.node(r, add.name)) as [GraphNode, GraphNode];
  const [mean, epsNode] = p.op === 'Mean' ? [p, q] : [q, p];
  g.expectOp(mean, ['Mean'], 'pixel norm channel mean');
  const eps = g.scalar(epsNode, 'pixel norm epsilon');
  const [sqRef, axRef] = g.inputs(mean, 2) as [string, string];
  const axes = g.ints(g.node(axRef, mean.name), 'reduction axes');
  if (!(axes.length === 1 && (axes[0] === -1 || axes[0] === 3))) throw unsupported(`pixel norm mean '${mean.name}' reduces axes [${axes.join(', ')}], expected the channel axis`);
  if (mean.attr?.keep_dims?.b !== true) throw unsupported(`pixel norm mean '${mean.name}' does not keep dims`);
  const sq = g.node(sqRef, mean.name);
  g.expectOp(sq, ['Square'], 'pixel norm square');
  if (g.node(g.inputs(sq, 1)[0]!, sq.name) !== x) throw unsupported(`pixel norm at '${n.name}' squares a different tensor than it scales`);
  return { x, eps };
}

/** max(x, alpha·x) (or a LeakyRelu op): returns { x, alpha }. */
function matchLrelu(g: Graph, n: GraphNode): { x: GraphNode; alpha: number } {
  if (n.op === 'LeakyRelu') {
    const alpha = n.attr?.alpha?.f;
    if (typeof alpha !== 'number') throw unsupported(`LeakyRelu '${n.name}' has no alpha`);
    return { x: g.node(g.inputs(n, 1)[0]!, n.name), alpha };
  }
  g.expectOp(n, ['Maximum'], 'leaky ReLU max(x, alpha·x)');
  const [a, b] = g.inputs(n, 2).map((r) => g.node(r, n.name)) as [GraphNode, GraphNode];
  const [mul, x] = a.op === 'Mul' ? [a, b] : [b, a];
  g.expectOp(mul, ['Mul'], 'leaky ReLU alpha·x');
  const [c, d] = g.inputs(mul, 2).map((r) => g.node(r, mul.name)) as [GraphNode, GraphNode];
  const [alphaNode, x2] = c.op === 'Const' ? [c, d] : [d, c];
  if (x2 !== x) throw unsupported(`leaky ReLU '${n.name}' scales a different tensor than it compares`);
  const alpha = g.scalar(alphaNode, 'leaky ReLU slope');
  if (!(alpha > 0 && alpha < 1)) throw unsupported(`leaky ReLU '${n.name}' has slope ${alpha}`);
  return { x, alpha };
}

/** x + bias[C] (Add / AddV2 / BiasAdd with a rank-1 constant). */
function matchBias(g: Graph, n: GraphNode): { x: GraphNode; bias: ConstValue; biasNode: GraphNode } {
  g.expectOp(n, ['Add', 'AddV2', 'BiasAdd'], 'bias add');
  const [a, b] = g.inputs(n, 2).map((r) => g.node(r, n.name)) as [GraphNode, GraphNode];
  const [biasNode, x] = b.op === 'Const' ? [b, a] : [a, b];
  const bias = g.constant(biasNode, 'bias');
  if (bias.shape.length !== 1) throw unsupported(`bias '${biasNode.name}' has shape [${bias.shape.join(', ')}], expected [C]`);
  return { x, bias, biasNode };
}

/** Conv2D NHWC stride 1 dilation 1 with a constant HWIO filter. */
function matchConv(g: Graph, n: GraphNode): { x: GraphNode; filter: ConstValue; padding: string } {
  g.expectOp(n, ['Conv2D'], 'convolution');
  const [xr, wr] = g.inputs(n, 2) as [string, string];
  const fmt = g.attrString(n, 'data_format') ?? 'NHWC';
  if (fmt !== 'NHWC') throw unsupported(`Conv2D '${n.name}' has data_format ${fmt}`);
  if (!sameList(g.attrInts(n, 'strides'), [1, 1, 1, 1])) throw unsupported(`Conv2D '${n.name}' has strides other than 1`);
  const dil = g.attrInts(n, 'dilations');
  if (dil !== undefined && !sameList(dil, [1, 1, 1, 1])) throw unsupported(`Conv2D '${n.name}' is dilated`);
  const padding = g.attrString(n, 'padding') ?? '';
  if (padding !== 'SAME' && padding !== 'VALID') throw unsupported(`Conv2D '${n.name}' has padding ${JSON.stringify(padding)}`);
  const filter = g.constant(g.node(wr, n.name), 'convolution filter');
  if (filter.shape.length !== 4) throw unsupported(`Conv2D '${n.name}' filter has shape [${filter.shape.join(', ')}]`);
  return { x: g.node(xr, n.name), filter, padding };
}

/** Nearest-neighbour ×2 as Tile(x, [4,1,1,1]) → BatchToSpaceND(block [2,2], crops 0). */
function matchUpsample(g: Graph, n: GraphNode): GraphNode {
  g.expectOp(n, ['BatchToSpaceND'], 'nearest-neighbour upsampling');
  const [tr, br, cr] = g.inputs(n, 3) as [string, string, string];
  if (!sameList(g.ints(g.node(br, n.name), 'block shape'), [2, 2])) throw unsupported(`BatchToSpaceND '${n.name}' block shape is not [2, 2]`);
  if (!sameList(g.ints(g.node(cr, n.name), 'crops'), [0, 0, 0, 0])) throw unsupported(`BatchToSpaceND '${n.name}' crops are not zero`);
  const tile = g.node(tr, n.name);
  g.expectOp(tile, ['Tile'], 'batch tile before BatchToSpaceND');
  const [xr, mr] = g.inputs(tile, 2) as [string, string];
  if (!sameList(g.ints(g.node(mr, tile.name), 'tile multiples'), [4, 1, 1, 1])) throw unsupported(`Tile '${tile.name}' multiples are not [4, 1, 1, 1]`);
  return g.node(xr, tile.name);
}

interface ConvLayer {
  kind: 'dense' | 'conv';
  up: boolean;
  filter: ConstValue; // HWIO
  bias: ConstValue;
  alpha: number;
  eps: number;
  node: string;
}

function hwioToOihw(f: ConstValue): Float32Array {
  const [kh, kw, ci, co] = f.shape as [number, number, number, number];
  const src = f.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < ci; i++) {
        const s = ((y * kw + x) * ci + i) * co;
        for (let o = 0; o < co; o++) out[((o * ci + i) * kh + y) * kw + x] = src[s + o]!;
      }
    }
  }
  return out;
}

function f32(c: ConstValue): Float32Array {
  if (!(c.data instanceof Float32Array)) throw unsupported('a float tensor is stored as int32');
  return c.data;
}

/**
 * Reads a TensorFlow.js graph model of a ProGAN generator.
 *
 * @param modelPath a directory holding `model.json`, or the path of the model.json itself
 * @returns the ProGAN config and the canonical tensors (float32) of docs/progan.md
 * @throws FaceganError ERR_FILE_NOT_FOUND (model.json or a shard missing), ERR_UNKNOWN_FORMAT
 *   (not a graph model, unsupported weight dtype/quantization), ERR_CORRUPT_FILE (inconsistent
 *   model), ERR_TRUNCATED_FILE (shards shorter than the manifest), ERR_UNSUPPORTED_ARCH (an op or
 *   structure outside ProGAN).
 */
export async function readTfjsGraphModel(modelPath: string): Promise<TfjsGraphModel> {
  const jsonPath = await resolveModelJson(modelPath);
  const raw = await readOrThrow(jsonPath, 'model.json', MAX_MODEL_JSON_BYTES);
  let model: Record<string, unknown>;
  try {
    model = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new FaceganError('ERR_UNKNOWN_FORMAT', `Not a TensorFlow.js model: ${jsonPath} is not JSON (${(err as Error).message})`, { cause: err });
  }
  if (model === null || typeof model !== 'object' || Array.isArray(model)) throw unknownFormat(`${jsonPath} is not a JSON object`);
  const topo = model.modelTopology as { node?: GraphNode[] } | undefined;
  if (model.format !== undefined && model.format !== 'graph-model') {
    throw unknownFormat(`${jsonPath} has format ${JSON.stringify(model.format)}; only graph models are supported`);
  }
  if (topo === undefined || topo === null || !Array.isArray(topo.node)) {
    throw unknownFormat(`${jsonPath} has no modelTopology.node list (a Keras layers model is not supported)`);
  }
  if (!Array.isArray(model.weightsManifest)) throw unknownFormat(`${jsonPath} has no weightsManifest`);
  const weights = await readWeights(path.dirname(jsonPath), model.weightsManifest as WeightGroup[]);
  const g = new Graph(topo.node, weights);

  // ---- The single input and output.
  const placeholders = [...g.nodes.values()].filter((n) => n.op === 'Placeholder');
  if (placeholders.length !== 1) throw unsupported(`the graph has ${placeholders.length} inputs, expected one latent input`);
  const latent = placeholders[0]!;
  const consumed = new Set<string>();
  for (const n of g.nodes.values()) for (const r of n.input ?? []) consumed.add(g.node(r, n.name).name);
  const sinks = [...g.nodes.values()].filter((n) => n.op !== 'Const' && !consumed.has(n.name));
  if (sinks.length !== 1) throw unsupported(`the graph has ${sinks.length} outputs (${sinks.map((n) => n.name).join(', ')}), expected one image`);
  let cur = sinks[0]!;

  // ---- Output clip: Maximum(Minimum(x, hi), lo) (either order).
  let clipLo = -Infinity;
  let clipHi = Infinity;
  for (let k = 0; k < 2 && (cur.op === 'Maximum' || cur.op === 'Minimum'); k++) {
    const [a, b] = g.inputs(cur, 2).map((r) => g.node(r, cur.name)) as [GraphNode, GraphNode];
    const [c, x] = b.op === 'Const' ? [b, a] : [a, b];
    if (c.op !== 'Const') throw unsupported(`output node '${cur.name}' (${cur.op}) has no constant bound`);
    const v = g.scalar(c, 'clip bound');
    if (cur.op === 'Minimum') clipHi = v;
    else clipLo = v;
    cur = x;
  }
  if (!(clipLo === 0 && clipHi === 1)) {
    throw unsupported(`the output is clipped to [${clipLo}, ${clipHi}]; this reader knows the [0, 1] clip of the TF-Hub ProGAN module`);
  }

  // ---- toRGB: 1×1 conv + bias.
  const rgbBias = matchBias(g, cur);
  const rgbConv = matchConv(g, rgbBias.x);
  const [rk, rkw, rci, rco] = rgbConv.filter.shape as [number, number, number, number];
  if (rk !== 1 || rkw !== 1) throw unsupported(`toRGB conv '${rgbBias.x.name}' is ${rk}×${rkw}, expected 1×1`);
  if (rgbBias.bias.shape[0] !== rco) throw unsupported(`toRGB bias '${rgbBias.biasNode.name}' does not match ${rco} output channels`);
  cur = rgbConv.x;

  // ---- Walk back through pixelnorm(lrelu(conv(x) + b)) layers down to the dense start.
  const layers: ConvLayer[] = [];
  let latentEps: number | undefined;
  for (;;) {
    if (layers.length > 64) throw unsupported('more than 64 layers');
    const pn = matchPixelNorm(g, cur);
    const lr = matchLrelu(g, pn.x);
    const bi = matchBias(g, lr.x);
    const cv = matchConv(g, bi.x);
    const [kh, kw, ci, co] = cv.filter.shape as [number, number, number, number];
    if (bi.bias.shape[0] !== co) throw unsupported(`bias '${bi.biasNode.name}' has ${bi.bias.shape[0]} channels, conv '${bi.x.name}' ${co}`);
    let input = cv.x;
    if (input.op === 'Pad') {
      // Dense start: Pad(Reshape(pixelnorm(z), [-1,1,1,Z]), 3) → VALID 4×4 conv.
      if (cv.padding !== 'VALID' || kh !== 4 || kw !== 4) throw unsupported(`first conv '${bi.x.name}' is not a VALID 4×4 conv (dense start)`);
      const [rr, pr] = g.inputs(input, 2) as [string, string];
      if (!sameList(g.ints(g.node(pr, input.name), 'paddings'), [0, 0, 3, 3, 3, 3, 0, 0])) throw unsupported(`Pad '${input.name}' is not [[0,0],[3,3],[3,3],[0,0]]`);
      const reshape = g.node(rr, input.name);
      g.expectOp(reshape, ['Reshape'], 'latent reshape to [N,1,1,Z]');
      const [zr, sr] = g.inputs(reshape, 2) as [string, string];
      if (!sameList(g.ints(g.node(sr, reshape.name), 'shape'), [-1, 1, 1, ci])) throw unsupported(`Reshape '${reshape.name}' is not to [-1, 1, 1, ${ci}]`);
      const zn = matchPixelNorm(g, g.node(zr, reshape.name));
      if (zn.x !== latent) throw unsupported(`the dense start reads '${zn.x.name}', not the latent '${latent.name}'`);
      latentEps = zn.eps;
      layers.push({ kind: 'dense', up: false, filter: cv.filter, bias: bi.bias, alpha: lr.alpha, eps: pn.eps, node: bi.x.name });
      break;
    }
    if (cv.padding !== 'SAME' || kh !== 3 || kw !== 3) throw unsupported(`conv '${bi.x.name}' is not a SAME 3×3 conv`);
    let up = false;
    if (input.op === 'BatchToSpaceND') {
      input = matchUpsample(g, input);
      up = true;
    }
    layers.push({ kind: 'conv', up, filter: cv.filter, bias: bi.bias, alpha: lr.alpha, eps: pn.eps, node: bi.x.name });
    cur = input;
  }
  layers.reverse();

  // ---- Structure: dense, conv (4×4), then [up conv, conv] per doubling.
  const zDim = layers[0]!.filter.shape[2]!;
  const ph = latent.attr?.shape?.shape as { dim?: { size?: string | number }[] } | undefined;
  const phDims = ph?.dim?.map((d) => Number(d.size));
  if (phDims !== undefined && !(phDims.length === 2 && phDims[1] === zDim)) throw unsupported(`latent '${latent.name}' has shape [${phDims.join(', ')}], expected [N, ${zDim}]`);
  if (layers.length < 2 || layers[1]!.up || (layers.length - 2) % 2 !== 0) throw unsupported(`unexpected layer sequence (${layers.length} conv layers)`);
  const channels: number[] = [];
  const tensors = new Map<string, ProganTensor>();
  const put = (name: string, shape: number[], data: Float32Array): void => {
    tensors.set(name, { dtype: 'F32', shape, data });
  };
  let prevOut = zDim;
  let res = 4;
  for (const [i, L] of layers.entries()) {
    const [kh, kw, ci, co] = L.filter.shape as [number, number, number, number];
    if (ci !== prevOut) throw unsupported(`conv '${L.node}' takes ${ci} channels but the previous layer gives ${prevOut}`);
    if (i >= 2 && L.up !== (i % 2 === 0)) throw unsupported(`upsampling in an unexpected place (conv '${L.node}')`);
    if (L.up) res *= 2;
    if (i === 0) {
      // W[(o·16 + y·4 + x), c] = K[3−y, 3−x, c, o]: the padded 1×1 input sits at (3, 3).
      const K = f32(L.filter);
      const W = new Float32Array(co * kh * kw * ci);
      for (let o = 0; o < co; o++) {
        for (let y = 0; y < kh; y++) {
          for (let x = 0; x < kw; x++) {
            const row = (o * kh + y) * kw + x;
            const k0 = ((kh - 1 - y) * kw + (kw - 1 - x)) * ci;
            for (let c = 0; c < ci; c++) W[row * ci + c] = K[(k0 + c) * co + o]!;
          }
        }
      }
      put('progan.dense.weight', [co * kh * kw, ci], W);
      put('progan.dense.bias', [co], f32(L.bias).slice());
      channels.push(co);
    } else {
      const name = i === 1 ? 'progan.b4.conv1' : `progan.b${res}.conv${L.up ? 0 : 1}`;
      put(`${name}.weight`, [co, ci, kh, kw], hwioToOihw(L.filter));
      put(`${name}.bias`, [co], f32(L.bias).slice());
      if (L.up) channels.push(co);
      else if (i >= 2 && channels[channels.length - 1] !== co) {
        // conv1 of a block may change width, but ProGAN blocks keep it; refuse the unusual.
        throw unsupported(`conv '${L.node}' changes the width inside a resolution (${channels[channels.length - 1]} → ${co})`);
      }
    }
    prevOut = co;
  }
  if (layers[1]!.filter.shape[3] !== channels[0]) throw unsupported('the 4×4 conv changes the width');
  if (rci !== prevOut) throw unsupported(`toRGB takes ${rci} channels but the last layer gives ${prevOut}`);
  put('progan.torgb.weight', [rco, rci, 1, 1], hwioToOihw(rgbConv.filter));
  put('progan.torgb.bias', [rco], f32(rgbBias.bias).slice());

  // ---- Uniform constants.
  const alphas = new Set(layers.map((l) => l.alpha));
  const epss = new Set([...layers.map((l) => l.eps), latentEps!]);
  if (alphas.size !== 1) throw unsupported(`the leaky ReLU slopes differ between layers (${[...alphas].join(', ')})`);
  if (epss.size !== 1) throw unsupported(`the pixel norm epsilons differ between layers (${[...epss].join(', ')})`);

  const config: ProganConfig = {
    arch: 'progan',
    z_dim: zDim,
    img_resolution: res,
    img_channels: rco,
    channels,
    lrelu_slope: f32Short([...alphas][0]!),
    pixelnorm_eps: f32Short([...epss][0]!),
    normalize_latent: true,
    upsample: 'nearest',
    weight_gain: 1,
    // The graph's toRGB bias holds a folded +0.5 (v = t + 0.5, t in [-1, 1]): see docs/progan.md.
    output: { tfhub_clip: [clipLo, clipHi], scale: 127.5, offset: 63.75 },
  };
  return { config, tensors };
}
