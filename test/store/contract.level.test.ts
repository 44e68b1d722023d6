import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore } from '../../src/store/level/level-store.js';
import { storeContract } from './contract.js';

storeContract('LevelStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'optout-contract-'));
  const store = await LevelStore.open(dir);
  return { store, cleanup: async () => { await store.close(); await rm(dir, { recursive: true, force: true }); } };
}, { syncLookups: true, feed: false, exclusive: true, settlesChunks: false });
