import { describe, expect, it } from 'vitest';

import {
  bfloat16ToFloat32, float16ToFloat32, float32ToFloat16, readSafetensors, writeSafetensors,
  type SafetensorsTensor,
} from '../../../lib/safetensors.js';
import { describeFixtures } from '../../helpers/fixtures.js';
import { readGolden } from '../../helpers/golden.js';
import { codeOf } from '../../helpers/errors.js';


/** Builds a file from a raw header object and data bytes. */
function rawFile(header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): Buffer {
  const h = Buffer.from(headerText, 'utf8');
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(BigInt(h.length));
  h.copy(out, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors', () => {
  const tensors = new Map<string, SafetensorsTensor>([
    ['a', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, -6.5]) }],
    ['h', { dtype: 'F16', shape: [3], data: float32ToFloat16(Float32Array.from([0.5, -2, 1024])) }],
    ['u', { dtype: 'U8', shape: [5], data: Uint8Array.from([1, 2, 3, 4, 5]) }],
    ['d', { dtype: 'F64', shape: [], data: Float64Array.from([Math.PI]) }],
    ['l', { dtype: 'I64', shape: [2], data: BigInt64Array.from([-1n, 2n ** 40n]) }],
    ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
  ]);

  it('round-trips tensors and metadata, with aligned zero-copy views', () => {
    const buf = writeSafetensors(tensors, { format: 'facegan', note: 'ü' });
    const header = Number(buf.readBigUInt64LE(0));
    expect((8 + header) % 8).toBe(0);
    const back = readSafetensors(buf);
    expect(back.metadata).toEqual({ format: 'facegan', note: 'ü' });
    expect([...back.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const r = back.tensors.get(name)!;
      expect(r.dtype).toBe(t.dtype);
      expect(r.shape).toEqual(t.shape);
      expect([...(r.data as ArrayLike<number | bigint> & Iterable<number | bigint>)]).toEqual([...(t.data as Iterable<number | bigint>)]);
      // Every tensor is a view into the file buffer (the writer aligns them).
      expect(r.data.buffer).toBe(buf.buffer);
    }
    expect([...float16ToFloat32(back.tensors.get('h')!.data as Uint16Array)]).toEqual([0.5, -2, 1024]);
  });

  it('copies a misaligned tensor instead of failing', () => {
    const file = writeSafetensors([['x', { dtype: 'F32', shape: [2], data: Float32Array.from([7, 8]) }]]);
    const shifted = Buffer.alloc(file.length + 1);
    file.copy(shifted, 1);
    const view = shifted.subarray(1);
    const t = readSafetensors(view).tensors.get('x')!;
    expect([...(t.data as Float32Array)]).toEqual([7, 8]);
  });

  it('rejects bad headers, dtypes, sizes and ranges with typed errors', () => {
    const data = new Uint8Array(8);
    const ok = { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
    expect(codeOf(() => readSafetensors(rawFile(ok, data)))).toBe('no error');
    expect(codeOf(() => readSafetensors(Buffer.alloc(5)))).toBe('ERR_TRUNCATED_FILE');
    expect(codeOf(() => readSafetensors(rawFile(ok, data).subarray(0, 20)))).toBe('ERR_TRUNCATED_FILE');
    expect(codeOf(() => readSafetensors(rawFile(ok, data).subarray(0, rawFile(ok, data).length - 1)))).toBe('ERR_TRUNCATED_FILE');
    expect(codeOf(() => readSafetensors(rawFile(null, data, '{"x": [1, 2')))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => readSafetensors(rawFile(null, data, '[1, 2]')))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => readSafetensors(rawFile({ x: { ...ok.x, dtype: 'F8' } }, data)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => readSafetensors(rawFile({ x: { ...ok.x, shape: [3] } }, data)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => readSafetensors(rawFile({ x: { ...ok.x, shape: [-2] } }, data)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => readSafetensors(rawFile({ x: { ...ok.x, shape: [2 ** 40, 2 ** 40] } }, data)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => readSafetensors(rawFile({ x: { ...ok.x, data_offsets: [4, 0] } }, data)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => readSafetensors(rawFile({ x: { ...ok.x, data_offsets: [0, 2 ** 50] } }, data)))).toBe('ERR_TRUNCATED_FILE');
    expect(codeOf(() => readSafetensors(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, y: { dtype: 'F32', shape: [1], data_offsets: [2, 6] } }, data)))).toBe('ERR_CORRUPT_FILE'); // overlap
    expect(codeOf(() => readSafetensors(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, data)))).toBe('ERR_CORRUPT_FILE'); // hole
    expect(codeOf(() => readSafetensors(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, data)))).toBe('ERR_CORRUPT_FILE'); // trailing bytes
    expect(codeOf(() => readSafetensors(rawFile({ ...ok, __metadata__: { a: 1 } }, data)))).toBe('ERR_CORRUPT_FILE');
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(2n ** 62n);
    expect(codeOf(() => readSafetensors(huge))).toBe('ERR_CORRUPT_FILE');
    const bad = rawFile(ok, data);
    bad[9] = 0xff; // invalid UTF-8 in the header
    expect(codeOf(() => readSafetensors(bad))).toBe('ERR_CORRUPT_FILE');
  });

  it('refuses to write inconsistent tensors', () => {
    expect(codeOf(() => writeSafetensors([['x', { dtype: 'F32', shape: [3], data: new Float32Array(2) }]]))).toBe('ERR_INVALID_OPTION');
    expect(codeOf(() => writeSafetensors([['x', { dtype: 'F16', shape: [2], data: new Float32Array(2) }]]))).toBe('ERR_INVALID_OPTION');
  });

  it('converts float16 with round-to-nearest-even, subnormals and overflow', () => {
    const xs = Float32Array.from([0, -0, 1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, Infinity, -Infinity]);
    const h = float32ToFloat16(xs);
    expect([...h].map((v) => v.toString(16))).toEqual(['0', '8000', '3c00', '3c00', '3c02', '7bff', '7bff', '7c00', '1', '0', '1', '400', '7c00', 'fc00']);
    expect(Number.isNaN(float16ToFloat32(float32ToFloat16(Float32Array.from([NaN])))[0])).toBe(true);
    // Every finite half survives half → float → half.
    const all = new Uint16Array(65536).map((_, i) => i);
    const finite = all.filter((v) => (v & 0x7c00) !== 0x7c00);
    const back = float32ToFloat16(float16ToFloat32(finite));
    expect(Buffer.from(back.buffer).equals(Buffer.from(finite.buffer))).toBe(true);
    expect([...bfloat16ToFloat32(Uint16Array.from([0x3f80, 0xbfc0]))]).toEqual([1, -1.5]);
  });
});

describeFixtures('safetensors: golden files', () => {
  it('reads every golden file the other tests will use', () => {
    for (const name of ['tiny32', 'small64-fp16', 'cond32', 'gray16']) {
      const g = readGolden(name);
      expect(g.cases.config).toBe(name);
      const first = g.cases.cases[0]!;
      const z = g.tensor(first.z!);
      expect(z.dtype).toBe('F64');
      expect(z.shape).toEqual([1, g.cases.z_dim]);
      expect(z.data).toBeInstanceOf(Float64Array);
      const img = g.tensor(first.image!);
      expect(img.shape).toEqual([1, g.cases.img_channels, g.cases.img_resolution, g.cases.img_resolution]);
      expect(g.tensor(first.image_uint8!).data).toBeInstanceOf(Uint8Array);
      expect(() => g.tensor('nope')).toThrow();
    }
    // README: seed 0 starts 1.764052345967664, 0.4001572083672233, 0.9787379841057392
    expect([...(readGolden('tiny32').tensor('z/0').data as Float64Array).slice(0, 3)]).toEqual([1.764052345967664, 0.4001572083672233, 0.9787379841057392]);
  });
});
