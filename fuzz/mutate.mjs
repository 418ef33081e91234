// Mutations of checkpoint files for the fuzz harness (fuzz/run.mjs). Every mutation is a pure
// function of (base bytes, PRNG): mutant #i of a run with seed S is rebuilt from the same base
// with rng(mix(S, i)), so a reproducer can always be regenerated.
//
// Kinds (all formats): bitflip, truncate, huge (finite but huge floats, e.g. ±3.4e38, and
// NaN / Inf bit patterns in the weights), config (a config value changed: mapping_lr_multiplier,
// sizes, clamps, …), structure (the format's own fields: safetensors header length / dtypes /
// shapes / offsets, zip record fields, pickle opcodes and length fields, tfjs manifest entries).

/** mulberry32: a small seeded PRNG returning [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The PRNG seed of mutant `index` of a run with seed `seed`. */
export function mutantSeed(seed, index) {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index >>> 0, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const int = (r, n) => Math.floor(r() * n);
const pick = (r, list) => list[int(r, list.length)];

/** Interesting numbers for a config or header field. */
const NUMBERS = [0, -1, 1, 2, 3, 7, 255, 256, 4096, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, 1e308, -1e308, 1e-300, 0.5, 3.5, -0.01, 1e6];

function interestingValue(r, old) {
  const u = r();
  if (typeof old === 'number' && u < 0.35) return pick(r, [old * 2, old + 1, old - 1, old * 4096, -old, old / 1024, Math.round(old * 1.5)]);
  if (u < 0.85) return pick(r, NUMBERS);
  return pick(r, [null, 'x', true, [], {}, '1e308', [1, 2]]);
}

/** A byte offset: biased to the start and the end of the file, where the structure is. */
function position(r, len) {
  const u = r();
  if (len === 0) return 0;
  if (u < 0.4) return int(r, Math.min(len, 65536));
  if (u < 0.6) return Math.max(0, len - 1 - int(r, Math.min(len, 65536)));
  return int(r, len);
}

export function bitflip(buf, r) {
  const out = Buffer.from(buf);
  const flips = 1 + int(r, r() < 0.7 ? 4 : 32);
  const where = [];
  for (let k = 0; k < flips; k++) {
    const p = position(r, out.length);
    const bit = int(r, 8);
    out[p] ^= 1 << bit;
    where.push(`${p}.${bit}`);
  }
  return { bytes: out, what: `bitflip ${where.slice(0, 8).join(',')}${where.length > 8 ? ',…' : ''}` };
}

export function truncate(buf, r) {
  const n = r() < 0.5 ? int(r, Math.min(buf.length, 65536)) : int(r, buf.length);
  return { bytes: Buffer.from(buf.subarray(0, n)), what: `truncate to ${n} of ${buf.length}` };
}

const F32_PATTERNS = [0x7f7fffff, 0xff7fffff, 0x7f000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7e967699 /* 1e38 */];
const F16_PATTERNS = [0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00];

/** Writes huge / non-finite float32 (or float16) bit patterns at positions in [lo, hi). */
function hugeIn(buf, r, lo, hi, half) {
  const out = Buffer.from(buf);
  const n = 1 + int(r, r() < 0.5 ? 4 : 256);
  const step = half ? 2 : 4;
  const slots = Math.floor((hi - lo) / step);
  if (slots <= 0) return { bytes: out, what: 'huge (no room)' };
  const pattern = half ? pick(r, F16_PATTERNS) : pick(r, F32_PATTERNS);
  const start = int(r, slots);
  const run = r() < 0.3; // a run of consecutive values (a whole row) or scattered ones
  for (let k = 0; k < n; k++) {
    const slot = run ? Math.min(slots - 1, start + k) : int(r, slots);
    const p = lo + slot * step;
    if (half) out.writeUInt16LE(pattern, p);
    else out.writeUInt32LE(pattern >>> 0, p);
  }
  return { bytes: out, what: `huge ${half ? 'f16' : 'f32'} 0x${pattern.toString(16)} ×${n}${run ? ' run' : ''}` };
}

// ---------------------------------------------------------------------------------------------
// safetensors

function parseSafetensors(buf) {
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  return { n, header, data: buf.subarray(8 + n) };
}

function buildSafetensors(header, data) {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  const h = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

const tensorNames = (header) => Object.keys(header).filter((k) => k !== '__metadata__');

function safetensorsConfig(buf, r) {
  const { header, data } = parseSafetensors(buf);
  const meta = header.__metadata__ ?? {};
  let what;
  if (r() < 0.85 && typeof meta.config === 'string') {
    const config = JSON.parse(meta.config);
    const keys = Object.keys(config);
    const key = r() < 0.35 && 'mapping_lr_multiplier' in config ? 'mapping_lr_multiplier' : pick(r, keys);
    if (key === 'output' && config.output && typeof config.output === 'object') {
      const sub = pick(r, Object.keys(config.output));
      config.output[sub] = interestingValue(r, config.output[sub]);
      what = `config output.${sub} = ${JSON.stringify(config.output[sub])}`;
    } else if (Array.isArray(config[key])) {
      const i = int(r, config[key].length + 1);
      if (i === config[key].length) config[key].push(interestingValue(r, 1));
      else config[key][i] = interestingValue(r, config[key][i]);
      what = `config ${key}[${i}] = ${JSON.stringify(config[key][i])}`;
    } else {
      config[key] = key === 'mapping_lr_multiplier' ? pick(r, [4096, 1e308, 1e-300, 0, -0.01, 1, 100, 1e-7, 2]) : interestingValue(r, config[key]);
      what = `config ${key} = ${JSON.stringify(config[key])}`;
    }
    meta.config = JSON.stringify(config);
  } else {
    const key = pick(r, ['format', 'format_version', 'config', 'source']);
    meta[key] = pick(r, ['', 'facegan', '2', '{', '{}', 'null', '[]', 'x'.repeat(1000)]);
    what = `metadata ${key} = ${JSON.stringify(meta[key]).slice(0, 40)}`;
  }
  header.__metadata__ = meta;
  return { bytes: buildSafetensors(header, data), what };
}

function safetensorsStructure(buf, r) {
  const { n, header, data } = parseSafetensors(buf);
  const u = r();
  if (u < 0.15) {
    const out = Buffer.from(buf);
    const v = pick(r, [0, 1, n - 1, n + 1, n + 8, buf.length, 2 ** 32, 2 ** 53, 2 ** 63]);
    out.writeBigUInt64LE(BigInt(v) & 0xffffffffffffffffn, 0);
    return { bytes: out, what: `header length ${n} → ${v}` };
  }
  const names = tensorNames(header);
  const name = pick(r, names);
  const t = header[name];
  let what;
  if (u < 0.35) {
    t.dtype = pick(r, ['F32', 'F16', 'BF16', 'F64', 'I8', 'U8', 'I64', 'BOOL', 'bogus', 7]);
    what = `${name}.dtype = ${t.dtype}`;
  } else if (u < 0.6) {
    const i = int(r, t.shape.length + 1);
    if (i === t.shape.length) t.shape.push(pick(r, [1, 0, 2]));
    else t.shape[i] = interestingValue(r, t.shape[i]);
    what = `${name}.shape = ${JSON.stringify(t.shape)}`;
  } else if (u < 0.85) {
    const i = int(r, 2);
    t.data_offsets[i] = pick(r, [t.data_offsets[i] + 1, t.data_offsets[i] - 1, t.data_offsets[i] + 4, 0, data.length, data.length + 1, 2 ** 53, -4, t.data_offsets[1 - i]]);
    what = `${name}.data_offsets = ${JSON.stringify(t.data_offsets)}`;
  } else if (u < 0.93) {
    const other = pick(r, names);
    header[other] = { ...header[name] };
    what = `${other} aliases ${name}'s data`;
  } else {
    delete header[name];
    header[pick(r, ['x', name + '_', 'mapping.fc9.weight', '__proto__'])] = t;
    what = `${name} renamed`;
  }
  return { bytes: buildSafetensors(header, data), what };
}

function safetensorsHuge(buf, r) {
  const { n, header } = parseSafetensors(buf);
  const names = tensorNames(header);
  const name = pick(r, names);
  const t = header[name];
  const res = hugeIn(buf, r, 8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1], t.dtype !== 'F32');
  return { bytes: res.bytes, what: `${res.what} in ${name}` };
}

// ---------------------------------------------------------------------------------------------
// pickles (also the data.pkl inside a torch zip)

const OPCODES = Buffer.from('().0123ISLFJKMNPQRVXbcdeghijlopqrstu}]\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95CBGTU', 'latin1');
const CONFIG_NAMES = ['z_dim', 'w_dim', 'c_dim', 'img_resolution', 'img_channels', 'num_ws', 'num_layers', 'lr_multiplier', 'mapping_layers',
  'conv_clamp', 'channel_base', 'channel_max', 'num_fp16_res', 'resolution', 'latent_size', 'dlatent_size', 'label_size', 'num_channels',
  'fmap_base', 'fmap_max', 'mapping_lrmul', 'size', 'style_dim', 'n_mlp', 'channel_multiplier', 'lr_mlp', 'architecture'];

function findAll(buf, needle, lo = 0, hi = buf.length, max = 4096) {
  const out = [];
  let p = buf.indexOf(needle, lo);
  while (p >= 0 && p < hi && out.length < max) {
    out.push(p);
    p = buf.indexOf(needle, p + 1);
  }
  return out;
}

/** A config value in a pickle: the number opcode right after a config key's string. */
function pickleConfig(buf, r, lo = 0, hi = buf.length) {
  const out = Buffer.from(buf);
  const hits = [];
  for (const name of CONFIG_NAMES) {
    for (const p of findAll(buf, Buffer.from(name, 'latin1'), lo, hi, 64)) hits.push([name, p + name.length]);
  }
  if (hits.length === 0) return bitflip(buf, r);
  const [name, at] = pick(r, hits);
  // skip a MEMOIZE / BINPUT after the key string
  let p = at;
  if (out[p] === 0x94) p += 1;
  else if (out[p] === 0x71) p += 2;
  else if (out[p] === 0x72) p += 5;
  const op = out[p];
  const v = pick(r, NUMBERS);
  if (op === 0x4b /* K */) out[p + 1] = int(r, 256);
  else if (op === 0x4d /* M */ && p + 3 <= out.length) out.writeUInt16LE(int(r, 65536), p + 1);
  else if (op === 0x4a /* J */ && p + 5 <= out.length) out.writeInt32LE(Math.trunc(Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, v))), p + 1);
  else if (op === 0x47 /* G */ && p + 9 <= out.length) out.writeDoubleBE(pick(r, [4096, 1e308, -1, 0, NaN, Infinity, 1e-300, 2 ** 40]), p + 1);
  else if (p < out.length) out[p] = pick(r, [0x4b, 0x4d, 0x4a, 0x47, 0x4e, 0x88, 0x89, 0x29]);
  return { bytes: out, what: `pickle config ${name} @${p} op 0x${(op ?? 0).toString(16)}` };
}

/** Opcode bytes, length fields and global names of a pickle in [lo, hi). */
function pickleStructure(buf, r, lo = 0, hi = buf.length) {
  const out = Buffer.from(buf);
  const u = r();
  const span = Math.max(1, Math.min(hi - lo, 1 << 20));
  if (u < 0.35) {
    const n = 1 + int(r, 3);
    const ps = [];
    for (let k = 0; k < n; k++) {
      const p = lo + int(r, span);
      out[p] = pick(r, [...OPCODES]);
      ps.push(p);
    }
    return { bytes: out, what: `pickle opcode at ${ps.join(',')}` };
  }
  if (u < 0.7) {
    // a length field: after BINUNICODE X / BINBYTES B (4 bytes), SHORT_BINUNICODE 0x8c / SHORT_BINBYTES C (1), BINUNICODE8 / BINBYTES8 (8)
    const kinds = [[0x58, 4], [0x42, 4], [0x8c, 1], [0x43, 1], [0x8d, 8], [0x8e, 8], [0x95, 8]];
    const [op, size] = pick(r, kinds);
    const hits = findAll(buf, Buffer.from([op]), lo, hi, 4096);
    if (hits.length === 0) return bitflip(buf, r);
    const p = pick(r, hits) + 1;
    if (p + size > out.length) return truncate(buf, r);
    const v = pick(r, [0, 1, 2 ** 31 - 1, 2 ** 32 - 1, 255, 1e9, 2 ** 53]);
    if (size === 1) out[p] = Math.min(255, v);
    else if (size === 4) out.writeUInt32LE(Math.min(2 ** 32 - 1, v), p);
    else out.writeBigUInt64LE(BigInt(Math.min(2 ** 53, v)), p);
    return { bytes: out, what: `pickle length field of op 0x${op.toString(16)} @${p} = ${v}` };
  }
  // a global: change module / name strings
  const words = ['torch', 'numpy', 'collections', '_codecs', 'dnnlib', 'torch_utils', '_rebuild_tensor_v2', 'FloatStorage', 'OrderedDict', 'reconstruct', 'encode', 'dtype'];
  const hits = [];
  for (const w of words) for (const p of findAll(buf, Buffer.from(w, 'latin1'), lo, hi, 32)) hits.push([w, p]);
  if (hits.length === 0) return bitflip(buf, r);
  const [w, p] = pick(r, hits);
  const repl = pick(r, ['os', 'posix', 'builtins', 'subprocess', 'system', 'eval', 'numpy', 'torch', 'nt']);
  Buffer.from(repl.padEnd(w.length, ' ').slice(0, w.length), 'latin1').copy(out, p);
  return { bytes: out, what: `pickle global ${w}@${p} → ${repl}` };
}

function pickleHuge(buf, r) {
  // Storages are the bulk of the file: a random region of its middle.
  const lo = Math.min(buf.length, 4096);
  const hi = Math.max(lo, buf.length - 4096);
  const start = lo + 4 * int(r, Math.max(1, Math.floor((hi - lo) / 4)));
  return hugeIn(buf, r, start, Math.min(hi, start + (1 << 16)), false);
}

// ---------------------------------------------------------------------------------------------
// zip (torch.save archives: rosinality .pt)

let crcTable;
function crc32(data) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The stored (method 0) entries of a zip: name, data range, header positions. */
function zipEntries(buf) {
  const entries = [];
  for (const c of findAll(buf, Buffer.from('PK\x01\x02', 'latin1'))) {
    if (c + 46 > buf.length) continue;
    const method = buf.readUInt16LE(c + 10);
    const csize = buf.readUInt32LE(c + 20);
    const nlen = buf.readUInt16LE(c + 28);
    const local = buf.readUInt32LE(c + 42);
    if (local + 30 > buf.length || buf.readUInt32LE(local) !== 0x04034b50) continue;
    const name = buf.subarray(c + 46, c + 46 + nlen).toString('latin1');
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    if (method === 0 && start + csize <= buf.length) entries.push({ name, central: c, local, start, end: start + csize });
  }
  return entries;
}

/** Recomputes the CRC of entry `e` after its data changed (so the change gets past the CRC check). */
function fixCrc(out, e) {
  const crc = crc32(out.subarray(e.start, e.end));
  out.writeUInt32LE(crc, e.local + 14);
  out.writeUInt32LE(crc, e.central + 16);
}

function zipStructure(buf, r) {
  const out = Buffer.from(buf);
  const records = [
    ['PK\x03\x04', [8, 14, 18, 22, 26, 28], 30],
    ['PK\x01\x02', [10, 16, 20, 24, 28, 30, 32, 42], 46],
    ['PK\x05\x06', [8, 10, 12, 16, 20], 22],
    ['PK\x06\x06', [24, 32, 40, 48], 56],
    ['PK\x06\x07', [8], 20],
  ];
  const [sig, fields, size] = pick(r, records);
  const hits = findAll(buf, Buffer.from(sig, 'latin1')).filter((p) => p + size <= buf.length);
  if (hits.length === 0) return bitflip(buf, r);
  const p = pick(r, hits);
  const f = pick(r, fields);
  const width = sig === 'PK\x06\x06' || (sig === 'PK\x06\x07' && f === 8) ? 8 : [8, 10, 26, 28, 30, 32].includes(f) && sig !== 'PK\x05\x06' ? 2 : sig === 'PK\x05\x06' && f <= 10 ? 2 : sig === 'PK\x05\x06' && f === 20 ? 2 : 4;
  const old = width === 2 ? out.readUInt16LE(p + f) : width === 4 ? out.readUInt32LE(p + f) : Number(out.readBigUInt64LE(p + f));
  const v = pick(r, [0, 1, old + 1, old - 1, old * 2, 0xffff, 0xffffffff, 8, 12, 99, buf.length, 2 ** 40]);
  if (width === 2) out.writeUInt16LE(Math.max(0, Math.min(0xffff, v)) >>> 0, p + f);
  else if (width === 4) out.writeUInt32LE(Math.max(0, Math.min(0xffffffff, v)) >>> 0, p + f);
  else out.writeBigUInt64LE(BigInt(Math.max(0, Math.min(2 ** 53, v))), p + f);
  return { bytes: out, what: `zip ${JSON.stringify(sig.slice(2))}@${p}+${f} ${old} → ${v}` };
}

/** A mutation inside one stored entry of a zip, with its CRC fixed up (mostly). */
function zipInner(buf, r, kind) {
  const entries = zipEntries(buf);
  if (entries.length === 0) return bitflip(buf, r);
  const pkl = entries.filter((e) => e.name.endsWith('.pkl'));
  const e = kind === 'huge' || pkl.length === 0 ? pick(r, entries.filter((x) => !x.name.endsWith('.pkl')).concat(pkl.length ? [] : entries)) : pick(r, pkl);
  let res;
  if (kind === 'huge') res = hugeIn(buf, r, e.start, e.end, false);
  else if (kind === 'config') res = pickleConfig(buf, r, e.start, e.end);
  else res = pickleStructure(buf, r, e.start, e.end);
  const out = Buffer.from(res.bytes);
  const fix = r() < 0.9;
  if (fix && out.length === buf.length) fixCrc(out, e);
  return { bytes: out, what: `${res.what} in ${e.name}${fix ? ' (crc fixed)' : ''}` };
}

// ---------------------------------------------------------------------------------------------
// tfjs graph models: a directory with model.json and its shards

function tfjsMutate(files, r, kind) {
  const out = new Map(files);
  const json = JSON.parse(files.get('model.json').toString('utf8'));
  const shardNames = [...files.keys()].filter((k) => k !== 'model.json');
  const shard = pick(r, shardNames);
  let what;
  if (kind === 'bitflip' || kind === 'truncate') {
    const target = r() < 0.5 ? 'model.json' : shard;
    const res = kind === 'bitflip' ? bitflip(files.get(target), r) : truncate(files.get(target), r);
    out.set(target, res.bytes);
    return { files: out, what: `${res.what} of ${target}` };
  }
  if (kind === 'huge') {
    const res = hugeIn(files.get(shard), r, 0, files.get(shard).length, false);
    out.set(shard, res.bytes);
    return { files: out, what: `${res.what} in ${shard}` };
  }
  if (kind === 'config') {
    // a node attribute: shapes, dtypes, constant values, op names
    const nodes = json.modelTopology.node;
    const node = pick(r, nodes);
    const u = r();
    if (u < 0.3) {
      node.op = pick(r, ['Conv2D', 'Add', 'Mul', 'PyFunc', 'Relu', 'MatMul', 'Const', 'Placeholder', 'Unknown']);
      what = `node ${node.name}.op = ${node.op}`;
    } else if (u < 0.55 && node.input) {
      node.input = node.input.slice();
      node.input[int(r, node.input.length + 1)] = pick(r, [node.name, nodes[0].name, 'missing', '^ctrl', `${pick(r, nodes).name}:1`]);
      what = `node ${node.name}.input = ${JSON.stringify(node.input).slice(0, 60)}`;
    } else {
      const attrs = Object.keys(node.attr ?? {});
      if (attrs.length === 0) {
        node.attr = { value: { f: interestingValue(r, 1) } };
        what = `node ${node.name}.attr set`;
      } else {
        const a = pick(r, attrs);
        const s = JSON.stringify(node.attr[a]);
        const mutated = s.replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/g, (m) => (r() < 0.3 ? JSON.stringify(interestingValue(r, Number(m))) : m));
        try {
          node.attr[a] = JSON.parse(mutated);
        } catch {
          node.attr[a] = { f: 1e308 };
        }
        what = `node ${node.name}.attr.${a} numbers changed`;
      }
    }
  } else {
    // structure: the weights manifest
    const group = pick(r, json.weightsManifest);
    const u = r();
    if (u < 0.25) {
      group.paths = group.paths.slice();
      group.paths[0] = pick(r, ['../model.json', '/etc/passwd', 'missing.bin', 'model.json', '', 'a/../../x', 'x'.repeat(300), 7]);
      what = `manifest path = ${JSON.stringify(group.paths[0]).slice(0, 40)}`;
    } else {
      const w = pick(r, group.weights);
      const key = pick(r, ['shape', 'dtype', 'name', 'quantization', 'shape']);
      if (key === 'shape') {
        w.shape = w.shape.slice();
        const i = int(r, w.shape.length + 1);
        w.shape[i] = interestingValue(r, w.shape[i] ?? 1);
      } else if (key === 'dtype') w.dtype = pick(r, ['float32', 'float16', 'int32', 'uint8', 'bool', 'string', 'complex64']);
      else if (key === 'name') w.name = pick(r, group.weights).name;
      else w.quantization = pick(r, [{ dtype: 'float16' }, { dtype: 'uint8', scale: 1, min: 0 }, { dtype: 'uint16' }, null, 5]);
      what = `manifest ${w.name}.${key} = ${JSON.stringify(w[key]).slice(0, 40)}`;
    }
  }
  out.set('model.json', Buffer.from(JSON.stringify(json), 'utf8'));
  return { files: out, what };
}

// ---------------------------------------------------------------------------------------------

export const KINDS = ['bitflip', 'truncate', 'huge', 'config', 'structure'];

/**
 * Mutates a base. `base.format`: 'safetensors' | 'pickle' | 'zip' | 'tfjs'; `base.bytes` (a
 * Buffer) or, for tfjs, `base.files` (Map name → Buffer). Returns { bytes | files, kind, what }.
 */
export function mutate(base, r) {
  const kind = pick(r, KINDS);
  if (base.format === 'tfjs') return { kind, ...tfjsMutate(base.files, r, kind) };
  const buf = base.bytes;
  let res;
  try {
    if (kind === 'bitflip') res = bitflip(buf, r);
    else if (kind === 'truncate') res = truncate(buf, r);
    else if (base.format === 'safetensors') {
      res = kind === 'huge' ? safetensorsHuge(buf, r) : kind === 'config' ? safetensorsConfig(buf, r) : safetensorsStructure(buf, r);
    } else if (base.format === 'pickle') {
      res = kind === 'huge' ? pickleHuge(buf, r) : kind === 'config' ? pickleConfig(buf, r) : pickleStructure(buf, r);
    } else {
      res = kind === 'structure' && r() < 0.5 ? zipStructure(buf, r) : zipInner(buf, r, kind === 'structure' ? 'opcode' : kind);
    }
  } catch (err) {
    res = bitflip(buf, r);
    res.what += ` (fallback: ${err.message})`;
  }
  return { kind, ...res };
}
