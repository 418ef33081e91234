/**
 * Micro-batching in Generator: concurrent calls share engine calls and get exactly the images they
 * would get alone; AbortSignal drops a request before it runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, FaceganError, loadGenerator, type Generator, type Image } from '../../lib/index.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';

function same(a: Image, b: Image): boolean {
  return a.width === b.width && a.channels === b.channels && Buffer.from(a.data).equals(Buffer.from(b.data));
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FaceganError);
  expect((err as FaceganError).code).toBe(code);
  if (message) expect((err as FaceganError).message).toMatch(message);
}

describeFixtures('micro-batching (StyleGAN2 tiny32)', () => {
  let gen: Generator;
  beforeAll(async () => {
    gen = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu', batchSize: 8 });
  });
  afterAll(() => gen.dispose());

  it('gathers concurrent requests into batches with bit-identical images', async () => {
    const seeds = Array.from({ length: 20 }, (_, i) => 1000 + i);
    const alone: Image[] = [];
    for (const seed of seeds) alone.push((await gen.generate({ seed, psi: 0.7 }))[0]);
    const before = gen.batchStats;
    const together = await Promise.all(seeds.map((seed) => gen.generate({ seed, psi: 0.7 })));
    const after = gen.batchStats;
    together.forEach(([img], i) => {
      expect(img.seed).toBe(seeds[i]);
      expect(same(img, alone[i]), `seed ${seeds[i]}`).toBe(true);
    });
    // 20 requests in fewer engine calls, none larger than batchSize.
    expect(after.requests - before.requests).toBe(20);
    expect(after.batches - before.batches).toBeLessThan(20);
    expect(after.largestBatch).toBeGreaterThan(1);
    expect(after.largestBatch).toBeLessThanOrEqual(8);
  });

  it('keeps multi-image requests, float32 output and repeatable random noise exact when batched', async () => {
    const a = await gen.generate({ seeds: [1, 2, 3] });
    const f = await gen.generate({ seed: 4, output: 'float32' });
    const r = await gen.generate({ seeds: [5, 6], noiseMode: 'random', noiseSeed: 77 });
    const [a2, f2, r2, x] = await Promise.all([
      gen.generate({ seeds: [1, 2, 3] }),
      gen.generate({ seed: 4, output: 'float32' }),
      gen.generate({ seeds: [5, 6], noiseMode: 'random', noiseSeed: 77 }),
      gen.generate({ seeds: [9, 10] }),
    ]);
    expect(x.length).toBe(2);
    a.forEach((img, i) => expect(same(img, a2[i])).toBe(true));
    expect(Buffer.from(f2[0].data.buffer, f2[0].data.byteOffset, f2[0].data.byteLength).equals(Buffer.from(f[0].data.buffer, f[0].data.byteOffset, f[0].data.byteLength))).toBe(true);
    r.forEach((img, i) => expect(same(img, r2[i])).toBe(true));
  });

  it('drops aborted requests before they run; the others complete', async () => {
    // A big request keeps the engine busy while the small ones queue behind it.
    const busy = gen.generate({ seeds: Array.from({ length: 64 }, (_, i) => i) });
    const controllers = Array.from({ length: 6 }, () => new AbortController());
    const before = gen.batchStats;
    const calls = controllers.map((c, i) => gen.generate({ seed: 500 + i, signal: c.signal }));
    controllers[1].abort();
    controllers[3].abort();
    controllers[4].abort();
    await rejectsWith(calls[1], 'ERR_ABORTED', /aborted before it ran/);
    await rejectsWith(calls[3], 'ERR_ABORTED');
    await rejectsWith(calls[4], 'ERR_ABORTED');
    const done = await Promise.all([calls[0], calls[2], calls[5]]);
    await busy;
    expect(done.map(([img]) => img.seed)).toEqual([500, 502, 505]);
    // Only the three live requests (and the busy one's chunks) reached the engine.
    expect(gen.batchStats.images - before.images).toBe(64 + 3);
  });

  it('drops a synthesis request that aborts while it waits in the batch queue', async () => {
    const ws = await gen.mapping({ seeds: [7, 8, 9] });
    const row = gen.info.numWs * gen.info.wDim;
    const [alone] = await gen.synthesis(ws.slice(2 * row));
    const busy = gen.generate({ seeds: Array.from({ length: 64 }, (_, i) => i) });
    await new Promise((r) => setTimeout(r, 5)); // the busy call is on the engine now
    const before = gen.batchStats;
    const c = new AbortController();
    const dropped = gen.synthesis(ws.slice(0, 2 * row), { signal: c.signal });
    const kept = gen.synthesis(ws.slice(2 * row), { signal: new AbortController().signal });
    expect(gen.batchStats.waiting).toBe(2);
    c.abort();
    expect(gen.batchStats.waiting).toBe(1);
    await rejectsWith(dropped, 'ERR_ABORTED');
    const [img] = await kept;
    await busy;
    expect(same(img, alone)).toBe(true);
    expect(gen.batchStats.dropped - before.dropped).toBe(1);
  });

  it('rejects at once for an already-aborted signal, reports time-outs, and checks the option', async () => {
    const before = gen.batchStats;
    await rejectsWith(gen.generate({ seed: 1, signal: AbortSignal.abort() }), 'ERR_ABORTED');
    await rejectsWith(gen.mapping({ seed: 1, signal: AbortSignal.abort() }), 'ERR_ABORTED');
    const ws = await gen.mapping({ seed: 1 });
    await rejectsWith(gen.synthesis(ws, { signal: AbortSignal.abort() }), 'ERR_ABORTED');
    expect(gen.batchStats.images).toBe(before.images);
    const busy = gen.generate({ seeds: Array.from({ length: 64 }, (_, i) => i) });
    await rejectsWith(gen.generate({ seed: 2, signal: AbortSignal.timeout(1) }), 'ERR_ABORTED', /timed out/);
    await busy;
    await rejectsWith(gen.generate({ seed: 1, signal: 'stop' as unknown as AbortSignal }), 'ERR_INVALID_OPTION', /signal/);
  });

  it('rejects queued requests with ERR_DISPOSED when the generator is disposed', async () => {
    const g = await loadGenerator(fixturePath('tiny32.pkl'), { device: 'cpu' });
    const busy = g.generate({ seeds: Array.from({ length: 32 }, (_, i) => i) });
    const queued = g.generate({ seed: 3 });
    g.dispose();
    await busy.catch(() => undefined);
    await rejectsWith(queued, 'ERR_DISPOSED');
  });
});

describe('micro-batching (embedded ProGAN-128)', () => {
  let gen: Generator;
  beforeAll(async () => {
    gen = await loadGenerator(DEFAULT_MODEL, { device: 'cpu', batchSize: 4, maxBatchMs: 0 });
  });
  afterAll(() => gen.dispose());

  it('batches concurrent requests with bit-identical images', async () => {
    const seeds = [3, 14, 15, 92, 65, 35];
    const alone: Image[] = [];
    for (const seed of seeds) alone.push((await gen.generate({ seed }))[0]);
    const before = gen.batchStats;
    const together = await Promise.all(seeds.map((seed) => gen.generate({ seed })));
    expect(gen.batchStats.batches - before.batches).toBeLessThan(seeds.length);
    together.forEach(([img], i) => expect(same(img, alone[i]), `seed ${seeds[i]}`).toBe(true));
    expect(together[0][0].model).toBe('progan-celeba128');
  });

  it('caps gathered batches by their time budget (maxBatchMs), measured per image', async () => {
    const slow = await loadGenerator(DEFAULT_MODEL, { device: 'cpu', batchSize: 4, maxBatchMs: 1 });
    try {
      await slow.generate({ seed: 1 }); // measures the engine: tens of ms per image, so 1 ms allows 1
      expect(slow.batchStats.msPerImage).toBeGreaterThan(1);
      const seeds = [3, 14, 15, 92];
      const before = slow.batchStats;
      const out = await Promise.all(seeds.map((seed) => slow.generate({ seed })));
      expect(slow.batchStats.batches - before.batches).toBe(4);
      expect(slow.batchStats.largestBatch).toBe(1);
      out.forEach(([img], i) => expect(img.seed).toBe(seeds[i]));
      // An explicit multi-image request is never split below batchSize by the budget.
      await slow.generate({ seeds: [1, 2, 3, 4] });
      expect(slow.batchStats.largestBatch).toBe(4);
      // Nor above it: batchSize bounds gathering only. A larger request is one engine call (the
      // engine chunks it), with the images it would get one by one.
      const calls = slow.batchStats.batches;
      const six = await slow.generate({ seeds: [3, 14, 15, 92, 65, 35] });
      expect(slow.batchStats.batches - calls).toBe(1);
      expect(slow.batchStats.largestBatch).toBe(6);
      six.slice(0, 4).forEach((img, i) => expect(same(img, out[i][0]), `seed ${seeds[i]}`).toBe(true));
    } finally {
      slow.dispose();
    }
    // Before anything is measured, the first gathered call holds one image (it measures the engine).
    const fresh = await loadGenerator(DEFAULT_MODEL, { device: 'cpu', batchSize: 4 });
    try {
      await Promise.all([1, 2, 3, 4].map((seed) => fresh.generate({ seed })));
      expect(fresh.batchStats.batches).toBeGreaterThanOrEqual(2);
      expect(fresh.batchStats.requests).toBe(4);
    } finally {
      fresh.dispose();
    }
    const err = await loadGenerator(DEFAULT_MODEL, { device: 'cpu', maxBatchMs: -1 }).catch((e: unknown) => e);
    expect((err as FaceganError).code).toBe('ERR_INVALID_OPTION');
  });
});
