import { describe, expect, it } from 'vitest';

import { readCheckpoint, readCheckpointBuffer } from '../../../lib/convert/index.js';
import { expectedTensorShapes, validateConfig, type StyleGAN2Config } from '../../../lib/convert/stylegan2.js';
import { FaceganError } from '../../../lib/errors.js';
import { torchTensor } from './pickle-writer.js';
import { SMALL_CONFIG, pytorchPickle, randomTensors, rng, tfPickle } from './synthetic.js';

function errorOf(fn: () => unknown): FaceganError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FaceganError);
    return err as FaceganError;
  }
  throw new Error('expected a FaceganError, got success');
}

const cond: StyleGAN2Config = { ...SMALL_CONFIG, c_dim: 5, conv_clamp: null, num_fp16_res: 0, img_channels: 1, mapping_lr_multiplier: 0.02 };

describe('synthetic PyTorch pickles', () => {
  for (const config of [SMALL_CONFIG, cond]) {
    it(`convert to exactly the tensors they hold (c_dim ${config.c_dim})`, () => {
      const tensors = randomTensors(config, 3);
      const out = readCheckpointBuffer(pytorchPickle(config, tensors));
      expect(out.config).toEqual(config);
      expect(out.source).toBe('stylegan2-ada-pytorch pickle');
      expect([...out.tensors.keys()]).toEqual([...tensors.keys()]);
      for (const [name, t] of tensors) {
        expect(out.tensors.get(name)!.shape).toEqual(t.shape);
        expect(out.tensors.get(name)!.data).toEqual(t.data); // G_ema, not G (which holds 2×)
      }
    });
  }

  const base = randomTensors(SMALL_CONFIG, 5);
  const build = (edit: Parameters<typeof pytorchPickle>[2]): Buffer => pytorchPickle(SMALL_CONFIG, base, edit);

  it('rejects StyleGAN3 (-t / -r) generators by name', () => {
    const e = errorOf(() => readCheckpointBuffer(build({
      edit: (g) => {
        const syn = g.mods.synthesis!;
        syn.mods = { input: { cls: 'SynthesisInput', params: {}, buffers: {}, mods: {}, attrs: {} }, L0_36_512: { cls: 'SynthesisLayer', params: {}, buffers: {}, mods: {}, attrs: {} } };
      },
    })));
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    expect(e.message).toMatch(/StyleGAN3/);
  });

  it('rejects architectures other than skip', () => {
    for (const arch of ['resnet', 'orig']) {
      const e = errorOf(() => readCheckpointBuffer(build({ edit: (g) => { g.mods.synthesis!.mods.b8!.attrs.architecture = arch; } })));
      expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
      expect(e.message).toContain(arch);
    }
  });

  it('rejects unknown tensors (ERR_UNSUPPORTED_ARCH) and missing or misshapen ones (ERR_CORRUPT_FILE)', () => {
    let e = errorOf(() => readCheckpointBuffer(build({ edit: (g) => { g.mods.synthesis!.mods.b8!.params.skip_weight = torchTensor('extra', [2], new Float32Array(2)); } })));
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    expect(e.message).toContain('synthesis.b8.skip_weight');
    e = errorOf(() => readCheckpointBuffer(build({ edit: (g) => { delete g.mods.synthesis!.mods.b16!.mods.conv1!.buffers.noise_const; } })));
    expect(e.code).toBe('ERR_CORRUPT_FILE');
    expect(e.message).toContain('synthesis.b16.conv1.noise_const');
    e = errorOf(() => readCheckpointBuffer(build({ edit: (g) => { g.mods.mapping!.buffers.w_avg = torchTensor('wavg', [7], new Float32Array(7), false); } })));
    expect(e.code).toBe('ERR_CORRUPT_FILE');
    expect(e.message).toContain('mapping.w_avg');
    e = errorOf(() => readCheckpointBuffer(build({ edit: (g) => { g.mods.synthesis!.mods.b4!.buffers.resample_filter = torchTensor('rf', [4, 4], new Float32Array(16).fill(1 / 16), false); } })));
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    expect(e.message).toContain('resample_filter');
  });

  it('rejects other networks, other activations and a missing G_ema', () => {
    let e = errorOf(() => readCheckpointBuffer(build({ edit: (g) => { g.cls = 'Discriminator'; } })));
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    e = errorOf(() => readCheckpointBuffer(build({ edit: (g) => { g.mods.mapping!.mods.fc1!.attrs.activation = 'relu'; } })));
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    e = errorOf(() => readCheckpointBuffer(build({ noGEma: true })));
    expect(e.code).toBe('ERR_CORRUPT_FILE');
    expect(e.message).toContain('G_ema');
    e = errorOf(() => readCheckpointBuffer(build({ edit: (g) => { g.attrs.img_resolution = 32; } })));
    expect(e.code).toBe('ERR_CORRUPT_FILE');
  });
});

describe('synthetic TensorFlow pickles (legacy.py mapping)', () => {
  for (const config of [SMALL_CONFIG, cond]) {
    it(`convert to exactly the tensors they encode (c_dim ${config.c_dim})`, () => {
      const tensors = randomTensors(config, 7);
      const tfConfig = { ...config, mapping_lr_multiplier: 0.01 };
      const out = readCheckpointBuffer(tfPickle(tfConfig, tensors));
      expect(out.config).toEqual(tfConfig);
      expect(out.source).toBe('stylegan2-tf pickle');
      expect([...out.tensors.keys()]).toEqual([...tensors.keys()]);
      for (const [name, t] of tensors) expect(out.tensors.get(name)!.data, name).toEqual(t.data);
    });
  }

  const base = randomTensors(SMALL_CONFIG, 9);
  const code = (opts: Parameters<typeof tfPickle>[2]): FaceganError => errorOf(() => readCheckpointBuffer(tfPickle(SMALL_CONFIG, base, opts)));

  it('reads mapping_lrmul and the default kwargs', () => {
    const out = readCheckpointBuffer(tfPickle(SMALL_CONFIG, base, { kwargs: { mapping_lrmul: 0.5, conv_clamp: null, architecture: 'skip' } }));
    expect(out.config.mapping_lr_multiplier).toBe(0.5);
    expect(out.config.conv_clamp).toBe(null);
  });

  it('rejects other architectures, unknown kwargs and variables, old versions, ProGAN-like networks', () => {
    let e = code({ kwargs: { architecture: 'resnet' } });
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    expect(e.message).toContain('resnet');
    e = code({ kwargs: { fmap_decay: 1.0 } });
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    expect(e.message).toContain('fmap_decay');
    e = code({ extraSynthesisVars: { 'ToRGB_lod0/weight': [[1, 1, 8, 3], new Float32Array(24)] } });
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    expect(e.message).toContain('orig');
    e = code({ extraSynthesisVars: { '8x8/Skip/weight': [[1, 1, 8, 8], new Float32Array(64)] } });
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    expect(e.message).toContain('synthesis/8x8/Skip/weight');
    e = code({ version: 3 });
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    e = code({ noComponents: true });
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
    expect(e.message).toMatch(/ProGAN/);
    e = code({ kwargs: { resample_kernel: [1, 1] } });
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCH');
  });

  it('rejects missing or misshapen variables as corrupt', () => {
    let e = code({ dropVars: ['synthesis/noise3'] });
    expect(e.code).toBe('ERR_CORRUPT_FILE');
    expect(e.message).toContain('synthesis/noise3');
    e = code({ kwargs: { fmap_max: 16 } }); // the config now asks for more channels than the arrays have
    expect(e.code).toBe('ERR_CORRUPT_FILE');
  });
});

describe('config validation', () => {
  it('accepts the documented example and names the first bad field', () => {
    const ffhq = {
      arch: 'stylegan2', z_dim: 512, w_dim: 512, c_dim: 0, img_resolution: 1024, img_channels: 3, num_ws: 18,
      mapping_layers: 8, mapping_lr_multiplier: 0.01, channel_base: 32768, channel_max: 512, conv_clamp: null, num_fp16_res: 0,
    };
    expect(validateConfig(ffhq)).toEqual(ffhq);
    expect(expectedTensorShapes(validateConfig(ffhq)).get('synthesis.b1024.conv0.weight')).toEqual([32, 64, 3, 3]);
    const bad: [Record<string, unknown>, string, string][] = [
      [{ z_dim: 0 }, 'z_dim', 'ERR_CORRUPT_FILE'],
      [{ w_dim: 1.5 }, 'w_dim', 'ERR_CORRUPT_FILE'],
      [{ img_resolution: 1000 }, 'img_resolution', 'ERR_CORRUPT_FILE'],
      [{ img_resolution: 2048, num_ws: 20 }, 'img_resolution', 'ERR_CORRUPT_FILE'],
      [{ num_ws: 16 }, 'num_ws', 'ERR_CORRUPT_FILE'],
      [{ c_dim: -1 }, 'c_dim', 'ERR_CORRUPT_FILE'],
      [{ mapping_lr_multiplier: 0 }, 'mapping_lr_multiplier', 'ERR_CORRUPT_FILE'],
      [{ conv_clamp: 'none' }, 'conv_clamp', 'ERR_CORRUPT_FILE'],
      [{ channel_base: 512 }, 'channel_base', 'ERR_CORRUPT_FILE'],
      [{ extra: 1 }, 'extra', 'ERR_CORRUPT_FILE'],
      [{ arch: 'progan' }, 'progan', 'ERR_UNSUPPORTED_ARCH'],
    ];
    for (const [patch, field, code] of bad) {
      const e = errorOf(() => validateConfig({ ...ffhq, ...patch }));
      expect(e.code, field).toBe(code);
      expect(e.message, field).toContain(field);
    }
  });

  it('rejects non-buffer sources with ERR_INVALID_OPTION', async () => {
    await expect(readCheckpoint(42 as unknown as string)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });
});

describe('bit flips in the structure of synthetic pickles', () => {
  it('either convert or fail with a FaceganError, never anything else (fixed seed)', () => {
    const tensors = randomTensors(SMALL_CONFIG, 11);
    const next = rng(99);
    const seen = new Map<string, number>();
    for (const original of [pytorchPickle(SMALL_CONFIG, tensors), tfPickle(SMALL_CONFIG, tensors)]) {
      const buf = Buffer.from(original);
      for (let k = 0; k < 200; k++) {
        const pos = Math.floor(next() * buf.length);
        const old = buf[pos]!;
        buf[pos] = k % 2 === 0 ? old ^ (1 << Math.floor(next() * 8)) : Math.floor(next() * 256);
        let key = 'ok';
        try {
          readCheckpointBuffer(buf);
        } catch (err) {
          expect(err).toBeInstanceOf(FaceganError);
          expect((err as FaceganError).message.startsWith('Corrupt checkpoint (')).toBe(false); // no internal error slipped through
          key = (err as FaceganError).code;
        }
        seen.set(key, (seen.get(key) ?? 0) + 1);
        buf[pos] = old;
      }
    }
    // Most flips hit structure here, so several kinds of typed error show up.
    expect(seen.get('ERR_CORRUPT_FILE')).toBeGreaterThan(10);
    expect(seen.size).toBeGreaterThanOrEqual(3);
  });
});
