/** Encoding generated images with sharp (loaded on first use, so the engine never needs it). */
import { FaceganError } from './errors.js';
import type { Image } from './generator.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp';

async function sharpFor(image: Image) {
  const { default: sharp } = await import('sharp');
  if (image.channels !== 1 && image.channels !== 3) {
    throw new FaceganError('ERR_INVALID_OPTION', `Expected an image with 1 or 3 channels but received ${image.channels}`);
  }
  return sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
    raw: { width: image.width, height: image.height, channels: image.channels as 1 | 3 },
  });
}

/** Encodes an 8-bit image as PNG (default), JPEG or WebP. */
export async function encodeImage(image: Image, format: ImageFormat = 'png'): Promise<Buffer> {
  const s = await sharpFor(image);
  return s.toFormat(format).toBuffer();
}

/** Writes an 8-bit image to a file; the format follows the extension (.png, .jpg, .webp). */
export async function saveImage(image: Image, file: string): Promise<void> {
  const s = await sharpFor(image);
  await s.toFile(file);
}
