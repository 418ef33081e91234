/**
 * The golden outputs that come with each fixture config: `NAME.golden.json` (the cases) and
 * `NAME.golden.safetensors` (the tensors they name). See the fixtures' README.md.
 *
 * @example
 *   const g = readGolden('tiny32');
 *   for (const c of g.cases.cases) {
 *     if (c.seed === undefined) continue;
 *     const img = g.tensor(c.image);      // { dtype: 'F32', shape: [1, 3, 32, 32], data: Float32Array }
 *   }
 */
import fs from 'node:fs';

import { readSafetensors, type SafetensorsTensor } from '../../lib/safetensors.js';
import { fixturePath } from './fixtures.js';

/** One entry of `cases` in NAME.golden.json (fields vary by kind: seed case, mixing, batch). */
export interface GoldenCase {
  seed?: number;
  psi?: number;
  noise_mode?: 'const' | 'none' | string;
  class_index?: number | null;
  /** Keys into the safetensors file. */
  z?: string;
  ws?: string;
  image?: string;
  image_uint8?: string;
  mixing?: { first: string; second: string; cutoff: number };
  batch_seeds?: number[];
  [key: string]: unknown;
}

/** NAME.golden.json as parsed. */
export interface GoldenCases {
  config: string;
  num_ws: number;
  z_dim: number;
  w_dim: number;
  c_dim: number;
  img_resolution: number;
  img_channels: number;
  note?: string;
  cases: GoldenCase[];
  [key: string]: unknown;
}

export interface Golden {
  cases: GoldenCases;
  /** All tensor keys in the safetensors file. */
  keys: string[];
  /** The tensor stored under `key` (F64 → Float64Array, F32 → Float32Array, U8 → Uint8Array). Throws if absent. */
  tensor(key: string): SafetensorsTensor;
}

/** Reads `NAME.golden.json` and `NAME.golden.safetensors` from the fixtures directory. */
export function readGolden(name: string): Golden {
  const cases = JSON.parse(fs.readFileSync(fixturePath(`${name}.golden.json`), 'utf8')) as GoldenCases;
  const { tensors } = readSafetensors(fs.readFileSync(fixturePath(`${name}.golden.safetensors`)));
  return {
    cases,
    keys: [...tensors.keys()],
    tensor(key: string): SafetensorsTensor {
      const t = tensors.get(key);
      if (t === undefined) throw new Error(`golden ${name}: no tensor ${JSON.stringify(key)}`);
      return t;
    },
  };
}
