/**
 * Opens the folder of an API replica's view of a ledger: a LevelDB store that follows the
 * ledger's feed (see follower.ts). A new folder becomes the view; a view whose first load was
 * cut off is emptied and loaded again, since a part of a snapshot is no state of the ledger.
 */
import { rm } from 'node:fs/promises';
import { LevelStore } from '../store/level/level-store.js';
import type { Ledger } from '../store/store.js';

const PURPOSE = 'optout serve (API replica view)';

export async function openReplicaView(dir: string, ledger: Ledger): Promise<LevelStore> {
  const feedId = await ledger.feedId();
  let view = await LevelStore.open(dir, { purpose: PURPOSE, create: true, view: true });
  try {
    const following = view.following;
    if (following !== undefined && following.feedId === feedId && !following.complete) {
      // Only a folder this code made a view of is removed: its `following` record says so.
      await view.close();
      await rm(view.dir, { recursive: true, force: true });
      view = await LevelStore.open(dir, { purpose: PURPOSE, create: true, view: true });
    }
    await view.startFollowing(feedId);
    return view;
  } catch (err) {
    await view.close();
    throw err;
  }
}
