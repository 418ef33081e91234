#!/usr/bin/env node
// npm install hook: use a prebuilt or already-built addon when one loads here; otherwise build
// from source with cmake-js (scripts/build-native.mjs). FACEGAN_BUILD_FROM_SOURCE=1 forces a build.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

if (process.env.FACEGAN_BUILD_FROM_SOURCE !== '1') {
  try {
    require('node-gyp-build')(root);
    process.exit(0);
  } catch {
    // no prebuild matches this platform / Node: build below
  }
}
const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-native.mjs')], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
