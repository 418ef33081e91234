/**
 * ONNX export: the protobuf encoder, the structure of the exported graphs, and every fixture's
 * export run by ONNX Runtime (onnxruntime-node, CPU) against the goldens and against facegan's
 * own float32 output.
 *   images ≤ 1e-4 max abs, ws ≤ 1e-5 relative (max |Δ| / max |golden|).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readCheckpoint, type Checkpoint } from '../../lib/convert/index.js';
import { createProganReference } from '../helpers/progan-reference.js';
import { readTfjsGraphModel, type ProganConfig } from '../../lib/convert/tfjs.js';
import { loadGenerator, type FloatImage, type Generator } from '../../lib/index.js';
import {
  DEFAULT_OPSET, ONNX_OPS, buildOnnx, checkModel, decodeModel, encodeModel, exportOnnx, exportOnnxCli, irVersionForOpset,
  twoGraphPaths, validateOnnx, type ExportOnnxOptions,
} from '../../lib/onnx/index.js';
import { Message, readFields, repeatedInts } from '../../lib/onnx/proto.js';
import { proganTensorShapes } from '../../lib/convert/progan.js';
import { describeFixtures, fixturePath } from '../helpers/fixtures.js';
import { GOLDEN_SEED_CASES, readGolden, seedCases, type Golden } from '../helpers/golden.js';
import { expectImageClose, expectWsClose, maxAbs, maxAbsDiff } from '../helpers/compare.js';

const FIXTURES: [string, string][] = [
  ['tiny32', 'tiny32.pkl'],
  ['tiny32', 'tiny32.tf.pkl'],
  ['small64-fp16', 'small64-fp16.pkl'],
  ['cond32', 'cond32.pkl'],
  ['gray16', 'gray16.pkl'],
];

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

describe('protobuf encoder', () => {
  it('writes varints, keys and length-delimited fields as the wire format specifies', () => {
    expect(hex(new Message().int(1, 150).finish())).toBe('089601');
    expect(hex(new Message().int(1, 300).finish())).toBe('08ac02');
    expect(hex(new Message().int(1, 0).finish())).toBe('0800');
    expect(hex(new Message().int(2, 2 ** 40).finish())).toBe('108080808080' + '20');
    // Negative int64: ten-byte two's complement.
    expect(hex(new Message().int(1, -1).finish())).toBe('08ffffffffffffffffff01');
    expect(hex(new Message().string(2, 'testing').finish())).toBe('120774657374696e67');
    expect(hex(new Message().float(2, 1).finish())).toBe('150000803f');
    expect(hex(new Message().message(3, new Message().int(1, 150)).finish())).toBe('1a03089601');
    expect(hex(new Message().int(20, 2).finish())).toBe('a00102');
    // A 200-byte bytes field: two-byte length.
    const big = new Message().bytes(1, new Uint8Array(200)).finish();
    expect(hex(big.subarray(0, 3))).toBe('0ac801');
    expect(big.length).toBe(203);
  });

  it('reads back what it writes, packed or not', () => {
    const m = new Message().ints(1, [1, 300, -2, 2 ** 50]).string(2, 'ä').finish();
    const fields = readFields(m);
    expect(repeatedInts(fields, 1)).toEqual([1, 300, -2, 2 ** 50]);
    // The same kind of field written packed (one length-delimited field of varints).
    const packed = Uint8Array.from([0x0a, 0x03, 0x01, 0xac, 0x02]);
    expect(repeatedInts(readFields(packed), 1)).toEqual([1, 300]);
    expect(() => readFields(Uint8Array.from([0x0a, 0x05, 0x01]))).toThrow(/truncated/);
    expect(() => readFields(Uint8Array.from([0x08, 0xff]))).toThrow(/truncated varint/);
  });

  it('encodes a minimal model that ONNX Runtime runs', async () => {
    const model = encodeModel({
      irVersion: irVersionForOpset(17),
      opset: 17,
      producerName: 'test',
      producerVersion: '0',
      graph: {
        name: 'g',
        nodes: [{ op: 'Add', name: 'add', inputs: ['x', 'k'], outputs: ['y'], attrs: {} }],
        initializers: [{ name: 'k', dims: [2], dataType: 1, data: Float32Array.of(1, 2) }],
        inputs: [{ name: 'x', elemType: 1, dims: ['N', 2] }],
        outputs: [{ name: 'y', elemType: 1, dims: ['N', 2] }],
      },
    });
    expect(checkModel(decodeModel(model))).toEqual([]);
    const s = await ort.InferenceSession.create(model);
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.of(10, 20, 30, 40), [2, 2]) });
    expect(Array.from(out.y!.data as Float32Array)).toEqual([11, 22, 31, 42]);
    expect(out.y!.dims).toEqual([2, 2]);
  });

  it('finds structural problems', () => {
    const bad = decodeModel(encodeModel({
      irVersion: 8,
      opset: 17,
      producerName: 'test',
      producerVersion: '0',
      graph: {
        name: 'g',
        nodes: [
          { op: 'Relu', name: 'a', inputs: ['t'], outputs: ['u'], attrs: {} },
          { op: 'Foo', name: 'b', inputs: ['x'], outputs: ['t'], attrs: {} },
        ],
        initializers: [],
        inputs: [{ name: 'x', elemType: 1, dims: [1] }],
        outputs: [{ name: 'v', elemType: 1, dims: [1] }],
      },
    }));
    const problems = checkModel(bad, ONNX_OPS).join('\n');
    expect(problems).toMatch(/input 't' is not defined before it/);
    expect(problems).toMatch(/op Foo is not in the allowed list/);
    expect(problems).toMatch(/graph output 'v' is never produced/);
  });
});

function zOf(golden: Golden, key: string): Float32Array {
  return Float32Array.from(golden.tensor(key).data as Float64Array);
}

function oneHot(cDim: number, classes: number[]): Float32Array {
  const c = new Float32Array(classes.length * cDim);
  classes.forEach((k, i) => (c[i * cDim + k] = 1));
  return c;
}

function concat(parts: ArrayLike<number>[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function concatImages(images: FloatImage[]): Float32Array {
  return concat(images.map((im) => im.data));
}

/** ONNX Runtime sessions for one fixture's exports. */
interface Sessions {
  one: { const: ort.InferenceSession; none: ort.InferenceSession };
  mapping: ort.InferenceSession;
  synthesis: { const: ort.InferenceSession; none: ort.InferenceSession };
}

async function sessionFor(model: Checkpoint, opts: ExportOnnxOptions): Promise<ort.InferenceSession> {
  const b = buildOnnx(model, opts);
  if (b.graphs !== 'one') throw new Error('expected one graph');
  return ort.InferenceSession.create(b.model);
}

async function twoSessions(model: Checkpoint, opts: ExportOnnxOptions): Promise<{ mapping: ort.InferenceSession; synthesis: ort.InferenceSession }> {
  const b = buildOnnx(model, { ...opts, graphs: 'two' });
  if (b.graphs !== 'two') throw new Error('expected two graphs');
  return { mapping: await ort.InferenceSession.create(b.mapping), synthesis: await ort.InferenceSession.create(b.synthesis) };
}

for (const [config, file] of FIXTURES) {
  describeFixtures(`ONNX export of ${file}`, () => {
    let model: Checkpoint;
    let golden: Golden;
    let s: Sessions;
    let gen: Generator;

    const feeds = (z: Float32Array, psi: number, classes: number[]): Record<string, ort.Tensor> => {
      const { z_dim, c_dim } = model.config;
      const n = z.length / z_dim;
      const f: Record<string, ort.Tensor> = {
        z: new ort.Tensor('float32', z, [n, z_dim]),
        psi: new ort.Tensor('float32', Float32Array.of(psi), []),
      };
      if (c_dim > 0) f.c = new ort.Tensor('float32', oneHot(c_dim, classes), [n, c_dim]);
      return f;
    };
    const classesOf = (seeds: number[]): number[] => (model.config.c_dim > 0 ? seeds.map((x) => x % 10) : []);
    const runImg = async (session: ort.InferenceSession, f: Record<string, ort.Tensor>): Promise<ort.Tensor> => (await session.run(f)).img!;
    const synth = async (session: ort.InferenceSession, ws: Float32Array): Promise<ort.Tensor> => {
      const { num_ws, w_dim } = model.config;
      return (await session.run({ ws: new ort.Tensor('float32', ws, [ws.length / (num_ws * w_dim), num_ws, w_dim]) })).img!;
    };

    beforeAll(async () => {
      model = await readCheckpoint(fixturePath(file));
      golden = readGolden(config);
      const two = await twoSessions(model, { noiseMode: 'const' });
      s = {
        one: { const: await sessionFor(model, { noiseMode: 'const' }), none: await sessionFor(model, { noiseMode: 'none' }) },
        mapping: two.mapping,
        synthesis: { const: two.synthesis, none: (await twoSessions(model, { noiseMode: 'none' })).synthesis },
      };
      gen = await loadGenerator(fixturePath(file), { device: 'cpu' });
    });
    afterAll(() => gen?.dispose());

    it('writes structurally valid graphs with the named inputs and outputs', () => {
      const cfg = model.config;
      const cond = cfg.c_dim > 0;
      const one = buildOnnx(model);
      if (one.graphs !== 'one') throw new Error('expected one graph');
      const d = validateOnnx(one.model);
      expect(d.irVersion).toBe(8);
      expect(d.opsets).toEqual([{ domain: '', version: DEFAULT_OPSET }]);
      expect(d.producerName).toBe('facegan-native');
      expect(d.graph.inputs).toEqual([
        { name: 'z', elemType: 1, dims: ['N', cfg.z_dim] },
        ...(cond ? [{ name: 'c', elemType: 1, dims: ['N', cfg.c_dim] }] : []),
        { name: 'psi', elemType: 1, dims: [] },
      ]);
      expect(d.graph.outputs).toEqual([{ name: 'img', elemType: 1, dims: ['N', cfg.img_channels, cfg.img_resolution, cfg.img_resolution] }]);
      // Every initializer is float32/int64 raw_data, and every weight is in the graph once.
      for (const t of d.graph.initializers) {
        expect(t.raw).toBeDefined();
        expect([1, 7]).toContain(t.dataType);
      }
      expect(d.graph.nodes.filter((n) => n.op === 'ConvTranspose' && n.attrs.group === undefined).length).toBe(Math.log2(cfg.img_resolution) - 2);
      expect(JSON.parse(d.metadata['facegan.config']!)).toEqual(cfg);

      const two = buildOnnx(model, { graphs: 'two', opset: 18 });
      if (two.graphs !== 'two') throw new Error('expected two graphs');
      const m = validateOnnx(two.mapping);
      const y = validateOnnx(two.synthesis);
      expect(m.opsets[0]!.version).toBe(18);
      expect(m.graph.inputs.map((v) => v.name)).toEqual(cond ? ['z', 'c', 'psi'] : ['z', 'psi']);
      expect(m.graph.outputs).toEqual([{ name: 'ws', elemType: 1, dims: ['N', cfg.num_ws, cfg.w_dim] }]);
      expect(y.graph.inputs).toEqual([{ name: 'ws', elemType: 1, dims: ['N', cfg.num_ws, cfg.w_dim] }]);
      expect(y.graph.outputs.map((v) => v.name)).toEqual(['img']);
      // The synthesis graph holds no mapping weights and vice versa.
      expect(y.graph.initializers.some((t) => t.name.startsWith('mapping.'))).toBe(false);
      expect(m.graph.initializers.some((t) => t.name.startsWith('synthesis.'))).toBe(false);
    });

    it('one graph: z, psi → the golden images (const and none noise)', async () => {
      const cases = seedCases(golden);
      expect(cases).toHaveLength(GOLDEN_SEED_CASES);
      for (const c of cases) {
        const session = c.noise_mode === 'none' ? s.one.none : s.one.const;
        const img = await runImg(session, feeds(zOf(golden, c.z), c.psi, classesOf([c.seed])));
        expect(img.dims).toEqual([1, model.config.img_channels, model.config.img_resolution, model.config.img_resolution]);
        expectImageClose(img.data as Float32Array, golden.tensor(c.image).data as Float32Array);
      }
    });

    it('one graph: a batch of 4 gives the golden batch (and each image as alone)', async () => {
      const c = golden.cases.cases.find((x) => x.batch_seeds !== undefined)!;
      const seeds = c.batch_seeds!;
      const z = concat(seeds.map((seed) => zOf(golden, `z/${seed}`)));
      const img = await runImg(s.one.const, feeds(z, c.psi!, classesOf(seeds)));
      expect(img.dims[0]).toBe(4);
      expectImageClose(img.data as Float32Array, golden.tensor(c.image!).data as Float32Array);
    });

    it('two graphs: mapping → the golden ws, synthesis(golden ws) → the golden images', async () => {
      const cases = seedCases(golden);
      expect(cases).toHaveLength(GOLDEN_SEED_CASES);
      for (const c of cases) {
        const ws = (await s.mapping.run(feeds(zOf(golden, c.z), c.psi, classesOf([c.seed])))).ws!;
        expect(ws.dims).toEqual([1, model.config.num_ws, model.config.w_dim]);
        expectWsClose(ws.data as Float32Array, golden.tensor(c.ws).data as Float32Array);
        const img = await synth(c.noise_mode === 'none' ? s.synthesis.none : s.synthesis.const, golden.tensor(c.ws).data as Float32Array);
        expectImageClose(img.data as Float32Array, golden.tensor(c.image).data as Float32Array);
      }
      // Style mixing is editing rows of ws.
      const mix = golden.cases.cases.find((x) => x.mixing !== undefined)!;
      const img = await synth(s.synthesis.const, golden.tensor(mix.ws!).data as Float32Array);
      expectImageClose(img.data as Float32Array, golden.tensor(mix.image!).data as Float32Array);
    });

    it('two graphs: a batch of 4 through mapping then synthesis gives the golden batch', async () => {
      const c = golden.cases.cases.find((x) => x.batch_seeds !== undefined)!;
      const seeds = c.batch_seeds!;
      const z = concat(seeds.map((seed) => zOf(golden, `z/${seed}`)));
      const ws = (await s.mapping.run(feeds(z, c.psi!, classesOf(seeds)))).ws!;
      expect(ws.dims[0]).toBe(4);
      expectWsClose(ws.data as Float32Array, concat(seeds.map((seed) => golden.tensor(`ws/${seed}/0.7`).data as Float32Array)));
      const img = await synth(s.synthesis.const, ws.data as Float32Array);
      expectImageClose(img.data as Float32Array, golden.tensor(c.image!).data as Float32Array);
    });

    it("matches facegan's own float32 output (batches, psi, noise modes)", async () => {
      const seeds = [0, 1, 42, 1234, 85, 7];
      const z = concat(seeds.map((seed) => Float32Array.from(gen.zFromSeed(seed))));
      const classIndex = model.config.c_dim > 0 ? seeds.map((x) => x % 10) : undefined;
      for (const psi of [1, 0.7, 0.5]) {
        for (const noiseMode of ['const', 'none'] as const) {
          const ours = concatImages(await gen.generate({ z, psi, classIndex, noiseMode, output: 'float32' }));
          const onnx = await runImg(noiseMode === 'none' ? s.one.none : s.one.const, feeds(z, psi, classesOf(seeds)));
          expect(maxAbsDiff(onnx.data as Float32Array, ours)).toBeLessThanOrEqual(1e-4);
        }
        const ws = (await s.mapping.run(feeds(z, psi, classesOf(seeds)))).ws!;
        expectWsClose(ws.data as Float32Array, await gen.mapping({ z, psi, classIndex }));
      }
    });

    it('bakes in a truncation cutoff', async () => {
      const cutoff = 2;
      const { mapping } = await twoSessions(model, { truncationCutoff: cutoff });
      const one = await sessionFor(model, { truncationCutoff: cutoff });
      const seeds = [3, 4];
      const z = concat(seeds.map((seed) => Float32Array.from(gen.zFromSeed(seed))));
      const classIndex = model.config.c_dim > 0 ? seeds.map((x) => x % 10) : undefined;
      const ws = (await mapping.run(feeds(z, 0.5, classesOf(seeds)))).ws!;
      expectWsClose(ws.data as Float32Array, await gen.mapping({ z, psi: 0.5, truncationCutoff: cutoff, classIndex }));
      const img = await runImg(one, feeds(z, 0.5, classesOf(seeds)));
      const ours = concatImages(await gen.generate({ z, psi: 0.5, truncationCutoff: cutoff, classIndex, noiseMode: 'const', output: 'float32' }));
      expect(maxAbsDiff(img.data as Float32Array, ours)).toBeLessThanOrEqual(1e-4);
    });
  });
}

describeFixtures('ONNX export options and files', () => {
  let model: Checkpoint;
  let golden: Golden;
  let dir: string;
  beforeAll(async () => {
    model = await readCheckpoint(fixturePath('tiny32.pkl'));
    golden = readGolden('tiny32');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-onnx-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const goldenCase = () => golden.cases.cases.find((c) => c.seed === 42 && c.psi === 0.7 && c.noise_mode === 'const')!;
  const run = async (session: ort.InferenceSession) => {
    const c = goldenCase();
    const z = zOf(golden, c.z!);
    return (await session.run({ z: new ort.Tensor('float32', z, [1, z.length]), psi: new ort.Tensor('float32', [c.psi!], []) })).img!;
  };

  it('every supported opset gives the golden image (with the matching IR version)', async () => {
    for (const opset of [13, 15, 17, 18, 21]) {
      const b = buildOnnx(model, { opset });
      if (b.graphs !== 'one') throw new Error('expected one graph');
      const d = validateOnnx(b.model);
      expect(d.opsets[0]!.version).toBe(opset);
      expect(d.irVersion).toBe(irVersionForOpset(opset));
      const img = await run(await ort.InferenceSession.create(b.model));
      expectImageClose(img.data as Float32Array, golden.tensor(goldenCase().image!).data as Float32Array);
    }
  });

  it('exportOnnx writes one file, or two named after it, that load from disk', async () => {
    const one = await exportOnnx(fixturePath('tiny32.pkl'), path.join(dir, 'tiny.onnx'));
    expect(one.files).toEqual([path.join(dir, 'tiny.onnx')]);
    expect(one.opset).toBe(17);
    expect(one.bytes).toBe(fs.statSync(one.files[0]!).size);
    const img = await run(await ort.InferenceSession.create(one.files[0]!));
    expectImageClose(img.data as Float32Array, golden.tensor(goldenCase().image!).data as Float32Array);

    const two = await exportOnnx(model, path.join(dir, 'tiny2.onnx'), { graphs: 'two' });
    expect(two.files).toEqual([path.join(dir, 'tiny2.mapping.onnx'), path.join(dir, 'tiny2.synthesis.onnx')]);
    expect(twoGraphPaths('x/y')).toEqual({ mapping: 'x/y.mapping.onnx', synthesis: 'x/y.synthesis.onnx' });
    for (const f of two.files) validateOnnx(fs.readFileSync(f));
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('exportOnnxCli parses its arguments', async () => {
    const lines: string[] = [];
    const r = await exportOnnxCli([fixturePath('gray16.pkl'), path.join(dir, 'g.onnx'), '--graphs', 'two', '--opset', '18', '--noise', 'none'], (l) => lines.push(l));
    expect(r.files.length).toBe(2);
    expect(lines).toEqual(r.files.map((f) => `wrote ${f}`));
    const d = validateOnnx(fs.readFileSync(r.files[1]!));
    expect(d.metadata['facegan.noise_mode']).toBe('none');
    expect(d.opsets[0]!.version).toBe(18);
    await expect(exportOnnxCli([fixturePath('gray16.pkl')])).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    await expect(exportOnnxCli([fixturePath('gray16.pkl'), path.join(dir, 'h.onnx'), '--opset', 'x'])).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });

  it('refuses bad options and bad models with typed errors', async () => {
    expect(() => buildOnnx(model, { opset: 12 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => buildOnnx(model, { graphs: 'three' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => buildOnnx(model, { noiseMode: 'random' as never })).toThrow(/random noise cannot be exported/);
    expect(() => buildOnnx(model, { truncationCutoff: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    const missing = new Map(model.tensors);
    missing.delete('mapping.w_avg');
    expect(() => buildOnnx({ config: model.config, tensors: missing })).toThrow(expect.objectContaining({ code: 'ERR_CORRUPT_FILE' }));
    await expect(exportOnnx(path.join(dir, 'nope.pkl'), path.join(dir, 'x.onnx'))).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
    await expect(exportOnnx(model, path.join(dir, 'no-such-dir', 'x.onnx'))).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
    expect(() => validateOnnx(Uint8Array.from([0x0a, 0x05]))).toThrow(expect.objectContaining({ code: 'ERR_CORRUPT_FILE' }));
  });
});

describe('ONNX export of ProGAN', () => {
  /** A small random ProGAN (the real topology, narrow), weights like the folded TF-Hub ones. */
  function randomProgan(channels: number[], zDim: number, seed: number): { config: ProganConfig; tensors: Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> } {
    const config: ProganConfig = {
      arch: 'progan', z_dim: zDim, img_resolution: 4 << (channels.length - 1), img_channels: 3, channels,
      lrelu_slope: 0.2, pixelnorm_eps: 1e-8, normalize_latent: true, upsample: 'nearest', weight_gain: 1,
      output: { tfhub_clip: [0, 1], scale: 127.5, offset: 63.75 },
    };
    let a = seed >>> 0;
    const rand = (): number => {
      a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
      return a / 2 ** 32 - 0.5;
    };
    const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
    for (const [name, shape] of proganTensorShapes(config)) {
      const fanIn = shape.length === 4 ? shape[1]! * shape[2]! * shape[3]! : shape.length === 2 ? shape[1]! : 1;
      const scale = name.endsWith('.bias') ? 0.2 : 3 / Math.sqrt(fanIn);
      tensors.set(name, { dtype: 'F32', shape, data: Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => rand() * scale) });
    }
    return { config, tensors };
  }

  function hwcToChw(v: Float32Array, h: number, w: number, c: number): Float32Array {
    const out = new Float32Array(v.length);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) out[(k * h + y) * w + x] = v[(y * w + x) * c + k]!;
    return out;
  }

  async function checkAgainstReference(model: { config: ProganConfig; tensors: Map<string, { shape: number[]; data: Float32Array }> }, batch: number): Promise<number> {
    const cfg = model.config;
    const b = buildOnnx(model, {});
    if (b.graphs !== 'one') throw new Error('expected one graph');
    const d = validateOnnx(b.model);
    expect(d.graph.inputs).toEqual([{ name: 'z', elemType: 1, dims: ['N', cfg.z_dim] }]);
    expect(d.graph.outputs).toEqual([{ name: 'img', elemType: 1, dims: ['N', cfg.img_channels, cfg.img_resolution, cfg.img_resolution] }]);
    const session = await ort.InferenceSession.create(b.model);
    const ref = createProganReference(cfg, model.tensors);
    let a = 12345;
    const z = Float32Array.from({ length: batch * cfg.z_dim }, () => {
      a = (Math.imul(a, 1103515245) + 12345) >>> 0;
      return (a / 2 ** 32 - 0.5) * 3;
    });
    const out = (await session.run({ z: new ort.Tensor('float32', z, [batch, cfg.z_dim]) })).img!;
    const R = cfg.img_resolution;
    expect(out.dims).toEqual([batch, cfg.img_channels, R, R]);
    const want = concat(Array.from({ length: batch }, (_, i) => hwcToChw(ref.forward(z.subarray(i * cfg.z_dim, (i + 1) * cfg.z_dim)), R, R, cfg.img_channels)));
    const diff = maxAbsDiff(out.data as Float32Array, want);
    // The comparison must not be vacuous.
    expect(maxAbs(want)).toBeGreaterThan(0.1);
    return diff;
  }

  it('matches the float32 reference forward (single images and a batch of 3)', async () => {
    const model = randomProgan([16, 12, 8, 6], 24, 7);
    expect(await checkAgainstReference(model, 1)).toBeLessThanOrEqual(1e-4);
    expect(await checkAgainstReference(model, 3)).toBeLessThanOrEqual(1e-4);
  });

  it('matches the reference at the real widths of the first blocks (512 channels)', async () => {
    const model = randomProgan([512, 512, 256], 512, 11);
    expect(await checkAgainstReference(model, 2)).toBeLessThanOrEqual(1e-4);
  });

  it('exports the TensorFlow.js stand-in graph read by readTfjsGraphModel, when present', async (ctx) => {
    const tiny = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'progan', 'tiny-model.json');
    if (!fs.existsSync(tiny)) ctx.skip();
    const model = await readTfjsGraphModel(tiny);
    expect(await checkAgainstReference(model, 2)).toBeLessThanOrEqual(1e-4);
    // exportOnnx reads a model.json path itself.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-onnx-progan-'));
    try {
      const r = await exportOnnx(tiny, path.join(dir, 'p.onnx'));
      const d = validateOnnx(fs.readFileSync(r.files[0]!));
      expect(d.metadata['facegan.arch']).toBe('progan');
      expect(d.graph.nodes.filter((n) => n.op === 'Resize').length).toBe(model.config.channels.length - 1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has one graph only, and refuses configs it cannot export', () => {
    const model = randomProgan([8, 6], 8, 1);
    expect(() => buildOnnx(model, { graphs: 'two' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => buildOnnx({ ...model, config: { ...model.config, weight_gain: 2 } })).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED_ARCH' }));
    const missing = new Map(model.tensors);
    missing.delete('progan.torgb.bias');
    expect(() => buildOnnx({ config: model.config, tensors: missing })).toThrow(expect.objectContaining({ code: 'ERR_CORRUPT_FILE' }));
  });
});
