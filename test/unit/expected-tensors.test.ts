/**
 * Issue 11 §1: the weight format's tensors have one definition, the engine's (native/core/network.cc
 * `expected_tensors`, exported by the addon as `expectedTensors`); the converter, the checkpoint
 * readers and the ONNX exporter take their lists from it (lib/convert/tensor-list.ts). Checked
 * here: the converter's lists are the engine's; every config the converter's own checks accept
 * is one the engine lists tensors for, with the shapes docs/weights-format.md gives; the optional
 * tensors are the standard resample filters; a config the engine refuses is a typed error.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FaceganError } from '../../lib/errors.js';
import { readSafetensorsModel } from '../../lib/convert/index.js';
import { proganTensorShapes, validateProganConfig, type ProganConfig } from '../../lib/convert/progan.js';
import { channelsAt, expectedTensorShapes, validateConfig, type StyleGAN2Config } from '../../lib/convert/stylegan2.js';
import { engineTensorList } from '../../lib/convert/tensor-list.js';
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
    'StyleGAN2 %s: the converter\'s list is the engine\'s, with the documented shapes',
    (_name, config) => {
      validateConfig(config); // the converter's own checks accept it …
      const engine = engineList(config); // … and so does the engine
      const list = expectedTensorShapes(config);
      expect([...list].map(([name, shape]) => ({ name, shape }))).toEqual(
        engine.filter((t) => !t.optional).map(({ name, shape }) => ({ name, shape })),
      );
      // Shapes written out from docs/weights-format.md, for a few tensors of each kind.
      const R = config.img_resolution;
      const { w_dim, z_dim, c_dim } = config;
      expect(list.get('mapping.fc0.weight')).toEqual([w_dim, z_dim + (c_dim > 0 ? w_dim : 0)]);
      expect(list.get('mapping.w_avg')).toEqual([w_dim]);
      expect(list.get('mapping.embed.weight')).toEqual(c_dim > 0 ? [w_dim, c_dim] : undefined);
      expect(list.get('synthesis.b4.const')).toEqual([channelsAt(config, 4), 4, 4]);
      expect(list.get(`synthesis.b${R}.torgb.weight`)).toEqual([config.img_channels, channelsAt(config, R), 1, 1]);
      expect(list.get(`synthesis.b${R}.conv1.noise_const`)).toEqual([R, R]);
      if (R > 4) expect(list.get(`synthesis.b${R}.conv0.weight`)).toEqual([channelsAt(config, R), channelsAt(config, R / 2), 3, 3]);
      // mapping: 2 per layer, w_avg, the embedding; synthesis: const, b4 (conv1 6, torgb 4), 16 per block above.
      expect(list.size).toBe(2 * config.mapping_layers + 1 + (c_dim > 0 ? 2 : 0) + 1 + 10 + 16 * (Math.log2(R) - 2));
      // Optional: the standard resample filters of every block and conv layer (none on ToRGB).
      const optional = engineTensorList(config).optional;
      expect(optional.size).toBe(3 * (Math.log2(R) - 1) - 1);
      for (const [name, shape] of optional) {
        expect(name).toMatch(/^synthesis\.b\d+\.(?:conv[01]\.)?resample_filter$/);
        expect(shape).toEqual([4, 4]);
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
      validateProganConfig(config);
      const engine = engineList(config);
      expect(engine.every((t) => !t.optional)).toBe(true);
      const list = proganTensorShapes(config);
      expect([...list].map(([name, shape]) => ({ name, shape }))).toEqual(engine.map(({ name, shape }) => ({ name, shape })));
      const C = config.channels;
      expect(list.get('progan.dense.weight')).toEqual([16 * C[0]!, config.z_dim]);
      expect(list.get('progan.torgb.weight')).toEqual([config.img_channels, C[C.length - 1]!, 1, 1]);
      expect(list.size).toBe(2 + 4 * C.length); // dense, 2 per conv (b4: one, above: two), torgb
    }
  });

  it('a config the engine refuses is ERR_CORRUPT_FILE with its reason', () => {
    for (const [config, reason] of [[stylegan2(64, { num_ws: 3 }), /num_ws/], [{ arch: 'stylegan3' }, /unsupported arch/]] as const) {
      let err: unknown;
      try {
        engineTensorList(config);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FaceganError);
      expect((err as FaceganError).code).toBe('ERR_CORRUPT_FILE');
      expect((err as FaceganError).message).toMatch(reason);
    }
  });
});
