/**
 * The key filter after random sessions, some of them cut off as by SIGKILL, and a snapshot kept,
 * removed, damaged or left behind by a dropped log record: it never misses a stored key.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'vitest';
import fc from 'fast-check';
import { filterLogKey } from '../../../src/store/level/keys.js';
import { LevelStore } from '../../../src/store/level/level-store.js';
import { removeTempDirs, tempDir } from '../../helpers.js';
import { crash, reopen, session } from './sessions.js';

afterEach(async () => {
  await removeTempDirs();
});

describe('loading the key filter', () => {
  it('never misses a stored key, whatever crashed and whatever happened to the snapshot (property)', async () => {
    const scope = fc.constantFrom('*', 'emea', 'unit_2', 'Z');
    const step = fc.record({ scope, keys: fc.uniqueArray(fc.emailAddress(), { minLength: 0, maxLength: 15 }) });
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ steps: fc.array(step, { minLength: 1, maxLength: 3 }), crashed: fc.boolean() }), { minLength: 1, maxLength: 3 }),
      fc.constantFrom('keep', 'remove', 'flip', 'dropRecord'),
      async (sessions, fate) => {
        const dir = await tempDir();
        for (const s of sessions) await session(dir, s.steps.map((st) => [st.scope, st.keys] as const), s.crashed ? 'crash' : 'close');
        const path = join(dir, 'filter.snapshot');
        if (fate === 'remove' && existsSync(path)) rmSync(path);
        if (fate === 'flip' && existsSync(path)) {
          const snap = readFileSync(path);
          snap[20] = (snap[20] as number) ^ 0x04;
          writeFileSync(path, snap);
        }
        if (fate === 'dropRecord') {
          const raw = await LevelStore.open(dir);
          await raw.db.del(filterLogKey(1));
          await crash(raw);
        }
        const r = await reopen(dir);
        await r.store.close();
        rmSync(dir, { recursive: true, force: true });
        return r.missed.length === 0;
      }), { numRuns: 25 });
  });
});
