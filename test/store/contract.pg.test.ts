import { migrate } from '../../src/store/pg/migrate.js';
import { PgLedger } from '../../src/store/pg/pg-ledger.js';
import { storeContract } from './contract.js';
import { resetDatabase, withPgDatabase } from './pg-cluster.js';

await withPgDatabase('store contract: PgLedger', (url) => {
  storeContract('PgLedger', async () => {
    await resetDatabase(url);
    await migrate(url);
    const store = await PgLedger.open(url);
    return { store, cleanup: () => store.close() };
  }, { syncLookups: false, feed: true, exclusive: false, settlesChunks: true, chunksInFlight: 2 });
});
