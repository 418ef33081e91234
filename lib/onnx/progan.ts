/**
 * ProGAN (docs/progan.md) → one ONNX graph: z [N, z_dim] → img [N, C, R, R], the toRGB output v
 * before any clip (pixels are round(clamp(v·scale + offset, 0, 255)) with the config's `output`).
 *
 *   ẑ = z·rsqrt(mean(z²) + ε)
 *   a = pixnorm(lrelu(dense(ẑ) + b))            Gemm → Reshape [N, C4, 4, 4]
 *   a = pixnorm(lrelu(conv3x3(a) + b))          b4.conv1
 *   per block: nearest ×2 (Resize), conv0, conv1 (each conv + bias, lrelu, pixnorm)
 *   v = conv1x1(a) + b
 */
import { FaceganError } from '../errors.js';
import type { ProganConfig } from '../convert/tfjs.js';
import { GraphBuilder } from './builder.js';
import type { OnnxModel } from './model.js';

type Tensors = ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: Float32Array }>;

/** Every canonical ProGAN tensor with its shape (docs/progan.md), in canonical order. */
export function proganTensorShapes(config: ProganConfig): Map<string, number[]> {
  const C = config.channels;
  const m = new Map<string, number[]>();
  m.set('progan.dense.weight', [16 * C[0]!, config.z_dim]);
  m.set('progan.dense.bias', [C[0]!]);
  m.set('progan.b4.conv1.weight', [C[0]!, C[0]!, 3, 3]);
  m.set('progan.b4.conv1.bias', [C[0]!]);
  for (let i = 1; i < C.length; i++) {
    const r = 4 << i;
    m.set(`progan.b${r}.conv0.weight`, [C[i]!, C[i - 1]!, 3, 3]);
    m.set(`progan.b${r}.conv0.bias`, [C[i]!]);
    m.set(`progan.b${r}.conv1.weight`, [C[i]!, C[i]!, 3, 3]);
    m.set(`progan.b${r}.conv1.bias`, [C[i]!]);
  }
  m.set('progan.torgb.weight', [config.img_channels, C[C.length - 1]!, 1, 1]);
  m.set('progan.torgb.bias', [config.img_channels]);
  return m;
}

function unsupported(message: string): FaceganError {
  return new FaceganError('ERR_UNSUPPORTED_ARCH', `ONNX export: ${message}`);
}

/** Checks the parts of a ProGAN config the exporter relies on, and the tensors' shapes. */
export function checkProgan(config: ProganConfig, tensors: Tensors): void {
  const R = config.img_resolution;
  const pos = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (!pos(config.z_dim) || !pos(config.img_channels) || !pos(R) || (R & (R - 1)) !== 0 || R < 4) {
    throw new FaceganError('ERR_CORRUPT_FILE', 'ONNX export: invalid ProGAN config (z_dim, img_channels, img_resolution)');
  }
  if (!Array.isArray(config.channels) || config.channels.length !== Math.log2(R) - 1 || !config.channels.every(pos)) {
    throw new FaceganError('ERR_CORRUPT_FILE', `ONNX export: ProGAN config has ${config.channels?.length} channel counts for resolution ${R}`);
  }
  if (config.weight_gain !== 1) throw unsupported(`ProGAN weight_gain ${config.weight_gain} (only 1: gains folded into the weights)`);
  if (config.upsample !== 'nearest') throw unsupported(`ProGAN upsample ${JSON.stringify(config.upsample)} (only 'nearest')`);
  if (config.normalize_latent !== true) throw unsupported('ProGAN without latent normalisation');
  if (!(config.lrelu_slope >= 0 && config.lrelu_slope < 1) || !(config.pixelnorm_eps > 0)) {
    throw new FaceganError('ERR_CORRUPT_FILE', 'ONNX export: invalid ProGAN lrelu_slope / pixelnorm_eps');
  }
  const expected = proganTensorShapes(config);
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) throw new FaceganError('ERR_CORRUPT_FILE', `Missing tensor ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new FaceganError('ERR_CORRUPT_FILE', `Tensor ${name} has shape [${t.shape.join(', ')}] but the config requires [${shape.join(', ')}]`);
    }
  }
  for (const name of tensors.keys()) if (!expected.has(name)) throw new FaceganError('ERR_CORRUPT_FILE', `Unexpected tensor ${JSON.stringify(name)} for this ProGAN config`);
}

export function proganToOnnx(config: ProganConfig, tensors: Tensors, opts: { opset: number; producerVersion: string }): OnnxModel {
  checkProgan(config, tensors);
  const b = new GraphBuilder(opts.opset);
  const get = (name: string): Float32Array => tensors.get(name)!.data;
  const C = config.channels;
  const R = config.img_resolution;
  const eps = b.scalar(config.pixelnorm_eps);
  const slope = Math.fround(config.lrelu_slope);

  const pixelNorm = (x: string): string => {
    const mean = b.reduceMean(b.op('Mul', [x, x]), [1], true);
    return b.op('Mul', [x, b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [mean, eps])])])]);
  };
  const act = (x: string): string => pixelNorm(b.op('LeakyRelu', [x], { alpha: { f: slope } }));
  const conv = (x: string, prefix: string, co: number, ci: number, k: number): string => {
    const w = b.tensor(`${prefix}.weight`, [co, ci, k, k], get(`${prefix}.weight`));
    const bias = b.tensor(`${prefix}.bias`, [co], get(`${prefix}.bias`));
    const p = (k - 1) / 2;
    return b.op('Conv', [x, w, bias], { kernel_shape: { ints: [k, k] }, pads: { ints: [p, p, p, p] } });
  };

  const z = b.input('z', ['N', config.z_dim]);
  // Dense 4×4: row o·16 + y·4 + x of the weight is channel o at (y, x); the bias is per channel.
  const c0 = C[0]!;
  const denseBias = new Float32Array(16 * c0);
  const db = get('progan.dense.bias');
  for (let o = 0; o < c0; o++) denseBias.fill(db[o]!, o * 16, o * 16 + 16);
  const W = b.tensor('progan.dense.weight', [16 * c0, config.z_dim], get('progan.dense.weight'));
  const B = b.tensor('progan.dense.bias', [16 * c0], denseBias);
  let a = b.op('Gemm', [pixelNorm(z), W, B], { transB: { i: 1 } });
  a = act(b.op('Reshape', [a, b.int64([4], [0, c0, 4, 4])]));
  a = act(conv(a, 'progan.b4.conv1', c0, c0, 3));
  const scales = b.tensor('upsample_scales', [4], Float32Array.of(1, 1, 2, 2));
  for (let i = 1; i < C.length; i++) {
    const r = 4 << i;
    a = b.op('Resize', [a, '', scales], {
      mode: { s: 'nearest' },
      coordinate_transformation_mode: { s: 'asymmetric' },
      nearest_mode: { s: 'floor' },
    });
    a = act(conv(a, `progan.b${r}.conv0`, C[i]!, C[i - 1]!, 3));
    a = act(conv(a, `progan.b${r}.conv1`, C[i]!, C[i]!, 3));
  }
  const wRgb = b.tensor('progan.torgb.weight', [config.img_channels, C[C.length - 1]!, 1, 1], get('progan.torgb.weight'));
  const bRgb = b.tensor('progan.torgb.bias', [config.img_channels], get('progan.torgb.bias'));
  b.op('Conv', [a, wRgb, bRgb], { kernel_shape: { ints: [1, 1] } }, 'img');
  b.output('img', ['N', config.img_channels, R, R]);
  return b.model('facegan_progan', {
    producerVersion: opts.producerVersion,
    doc: `ProGAN ${R}x${R} generator (z → toRGB output v, unclipped; pixel = round(clamp(v·${config.output.scale} + ${config.output.offset}, 0, 255))), exported by facegan-native`,
    metadata: {
      'facegan.arch': 'progan',
      'facegan.graph': 'one',
      'facegan.config': JSON.stringify(config),
    },
  });
}
