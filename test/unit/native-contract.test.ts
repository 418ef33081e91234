/**
 * The engine contract of native/core/backend.h, through the raw addon: a cancel flag stops a
 * running call (dispose() and cancel tokens), non-finite outputs are reported as such, inputs
 * are copied when the call is made. Runs on every backend this process has.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint, type Checkpoint } from '../../lib/convert/index.js';
import { DEFAULT_MODEL } from '../../lib/load.js';
import { native, type NativeGenerator, type NativeTensor } from '../../lib/native.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';

type Status = { message: string; status?: string };

/** `huge`: the values of the tensors whose names start with it become ±3e38 (finite, but no float32 sum of them is). */
function tensorsOf(ckpt: Checkpoint, huge?: string): NativeTensor[] {
  const out: NativeTensor[] = [];
  for (const [name, t] of ckpt.tensors) {
    let data = t.data;
    if (huge && name.startsWith(huge)) data = data.map((v) => (v < 0 ? -3e38 : 3e38));
    out.push({ name, dtype: 'F32', shape: t.shape, data });
  }
  return out;
}

async function engine(ckpt: Checkpoint, backend: string, huge?: string, maxChunk = 0): Promise<NativeGenerator> {
  return native().createGenerator(JSON.stringify(ckpt.config), tensorsOf(ckpt, huge), { backend: backend as 'cpu', deviceIndex: 0, precision: 'fp32', threads: 0, maxChunk });
}

async function failure(p: Promise<unknown>): Promise<Status> {
  try {
    await p;
  } catch (err) {
    return err as Status;
  }
  throw new Error('expected the call to fail');
}

const backends = native().availableBackends().backends;

describe.each(backends)('native contract on %s (ProGAN default model)', (backend) => {
  let ckpt: Checkpoint;
  let z: Float32Array;
  const N = 1024;
  beforeAll(async () => {
    ckpt = await readCheckpoint(DEFAULT_MODEL);
    z = new Float32Array(N * 512);
    for (let i = 0; i < z.length; i++) z[i] = Math.sin(i * 12.9898) * 1.5;
  });

  it('dispose() stops a running 1024-image call within one chunk', async () => {
    const g = await engine(ckpt, backend);
    // The time of a small call gives the time of the full one.
    const t0 = performance.now();
    await g.synthesis({ z: z.subarray(0, 4 * 512), uint8: true });
    const per = (performance.now() - t0) / 4;
    const call = g.synthesis({ z, uint8: true });
    await new Promise((r) => setTimeout(r, Math.min(200, per * 8)));
    const t1 = performance.now();
    g.dispose();
    const err = await failure(call);
    const after = performance.now() - t1;
    expect(err.status).toBe('cancelled');
    // The full call would take N·per; a chunk (≤ 64 images on the CPU) at most 64·per.
    expect(after).toBeLessThan(Math.max(64 * per, 500));
    expect(after).toBeLessThan((N * per) / 4);
  });

  it('a cancel token stops its call and only its call', async () => {
    const g = await engine(ckpt, backend);
    const token = native().createCancelToken();
    const other = native().createCancelToken();
    expect(token.cancelled).toBe(false);
    const call = g.synthesis({ z, uint8: true, cancel: token });
    setTimeout(() => token.cancel(), 50);
    const err = await failure(call);
    expect(err.status).toBe('cancelled');
    expect(token.cancelled).toBe(true);
    // A token already cancelled cancels a new call before it starts.
    expect((await failure(g.synthesis({ z: z.subarray(0, 512), uint8: true, cancel: token }))).status).toBe('cancelled');
    // The engine is fine afterwards, and another token does not interfere.
    const ok = await g.synthesis({ z: z.subarray(0, 512), float32: true, uint8: true, cancel: other });
    expect(ok.uint8!.length).toBe(128 * 128 * 3);
    expect(ok.float32!.every(Number.isFinite)).toBe(true);
    g.dispose();
  });

  it('rejects something that is not a cancel token', async () => {
    const g = await engine(ckpt, backend);
    expect(() => g.synthesis({ z: z.subarray(0, 512), uint8: true, cancel: {} as never })).toThrow(/createCancelToken/);
    g.dispose();
  });

  it('reports non-finite outputs (huge finite weights) as status non-finite, for uint8 and float32 output', async () => {
    const g = await engine(ckpt, backend, 'progan.torgb.weight');
    for (const [wantFloat, wantU8] of [[false, true], [true, false], [true, true]] as const) {
      const err = await failure(g.synthesis({ z: z.subarray(0, 2 * 512), float32: wantFloat, uint8: wantU8 }));
      expect(err.status).toBe('non-finite');
      expect(err.message).toMatch(/NaN or infinite/);
    }
    g.dispose();
  });

  it('copies the input when the call is made', async () => {
    const g = await engine(ckpt, backend);
    const input = z.slice(0, 2 * 512);
    const want = await g.synthesis({ z: input, float32: true });
    const blocker = g.synthesis({ z: z.subarray(0, 16 * 512), uint8: true });
    const call = g.synthesis({ z: input, float32: true });
    input.fill(Number.NaN);  // after the call was made, before it runs
    await blocker;
    const got = await call;
    expect(got.float32).toEqual(want.float32);
    g.dispose();
  });
});

describeFixtures('native contract (StyleGAN2 tiny32)', () => {
  let ckpt: Checkpoint;
  beforeAll(async () => {
    ckpt = await readCheckpoint(fixturePath('tiny32.pkl'));
  });

  it.each(backends)('%s: non-finite ws from mapping are reported, not returned', async (backend) => {
    const g = await engine(ckpt, backend, 'mapping.fc');
    const z = new Float32Array(ckpt.config.z_dim * 2).fill(0.5);
    const err = await failure(g.mapping({ z }));
    expect(err.status).toBe('non-finite');
    g.dispose();
  });

  // cpu-ref does not count non-finite values itself: the Generator scans for it (in chunks of a
  // bounded float scratch image when only uint8 output is wanted).
  it.each([...backends, 'cpu-ref'])('%s: non-finite images from synthesis are reported', async (backend) => {
    const g = await engine(ckpt, backend, 'synthesis.b32.torgb.weight');
    const { num_ws: nw, w_dim: wd } = ckpt.config as { num_ws: number; w_dim: number };
    const ws = new Float32Array(3 * nw * wd).fill(0.3);
    for (const [wantFloat, wantU8] of [[false, true], [true, false], [true, true]] as const) {
      const err = await failure(g.synthesis({ ws, noiseMode: 'random', noiseSeed: 5, float32: wantFloat, uint8: wantU8 }));
      expect(err.status).toBe('non-finite');
    }
    g.dispose();
  });

  it('cpu-ref gives the same uint8 images with and without the float output, and in chunks of one (the chunked scan)', async () => {
    const g = await engine(ckpt, 'cpu-ref');
    const { num_ws: nw, w_dim: wd } = ckpt.config as { num_ws: number; w_dim: number };
    const ws = new Float32Array(2 * nw * wd).map((_, i) => Math.sin(i) * 0.5);
    const render = { ws, noiseMode: 'random', noiseSeed: 9, imageOffset: 3 } as const;
    const a = await g.synthesis({ ...render, uint8: true });
    const b = await g.synthesis({ ...render, float32: true, uint8: true });
    expect(a.uint8).toEqual(b.uint8);
    // One image per chunk: the offsets of inputs, outputs and noise must still line up.
    const one = await engine(ckpt, 'cpu-ref', undefined, 1);
    expect(one.chunkImages()).toBe(1);
    const c = await one.synthesis({ ...render, uint8: true });
    expect(c.uint8).toEqual(b.uint8);
    g.dispose();
    one.dispose();
  });

  it('cpu-ref: non-finite images are reported from the chunked scan', async () => {
    const g = await engine(ckpt, 'cpu-ref', 'synthesis.b32.torgb.weight', 1);
    const { num_ws: nw, w_dim: wd } = ckpt.config as { num_ws: number; w_dim: number };
    const ws = new Float32Array(3 * nw * wd).fill(0.3);
    expect((await failure(g.synthesis({ ws, uint8: true }))).status).toBe('non-finite');
    g.dispose();
  });

  it.each(backends)('%s: dispose() cancels a running mapping-free StyleGAN2 synthesis', async (backend) => {
    const g = await engine(ckpt, backend);
    const { num_ws: nw, w_dim: wd } = ckpt.config as { num_ws: number; w_dim: number };
    const ws = new Float32Array(1024 * nw * wd).fill(0.1);
    const call = g.synthesis({ ws, noiseMode: 'random', noiseSeed: 1, uint8: true });
    g.dispose();
    expect((await failure(call)).status).toBe('cancelled');
  });

  afterAll(() => undefined);
});
