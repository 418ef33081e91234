/** Type tests for the page / service, provenance and interpolation API. */
import { describe, expectTypeOf, it } from 'vitest';
import {
  createFaceServer,
  encodeAnimation,
  encodeImage,
  saveImage,
  styleMixGrid,
  type FaceServer,
  type Frame,
  type Generator,
  type Image,
} from '../../lib/index.js';

describe('media and service types', () => {
  it('interpolate resolves to frames (images with index and t); interpolateFrames yields batches', () => {
    const gen = {} as Generator;
    expectTypeOf(gen.interpolate({ from: 1, to: 2, steps: 10 })).resolves.toEqualTypeOf<Frame[]>();
    expectTypeOf<Frame>().toMatchTypeOf<Image>();
    expectTypeOf<Frame['t']>().toEqualTypeOf<number>();
    expectTypeOf(gen.interpolateFrames({ from: 1, to: [0.5], steps: 3, space: 'w', method: 'lerp' })).toEqualTypeOf<AsyncGenerator<Frame[]>>();
    // @ts-expect-error: space is 'z' or 'w'
    void gen.interpolate({ from: 1, to: 2, steps: 3, space: 'x' });
    expectTypeOf(styleMixGrid(gen, { rows: [1], cols: [2], styles: 'coarse' })).resolves.toEqualTypeOf<Image>();
  });

  it('every call takes an AbortSignal', () => {
    const gen = {} as Generator;
    const signal = new AbortController().signal;
    expectTypeOf(gen.generate({ seed: 1, signal })).resolves.toEqualTypeOf<Image[]>();
    expectTypeOf(gen.mapping({ seed: 1, signal })).resolves.toEqualTypeOf<Float32Array>();
    expectTypeOf(gen.synthesis(new Float32Array(1), { signal })).resolves.toEqualTypeOf<Image[]>();
    // @ts-expect-error: a signal is an AbortSignal
    void gen.generate({ seed: 1, signal: 'stop' });
  });

  it('encoding takes provenance options; the opt-out is explicit', () => {
    const img = {} as Image;
    expectTypeOf(encodeImage(img, 'webp', { size: 256, provenance: false })).resolves.toEqualTypeOf<Buffer>();
    expectTypeOf(saveImage(img, 'a.png', { provenance: { model: 'm', seed: 1 } })).resolves.toEqualTypeOf<void>();
    expectTypeOf(encodeAnimation([img], { fps: 24 })).resolves.toEqualTypeOf<Buffer>();
    // @ts-expect-error: provenance is an object or false
    void encodeImage(img, 'png', { provenance: true });
  });

  it('createFaceServer returns a server with listen and a graceful close', () => {
    const app = createFaceServer({ maxQueue: 8, queueTimeoutMs: 1000 });
    expectTypeOf(app).toEqualTypeOf<FaceServer>();
    expectTypeOf(app.close({ deadlineMs: 1 })).resolves.toEqualTypeOf<{ drained: boolean }>();
    expectTypeOf(app.generator).resolves.toEqualTypeOf<Generator>();
  });
});
