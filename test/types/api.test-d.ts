/** Type tests: what the public API's types promise to a TypeScript user. */
import { describe, expectTypeOf, it } from 'vitest';
import {
  FaceganError,
  generate,
  loadGenerator,
  type FaceganErrorCode,
  type FloatImage,
  type Generator,
  type GeneratorInfo,
  type Image,
  type ServiceErrorCode,
} from '../../lib/index.js';

describe('public types', () => {
  it('generate() resolves to one 8-bit image', () => {
    expectTypeOf(generate).returns.resolves.toEqualTypeOf<Image>();
    expectTypeOf<Image['data']>().toEqualTypeOf<Uint8Array>();
  });

  it("gen.generate() resolves to Image[] by default and FloatImage[] for output: 'float32'", () => {
    const gen = {} as Generator;
    expectTypeOf(gen.generate({ seed: 1 })).resolves.toEqualTypeOf<Image[]>();
    expectTypeOf(gen.generate({ seed: 1, output: 'float32' as const })).resolves.toEqualTypeOf<FloatImage[]>();
    expectTypeOf(gen.mapping({ seeds: [1, 2] })).resolves.toEqualTypeOf<Float32Array>();
    expectTypeOf(gen.info).toEqualTypeOf<Readonly<GeneratorInfo>>();
    // @ts-expect-error: noiseMode is a closed set
    void gen.generate({ seed: 1, noiseMode: 'loud' });
  });

  it('loadGenerator takes a path and typed options', () => {
    expectTypeOf(loadGenerator).parameter(0).toEqualTypeOf<string>();
    expectTypeOf(loadGenerator('x.pkl', { device: 'cuda', precision: 'fp16' })).resolves.toEqualTypeOf<Generator>();
    // @ts-expect-error: device is a closed set
    void loadGenerator('x.pkl', { device: 'tpu' });
  });

  it('errors carry a closed set of codes', () => {
    expectTypeOf<FaceganError['code']>().toEqualTypeOf<FaceganErrorCode>();
    expectTypeOf<'ERR_INVALID_OPTION'>().toMatchTypeOf<FaceganErrorCode>();
  });
  it('the face service error codes: every FaceganErrorCode, plus its own (ERR_BUSY, …), which are never a FaceganError code', () => {
    expectTypeOf<FaceganErrorCode>().toMatchTypeOf<ServiceErrorCode>();
    expectTypeOf<'ERR_BUSY'>().toMatchTypeOf<ServiceErrorCode>();
    expectTypeOf<'ERR_QUEUE_TIMEOUT'>().toMatchTypeOf<ServiceErrorCode>();
    expectTypeOf<'ERR_BUSY'>().not.toMatchTypeOf<FaceganErrorCode>();
  });

  it("gen.info says where w_avg came from (StyleGAN2)", () => {
    expectTypeOf<GeneratorInfo['wAvg']>().toEqualTypeOf<'stored' | 'computed' | undefined>();
  });
});
