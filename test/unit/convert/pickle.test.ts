import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { readCheckpoint } from '../../../lib/convert/index.js';
import {
  BASE_GLOBALS, NdArray, PyDict, PySet, PyTuple, globalTable, unpickle,
  type PyValue,
} from '../../../lib/convert/pickle.js';
import { NETWORK_PICKLE_GLOBALS } from '../../../lib/convert/stylegan2.js';
import { FaceganError } from '../../../lib/errors.js';
import { Float, call, dict, dumps, glob, numpyArray, tup } from './pickle-writer.js';
import { codeOf } from '../../helpers/errors.js';

const globals = NETWORK_PICKLE_GLOBALS;
const load = (bytes: Uint8Array): PyValue => unpickle(bytes, { globals }).value;
const b = (...xs: number[]): Buffer => Buffer.from(xs);
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');


describe('pickle reader: values', () => {
  it('reads scalars of every binary opcode', () => {
    expect(load(dumps(null))).toBe(null);
    expect(load(dumps(true))).toBe(true);
    expect(load(dumps(false))).toBe(false);
    expect(load(dumps(7))).toBe(7);
    expect(load(dumps(300))).toBe(300);
    expect(load(dumps(-5))).toBe(-5);
    expect(load(dumps(2 ** 31 + 5))).toBe(2 ** 31 + 5); // LONG1
    expect(load(dumps(-(2n ** 70n)))).toBe(-(2n ** 70n));
    expect(load(dumps(0x1950a86a20f9469cfc6cn))).toBe(0x1950a86a20f9469cfc6cn);
    expect(load(dumps(new Float(0.01)))).toBe(0.01);
    expect(load(dumps('héllo ✓'))).toBe('héllo ✓');
    const bytes = load(dumps(new Uint8Array([1, 2, 3])));
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect([...(bytes as Uint8Array)]).toEqual([1, 2, 3]);
  });

  it('reads containers, memo and stack opcodes', () => {
    const v = load(dumps([1, tup(2, 'x'), dict({ a: 1, b: [null] })]));
    expect(Array.isArray(v)).toBe(true);
    const [one, t, d] = v as PyValue[];
    expect(one).toBe(1);
    expect(t).toBeInstanceOf(PyTuple);
    expect((t as PyTuple).items).toEqual([2, 'x']);
    expect(d).toBeInstanceOf(PyDict);
    expect((d as PyDict).get('a')).toBe(1);
    expect((d as PyDict).get('b')).toEqual([null]);

    // protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, BINGET, TUPLE2, EMPTY_SET/ADDITEMS, FROZENSET, DUP, POP
    const body = b(
      0x8c, 1, 0x71, 0x94, // 'q' memo 0
      0x68, 0, 0x86, 0x94, // ('q','q') memo 1
      0x8f, 0x28, 0x4b, 1, 0x4b, 2, 0x90, // {1, 2}
      0x28, 0x4b, 3, 0x91, // frozenset({3})
      0x32, 0x30, // DUP, POP
      0x87, // (('q','q'), {1,2}, frozenset({3}))
      0x2e,
    );
    const p4 = Buffer.concat([b(0x80, 4, 0x95, body.length, 0, 0, 0, 0, 0, 0, 0), body]);
    const r = load(p4) as PyTuple;
    expect(r.items[0]).toBeInstanceOf(PyTuple);
    expect((r.items[0] as PyTuple).items).toEqual(['q', 'q']);
    expect(r.items[1]).toBeInstanceOf(PySet);
    expect((r.items[1] as PySet).items).toEqual([1, 2]);
    expect((r.items[2] as PySet).frozen).toBe(true);
  });

  it('reads protocol-0 text opcodes', () => {
    // (lp0\nI1\naL123456789012345678901234567890L\naS'a\\x41\\n'\naVcaf\\u00e9\naF0.5\na.
    const p0 = ascii("(lp0\nI1\naL123456789012345678901234567890L\naS'a\\x41\\n'\naVcaf\\u00e9\naF0.5\naI01\nag0\na.");
    const v = load(p0) as PyValue[];
    expect(v.slice(0, 6)).toEqual([1, 123456789012345678901234567890n, 'aA\n', 'café', 0.5, true]);
    expect(v[6]).toBe(v); // GET of the list itself: a cycle, built without recursion
  });

  it('keeps Python dict key equality (1 == 1.0 == True) and tuple keys', () => {
    const d = load(b(0x80, 2, 0x7d, 0x28, 0x4b, 1, 0x4b, 10, 0x88, 0x4b, 11, 0x4b, 1, 0x85, 0x4b, 12, 0x75, 0x2e)) as PyDict;
    expect(d.size).toBe(2);
    expect(d.get(1)).toBe(11);
    expect([...d.keys()][1]).toBeInstanceOf(PyTuple);
  });

  it('builds numpy arrays, dtypes and scalars as data', () => {
    const arr = load(dumps(numpyArray([2, 3], Float32Array.from([1, 2, 3, 4, 5, 6]))));
    expect(arr).toBeInstanceOf(NdArray);
    expect((arr as NdArray).shape).toEqual([2, 3]);
    expect([...(arr as NdArray).toFloat32()]).toEqual([1, 2, 3, 4, 5, 6]);
    const f8 = Buffer.alloc(8);
    f8.writeDoubleLE(0.125);
    expect(load(dumps(call('numpy.core.multiarray.scalar', call('numpy.dtype', 'f8', false, true), f8)))).toBe(0.125);
    // Fortran order: [[1,2,3],[4,5,6]] stored column-major.
    const fortran = load(dumps(call('numpy.core.multiarray._reconstruct', glob('numpy.ndarray'), tup(0), Buffer.from('b')))) as NdArray;
    fortran.pyBuild(new PyTuple([1, new PyTuple([2, 3]), (load(dumps(call('numpy.dtype', 'f4', false, true))) as PyValue), true, new Uint8Array(Float32Array.from([1, 4, 2, 5, 3, 6]).buffer)]));
    expect([...fortran.toFloat32()]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('builds numpy arrays pickled with protocol 5 (_frombuffer), C and Fortran order', () => {
    const dtype = call('numpy.dtype', 'f4', false, true);
    const c = load(dumps(call('numpy.core.numeric._frombuffer', new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer), dtype, tup(2, 2), 'C'), 5)) as NdArray;
    expect([...c.toFloat32()]).toEqual([1, 2, 3, 4]);
    const f = load(dumps(call('numpy._core.numeric._frombuffer', new Uint8Array(Float32Array.from([1, 3, 2, 4]).buffer), dtype, tup(2, 2), 'F'), 5)) as NdArray;
    expect([...f.toFloat32()]).toEqual([1, 2, 3, 4]);
    expect(codeOf(() => load(dumps(call('numpy.core.numeric._frombuffer', new Uint8Array(12), dtype, tup(2, 2), 'C'))))).toBe('ERR_CORRUPT_FILE');
  });

  it('decodes _codecs.encode and bytearray', () => {
    expect([...(load(dumps(call('_codecs.encode', 'a\u00ff', 'latin1'))) as Uint8Array)]).toEqual([0x61, 0xff]);
    expect([...(load(dumps(call('builtins.bytearray', new Uint8Array([9, 8])))) as Uint8Array)]).toEqual([9, 8]);
  });
});

describe('pickle reader: forbidden globals execute nothing', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facegan-pickle-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const cases: [string, string][] = [
    ['os', 'system'],
    ['posix', 'system'],
    ['nt', 'system'],
    ['builtins', 'eval'],
    ['builtins', 'exec'],
    ['__builtin__', 'eval'],
    ['subprocess', 'Popen'],
    ['builtins', 'getattr'],
    ['torch', 'load'],
    ['numpy', 'load'],
    ['collections', 'OrderedDict.__class__'],
  ];
  for (const [module, name] of cases) {
    it(`${module}.${name} (GLOBAL + REDUCE) → ERR_FORBIDDEN_GLOBAL`, async () => {
      const marker = path.join(dir, `pwned-${module}-${name}`);
      const cmd = `touch ${marker}`;
      const arg = module === 'subprocess' ? [['sh', '-c', cmd]] : name === 'eval' || name === 'exec' ? [`__import__('os').system('${cmd}')`] : [cmd];
      const payload = dumps(call(`${module}.${name}`, ...arg), 2);
      let err: unknown;
      try {
        await readCheckpoint(payload);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FaceganError);
      expect((err as FaceganError).code).toBe('ERR_FORBIDDEN_GLOBAL');
      expect((err as FaceganError).message).toContain(module);
      expect((err as FaceganError).message).toContain(name.split('.')[0]);
      expect(fs.existsSync(marker)).toBe(false);
    });
  }

  it('STACK_GLOBAL (protocol 4) is checked the same way', () => {
    const p = b(0x80, 4, 0x8c, 2, ...ascii('os'), 0x8c, 6, ...ascii('system'), 0x93, 0x8c, 4, ...ascii('true'), 0x85, 0x52, 0x2e);
    expect(codeOf(() => load(p))).toBe('ERR_FORBIDDEN_GLOBAL');
  });

  it('INST and extension codes are checked too', () => {
    expect(codeOf(() => load(ascii('(S\'id\'\nios\nsystem\n.')))).toBe('ERR_FORBIDDEN_GLOBAL');
    expect(codeOf(() => load(b(0x80, 2, 0x82, 1, 0x29, 0x52, 0x2e)))).toBe('ERR_FORBIDDEN_GLOBAL');
  });

  it('an allowed global used the wrong way is a corrupt file, not a call', () => {
    expect(codeOf(() => load(dumps(call('numpy.ndarray', 1))))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => load(b(0x80, 2, 0x4b, 1, 0x29, 0x52, 0x2e)))).toBe('ERR_CORRUPT_FILE'); // REDUCE on an int
    expect(codeOf(() => load(dumps(call('_codecs.encode', 'x', 'rot13'))))).toBe('ERR_CORRUPT_FILE');
  });

  it('an empty allow-list refuses even the harmless globals', () => {
    const none = globalTable();
    expect(codeOf(() => unpickle(dumps(call('collections.OrderedDict')), { globals: none }))).toBe('ERR_FORBIDDEN_GLOBAL');
    expect(codeOf(() => unpickle(dumps(call('collections.OrderedDict')), { globals: globalTable(BASE_GLOBALS) }))).toBe('no error');
  });
});

describe('pickle reader: hostile structure', () => {
  it('rejects unknown opcodes and protocols', () => {
    expect(codeOf(() => load(b(0x80, 2, 0xff, 0x2e)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => load(b(0x80, 9, 0x4e, 0x2e)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => load(b(0x80, 5, 0x97, 0x2e)))).toBe('ERR_CORRUPT_FILE'); // NEXT_BUFFER
  });

  it('checks declared lengths against the bytes that remain', () => {
    expect(codeOf(() => load(b(0x80, 3, 0x42, 0xff, 0xff, 0xff, 0x7f, 1, 2)))).toBe('ERR_TRUNCATED_FILE'); // BINBYTES 2 GB
    expect(codeOf(() => load(b(0x80, 4, 0x8e, 0, 0, 0, 0, 0, 1, 0, 0)))).toBe('ERR_TRUNCATED_FILE'); // BINBYTES8 2^40
    expect(codeOf(() => load(b(0x80, 4, 0x8e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)))).toBe('ERR_TRUNCATED_FILE');
    expect(codeOf(() => load(b(0x80, 4, 0x8d, 0, 0, 0, 0, 0, 0, 1, 0)))).toBe('ERR_TRUNCATED_FILE'); // BINUNICODE8
    expect(codeOf(() => load(b(0x80, 4, 0x95, 0, 0, 0, 0, 1, 0, 0, 0, 0x4e, 0x2e)))).toBe('ERR_TRUNCATED_FILE'); // FRAME
    expect(codeOf(() => load(b(0x80, 2, 0x8b, 0, 0, 0, 0x7f)))).toBe('ERR_CORRUPT_FILE'); // LONG4 of 2 GB: refused by size
    expect(codeOf(() => load(b(0x80, 2, 0x4e)))).toBe('ERR_TRUNCATED_FILE'); // no STOP
    expect(codeOf(() => load(ascii('cos\nsys')))).toBe('ERR_TRUNCATED_FILE'); // unterminated line
  });

  it('rejects stack underflow, missing MARKs and undefined memo keys', () => {
    expect(codeOf(() => load(b(0x80, 2, 0x2e)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => load(b(0x80, 2, 0x74, 0x2e)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => load(b(0x80, 2, 0x68, 5, 0x2e)))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => load(b(0x80, 2, 0x4b, 1, 0x4b, 2, 0x61, 0x2e)))).toBe('ERR_CORRUPT_FILE'); // APPEND to an int
    expect(codeOf(() => load(b(0x80, 2, 0x7d, 0x5d, 0x4b, 1, 0x73, 0x2e)))).toBe('ERR_CORRUPT_FILE'); // unhashable key
  });

  it('a bomb of 100k MARKs is a typed error', () => {
    const bomb = Buffer.alloc(100_003, 0x28);
    bomb[0] = 0x80; bomb[1] = 2; bomb[bomb.length - 1] = 0x2e;
    expect(codeOf(() => load(bomb))).toBe('ERR_CORRUPT_FILE');
  });

  it('a bomb of 100k nested lists / tuples loads without recursion and fails as a checkpoint', async () => {
    // ]]]]...]  then APPEND × n: a list nested 100k deep.
    const n = 100_000;
    const nested = Buffer.concat([b(0x80, 2), Buffer.alloc(n + 1, 0x5d), Buffer.alloc(n, 0x61), b(0x2e)]);
    const v = load(nested);
    expect(Array.isArray(v)).toBe(true);
    await expect(readCheckpoint(nested)).rejects.toMatchObject({ code: 'ERR_CORRUPT_FILE' });
    // (((( … as a tuple nested 100k deep via TUPLE1, then used as a dict key (hashing must not recurse).
    const tupleKey = Buffer.concat([b(0x80, 2, 0x7d, 0x4e), Buffer.alloc(n, 0x85), b(0x4e, 0x73, 0x2e)]);
    expect(codeOf(() => load(tupleKey))).toBe('ERR_CORRUPT_FILE');
  });

  it('a dict key made of 60 levels of shared tuples (2^60 leaves) is refused quickly', () => {
    // t0 = (None, None); t(k+1) = (tk, tk) via the memo; {t60: None}
    const parts = [b(0x80, 2, 0x7d, 0x4e, 0x4e, 0x86, 0x71, 0)];
    for (let k = 0; k < 60; k++) parts.push(b(0x68, k, 0x68, k, 0x86, 0x71, k + 1));
    parts.push(b(0x4e, 0x73, 0x2e));
    const t0 = performance.now();
    expect(codeOf(() => load(Buffer.concat(parts)))).toBe('ERR_CORRUPT_FILE');
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('bounds the stack and the memo', () => {
    const many = Buffer.concat([b(0x80, 2), Buffer.alloc(5000, 0x4e), b(0x2e)]);
    expect(codeOf(() => unpickle(many, { globals, maxStack: 1000 }))).toBe('ERR_CORRUPT_FILE');
    const memo = Buffer.concat([b(0x80, 4, 0x4e), Buffer.alloc(5000, 0x94), b(0x2e)]);
    expect(codeOf(() => unpickle(memo, { globals, maxMemo: 1000 }))).toBe('ERR_CORRUPT_FILE');
    expect(codeOf(() => unpickle(memo, { globals }))).toBe('no error');
  });
});
