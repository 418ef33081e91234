/**
 * The CommonJS entry (`require('facegan-native')`, the package's "require" export condition).
 *
 * facegan-native is an ES module. Node >= 20.19 (and >= 22.12) can require() an ES module, so this
 * returns the same module namespace as `import`. Older Node versions cannot: they get one clear
 * error saying to use `import` / `await import()` or a newer Node, instead of ERR_REQUIRE_ESM's
 * stack of loader internals. (Requiring it from here, inside node_modules, also keeps Node from
 * printing its "require() of ES modules" ExperimentalWarning into the user's output.)
 */
let api: unknown;
try {
  api = require('./index.js');
} catch (err) {
  const code = (err as { code?: string } | null)?.code;
  if (code === 'ERR_REQUIRE_ESM' || code === 'ERR_REQUIRE_ASYNC_MODULE') {
    const e = new Error(
      `facegan-native is an ES module (ESM only), and this Node (${process.versions.node}) cannot require() ES modules: ` +
        'that needs Node >= 20.19 or >= 22.12, without --no-experimental-require-module. ' +
        "Use `import { generate } from 'facegan-native'`, or `const { generate } = await import('facegan-native')` from CommonJS, " +
        'or upgrade Node.',
    ) as Error & { code: string };
    e.code = 'ERR_REQUIRE_ESM';
    throw e;
  }
  throw err;
}
module.exports = api;
