/**
 * Benchmark models: StyleGAN2 generators with random weights, made deterministically from a seed
 * (mulberry32 → Box–Muller normals), initialised like the official code (weights N(0,1), mapping
 * weights N(0,1)/lr_multiplier, affine biases 1) and then with non-zero biases, noise strengths
 * and w_avg so that every term of the network costs what it costs in a trained model.
 */
import { expectedTensorShapes, validateConfig } from '../dist/convert/index.js';

/** FFHQ-shaped StyleGAN2 configs. */
export function stylegan2Config(resolution, channelBase) {
  return validateConfig({
    arch: 'stylegan2',
    z_dim: 512, w_dim: 512, c_dim: 0,
    img_resolution: resolution, img_channels: 3, num_ws: 2 * Math.log2(resolution) - 2,
    mapping_layers: 8, mapping_lr_multiplier: 0.01,
    channel_base: channelBase, channel_max: 512,
    conv_clamp: null, num_fp16_res: 0,
  });
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normals(rand) {
  let spare;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = rand();
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** `{ config, tensors, source }` with every canonical tensor filled from `seed`. */
export function randomStyleGAN2(config, seed = 1) {
  const randn = normals(mulberry32(seed));
  const tensors = new Map();
  for (const [name, shape] of expectedTensorShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    let fill;
    if (/^mapping\.(fc\d+|embed)\.weight$/.test(name)) fill = () => randn() / config.mapping_lr_multiplier;
    else if (name.endsWith('.affine.bias')) fill = () => 1 + 0.1 * randn();
    else if (name.endsWith('.bias')) fill = () => 0.1 * randn();
    else if (name.endsWith('.noise_strength')) fill = () => 0.1 * randn();
    else if (name === 'mapping.w_avg') fill = () => 0.5 * randn();
    else fill = randn;
    for (let i = 0; i < data.length; i++) data[i] = fill();
    tensors.set(name, { dtype: 'F32', shape, data });
  }
  return { config, tensors, source: `random weights (bench/models.js, seed ${seed})` };
}

export function paramCount(model) {
  let n = 0;
  for (const t of model.tensors.values()) n += t.data.length;
  return n;
}
