/**
 * Encoding generated images with sharp (loaded on first use, so the engine never needs it).
 *
 * Every image is written with provenance metadata (see provenance.ts): XMP with IPTC Digital
 * Source Type `trainedAlgorithmicMedia`, EXIF ImageDescription, and PNG text chunks naming the
 * model and seed. `{ provenance: false }` is the explicit opt-out.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { FaceganError, invalidOption } from './errors.js';
import type { Image } from './generator.js';
import { insertGifProvenance, insertPngChunks, provenanceExif, provenancePngChunks, provenanceXmp, type ProvenanceInfo } from './provenance.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp';

export interface EncodeOptions {
  /**
   * The provenance written into the file. Default: on, naming `image.model` and `image.seed`;
   * an object overrides those fields; `false` writes no provenance metadata at all.
   */
  provenance?: ProvenanceInfo | false;
  /** Resize to size × size pixels (Lanczos) before encoding. */
  size?: number;
  /** JPEG / WebP quality 1–100 (sharp's default when absent). */
  quality?: number;
}

const EXTENSIONS: Record<string, ImageFormat> = { '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.webp': 'webp' };

async function sharpFor(image: Image) {
  const { default: sharp } = await import('sharp');
  if (image === null || typeof image !== 'object' || !(image.data instanceof Uint8Array)) {
    throw invalidOption('image', 'an 8-bit image { width, height, channels, data: Uint8Array }', image);
  }
  if (image.channels !== 1 && image.channels !== 3) {
    throw new FaceganError('ERR_INVALID_OPTION', `Expected an image with 1 or 3 channels but received ${image.channels}`);
  }
  return sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
    raw: { width: image.width, height: image.height, channels: image.channels as 1 | 3 },
  });
}

/** The provenance for an image under these options (undefined: opted out). */
export function provenanceFor(image: Pick<Image, 'model' | 'seed'>, options: EncodeOptions = {}): ProvenanceInfo | undefined {
  if (options.provenance === false) return undefined;
  if (options.provenance !== undefined && (options.provenance === null || typeof options.provenance !== 'object')) {
    throw invalidOption('provenance', 'an object or false', options.provenance);
  }
  return { model: image.model, seed: image.seed, ...(options.provenance ?? {}) };
}

function checkEncodeOptions(options: EncodeOptions): void {
  if (options === null || typeof options !== 'object') throw invalidOption('options', 'an object', options);
  if (options.size !== undefined && (!Number.isInteger(options.size) || options.size < 1 || options.size > 4096)) {
    throw invalidOption('size', 'an integer in [1, 4096]', options.size);
  }
  if (options.quality !== undefined && (!Number.isInteger(options.quality) || options.quality < 1 || options.quality > 100)) {
    throw invalidOption('quality', 'an integer in [1, 100]', options.quality);
  }
}

/** Encodes an 8-bit image as PNG (default), JPEG or WebP, with provenance metadata unless opted out. */
export async function encodeImage(image: Image, format: ImageFormat = 'png', options: EncodeOptions = {}): Promise<Buffer> {
  checkEncodeOptions(options);
  if (!(format in { png: 1, jpeg: 1, webp: 1 })) throw invalidOption('format', "'png', 'jpeg' or 'webp'", format);
  let s = await sharpFor(image);
  if (options.size !== undefined && (options.size !== image.width || options.size !== image.height)) {
    s = s.resize(options.size, options.size, { kernel: 'lanczos3', fit: 'fill' });
  }
  s = s.toFormat(format, options.quality === undefined ? {} : { quality: options.quality });
  const info = provenanceFor(image, options);
  if (!info) return s.toBuffer();
  s = s.withExif(provenanceExif(info));
  // PNG: the XMP goes in an uncompressed iTXt chunk with the other text chunks (libvips would zTXt it).
  if (format !== 'png') s = s.withXmp(provenanceXmp(info));
  const out = await s.toBuffer();
  return format === 'png' ? insertPngChunks(out, provenancePngChunks(info)) : out;
}

/** Writes an 8-bit image to a file; the format follows the extension (.png, .jpg, .jpeg, .webp). */
export async function saveImage(image: Image, file: string, options: EncodeOptions = {}): Promise<void> {
  if (typeof file !== 'string' || file.length === 0) throw invalidOption('file', 'a file path', file);
  const format = EXTENSIONS[path.extname(file).toLowerCase()];
  if (!format) throw invalidOption('file', 'a name ending in .png, .jpg, .jpeg or .webp', file);
  const body = await encodeImage(image, format, options);
  await fs.writeFile(file, body);
}

export interface AnimationOptions {
  /** 'webp' (default) or 'gif' (256 colours; provenance as an XMP application extension and a comment). */
  format?: 'webp' | 'gif';
  /** Frames per second (default 24). */
  fps?: number;
  /** Resize every frame to size × size. */
  size?: number;
  /** Provenance of the animation (default: on, naming the first frame's model); false opts out. */
  provenance?: ProvenanceInfo | false;
  /** WebP quality 1–100. */
  quality?: number;
}

/** Frames (same size) → an animated WebP (or GIF) that loops, with provenance metadata unless opted out. */
export async function encodeAnimation(frames: Image[], options: AnimationOptions = {}): Promise<Buffer> {
  checkEncodeOptions(options);
  if (!Array.isArray(frames) || frames.length === 0) throw invalidOption('frames', 'at least one image', frames);
  const format = options.format ?? 'webp';
  if (format !== 'webp' && format !== 'gif') throw invalidOption('format', "'webp' or 'gif'", format);
  const fps = options.fps ?? 24;
  if (typeof fps !== 'number' || !(fps > 0 && fps <= 100)) throw invalidOption('fps', 'a number in (0, 100]', fps);
  const { width: w, height: h, channels } = frames[0];
  const size = options.size ?? w;
  if (w !== h && options.size !== undefined) throw invalidOption('size', 'square frames', `${w}×${h}`);
  const { default: sharp } = await import('sharp');
  const frameBytes = (options.size === undefined ? w * h : size * size) * 3;
  const all = Buffer.alloc(frameBytes * frames.length);
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    if (f.width !== w || f.height !== h || f.channels !== channels) throw invalidOption(`frames[${i}]`, `a ${w}×${h}×${channels} image`, `${f.width}×${f.height}×${f.channels}`);
    let s = (await sharpFor(f)).toColourspace('srgb');
    if (options.size !== undefined && size !== w) s = s.resize(size, size, { kernel: 'lanczos3', fit: 'fill' });
    const raw = await s.removeAlpha().raw().toBuffer();
    raw.copy(all, i * frameBytes);
  }
  const outW = options.size === undefined ? w : size;
  const outH = options.size === undefined ? h : size;
  const delay = new Array<number>(frames.length).fill(Math.round(1000 / fps));
  const input = sharp(all, { raw: { width: outW, height: outH * frames.length, channels: 3, pageHeight: outH } });
  const info = provenanceFor(frames[0], { provenance: options.provenance });
  if (format === 'gif') {
    const gif = await input.gif({ loop: 0, delay }).toBuffer();
    return info ? insertGifProvenance(gif, info) : gif;
  }
  let s = input.webp({ loop: 0, delay, ...(options.quality === undefined ? {} : { quality: options.quality }) });
  if (info) s = s.withXmp(provenanceXmp(info)).withExif(provenanceExif(info));
  return s.toBuffer();
}
