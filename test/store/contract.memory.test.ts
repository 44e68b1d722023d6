import { MemoryStore } from '../../src/store/memory/memory-store.js';
import { storeContract } from './contract.js';

storeContract('MemoryStore', async () => ({ store: new MemoryStore(), cleanup: async () => {} }), { syncLookups: true, feed: true, exclusive: true, settlesChunks: false });
