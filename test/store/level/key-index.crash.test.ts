/**
 * The key index after random sessions, with and without the index, some of them cut off as by
 * SIGKILL, and a snapshot kept, removed or damaged: loaded or scanned, it answers every key as
 * LevelDB does.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LevelStore } from '../../../src/store/level/level-store.js';
import { removeTempDirs, tempDir } from '../../helpers.js';
import { hashed, removeKey } from '../ledger-writes.js';
import { commit, crash } from './sessions.js';

afterEach(async () => {
  await removeTempDirs();
});

describe('loading the key index', () => {
  it('answers every key as LevelDB does, whatever crashed and whatever happened to the snapshot (property)', async () => {
    const scope = fc.constantFrom('*', 'emea');
    const step = fc.record({ scope, keys: fc.uniqueArray(fc.emailAddress(), { minLength: 0, maxLength: 12 }), removals: fc.nat({ max: 3 }) });
    const sessionArb = fc.record({ indexed: fc.boolean(), steps: fc.array(step, { minLength: 1, maxLength: 3 }), crashed: fc.boolean() });
    let snapshotLoads = 0;
    await fc.assert(fc.asyncProperty(fc.array(sessionArb, { minLength: 1, maxLength: 4 }), fc.constantFrom('keep', 'remove', 'flip'), async (sessions, fate) => {
      const dir = await tempDir();
      const written = new Set<string>();
      for (const s of sessions) {
        const store = await LevelStore.open(dir);
        if (s.indexed) expect(await store.indexKeys()).toBe(true);
        for (const st of s.steps) {
          await commit(store, st.scope, st.keys);
          for (const key of st.keys) written.add(key);
          // Removed through the store's single changes: the index's slots become unsure.
          for (const key of st.keys.slice(0, st.removals)) await removeKey(store, st.scope, key);
        }
        if (s.crashed) await crash(store);
        else await store.close();
      }
      const path = join(dir, 'key-index.snapshot');
      if (fate === 'remove' && existsSync(path)) rmSync(path);
      if (fate === 'flip' && existsSync(path)) {
        const snap = readFileSync(path);
        snap[snap.length - 5] = (snap[snap.length - 5] as number) ^ 0x10;
        writeFileSync(path, snap);
      }
      const store = await LevelStore.open(dir);
      try {
        expect(await store.indexKeys()).toBe(true);
        if (store.keyIndexSource === 'snapshot') snapshotLoads++;
        for (const s of ['*', 'emea']) {
          for (const key of written) {
            const { h1, h2 } = hashed(key);
            const stored = store.entrySync(s, key, h1);
            const got = store.matchSync(s, key, h1, h2);
            expect(got?.jobId, `${s} ${key}`).toBe(stored?.jobId);
          }
        }
      } finally {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }), {
      numRuns: 40,
      // Besides the random runs (about one in twelve ends with a snapshot to load): one that
      // surely loads the snapshot, one that crashes after changing what it saved.
      examples: [
        [[{ indexed: true, steps: [{ scope: '*', keys: ['a@x.org', 'b@x.org'], removals: 1 }], crashed: false }], 'keep'],
        [[{ indexed: true, steps: [{ scope: '*', keys: ['a@x.org'], removals: 0 }], crashed: false },
          { indexed: true, steps: [{ scope: 'emea', keys: ['c@x.org'], removals: 0 }], crashed: true }], 'keep'],
      ],
    });
    // Not vacuous: the snapshot was loaded, not only scanned around.
    expect(snapshotLoads).toBeGreaterThan(0);
  }, 120_000);
});
