/** Comparisons against the goldens, with the tolerances the project holds itself to. */
import { expect } from 'vitest';

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** ws: max |Δ| / max |golden| ≤ 1e-5. */
export function expectWsClose(got: Float32Array, want: ArrayLike<number>): void {
  expect(maxAbsDiff(got, want) / maxAbs(want)).toBeLessThanOrEqual(1e-5);
}

/** float images: max |Δ| ≤ 1e-4. */
export function expectImageClose(got: Float32Array, want: ArrayLike<number>): void {
  expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(1e-4);
}

/** uint8 images: identical except at most 0.1 % of values off by one, none by more. */
export function expectUint8Close(got: Uint8Array, want: Uint8Array): void {
  expect(got.length).toBe(want.length);
  let offByOne = 0;
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    worst = Math.max(worst, d);
    if (d === 1) offByOne++;
  }
  expect(worst).toBeLessThanOrEqual(1);
  expect(offByOne).toBeLessThanOrEqual(Math.floor(got.length * 0.001));
}
