import cliProgress from 'cli-progress';
import type { ImportProgress } from '../pipeline/stats.js';

/**
 * A progress bar on stderr (bytes %, rows/s, ETA), redrawn at most a few times a second.
 * Only used when stderr is a terminal; scripts get nothing but the final report.
 */
export class ProgressBar {
  #bar: cliProgress.SingleBar | undefined;
  #phase = '';

  update(p: ImportProgress): void {
    if (p.phase !== this.#phase) {
      this.stop();
      this.#phase = p.phase;
      const known = p.totalBytes !== null && p.totalBytes > 0;
      this.#bar = new cliProgress.SingleBar({
        stream: process.stderr,
        format: known
          ? `${p.phase.padEnd(9)} [{bar}] {percentage}% | {rows} rows | {rate} rows/s | ETA {eta_formatted}`
          : `${p.phase.padEnd(9)} {rows} rows | {rate} rows/s | {mb} MB`,
        hideCursor: true,
        fps: 5,
        etaBuffer: 50,
      }, cliProgress.Presets.shades_classic);
      this.#bar.start(known ? (p.totalBytes as number) : 1, 0, { rows: '0', rate: '0', mb: '0' });
    }
    const rate = p.elapsedMs > 0 ? Math.round(p.rows / (p.elapsedMs / 1000)) : 0;
    this.#bar?.update(p.totalBytes ? Math.min(p.bytesRead, p.totalBytes) : 0, {
      rows: p.rows.toLocaleString('en-US'),
      rate: rate.toLocaleString('en-US'),
      mb: (p.bytesRead / 1e6).toFixed(1),
    });
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }
}
