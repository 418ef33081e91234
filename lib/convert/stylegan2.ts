/**
 * StyleGAN2 generators from network pickles → the canonical tensors of docs/weights-format.md.
 *
 * Two sources:
 * - StyleGAN2-ADA / StyleGAN3-repo PyTorch pickles: a dict with `G_ema`, modules pickled through
 *   `torch_utils.persistence` (class name + state); we walk `_modules`, `_parameters` and
 *   `_buffers` like `state_dict()` and read the configuration from the modules' attributes and
 *   `_init_kwargs`.
 * - TensorFlow-era StyleGAN2 pickles: a tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network`
 *   states; we use `Gs` and map its variables exactly as the official `legacy.py` converter does.
 *
 * Also the validation shared by every reader: {@link validateConfig} and
 * {@link validateTensorShapes}.
 */
import { FaceganError } from '../errors.js';
import {
  BASE_GLOBALS, NdArray, PyDict, PyExtension, PyObject, PySet, PyTuple,
  globalTable, plainClass, pySequence, pyTypeName,
  type GlobalHandler, type GlobalTable, type PyValue,
} from './pickle.js';
import { engineTensorList } from './tensor-list.js';
import { TORCH_LEGACY_GLOBALS, TORCH_TENSOR_GLOBALS, TorchTensor } from './torch.js';

// ---------------------------------------------------------------------------------------------
// Types.

/** The generator configuration stored in `__metadata__.config` (see docs/weights-format.md). */
export interface StyleGAN2Config {
  arch: 'stylegan2';
  z_dim: number;
  w_dim: number;
  c_dim: number;
  img_resolution: number;
  img_channels: number;
  num_ws: number;
  mapping_layers: number;
  mapping_lr_multiplier: number;
  channel_base: number;
  channel_max: number;
  conv_clamp: number | null;
  num_fp16_res: number;
}

export interface Float32Tensor {
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

export interface ConvertedGenerator {
  config: StyleGAN2Config;
  /** Exactly the canonical tensors, in canonical order. */
  tensors: Map<string, Float32Tensor>;
  /** What it was converted from, e.g. `stylegan2-ada-pytorch pickle`. */
  source: string;
}

export const SOURCE_PYTORCH = 'stylegan2-ada-pytorch pickle';
export const SOURCE_TF = 'stylegan2-tf pickle';

function corrupt(message: string): FaceganError {
  return new FaceganError('ERR_CORRUPT_FILE', message);
}

function unsupported(message: string): FaceganError {
  return new FaceganError('ERR_UNSUPPORTED_ARCH', message);
}

// ---------------------------------------------------------------------------------------------
// Config and shapes.

const CONFIG_KEYS = [
  'arch', 'z_dim', 'w_dim', 'c_dim', 'img_resolution', 'img_channels', 'num_ws', 'mapping_layers',
  'mapping_lr_multiplier', 'channel_base', 'channel_max', 'conv_clamp', 'num_fp16_res',
] as const;

const MAX_DIM = 1 << 20;

function show(v: unknown, depth = 0): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (v === undefined) return 'nothing';
  const seq = pySequence(v as PyValue);
  if (seq !== undefined && depth < 2) return `[${seq.slice(0, 8).map((x) => show(x, depth + 1)).join(', ')}${seq.length > 8 ? ', …' : ''}]`;
  return pyTypeName(v as PyValue);
}

/**
 * Checks a configuration object (positive integers, a power-of-two resolution in 4…1024,
 * `num_ws == 2·log2(R) − 2`, …) and returns it typed.
 * @throws FaceganError ERR_CORRUPT_FILE naming the first bad field; ERR_UNSUPPORTED_ARCH for an
 *   `arch` other than `stylegan2`.
 */
/**
 * The accepted mapping_lr_multiplier (the official value is 0.01): it scales every mapping
 * weight and bias, and a value far outside this range only ever gives NaN faces.
 */
export const MAPPING_LR_RANGE: readonly [number, number] = [1e-6, 10];
/** The largest conv_clamp accepted (official: 256; null means no clamp). */
export const MAX_CONV_CLAMP = 65504;

export function validateConfig(raw: unknown): StyleGAN2Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw corrupt('Invalid generator config: not an object');
  const c = raw as Record<string, unknown>;
  if (c.arch !== 'stylegan2') {
    if (typeof c.arch === 'string') throw unsupported(`Unsupported generator architecture ${show(c.arch)} (only "stylegan2" is supported)`);
    throw corrupt(`Invalid generator config: arch must be "stylegan2" but is ${show(c.arch)}`);
  }
  for (const key of Object.keys(c)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) throw corrupt(`Invalid generator config: unknown field ${show(key)}`);
  }
  // The upper bounds are the engine's (native/core/network.cc): a config it would refuse is a
  // corrupt file here, not an engine failure later.
  const int = (key: string, min: number, max = MAX_DIM): number => {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw corrupt(`Invalid generator config: ${key} must be an integer in [${min}, ${max}] but is ${show(v)}`);
    }
    return v;
  };
  const z_dim = int('z_dim', 1, 65536);
  const w_dim = int('w_dim', 1, 65536);
  const c_dim = int('c_dim', 0, 65536);
  const img_resolution = int('img_resolution', 4);
  if (img_resolution > 1024 || (img_resolution & (img_resolution - 1)) !== 0) {
    throw corrupt(`Invalid generator config: img_resolution must be a power of two in [4, 1024] but is ${img_resolution}`);
  }
  const img_channels = int('img_channels', 1, 64);
  const num_ws = int('num_ws', 1);
  const expectedWs = 2 * Math.log2(img_resolution) - 2;
  if (num_ws !== expectedWs) throw corrupt(`Invalid generator config: num_ws must be ${expectedWs} (2·log2(${img_resolution}) − 2) but is ${num_ws}`);
  const mapping_layers = int('mapping_layers', 1, 64);
  const lr = c.mapping_lr_multiplier;
  if (typeof lr !== 'number' || !(lr >= MAPPING_LR_RANGE[0] && lr <= MAPPING_LR_RANGE[1])) {
    throw corrupt(`Invalid generator config: mapping_lr_multiplier must be a number in [${MAPPING_LR_RANGE.join(', ')}] (official models: 0.01) but is ${show(lr)}`);
  }
  const channel_base = int('channel_base', 1);
  const channel_max = int('channel_max', 1, 65536);
  const clamp = c.conv_clamp;
  if (clamp !== null && (typeof clamp !== 'number' || !(clamp > 0 && clamp <= MAX_CONV_CLAMP))) {
    throw corrupt(`Invalid generator config: conv_clamp must be a number in (0, ${MAX_CONV_CLAMP}] or null (official models: 256) but is ${show(clamp)}`);
  }
  const num_fp16_res = int('num_fp16_res', 0, 64);
  const config: StyleGAN2Config = {
    arch: 'stylegan2', z_dim, w_dim, c_dim, img_resolution, img_channels, num_ws, mapping_layers,
    mapping_lr_multiplier: lr, channel_base, channel_max, conv_clamp: clamp as number | null, num_fp16_res,
  };
  for (const r of blockResolutions(config)) {
    if (channelsAt(config, r) < 1) throw corrupt(`Invalid generator config: channel_base ${channel_base} gives no channels at resolution ${r}`);
  }
  return config;
}

/** Channels at resolution r: `min(channel_base // r, channel_max)`. */
export function channelsAt(config: Pick<StyleGAN2Config, 'channel_base' | 'channel_max'>, r: number): number {
  return Math.min(Math.floor(config.channel_base / r), config.channel_max);
}

/** 4, 8, …, img_resolution. */
export function blockResolutions(config: Pick<StyleGAN2Config, 'img_resolution'>): number[] {
  const out: number[] = [];
  for (let r = 4; r <= config.img_resolution; r *= 2) out.push(r);
  return out;
}

/**
 * Every required canonical tensor name with its shape, in canonical order: the engine's list
 * ({@link engineTensorList}, the one definition of the weight format).
 */
export function expectedTensorShapes(config: StyleGAN2Config): Map<string, number[]> {
  return engineTensorList(config).required;
}

/** Checks that a resample filter is the standard `[1,3,3,1]⊗[1,3,3,1]/64`. */
export function checkResampleFilter(name: string, shape: readonly number[], data: ArrayLike<number>): void {
  const taps = [1, 3, 3, 1];
  let ok = shape.length === 2 && shape[0] === 4 && shape[1] === 4 && data.length === 16;
  for (let i = 0; ok && i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      if (Math.abs(data[i * 4 + j]! - (taps[i]! * taps[j]!) / 64) > 1e-6) { ok = false; break; }
    }
  }
  if (!ok) throw unsupported(`Unsupported generator: ${name} is not the standard [1,3,3,1] resampling filter`);
}

/**
 * Checks that `tensors` holds exactly the canonical tensors of `config` with the right shapes
 * (plus, when `allowResampleFilters`, standard resample filters).
 * @throws FaceganError ERR_CORRUPT_FILE naming the first missing, unexpected or misshapen tensor.
 */
export function validateTensorShapes(
  config: StyleGAN2Config,
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
): void {
  const expected = expectedTensorShapes(config);
  for (const [name, t] of tensors) {
    const shape = expected.get(name);
    if (shape === undefined) throw corrupt(`Unexpected tensor ${show(name)} for this generator config`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw corrupt(`Tensor ${name} has shape [${t.shape.join(', ')}] but the config requires [${shape.join(', ')}]`);
    }
  }
  for (const name of expected.keys()) if (!tensors.has(name)) throw corrupt(`Missing tensor ${name}`);
}

// ---------------------------------------------------------------------------------------------
// Pickle globals.

/** An object saved through `torch_utils.persistence`: its class name and `__getstate__()`. */
export class PersistentObj extends PyExtension {
  constructor(readonly className: string, readonly version: PyValue, readonly state: PyValue) { super(); }
}

const reconstructPersistentObj: GlobalHandler = {
  call(args) {
    const [meta] = args;
    if (args.length !== 1 || !(meta instanceof PyDict)) throw corrupt('Corrupt network pickle: _reconstruct_persistent_obj expects a dict');
    if (meta.get('type') !== 'class') throw corrupt(`Corrupt network pickle: persistent object of type ${show(meta.get('type'))}`);
    const className = meta.get('class_name');
    if (typeof className !== 'string') throw corrupt('Corrupt network pickle: persistent object without a class name');
    return new PersistentObj(className, meta.get('version') ?? null, meta.get('state') ?? null);
  },
};

/** The globals a StyleGAN network pickle may name; everything else is refused. */
export const NETWORK_PICKLE_GLOBALS: GlobalTable = globalTable(
  BASE_GLOBALS,
  TORCH_TENSOR_GLOBALS,
  TORCH_LEGACY_GLOBALS,
  [
    ['torch_utils.persistence._reconstruct_persistent_obj', reconstructPersistentObj],
    ['dnnlib.tflib.network.Network', plainClass('dnnlib.tflib.network', 'Network')],
  ],
);

// ---------------------------------------------------------------------------------------------
// Dispatch.

function isTFNetwork(v: PyValue | undefined): v is PyObject {
  return v instanceof PyObject && v.module === 'dnnlib.tflib.network' && v.name === 'Network';
}

/** Converts the unpickled top-level value of a network pickle. */
export function convertNetworkPickle(value: PyValue): ConvertedGenerator {
  if (value instanceof PyDict) {
    if (value.has('G_ema')) return convertPyTorchGenerator(value.get('G_ema')!);
    if (value.has('g_ema')) throw unsupported('Unsupported checkpoint: a rosinality-style dict with g_ema (not supported yet)');
    throw corrupt(`Corrupt network pickle: a dict without G_ema (keys: ${[...value.keys()].slice(0, 8).map(show).join(', ')})`);
  }
  if (value instanceof PyTuple && value.length === 3 && value.items.every(isTFNetwork)) return convertTFGenerator(value.items[2] as PyObject);
  if (isTFNetwork(value)) return convertTFGenerator(value);
  throw corrupt(`Corrupt network pickle: expected a dict with G_ema or a TensorFlow (G, D, Gs) tuple, found ${pyTypeName(value)}`);
}

// ---------------------------------------------------------------------------------------------
// PyTorch (stylegan2-ada-pytorch / stylegan3 repo) pickles.

const MAX_MODULE_DEPTH = 16;

function moduleState(v: PyValue | undefined, path: string): PyDict {
  if (!(v instanceof PersistentObj)) throw corrupt(`Corrupt network pickle: ${path} is ${pyTypeName(v)}, not a persistent module`);
  if (!(v.state instanceof PyDict)) throw corrupt(`Corrupt network pickle: ${path} has no state dict`);
  return v.state;
}

function subModules(state: PyDict, path: string): PyDict {
  const m = state.get('_modules');
  if (!(m instanceof PyDict)) throw corrupt(`Corrupt network pickle: ${path} has no _modules`);
  return m;
}

function className(v: PyValue | undefined): string {
  return v instanceof PersistentObj ? v.className : pyTypeName(v);
}

/**
 * The parameters and persistent buffers of a persistent module and its submodules, named as
 * `state_dict()` names them (`synthesis.b4.conv1.weight`, …).
 */
export function moduleTensors(module: PyValue, prefix = ''): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  const seen = new Set<PyValue>();
  const walk = (mod: PyValue, path: string, depth: number): void => {
    const where = path === '' ? 'the module' : path.slice(0, -1);
    if (depth > MAX_MODULE_DEPTH) throw corrupt(`Corrupt network pickle: modules nest deeper than ${MAX_MODULE_DEPTH} at ${where}`);
    if (seen.has(mod)) throw corrupt(`Corrupt network pickle: module ${where} appears twice`);
    seen.add(mod);
    const state = moduleState(mod, where);
    const nonPersistent = state.get('_non_persistent_buffers_set');
    const skip = new Set<PyValue>(nonPersistent instanceof PySet ? nonPersistent.items : []);
    for (const field of ['_parameters', '_buffers'] as const) {
      const d = state.get(field);
      if (!(d instanceof PyDict)) throw corrupt(`Corrupt network pickle: ${where} has no ${field}`);
      for (const [k, v] of d.entries()) {
        if (typeof k !== 'string') throw corrupt(`Corrupt network pickle: ${where}.${field} has a non-string key`);
        if (v === null || (field === '_buffers' && skip.has(k))) continue;
        if (!(v instanceof TorchTensor)) throw corrupt(`Corrupt network pickle: ${path}${k} is ${pyTypeName(v)}, not a tensor`);
        out.set(path + k, v);
      }
    }
    for (const [k, v] of subModules(state, where).entries()) {
      if (typeof k !== 'string') throw corrupt(`Corrupt network pickle: ${where} has a non-string submodule name`);
      if (v === null) continue;
      walk(v, `${path}${k}.`, depth + 1);
    }
  };
  walk(module, prefix === '' ? '' : `${prefix}.`, 0);
  return out;
}

function intAttr(state: PyDict, key: string, path: string, fallback?: number): number {
  const v = state.get(key);
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw corrupt(`Corrupt network pickle: ${path}.${key} is ${show(v ?? undefined)}, not an integer`);
  return v;
}

function kwargsOf(state: PyDict): PyDict {
  const k = state.get('_init_kwargs');
  return k instanceof PyDict ? k : new PyDict();
}

function kwarg(d: PyDict, key: string): PyValue | undefined {
  return d.get(key);
}

/** Converts `G_ema` of a StyleGAN2-ADA / StyleGAN3-repo PyTorch pickle. */
export function convertPyTorchGenerator(G: PyValue): ConvertedGenerator {
  if (!(G instanceof PersistentObj)) throw corrupt(`Corrupt network pickle: G_ema is ${pyTypeName(G)}, not a persistent module`);
  if (G.className !== 'Generator') throw unsupported(`Unsupported generator: G_ema is a ${show(G.className)}, not a StyleGAN2 Generator`);
  const gState = moduleState(G, 'G_ema');
  const gMods = subModules(gState, 'G_ema');
  const synthesis = gMods.get('synthesis');
  const mapping = gMods.get('mapping');
  const synState = moduleState(synthesis, 'G_ema.synthesis');
  const mapState = moduleState(mapping, 'G_ema.mapping');
  const synMods = subModules(synState, 'G_ema.synthesis');
  const synNames = [...synMods.keys()].map(String);
  if (synNames.includes('input') || synNames.some((n) => /^L\d+_\d+_\d+$/.test(n))) {
    throw unsupported(`Unsupported generator: StyleGAN3 (config -t / -r): its synthesis network has an input layer and layers ${synNames.filter((n) => n.startsWith('L')).slice(0, 3).join(', ')}…; only StyleGAN2 generators are supported`);
  }
  if (className(synthesis) !== 'SynthesisNetwork') throw unsupported(`Unsupported generator: synthesis network class ${show(className(synthesis))}`);
  if (className(mapping) !== 'MappingNetwork') throw unsupported(`Unsupported generator: mapping network class ${show(className(mapping))}`);

  // Blocks: architecture 'skip' only.
  let convClamp: number | null | undefined;
  for (const [name, block] of synMods.entries()) {
    const path = `G_ema.synthesis.${String(name)}`;
    if (typeof name !== 'string' || !/^b\d+$/.test(name)) throw unsupported(`Unsupported generator: unknown synthesis module ${show(String(name))}`);
    if (className(block) !== 'SynthesisBlock') throw unsupported(`Unsupported generator: ${path} is a ${show(className(block))}`);
    const bState = moduleState(block, path);
    const arch = bState.get('architecture');
    if (arch !== undefined && arch !== 'skip') throw unsupported(`Unsupported generator: ${path} has architecture ${show(arch)}; only 'skip' is supported`);
    for (const [lname, layer] of subModules(bState, path).entries()) {
      const lpath = `${path}.${String(lname)}`;
      const lState = moduleState(layer, lpath);
      const cls = className(layer);
      if (cls === 'SynthesisLayer') {
        const act = lState.get('activation');
        if (act !== undefined && act !== 'lrelu') throw unsupported(`Unsupported generator: ${lpath} uses activation ${show(act)}`);
        if (lState.get('use_noise') === false) throw unsupported(`Unsupported generator: ${lpath} has no noise input (use_noise=False)`);
      } else if (cls !== 'ToRGBLayer') {
        throw unsupported(`Unsupported generator: ${lpath} is a ${show(cls)}`);
      }
      const clamp = lState.get('conv_clamp');
      if (clamp !== undefined) {
        if (clamp !== null && typeof clamp !== 'number') throw corrupt(`Corrupt network pickle: ${lpath}.conv_clamp is ${pyTypeName(clamp)}`);
        if (convClamp !== undefined && convClamp !== clamp) throw unsupported(`Unsupported generator: conv_clamp differs between layers (${String(convClamp)} vs ${String(clamp)})`);
        convClamp = clamp;
      }
    }
  }

  // Mapping: lrelu layers sharing one lr multiplier.
  const mapKw = kwargsOf(mapState);
  for (const key of ['embed_features', 'layer_features'] as const) {
    const v = kwarg(mapKw, key);
    const wDim = intAttr(gState, 'w_dim', 'G_ema');
    if (v !== undefined && v !== null && v !== wDim) throw unsupported(`Unsupported generator: mapping ${key}=${show(v)} differs from w_dim=${wDim}`);
  }
  let lr: number | undefined;
  for (const [name, fc] of subModules(mapState, 'G_ema.mapping').entries()) {
    const path = `G_ema.mapping.${String(name)}`;
    if (className(fc) !== 'FullyConnectedLayer') throw unsupported(`Unsupported generator: ${path} is a ${show(className(fc))}`);
    if (typeof name !== 'string' || !/^fc\d+$/.test(name)) continue; // embed: lr 1, linear
    const fState = moduleState(fc, path);
    const act = fState.get('activation');
    if (act !== undefined && act !== 'lrelu') throw unsupported(`Unsupported generator: ${path} uses activation ${show(act)}`);
    const gain = fState.get('bias_gain');
    if (gain !== undefined) {
      if (typeof gain !== 'number' || !(gain > 0)) throw corrupt(`Corrupt network pickle: ${path}.bias_gain is ${show(gain)}`);
      if (lr !== undefined && lr !== gain) throw unsupported('Unsupported generator: the mapping layers have different learning-rate multipliers');
      lr = gain;
    }
  }
  if (lr === undefined) {
    const v = kwarg(mapKw, 'lr_multiplier');
    lr = typeof v === 'number' ? v : 0.01;
  }

  const synKw = kwargsOf(synState);
  const numOr = (v: PyValue | undefined, fallback: number): PyValue => (v === undefined ? fallback : v);
  if (convClamp === undefined) {
    const v = kwarg(synKw, 'conv_clamp');
    convClamp = typeof v === 'number' ? v : null;
  }
  const config = validateConfig({
    arch: 'stylegan2',
    z_dim: intAttr(gState, 'z_dim', 'G_ema'),
    w_dim: intAttr(gState, 'w_dim', 'G_ema'),
    c_dim: intAttr(gState, 'c_dim', 'G_ema'),
    img_resolution: intAttr(gState, 'img_resolution', 'G_ema'),
    img_channels: intAttr(gState, 'img_channels', 'G_ema'),
    num_ws: intAttr(synState, 'num_ws', 'G_ema.synthesis'),
    mapping_layers: intAttr(mapState, 'num_layers', 'G_ema.mapping'),
    mapping_lr_multiplier: lr,
    channel_base: numOr(kwarg(synKw, 'channel_base'), 32768),
    channel_max: numOr(kwarg(synKw, 'channel_max'), 512),
    conv_clamp: convClamp,
    num_fp16_res: numOr(kwarg(synKw, 'num_fp16_res'), 0),
  });

  const state = moduleTensors(G);
  const { required: expected, optional } = engineTensorList(config);
  for (const [name, t] of state) {
    if (expected.has(name)) continue;
    if (optional.has(name)) {
      checkResampleFilter(name, t.shape, t.toFloat32());
      continue;
    }
    throw unsupported(`Unsupported generator: unknown tensor ${show(name)} (shape [${t.shape.join(', ')}])`);
  }
  const tensors = new Map<string, Float32Tensor>();
  for (const [name, shape] of expected) {
    const t = state.get(name);
    if (t === undefined) throw corrupt(`Corrupt network pickle: G_ema has no tensor ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw corrupt(`Corrupt network pickle: ${name} has shape [${t.shape.join(', ')}] but the config requires [${shape.join(', ')}]`);
    }
    tensors.set(name, { dtype: 'F32', shape: shape.slice(), data: t.toFloat32() });
  }
  return { config, tensors, source: SOURCE_PYTORCH };
}

// ---------------------------------------------------------------------------------------------
// TensorFlow StyleGAN2 pickles (dnnlib.tflib.network.Network states), as legacy.py converts them.

const TF_KNOWN_KWARGS = new Set([
  'latent_size', 'label_size', 'dlatent_size', 'resolution', 'num_channels',
  'mapping_layers', 'label_fmaps', 'mapping_fmaps', 'mapping_nonlinearity', 'mapping_lrmul', 'w_avg_beta',
  'fmap_base', 'fmap_max', 'num_fp16_res', 'conv_clamp', 'architecture', 'resample_kernel', 'use_noise', 'nonlinearity',
  'truncation_psi', 'truncation_cutoff', 'style_mixing_prob', 'structure',
]);

type TFVar = NdArray | number | boolean | bigint;

function tfState(net: PyValue, path: string): PyDict {
  if (!isTFNetwork(net)) throw corrupt(`Corrupt TensorFlow pickle: ${path} is ${pyTypeName(net)}, not a Network`);
  if (!(net.state instanceof PyDict)) throw corrupt(`Corrupt TensorFlow pickle: ${path} has no state dict`);
  return net.state;
}

/** All variables of a TF network and its components, named `component/…/variable`. */
function collectTFVariables(net: PyValue): Map<string, TFVar> {
  const out = new Map<string, TFVar>();
  const seen = new Set<PyValue>();
  const walk = (n: PyValue, prefix: string, depth: number): void => {
    const path = prefix === '' ? 'Gs' : `Gs/${prefix.slice(0, -1)}`;
    if (depth > 4) throw corrupt(`Corrupt TensorFlow pickle: components nest too deeply at ${path}`);
    if (seen.has(n)) throw corrupt(`Corrupt TensorFlow pickle: network ${path} appears twice`);
    seen.add(n);
    const state = tfState(n, path);
    const vars = pySequence(state.get('variables'));
    if (vars === undefined) throw corrupt(`Corrupt TensorFlow pickle: ${path} has no variables list`);
    for (const item of vars) {
      const pair = pySequence(item);
      if (pair === undefined || pair.length !== 2 || typeof pair[0] !== 'string') throw corrupt(`Corrupt TensorFlow pickle: ${path} has a malformed variable entry`);
      const value = pair[1]!;
      if (!(value instanceof NdArray) && typeof value !== 'number' && typeof value !== 'boolean' && typeof value !== 'bigint') {
        throw corrupt(`Corrupt TensorFlow pickle: variable ${prefix}${pair[0]} is ${pyTypeName(value)}, not an array`);
      }
      out.set(prefix + pair[0], value);
    }
    const comps = state.get('components');
    if (comps === undefined || comps === null) return;
    if (!(comps instanceof PyDict)) throw corrupt(`Corrupt TensorFlow pickle: ${path}.components is not a dict`);
    for (const [name, comp] of comps.entries()) {
      if (typeof name !== 'string') throw corrupt(`Corrupt TensorFlow pickle: ${path} has a non-string component name`);
      walk(comp, `${prefix}${name}/`, depth + 1);
    }
  };
  walk(net, '', 0);
  return out;
}

type TFTransform = 'copy' | 'dense' | 'conv' | 'conv_flip' | 'const' | 'noise' | 'plus1';

/** Converts the `Gs` network of a TensorFlow StyleGAN2 pickle. */
export function convertTFGenerator(Gs: PyObject): ConvertedGenerator {
  const state = tfState(Gs, 'Gs');
  const version = state.get('version');
  if (typeof version !== 'number') throw corrupt('Corrupt TensorFlow pickle: Gs has no version');
  if (version < 4) throw unsupported(`Unsupported TensorFlow pickle: network version ${version} is too old (StyleGAN2 pickles are version 4 or later)`);
  const kw = state.get('static_kwargs');
  if (!(kw instanceof PyDict)) throw corrupt('Corrupt TensorFlow pickle: Gs has no static_kwargs dict');
  for (const k of kw.keys()) {
    if (typeof k !== 'string' || !TF_KNOWN_KWARGS.has(k)) throw unsupported(`Unsupported TensorFlow generator: unknown build argument ${show(String(k))}`);
  }
  const arg = (name: string, fallback: PyValue): PyValue => {
    const v = kw.get(name);
    return v === undefined || v === null ? fallback : v;
  };
  const comps = state.get('components');
  const compNames = comps instanceof PyDict ? [...comps.keys()].map(String) : [];
  if (!compNames.includes('mapping') || !compNames.includes('synthesis')) {
    throw unsupported(`Unsupported TensorFlow network ${show(state.get('name') ?? '?')}: not a StyleGAN2 generator (components: ${compNames.map(show).join(', ') || 'none'}; ProGAN and other networks are not supported)`);
  }
  const check = (name: string, fallback: PyValue, ok: (v: PyValue) => boolean, what: string): void => {
    const v = arg(name, fallback);
    if (!ok(v)) throw unsupported(`Unsupported TensorFlow generator: ${name}=${show(v)} (${what})`);
  };
  check('architecture', 'skip', (v) => v === 'skip', "only the 'skip' architecture is supported");
  check('nonlinearity', 'lrelu', (v) => v === 'lrelu', 'only lrelu is supported');
  check('mapping_nonlinearity', 'lrelu', (v) => v === 'lrelu', 'only lrelu is supported');
  check('use_noise', true, (v) => v === true || v === 1, 'noise inputs are required');
  check('resample_kernel', null, (v) => {
    const s = v === null ? [1, 3, 3, 1] : pySequence(v);
    return s !== undefined && s.length === 4 && s[0] === 1 && s[1] === 3 && s[2] === 3 && s[3] === 1;
  }, 'only [1,3,3,1] is supported');

  const config = validateConfig({
    arch: 'stylegan2',
    z_dim: arg('latent_size', 512),
    w_dim: arg('dlatent_size', 512),
    c_dim: arg('label_size', 0),
    img_resolution: arg('resolution', 1024),
    img_channels: arg('num_channels', 3),
    num_ws: (() => {
      const r = arg('resolution', 1024);
      return typeof r === 'number' && r >= 4 ? 2 * Math.log2(r) - 2 : null;
    })(),
    mapping_layers: arg('mapping_layers', 8),
    mapping_lr_multiplier: arg('mapping_lrmul', 0.01),
    channel_base: (() => { const b = arg('fmap_base', 16384); return typeof b === 'number' ? b * 2 : b; })(),
    channel_max: arg('fmap_max', 512),
    conv_clamp: arg('conv_clamp', null),
    num_fp16_res: arg('num_fp16_res', 0),
  });
  for (const key of ['label_fmaps', 'mapping_fmaps'] as const) {
    const v = arg(key, null);
    if (v !== null && v !== config.w_dim) throw unsupported(`Unsupported TensorFlow generator: ${key}=${show(v)} differs from dlatent_size=${config.w_dim}`);
  }

  const vars = collectTFVariables(Gs);
  for (const name of vars.keys()) {
    if (/^synthesis\/ToRGB_lod\d+\//.test(name)) throw unsupported("Unsupported TensorFlow generator: architecture 'orig' (ToRGB_lod layers); only 'skip' is supported");
  }

  // canonical name → [TF variable, transform], following legacy.py.
  const plan = new Map<string, [string, TFTransform]>();
  const expected = expectedTensorShapes(config);
  const log2 = (r: number): number => Math.round(Math.log2(r));
  for (const name of expected.keys()) {
    let m: RegExpExecArray | null;
    if (name === 'mapping.w_avg') plan.set(name, ['dlatent_avg', 'copy']);
    else if (name === 'mapping.embed.weight') plan.set(name, ['mapping/LabelEmbed/weight', 'dense']);
    else if (name === 'mapping.embed.bias') plan.set(name, ['mapping/LabelEmbed/bias', 'copy']);
    else if ((m = /^mapping\.fc(\d+)\.(weight|bias)$/.exec(name))) plan.set(name, [`mapping/Dense${m[1]}/${m[2]}`, m[2] === 'weight' ? 'dense' : 'copy']);
    else if (name === 'synthesis.b4.const') plan.set(name, ['synthesis/4x4/Const/const', 'const']);
    else if ((m = /^synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(.+)$/.exec(name))) {
      const r = Number(m[1]);
      const layer = m[2]!;
      const field = m[3]!;
      const scope = `synthesis/${r}x${r}/${layer === 'torgb' ? 'ToRGB' : layer === 'conv0' ? 'Conv0_up' : r === 4 ? 'Conv' : 'Conv1'}`;
      if (field === 'weight') plan.set(name, [`${scope}/weight`, layer === 'conv0' ? 'conv_flip' : 'conv']);
      else if (field === 'bias') plan.set(name, [`${scope}/bias`, 'copy']);
      else if (field === 'noise_strength') plan.set(name, [`${scope}/noise_strength`, 'copy']);
      else if (field === 'noise_const') {
        const k = r === 4 ? 0 : layer === 'conv0' ? log2(r) * 2 - 5 : log2(r) * 2 - 4;
        plan.set(name, [`synthesis/noise${k}`, 'noise']);
      } else if (field === 'affine.weight') plan.set(name, [`${scope}/mod_weight`, 'dense']);
      else if (field === 'affine.bias') plan.set(name, [`${scope}/mod_bias`, 'plus1']);
    }
    if (!plan.has(name)) throw new Error(`internal: no TF mapping for ${name}`);
  }
  const used = new Set<string>([...plan.values()].map(([tf]) => tf));
  for (const name of vars.keys()) {
    if (name === 'lod' || used.has(name)) continue;
    throw unsupported(`Unsupported TensorFlow generator: unknown variable ${show(name)}`);
  }

  const tensors = new Map<string, Float32Tensor>();
  for (const [name, shape] of expected) {
    const [tfName, transform] = plan.get(name)!;
    const v = vars.get(tfName);
    if (v === undefined) throw corrupt(`Corrupt TensorFlow pickle: missing variable ${tfName} (for ${name})`);
    if (!(v instanceof NdArray)) throw corrupt(`Corrupt TensorFlow pickle: variable ${tfName} is not an array`);
    tensors.set(name, { dtype: 'F32', shape: shape.slice(), data: applyTransform(v, transform, shape, tfName) });
  }
  return { config, tensors, source: SOURCE_TF };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Applies a legacy.py transform to a TF array, checking that its shape matches `target`. */
function applyTransform(v: NdArray, transform: TFTransform, target: readonly number[], tfName: string): Float32Array {
  const s = v.shape;
  let source: number[];
  switch (transform) {
    case 'copy': case 'plus1': source = target.slice(); break;
    case 'dense': source = [target[1]!, target[0]!]; break;
    case 'conv': case 'conv_flip': source = [target[2]!, target[3]!, target[1]!, target[0]!]; break;
    case 'const': source = [1, ...target]; break;
    case 'noise': source = [1, 1, ...target]; break;
  }
  if (!sameShape(s, source)) {
    throw corrupt(`Corrupt TensorFlow pickle: variable ${tfName} has shape [${s.join(', ')}] but the config requires [${source.join(', ')}]`);
  }
  const src = v.toFloat32();
  switch (transform) {
    case 'copy': case 'const': case 'noise': return src;
    case 'plus1': {
      for (let i = 0; i < src.length; i++) src[i] = src[i]! + 1;
      return src;
    }
    case 'dense': {
      // [in, out] → [out, in]
      const [inF, outF] = s as [number, number];
      const out = new Float32Array(src.length);
      for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) out[o * inF + i] = src[i * outF + o]!;
      return out;
    }
    case 'conv': case 'conv_flip': {
      // [kh, kw, in, out] → [out, in, kh, kw]; the up-conv's kernel is also flipped spatially.
      const [kh, kw, cin, cout] = s as [number, number, number, number];
      const flip = transform === 'conv_flip';
      const out = new Float32Array(src.length);
      for (let y = 0; y < kh; y++) {
        const sy = flip ? kh - 1 - y : y;
        for (let x = 0; x < kw; x++) {
          const sx = flip ? kw - 1 - x : x;
          const base = (sy * kw + sx) * cin * cout;
          for (let i = 0; i < cin; i++) {
            const row = base + i * cout;
            for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = src[row + o]!;
          }
        }
      }
      return out;
    }
  }
}
