/**
 * `facegan serve`: the face page and service on one port, with graceful shutdown on SIGTERM /
 * SIGINT (stop accepting, finish in-flight requests within --shutdown-timeout, exit 0).
 */
import { parseArgs } from 'node:util';
import { FaceganError } from './errors.js';
import { loadGenerator } from './load.js';
import { createFaceServer, modelLabel } from './server.js';

export const SERVE_USAGE = `facegan serve [--model PATH|ID] [--port 8080] [--host 127.0.0.1] [--device auto|cpu|cuda]
              [--max-queue 32] [--queue-timeout MS] [--shutdown-timeout MS] [--no-provenance]`;

function int(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new FaceganError('ERR_INVALID_OPTION', `Expected an integer in [${min}, ${max}] for --${name} but received '${v}'`);
  }
  return Number(v);
}

export async function serveCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      device: { type: 'string' },
      threads: { type: 'string' },
      'max-queue': { type: 'string' },
      'queue-timeout': { type: 'string' },
      'shutdown-timeout': { type: 'string' },
      'no-provenance': { type: 'boolean' },
    },
  });
  const port = int('port', values.port, 0, 65535) ?? 8080;
  const host = values.host ?? '127.0.0.1';
  const { modelArgument } = await import('./cli-media.js');
  const generator = await loadGenerator(await modelArgument(values.model), {
    device: values.device as never,
    threads: int('threads', values.threads, 0, 1024),
  });
  const app = createFaceServer({
    generator,
    maxQueue: int('max-queue', values['max-queue'], 1, 1_000_000),
    queueTimeoutMs: int('queue-timeout', values['queue-timeout'], 1, 3_600_000),
    provenance: !values['no-provenance'],
  });
  const deadlineMs = int('shutdown-timeout', values['shutdown-timeout'], 0, 3_600_000) ?? 10_000;
  let addr;
  try {
    addr = await app.listen(port, host);
  } catch (err) {
    generator.dispose();
    throw err;
  }
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  console.log(`facegan: serving ${modelLabel(generator)} (${generator.info.backend}) on http://${shown}:${addr.port}/`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      console.log(`facegan: ${signal}: finishing ${app.inFlight} request(s) in flight (at most ${deadlineMs} ms)`);
      app.close({ deadlineMs }).then(({ drained }) => {
        console.log(drained ? 'facegan: stopped' : 'facegan: stopped (cut off requests still running at the deadline)');
        generator.dispose();
        resolve();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
