/**
 * rosinality stylegan2-pytorch checkpoints and the PyTorch zip reader.
 *
 * - test/fixtures/rosinality/tiny32-rosinality.pt (scripts/make-rosinality-fixture.py: the G_ema
 *   of the shared tiny32.pkl re-keyed into rosinality's names, written by torch.save) converts to
 *   the tensors of tiny32.pkl and reproduces the tiny32 goldens through loadGenerator.
 * - The same checkpoint re-packed here: deflated entries, ZIP64 records, a big-endian archive, a
 *   legacy (pre-1.6) torch.save stream, a bare state dict, args from train.py.
 * - Hostile archives: truncated, bad central directories, forbidden globals, huge declared
 *   sizes, a deflate bomb, bad names, CRC failures → typed errors, fast.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { convertCheckpoint, readCheckpoint, readCheckpointBuffer, type Checkpoint } from '../../../lib/convert/index.js';
import { PyDict } from '../../../lib/convert/pickle.js';
import { ROSINALITY_GLOBALS, W_AVG_SAMPLES, W_AVG_SEED, readRosinalityCheckpoint } from '../../../lib/convert/rosinality.js';
import type { Float32Tensor, StyleGAN2Config } from '../../../lib/convert/stylegan2.js';
import { TorchTensor } from '../../../lib/convert/torch.js';
import { MAX_ZIP_ENTRY_SIZE, ZipArchive, crc32, readTorchZip } from '../../../lib/convert/zip.js';
import { FaceganError } from '../../../lib/errors.js';
import { loadGenerator, type Generator } from '../../../lib/index.js';
import { expectImageClose, expectUint8Close, expectWsClose, maxAbsDiff } from '../../helpers/compare.js';
import { describeFixtures, fixturePath } from '../../helpers/fixtures.js';
import { GOLDEN_SEED_CASES, readGolden, seedCases, type Golden } from '../../helpers/golden.js';
import {
  Build, NewObj, Persid, call, dict, dumps, glob, legacyTorchStream, orderedDict, storagePid, tup,
  type PV, type StorageSpec,
} from './pickle-writer.js';
import { randomTensors } from './synthetic.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const PT = path.resolve(here, '..', '..', 'fixtures', 'rosinality', 'tiny32-rosinality.pt');
const ptBytes = fs.readFileSync(PT);

function expectTyped(err: unknown, codes: string[]): void {
  expect(err).toBeInstanceOf(FaceganError);
  expect(codes).toContain((err as FaceganError).code);
  expect((err as FaceganError).message.startsWith('Corrupt checkpoint (')).toBe(false);
}

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

function expectFails(buf: Uint8Array, codes: string[], message?: RegExp): FaceganError {
  const err = errorOf(() => readCheckpointBuffer(buf));
  expectTyped(err, codes);
  if (message !== undefined) expect((err as Error).message).toMatch(message);
  return err as FaceganError;
}

// ---------------------------------------------------------------------------------------------
// A zip writer for tests (independent of lib/convert/zip.ts).

interface ZEntry {
  name: string;
  data: Uint8Array;
  method?: 0 | 8;
  /** Override what the central directory declares. */
  declaredSize?: number;
  crc?: number;
}

interface ZipOptions {
  /** Write ZIP64 records and extra fields for every entry. */
  zip64?: boolean;
  /** Align stored data to this many bytes with padding in the local extra field (torch: 64). */
  align?: number;
}

function zipBytes(entries: ZEntry[], opts: ZipOptions = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const method = e.method ?? 0;
    const body = method === 8 ? zlib.deflateRawSync(e.data) : Buffer.from(e.data);
    const name = Buffer.from(e.name, 'latin1');
    const size = e.declaredSize ?? e.data.length;
    const crc = e.crc ?? crc32(e.data);
    let extra = Buffer.alloc(0);
    if (opts.zip64) {
      extra = Buffer.alloc(20);
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(16, 2);
      extra.writeBigUInt64LE(BigInt(size), 4);
      extra.writeBigUInt64LE(BigInt(body.length), 12);
    }
    if (opts.align) {
      const pad = (opts.align - ((offset + 30 + name.length + extra.length + 4) % opts.align)) % opts.align;
      const fb = Buffer.alloc(4 + pad);
      fb.write('FB', 0, 'latin1');
      fb.writeUInt16LE(pad, 2);
      extra = Buffer.concat([extra, fb]);
    }
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(opts.zip64 ? 45 : 20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(opts.zip64 ? 0xffffffff : body.length, 18);
    local.writeUInt32LE(opts.zip64 ? 0xffffffff : size >>> 0, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    parts.push(local, name, extra, body);

    const cdExtra = opts.zip64 ? Buffer.alloc(28) : Buffer.alloc(0);
    if (opts.zip64) {
      cdExtra.writeUInt16LE(1, 0);
      cdExtra.writeUInt16LE(24, 2);
      cdExtra.writeBigUInt64LE(BigInt(size), 4);
      cdExtra.writeBigUInt64LE(BigInt(body.length), 12);
      cdExtra.writeBigUInt64LE(BigInt(offset), 20);
    }
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(opts.zip64 ? 45 : 20, 4);
    cd.writeUInt16LE(opts.zip64 ? 45 : 20, 6);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(opts.zip64 ? 0xffffffff : body.length, 20);
    cd.writeUInt32LE(opts.zip64 ? 0xffffffff : size >>> 0, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(cdExtra.length, 30);
    cd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 42);
    central.push(cd, name, cdExtra);
    offset += 30 + name.length + extra.length + body.length;
  }
  const cdBuf = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cdBuf.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cdBuf.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cdBuf.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 16);
  return Buffer.concat([...parts, cdBuf, ...tail, eocd]);
}

/** The fixture's entries as (name, bytes). */
function fixtureEntries(): ZEntry[] {
  const zip = ZipArchive.open(ptBytes);
  return [...zip.entries.keys()].map((name) => ({ name, data: zip.read(name) }));
}

interface RawTensor { shape: number[]; data: Float32Array }

/** The fixture's g_ema and latent_avg, as plain float32 tensors. */
function fixtureState(): { g: Map<string, RawTensor>; latentAvg: RawTensor } {
  const { value } = readTorchZip(ptBytes, { globals: ROSINALITY_GLOBALS });
  const top = value as PyDict;
  const g = new Map<string, RawTensor>();
  for (const [k, v] of (top.get('g_ema') as PyDict).entries()) {
    const t = v as TorchTensor;
    g.set(k as string, { shape: t.shape.slice(), data: t.toFloat32() });
  }
  const la = top.get('latent_avg') as TorchTensor;
  return { g, latentAvg: { shape: la.shape.slice(), data: la.toFloat32() } };
}

function contiguousStride(shape: number[]): number[] {
  const stride: number[] = [];
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) { stride.unshift(s); s *= shape[d]!; }
  return stride;
}

/** Storages + the pickled form of named tensors, as torch.save writes them. */
class Storages {
  readonly specs: StorageSpec[] = [];
  tensor(t: RawTensor, littleEndian = true): PV {
    const key = String(this.specs.length);
    const data = Buffer.alloc(t.data.length * 4);
    for (let i = 0; i < t.data.length; i++) {
      if (littleEndian) data.writeFloatLE(t.data[i]!, i * 4);
      else data.writeFloatBE(t.data[i]!, i * 4);
    }
    this.specs.push({ key, numel: t.data.length, data });
    const pid = new Persid(storagePid({ key, numel: t.data.length }));
    return call('torch._utils._rebuild_tensor_v2', pid, 0, tup(...t.shape), tup(...contiguousStride(t.shape)), false, call('collections.OrderedDict'));
  }
}

interface SaveOptions extends ZipOptions {
  prefix?: string;
  byteorder?: string | null;
  version?: string | null;
  deflate?: boolean;
  bigEndian?: boolean;
  /** Replace or drop (null) entries by name (after the prefix). */
  patch?: Record<string, Uint8Array | null>;
}

/** torch.save's zip layout for `build(storages)`. */
function torchSave(build: (s: Storages, bigEndian: boolean) => PV, opts: SaveOptions = {}): Buffer {
  const s = new Storages();
  const obj = build(s, opts.bigEndian === true);
  const prefix = opts.prefix ?? 'archive';
  const files: [string, Uint8Array][] = [['data.pkl', dumps(obj, 2)]];
  if (opts.byteorder !== null) files.push(['byteorder', Buffer.from(opts.byteorder ?? 'little')]);
  for (const spec of s.specs) files.push([`data/${spec.key}`, spec.data]);
  if (opts.version !== null) files.push(['version', Buffer.from(opts.version ?? '3\n')]);
  const entries: ZEntry[] = [];
  for (const [name, data] of files) {
    const p = opts.patch?.[name];
    if (p === null) continue;
    entries.push({ name: `${prefix}/${name}`, data: p ?? data, method: opts.deflate ? 8 : 0 });
  }
  for (const [name, data] of Object.entries(opts.patch ?? {})) {
    if (data !== null && !files.some(([n]) => n === name)) entries.push({ name: `${prefix}/${name}`, data });
  }
  return zipBytes(entries, { zip64: opts.zip64, align: opts.align ?? 64 });
}

type StateEdit = (g: Map<string, RawTensor>) => void;

/** A rosinality checkpoint dict built from the fixture's tensors (or `from`), optionally edited. */
function checkpointBuilder(
  edit?: StateEdit,
  extra: Record<string, (s: Storages) => PV> = {},
  withLatentAvg = true,
  from: { g: Map<string, RawTensor>; latentAvg: RawTensor } = fixtureState(),
) {
  const { g, latentAvg } = from;
  edit?.(g);
  return (s: Storages, bigEndian: boolean): PV => {
    const state: Record<string, PV> = {};
    for (const [k, t] of g) state[k] = s.tensor(t, !bigEndian);
    const top: Record<string, PV> = { g_ema: orderedDict(state) };
    if (withLatentAvg) top.latent_avg = s.tensor(latentAvg, !bigEndian);
    for (const [k, f] of Object.entries(extra)) top[k] = f(s);
    return dict(top);
  };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** The same config and tensors (bit for bit), except the tensors named in `except`. */
function expectSameCheckpoint(got: Checkpoint, want: Checkpoint, except: string[] = []): void {
  expect(got.config).toEqual(want.config);
  expect([...got.tensors.keys()].filter((k) => !except.includes(k))).toEqual([...want.tensors.keys()].filter((k) => !except.includes(k)));
  for (const [name, t] of want.tensors) {
    if (except.includes(name)) continue;
    const g = got.tensors.get(name)!;
    expect(g.shape, name).toEqual(t.shape);
    expect(sameBits(g.data, t.data), name).toBe(true);
  }
}

// ---------------------------------------------------------------------------------------------

describeFixtures('rosinality checkpoint: tiny32-rosinality.pt vs tiny32.pkl', () => {
  let ada: Checkpoint;
  let ros: Checkpoint;
  beforeAll(async () => {
    ada = await readCheckpoint(fixturePath('tiny32.pkl'));
    ros = await readCheckpoint(PT);
  });

  it('is a torch.save zip archive named after the file, with 64-byte aligned stored entries', () => {
    const zip = ZipArchive.open(ptBytes);
    const names = [...zip.entries.keys()];
    expect(names[0]).toBe('tiny32-rosinality/data.pkl');
    expect(names).toContain('tiny32-rosinality/version');
    for (const e of zip.entries.values()) expect(e.method).toBe(0);
    expect(ros.format).toBe('zip');
    expect(ros.source).toBe('rosinality stylegan2-pytorch checkpoint');
  });

  it('infers the tiny32 config from the shapes (channel_base 1024, channel_max 128, 8 mapping layers)', () => {
    expect(ros.config).toEqual(ada.config);
    expect(ros.config).toMatchObject({ channel_base: 1024, channel_max: 128, mapping_layers: 8, mapping_lr_multiplier: 0.01, conv_clamp: null, c_dim: 0 });
  });

  it('gives the tensors of tiny32.pkl: bit-identical, except the rescaled 3×3 weights (≤ 2 ulp)', () => {
    expect([...ros.tensors.keys()]).toEqual([...ada.tensors.keys()]);
    for (const [name, want] of ada.tensors) {
      const got = ros.tensors.get(name)!;
      expect(got.shape, name).toEqual(want.shape);
      if (/\.conv[01]\.weight$/.test(name)) {
        let worst = 0;
        for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - want.data[i]!) / Math.abs(want.data[i]!));
        expect(worst, name).toBeLessThanOrEqual(2.4e-7);
      } else {
        expect(sameBits(got.data, want.data), name).toBe(true);
      }
    }
  });

  it('reads fast', () => {
    const t0 = performance.now();
    readCheckpointBuffer(ptBytes);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describeFixtures('rosinality checkpoint: goldens through loadGenerator', () => {
  let gen: Generator;
  let golden: Golden;
  beforeAll(async () => {
    golden = readGolden('tiny32');
    gen = await loadGenerator(PT, { device: 'cpu' });
  });
  afterAll(() => gen?.dispose());

  it('uses the stored latent_avg', () => {
    expect(gen.info.wAvg).toBe('stored');
    expect(gen.info.wAvgSamples).toBeUndefined();
  });

  it('maps seeds to the golden ws', async () => {
    const cases = seedCases(golden);
    expect(cases).toHaveLength(GOLDEN_SEED_CASES);
    for (const c of cases) {
      expectWsClose(await gen.mapping({ seed: c.seed, psi: c.psi }), golden.tensor(c.ws).data as Float32Array);
    }
  });

  it('synthesises the golden float and uint8 images (noise const and none)', async () => {
    const cases = seedCases(golden);
    expect(cases).toHaveLength(GOLDEN_SEED_CASES);
    for (const c of cases) {
      const noiseMode = c.noise_mode as 'const' | 'none';
      const [f] = await gen.generate({ seed: c.seed, psi: c.psi, noiseMode, output: 'float32' });
      expectImageClose(f.data, golden.tensor(c.image).data as Float32Array);
      const [u] = await gen.generate({ seed: c.seed, psi: c.psi, noiseMode });
      expectUint8Close(u.data, golden.tensor(c.image_uint8).data as Uint8Array);
    }
  });

  it('reproduces the golden batch of 4', async () => {
    const c = golden.cases.cases.find((x) => x.batch_seeds !== undefined)!;
    const batch = await gen.generate({ seeds: c.batch_seeds!, psi: c.psi, noiseMode: 'const', output: 'float32' });
    const all = new Float32Array(batch.reduce((k, b) => k + b.data.length, 0));
    let o = 0;
    for (const b of batch) { all.set(b.data, o); o += b.data.length; }
    expectImageClose(all, golden.tensor(c.image!).data as Float32Array);
  });
});

/** What make-train-fixture.py computed in float64 from the rosinality mapping definitions. */
interface TrainExpected {
  w_avg_samples: number;
  w_avg_seed: number;
  w_avg: number[];
  ws: Record<string, number[]>;
  ws_of_g: Record<string, number[]>;
}

const TRAIN_PT = path.resolve(here, '..', '..', 'fixtures', 'rosinality', 'train16.pt');

describe('rosinality train.py checkpoint (train16.pt: g, d, g_ema, optimiser states, args; no latent_avg)', () => {
  const expected = JSON.parse(fs.readFileSync(TRAIN_PT.replace(/\.pt$/, '-expected.json'), 'utf8')) as TrainExpected;
  let gen: Generator;
  beforeAll(async () => {
    gen = await loadGenerator(TRAIN_PT, { device: 'cpu' });
  });
  afterAll(() => gen?.dispose());
  const rowOf = (ws: Float32Array, i = 0): Float32Array => ws.subarray(i * gen.info.wDim, (i + 1) * gen.info.wDim);

  it('is small, and the fixture and this code agree on how w_avg is drawn', () => {
    expect(fs.statSync(TRAIN_PT).size).toBeLessThan(1 << 20);
    expect([expected.w_avg_samples, expected.w_avg_seed]).toEqual([W_AVG_SAMPLES, W_AVG_SEED]);
  });

  it('loads from g_ema, and gen.info says w_avg was computed (4096 z, seed 0)', () => {
    expect(gen.info).toMatchObject({
      arch: 'stylegan2', resolution: 16, zDim: 16, wDim: 16, numWs: 6, mappingLayers: 2,
      wAvg: 'computed', wAvgSamples: 4096, wAvgSeed: 0, format: 'rosinality stylegan2-pytorch checkpoint',
    });
  });

  it('ψ = 1: ws of g_ema (not g) as rosinality computes them', async () => {
    let n = 0;
    for (const [seed, want] of Object.entries(expected.ws)) {
      const ws = await gen.mapping({ seed: Number(seed), psi: 1 });
      for (let r = 0; r < gen.info.numWs; r++) expectWsClose(rowOf(ws, r), want);
      expect(maxAbsDiff(rowOf(ws), expected.ws_of_g[seed]!)).toBeGreaterThan(1e-3);
      n++;
    }
    expect(n).toBe(2);
  });

  it('w_avg is the mean of the mapping of 4096 z from RandomState(0) (ψ = 0 gives it)', async () => {
    const ws = await gen.mapping({ seed: 3, psi: 0 });
    for (let r = 0; r < gen.info.numWs; r++) expectWsClose(rowOf(ws, r), expected.w_avg);
  });

  it('ψ < 1 truncates towards the computed w_avg, with and without a cutoff', async () => {
    for (const [seed, w] of Object.entries(expected.ws)) {
      const want = w.map((v, k) => expected.w_avg[k]! + 0.5 * (v - expected.w_avg[k]!));
      const ws = await gen.mapping({ seed: Number(seed), psi: 0.5, truncationCutoff: 2 });
      expectWsClose(rowOf(ws, 0), want);
      expectWsClose(rowOf(ws, 1), want);
      expectWsClose(rowOf(ws, 2), w);
    }
    const [img] = await gen.generate({ seed: 5, psi: 0.7 });
    expect([img.width, img.height, img.channels]).toEqual([16, 16, 3]);
  });

  it('readCheckpoint computes the same w_avg; convertCheckpoint stores it (then wAvg is stored)', async () => {
    const ckpt = await readCheckpoint(TRAIN_PT);
    expect(ckpt.wAvg).toEqual({ kind: 'computed', samples: 4096, seed: 0 });
    const fromLoad = rowOf(await gen.mapping({ seed: 0, psi: 0 }));
    expect(Array.from(ckpt.tensors.get('mapping.w_avg')!.data)).toEqual(Array.from(fromLoad));
    const dst = path.join(os.tmpdir(), `facegan-train16-${process.pid}.safetensors`);
    try {
      await convertCheckpoint(TRAIN_PT, dst);
      const conv = await loadGenerator(dst, { device: 'cpu' });
      try {
        expect(conv.info.wAvg).toBe('stored');
        expect(Array.from(await conv.mapping({ seed: 5, psi: 0.5 }))).toEqual(Array.from(await gen.mapping({ seed: 5, psi: 0.5 })));
      } finally {
        conv.dispose();
      }
    } finally {
      fs.rmSync(dst, { force: true });
    }
  });

  it('exportOnnx carries the computed w_avg: ONNX Runtime gives the same image at ψ = 0.5', async () => {
    const ort = await import('onnxruntime-node');
    const dst = path.join(os.tmpdir(), `facegan-train16-${process.pid}.onnx`);
    try {
      await gen.exportOnnx(dst);
      const z = Float32Array.from(gen.zFromSeed(5));
      const [want] = await gen.generate({ z, psi: 0.5, output: 'float32' });
      const session = await ort.InferenceSession.create(dst);
      const out = await session.run({ z: new ort.Tensor('float32', z, [1, 16]), psi: new ort.Tensor('float32', Float32Array.of(0.5), []) });
      const got = out[session.outputNames[0]!]!.data as Float32Array;
      expectImageClose(got, want.data);
    } finally {
      fs.rmSync(dst, { force: true });
    }
  });

  it('does not interpret g, d or the optimiser states: any allowed values there are fine', () => {
    const junk = { g: (): PV => dict({ x: 1 }), d: (): PV => [1, 2, 3], g_optim: (): PV => 'not a state dict', d_optim: (): PV => null };
    const got = readCheckpointBuffer(torchSave(checkpointBuilder(undefined, junk, false)));
    expect(got.wAvg?.kind).toBe('computed');
    const { value } = readTorchZip(fs.readFileSync(TRAIN_PT), { globals: ROSINALITY_GLOBALS });
    expect([...(value as PyDict).keys()].sort()).toEqual(['ada_aug_p', 'args', 'd', 'd_optim', 'g', 'g_ema', 'g_optim']);
  });
});

describe('rosinality checkpoint: other containers and layouts', () => {
  const want = readCheckpointBuffer(ptBytes);

  it('deflated entries, ZIP64 records, no alignment, another archive name: the same generator', () => {
    const entries = fixtureEntries();
    expectSameCheckpoint(readCheckpointBuffer(zipBytes(entries.map((e) => ({ ...e, method: 8 })))), want);
    expectSameCheckpoint(readCheckpointBuffer(zipBytes(entries, { zip64: true })), want);
    expectSameCheckpoint(readCheckpointBuffer(zipBytes(entries, { zip64: true, align: 64 })), want);
    const renamed = entries.map((e) => ({ ...e, name: e.name.replace(/^[^/]+/, 'archive') }));
    expectSameCheckpoint(readCheckpointBuffer(zipBytes(renamed, { align: 64 })), want);
  });

  it('an archive written here in torch layout (version 3, byteorder little) and a .data/version one', () => {
    expectSameCheckpoint(readCheckpointBuffer(torchSave(checkpointBuilder())), want);
    const dotData = torchSave(checkpointBuilder(), { version: null, patch: { '.data/version': Buffer.from('3\n') } });
    expectSameCheckpoint(readCheckpointBuffer(dotData), want);
  });

  it('a state dict pickled as state_dict() pickles it (OrderedDict with _metadata set by BUILD)', () => {
    const build = (s: Storages): PV => {
      const { g, latentAvg } = fixtureState();
      const state: Record<string, PV> = {};
      for (const [k, t] of g) state[k] = s.tensor(t);
      const metadata = orderedDict({ '': dict({ version: 1 }), style: dict({ version: 1 }) });
      return dict({ g_ema: new Build(orderedDict(state), dict({ _metadata: metadata })), latent_avg: s.tensor(latentAvg) });
    };
    expectSameCheckpoint(readCheckpointBuffer(torchSave(build)), want);
  });

  it('a big-endian archive (byteorder big) is byte-swapped', () => {
    const buf = torchSave(checkpointBuilder(), { byteorder: 'big', bigEndian: true });
    expectSameCheckpoint(readCheckpointBuffer(buf), want);
    // Without the record the same bytes are read as little-endian: garbage, caught by the blur-kernel check.
    const wrong = torchSave(checkpointBuilder(), { byteorder: null, bigEndian: true });
    expectFails(wrong, ['ERR_UNSUPPORTED_ARCH'], /blur kernel/);
  });

  it('a legacy (pre-1.6) torch.save stream of the same checkpoint', () => {
    const s = new Storages();
    const obj = checkpointBuilder()(s, false);
    const legacy = legacyTorchStream(obj, s.specs);
    const got = readCheckpointBuffer(legacy);
    expect(got.format).toBe('pickle');
    expectSameCheckpoint(got, want);
  });

  it('a train.py checkpoint with g, d, optimiser states and argparse args (no latent_avg): converted, w_avg to be computed', () => {
    const args = (): PV => new Build(new NewObj(glob('argparse.Namespace'), []), dict({ arch: 'stylegan2', size: 32, n_mlp: 8, channel_multiplier: 2, latent: 64 }));
    const withArgs = torchSave(checkpointBuilder(undefined, { args, ada_aug_p: () => 0.25, g_optim: () => dict({ state: dict({}), param_groups: [dict({ lr: 0.002, betas: tup(0, 0.99) })] }) }, false));
    const got = readCheckpointBuffer(withArgs);
    // readCheckpointBuffer (synchronous, no engine) leaves the placeholder; readCheckpoint fills it.
    expect(got.wAvg).toEqual({ kind: 'computed', samples: W_AVG_SAMPLES, seed: W_AVG_SEED });
    expect(Array.from(got.tensors.get('mapping.w_avg')!.data).every((v) => v === 0)).toBe(true);
    expectSameCheckpoint(got, want, ['mapping.w_avg']);
    // With latent_avg added it is stored.
    const stored = readCheckpointBuffer(torchSave(checkpointBuilder(undefined, { args })));
    expect(stored.wAvg).toEqual({ kind: 'stored' });
    expectSameCheckpoint(stored, want);
  });

  it('a forbidden global inside the optimiser state of a train.py checkpoint is still refused', () => {
    const evil = (): PV => dict({ state: dict({}), param_groups: [dict({ lr: call('os.system', 'true') })] });
    expectFails(torchSave(checkpointBuilder(undefined, { g_optim: evil }, false)), ['ERR_FORBIDDEN_GLOBAL'], /"os"\."system"/);
    expectFails(torchSave(checkpointBuilder(undefined, { d_optim: evil }, false)), ['ERR_FORBIDDEN_GLOBAL'], /"os"\."system"/);
  });

  it('SWAGAN checkpoints (args.arch = swagan) are refused', () => {
    const args = (): PV => new Build(new NewObj(glob('argparse.Namespace'), []), dict({ arch: 'swagan' }));
    expectFails(torchSave(checkpointBuilder(undefined, { args })), ['ERR_UNSUPPORTED_ARCH'], /swagan/i);
  });

  it('a bare g_ema state dict has no latent_avg: converted, w_avg to be computed', () => {
    const build = (s: Storages): PV => {
      const { g } = fixtureState();
      const state: Record<string, PV> = {};
      for (const [k, t] of g) state[k] = s.tensor(t);
      return orderedDict(state);
    };
    const got = readCheckpointBuffer(torchSave(build));
    expect(got.wAvg).toEqual({ kind: 'computed', samples: W_AVG_SAMPLES, seed: W_AVG_SEED });
    expectSameCheckpoint(got, want, ['mapping.w_avg']);
  });

  it('a torch.save archive of something else is not taken for a generator', () => {
    expectFails(torchSave(() => dict({ model: 1 })), ['ERR_UNSUPPORTED_ARCH'], /g_ema/);
    expectFails(torchSave(() => [1, 2, 3]), ['ERR_UNSUPPORTED_ARCH']);
  });
});

/** canonical → rosinality (an independent TS inverse, like scripts/make-rosinality-fixture.py). */
function toRosinality(config: StyleGAN2Config, t: Map<string, Float32Tensor>): { g: Map<string, RawTensor>; latentAvg: RawTensor } {
  const g = new Map<string, RawTensor>();
  const get = (n: string): Float32Tensor => t.get(n)!;
  for (let i = 0; i < config.mapping_layers; i++) {
    g.set(`style.${i + 1}.weight`, get(`mapping.fc${i}.weight`));
    g.set(`style.${i + 1}.bias`, get(`mapping.fc${i}.bias`));
  }
  const c = get('synthesis.b4.const');
  g.set('input.input', { shape: [1, ...c.shape], data: c.data });
  const kernel = { shape: [4, 4], data: Float32Array.from([1, 3, 3, 1].flatMap((a) => [1, 3, 3, 1].map((b) => (a * b) / 16))) };
  const styled = (dst: string, src: string, up: boolean): void => {
    const w = get(`${src}.weight`);
    const fanIn = w.shape[1]! * 9;
    g.set(`${dst}.conv.weight`, { shape: [1, ...w.shape], data: w.data.map((v) => v * Math.sqrt(fanIn)) });
    if (up) g.set(`${dst}.conv.blur.kernel`, kernel);
    g.set(`${dst}.conv.modulation.weight`, get(`${src}.affine.weight`));
    g.set(`${dst}.conv.modulation.bias`, get(`${src}.affine.bias`));
    g.set(`${dst}.noise.weight`, { shape: [1], data: get(`${src}.noise_strength`).data });
    g.set(`${dst}.activate.bias`, get(`${src}.bias`));
  };
  const rgb = (dst: string, src: string, up: boolean): void => {
    const b = get(`${src}.bias`);
    g.set(`${dst}.bias`, { shape: [1, b.shape[0]!, 1, 1], data: b.data });
    if (up) g.set(`${dst}.upsample.kernel`, kernel);
    const w = get(`${src}.weight`);
    g.set(`${dst}.conv.weight`, { shape: [1, ...w.shape], data: w.data });
    g.set(`${dst}.conv.modulation.weight`, get(`${src}.affine.weight`));
    g.set(`${dst}.conv.modulation.bias`, get(`${src}.affine.bias`));
  };
  styled('conv1', 'synthesis.b4.conv1', false);
  rgb('to_rgb1', 'synthesis.b4.torgb', false);
  const noises = ['synthesis.b4.conv1'];
  for (let k = 0, r = 8; r <= config.img_resolution; k++, r *= 2) {
    styled(`convs.${2 * k}`, `synthesis.b${r}.conv0`, true);
    styled(`convs.${2 * k + 1}`, `synthesis.b${r}.conv1`, false);
    rgb(`to_rgbs.${k}`, `synthesis.b${r}.torgb`, true);
    noises.push(`synthesis.b${r}.conv0`, `synthesis.b${r}.conv1`);
  }
  noises.forEach((src, j) => {
    const n = get(`${src}.noise_const`);
    g.set(`noises.noise_${j}`, { shape: [1, 1, ...n.shape], data: n.data });
  });
  return { g, latentAvg: get('mapping.w_avg') };
}

describe('rosinality mapping: synthetic generators (config from shapes)', () => {
  const base: StyleGAN2Config = {
    arch: 'stylegan2', z_dim: 8, w_dim: 8, c_dim: 0, img_resolution: 64, img_channels: 3, num_ws: 10,
    mapping_layers: 2, mapping_lr_multiplier: 0.01, channel_base: 512, channel_max: 16, conv_clamp: null, num_fp16_res: 0,
  };
  const cases: [string, StyleGAN2Config][] = [
    ['config-f channels, scaled (max to 32 px, then halving)', base],
    ['config-e channels, scaled', { ...base, channel_base: 256 }],
    ['every layer at channel_max (rosinality below 64 px)', { ...base, img_resolution: 16, num_ws: 6, channel_base: 128, channel_max: 8 }],
    ['4 px only', { ...base, img_resolution: 4, num_ws: 2, channel_base: 32, channel_max: 8 }],
    ['z_dim ≠ w_dim, one image channel, 5 mapping layers', { ...base, z_dim: 12, img_channels: 1, mapping_layers: 5 }],
  ];
  for (const [what, config] of cases) {
    it(what, () => {
      const tensors = randomTensors(config, 7);
      const got = readCheckpointBuffer(torchSave(checkpointBuilder(undefined, {}, true, toRosinality(config, tensors))));
      expect(got.config).toEqual(config);
      for (const [name, want] of tensors) {
        const t = got.tensors.get(name)!;
        expect(t.shape, name).toEqual(want.shape);
        if (/\.conv[01]\.weight$/.test(name)) {
          for (let i = 0; i < want.data.length; i++) expect(Math.abs(t.data[i]! - want.data[i]!)).toBeLessThanOrEqual(Math.abs(want.data[i]!) * 2.4e-7);
        } else {
          expect(sameBits(t.data, want.data), name).toBe(true);
        }
      }
    });
  }
});

describe('rosinality mapping: broken and unsupported generators', () => {
  const edited = (edit: StateEdit): Buffer => torchSave(checkpointBuilder(edit));

  it('a missing tensor → ERR_CORRUPT_FILE naming it', () => {
    expectFails(edited((g) => g.delete('convs.3.activate.bias')), ['ERR_CORRUPT_FILE'], /convs\.3\.activate\.bias/);
    expectFails(edited((g) => g.delete('noises.noise_4')), ['ERR_CORRUPT_FILE'], /noises\.noise_4/);
  });

  it('a misshapen tensor → ERR_CORRUPT_FILE', () => {
    expectFails(edited((g) => { const t = g.get('style.3.weight')!; g.set('style.3.weight', { shape: [t.shape[0]! / 2, t.shape[1]! * 2], data: t.data }); }), ['ERR_CORRUPT_FILE'], /style\.3\.weight/);
    expectFails(edited((g) => g.set('to_rgbs.1.bias', { shape: [1, 4, 1, 1], data: new Float32Array(4) })), ['ERR_CORRUPT_FILE'], /to_rgbs\.1\.bias/);
    expectFails(edited((g) => g.set('latent_avg_is_not_here', { shape: [1], data: new Float32Array(1) })), ['ERR_UNSUPPORTED_ARCH']);
  });

  it('an unknown tensor → ERR_UNSUPPORTED_ARCH', () => {
    expectFails(edited((g) => g.set('convs.1.conv.extra', { shape: [2], data: new Float32Array(2) })), ['ERR_UNSUPPORTED_ARCH'], /convs\.1\.conv\.extra/);
  });

  it('a non-standard blur kernel → ERR_UNSUPPORTED_ARCH', () => {
    expectFails(edited((g) => { const t = g.get('convs.0.conv.blur.kernel')!; g.set('convs.0.conv.blur.kernel', { shape: t.shape, data: t.data.map((v) => v / 4) }); }), ['ERR_UNSUPPORTED_ARCH'], /blur kernel/);
    expectFails(edited((g) => g.set('to_rgbs.2.upsample.kernel', { shape: [2, 2], data: Float32Array.of(1, 1, 1, 1) })), ['ERR_UNSUPPORTED_ARCH'], /upsample\.kernel/);
  });

  it('channels that no (channel_base, channel_max) gives → ERR_UNSUPPORTED_ARCH', () => {
    // rosinality's channel_multiplier 4 at 64 px would give 1024 channels after 512: growing channels.
    const grow = (g: Map<string, RawTensor>): void => {
      const t = g.get('input.input')!;
      g.set('input.input', { shape: [1, 16, 4, 4], data: t.data.subarray(0, 16 * 16) });
    };
    expectFails(edited(grow), ['ERR_UNSUPPORTED_ARCH'], /channels/);
  });

  it('odd layer counts → ERR_CORRUPT_FILE', () => {
    expectFails(edited((g) => { for (const k of [...g.keys()]) if (k.startsWith('to_rgbs.2.')) g.delete(k); }), ['ERR_CORRUPT_FILE']);
  });
});

describe('PyTorch zip reader: hostile archives', () => {
  const good = torchSave(checkpointBuilder());

  it('every truncated copy fails with a typed error, fast', () => {
    const t0 = performance.now();
    const cuts = new Set<number>();
    for (let i = 0; i < 120; i++) cuts.add(i);
    for (let i = 0; i < 400; i++) cuts.add(Math.floor((ptBytes.length * i) / 400));
    for (let i = 1; i <= 200; i++) cuts.add(ptBytes.length - i);
    for (const cut of cuts) {
      const err = errorOf(() => readCheckpointBuffer(ptBytes.subarray(0, cut)));
      // Under 4 bytes it is no zip; a prefix that does not reach data.pkl's name is not evidently torch.
      expectTyped(err, cut < 4 ? ['ERR_UNKNOWN_FORMAT'] : cut < 56 ? ['ERR_UNKNOWN_FORMAT', 'ERR_TRUNCATED_FILE'] : ['ERR_TRUNCATED_FILE']);
    }
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('a zip-looking file with no central directory and no data.pkl is an unknown format', () => {
    expectFails(Buffer.from('PK\x03\x04rest-of-a-zip', 'latin1'), ['ERR_UNKNOWN_FORMAT'], /zip/i);
    const other = zipBytes([{ name: 'hello.txt', data: Buffer.from('hi') }]);
    expectFails(other, ['ERR_CORRUPT_FILE'], /data\.pkl/);
    expectFails(other.subarray(0, other.length - 1), ['ERR_UNKNOWN_FORMAT']);
  });

  it('a bad central directory → ERR_CORRUPT_FILE (signature, offsets, counts, overlaps)', () => {
    const eocd = good.length - 22;
    const cdOffset = good.readUInt32LE(eocd + 16);
    const cdSize = good.readUInt32LE(eocd + 12);
    const patch = (f: (b: Buffer) => void): Buffer => { const b = Buffer.from(good); f(b); return b; };
    expectFails(patch((b) => b.writeUInt32LE(0x12345678, cdOffset)), ['ERR_CORRUPT_FILE'], /central directory/);
    expectFails(patch((b) => b.writeUInt32LE(cdOffset + 1, eocd + 16)), ['ERR_CORRUPT_FILE']);
    expectFails(patch((b) => b.writeUInt32LE(cdSize - 10, eocd + 12)), ['ERR_CORRUPT_FILE']);
    expectFails(patch((b) => b.writeUInt32LE(good.length * 2, eocd + 16)), ['ERR_TRUNCATED_FILE', 'ERR_CORRUPT_FILE']);
    expectFails(patch((b) => { b.writeUInt16LE(0xfffe, eocd + 8); b.writeUInt16LE(0xfffe, eocd + 10); }), ['ERR_CORRUPT_FILE'], /entries/);
    expectFails(patch((b) => b.writeUInt16LE(1, eocd + 4)), ['ERR_CORRUPT_FILE'], /multi-disk/);
    // ZIP64 markers without a ZIP64 record.
    expectFails(patch((b) => b.writeUInt32LE(0xffffffff, eocd + 16)), ['ERR_CORRUPT_FILE'], /ZIP64/);
    // An entry's local header offset pointing into another entry's data.
    expectFails(patch((b) => b.writeUInt32LE(100, cdOffset + 42)), ['ERR_CORRUPT_FILE']);
    // Two entries with the same name.
    const dup = zipBytes([...fixtureEntries(), { name: 'tiny32-rosinality/version', data: Buffer.from('3') }]);
    expectFails(dup, ['ERR_CORRUPT_FILE'], /two entries/);
    // Unsupported compression and encryption.
    expectFails(patch((b) => b.writeUInt16LE(12, cdOffset + 10)), ['ERR_CORRUPT_FILE'], /compression method 12/);
    expectFails(patch((b) => b.writeUInt16LE(1, cdOffset + 8)), ['ERR_CORRUPT_FILE'], /encrypted/);
  });

  it('names that are not plain relative paths → ERR_CORRUPT_FILE', () => {
    for (const name of ['../evil/data.pkl', '/abs/data.pkl', 'a\\b/data.pkl', 'a//data.pkl', 'a/./data.pkl', 'a/\u0001/x', '']) {
      const buf = zipBytes([{ name: 'archive/data.pkl', data: dumps(1, 2) }, { name, data: Buffer.from('x') }]);
      expectFails(buf, ['ERR_CORRUPT_FILE'], /name/);
    }
  });

  it('a data.pkl with a forbidden global → ERR_FORBIDDEN_GLOBAL, nothing run', () => {
    const evil = torchSave(() => dict({ g_ema: call('os.system', 'echo pwned'), latent_avg: 0 }));
    expectFails(evil, ['ERR_FORBIDDEN_GLOBAL'], /"os"\."system"/);
    const evil2 = torchSave(() => call('builtins.eval', 'print(1)'));
    expectFails(evil2, ['ERR_FORBIDDEN_GLOBAL']);
    // Inside a legacy stream as well.
    expectFails(legacyTorchStream(call('subprocess.Popen', ['ls']), []), ['ERR_FORBIDDEN_GLOBAL']);
    // The persistence stub of StyleGAN2-ADA pickles is not allowed in a .pt either.
    expectFails(torchSave(() => call('torch_utils.persistence._reconstruct_persistent_obj', dict({}))), ['ERR_FORBIDDEN_GLOBAL']);
  });

  it('declared sizes are checked before anything is allocated', () => {
    const t0 = performance.now();
    const entries = fixtureEntries();
    // A stored entry declaring ~4 GiB that it does not have.
    const huge = zipBytes(entries.map((e, i) => (i === 1 ? { ...e, declaredSize: 0xfffffff0 } : e)));
    expectFails(huge, ['ERR_CORRUPT_FILE', 'ERR_TRUNCATED_FILE']);
    // The same through ZIP64: 2^40 bytes.
    const huge64 = zipBytes(entries.map((e, i) => (i === 1 ? { ...e, declaredSize: 2 ** 40 } : e)), { zip64: true });
    expectFails(huge64, ['ERR_CORRUPT_FILE'], /declares/);
    // A deflated entry declaring far more than deflate can expand to.
    const tooMuch = zipBytes(entries.map((e, i) => (i === 1 ? { ...e, method: 8, declaredSize: MAX_ZIP_ENTRY_SIZE } : e)));
    expectFails(tooMuch, ['ERR_CORRUPT_FILE'], /impossible|declares/);
    // A storage whose pid declares more elements than its record holds (and than memory has).
    const pidLies = torchSave(() => dict({
      g_ema: orderedDict({ 'style.1.weight': call('torch._utils._rebuild_tensor_v2', new Persid(storagePid({ key: '0', numel: 2 ** 40 })), 0, tup(2 ** 20, 2 ** 20), tup(2 ** 20, 1), false, call('collections.OrderedDict')) }),
    }), { patch: { 'data/0': Buffer.alloc(16) } });
    expectFails(pidLies, ['ERR_CORRUPT_FILE'], /declares/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('a deflate bomb is cut off at its declared size', () => {
    const bomb = zlib.deflateRawSync(Buffer.alloc(64 << 20)); // 64 MiB of zeros in ~64 KiB
    expect(bomb.length).toBeLessThan(1 << 17);
    const entries: ZEntry[] = [
      { name: 'archive/data.pkl', data: dumps(dict({ a: 1 }), 2) },
      { name: 'archive/version', data: Buffer.from('3') },
    ];
    // Declares 1 KiB (plausible for its compressed size) but inflates to 64 MiB.
    const t0 = performance.now();
    const withBomb = zipBytesRaw(entries, { name: 'archive/data.pkl', raw: bomb, size: 1024 });
    expectFails(withBomb, ['ERR_CORRUPT_FILE'], /more than its declared 1024 bytes/);
    // Not deflate data at all.
    const garbage = zipBytesRaw(entries, { name: 'archive/data.pkl', raw: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), size: 10 });
    expectFails(garbage, ['ERR_CORRUPT_FILE'], /deflate/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('flipped data bytes fail the CRC-32 check; a storage without its record is corrupt', () => {
    const zip = ZipArchive.open(good);
    const e = zip.entries.get('archive/data/5')!;
    const b = Buffer.from(good);
    const start = e.localHeaderOffset + 30 + b.readUInt16LE(e.localHeaderOffset + 26) + b.readUInt16LE(e.localHeaderOffset + 28);
    b[start + 7]! ^= 0x10;
    expectFails(b, ['ERR_CORRUPT_FILE'], /CRC-32/);
    expectFails(torchSave(checkpointBuilder(), { patch: { 'data/3': null } }), ['ERR_CORRUPT_FILE'], /no record/);
    expectFails(torchSave(checkpointBuilder(), { patch: { 'data/3': Buffer.alloc(12) } }), ['ERR_CORRUPT_FILE'], /record holds 12 bytes/);
  });

  it('version and byteorder records are checked', () => {
    expectFails(torchSave(checkpointBuilder(), { version: null }), ['ERR_CORRUPT_FILE'], /version/);
    expectFails(torchSave(checkpointBuilder(), { version: 'banana' }), ['ERR_CORRUPT_FILE'], /version/);
    expectFails(torchSave(checkpointBuilder(), { version: '99999' }), ['ERR_CORRUPT_FILE'], /version/);
    expectFails(torchSave(checkpointBuilder(), { byteorder: 'middle' }), ['ERR_CORRUPT_FILE'], /byteorder/);
    expectFails(torchSave(checkpointBuilder(), { patch: { 'data.pkl': Buffer.concat([dumps(dict({}), 2), Buffer.from('xx')]) } }), ['ERR_CORRUPT_FILE'], /after its STOP/);
    expectFails(torchSave(checkpointBuilder(), { patch: { 'data.pkl': dumps(dict({}), 2).subarray(0, 3) } }), ['ERR_TRUNCATED_FILE']);
  });

  it('two data.pkl records, or storage keys that are paths, are refused', () => {
    const two = zipBytes([...fixtureEntries(), { name: 'other/data.pkl', data: dumps(1, 2) }]);
    expectFails(two, ['ERR_CORRUPT_FILE'], /more than one data\.pkl/);
    const badKey = torchSave(() => dict({
      g_ema: call('torch._utils._rebuild_tensor_v2', new Persid(storagePid({ key: '../0', numel: 1 })), 0, tup(1), tup(1), false, call('collections.OrderedDict')),
    }));
    expectFails(badKey, ['ERR_CORRUPT_FILE'], /plain name/);
  });

  it('readRosinalityCheckpoint refuses what is not a torch file', () => {
    expectTyped(errorOf(() => readRosinalityCheckpoint(Buffer.from('hello'))), ['ERR_UNKNOWN_FORMAT']);
  });
});

/** A zip whose entry `replace.name` holds `replace.raw` as deflate data declaring `replace.size` bytes. */
function zipBytesRaw(entries: ZEntry[], replace: { name: string; raw: Uint8Array; size: number }): Buffer {
  // Write with the writer, then swap the entry's body: build by hand to keep offsets right.
  const list = entries.map((e) => (e.name === replace.name ? { ...e, data: replace.raw, method: 0 as const, declaredSize: replace.size } : e));
  const buf = zipBytes(list);
  // Mark the replaced entry as deflated (method 8) in both headers; its compressed size is raw.length.
  const eocd = buf.length - 22;
  let p = buf.readUInt32LE(eocd + 16);
  for (let i = 0; i < list.length; i++) {
    const nameLen = buf.readUInt16LE(p + 28);
    const name = buf.toString('latin1', p + 46, p + 46 + nameLen);
    if (name === replace.name) {
      buf.writeUInt16LE(8, p + 10);
      buf.writeUInt32LE(replace.raw.length, p + 20);
      const local = buf.readUInt32LE(p + 42);
      buf.writeUInt16LE(8, local + 8);
    }
    p += 46 + nameLen + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32);
  }
  return buf;
}
