import type cliProgress from 'cli-progress';
import { loadOnUse } from '../load-on-use.js';
import type { ImportProgress } from '../store/counts.js';

/** Loaded by the first bar: only a terminal shows one. */
const loadCliProgress = loadOnUse<typeof cliProgress>('cli-progress');

/**
 * A progress bar on stderr (percentage, rows/s, ETA), one per phase, redrawn a few times a
 * second. Only used when stderr is a terminal; scripts get nothing but the final report.
 */
export class ProgressBar {
  #bar: cliProgress.SingleBar | undefined;
  #phase = '';
  #phaseStart = 0;
  #rowsAtStart = 0;

  update(p: Omit<ImportProgress, 'phase'> & { phase: string }): void {
    if (p.phase !== this.#phase) {
      this.stop();
      this.#phase = p.phase;
      this.#phaseStart = p.elapsedMs;
      this.#rowsAtStart = p.rows;
      const known = p.total !== null && p.total > 0;
      const { SingleBar, Presets } = loadCliProgress();
      this.#bar = new SingleBar({
        stream: process.stderr,
        format: known
          ? `${p.phase.padEnd(8)} [{bar}] {percentage}% | {rows} rows | {rate} rows/s | ETA {eta_formatted}`
          : `${p.phase.padEnd(8)} {rows} rows | {rate} rows/s`,
        hideCursor: true,
        fps: 5,
        etaBuffer: 50,
      }, Presets.shades_classic);
      this.#bar.start(known ? (p.total as number) : 1, 0, { rows: '0', rate: '0' });
    }
    const seconds = (p.elapsedMs - this.#phaseStart) / 1000;
    const rate = seconds > 0 ? Math.round((p.rows - this.#rowsAtStart) / seconds) : 0;
    this.#bar?.update(p.total ? Math.min(p.done, p.total) : 0, {
      rows: p.rows.toLocaleString('en-US'),
      rate: rate.toLocaleString('en-US'),
    });
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }
}
