/**
 * The golden outputs that come with each fixture config: `NAME.golden.json` (the cases) and
 * `NAME.golden.safetensors` (the tensors they name). See the fixtures' README.md.
 *
 * @example
 *   const g = readGolden('tiny32');
 *   const cases = seedCases(g);
 *   expect(cases).toHaveLength(GOLDEN_SEED_CASES);   // a loop that runs no case proves nothing
 *   for (const c of cases) {
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

/**
 * The seed cases every golden file holds: 20 (seeds × ψ × noise mode), besides the style-mixing
 * and batch cases. Tests that loop over them assert this count, so a loop that skips every case
 * (a renamed field, a filter gone wrong) fails instead of passing.
 */
export const GOLDEN_SEED_CASES = 20;

/** A seed case with every field a seed case has. */
export type SeedCase = GoldenCase & { seed: number; psi: number; noise_mode: string; z: string; ws: string; image: string; image_uint8: string };

/**
 * The seed cases of `g` (those with a `seed`), each checked to carry z, ws, image, image_uint8 and
 * psi: a seed case without one of them is an error here, not a case silently skipped.
 */
export function seedCases(g: Golden): SeedCase[] {
  const out: SeedCase[] = [];
  for (const c of g.cases.cases) {
    if (c.seed === undefined) continue;
    for (const k of ['psi', 'noise_mode', 'z', 'ws', 'image', 'image_uint8'] as const) {
      if (c[k] === undefined) throw new Error(`golden ${g.cases.config}: seed case ${c.seed} has no ${k}`);
    }
    out.push(c as SeedCase);
  }
  return out;
}
