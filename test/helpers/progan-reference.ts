/**
 * A plain TypeScript float32 reference of the ProGAN generator forward pass, computed from the
 * canonical tensors of docs/progan.md. It is the test oracle and the executable specification
 * for the native engines — slow (about 21 G multiply-adds per 128² image), written for clarity
 * and exactness, not speed.
 *
 * Activations are channels-last (HWC) float32; convolution sums are accumulated in float64 and
 * rounded to float32 per output value, as every other intermediate is.
 *
 * An optional output window computes only the part of the network that the window depends on
 * (each 3×3 conv widens the region by one pixel, each upsampling halves it), which is exact: the
 * values equal those of the full image at the same positions.
 */
import { FaceganError } from '../../lib/errors.js';
import type { ProganConfig } from '../../lib/convert/tfjs.js';

/** A float32 tensor in the canonical layout (F16 copies must be widened first). */
export interface ReferenceTensor {
  shape: readonly number[];
  data: Float32Array;
}

/** A rectangle of the output image: rows [y, y+height), columns [x, x+width). */
export interface OutputWindow {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A channels-last activation covering rows [y0, y1) and columns [x0, x1) of a res×res map. */
interface Act {
  res: number;
  y0: number;
  y1: number;
  x0: number;
  x1: number;
  c: number;
  data: Float32Array;
}

interface Win {
  y0: number;
  y1: number;
  x0: number;
  x1: number;
}

function get(tensors: ReadonlyMap<string, ReferenceTensor>, name: string, shape: number[]): Float32Array {
  const t = tensors.get(name);
  if (t === undefined) throw new FaceganError('ERR_CORRUPT_FILE', `ProGAN weights lack tensor '${name}'`);
  if (!(t.data instanceof Float32Array)) throw new FaceganError('ERR_INVALID_OPTION', `ProGAN reference needs float32 data for '${name}'`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new FaceganError('ERR_CORRUPT_FILE', `ProGAN tensor '${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return t.data;
}

/** OIHW [o][c][ky][kx] → [o][ky][kx][c], so one output's 3×3×C taps are contiguous. */
function ohwi(w: Float32Array, co: number, ci: number, k: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < co; o++) {
    for (let c = 0; c < ci; c++) {
      for (let t = 0; t < k * k; t++) out[(o * k * k + t) * ci + c] = w[(o * ci + c) * k * k + t]!;
    }
  }
  return out;
}

/** leaky ReLU then pixel norm, in place, on every pixel of `a`. */
function lreluPixelNorm(a: Act, slope: number, eps: number): void {
  const { c, data } = a;
  const n = data.length / c;
  for (let p = 0; p < n; p++) {
    const base = p * c;
    let ss = 0;
    for (let k = 0; k < c; k++) {
      let v = data[base + k]!;
      if (v < 0) v = Math.fround(v * slope);
      data[base + k] = v;
      ss += v * v;
    }
    const scale = Math.fround(1 / Math.sqrt(Math.fround(Math.fround(ss / c) + eps)));
    for (let k = 0; k < c; k++) data[base + k] = data[base + k]! * scale;
  }
}

/**
 * 3×3 conv, zero padding 1, stride 1 (cross-correlation, as TensorFlow's Conv2D), + bias, over
 * output window `w`. With `up`, the input is first upsampled ×2 nearest-neighbour: output-grid
 * pixel (iy, ix) reads input pixel (iy >> 1, ix >> 1).
 */
function conv3x3(src: Act, wt: Float32Array, bias: Float32Array, co: number, up: boolean, w: Win): Act {
  const ci = src.c;
  const res = up ? src.res * 2 : src.res;
  const oh = w.y1 - w.y0;
  const ow = w.x1 - w.x0;
  const out = new Float32Array(oh * ow * co);
  const patch = new Float32Array(9 * ci);
  const K = 9 * ci;
  const srcW = src.x1 - src.x0;
  for (let y = w.y0; y < w.y1; y++) {
    for (let x = w.x0; x < w.x1; x++) {
      // Gather the 3×3×ci input patch (zeros outside the image).
      for (let ky = 0; ky < 3; ky++) {
        const iy = y + ky - 1;
        for (let kx = 0; kx < 3; kx++) {
          const ix = x + kx - 1;
          const dst = (ky * 3 + kx) * ci;
          if (iy < 0 || iy >= res || ix < 0 || ix >= res) {
            patch.fill(0, dst, dst + ci);
            continue;
          }
          const sy = up ? iy >> 1 : iy;
          const sx = up ? ix >> 1 : ix;
          if (sy < src.y0 || sy >= src.y1 || sx < src.x0 || sx >= src.x1) throw new Error('internal: window bookkeeping');
          const s = ((sy - src.y0) * srcW + (sx - src.x0)) * ci;
          patch.set(src.data.subarray(s, s + ci), dst);
        }
      }
      const ob = ((y - w.y0) * ow + (x - w.x0)) * co;
      let o = 0;
      for (; o + 4 <= co; o += 4) {
        const b0 = o * K;
        const b1 = b0 + K;
        const b2 = b1 + K;
        const b3 = b2 + K;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let k = 0; k < K; k++) {
          const p = patch[k]!;
          s0 += p * wt[b0 + k]!;
          s1 += p * wt[b1 + k]!;
          s2 += p * wt[b2 + k]!;
          s3 += p * wt[b3 + k]!;
        }
        out[ob + o] = s0 + bias[o]!;
        out[ob + o + 1] = s1 + bias[o + 1]!;
        out[ob + o + 2] = s2 + bias[o + 2]!;
        out[ob + o + 3] = s3 + bias[o + 3]!;
      }
      for (; o < co; o++) {
        const b0 = o * K;
        let s0 = 0;
        for (let k = 0; k < K; k++) s0 += patch[k]! * wt[b0 + k]!;
        out[ob + o] = s0 + bias[o]!;
      }
    }
  }
  return { res, y0: w.y0, y1: w.y1, x0: w.x0, x1: w.x1, c: co, data: out };
}

function grow(w: Win, res: number): Win {
  return { y0: Math.max(0, w.y0 - 1), y1: Math.min(res, w.y1 + 1), x0: Math.max(0, w.x0 - 1), x1: Math.min(res, w.x1 + 1) };
}

function halve(w: Win): Win {
  return { y0: w.y0 >> 1, y1: ((w.y1 - 1) >> 1) + 1, x0: w.x0 >> 1, x1: ((w.x1 - 1) >> 1) + 1 };
}

/** Prepared weights: transposed once, reusable across latents. */
export interface ProganReference {
  readonly config: ProganConfig;
  /**
   * The toRGB output v for one latent (length z_dim), channels-last [height, width, img_channels]
   * over the window (the whole image by default), BEFORE any clip. The TF-Hub graph returns
   * clip(v, 0, 1) ({@link proganTfhubOutput}); pixels are {@link proganToUint8}.
   */
  forward(z: ArrayLike<number>, window?: OutputWindow): Float32Array;
}

/** Validates the tensors against `config` and prepares them for {@link ProganReference.forward}. */
export function createProganReference(config: ProganConfig, tensors: ReadonlyMap<string, ReferenceTensor>): ProganReference {
  if (config.arch !== 'progan') throw new FaceganError('ERR_UNSUPPORTED_ARCH', `Not a ProGAN config (arch ${JSON.stringify(config.arch)})`);
  const R = config.img_resolution;
  const nres = Math.log2(R) - 1;
  if (!Number.isInteger(nres) || nres < 1 || config.channels.length !== nres) {
    throw new FaceganError('ERR_CORRUPT_FILE', `ProGAN config: img_resolution ${R} does not match ${config.channels.length} channel counts`);
  }
  if (config.weight_gain !== 1 || config.upsample !== 'nearest' || config.normalize_latent !== true) {
    throw new FaceganError('ERR_UNSUPPORTED_ARCH', 'ProGAN config: only weight_gain 1, nearest upsampling and a normalised latent are supported');
  }
  const Z = config.z_dim;
  const C = config.channels;
  const denseW = get(tensors, 'progan.dense.weight', [C[0]! * 16, Z]);
  const denseB = get(tensors, 'progan.dense.bias', [C[0]!]);
  const convs: { w: Float32Array; b: Float32Array; co: number; up: boolean }[] = [];
  const addConv = (name: string, co: number, ci: number, up: boolean): void => {
    const w = get(tensors, `${name}.weight`, [co, ci, 3, 3]);
    convs.push({ w: ohwi(w, co, ci, 3), b: get(tensors, `${name}.bias`, [co]), co, up });
  };
  addConv('progan.b4.conv1', C[0]!, C[0]!, false);
  for (let i = 1; i < nres; i++) {
    const r = 4 << i;
    addConv(`progan.b${r}.conv0`, C[i]!, C[i - 1]!, true);
    addConv(`progan.b${r}.conv1`, C[i]!, C[i]!, false);
  }
  const nc = config.img_channels;
  const cl = C[nres - 1]!;
  const rgbW = get(tensors, 'progan.torgb.weight', [nc, cl, 1, 1]);
  const rgbB = get(tensors, 'progan.torgb.bias', [nc]);
  const slope = Math.fround(config.lrelu_slope);
  const eps = Math.fround(config.pixelnorm_eps);

  function forward(z: ArrayLike<number>, window?: OutputWindow): Float32Array {
    if (z.length !== Z) throw new FaceganError('ERR_INVALID_OPTION', `Expected a latent of length ${Z} but received ${z.length}`);
    const win: Win = window === undefined
      ? { y0: 0, y1: R, x0: 0, x1: R }
      : { y0: window.y, y1: window.y + window.height, x0: window.x, x1: window.x + window.width };
    if (!(Number.isInteger(win.y0) && Number.isInteger(win.x0) && win.y0 >= 0 && win.x0 >= 0 && win.y1 <= R && win.x1 <= R && win.y1 > win.y0 && win.x1 > win.x0)) {
      throw new FaceganError('ERR_INVALID_OPTION', `Output window ${JSON.stringify(window)} is not inside the ${R}×${R} image`);
    }
    // Windows each conv must produce, from the last back to b4.conv1.
    const need: Win[] = new Array(convs.length);
    let w = win;
    let res = R;
    for (let i = convs.length - 1; i >= 0; i--) {
      need[i] = w;
      w = grow(w, res);
      if (convs[i]!.up) {
        w = halve(w);
        res >>= 1;
      }
    }

    // Latent pixel norm.
    const zf = Float32Array.from(z as ArrayLike<number>);
    let ss = 0;
    for (let k = 0; k < Z; k++) ss += zf[k]! * zf[k]!;
    const zs = Math.fround(1 / Math.sqrt(Math.fround(Math.fround(ss / Z) + eps)));
    for (let k = 0; k < Z; k++) zf[k] = zf[k]! * zs;

    // Dense 4×4: a[y][x][o] = Σ_c W[(o·16 + y·4 + x), c]·z[c] + b[o].
    const c0 = C[0]!;
    let a: Act = { res: 4, y0: 0, y1: 4, x0: 0, x1: 4, c: c0, data: new Float32Array(16 * c0) };
    for (let o = 0; o < c0; o++) {
      for (let p = 0; p < 16; p++) {
        const row = (o * 16 + p) * Z;
        let s = 0;
        for (let k = 0; k < Z; k++) s += denseW[row + k]! * zf[k]!;
        a.data[p * c0 + o] = s + denseB[o]!;
      }
    }
    lreluPixelNorm(a, slope, eps);

    for (const [i, cv] of convs.entries()) {
      a = conv3x3(a, cv.w, cv.b, cv.co, cv.up, need[i]!);
      lreluPixelNorm(a, slope, eps);
    }

    // toRGB 1×1 + bias (no clip).
    const n = (a.y1 - a.y0) * (a.x1 - a.x0);
    const out = new Float32Array(n * nc);
    for (let p = 0; p < n; p++) {
      for (let k = 0; k < nc; k++) {
        let s = 0;
        for (let c = 0; c < cl; c++) s += rgbW[k * cl + c]! * a.data[p * cl + c]!;
        out[p * nc + k] = s + rgbB[k]!;
      }
    }
    return out;
  }

  return { config, forward };
}

/** What the published TF-Hub graph returns for toRGB output `v`: clip(v, tfhub_clip[0], tfhub_clip[1]). */
export function proganTfhubOutput(config: ProganConfig, v: Float32Array): Float32Array {
  const [lo, hi] = config.output.tfhub_clip;
  return v.map((x) => Math.min(hi, Math.max(lo, x)));
}

/** Maps toRGB output `v` to 8-bit pixels: round(clamp(v·scale + offset, 0, 255)). */
export function proganToUint8(config: ProganConfig, out: Float32Array): Uint8Array {
  const { scale, offset } = config.output;
  const px = new Uint8Array(out.length);
  for (let i = 0; i < out.length; i++) px[i] = Math.round(Math.min(255, Math.max(0, out[i]! * scale + offset)));
  return px;
}
