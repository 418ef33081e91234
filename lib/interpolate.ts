/**
 * Latent walks: frames between two faces, in z (slerp: the latent prior is Gaussian, so the walk
 * stays on the shell where latents live) or in w (lerp: the intermediate latent space is where
 * StyleGAN2 interpolates smoothly). Frames come in engine batches as they are ready.
 */
import { invalidOption } from './errors.js';
import type { Generator, Image, NoiseMode } from './generator.js';
import { checkInteger, checkOneOf } from './options.js';

export type InterpolationSpace = 'z' | 'w';
export type InterpolationMethod = 'slerp' | 'lerp';

export interface InterpolateOptions {
  /** Start and end: a seed, or a zDim latent. */
  from: number | ArrayLike<number>;
  to: number | ArrayLike<number>;
  /** Frames, both ends included (2 … 100000). */
  steps: number;
  /** 'z' (default; the only one for ProGAN) or 'w' (StyleGAN2: mapping first, then interpolate ws). */
  space?: InterpolationSpace;
  /** Default: 'slerp' in z, 'lerp' in w. */
  method?: InterpolationMethod;
  psi?: number;
  truncationCutoff?: number | null;
  classIndex?: number;
  noiseMode?: NoiseMode;
  noiseSeed?: number;
  signal?: AbortSignal;
}

/** A frame: an image and its place in the walk. */
export interface Frame extends Image {
  index: number;
  /** Position in [0, 1]. */
  t: number;
}

function endpoint(gen: Generator, name: string, v: unknown): Float64Array {
  if (typeof v === 'number') return gen.zFromSeed(v);
  if (v !== null && typeof v === 'object' && typeof (v as ArrayLike<number>).length === 'number') {
    const a = v as ArrayLike<number>;
    if (a.length !== gen.info.zDim) throw invalidOption(name, `a seed or a latent of ${gen.info.zDim} numbers`, v);
    const out = new Float64Array(a.length);
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      if (typeof x !== 'number' || !Number.isFinite(x)) throw invalidOption(`${name}[${i}]`, 'a finite number', x);
      out[i] = x;
    }
    return out;
  }
  throw invalidOption(name, `a seed or a latent of ${gen.info.zDim} numbers`, v);
}

/** lerp or slerp between a and b at t, written into out (float64 maths). */
export function interpolateVectors(a: ArrayLike<number>, b: ArrayLike<number>, t: number, method: InterpolationMethod, out: Float32Array | Float64Array): void {
  const n = a.length;
  if (method === 'slerp') {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = 0; i < n; i++) {
      dot += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
    }
    const cos = Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb)));
    const omega = Math.acos(cos);
    const s = Math.sin(omega);
    if (s > 1e-6) {
      const wa = Math.sin((1 - t) * omega) / s;
      const wb = Math.sin(t * omega) / s;
      for (let i = 0; i < n; i++) out[i] = wa * a[i] + wb * b[i];
      return;
    }
    // (Anti)parallel ends: fall through to lerp.
  }
  // (1 - t)·a + t·b: exactly a at t = 0 and exactly b at t = 1.
  for (let i = 0; i < n; i++) out[i] = (1 - t) * a[i] + t * b[i];
}

/** The frames of a walk, one engine batch at a time (at most gen.batchSize images held). */
export async function* interpolationFrames(gen: Generator, options: InterpolateOptions): AsyncGenerator<Frame[]> {
  if (options === null || typeof options !== 'object') throw invalidOption('options', 'an object', options);
  const steps = checkInteger('steps', options.steps, 2, 100_000);
  const progan = gen.info.arch === 'progan';
  const space = checkOneOf('space', options.space, ['z', 'w'] as const, 'z');
  if (space === 'w' && progan) throw invalidOption('space', "'z': a ProGAN model has no w space", space);
  const method = checkOneOf('method', options.method, ['slerp', 'lerp'] as const, space === 'z' ? 'slerp' : 'lerp');
  const za = endpoint(gen, 'from', options.from);
  const zb = endpoint(gen, 'to', options.to);
  const { psi, truncationCutoff, classIndex, noiseMode, signal } = options;
  // 'const' noise (the default) keeps the walk smooth; 'random' noise uses one seed for the whole walk.
  const noiseSeed = options.noiseSeed ?? (noiseMode === 'random' ? Math.floor(Math.random() * 2 ** 32) : undefined);
  const chunk = Math.max(1, gen.batchSize);
  let a: Float64Array | Float32Array = za;
  let b: Float64Array | Float32Array = zb;
  let row = gen.info.zDim;
  if (space === 'w') {
    const ws = await gen.mapping({ z: Float32Array.from([...za, ...zb]), psi, truncationCutoff, classIndex, signal });
    row = gen.info.numWs * gen.info.wDim;
    a = ws.subarray(0, row);
    b = ws.subarray(row);
  }
  for (let start = 0; start < steps; start += chunk) {
    const n = Math.min(chunk, steps - start);
    const input = new Float32Array(n * row);
    const tmp = new Float64Array(row);
    for (let i = 0; i < n; i++) {
      interpolateVectors(a, b, (start + i) / (steps - 1), method, tmp);
      input.set(tmp, i * row);
    }
    const images =
      space === 'w'
        ? await gen.synthesis(input, { noiseMode, noiseSeed, signal })
        : await gen.generate({ z: input, psi: progan ? undefined : psi, truncationCutoff: progan ? undefined : truncationCutoff, classIndex, noiseMode, noiseSeed, signal });
    yield images.map((img, i) => Object.assign(img, { model: gen.modelName, index: start + i, t: (start + i) / (steps - 1) }) as Frame);
  }
}

/** All frames of a walk. */
export async function interpolate(gen: Generator, options: InterpolateOptions): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const batch of interpolationFrames(gen, options)) frames.push(...batch);
  return frames;
}

// --- style mixing ------------------------------------------------------------------------------

/** ws rows of the named style group: coarse (4²–8²), middle (16²–32²), fine (64² and up). */
export function styleRows(group: string, numWs: number): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(group);
  let range: [number, number];
  if (m) range = [Number(m[1]), Number(m[2]) + 1];
  else if (group === 'coarse') range = [0, 4];
  else if (group === 'middle') range = [4, 8];
  else if (group === 'fine') range = [8, numWs];
  else throw invalidOption('styles', "'coarse', 'middle', 'fine' or a row range like 0-3", group);
  range = [Math.min(range[0], numWs), Math.min(range[1], numWs)];
  if (range[1] <= range[0]) throw invalidOption('styles', `rows within the model's ${numWs} style rows`, group);
  return range;
}

export interface StyleMixOptions {
  /** Seeds of the rows (their styles outside the group are kept). */
  rows: number[];
  /** Seeds of the columns (they give the styles of the group). */
  cols: number[];
  /** 'coarse' | 'middle' | 'fine' | 'A-B' (ws rows). Default 'coarse'. */
  styles?: string;
  psi?: number;
  /** Class of a conditional model (the same for every face). */
  classIndex?: number;
  noiseMode?: NoiseMode;
  signal?: AbortSignal;
}

/**
 * The style-mixing figure of the StyleGAN papers as one image: the column seeds across the top,
 * the row seeds down the left, and in each cell the row's face with the column's styles of the
 * group. Tiles are the model's resolution; the top-left tile is blank.
 */
export async function styleMixGrid(gen: Generator, options: StyleMixOptions): Promise<Image> {
  if (gen.info.arch === 'progan') throw invalidOption('model', 'a StyleGAN2 model: ProGAN has no styles to mix', gen.info.arch);
  const { rows, cols } = options;
  if (!Array.isArray(rows) || rows.length < 1 || rows.length > 16) throw invalidOption('rows', '1 to 16 seeds', rows);
  if (!Array.isArray(cols) || cols.length < 1 || cols.length > 16) throw invalidOption('cols', '1 to 16 seeds', cols);
  const [r0, r1] = styleRows(options.styles ?? 'coarse', gen.info.numWs);
  const row = gen.info.numWs * gen.info.wDim;
  const { psi, classIndex, noiseMode, signal } = options;
  const wr = await gen.mapping({ seeds: rows, psi, classIndex, signal });
  const wc = await gen.mapping({ seeds: cols, psi, classIndex, signal });
  const mixed = new Float32Array(rows.length * cols.length * row);
  for (let i = 0; i < rows.length; i++) {
    for (let j = 0; j < cols.length; j++) {
      const at = (i * cols.length + j) * row;
      mixed.set(wr.subarray(i * row, (i + 1) * row), at);
      mixed.set(wc.subarray(j * row + r0 * gen.info.wDim, j * row + r1 * gen.info.wDim), at + r0 * gen.info.wDim);
    }
  }
  const [rowImgs, colImgs, cells] = [
    await gen.synthesis(wr, { noiseMode, signal }),
    await gen.synthesis(wc, { noiseMode, signal }),
    await gen.synthesis(mixed, { noiseMode, signal }),
  ];
  const tiles: (Image | undefined)[] = [undefined, ...colImgs];
  for (let i = 0; i < rows.length; i++) tiles.push(rowImgs[i], ...cells.slice(i * cols.length, (i + 1) * cols.length));
  const grid = tileImages(tiles, cols.length + 1);
  grid.model = gen.modelName;
  return grid;
}

/** Tiles equal-sized images into a grid, row by row (undefined: a blank tile). */
export function tileImages(images: (Image | undefined)[], columns: number): Image {
  const first = images.find((x): x is Image => x !== undefined);
  if (!first) throw invalidOption('images', 'at least one image', images);
  const { width: w, height: h, channels: ch } = first;
  const cols = Math.max(1, Math.min(columns, images.length));
  const rowsN = Math.ceil(images.length / cols);
  const W = w * cols;
  const data = new Uint8Array(W * h * rowsN * ch).fill(24);
  images.forEach((img, k) => {
    if (!img) return;
    if (img.width !== w || img.height !== h || img.channels !== ch) throw invalidOption('images', 'images of one size', img);
    const ox = (k % cols) * w;
    const oy = Math.floor(k / cols) * h;
    for (let y = 0; y < h; y++) data.set(img.data.subarray(y * w * ch, (y + 1) * w * ch), ((oy + y) * W + ox) * ch);
  });
  return { width: W, height: h * rowsN, channels: ch, data };
}
