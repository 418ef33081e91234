/**
 * Where the shared checkpoint fixtures live, and a `describe` that needs them.
 *
 * The directory is `$FACEGAN_FIXTURES`, or `<repo>/../shared/fixtures` (see its README.md for
 * what each file is). Suites that need it use {@link describeFixtures}: when the fixtures are
 * missing it FAILS under `CI=true` (a CI run must never pass by skipping) and otherwise skips
 * with a loud warning.
 *
 * @example
 *   describeFixtures('engine vs goldens', () => {
 *     it('tiny32', async () => { const p = path.join(fixturesDir, 'tiny32.pkl'); ... });
 *   });
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe } from 'vitest';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Absolute path of the fixtures directory (it may not exist: check {@link haveFixtures}). */
export const fixturesDir: string = path.resolve(process.env.FACEGAN_FIXTURES ?? path.join(repoRoot, '..', 'shared', 'fixtures'));

/** True when the fixtures directory exists and holds the fixtures (judged by tiny32.pkl). */
export const haveFixtures: boolean = fs.existsSync(path.join(fixturesDir, 'tiny32.pkl'));

/** `path.join(fixturesDir, name)`. */
export function fixturePath(name: string): string {
  return path.join(fixturesDir, name);
}

/**
 * `describe(name, fn)` when the fixtures are present. When they are absent: under `CI=true`
 * it throws (the test file fails); otherwise the suite is skipped with a console warning.
 */
export function describeFixtures(name: string, fn: () => void): void {
  if (haveFixtures) {
    describe(name, fn);
    return;
  }
  const why = `checkpoint fixtures not found in ${fixturesDir} (set FACEGAN_FIXTURES or put them in ../shared/fixtures)`;
  if (process.env.CI === 'true') throw new Error(`${name}: ${why}; CI=true, so this is a failure, not a skip`);
  console.warn(`\n!!!!!!!!!! SKIPPING "${name}": ${why} !!!!!!!!!!\n`);
  describe.skip(name, fn);
}
