/**
 * The server's key cache: a key that matched once is compared byte for byte on later requests
 * instead of hashed again; that shortcut must never accept what the full check refuses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyRing, createKey, revokeKey } from '../../src/auth/api-keys.js';
import { LevelStore } from '../../src/store/level/level-store.js';
import { removeTempDirs, tempDir } from '../helpers.js';

let store: LevelStore;

beforeAll(async () => {
  store = await LevelStore.open(await tempDir());
});
afterAll(async () => {
  await store.close();
  await removeTempDirs();
});

/** The key with one character of its secret changed: same id, same length. */
function tampered(key: string): string {
  const last = key.at(-1) === 'A' ? 'B' : 'A';
  return key.slice(0, -1) + last;
}

describe('KeyRing', () => {
  it('accepts a key again from its cache, and refuses another secret with the same id before and after', async () => {
    const { id, key } = await createKey(store, { scope: 'check', unit: 'U1' });
    const ring = new KeyRing(store);
    expect(ring.verify(tampered(key))).toBeUndefined();
    const first = ring.verify(key);
    expect(first).toMatchObject({ id, scope: 'check', unit: 'U1' });
    expect(ring.verify(key)).toEqual(first);
    expect(ring.verify(tampered(key))).toBeUndefined();
    expect(ring.verify(key + 'x')).toBeUndefined();
    expect(ring.verify(key.slice(0, -1))).toBeUndefined();
    // The cached record is shared between requests: no caller may change it.
    expect(Object.isFrozen(ring.verify(key))).toBe(true);
  });

  it('refuses a key revoked after it was cached, whether the store says so or the server forgets it', async () => {
    const a = await createKey(store, { scope: 'check' });
    const b = await createKey(store, { scope: 'admin' });
    const ring = new KeyRing(store);
    expect(ring.verify(a.key)?.id).toBe(a.id);
    expect(ring.verify(b.key)?.id).toBe(b.id);
    await revokeKey(store, a.id);
    expect(ring.verify(a.key)).toBeUndefined();
    expect(ring.verify(b.key)?.id).toBe(b.id);

    // A view whose version does not move (a revocation the server makes itself): forget() drops it.
    const frozen = { apiKeySync: (id: string) => store.apiKeySync(id), apiKeysVersion: 7 };
    const ring2 = new KeyRing(frozen);
    expect(ring2.verify(b.key)?.id).toBe(b.id);
    await revokeKey(store, b.id);
    expect(ring2.verify(b.key)?.id).toBe(b.id);
    ring2.forget(b.id);
    expect(ring2.verify(b.key)).toBeUndefined();
  });
});
