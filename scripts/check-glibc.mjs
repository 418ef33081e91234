#!/usr/bin/env node
// Checks that a Linux (glibc) binary loads on the stated glibc baseline:
//
//   node scripts/check-glibc.mjs FILE.node [--baseline 2.17]
//
// Reads `objdump -T` (the dynamic symbols) and `objdump -p` (the needed libraries) and fails when
// - an undefined symbol needs a GLIBC_ version newer than the baseline;
// - it needs any GLIBCXX_ / CXXABI_ / GCC_ version, or libstdc++.so / libgcc_s.so (they must be
//   linked in statically: a distribution's libstdc++ is as old as its glibc);
// - a strong undefined symbol has no version and is not Node's (napi_*, node_api_*, uv_*): it
//   would bind to whatever the system has, or fail on first call on an older one.
// Prints one line per problem, and a summary. Exit status 1 on any problem.
import { execFileSync } from 'node:child_process';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
const bi = args.indexOf('--baseline');
const baseline = bi >= 0 ? args[bi + 1] : '2.17';
if (!file) {
  console.error('usage: check-glibc.mjs FILE [--baseline 2.17]');
  process.exit(2);
}
const vnum = (v) => v.split('.').map(Number).reduce((acc, x, i) => acc + x * 1000 ** (2 - i), 0);

export function checkSymbols(objdumpT, objdumpP, base) {
  const problems = [];
  const versions = new Map();
  for (const line of objdumpT.split('\n')) {
    // "0000000000000000      DF *UND*	0000000000000000 (GLIBC_2.34) pthread_create"
    // "0000000000000000  w   D  *UND*	0000000000000000  Base        _ITM_RU1"
    const m = /^[0-9a-f]+ (.{7}) \*UND\*\s+[0-9a-f]+\s+\(?([^\s)]+)\)?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const [, flags, version, name] = m;
    const weak = flags.includes('w');
    versions.set(version, (versions.get(version) ?? 0) + 1);
    const glibc = /^GLIBC_([\d.]+)$/.exec(version);
    if (glibc) {
      if (vnum(glibc[1]) > vnum(base)) problems.push(`${name} needs ${version} (newer than the baseline glibc ${base})`);
    } else if (/^(GLIBCXX|CXXABI|GCC)_/.test(version)) {
      problems.push(`${name} needs ${version}: libstdc++ / libgcc must be linked statically`);
    } else if (version === 'Base' || version === '*UND*') {
      if (!weak && !/^(napi_|node_api_|uv_)/.test(name)) problems.push(`${name} has no symbol version (not in the glibc ${base} ABI?)`);
    } else if (!/^GLIBC_PRIVATE$/.test(version)) {
      problems.push(`${name} needs ${version} (unknown library version)`);
    } else {
      problems.push(`${name} needs GLIBC_PRIVATE`);
    }
  }
  for (const m of objdumpP.matchAll(/NEEDED\s+(\S+)/g)) {
    if (!/^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libutil\.so\.1|ld-linux[-\w.]*\.so\.\d)$/.test(m[1])) {
      problems.push(`needs the shared library ${m[1]} (only glibc's own libraries are allowed)`);
    }
  }
  return { problems, versions };
}

const T = execFileSync('objdump', ['-T', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
const P = execFileSync('objdump', ['-p', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
const { problems, versions } = checkSymbols(T, P, baseline);
const glibcVersions = [...versions.keys()].filter((v) => v.startsWith('GLIBC_')).sort((a, b) => vnum(a.slice(6)) - vnum(b.slice(6)));
for (const p of problems) console.error(`check-glibc: ${file}: ${p}`);
if (problems.length > 0) {
  console.error(`check-glibc: FAILED, ${problems.length} problem(s) against glibc ${baseline}`);
  process.exit(1);
}
console.log(`check-glibc: ${file}: OK for glibc >= ${baseline} (newest needed: ${glibcVersions.at(-1) ?? 'none'}; no GLIBCXX/CXXABI/GCC versions)`);
