/**
 * The worker thread that reads a checkpoint for loadGenerator() (lib/load.ts), so that parsing a
 * pickle or checking a file's weights never blocks the main thread's event loop. It reads the file
 * named in `workerData.file` with {@link readCheckpointForEngine} (the same checks and typed errors
 * as readCheckpoint; a facegan file's F16 / BF16 tensors stay as stored) and posts one message:
 * `{ ok: true, model }`, the tensors' buffers transferred (not copied) to the main thread, or
 * `{ ok: false, code, message }`. Nothing here loads the native addon.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { readCheckpointForEngine } from './convert/index.js';
import { FaceganError } from './errors.js';

/** What the worker posts back (see lib/load.ts). */
export type LoadWorkerReply =
  | {
    ok: true;
    config: unknown;
    tensors: { name: string; dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; data: Float32Array | Uint16Array }[];
    source: string;
    format: string;
    /** As Checkpoint.wAvg (computed: `mapping.w_avg` holds zeros; lib/load.ts computes it with the engine). */
    wAvg?: { kind: 'stored' } | { kind: 'computed'; samples: number; seed: number };
    /** Whether the tensors' buffers were transferred (false: copied, e.g. a small pooled Buffer). */
    transferred: boolean;
  }
  | { ok: false; code: string | undefined; message: string };

async function main(): Promise<void> {
  const port = parentPort!;
  let reply: LoadWorkerReply;
  try {
    const model = await readCheckpointForEngine((workerData as { file: string }).file);
    const tensors = [...model.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.data }));
    reply = { ok: true, config: model.config, tensors, source: model.source, format: model.format, wAvg: model.wAvg, transferred: true };
    const buffers = [...new Set(tensors.map((t) => t.data.buffer as ArrayBuffer))];
    try {
      port.postMessage(reply, buffers);
      return;
    } catch {
      // A buffer that cannot be transferred (Node's Buffer pool): send a copy.
      reply.transferred = false;
    }
  } catch (err) {
    reply = {
      ok: false,
      code: err instanceof FaceganError ? err.code : undefined,
      message: (err as Error)?.message ?? String(err),
    };
  }
  port.postMessage(reply);
}

await main();
