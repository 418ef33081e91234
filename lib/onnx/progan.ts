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
import { validateProganConfig, validateProganTensors, type ProganConfig } from '../convert/progan.js';
import { GraphBuilder } from './builder.js';
import type { OnnxModel } from './model.js';

type Tensors = ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: Float32Array }>;

/** Checks the config and the tensors' shapes (shared with the facegan-file reader). */
export function checkProgan(config: ProganConfig, tensors: Tensors): void {
  validateProganConfig(config);
  validateProganTensors(config, tensors);
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
