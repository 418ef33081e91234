/**
 * Issue 11 §1: the weight format's tensors are defined once, in the engine (native/core/network.cc,
 * exported by the addon as expectedTensors). The converter's lists (expectedTensorShapes for
 * StyleGAN2, proganTensorShapes for ProGAN) are pinned to it here: the same names, shapes and
 * order for a sweep of configs; the engine's optional tensors (resample filters) are ones the
 * converter accepts too.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readSafetensorsModel } from '../../lib/convert/index.js';
import { proganTensorShapes, type ProganConfig } from '../../lib/convert/progan.js';
import { expectedTensorShapes, isResampleFilterName, type StyleGAN2Config } from '../../lib/convert/stylegan2.js';
import { DEFAULT_MODEL } from '../../lib/index.js';
import { native } from '../../lib/native.js';

interface Expected { name: string; shape: number[]; optional: boolean }
const engineList = (config: object): Expected[] =>
  (native() as unknown as { expectedTensors(config: string): Expected[] }).expectedTensors(JSON.stringify(config));

function stylegan2(res: number, over: Partial<StyleGAN2Config> = {}): StyleGAN2Config {
  const log2 = Math.log2(res);
  return {
    arch: 'stylegan2', z_dim: 512, w_dim: 512, c_dim: 0, img_resolution: res, img_channels: 3, num_ws: 2 * log2 - 2,
    mapping_layers: 8, mapping_lr_multiplier: 0.01, channel_base: 32768, channel_max: 512, conv_clamp: 256, num_fp16_res: 4,
    ...over,
  };
}

describe('one definition of the weight format', () => {
  const configs: StyleGAN2Config[] = [
    ...[4, 8, 16, 32, 64, 128, 256, 512, 1024].map((r) => stylegan2(r)),
    stylegan2(1024, { channel_base: 16384 }), // config-e
    stylegan2(256, { c_dim: 10, mapping_layers: 2 }), // conditional (embed)
    stylegan2(32, { z_dim: 8, w_dim: 6, channel_base: 64, channel_max: 8, img_channels: 1, mapping_layers: 1 }),
    stylegan2(16, { z_dim: 8, w_dim: 6, c_dim: 3, channel_base: 64, channel_max: 8, conv_clamp: null as unknown as number }),
  ];

  it.each(configs.map((c) => [`${c.img_resolution}² c_dim ${c.c_dim} base ${c.channel_base} max ${c.channel_max}`, c] as const))(
    'StyleGAN2 %s: the converter expects exactly the engine\'s tensors, in its order',
    (_name, config) => {
      const engine = engineList(config);
      const required = engine.filter((t) => !t.optional);
      expect([...expectedTensorShapes(config)].map(([name, shape]) => ({ name, shape }))).toEqual(required.map(({ name, shape }) => ({ name, shape })));
      const optional = engine.filter((t) => t.optional);
      expect(optional.length).toBeGreaterThan(0);
      for (const t of optional) {
        expect(isResampleFilterName(t.name), t.name).toBe(true);
        expect(t.shape).toEqual([4, 4]);
      }
    },
  );

  it('ProGAN: the default model\'s config and variants', () => {
    const base = readSafetensorsModel(fs.readFileSync(DEFAULT_MODEL)).config as ProganConfig;
    expect(base.arch).toBe('progan');
    const variants: ProganConfig[] = [
      base,
      { ...base, img_resolution: 4, channels: [base.channels[0]!] },
      { ...base, img_resolution: 32, channels: [64, 32, 16, 8], z_dim: 7, img_channels: 1 },
    ];
    for (const config of variants) {
      const engine = engineList(config);
      expect(engine.every((t) => !t.optional)).toBe(true);
      expect([...proganTensorShapes(config)].map(([name, shape]) => ({ name, shape }))).toEqual(engine.map(({ name, shape }) => ({ name, shape })));
    }
  });

  it('a config the engine refuses throws with its reason', () => {
    expect(() => engineList(stylegan2(64, { num_ws: 3 }))).toThrow(/num_ws/);
    expect(() => engineList({ arch: 'stylegan3' })).toThrow(/unsupported arch/);
  });
});
