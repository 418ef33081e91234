import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync, cpSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaceganError } from '../../lib/errors.js';
import { readTfjsGraphModel, type ProganConfig, type ProganTensor } from '../../lib/convert/tfjs.js';
import { createProganReference, proganTfhubOutput, proganToUint8 } from '../helpers/progan-reference.js';
import { float16ToFloat32, float32ToFloat16, readSafetensors } from '../../lib/safetensors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = path.join(root, 'test', 'fixtures', 'progan');
const tinyJson = path.join(fixtures, 'tiny-model.json');
const weightsFile = path.join(root, 'weights', 'progan-celeba128.safetensors');
const sourceDir = path.join(root, '.cache', 'progan', 'package', 'progan');

async function rejectsWith(p: Promise<unknown>, code: string, text?: RegExp): Promise<FaceganError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(FaceganError);
  expect((err as FaceganError).code).toBe(code);
  if (text) expect((err as FaceganError).message).toMatch(text);
  return err as FaceganError;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function psnr(a: ArrayLike<number>, b: ArrayLike<number>, peak: number): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return 10 * Math.log10((peak * peak * a.length) / se);
}

/** Rows/columns [y0, y0+h) × [x0, x0+w) of an HWC image of width W. */
function crop(img: Float32Array, W: number, C: number, y0: number, x0: number, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w * C);
  for (let y = 0; y < h; y++) out.set(img.subarray(((y0 + y) * W + x0) * C, ((y0 + y) * W + x0 + w) * C), y * w * C);
  return out;
}

const CANONICAL_ORDER = [
  'progan.dense', 'progan.b4.conv1',
  'progan.b8.conv0', 'progan.b8.conv1', 'progan.b16.conv0', 'progan.b16.conv1',
  'progan.b32.conv0', 'progan.b32.conv1', 'progan.b64.conv0', 'progan.b64.conv1',
  'progan.b128.conv0', 'progan.b128.conv1', 'progan.torgb',
].flatMap((n) => [`${n}.weight`, `${n}.bias`]);

/** The shapes docs/progan.md gives for z_dim Z and channels C[0..5] at 128². */
function expectedShapes(Z: number, C: number[]): Record<string, number[]> {
  const s: Record<string, number[]> = {
    'progan.dense.weight': [C[0]! * 16, Z], 'progan.dense.bias': [C[0]!],
    'progan.b4.conv1.weight': [C[0]!, C[0]!, 3, 3], 'progan.b4.conv1.bias': [C[0]!],
    'progan.torgb.weight': [3, C[5]!, 1, 1], 'progan.torgb.bias': [3],
  };
  for (let i = 1; i < 6; i++) {
    const r = 4 << i;
    s[`progan.b${r}.conv0.weight`] = [C[i]!, C[i - 1]!, 3, 3];
    s[`progan.b${r}.conv0.bias`] = [C[i]!];
    s[`progan.b${r}.conv1.weight`] = [C[i]!, C[i]!, 3, 3];
    s[`progan.b${r}.conv1.bias`] = [C[i]!];
  }
  return s;
}

// -------------------------------------------------------------------------------------------
// The tiny stand-in: the real graph's topology node for node, widths 8/6/4, random weights.

describe('readTfjsGraphModel on the tiny stand-in graph', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'facegan-progan-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** A copy of the tiny model in a fresh folder, with model.json edited by `edit`. */
  function tinyCopy(name: string, edit?: (m: Record<string, any>) => void): string {
    const dir = path.join(tmp, name);
    cpSync(fixtures, dir, { recursive: true, filter: (src) => !src.endsWith('.safetensors') });
    const model = JSON.parse(readFileSync(path.join(dir, 'tiny-model.json'), 'utf8'));
    edit?.(model);
    writeFileSync(path.join(dir, 'tiny-model.json'), JSON.stringify(model));
    return path.join(dir, 'tiny-model.json');
  }

  it('maps the graph to the canonical config and tensors', async () => {
    const { config, tensors } = await readTfjsGraphModel(tinyJson);
    expect(config).toEqual({
      arch: 'progan', z_dim: 8, img_resolution: 128, img_channels: 3, channels: [8, 8, 8, 8, 6, 4],
      lrelu_slope: 0.2, pixelnorm_eps: 1e-8, normalize_latent: true, upsample: 'nearest', weight_gain: 1,
      output: { tfhub_clip: [0, 1], scale: 127.5, offset: 63.75 },
    } satisfies ProganConfig);
    expect([...tensors.keys()]).toEqual(CANONICAL_ORDER);
    const shapes = expectedShapes(8, [8, 8, 8, 8, 6, 4]);
    for (const [name, t] of tensors) {
      expect(t.shape, name).toEqual(shapes[name]);
      expect(t.data).toBeInstanceOf(Float32Array);
      expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
    }
  });

  it('lays the dense start out as W[o·16 + y·4 + x][c] = K[3−y][3−x][c][o] and convs as OIHW', async () => {
    const { tensors } = await readTfjsGraphModel(tinyJson);
    // Decode the raw HWIO constants straight from the shard.
    const model = JSON.parse(readFileSync(tinyJson, 'utf8'));
    const bin = readFileSync(path.join(fixtures, 'tiny-weights.bin'));
    const raw = new Map<string, Float32Array>();
    let off = 0;
    for (const w of model.weightsManifest[0].weights) {
      const n = w.shape.reduce((a: number, b: number) => a * b, 1);
      raw.set(w.name, new Float32Array(bin.buffer.slice(bin.byteOffset + off, bin.byteOffset + off + 4 * n)));
      off += 4 * n;
    }
    const K = raw.get('module_apply_default/Conv2D/merged_input')!; // [4, 4, 8, 8]
    const W = tensors.get('progan.dense.weight')!.data; // [8·16, 8]
    for (const [o, y, x, c] of [[0, 0, 0, 0], [7, 3, 3, 7], [2, 1, 3, 5], [5, 2, 0, 1]] as const) {
      expect(W[(o * 16 + y * 4 + x) * 8 + c]).toBe(K[(((3 - y) * 4 + (3 - x)) * 8 + c) * 8 + o]);
    }
    const H = raw.get('module_apply_default/Conv2D_10/merged_input')!; // b128.conv0 [3, 3, 6, 4]
    const O = tensors.get('progan.b128.conv0.weight')!.data; // [4, 6, 3, 3]
    for (const [o, i, ky, kx] of [[0, 0, 0, 0], [3, 5, 2, 2], [1, 4, 0, 2], [2, 1, 2, 1]] as const) {
      expect(O[((o * 6 + i) * 3 + ky) * 3 + kx]).toBe(H[((ky * 3 + kx) * 6 + i) * 4 + o]);
    }
    expect(tensors.get('progan.torgb.bias')!.data).toEqual(raw.get('module_apply_default/add_26'));
    expect(tensors.get('progan.b64.conv1.bias')!.data).toEqual(raw.get('module/g_model/res_4/conv1/bias'));
  });

  it('the reference forward matches @tensorflow/tfjs running the same graph (max |Δ| ≤ 1e-4)', async () => {
    const tf = await import('@tensorflow/tfjs');
    await tf.setBackend('cpu');
    const model = JSON.parse(readFileSync(tinyJson, 'utf8'));
    const bin = readFileSync(path.join(fixtures, 'tiny-weights.bin'));
    const graph = await tf.loadGraphModel(tf.io.fromMemory({
      modelTopology: model.modelTopology,
      weightSpecs: model.weightsManifest[0].weights,
      weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
    }));
    const latents = [
      [0.3, -1.2, 0.8, 2.1, -0.4, 0.05, -1.7, 0.9],
      [-2.5, 0.1, 0.1, 0.4, 1.3, -0.6, 0.2, -0.9],
      [1, 1, 1, 1, 1, 1, 1, 1],
    ];
    const y = graph.execute(tf.tensor2d(latents.flat(), [3, 8])) as import('@tensorflow/tfjs').Tensor;
    expect(y.shape).toEqual([3, 128, 128, 3]);
    const expected = (await y.data()) as Float32Array;
    const { config, tensors } = await readTfjsGraphModel(tinyJson);
    const ref = createProganReference(config, tensors);
    const n = 128 * 128 * 3;
    for (const [i, z] of latents.entries()) {
      const v = ref.forward(z);
      const out = proganTfhubOutput(config, v);
      const want = expected.subarray(i * n, (i + 1) * n);
      expect(maxAbsDiff(out, want)).toBeLessThanOrEqual(1e-4);
      // Not a vacuous match: most values are inside the clip range and the images differ.
      expect(want.filter((x) => x > 0 && x < 1).length).toBeGreaterThan(0.9 * n);
      if (i > 0) expect(maxAbsDiff(want, expected.subarray(0, n))).toBeGreaterThan(0.05);
    }
  });

  it('computes an output window exactly as the same part of the full image', async () => {
    const { config, tensors } = await readTfjsGraphModel(tinyJson);
    const ref = createProganReference(config, tensors);
    const z = [0.5, -0.5, 1.5, 0.2, -1, 0.7, 0.1, -0.3];
    const full = ref.forward(z);
    for (const [y, x, h, w] of [[48, 48, 32, 32], [0, 0, 5, 9], [121, 100, 7, 28], [63, 1, 1, 1]] as const) {
      expect(ref.forward(z, { x, y, width: w, height: h })).toEqual(crop(full, 128, 3, y, x, h, w));
    }
    expect(() => ref.forward(z, { x: 120, y: 0, width: 9, height: 1 })).toThrow(FaceganError);
    expect(() => ref.forward([1, 2, 3])).toThrow(/latent of length 8/);
  });

  it('maps pixels as round(clamp(v·127.5 + 63.75, 0, 255))', async () => {
    const { config } = await readTfjsGraphModel(tinyJson);
    expect([...proganToUint8(config, Float32Array.from([-0.5, 1.5, 0.5, -3, 9, 0, 1]))]).toEqual([0, 255, 128, 0, 255, 64, 191]);
  });

  it('accepts a directory and float16-quantized weights', async () => {
    const { tensors: f32 } = await readTfjsGraphModel(tinyJson);
    const dir = path.join(tmp, 'f16');
    const json = tinyCopy('f16');
    const model = JSON.parse(readFileSync(json, 'utf8'));
    const bin = readFileSync(path.join(dir, 'tiny-weights.bin'));
    const parts: Buffer[] = [];
    let off = 0;
    for (const w of model.weightsManifest[0].weights) {
      const n = w.shape.reduce((a: number, b: number) => a * b, 1);
      const bytes = bin.subarray(off, off + 4 * n);
      off += 4 * n;
      if (w.dtype === 'float32') {
        w.quantization = { dtype: 'float16', original_dtype: 'float32' };
        const h = float32ToFloat16(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
        parts.push(Buffer.from(h.buffer));
      } else parts.push(bytes);
    }
    writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ ...model, weightsManifest: [{ paths: ['w16.bin'], weights: model.weightsManifest[0].weights }] }));
    writeFileSync(path.join(dir, 'w16.bin'), Buffer.concat(parts));
    const { config, tensors } = await readTfjsGraphModel(dir);
    expect(config.lrelu_slope).toBeCloseTo(0.2, 3);
    for (const [name, t] of tensors) expect(t.data, name).toEqual(float16ToFloat32(float32ToFloat16(f32.get(name)!.data)));
  });

  it('refuses missing and truncated files', async () => {
    await rejectsWith(readTfjsGraphModel(path.join(tmp, 'nope')), 'ERR_FILE_NOT_FOUND');
    const noShard = tinyCopy('noshard');
    unlinkSync(path.join(path.dirname(noShard), 'tiny-weights.bin'));
    await rejectsWith(readTfjsGraphModel(noShard), 'ERR_FILE_NOT_FOUND', /tiny-weights\.bin/);
    const short = tinyCopy('short');
    truncateSync(path.join(path.dirname(short), 'tiny-weights.bin'), 25492 - 100);
    await rejectsWith(readTfjsGraphModel(short), 'ERR_TRUNCATED_FILE', /'module_apply_default\/[^']+' needs bytes \[\d+, 25400\) .* hold only 25392 bytes/);
    const long = tinyCopy('long');
    writeFileSync(path.join(path.dirname(long), 'tiny-weights.bin'), Buffer.concat([readFileSync(path.join(fixtures, 'tiny-weights.bin')), Buffer.alloc(8)]));
    await rejectsWith(readTfjsGraphModel(long), 'ERR_CORRUPT_FILE', /8 bytes more/);
  });

  it('refuses ops it does not understand, naming the node', async () => {
    const p = tinyCopy('sigmoid', (m) => {
      m.modelTopology.node.find((n: { name: string }) => n.name === 'module_apply_default/LeakyRelu_5/Maximum').op = 'Sigmoid';
    });
    await rejectsWith(readTfjsGraphModel(p), 'ERR_UNSUPPORTED_ARCH', /LeakyRelu_5\/Maximum.*Sigmoid/);
  });

  it('refuses known ops arranged into anything but ProGAN', async () => {
    // The [0, 1] clip bypassed: its Minimum is left dangling as a second output.
    const clip = tinyCopy('clip', (m) => {
      const node = m.modelTopology.node.find((n: { name: string }) => n.name === 'module_apply_default/clip_by_value_1');
      node.input = ['module_apply_default/add_27', 'module_apply_default/clip_by_value_1/y'];
    });
    await rejectsWith(readTfjsGraphModel(clip), 'ERR_UNSUPPORTED_ARCH');
    // Not a ×2 nearest-neighbour upsampling any more: Tile multiples [2, 1, 1, 1].
    const tile = tinyCopy('tile');
    const bin = path.join(path.dirname(tile), 'tiny-weights.bin');
    const model = JSON.parse(readFileSync(tile, 'utf8'));
    let off = 0;
    for (const w of model.weightsManifest[0].weights) {
      if (w.name === 'module_apply_default/Tile_2/multiples') break;
      off += 4 * w.shape.reduce((a: number, b: number) => a * b, 1);
    }
    const bytes = readFileSync(bin);
    bytes.writeInt32LE(2, off);
    writeFileSync(bin, bytes);
    await rejectsWith(readTfjsGraphModel(tile), 'ERR_UNSUPPORTED_ARCH', /Tile_2.*multiples/);
  });

  it('refuses quantized weights and non-graph models clearly', async () => {
    const q = tinyCopy('uint8', (m) => {
      m.weightsManifest[0].weights[20].quantization = { dtype: 'uint8', min: -1, scale: 0.01 };
    });
    await rejectsWith(readTfjsGraphModel(q), 'ERR_UNKNOWN_FORMAT', /quantized to "uint8"/);
    const layers = tinyCopy('layers', (m) => {
      m.format = 'layers-model';
    });
    await rejectsWith(readTfjsGraphModel(layers), 'ERR_UNKNOWN_FORMAT', /graph models/);
    const notJson = path.join(tmp, 'bad.json');
    writeFileSync(notJson, '{"modelTopology": ');
    await rejectsWith(readTfjsGraphModel(notJson), 'ERR_UNKNOWN_FORMAT');
  });
});

// -------------------------------------------------------------------------------------------
// The shipped float16 weights against the real graph's tfjs outputs.

describe('weights/progan-celeba128.safetensors', () => {
  const W = 128;
  const C0 = 48;
  const CS = 32;
  let config: ProganConfig;
  let widened: Map<string, ProganTensor>;
  let fixture: ReturnType<typeof readSafetensors>;

  beforeAll(() => {
    const file = readSafetensors(readFileSync(weightsFile));
    expect(file.metadata.format).toBe('facegan');
    expect(file.metadata.format_version).toBe('1');
    expect(file.metadata.licence).toBe('Apache-2.0');
    expect(file.metadata.source).toMatch(/progan-128/);
    config = JSON.parse(file.metadata.config!) as ProganConfig;
    widened = new Map();
    for (const [name, t] of file.tensors) {
      expect(t.dtype, name).toBe('F16');
      widened.set(name, { dtype: 'F32', shape: t.shape, data: float16ToFloat32(t.data as Uint16Array) });
    }
    fixture = readSafetensors(readFileSync(path.join(fixtures, 'progan-tfjs-outputs.safetensors')));
  });

  it('holds the documented config and tensors (22.9 M parameters)', () => {
    expect(config).toEqual({
      arch: 'progan', z_dim: 512, img_resolution: 128, img_channels: 3, channels: [512, 512, 512, 512, 256, 128],
      lrelu_slope: 0.2, pixelnorm_eps: 1e-8, normalize_latent: true, upsample: 'nearest', weight_gain: 1,
      output: { tfhub_clip: [0, 1], scale: 127.5, offset: 63.75 },
    });
    expect([...widened.keys()]).toEqual(CANONICAL_ORDER);
    const shapes = expectedShapes(512, config.channels);
    let params = 0;
    for (const [name, t] of widened) {
      expect(t.shape, name).toEqual(shapes[name]);
      params += t.data.length;
    }
    expect(params).toBe(22_926_467);
  });

  it('the reference on the fp16 weights matches tfjs running the graph with the same weights (max |Δ| ≤ 1e-4) and the fp32 graph at ≥ 40 dB', () => {
    const ref = createProganReference(config, widened);
    const latents = fixture.tensors.get('latents')!.data as Float64Array;
    const images = fixture.tensors.get('images')!.data as Float32Array;
    const f16w = fixture.tensors.get('images_f16w_center32')!.data as Float32Array;
    expect(fixture.tensors.get('images')!.shape).toEqual([4, 128, 128, 3]);
    // The 16×16 middle of the fixture's 32×32 centre crop, for all four seeds (~1 s each).
    const S = 16;
    const D = (CS - S) / 2;
    const n = CS * CS * 3;
    for (let i = 0; i < 4; i++) {
      const v = ref.forward(latents.subarray(i * 512, (i + 1) * 512), { x: C0 + D, y: C0 + D, width: S, height: S });
      const out = proganTfhubOutput(config, v);
      expect(maxAbsDiff(out, crop(f16w.subarray(i * n, (i + 1) * n), CS, 3, D, D, S, S))).toBeLessThanOrEqual(1e-4);
      const fp32 = crop(images.subarray(i * W * W * 3, (i + 1) * W * W * 3), W, 3, C0 + D, C0 + D, S, S);
      expect(psnr(out, fp32, 1)).toBeGreaterThanOrEqual(40);
      // The pixels facegan renders, (v + 0.5)·127.5, are hardly ever saturated (the module's
      // clip(v, 0, 1) saturates over a third of all values; docs/progan.md).
      const px = proganToUint8(config, v);
      expect(px.filter((p) => p === 0 || p === 255).length).toBeLessThanOrEqual(0.05 * px.length);
    }
  });

  it('the fixture latents are numpy RandomState(seed).randn(1, 512)', () => {
    const latents = fixture.tensors.get('latents')!.data as Float64Array;
    expect(JSON.parse(fixture.metadata.seeds!)).toEqual([0, 1, 42, 1234]);
    expect([...latents.subarray(0, 3)]).toEqual([1.764052345967664, 0.4001572083672233, 0.9787379841057392]);
  });

  // Only where the float32 source has been fetched (node scripts/make-progan-fixture.mjs does).
  it.skipIf(!existsSync(path.join(sourceDir, 'model.json')))('(source present) the float32 reference matches the original tfjs outputs (max |Δ| ≤ 1e-4)', async () => {
    const { config: c32, tensors } = await readTfjsGraphModel(sourceDir);
    expect(c32).toEqual(config);
    const ref = createProganReference(c32, tensors);
    const latents = fixture.tensors.get('latents')!.data as Float64Array;
    const images = fixture.tensors.get('images')!.data as Float32Array;
    const i = 2; // seed 42
    const out = proganTfhubOutput(c32, ref.forward(latents.subarray(i * 512, (i + 1) * 512), { x: 40, y: 64, width: 24, height: 12 }));
    expect(maxAbsDiff(out, crop(images.subarray(i * W * W * 3, (i + 1) * W * W * 3), W, 3, 64, 40, 12, 24))).toBeLessThanOrEqual(1e-4);
  });
});
