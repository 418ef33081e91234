import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  PICKLE_ALLOW_LIST, convertCheckpoint, readCheckpoint, readCheckpointBuffer, readSafetensorsModel, serializeModel, toFloat32,
  type Checkpoint,
} from '../../../lib/convert/index.js';
import { PyDict, PyTuple, unpickle } from '../../../lib/convert/pickle.js';
import { NETWORK_PICKLE_GLOBALS, convertTFGenerator, moduleTensors, type StyleGAN2Config } from '../../../lib/convert/stylegan2.js';
import type { PyObject } from '../../../lib/convert/pickle.js';
import { FaceganError } from '../../../lib/errors.js';
import { readSafetensors, writeSafetensors } from '../../../lib/safetensors.js';
import { describeFixtures, fixturePath } from '../../helpers/fixtures.js';
import { rng } from './synthetic.js';

/** The table of fixtures/README.md. */
const TABLE: Record<string, { res: number; z: number; w: number; c: number; layers: number; channels: number[]; fp16: number; clamp: number | null; img: number }> = {
  tiny32: { res: 32, z: 64, w: 64, c: 0, layers: 8, channels: [128, 128, 64, 32], fp16: 0, clamp: null, img: 3 },
  'small64-fp16': { res: 64, z: 128, w: 128, c: 0, layers: 8, channels: [256, 256, 128, 64, 32], fp16: 2, clamp: 256, img: 3 },
  cond32: { res: 32, z: 64, w: 64, c: 10, layers: 4, channels: [128, 128, 64, 32], fp16: 0, clamp: null, img: 3 },
  gray16: { res: 16, z: 32, w: 48, c: 0, layers: 2, channels: [64, 64, 32], fp16: 0, clamp: null, img: 1 },
};
const PKL = Object.keys(TABLE).map((n) => `${n}.pkl`);
const TF = ['tiny32.tf.pkl', 'small64-fp16.tf.pkl'];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-convert-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Bit-exact equality of two float arrays (fast, unlike a deep toEqual). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function expectTyped(err: unknown, codes: string[]): void {
  expect(err).toBeInstanceOf(FaceganError);
  expect(codes).toContain((err as FaceganError).code);
  // No internal exception was papered over by readCheckpoint's last-resort wrapper.
  expect((err as FaceganError).message.startsWith('Corrupt checkpoint (')).toBe(false);
}

function checkAgainstTable(name: string, ck: Checkpoint): void {
  const t = TABLE[name]!;
  const c = ck.config;
  expect(c).toMatchObject({
    arch: 'stylegan2', z_dim: t.z, w_dim: t.w, c_dim: t.c, img_resolution: t.res, img_channels: t.img,
    num_ws: 2 * Math.log2(t.res) - 2, mapping_layers: t.layers, mapping_lr_multiplier: 0.01, conv_clamp: t.clamp, num_fp16_res: t.fp16,
  } satisfies Partial<StyleGAN2Config>);
  const channels = [];
  for (let r = 4; r <= t.res; r *= 2) channels.push(ck.tensors.get(`synthesis.b${r}.torgb.weight`)!.shape[1]);
  expect(channels).toEqual(t.channels);
  const sh = (n: string): number[] | undefined => ck.tensors.get(n)?.shape;
  expect(sh('mapping.w_avg')).toEqual([t.w]);
  expect(sh('synthesis.b4.const')).toEqual([t.channels[0], 4, 4]);
  expect(sh('mapping.fc0.weight')).toEqual([t.w, t.z + (t.c > 0 ? t.w : 0)]);
  expect(sh('mapping.embed.weight')).toEqual(t.c > 0 ? [t.w, t.c] : undefined);
  expect(sh(`synthesis.b${t.res}.conv0.noise_const`)).toEqual([t.res, t.res]);
  expect(sh('synthesis.b8.conv0.weight')).toEqual([t.channels[1], t.channels[0], 3, 3]);
  expect(sh('synthesis.b4.conv1.noise_strength')).toEqual([]);
  expect(sh(`synthesis.b${t.res}.torgb.weight`)).toEqual([t.img, t.channels.at(-1), 1, 1]);
  for (const [n, tensor] of ck.tensors) {
    expect(tensor.dtype, n).toBe('F32');
    expect(tensor.data.length, n).toBe(tensor.shape.reduce((a, b) => a * b, 1));
    expect(tensor.data.every(Number.isFinite), n).toBe(true);
  }
}

describeFixtures('checkpoint fixtures', () => {
  const cache = new Map<string, Checkpoint>();
  const read = async (file: string): Promise<Checkpoint> => {
    if (!cache.has(file)) cache.set(file, await readCheckpoint(fixturePath(file)));
    return cache.get(file)!;
  };

  for (const file of [...PKL, ...TF]) {
    it(`${file} converts with the README's config`, async () => {
      const t0 = performance.now();
      const ck = await read(file);
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(ck.source).toBe(file.endsWith('.tf.pkl') ? 'stylegan2-tf pickle' : 'stylegan2-ada-pytorch pickle');
      expect(ck.format).toBe('pickle');
      checkAgainstTable(file.replace(/\.(tf\.)?pkl$/, ''), ck);
    });
  }

  for (const name of ['tiny32', 'small64-fp16']) {
    it(`${name}.pkl and ${name}.tf.pkl give the same tensors`, async () => {
      const a = await read(`${name}.pkl`);
      const b = await read(`${name}.tf.pkl`);
      expect(b.config).toEqual(a.config);
      expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
      for (const [n, t] of a.tensors) {
        const u = b.tensors.get(n)!;
        expect(u.shape, n).toEqual(t.shape);
        if (n.endsWith('.affine.bias')) {
          // legacy.py adds 1 in float32: equal within float rounding.
          let worst = 0;
          for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(u.data[i]! - t.data[i]!) / Math.max(1, Math.abs(t.data[i]!)));
          expect(worst, n).toBeLessThanOrEqual(1e-6);
        } else {
          // A pure permutation (transpose, flip, reshape): bit-exact.
          expect(sameBits(u.data, t.data), n).toBe(true);
        }
      }
    });
  }

  it('uses G_ema, not G (they differ in the file)', async () => {
    const buf = fs.readFileSync(fixturePath('tiny32.pkl'));
    const top = unpickle(buf, { globals: NETWORK_PICKLE_GLOBALS }).value as PyDict;
    const g = moduleTensors(top.get('G')!);
    const gEma = moduleTensors(top.get('G_ema')!);
    const ck = await read('tiny32.pkl');
    let differ = 0;
    for (const [n, t] of ck.tensors) {
      expect(sameBits(t.data, gEma.get(n)!.toFloat32()), n).toBe(true);
      const other = g.get(n)!.toFloat32();
      if (other.some((v, i) => v !== t.data[i])) differ++;
    }
    expect(differ).toBeGreaterThan(ck.tensors.size / 2);
    // TensorFlow: Gs (the third network), not G.
    const tf = unpickle(fs.readFileSync(fixturePath('tiny32.tf.pkl')), { globals: NETWORK_PICKLE_GLOBALS }).value as PyTuple;
    const tfG = convertTFGenerator(tf.items[0] as PyObject);
    const tfCk = await read('tiny32.tf.pkl');
    expect(tfG.tensors.get('synthesis.b4.conv1.weight')!.data).not.toEqual(tfCk.tensors.get('synthesis.b4.conv1.weight')!.data);
  });

  it('round-trips through convertCheckpoint (F32 exactly, F16 within half precision)', async () => {
    for (const file of ['cond32.pkl', 'small64-fp16.tf.pkl']) {
      const src = await read(file);
      const dst = path.join(tmp, `${file}.safetensors`);
      await convertCheckpoint(fixturePath(file), dst);
      const bytes = fs.readFileSync(dst);
      const meta = readSafetensors(bytes).metadata;
      expect(meta.format).toBe('facegan');
      expect(meta.format_version).toBe('1');
      expect(meta.source).toBe(src.source);
      expect(JSON.parse(meta.config!)).toEqual(src.config);
      expect(Object.keys(JSON.parse(meta.config!))).toEqual(['arch', 'z_dim', 'w_dim', 'c_dim', 'img_resolution', 'img_channels', 'num_ws', 'mapping_layers', 'mapping_lr_multiplier', 'channel_base', 'channel_max', 'conv_clamp', 'num_fp16_res']);
      const back = await readCheckpoint(dst);
      expect(back.format).toBe('safetensors');
      expect(back.source).toBe(src.source);
      expect(back.config).toEqual(src.config);
      expect([...back.tensors.keys()]).toEqual([...src.tensors.keys()]);
      for (const [n, t] of src.tensors) expect(sameBits(back.tensors.get(n)!.data, t.data), n).toBe(true);
      // The model view: zero-copy F32 views into the buffer.
      const model = readSafetensorsModel(bytes);
      expect(model.source).toBe(src.source);
      const w = model.tensors.get('mapping.w_avg')!;
      expect(w.dtype).toBe('F32');
      expect(w.data.buffer).toBe(bytes.buffer);

      const half = path.join(tmp, `${file}.f16.safetensors`);
      await convertCheckpoint(fixturePath(file), half, { half: true });
      const hb = fs.readFileSync(half);
      expect(hb.length).toBeLessThan(bytes.length * 0.55);
      const hm = readSafetensorsModel(hb);
      for (const [n, t] of src.tensors) {
        const h = hm.tensors.get(n)!;
        expect(h.dtype, n).toBe('F16');
        const wide = toFloat32(h);
        let bad = 0;
        for (let i = 0; i < t.data.length; i++) {
          if (!(Math.abs(wide[i]! - t.data[i]!) <= Math.max(Math.abs(t.data[i]!) * 2 ** -11, 2 ** -25))) bad++;
        }
        expect(bad, n).toBe(0);
      }
      const hc = await readCheckpoint(half);
      expect(hc.tensors.get('mapping.w_avg')!.dtype).toBe('F32');
      // A safetensors file converts again (re-conversion keeps the provenance).
      const again = path.join(tmp, `${file}.again.safetensors`);
      await convertCheckpoint(dst, again);
      expect(fs.readFileSync(again).equals(bytes)).toBe(true);
    }
  });

  it('validates facegan safetensors files, naming the bad field or tensor', async () => {
    const ck = await read('gray16.pkl');
    const good = serializeModel(ck);
    const withConfig = (patch: Record<string, unknown>): Buffer => {
      const f = readSafetensors(good);
      return writeSafetensors(f.tensors, { ...f.metadata, config: JSON.stringify({ ...JSON.parse(f.metadata.config!), ...patch }) });
    };
    const cases: [Buffer, string, string][] = [
      [withConfig({ num_ws: 7 }), 'ERR_CORRUPT_FILE', 'num_ws'],
      [withConfig({ img_resolution: 12 }), 'ERR_CORRUPT_FILE', 'img_resolution'],
      [withConfig({ w_dim: 64 }), 'ERR_CORRUPT_FILE', 'mapping.fc0.weight'],
      [withConfig({ channel_max: 32 }), 'ERR_CORRUPT_FILE', 'synthesis.b4.const'],
    ];
    const f = readSafetensors(good);
    const drop = new Map(f.tensors);
    drop.delete('synthesis.b16.torgb.bias');
    cases.push([writeSafetensors(drop, f.metadata), 'ERR_CORRUPT_FILE', 'synthesis.b16.torgb.bias']);
    const extra = new Map(f.tensors);
    extra.set('synthesis.b8.skip.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    cases.push([writeSafetensors(extra, f.metadata), 'ERR_CORRUPT_FILE', 'synthesis.b8.skip.weight']);
    const int = new Map(f.tensors);
    int.set('mapping.w_avg', { dtype: 'F64', shape: [48], data: new Float64Array(48) });
    cases.push([writeSafetensors(int, f.metadata), 'ERR_CORRUPT_FILE', 'mapping.w_avg']);
    cases.push([writeSafetensors(f.tensors, { ...f.metadata, config: '{' }), 'ERR_CORRUPT_FILE', 'config']);
    cases.push([writeSafetensors(f.tensors, { ...f.metadata, format_version: '2' }), 'ERR_UNKNOWN_FORMAT', 'format_version']);
    cases.push([writeSafetensors(f.tensors), 'ERR_UNKNOWN_FORMAT', 'facegan']);
    cases.push([fs.readFileSync(fixturePath('gray16.golden.safetensors')), 'ERR_UNKNOWN_FORMAT', 'facegan']);
    for (const [buf, code, word] of cases) {
      let err: unknown;
      try { readSafetensorsModel(buf); } catch (e) { err = e; }
      expect(err, word).toBeInstanceOf(FaceganError);
      expect((err as FaceganError).code, word).toBe(code);
      expect((err as FaceganError).message, word).toContain(word);
    }
    // Standard resample filters may be present; they are checked and left out.
    const withFilter = new Map(f.tensors);
    const filt = Float32Array.from([1, 3, 3, 1].flatMap((a) => [1, 3, 3, 1].map((b) => (a * b) / 64)));
    withFilter.set('synthesis.b8.conv0.resample_filter', { dtype: 'F32', shape: [4, 4], data: filt });
    expect(readSafetensorsModel(writeSafetensors(withFilter, f.metadata)).tensors.has('synthesis.b8.conv0.resample_filter')).toBe(false);
    withFilter.set('synthesis.b8.conv0.resample_filter', { dtype: 'F32', shape: [4, 4], data: filt.map((v) => v * 2) });
    expect(() => readSafetensorsModel(writeSafetensors(withFilter, f.metadata))).toThrow(FaceganError);
  });

  it('every truncated copy of every fixture fails with ERR_TRUNCATED_FILE or ERR_CORRUPT_FILE', async () => {
    const files = [...PKL, ...TF, 'tiny32.golden.safetensors'];
    let serialized: Buffer | undefined;
    for (const file of files) {
      const buf = fs.readFileSync(fixturePath(file));
      const cuts = [1, 2, 9, 64, 1000];
      for (let i = 1; i <= 10; i++) cuts.push(Math.floor((buf.length * i) / 11));
      cuts.push(buf.length - 1);
      for (const cut of cuts) {
        let err: unknown;
        try {
          if (file.endsWith('.safetensors')) readSafetensors(buf.subarray(0, cut));
          else readCheckpointBuffer(buf.subarray(0, cut));
        } catch (e) {
          err = e;
        }
        expectTyped(err, cut < 2 ? ['ERR_UNKNOWN_FORMAT', 'ERR_TRUNCATED_FILE'] : ['ERR_TRUNCATED_FILE', 'ERR_CORRUPT_FILE']);
      }
      if (file === 'gray16.pkl') serialized = serializeModel(readCheckpointBuffer(buf));
    }
    // And a converted facegan file.
    for (let i = 1; i <= 10; i++) {
      const cut = Math.floor((serialized!.length * i) / 11);
      let err: unknown;
      try { readCheckpointBuffer(serialized!.subarray(0, cut)); } catch (e) { err = e; }
      expectTyped(err, ['ERR_TRUNCATED_FILE', 'ERR_CORRUPT_FILE']);
    }
  });

  it('bit-flipped copies either convert or fail with a FaceganError (fixed seed, time-bounded)', () => {
    const next = rng(20240601);
    const deadline = performance.now() + 15_000;
    let runs = 0;
    let failures = 0;
    for (const [file, flips] of [['gray16.pkl', 250], ['tiny32.tf.pkl', 100], ['small64-fp16.pkl', 20]] as const) {
      const buf = Buffer.from(fs.readFileSync(fixturePath(file)));
      for (let k = 0; k < flips && performance.now() < deadline; k++) {
        // Half the flips land in the first 64 KiB (mostly pickle structure), half anywhere.
        const pos = Math.floor(next() * (k % 2 === 0 ? Math.min(buf.length, 65536) : buf.length));
        const old = buf[pos]!;
        buf[pos] = old ^ (1 << Math.floor(next() * 8));
        const t0 = performance.now();
        try {
          const ck = readCheckpointBuffer(buf);
          expect(ck.tensors.size).toBeGreaterThan(0);
        } catch (err) {
          failures++;
          expectTyped(err, ['ERR_TRUNCATED_FILE', 'ERR_CORRUPT_FILE', 'ERR_FORBIDDEN_GLOBAL', 'ERR_UNSUPPORTED_ARCH', 'ERR_UNKNOWN_FORMAT']);
        }
        expect(performance.now() - t0, `${file} flip at ${pos}`).toBeLessThan(3000);
        buf[pos] = old;
        runs++;
      }
    }
    expect(runs).toBeGreaterThan(100);
    expect(failures).toBeGreaterThan(0);
  });
});

describe('readCheckpoint: inputs that are not checkpoints', () => {
  it('a missing file is ERR_FILE_NOT_FOUND', async () => {
    await expect(readCheckpoint(path.join(tmp, 'does-not-exist.pkl'))).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
    await expect(readCheckpoint(tmp)).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
    await expect(convertCheckpoint(path.join(tmp, 'nope.pkl'), path.join(tmp, 'out.safetensors'))).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
    expect(fs.existsSync(path.join(tmp, 'out.safetensors'))).toBe(false);
  });

  it('random bytes, empty files, text and zip archives are ERR_UNKNOWN_FORMAT', async () => {
    const next = rng(7);
    for (let i = 0; i < 20; i++) {
      const buf = Buffer.alloc(1 + Math.floor(next() * 5000));
      for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(next() * 256);
      if (buf[0] === 0x80) buf[0] = 0; // (a random PROTO byte would make it a pickle, whose errors are tested elsewhere)
      await expect(readCheckpoint(buf)).rejects.toMatchObject({ code: 'ERR_UNKNOWN_FORMAT' });
    }
    await expect(readCheckpoint(Buffer.alloc(0))).rejects.toMatchObject({ code: 'ERR_UNKNOWN_FORMAT' });
    await expect(readCheckpoint(Buffer.from('hello, world\n'))).rejects.toMatchObject({ code: 'ERR_UNKNOWN_FORMAT' });
    await expect(readCheckpoint(Buffer.from('PK\x03\x04rest-of-a-zip', 'latin1'))).rejects.toMatchObject({ code: 'ERR_UNKNOWN_FORMAT', message: expect.stringMatching(/zip/i) });
    const file = path.join(tmp, 'random.bin');
    fs.writeFileSync(file, Buffer.from('not a checkpoint'));
    await expect(readCheckpoint(file)).rejects.toMatchObject({ code: 'ERR_UNKNOWN_FORMAT' });
  });

  it('a pickle that is not a network is ERR_CORRUPT_FILE', async () => {
    await expect(readCheckpoint(Buffer.from([0x80, 2, 0x7d, 0x2e]))).rejects.toMatchObject({ code: 'ERR_CORRUPT_FILE' });
    await expect(readCheckpoint(Buffer.from([0x80, 2, 0x4b, 1, 0x2e]))).rejects.toMatchObject({ code: 'ERR_CORRUPT_FILE' });
  });

  it('convertCheckpoint checks its options', async () => {
    await expect(convertCheckpoint('a', 'b', { half: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    await expect(convertCheckpoint('', 'b')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });

  it('publishes the allow-list', () => {
    expect(PICKLE_ALLOW_LIST).toContain('torch._utils._rebuild_tensor_v2');
    expect(PICKLE_ALLOW_LIST).toContain('dnnlib.tflib.network.Network');
    expect(PICKLE_ALLOW_LIST.some((g) => /^(os|posix|nt|subprocess|builtins\.(eval|exec|getattr|__import__))\b/.test(g))).toBe(false);
  });
});
