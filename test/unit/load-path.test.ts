/**
 * Issue 11 §1, the load path: loadGenerator reads checkpoints in a worker thread (the event loop
 * keeps running while a large pickle is parsed), and a facegan file's F16 / BF16 tensors reach the
 * engine as stored (no float32 copy in JS) with the same images as the widened weights.
 * The reader worker is dist/load-worker.js: run `npm run build:ts` first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readCheckpoint, readCheckpointForEngine, serializeModel, toFloat32 } from '../../lib/convert/index.js';
import type { Float32Tensor, StyleGAN2Config } from '../../lib/convert/stylegan2.js';
import { createGenerator } from '../../lib/generator.js';
import { loadGenerator } from '../../lib/index.js';
import { native, type NativeTensor } from '../../lib/native.js';
import { writeSafetensors } from '../../lib/safetensors.js';
import { rejectsWith } from '../helpers/errors.js';
import { SMALL_CONFIG, pytorchPickle, randomTensors } from './convert/synthetic.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-load-path-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Random weights small enough that a random network's images stay finite. */
function smallWeights(config: StyleGAN2Config, seed: number): Map<string, Float32Tensor> {
  const tensors = randomTensors(config, seed);
  for (const t of tensors.values()) for (let i = 0; i < t.data.length; i++) t.data[i]! /= 16;
  return tensors;
}

/** Runs `fn` with an event-loop-delay histogram (1 ms resolution): the longest stall in ms. */
async function longestStall<T>(fn: () => Promise<T>): Promise<{ result: T; maxMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  try {
    const result = await fn();
    return { result, maxMs: h.max / 1e6 };
  } finally {
    h.disable();
  }
}

describe('loadGenerator reads checkpoints off the main thread', () => {
  // A config-f StyleGAN2 network at 1024² (random weights, G and G_ema: 253 MB), as official
  // checkpoints are: parsing it on the main thread stalls the event loop for hundreds of ms.
  const config: StyleGAN2Config = {
    arch: 'stylegan2', z_dim: 512, w_dim: 512, c_dim: 0, img_resolution: 1024, img_channels: 3, num_ws: 18,
    mapping_layers: 8, mapping_lr_multiplier: 0.01, channel_base: 32768, channel_max: 512, conv_clamp: 256, num_fp16_res: 4,
  };
  const file = path.join(tmp, 'ffhq-like-1024.pkl');
  beforeAll(() => {
    fs.writeFileSync(file, pytorchPickle(config, smallWeights(config, 3)));
  });

  it('keeps the event loop running while a 1024² pickle is parsed (longest stall < 100 ms; on the main thread it is longer)', async () => {
    const bound = 100;
    // Control: the same parse on the main thread stalls the loop beyond the bound (so the
    // bound tells the two apart on this machine).
    const buffer = fs.readFileSync(file);
    const control = await longestStall(async () => {
      await new Promise((r) => setTimeout(r, 5));
      const ckpt = await readCheckpoint(buffer);
      await new Promise((r) => setTimeout(r, 5));
      return ckpt.tensors.size;
    });
    expect(control.maxMs).toBeGreaterThan(bound);

    let ticks = 0;
    const tick = setInterval(() => ticks++, 5);
    try {
      const { result: gen, maxMs } = await longestStall(() => loadGenerator(file, { device: 'cpu' }));
      try {
        expect(gen.info.resolution).toBe(1024);
        expect(gen.info.numParams).toBe(30370060);
        expect(maxMs).toBeLessThan(bound);
        expect(ticks).toBeGreaterThan(0);
      } finally {
        gen.dispose();
      }
    } finally {
      clearInterval(tick);
    }
  });

  it('typed errors still come through the worker (code and message)', async () => {
    const trunc = path.join(tmp, 'truncated.pkl');
    fs.writeFileSync(trunc, fs.readFileSync(file).subarray(0, 4096));
    const evil = path.join(tmp, 'evil.pkl');
    // An os.system call (protocol 2: GLOBAL 'os system', a string, TUPLE1, REDUCE, STOP).
    fs.writeFileSync(evil, Buffer.from('\x80\x02cos\nsystem\nX\x04\x00\x00\x00echoq\x00\x85R.', 'latin1'));
    for (const [f, code] of [[trunc, 'ERR_TRUNCATED_FILE'], [evil, 'ERR_FORBIDDEN_GLOBAL']] as const) {
      const inProcess = await rejectsWith(readCheckpoint(f), code);
      const viaWorker = await rejectsWith(loadGenerator(f, { device: 'cpu' }), code);
      expect(viaWorker.message).toBe(inProcess.message);
      expect(viaWorker.stack).toContain('load-path.test.ts');
    }
    expect((await rejectsWith(readCheckpoint(evil), 'ERR_FORBIDDEN_GLOBAL')).message).toMatch(/"os"\."system"/);
  });
});

describe('F16 / BF16 weights reach the engine as stored', () => {
  const f32 = smallWeights(SMALL_CONFIG, 5);
  const file = path.join(tmp, 'small-f16.safetensors');
  beforeAll(() => fs.writeFileSync(file, serializeModel({ config: SMALL_CONFIG, tensors: f32, source: 'test' }, { half: true })));

  it('passes F16 views of the file (Uint16Array, no float32 copy) and gives the images of the widened weights', async () => {
    const addon = native();
    const spy = vi.spyOn(addon, 'createGenerator');
    let passed: NativeTensor[] = [];
    try {
      const gen = await loadGenerator(file, { device: 'cpu' });
      passed = spy.mock.calls[0]![1];
      const widened: NativeTensor[] = [...(await readCheckpoint(file)).tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.data }));
      const ref = await createGenerator({ config: SMALL_CONFIG as unknown as Record<string, unknown>, tensors: widened, source: file, format: 'test' }, { device: 'cpu' });
      try {
        const opts = { seeds: [1, 2, 3], psi: 0.7, output: 'float32' as const };
        const [a, b] = [await gen.generate(opts), await ref.generate(opts)];
        for (let i = 0; i < 3; i++) expect(Buffer.from(a[i]!.data.buffer, a[i]!.data.byteOffset, a[i]!.data.byteLength).equals(Buffer.from(b[i]!.data.buffer, b[i]!.data.byteOffset, b[i]!.data.byteLength))).toBe(true);
      } finally {
        gen.dispose();
        ref.dispose();
      }
    } finally {
      spy.mockRestore();
    }
    expect(passed.length).toBeGreaterThan(0);
    const size = fs.statSync(file).size;
    for (const t of passed) {
      expect(t.dtype, t.name).toBe('F16');
      expect(t.data, t.name).toBeInstanceOf(Uint16Array);
      // A view into the one buffer that holds the whole file (transferred from the reader).
      expect(t.data.buffer.byteLength, t.name).toBe(size);
    }
    expect(new Set(passed.map((t) => t.data.buffer)).size).toBe(1);
  });

  it('readCheckpointForEngine keeps F16 / BF16 bits; readCheckpoint widens them to the same values', async () => {
    const st = new Map<string, { dtype: 'BF16'; shape: number[]; data: Uint16Array }>();
    for (const [name, t] of f32) {
      const bits = new Uint16Array(t.data.length);
      const u32 = new Uint32Array(Float32Array.from(t.data).buffer);
      for (let i = 0; i < bits.length; i++) bits[i] = u32[i]! >>> 16;
      st.set(name, { dtype: 'BF16', shape: t.shape, data: bits });
    }
    const bf = path.join(tmp, 'small-bf16.safetensors');
    fs.writeFileSync(bf, writeSafetensors(st, { format: 'facegan', format_version: '1', config: JSON.stringify(SMALL_CONFIG), source: 'test' }));
    for (const [f, dtype] of [[file, 'F16'], [bf, 'BF16']] as const) {
      const raw = await readCheckpointForEngine(f);
      const wide = await readCheckpoint(f);
      expect([...raw.tensors.keys()]).toEqual([...wide.tensors.keys()]);
      for (const [name, t] of raw.tensors) {
        expect(t.dtype).toBe(dtype);
        expect(t.data).toBeInstanceOf(Uint16Array);
        expect(toFloat32(t)).toEqual(wide.tensors.get(name)!.data);
      }
    }
  });

  it('non-finite F16 / BF16 bits → ERR_CORRUPT_FILE naming the tensor and index, as for F32', async () => {
    for (const [dtype, bits, shown] of [['F16', 0x7c00, 'Infinity'], ['F16', 0xfe00, 'NaN'], ['BF16', 0xff80, '-Infinity']] as const) {
      const st = new Map<string, { dtype: 'F16' | 'BF16'; shape: number[]; data: Uint16Array }>();
      for (const [name, t] of f32) st.set(name, { dtype, shape: t.shape, data: new Uint16Array(t.data.length) });
      st.get('synthesis.b8.conv0.weight')!.data[7] = bits;
      const f = path.join(tmp, `nonfinite-${dtype}-${bits}.safetensors`);
      fs.writeFileSync(f, writeSafetensors(st, { format: 'facegan', format_version: '1', config: JSON.stringify(SMALL_CONFIG), source: 'test' }));
      const err = await rejectsWith(loadGenerator(f, { device: 'cpu' }), 'ERR_CORRUPT_FILE', /synthesis\.b8\.conv0\.weight.*index 7/);
      expect(err.message).toContain(`holds ${shown} at index 7`);
      await rejectsWith(readCheckpoint(f), 'ERR_CORRUPT_FILE', new RegExp(`holds ${shown} at index 7`));
    }
  });
});
