import { defineConfig } from 'vitest/config';

/**
 * Three tiers, chosen by file name:
 * - unit: `*.test.ts`, from `src/` in one process (imports and scrubs through the inline pool,
 *   the API through `app.inject()`); no build, no child process.
 * - e2e: `*.e2e.test.ts`, the built package, the CLI, real sockets and worker threads.
 * - crash: `*.crash.test.ts`, processes killed (SIGKILL, SIGINT) and restarted mid-import.
 */
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.e2e.test.ts', 'test/**/*.crash.test.ts'],
          env: { OPTOUT_TEST_TIER: 'unit' },
          // The files share their worker's module cache: loading fastify, pg and classic-level
          // once per worker instead of once per file halves the tier's time. No unit file may
          // leave global state behind (a timer, an env variable, a patched module).
          isolate: false,
        },
      },
      { extends: true, test: { name: 'e2e', include: ['test/**/*.e2e.test.ts'] } },
      { extends: true, test: { name: 'crash', include: ['test/**/*.crash.test.ts'] } },
    ],
  },
});
