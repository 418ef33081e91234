/**
 * Synthetic StyleGAN2 network pickles for tests, in both layouts (StyleGAN2-ADA PyTorch with
 * torch_utils.persistence, and TensorFlow dnnlib.tflib.network.Network), built from a canonical
 * tensor map with knobs to break them in specific ways. The TF layout is produced by inverting
 * legacy.py's mapping here, independently of lib/convert/stylegan2.ts.
 */
import { expectedTensorShapes, type Float32Tensor, type StyleGAN2Config } from '../../../lib/convert/stylegan2.js';
import {
  Build, NewObj, call, dict, dumps, glob, numpyArray, orderedDict, persistent, torchTensor, tup,
  type PV,
} from './pickle-writer.js';

export const SMALL_CONFIG: StyleGAN2Config = {
  arch: 'stylegan2', z_dim: 8, w_dim: 6, c_dim: 0, img_resolution: 16, img_channels: 3, num_ws: 6,
  mapping_layers: 2, mapping_lr_multiplier: 0.01, channel_base: 64, channel_max: 8,
  conv_clamp: 256, num_fp16_res: 1,
};

/** A deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random canonical tensors for `config`. Values are multiples of 1/256 in [-2, 2), so that every
 * conversion step (including legacy.py's `mod_bias + 1`) is exact in float32.
 */
export function randomTensors(config: StyleGAN2Config, seed = 1): Map<string, Float32Tensor> {
  const next = rng(seed);
  const out = new Map<string, Float32Tensor>();
  for (const [name, shape] of expectedTensorShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = Math.floor(next() * 1024 - 512) / 256;
    out.set(name, { dtype: 'F32', shape: shape.slice(), data });
  }
  return out;
}

const STANDARD_FILTER = Float32Array.from([1, 3, 3, 1].flatMap((a) => [1, 3, 3, 1].map((b) => (a * b) / 64)));

interface Mod {
  cls: string;
  params: Record<string, PV>;
  buffers: Record<string, PV>;
  mods: Record<string, Mod>;
  attrs: Record<string, PV>;
}

function classFor(path: string[]): string {
  const last = path[path.length - 1]!;
  if (path.length === 0) return 'Generator';
  if (path.length === 1) return last === 'synthesis' ? 'SynthesisNetwork' : 'MappingNetwork';
  if (/^b\d+$/.test(last)) return 'SynthesisBlock';
  if (last === 'conv0' || last === 'conv1') return 'SynthesisLayer';
  if (last === 'torgb') return 'ToRGBLayer';
  return 'FullyConnectedLayer';
}

export interface PyTorchOptions {
  /** Edit the module tree (root = G_ema) before pickling. */
  edit?: (root: Mod) => void;
  /** Leave out G_ema. */
  noGEma?: boolean;
}

let keyCounter = 0;

/** A StyleGAN2-ADA PyTorch network pickle of `tensors`, with `G` holding other (doubled) values. */
export function pytorchPickle(config: StyleGAN2Config, tensors: Map<string, Float32Tensor>, options: PyTorchOptions = {}): Buffer {
  const build = (scale: number): Mod => {
    const root: Mod = { cls: 'Generator', params: {}, buffers: {}, mods: {}, attrs: {} };
    const at = (path: string[]): Mod => {
      let m = root;
      for (let i = 0; i < path.length; i++) {
        const k = path[i]!;
        m = m.mods[k] ??= { cls: classFor(path.slice(0, i + 1)), params: {}, buffers: {}, mods: {}, attrs: {} };
      }
      return m;
    };
    for (const [name, t] of tensors) {
      const parts = name.split('.');
      const leaf = parts.pop()!;
      const m = at(parts);
      const data = t.data.map((v) => v * scale);
      const isBuffer = leaf === 'w_avg' || leaf === 'noise_const';
      (isBuffer ? m.buffers : m.params)[leaf] = torchTensor(`k${keyCounter++}`, t.shape, data, !isBuffer);
    }
    root.attrs = {
      z_dim: config.z_dim, c_dim: config.c_dim, w_dim: config.w_dim, img_resolution: config.img_resolution,
      img_channels: config.img_channels, num_ws: config.num_ws,
      _init_kwargs: dict({ z_dim: config.z_dim, c_dim: config.c_dim, w_dim: config.w_dim, img_resolution: config.img_resolution, img_channels: config.img_channels }),
    };
    const syn = root.mods.synthesis!;
    syn.attrs = {
      w_dim: config.w_dim, img_resolution: config.img_resolution, num_ws: config.num_ws,
      _init_kwargs: dict({ w_dim: config.w_dim, channel_base: config.channel_base, channel_max: config.channel_max, num_fp16_res: config.num_fp16_res, conv_clamp: config.conv_clamp }),
    };
    for (const block of Object.values(syn.mods)) {
      block.attrs = { architecture: 'skip' };
      block.buffers.resample_filter = torchTensor(`k${keyCounter++}`, [4, 4], STANDARD_FILTER, false);
      for (const [lname, layer] of Object.entries(block.mods)) {
        layer.attrs = lname === 'torgb' ? { conv_clamp: config.conv_clamp } : { activation: 'lrelu', use_noise: true, conv_clamp: config.conv_clamp, up: lname === 'conv0' ? 2 : 1 };
        if (lname !== 'torgb') layer.buffers.resample_filter = torchTensor(`k${keyCounter++}`, [4, 4], STANDARD_FILTER, false);
        layer.mods.affine!.attrs = { activation: 'linear', bias_gain: 1 };
      }
    }
    const map = root.mods.mapping!;
    map.attrs = { z_dim: config.z_dim, c_dim: config.c_dim, w_dim: config.w_dim, num_layers: config.mapping_layers, _init_kwargs: dict({ num_layers: config.mapping_layers }) };
    for (const [fname, fc] of Object.entries(map.mods)) {
      fc.attrs = fname === 'embed' ? { activation: 'linear', bias_gain: 1 } : { activation: 'lrelu', bias_gain: config.mapping_lr_multiplier };
    }
    return root;
  };
  const toPV = (m: Mod): PV => persistent(m.cls, {
    training: false,
    _parameters: orderedDict(m.params),
    _buffers: orderedDict(m.buffers),
    _non_persistent_buffers_set: call('builtins.set', []),
    _modules: orderedDict(Object.fromEntries(Object.entries(m.mods).map(([k, v]) => [k, toPV(v)]))),
    ...m.attrs,
  });
  const gEma = build(1);
  options.edit?.(gEma);
  const top: Record<string, PV> = { G: toPV(build(2)), D: null };
  if (!options.noGEma) top.G_ema = toPV(gEma);
  top.training_set_kwargs = dict({ resolution: config.img_resolution });
  return dumps(dict(top), 4);
}

export interface TFOptions {
  kwargs?: Record<string, PV>;
  /** Extra variables (name → [shape, data]) in the synthesis component. */
  extraSynthesisVars?: Record<string, [number[], Float32Array]>;
  dropVars?: string[];
  version?: number;
  /** Use a network without mapping/synthesis components, like ProGAN. */
  noComponents?: boolean;
}

const f32 = (xs: ArrayLike<number>): Float32Array => Float32Array.from(xs);

/** A TensorFlow StyleGAN2 pickle (G, D, Gs) whose Gs converts (per legacy.py) to `tensors`. */
export function tfPickle(config: StyleGAN2Config, tensors: Map<string, Float32Tensor>, options: TFOptions = {}): Buffer {
  const get = (name: string): Float32Tensor => tensors.get(name)!;
  const mapping: [string, number[], Float32Array][] = [];
  const synthesis: [string, number[], Float32Array][] = [];
  const top: [string, number[], Float32Array][] = [['dlatent_avg', [config.w_dim], get('mapping.w_avg').data]];
  const dense = (t: Float32Tensor): [number[], Float32Array] => {
    const [o, i] = t.shape as [number, number];
    const out = new Float32Array(o * i);
    for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) out[b * o + a] = t.data[a * i + b]!;
    return [[i, o], out];
  };
  const conv = (t: Float32Tensor, flip: boolean): [number[], Float32Array] => {
    const [o, i, kh, kw] = t.shape as [number, number, number, number];
    const out = new Float32Array(t.data.length);
    for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) {
      const ty = flip ? kh - 1 - y : y;
      const tx = flip ? kw - 1 - x : x;
      out[((ty * kw + tx) * i + b) * o + a] = t.data[((a * i + b) * kh + y) * kw + x]!;
    }
    return [[kh, kw, i, o], out];
  };
  if (config.c_dim > 0) {
    mapping.push(['LabelEmbed/weight', ...dense(get('mapping.embed.weight'))]);
    mapping.push(['LabelEmbed/bias', [config.w_dim], get('mapping.embed.bias').data]);
  }
  for (let i = 0; i < config.mapping_layers; i++) {
    mapping.push([`Dense${i}/weight`, ...dense(get(`mapping.fc${i}.weight`))]);
    mapping.push([`Dense${i}/bias`, [config.w_dim], get(`mapping.fc${i}.bias`).data]);
  }
  let noise = 0;
  for (let r = 4; r <= config.img_resolution; r *= 2) {
    const b = `synthesis.b${r}`;
    if (r === 4) synthesis.push(['4x4/Const/const', [1, ...get(`${b}.const`).shape], get(`${b}.const`).data]);
    const layers: [string, string][] = r === 4 ? [['conv1', 'Conv']] : [['conv0', 'Conv0_up'], ['conv1', 'Conv1']];
    for (const [layer, scope] of layers) {
      const p = `${b}.${layer}`;
      synthesis.push([`${r}x${r}/${scope}/weight`, ...conv(get(`${p}.weight`), layer === 'conv0')]);
      synthesis.push([`${r}x${r}/${scope}/bias`, get(`${p}.bias`).shape, get(`${p}.bias`).data]);
      synthesis.push([`${r}x${r}/${scope}/noise_strength`, [], get(`${p}.noise_strength`).data]);
      synthesis.push([`${r}x${r}/${scope}/mod_weight`, ...dense(get(`${p}.affine.weight`))]);
      synthesis.push([`${r}x${r}/${scope}/mod_bias`, get(`${p}.affine.bias`).shape, f32(get(`${p}.affine.bias`).data.map((v) => v - 1))]);
      synthesis.push([`noise${noise++}`, [1, 1, r, r], get(`${p}.noise_const`).data]);
    }
    const t = `${b}.torgb`;
    synthesis.push([`${r}x${r}/ToRGB/weight`, ...conv(get(`${t}.weight`), false)]);
    synthesis.push([`${r}x${r}/ToRGB/bias`, get(`${t}.bias`).shape, get(`${t}.bias`).data]);
    synthesis.push([`${r}x${r}/ToRGB/mod_weight`, ...dense(get(`${t}.affine.weight`))]);
    synthesis.push([`${r}x${r}/ToRGB/mod_bias`, get(`${t}.affine.bias`).shape, f32(get(`${t}.affine.bias`).data.map((v) => v - 1))]);
  }
  for (const [name, [shape, data]] of Object.entries(options.extraSynthesisVars ?? {})) synthesis.push([name, shape, data]);
  const drop = new Set(options.dropVars ?? []);
  const vars = (list: [string, number[], Float32Array][], prefix: string): PV[] =>
    list.filter(([n]) => !drop.has(prefix + n)).map(([n, shape, data]) => tup(n, numpyArray(shape, data)));
  const network = (name: string, variables: PV[], components: Record<string, PV>, kwargs: Record<string, PV>): PV =>
    new Build(new NewObj(glob('dnnlib.tflib.network.Network'), []), dict({
      version: options.version ?? 4, name, static_kwargs: dict(kwargs), components: dict(components),
      build_module_src: '', build_func_name: 'G_main', variables,
    }));
  const kwargs: Record<string, PV> = {
    latent_size: config.z_dim, label_size: config.c_dim, dlatent_size: config.w_dim, resolution: config.img_resolution,
    num_channels: config.img_channels, mapping_layers: config.mapping_layers, fmap_base: config.channel_base / 2,
    fmap_max: config.channel_max, conv_clamp: config.conv_clamp, num_fp16_res: config.num_fp16_res, truncation_psi: 0.5,
    ...options.kwargs,
  };
  const topVars = [...vars(top, ''), tup('lod', call('numpy.core.multiarray.scalar', call('numpy.dtype', 'f4', false, true), Buffer.alloc(4)))];
  const components: Record<string, PV> = options.noComponents ? {} : {
    mapping: network('G_mapping', vars(mapping, 'mapping/'), {}, {}),
    synthesis: network('G_synthesis', vars(synthesis, 'synthesis/'), {}, {}),
  };
  const gs = network('G', options.noComponents ? [...topVars, ...vars(synthesis, 'synthesis/')] : topVars, components, kwargs);
  const d = network('D', [], {}, { resolution: config.img_resolution });
  return dumps(tup(gs, d, gs), 4);
}
