// A fuzz worker (a child process of fuzz/run.mjs): loads each mutant it is sent with the public
// API, makes two images, and reports what happened. It never decides pass / fail: the parent
// does, and the parent kills it on a timeout or when it uses too much memory.
//
// Message in:  { id, path, mode }   mode: 'load' (loadGenerator + generate) | 'self-hang' |
//              'self-crash' | 'self-untyped' | 'self-memory' (the harness's own self-test)
// Message out: { id, outcome: 'ok' | 'typed' | 'untyped' | 'nan', code?, message?, stack?, ms }
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const root = process.env.FACEGAN_FUZZ_ROOT;
const lib = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
const { FaceganError, loadGenerator } = lib;
const KNOWN = new Set(JSON.parse(process.env.FACEGAN_FUZZ_CODES));

async function exercise(file) {
  const gen = await loadGenerator(file, { device: 'cpu', threads: 1, batchSize: 2 });
  try {
    const [a] = await gen.generate({ seeds: [1, 2] });
    if (!(a.data instanceof Uint8Array) || a.data.length !== a.width * a.height * a.channels) throw new Error('bad uint8 image');
    const [f] = await gen.generate({ seed: 3, output: 'float32' });
    for (let i = 0; i < f.data.length; i++) {
      if (!Number.isFinite(f.data[i])) return { outcome: 'nan', message: `float32 image value ${i} is ${f.data[i]}` };
    }
    if (gen.info.arch !== 'progan') {
      const ws = await gen.mapping({ seed: 4, psi: 0.7 });
      await gen.synthesis(ws);
    }
    return { outcome: 'ok' };
  } finally {
    gen.dispose();
  }
}

process.on('message', async (msg) => {
  const t0 = performance.now();
  let res;
  try {
    if (msg.mode === 'self-hang') await new Promise(() => setInterval(() => undefined, 1000));
    if (msg.mode === 'self-crash') process.abort();
    if (msg.mode === 'self-untyped') throw new TypeError('a deliberately untyped error');
    if (msg.mode === 'self-memory') {
      const keep = [];
      for (;;) {
        keep.push(Buffer.alloc(64 << 20, 1));
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    if (msg.plant) {
      await exercise(msg.path).catch(() => undefined);
      throw new TypeError('a planted failure after a real mutant (self-test)');
    }
    res = await exercise(msg.path);
  } catch (err) {
    if (err instanceof FaceganError && KNOWN.has(err.code)) res = { outcome: 'typed', code: err.code, message: err.message };
    else res = { outcome: 'untyped', code: err?.code, message: String(err?.message ?? err), stack: String(err?.stack ?? '') };
  }
  process.send({ id: msg.id, ms: performance.now() - t0, ...res });
});

process.send({ ready: true });
