/** ProGAN models in facegan safetensors files and TF.js graph models, through readCheckpoint. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCheckpoint, readSafetensorsModel, serializeModel } from '../../../lib/convert/index.js';
import { proganTensorShapes } from '../../../lib/convert/progan.js';
import { rejectsWith } from '../../helpers/errors.js';
import { readSafetensors, writeSafetensors } from '../../../lib/safetensors.js';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '../../..');
const WEIGHTS = path.join(root, 'weights', 'progan-celeba128.safetensors');
const TINY_GRAPH = path.join(root, 'test', 'fixtures', 'progan', 'tiny-model.json');

describe('ProGAN files', () => {
  it('reads the embedded default model: config, every canonical tensor, widened to float32', async () => {
    const ckpt = await readCheckpoint(WEIGHTS);
    expect(ckpt.config.arch).toBe('progan');
    expect(ckpt.config).toMatchObject({ z_dim: 512, img_resolution: 128, img_channels: 3, channels: [512, 512, 512, 512, 256, 128] });
    const shapes = proganTensorShapes(ckpt.config as never);
    expect([...ckpt.tensors.keys()]).toEqual([...shapes.keys()]);
    let params = 0;
    for (const [name, t] of ckpt.tensors) {
      expect(t.shape, name).toEqual(shapes.get(name));
      expect(t.data).toBeInstanceOf(Float32Array);
      params += t.data.length;
    }
    expect(params).toBe(22_926_467);
  });

  it('reads a TF.js graph model by its model.json and round-trips it through a facegan file', async () => {
    const graph = await readCheckpoint(TINY_GRAPH);
    expect(graph.format).toBe('tfjs');
    const bytes = serializeModel(graph);
    const back = readSafetensorsModel(bytes);
    expect(back.config).toEqual(graph.config);
    for (const [name, t] of graph.tensors) expect(Array.from(back.tensors.get(name)!.data)).toEqual(Array.from(t.data));
  });

  it('refuses ProGAN files with a bad config or wrong tensors, naming the problem', async () => {
    const file = readSafetensors(serializeModel(await readCheckpoint(TINY_GRAPH)));
    const rewrite = (config: unknown, drop?: string): Buffer => {
      const tensors = new Map(file.tensors);
      if (drop) tensors.delete(drop);
      return writeSafetensors(tensors, { ...file.metadata, config: JSON.stringify(config) });
    };
    const config = JSON.parse(file.metadata.config!);
    await rejectsWith(() => readSafetensorsModel(rewrite({ ...config, channels: [8] })), 'ERR_CORRUPT_FILE', /channels/);
    await rejectsWith(() => readSafetensorsModel(rewrite({ ...config, upsample: 'bilinear' })), 'ERR_UNSUPPORTED_ARCH', /upsample/);
    await rejectsWith(() => readSafetensorsModel(rewrite({ ...config, extra: 1 })), 'ERR_CORRUPT_FILE', /extra/);
    await rejectsWith(() => readSafetensorsModel(rewrite(config, 'progan.torgb.bias')), 'ERR_CORRUPT_FILE', /Missing tensor progan.torgb.bias/);
  });
});
