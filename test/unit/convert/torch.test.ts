import { describe, expect, it } from 'vitest';

import { readCheckpoint } from '../../../lib/convert/index.js';
import { unpickle } from '../../../lib/convert/pickle.js';
import { NETWORK_PICKLE_GLOBALS } from '../../../lib/convert/stylegan2.js';
import { TorchStorage, TorchTensor, readLegacyTorchStream } from '../../../lib/convert/torch.js';
import { float32ToFloat16 } from '../../../lib/safetensors.js';
import { Persid, call, dict, dumps, glob, legacyTorchStream, storagePid, tup, type StorageSpec } from './pickle-writer.js';
import { codeOf } from '../../helpers/errors.js';

const f32bytes = (xs: number[]): Uint8Array => new Uint8Array(Float32Array.from(xs).buffer);


/** A tensor over one storage, pickled in an outer pickle via _load_from_bytes. */
function outerTensor(storage: StorageSpec, offset: number, size: number[], stride: number[]): Buffer {
  const stream = legacyTorchStream(new Persid(storagePid(storage)), [storage]);
  return dumps(call('torch._utils._rebuild_tensor_v2', call('torch.storage._load_from_bytes', stream), offset, tup(...size), tup(...stride), false, call('collections.OrderedDict')));
}

function loadTensor(bytes: Uint8Array): TorchTensor {
  const v = unpickle(bytes, { globals: NETWORK_PICKLE_GLOBALS }).value;
  expect(v).toBeInstanceOf(TorchTensor);
  return v as TorchTensor;
}

describe('legacy torch.save stream', () => {
  it('reads a storage (the object of _load_from_bytes) as a view of the data', () => {
    const data = f32bytes([1.5, -2, 3.25]);
    const stream = legacyTorchStream(new Persid(storagePid({ key: '42', numel: 3 })), [{ key: '42', numel: 3, data }]);
    const s = readLegacyTorchStream(stream);
    expect(s).toBeInstanceOf(TorchStorage);
    expect((s as TorchStorage).numel).toBe(3);
    expect([...new Float32Array(new Uint8Array((s as TorchStorage).bytes!).buffer)]).toEqual([1.5, -2, 3.25]);
  });

  it('rebuilds contiguous, offset and non-contiguous tensors', () => {
    const storage = { key: 'k', numel: 8, data: f32bytes([0, 1, 2, 3, 4, 5, 6, 7]) };
    expect([...loadTensor(outerTensor(storage, 0, [2, 4], [4, 1])).toFloat32()]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect([...loadTensor(outerTensor(storage, 2, [3], [1])).toFloat32()]).toEqual([2, 3, 4]);
    // The transpose of [[0,1,2,3],[4,5,6,7]]: size [4,2], stride [1,4].
    const t = loadTensor(outerTensor(storage, 0, [4, 2], [1, 4]));
    expect(t.isContiguous).toBe(false);
    expect([...t.toFloat32()]).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
    // Every other element from offset 1, and a broadcast (stride 0) dimension.
    expect([...loadTensor(outerTensor(storage, 1, [2, 2], [4, 2])).toFloat32()]).toEqual([1, 3, 5, 7]);
    expect([...loadTensor(outerTensor(storage, 3, [3, 2], [0, 1])).toFloat32()]).toEqual([3, 4, 3, 4, 3, 4]);
    // A scalar.
    const s = loadTensor(outerTensor(storage, 5, [], []));
    expect(s.shape).toEqual([]);
    expect([...s.toFloat32()]).toEqual([5]);
  });

  it('widens half, bfloat16, double and long storages to float32', () => {
    const half = float32ToFloat16(Float32Array.from([0.5, -3, 65504]));
    expect([...loadTensor(outerTensor({ key: 'h', type: 'HalfStorage', numel: 3, data: new Uint8Array(half.buffer) }, 0, [3], [1])).toFloat32()]).toEqual([0.5, -3, 65504]);
    const bf = new Uint16Array([0x3f80, 0xc040]); // 1, -3
    expect([...loadTensor(outerTensor({ key: 'b', type: 'BFloat16Storage', numel: 2, data: new Uint8Array(bf.buffer) }, 0, [2], [1])).toFloat32()]).toEqual([1, -3]);
    const f64 = Float64Array.from([0.1, 1e10]);
    expect([...loadTensor(outerTensor({ key: 'd', type: 'DoubleStorage', numel: 2, data: new Uint8Array(f64.buffer) }, 0, [2], [1])).toFloat32()]).toEqual([Math.fround(0.1), 1e10]);
    const i64 = BigInt64Array.from([-7n, 123456n]);
    expect([...loadTensor(outerTensor({ key: 'l', type: 'LongStorage', numel: 2, data: new Uint8Array(i64.buffer) }, 0, [2], [1])).toFloat32()]).toEqual([-7, 123456]);
  });

  it('reads tensors pickled through _rebuild_from_type_v2, but only around a tensor rebuilder', () => {
    const storage = { key: 'k', numel: 2, data: f32bytes([4, 5]) };
    const stream = legacyTorchStream(new Persid(storagePid(storage)), [storage]);
    const inner = tup(call('torch.storage._load_from_bytes', stream), 0, tup(2), tup(1), false, call('collections.OrderedDict'));
    const wrapped = call('torch._tensor._rebuild_from_type_v2', glob('torch._utils._rebuild_tensor_v2'), glob('torch.Tensor'), inner, dict({ note: 1 }));
    expect([...loadTensor(dumps(wrapped)).toFloat32()]).toEqual([4, 5]);
    const self = call('torch._tensor._rebuild_from_type_v2', glob('torch._tensor._rebuild_from_type_v2'), glob('torch.Tensor'), tup(), null);
    expect(codeOf(() => loadTensor(dumps(self)))).toBe('ERR_CORRUPT_FILE');
  });

  it('rejects tensors that reach past their storage', () => {
    const storage = { key: 'k', numel: 4, data: f32bytes([0, 1, 2, 3]) };
    expect(codeOf(() => loadTensor(outerTensor(storage, 0, [5], [1])))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => loadTensor(outerTensor(storage, 2, [2, 2], [2, 1])))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => loadTensor(outerTensor(storage, 0, [2], [1, 1])))).toBe('ERR_CORRUPT_FILE');
  });

  it('a storage declaring 2^40 elements fails fast, without allocating', async () => {
    const huge = 2 ** 40;
    const spec = { key: 'big', numel: huge, data: f32bytes([1, 2, 3]) };
    const stream = legacyTorchStream(new Persid(storagePid(spec)), [spec]);
    const before = process.memoryUsage();
    const t0 = performance.now();
    expect(codeOf(() => readLegacyTorchStream(stream))).toBe('ERR_TRUNCATED_FILE');
    // The same inside a whole network pickle.
    const pickle = dumps(dict({ G_ema: call('torch._utils._rebuild_tensor_v2', call('torch.storage._load_from_bytes', stream), 0, tup(huge), tup(1), false, call('collections.OrderedDict')) }));
    await expect(readCheckpoint(pickle)).rejects.toMatchObject({ code: 'ERR_TRUNCATED_FILE' });
    // A tensor view claiming 2^40 elements of a small storage (stride 0) is refused too.
    const small = { key: 's', numel: 1, data: f32bytes([1]) };
    expect(codeOf(() => loadTensor(outerTensor(small, 0, [huge], [0])))).toBe('ERR_CORRUPT_FILE');
    expect(performance.now() - t0).toBeLessThan(1000);
    const after = process.memoryUsage();
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 << 20);
    expect(after.rss - before.rss).toBeLessThan(256 << 20);
  });

  it('checks counts, keys and missing data', () => {
    const spec = { key: 'a', numel: 2, data: f32bytes([1, 2]) };
    const obj = new Persid(storagePid(spec));
    expect(codeOf(() => readLegacyTorchStream(legacyTorchStream(obj, [{ ...spec, count: 3 }])))).toBe('ERR_TRUNCATED_FILE');
    expect(codeOf(() => readLegacyTorchStream(legacyTorchStream(obj, [{ ...spec, count: 1 }])))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => readLegacyTorchStream(legacyTorchStream(obj, [spec], [])))).toBe('ERR_CORRUPT_FILE'); // data never given
    expect(codeOf(() => readLegacyTorchStream(legacyTorchStream(obj, [spec, { key: 'b', numel: 0, data: new Uint8Array(0) }])))).toBe('ERR_CORRUPT_FILE'); // unknown key
    expect(codeOf(() => readLegacyTorchStream(legacyTorchStream(obj, [spec], ['a', 'a'])))).toBe('ERR_CORRUPT_FILE'); // twice
    const good = legacyTorchStream(obj, [spec]);
    for (const cut of [0, 5, 20, good.length - 9, good.length - 1]) {
      expect(['ERR_TRUNCATED_FILE', 'ERR_CORRUPT_FILE']).toContain(codeOf(() => readLegacyTorchStream(good.subarray(0, cut))));
    }
    const badMagic = Buffer.from(good);
    badMagic[5] ^= 0xff;
    expect(codeOf(() => readLegacyTorchStream(badMagic))).toBe('ERR_CORRUPT_FILE');
  });

  it('refuses unknown storage types and non-storage persistent ids', () => {
    const bad = legacyTorchStream(new Persid(tup('storage', call('torch.FloatStorage'), 'k', 'cpu', 1, null)), []);
    expect(codeOf(() => readLegacyTorchStream(bad))).toBe('ERR_CORRUPT_FILE');
    const module = legacyTorchStream(new Persid(tup('module', 'x', 'y', 'z')), []);
    expect(codeOf(() => readLegacyTorchStream(module))).toBe('ERR_CORRUPT_FILE');
    // The object pickle of the stream has its own allow-list: no nested _load_from_bytes, no os.
    const nested = legacyTorchStream(call('torch.storage._load_from_bytes', new Uint8Array(0)), []);
    expect(codeOf(() => readLegacyTorchStream(nested))).toBe('ERR_FORBIDDEN_GLOBAL');
    const evil = legacyTorchStream(call('os.system', 'true'), []);
    expect(codeOf(() => readLegacyTorchStream(evil))).toBe('ERR_FORBIDDEN_GLOBAL');
  });
});
