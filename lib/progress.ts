/** A frame counter with rate and ETA for long CLI runs: drawn on a TTY only, silent otherwise. */

export interface Progress {
  /** `n` more items done. */
  tick(n?: number): void;
  /** Clears the line (when drawn). */
  done(): void;
}

function clock(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, '0')}:${String(Math.round(s % 60)).padStart(2, '0')}`;
}

export function progress(total: number, label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  let done = 0;
  const t0 = Date.now();
  let last = 0;
  const tty = stream.isTTY === true;
  const draw = (force: boolean) => {
    if (!tty) return;
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    const secs = (now - t0) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const width = 24;
    const filled = Math.round((done / Math.max(1, total)) * width);
    const eta = rate > 0 ? (total - done) / rate : Number.NaN;
    stream.write(
      `\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} ${rate.toFixed(1)}/s ETA ${clock(eta)}\x1b[K`,
    );
  };
  draw(true);
  return {
    tick(n = 1) {
      done += n;
      draw(done >= total);
    },
    done() {
      if (tty) stream.write('\r\x1b[K');
    },
  };
}
