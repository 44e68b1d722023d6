import type { OptoutServer } from '../../src/api/server.js';

export interface ReplicaAnswer {
  status: number;
  json: Record<string, unknown>;
  /** `X-Optout-Seq`, when the answer has one. */
  seq: string | undefined;
}

/**
 * A request to an in-process replica with key `key`; a 503 OPTOUT_ERR_STALE (a replica whose last
 * proof of freshness lapsed on a busy machine: "ask again") is asked again a bounded number of
 * times, unless `stale` says the test wants to see it.
 */
export async function callReplica(app: OptoutServer, method: string, path: string, key: string, body?: unknown, stale?: 'keep'): Promise<ReplicaAnswer> {
  for (let attempt = 0; ; attempt++) {
    const res = await app.inject({
      method: method as 'GET', url: path, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    const seq = res.headers['x-optout-seq'];
    const answer = { status: res.statusCode, json: res.body === '' ? {} : (JSON.parse(res.body) as Record<string, unknown>), seq: typeof seq === 'string' ? seq : undefined };
    if (stale === 'keep' || answer.json['code'] !== 'OPTOUT_ERR_STALE' || attempt === 100) return answer;
    await new Promise((r) => setTimeout(r, 20));
  }
}
