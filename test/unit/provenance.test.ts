/** Provenance metadata read back from PNG, JPEG and WebP as other tools see it (sharp/libvips, raw PNG chunks). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, encodeImage, FaceganError, loadGenerator, saveImage, type Generator, type Image } from '../../lib/index.js';

const DST = 'http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia';

/** Walks the PNG chunks independently of the library: type → list of raw data; checks every CRC. */
function pngChunks(buf: Buffer): { type: string; data: Buffer }[] {
  expect(buf.subarray(1, 4).toString()).toBe('PNG');
  const out: { type: string; data: Buffer }[] = [];
  let at = 8;
  while (at < buf.length) {
    const len = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + len);
    expect(buf.readUInt32BE(at + 8 + len), `CRC of ${type}`).toBe(zlib.crc32(buf.subarray(at + 4, at + 8 + len)));
    out.push({ type, data });
    at += 12 + len;
  }
  return out;
}

function textChunks(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { type, data } of pngChunks(buf)) {
    const nul = data.indexOf(0);
    if (type === 'tEXt') out[data.toString('latin1', 0, nul)] = data.toString('latin1', nul + 1);
    if (type === 'iTXt') {
      expect(data[nul + 1], 'iTXt uncompressed').toBe(0);
      const lang = data.indexOf(0, nul + 3);
      const trans = data.indexOf(0, lang + 1);
      out[data.toString('latin1', 0, nul)] = data.toString('utf8', trans + 1);
    }
  }
  return out;
}

describe('provenance metadata', () => {
  let gen: Generator;
  let face: Image;
  let dir: string;
  beforeAll(async () => {
    gen = await loadGenerator(DEFAULT_MODEL, { device: 'cpu' });
    [face] = await gen.generate({ seed: 42 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-prov-'));
  });
  afterAll(() => {
    gen.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes XMP DigitalSourceType, model and seed into PNG, JPEG and WebP by default', async () => {
    for (const format of ['png', 'jpeg', 'webp'] as const) {
      const buf = await encodeImage(face, format);
      const meta = await sharp(buf).metadata();
      expect(meta.format).toBe(format);
      const xmp = meta.xmp?.toString('utf8') ?? '';
      expect(xmp, format).toContain(`<Iptc4xmpExt:DigitalSourceType>${DST}</Iptc4xmpExt:DigitalSourceType>`);
      expect(xmp, format).toContain('<facegan:model>progan-celeba128</facegan:model>');
      expect(xmp, format).toContain('<facegan:seed>42</facegan:seed>');
      expect(xmp).toMatch(/AI-generated image/);
      expect(meta.exif?.toString('latin1'), format).toMatch(/AI-generated image .*model progan-celeba128, seed 42/);
      // The pixels are the generator's.
      const raw = await sharp(buf).raw().toBuffer();
      if (format === 'png') expect(raw.equals(Buffer.from(face.data))).toBe(true);
    }
  });

  it('puts tEXt / iTXt chunks naming model and seed in PNGs, before the image data', async () => {
    const buf = await encodeImage(face, 'png');
    const t = textChunks(buf);
    expect(t['facegan:model']).toBe('progan-celeba128');
    expect(t['facegan:seed']).toBe('42');
    expect(t.Source).toBe('progan-celeba128');
    expect(t.Software).toBe('facegan-native');
    expect(t.DigitalSourceType).toBe(DST);
    expect(t.Description).toMatch(/^AI-generated image .*seed 42/);
    expect(t['XML:com.adobe.xmp']).toContain(DST);
    const types = pngChunks(buf).map((c) => c.type);
    expect(types.indexOf('iTXt')).toBeLessThan(types.indexOf('IDAT'));
  });

  it('saveImage writes the same metadata; overrides and the explicit opt-out', async () => {
    for (const ext of ['png', 'jpg', 'webp']) {
      const file = path.join(dir, `face.${ext}`);
      await saveImage(face, file);
      expect((await sharp(file).metadata()).xmp?.toString(), ext).toContain(DST);
    }
    expect(textChunks(fs.readFileSync(path.join(dir, 'face.png')))['facegan:seed']).toBe('42');
    const custom = await encodeImage({ ...face, model: undefined, seed: undefined }, 'png', { provenance: { model: 'my <model> ü', seed: 7, psi: 0.5 } });
    const t = textChunks(custom);
    expect(t['facegan:model']).toBe('my <model> ?');
    expect(t.Description).toContain('my <model> ü, seed 7, psi 0.5');
    expect((await sharp(custom).metadata()).xmp?.toString()).toContain('my &lt;model&gt; ü');
    for (const format of ['png', 'jpeg', 'webp'] as const) {
      const bare = await encodeImage(face, format, { provenance: false });
      const meta = await sharp(bare).metadata();
      expect(meta.xmp, format).toBeUndefined();
      expect(meta.exif, format).toBeUndefined();
    }
    expect(Object.keys(textChunks(await encodeImage(face, 'png', { provenance: false })))).toEqual([]);
  });

  it('resizes with size, and rejects bad options and file names', async () => {
    const big = await encodeImage(face, 'webp', { size: 300 });
    expect((await sharp(big).metadata()).width).toBe(300);
    for (const bad of [
      () => encodeImage(face, 'png', { size: 0 }),
      () => encodeImage(face, 'gif' as never),
      () => encodeImage(face, 'png', { provenance: 'no' as never }),
      () => saveImage(face, path.join(dir, 'face.bmp')),
    ]) {
      const err = await bad().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FaceganError);
      expect((err as FaceganError).code).toBe('ERR_INVALID_OPTION');
    }
  });
});
