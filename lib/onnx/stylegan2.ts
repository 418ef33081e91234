/**
 * StyleGAN2 (skip generator, as in docs/stylegan2.md) → ONNX graphs built from ordinary
 * ops, batch-friendly: modulation is a per-sample per-channel scale of the activations, the 3×3
 * convolution has fixed weights shared by the whole batch, and demodulation is a per-sample
 * per-output-channel scale d[n,o] = 1/sqrt(Σ_i s[n,i]²·Wsq[o,i] + 1e-8) computed with a MatMul
 * against the precomputed Wsq[o,i] = Σ_k W[o,i,k]².
 *
 * Every run-time gain of the official code (mapping lr multiplier and 1/sqrt(fan_in), the affine
 * 1/sqrt(w_dim)) is multiplied into the initializers in float32, exactly as the official code
 * multiplies its float32 parameters by its gains before using them.
 */
import { FaceganError, invalidOption } from '../errors.js';
import type { StyleGAN2Config } from '../convert/stylegan2.js';
import { blockResolutions, channelsAt } from '../convert/stylegan2.js';
import { GraphBuilder } from './builder.js';
import type { OnnxModel } from './model.js';

export type OnnxNoiseMode = 'const' | 'none';

export interface StyleGAN2OnnxOptions {
  opset: number;
  noiseMode: OnnxNoiseMode;
  /** Truncate only ws rows [0, cutoff); null: every row. */
  truncationCutoff: number | null;
  producerVersion: string;
}

type Tensors = ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: Float32Array }>;

const SQRT2 = Math.SQRT2;
const LRELU_SLOPE = 0.2;

/** [1,3,3,1]⊗[1,3,3,1]/64 · gain, as a [channels, 1, 4, 4] depthwise kernel. */
function firKernel(channels: number, gain: number): Float32Array {
  const f1 = [1, 3, 3, 1];
  const out = new Float32Array(channels * 16);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) out[c * 16 + i * 4 + j] = (f1[i]! * f1[j]! * gain) / 64;
  }
  return out;
}

/** fround(x · fround(g)) elementwise: a float32 parameter times a float32 gain, as torch does. */
function scaled(data: Float32Array, gain: number): Float32Array {
  const g = Math.fround(gain);
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! * g;
  return out;
}

class StyleGAN2Exporter {
  readonly #cfg: StyleGAN2Config;
  readonly #t: Tensors;
  readonly #opts: StyleGAN2OnnxOptions;
  #upFilter: { builder: GraphBuilder; name: string } | undefined;

  constructor(config: StyleGAN2Config, tensors: Tensors, opts: StyleGAN2OnnxOptions) {
    this.#cfg = config;
    this.#t = tensors;
    this.#opts = opts;
  }

  #get(name: string): Float32Array {
    const t = this.#t.get(name);
    if (!t) throw new FaceganError('ERR_CORRUPT_FILE', `ONNX export: the model has no tensor ${name}`);
    return t.data;
  }

  /** x · rsqrt(mean(x², axis 1) + 1e-8). */
  #normalize(b: GraphBuilder, x: string): string {
    const mean = b.reduceMean(b.op('Mul', [x, x]), [1], true);
    const inv = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [mean, b.scalar(1e-8)])])]);
    return b.op('Mul', [x, inv]);
  }

  /** z [N, z_dim] (+ c [N, c_dim]) → w [N, w_dim] (before truncation). */
  #mappingNetwork(b: GraphBuilder, z: string, c: string | undefined): string {
    const cfg = this.#cfg;
    const lr = cfg.mapping_lr_multiplier;
    let x = this.#normalize(b, z);
    if (cfg.c_dim > 0) {
      const W = b.tensor('mapping.embed.weight', [cfg.w_dim, cfg.c_dim], scaled(this.#get('mapping.embed.weight'), 1 / Math.sqrt(cfg.c_dim)));
      const B = b.tensor('mapping.embed.bias', [cfg.w_dim], this.#get('mapping.embed.bias'));
      const y = this.#normalize(b, b.op('Gemm', [c!, W, B], { transB: { i: 1 } }));
      x = b.op('Concat', [x, y], { axis: { i: 1 } });
    }
    for (let i = 0; i < cfg.mapping_layers; i++) {
      const inF = i === 0 ? cfg.z_dim + (cfg.c_dim > 0 ? cfg.w_dim : 0) : cfg.w_dim;
      const W = b.tensor(`mapping.fc${i}.weight`, [cfg.w_dim, inF], scaled(this.#get(`mapping.fc${i}.weight`), lr / Math.sqrt(inF)));
      const B = b.tensor(`mapping.fc${i}.bias`, [cfg.w_dim], scaled(this.#get(`mapping.fc${i}.bias`), lr));
      x = b.op('Gemm', [x, W, B], { transB: { i: 1 } });
      x = b.op('Mul', [b.op('LeakyRelu', [x], { alpha: { f: LRELU_SLOPE } }), b.scalar(SQRT2)]);
    }
    return x;
  }

  /** w_avg.lerp(w, psi) in torch's form for psi ≥ 0.5: w − (w − w_avg)·(1 − psi) (exact at psi = 1). */
  #truncate(b: GraphBuilder, w: string, psi: string): string {
    const wAvg = b.tensor('mapping.w_avg', [this.#cfg.w_dim], this.#get('mapping.w_avg'));
    const oneMinusPsi = b.op('Sub', [b.scalar(1), psi]);
    return b.op('Sub', [w, b.op('Mul', [b.op('Sub', [w, wAvg]), oneMinusPsi])]);
  }

  /** The effective cutoff: null or ≥ num_ws means every row. */
  #cutoff(): number {
    const k = this.#opts.truncationCutoff;
    return k === null ? this.#cfg.num_ws : Math.min(k, this.#cfg.num_ws);
  }

  /** Affine style s = w · (A/sqrt(w_dim))ᵀ + b, times `extraGain` (folded in when ≠ 1). */
  #style(b: GraphBuilder, prefix: string, cin: number, w: string, extraGain = 1): string {
    const cfg = this.#cfg;
    const A = b.tensor(`${prefix}.affine.weight`, [cin, cfg.w_dim], scaled(this.#get(`${prefix}.affine.weight`), 1 / Math.sqrt(cfg.w_dim)));
    const B = b.tensor(`${prefix}.affine.bias`, [cin], this.#get(`${prefix}.affine.bias`));
    const s = b.op('Gemm', [w, A, B], { transB: { i: 1 } });
    return extraGain === 1 ? s : b.op('Mul', [s, b.scalar(extraGain)]);
  }

  /** Bias, optional activation (lrelu·√2), optional clamp. */
  #biasAct(b: GraphBuilder, y: string, prefix: string, channels: number, act: boolean): string {
    const bias = b.tensor(`${prefix}.bias`, [1, channels, 1, 1], this.#get(`${prefix}.bias`));
    let out = b.op('Add', [y, bias]);
    if (act) out = b.op('Mul', [b.op('LeakyRelu', [out], { alpha: { f: LRELU_SLOPE } }), b.scalar(SQRT2)]);
    const clamp = this.#cfg.conv_clamp;
    if (clamp !== null) out = b.clip(out, -clamp, clamp);
    return out;
  }

  /** A modulated 3×3 conv layer (conv0 with up=2, conv1 with up=1). */
  #layer(b: GraphBuilder, x: string, prefix: string, cin: number, cout: number, r: number, up: boolean, w: string): string {
    const s = this.#style(b, prefix, cin, w);
    const xs = b.op('Mul', [x, b.unsqueeze(s, [2, 3])]);
    const W = this.#get(`${prefix}.weight`);
    let y: string;
    if (up) {
      // ConvTranspose weights are [C_in, C_out, kh, kw]: out[o, 2i+kh, 2j+kw] += x[c,i,j]·W[o,c,kh,kw].
      const Wt = new Float32Array(W.length);
      for (let o = 0; o < cout; o++) for (let c = 0; c < cin; c++) for (let k = 0; k < 9; k++) Wt[(c * cout + o) * 9 + k] = W[(o * cin + c) * 9 + k]!;
      const wt = b.tensor(`${prefix}.weight_t`, [cin, cout, 3, 3], Wt);
      y = b.op('ConvTranspose', [xs, wt], { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [0, 0, 0, 0] } });
      const fir = b.tensor(`${prefix}.fir`, [cout, 1, 4, 4], firKernel(cout, 4));
      y = b.op('Conv', [y, fir], { group: { i: cout }, kernel_shape: { ints: [4, 4] }, pads: { ints: [1, 1, 1, 1] } });
    } else {
      const wc = b.tensor(`${prefix}.weight`, [cout, cin, 3, 3], W);
      y = b.op('Conv', [xs, wc], { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] } });
    }
    // Demodulation: d[n,o] = 1/sqrt(Σ_i s[n,i]²·Wsq[o,i] + 1e-8), with Wsq stored transposed [C_in, C_out].
    const wsqT = new Float32Array(cin * cout);
    for (let o = 0; o < cout; o++) {
      for (let c = 0; c < cin; c++) {
        let acc = 0;
        for (let k = 0; k < 9; k++) acc += W[(o * cin + c) * 9 + k]! ** 2;
        wsqT[c * cout + o] = acc;
      }
    }
    const wsq = b.tensor(`${prefix}.weight_sq_t`, [cin, cout], wsqT);
    const sum = b.op('MatMul', [b.op('Mul', [s, s]), wsq]);
    const d = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [sum, b.scalar(1e-8)])])]);
    y = b.op('Mul', [y, b.unsqueeze(d, [2, 3])]);
    if (this.#opts.noiseMode === 'const') {
      const strength = this.#get(`${prefix}.noise_strength`)[0]!;
      const noise = b.tensor(`${prefix}.noise`, [1, 1, r, r], scaled(this.#get(`${prefix}.noise_const`), strength));
      y = b.op('Add', [y, noise]);
    }
    return this.#biasAct(b, y, prefix, cout, true);
  }

  /** ToRGB: 1×1 modulated conv, no demodulation, styles scaled by 1/sqrt(C_in). */
  #toRgb(b: GraphBuilder, x: string, prefix: string, cin: number, w: string): string {
    const cfg = this.#cfg;
    const s = this.#style(b, prefix, cin, w, 1 / Math.sqrt(cin));
    const xs = b.op('Mul', [x, b.unsqueeze(s, [2, 3])]);
    const W = b.tensor(`${prefix}.weight`, [cfg.img_channels, cin, 1, 1], this.#get(`${prefix}.weight`));
    const y = b.op('Conv', [xs, W], { kernel_shape: { ints: [1, 1] } });
    return this.#biasAct(b, y, prefix, cfg.img_channels, false);
  }

  /** The ×2 FIR upsampling of the running image: zero insertion, pad [2,1], filter·4. */
  #upsampleImage(b: GraphBuilder, img: string): string {
    const ch = this.#cfg.img_channels;
    if (this.#upFilter?.builder !== b) this.#upFilter = { builder: b, name: b.tensor('synthesis.upsample_filter', [ch, 1, 4, 4], firKernel(ch, 4)) };
    return b.op('ConvTranspose', [img, this.#upFilter.name], { group: { i: ch }, kernel_shape: { ints: [4, 4] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] } });
  }

  /** ws rows (by index) → img [N, C, R, R]. */
  #synthesisNetwork(b: GraphBuilder, wRow: (i: number) => string, out: string): string {
    const cfg = this.#cfg;
    let x = '';
    let img: string | undefined;
    let wi = 0;
    for (const r of blockResolutions(cfg)) {
      const c = channelsAt(cfg, r);
      const p = `synthesis.b${r}`;
      const last = r === cfg.img_resolution;
      if (r === 4) {
        const konst = b.tensor(`${p}.const`, [1, c, 4, 4], this.#get(`${p}.const`));
        x = this.#layer(b, konst, `${p}.conv1`, c, c, r, false, wRow(0));
        const y = this.#toRgb(b, x, `${p}.torgb`, c, wRow(1));
        img = last ? b.op('Identity', [y], {}, out) : y;
        wi = 1;
      } else {
        const cin = channelsAt(cfg, r / 2);
        x = this.#layer(b, x, `${p}.conv0`, cin, c, r, true, wRow(wi));
        x = this.#layer(b, x, `${p}.conv1`, c, c, r, false, wRow(wi + 1));
        const y = this.#toRgb(b, x, `${p}.torgb`, c, wRow(wi + 2));
        img = b.op('Add', [this.#upsampleImage(b, img!), y], {}, last ? out : undefined);
        wi += 2;
      }
    }
    return img!;
  }

  #zInputs(b: GraphBuilder): { z: string; c: string | undefined; psi: string } {
    const cfg = this.#cfg;
    const z = b.input('z', ['N', cfg.z_dim]);
    const c = cfg.c_dim > 0 ? b.input('c', ['N', cfg.c_dim]) : undefined;
    const psi = b.input('psi', []);
    return { z, c, psi };
  }

  #meta(kind: string): { producerVersion: string; doc: string; metadata: Record<string, string> } {
    const cfg = this.#cfg;
    return {
      producerVersion: this.#opts.producerVersion,
      doc: `StyleGAN2 ${cfg.img_resolution}x${cfg.img_resolution} generator (${kind}), exported by facegan-native`,
      metadata: {
        'facegan.arch': 'stylegan2',
        'facegan.graph': kind,
        'facegan.config': JSON.stringify(cfg),
        'facegan.noise_mode': this.#opts.noiseMode,
        'facegan.truncation_cutoff': JSON.stringify(this.#opts.truncationCutoff),
      },
    };
  }

  /** z[, c], psi → img. */
  one(): OnnxModel {
    const cfg = this.#cfg;
    const b = new GraphBuilder(this.#opts.opset);
    const { z, c, psi } = this.#zInputs(b);
    const w = this.#mappingNetwork(b, z, c);
    const wt = this.#truncate(b, w, psi);
    const cutoff = this.#cutoff();
    this.#synthesisNetwork(b, (i) => (i < cutoff ? wt : w), 'img');
    b.output('img', ['N', cfg.img_channels, cfg.img_resolution, cfg.img_resolution]);
    return b.model('facegan_stylegan2', this.#meta('one'));
  }

  /** z[, c], psi → ws [N, num_ws, w_dim]. */
  mapping(): OnnxModel {
    const cfg = this.#cfg;
    const b = new GraphBuilder(this.#opts.opset);
    const { z, c, psi } = this.#zInputs(b);
    const w = this.#mappingNetwork(b, z, c);
    const wt = this.#truncate(b, w, psi);
    const cutoff = this.#cutoff();
    const rows = (x: string, n: number, out?: string): string =>
      b.op('Expand', [b.unsqueeze(x, [1]), b.int64([3], [1, n, 1])], {}, out);
    if (cutoff >= cfg.num_ws) rows(wt, cfg.num_ws, 'ws');
    else if (cutoff <= 0) rows(w, cfg.num_ws, 'ws');
    else b.op('Concat', [rows(wt, cutoff), rows(w, cfg.num_ws - cutoff)], { axis: { i: 1 } }, 'ws');
    b.output('ws', ['N', cfg.num_ws, cfg.w_dim]);
    return b.model('facegan_stylegan2_mapping', this.#meta('mapping'));
  }

  /** ws [N, num_ws, w_dim] → img. */
  synthesis(): OnnxModel {
    const cfg = this.#cfg;
    const b = new GraphBuilder(this.#opts.opset);
    const ws = b.input('ws', ['N', cfg.num_ws, cfg.w_dim]);
    const rows = new Map<number, string>();
    const wRow = (i: number): string => {
      let r = rows.get(i);
      if (r === undefined) {
        r = b.op('Gather', [ws, b.int64([], [i])], { axis: { i: 1 } });
        rows.set(i, r);
      }
      return r;
    };
    this.#synthesisNetwork(b, wRow, 'img');
    b.output('img', ['N', cfg.img_channels, cfg.img_resolution, cfg.img_resolution]);
    return b.model('facegan_stylegan2_synthesis', this.#meta('synthesis'));
  }
}

/** Builds the ONNX model(s) of a StyleGAN2 generator (see {@link StyleGAN2Exporter}). */
export function stylegan2ToOnnx(
  config: StyleGAN2Config,
  tensors: Tensors,
  opts: StyleGAN2OnnxOptions,
  graphs: 'one' | 'two',
): { one: OnnxModel } | { mapping: OnnxModel; synthesis: OnnxModel } {
  if (opts.truncationCutoff !== null && (!Number.isInteger(opts.truncationCutoff) || opts.truncationCutoff < 0)) {
    throw invalidOption('truncationCutoff', 'a non-negative integer or null', opts.truncationCutoff);
  }
  const e = new StyleGAN2Exporter(config, tensors, opts);
  return graphs === 'one' ? { one: e.one() } : { mapping: e.mapping(), synthesis: e.synthesis() };
}
