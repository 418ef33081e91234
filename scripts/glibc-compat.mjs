#!/usr/bin/env node
// Link against an old glibc ABI with the host's toolchain (no old sysroot, no container).
//
//   node scripts/glibc-compat.mjs OUTDIR [--baseline 2.17]
//
// glibc keeps every old version of a symbol it has ever exported (pthread_create@GLIBC_2.2.5 beside
// pthread_create@@GLIBC_2.34, log@GLIBC_2.2.5 beside log@@GLIBC_2.29, ...). A program linked on a new
// glibc binds to the newest versions and then refuses to load on older systems. This script writes
// into OUTDIR *stub* libraries (libc, libm, libpthread, libdl, librt, libutil and the dynamic loader)
// that export, for each symbol, only the newest version that is not newer than the baseline — what
// the baseline glibc itself would have offered — each under the soname of the library that held it
// then (pthread_*, sem_* in libpthread.so.0, dl* in libdl.so.2, ...). Linking with -L OUTDIR makes
// the linker record those versions; at run time the real glibc (old or new) provides them.
//
// Symbols that did not exist at the baseline are left out of the stubs. The few that today's
// headers and static libraries reach for anyway are defined in OUTDIR/glibc-compat.o (linked into
// the addon, hidden): the stat family (before 2.33 these were inline wrappers of __fxstat & co.),
// __libc_single_threaded (2.32; libstdc++.a reads it), getentropy / arc4random (2.25 / 2.36;
// std::random_device) and _dl_find_object (2.35; libgcc_eh.a's
// unwinder calls it).  scripts/check-glibc.mjs then verifies the result.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const outDir = path.resolve(args.find((a) => !a.startsWith('--')) ?? 'build/glibc-compat');
const bi = args.indexOf('--baseline');
const baseline = bi >= 0 ? args[bi + 1] : '2.17';
const cc = process.env.CC || 'cc';

if (process.platform !== 'linux') throw new Error('glibc-compat: Linux only');
const vnum = (v) => v.split('.').map(Number).reduce((acc, x, i) => acc + x * 1000 ** (2 - i), 0);
const base = vnum(baseline);

/** The real file behind a library name, as the compiler driver finds it. */
function realLib(name) {
  const p = execFileSync(cc, [`-print-file-name=${name}`], { encoding: 'utf8' }).trim();
  if (!path.isAbsolute(p) || !fs.existsSync(p)) throw new Error(`glibc-compat: ${cc} cannot find ${name}`);
  return fs.realpathSync(p);
}
// The dynamic loader's path, from libc.so (a linker script naming it).
const libcScript = fs.readFileSync(realLib('libc.so'), 'utf8');
const ldso = /AS_NEEDED\s*\(\s*(\S*ld-linux[^\s)]*)/.exec(libcScript)?.[1];
if (!ldso) throw new Error('glibc-compat: cannot find the dynamic loader in libc.so');
const soname = (file) => /\(SONAME\)\s+Library soname: \[([^\]]+)\]/.exec(execFileSync('readelf', ['-d', file], { encoding: 'utf8' }))[1];

/** { name → [{ version, type, size, weak }] } of a library's exported, versioned GLIBC_ symbols. */
function exportsOf(file) {
  const out = new Map();
  const text = execFileSync('readelf', ['-W', '--dyn-syms', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  for (const line of text.split('\n')) {
    // "  1432: 0000000000089380  3821 FUNC    GLOBAL DEFAULT   16 pthread_create@GLIBC_2.2.5"
    const m = /^\s*\d+:\s+[0-9a-f]+\s+(\d+|0x[0-9a-f]+)\s+(\w+)\s+(\w+)\s+\w+\s+(\w+)\s+([^@\s]+)@@?(GLIBC_[\d.]+)\s*$/.exec(line);
    if (!m || m[4] === 'UND' || m[4] === 'ABS') continue;
    const [, size, type, bind, , name, version] = m;
    if (!['FUNC', 'IFUNC', 'OBJECT', 'TLS'].includes(type)) continue;
    if (!out.has(name)) out.set(name, []);
    out.get(name).push({ version, type, size: Number(size), weak: bind === 'WEAK' });
  }
  return out;
}

// Where a symbol that moved into libc in 2.34 used to live.
function historicalHome(name) {
  if (/^(pthread_|sem_|__pthread_|thrd_|mtx_|cnd_|tss_|call_once$)/.test(name)) return 'pthread';
  if (/^(dl(open|close|sym|vsym|error|addr|addr1|info|mopen|iterate_phdr_never)$)/.test(name)) return 'dl';
  if (/^(shm_|mq_|aio_|lio_|timer_)/.test(name)) return 'rt';
  if (/^(openpty|forkpty|login|login_tty|logout|logwtmp)$/.test(name)) return 'util';
  return 'c';
}

const libs = {
  c: { file: realLib('libc.so.6'), symbols: [] },
  m: { file: realLib('libm.so.6'), symbols: [] },
  pthread: { file: realLib('libpthread.so.0'), symbols: [] },
  dl: { file: realLib('libdl.so.2'), symbols: [] },
  rt: { file: realLib('librt.so.1'), symbols: [] },
  util: { file: realLib('libutil.so.1'), symbols: [] },
  ld: { file: fs.realpathSync(ldso), symbols: [] },
};

function collect(key, table) {
  for (const [name, versions] of table) {
    const ok = versions.filter((v) => vnum(v.version.slice(6)) <= base);
    if (ok.length === 0) continue; // newer than the baseline: not offered
    const pick = ok.reduce((a, b) => (vnum(b.version.slice(6)) > vnum(a.version.slice(6)) ? b : a));
    const moved = key === 'c' && versions.some((v) => v.version === 'GLIBC_2.34');
    libs[moved ? historicalHome(name) : key].symbols.push({ name, ...pick });
  }
}
collect('c', exportsOf(libs.c.file));
collect('m', exportsOf(libs.m.file));
collect('ld', exportsOf(libs.ld.file));
// On a build host older than 2.34 these still hold their own symbols (from 2.34 on, placeholders).
for (const key of ['pthread', 'dl', 'rt', 'util']) collect(key, exportsOf(libs[key].file));

fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });

function writeStub(key, outName) {
  const { file, symbols } = libs[key];
  const asm = ['.text'];
  const byVersion = new Map();
  for (const s of symbols) {
    if (s.type === 'OBJECT' || s.type === 'TLS') {
      asm.push(s.type === 'TLS' ? '.section .tbss,"awT",%nobits' : '.data');
      asm.push(`${s.weak ? '.weak' : '.globl'} ${s.name}`, `.type ${s.name}, ${s.type === 'TLS' ? '%tls_object' : '%object'}`);
      asm.push(`.size ${s.name}, ${Math.max(1, s.size)}`, `${s.name}:`, `.zero ${Math.max(1, s.size)}`, '.text');
    } else {
      asm.push(`${s.weak ? '.weak' : '.globl'} ${s.name}`, `.type ${s.name}, %function`, `${s.name}:`);
    }
    if (!byVersion.has(s.version)) byVersion.set(s.version, []);
    byVersion.get(s.version).push(s.name);
  }
  const versions = [...byVersion.keys()].sort((a, b) => vnum(a.slice(6)) - vnum(b.slice(6)));
  const script = versions.map((v) => `${v} { global: ${byVersion.get(v).join('; ')}; };`).join('\n');
  const stem = path.join(outDir, `${outName}.stub`);
  fs.writeFileSync(`${stem}.S`, asm.join('\n') + '\n');
  fs.writeFileSync(`${stem}.map`, (script || 'GLIBC_2.0 { local: *; };') + '\n');
  const out = path.join(outDir, outName);
  execFileSync(cc, ['-shared', '-nostdlib', `-Wl,-soname,${soname(file)}`, `-Wl,--version-script,${stem}.map`, '-o', out, `${stem}.S`]);
  return out;
}

const libcStub = writeStub('c', 'libc-stub.so');
const ldStub = writeStub('ld', 'ld-stub.so');
writeStub('m', 'libm.so');
const moved = ['pthread', 'dl', 'rt', 'util'].map((k) => writeStub(k, `lib${k}.so`));
// libc.so: like the system's own linker script (libc, its non-shared helpers such as atexit, the
// dynamic loader), plus the libraries merged into libc in 2.34 — a plain -lc finds pthread_create.
fs.writeFileSync(
  path.join(outDir, 'libc.so'),
  `/* facegan glibc ${baseline} stubs */\n` +
    `GROUP ( ${libcStub} ${realLib('libc_nonshared.a')} AS_NEEDED ( ${ldStub} ${moved.join(' ')} ) )\n`,
);

const compat = String.raw`/* Definitions a glibc ${baseline} system lacks (see scripts/glibc-compat.mjs). */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#define HIDDEN __attribute__((visibility("hidden")))

/* The stat family: exported functions only since glibc 2.33; before, inline wrappers of these. */
struct stat;
extern int __fxstat(int, int, struct stat *);
extern int __xstat(int, const char *, struct stat *);
extern int __lxstat(int, const char *, struct stat *);
extern int __fxstatat(int, int, const char *, struct stat *, int);
#if defined(__x86_64__)
#define FG_STAT_VER 1
#else
#define FG_STAT_VER 0
#endif
HIDDEN int stat(const char *p, struct stat *b) { return __xstat(FG_STAT_VER, p, b); }
HIDDEN int lstat(const char *p, struct stat *b) { return __lxstat(FG_STAT_VER, p, b); }
HIDDEN int fstat(int fd, struct stat *b) { return __fxstat(FG_STAT_VER, fd, b); }
HIDDEN int fstatat(int d, const char *p, struct stat *b, int f) { return __fxstatat(FG_STAT_VER, d, p, b, f); }
HIDDEN int stat64(const char *p, struct stat *b) { return __xstat(FG_STAT_VER, p, b); }
HIDDEN int lstat64(const char *p, struct stat *b) { return __lxstat(FG_STAT_VER, p, b); }
HIDDEN int fstat64(int fd, struct stat *b) { return __fxstat(FG_STAT_VER, fd, b); }
HIDDEN int fstatat64(int d, const char *p, struct stat *b, int f) { return __fxstatat(FG_STAT_VER, d, p, b, f); }

/* glibc 2.32: 0 means "threads may exist", so libstdc++ always uses atomic reference counts. */
HIDDEN char __libc_single_threaded = 0;

/* glibc 2.25 and 2.36: libstdc++.a's std::random_device reads them. The getrandom system call
   (Linux 3.17), else /dev/urandom. */
HIDDEN int getentropy(void *buffer, size_t length) {
  unsigned char *p = (unsigned char *)buffer;
  size_t got = 0;
  if (length > 256) { errno = EIO; return -1; }
  while (got < length) {
    long r = syscall(SYS_getrandom, p + got, length - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    got += (size_t)r;
  }
  if (got < length) {
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    while (got < length) {
      ssize_t r = read(fd, p + got, length - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) { close(fd); errno = EIO; return -1; }
      got += (size_t)r;
    }
    close(fd);
  }
  return 0;
}
HIDDEN uint32_t arc4random(void) {
  uint32_t v;
  if (getentropy(&v, sizeof v) != 0) abort();
  return v;
}

/* glibc 2.35: libgcc's unwinder finds an address's .eh_frame_hdr with it. The same lookup through
   dl_iterate_phdr (glibc 2.2.4), which is how libgcc did it before 2.35. */
struct fg_find { uintptr_t pc; struct dl_find_object *out; };
static int fg_find_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct fg_find *f = (struct fg_find *)data;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  const void *eh = NULL;
  int hit = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD) {
      if (start < lo) lo = start;
      if (start + ph->p_memsz > hi) hi = start + ph->p_memsz;
      if (f->pc >= start && f->pc < start + ph->p_memsz) hit = 1;
    } else if (ph->p_type == PT_GNU_EH_FRAME) {
      eh = (const void *)start;
    }
  }
  if (!hit) return 0;
  f->out->dlfo_flags = 0;
  f->out->dlfo_map_start = (void *)lo;
  f->out->dlfo_map_end = (void *)hi;
  f->out->dlfo_link_map = NULL;
  f->out->dlfo_eh_frame = (void *)eh;
  return 1;
}
HIDDEN int _dl_find_object(void *pc, struct dl_find_object *result) {
  struct fg_find f = { (uintptr_t)pc, result };
  return dl_iterate_phdr(fg_find_cb, &f) ? 0 : -1;
}
`;
fs.writeFileSync(path.join(outDir, 'glibc-compat.c'), compat);
execFileSync(cc, ['-c', '-O2', '-fPIC', '-fvisibility=hidden', '-o', path.join(outDir, 'glibc-compat.o'), path.join(outDir, 'glibc-compat.c')]);
// The addon exports only its N-API entry points (no template instantiations, no libstdc++).
fs.writeFileSync(path.join(outDir, 'exports.map'), '{ global: napi_register_module_v1; node_api_module_get_api_version_v1; local: *; };\n');
fs.writeFileSync(path.join(outDir, 'BASELINE'), `${baseline}\n`);
const counts = Object.entries(libs).map(([k, v]) => `${k}:${v.symbols.length}`).join(' ');
console.log(`glibc-compat: glibc ${baseline} stubs in ${outDir} (${counts})`);
