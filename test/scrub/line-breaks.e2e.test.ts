/**
 * One rule for line breaks, end to end: LF, CRLF and a lone CR outside quotes each end a record,
 * in import and in scrub, as Python's csv module (and Excel) read them. A lone CR read as text
 * glued a suppressed row to the row before it: scrub copied it into the eligible file, where
 * every CSV reader sees it as a row of its own, and import skipped the address.
 *
 * The oracle is Python's csv module reading the files back: every row it finds in an eligible
 * file must be eligible for the store, and its row counts must be the report's. (A child
 * process, so this tier; the import's side is in line-breaks.test.ts.)
 */
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, SAMPLE, removeTempDirs, tempDir } from '../helpers.js';

// Workers run from the build, so the built entry point is under test.
const { runImport, runScrub, openStore } = await import(join(ROOT, 'dist/src/index.js')) as typeof import('../../src/index.js');

afterAll(removeTempDirs);

/** The records of each file as Python's csv module reads them (empty lines give none), in one python3 run. */
function pythonRows(paths: string[]): string[][][] {
  const script = [
    'import csv, json, sys',
    'out = []',
    'for path in json.load(sys.stdin):',
    '    with open(path, newline="", encoding="utf-8") as f:',
    '        out.append([row for row in csv.reader(f) if row])',
    'json.dump(out, sys.stdout)',
  ].join('\n');
  return JSON.parse(execFileSync('python3', ['-c', script], { input: JSON.stringify(paths), maxBuffer: 1 << 28 }).toString('utf8')) as string[][][];
}

let db: string;
let work: string;

beforeAll(async () => {
  work = await tempDir('optout-line-breaks-');
  db = join(work, 'db');
  // The README's sample store: jane.doe@example.com and six more, account-wide.
  expect((await runImport({ source: { kind: 'file', path: SAMPLE }, db, confirm: { mode: 'yes' } })).added).toBe(7);
});

async function scrub(name: string, list: string | Buffer): Promise<{ report: Awaited<ReturnType<typeof runScrub>>; out: string; removed: string }> {
  const path = join(work, `${name}.csv`);
  await writeFile(path, list);
  const out = join(work, `${name}.eligible.csv`);
  const removed = join(work, `${name}.removed.csv`);
  const report = await runScrub({ source: { kind: 'file', path }, db, out, removed, threads: 1, chunkBytes: 1024 });
  return { report, out, removed };
}

describe('scrub: a lone CR ends a row', () => {
  it('removes the suppressed row that follows a lone CR (the mixed list that let it through)', async () => {
    const list = 'email,name\nok1@fresh.example.com,Ok One\rjane.doe@example.com,Jane\nok2@fresh.example.com,Ok Two\n';
    const { report, out, removed } = await scrub('mixed', list);
    expect(report).toMatchObject({ rows: 3, eligible: 2, suppressed: 1, invalid: 0 });
    expect(await readFile(out, 'utf8')).toBe('email,name\nok1@fresh.example.com,Ok One\rok2@fresh.example.com,Ok Two\n');
    expect(await readFile(removed, 'utf8')).toBe('email,name,optout_reason,optout_detail\njane.doe@example.com,Jane,suppressed,*\n');
    const [eligibleRows] = pythonRows([out]);
    expect(eligibleRows?.map((r) => r[0])).toEqual(['email', 'ok1@fresh.example.com', 'ok2@fresh.example.com']);
  });

  it('on generated send lists, no row a standard CSV reader finds in the eligible file is suppressed', async () => {
    const suppressed = ['jane.doe@example.com', ' JANE.DOE@example.com', 'John.Smith@example.org', 'first.last@gmail.com',
      'firstlast+x@googlemail.com', 'Ana Lima <ana.lima@example.net>', 'sales@acme-widgets.co.uk', 'müller@bücher.de'];
    const fresh = ['ok@fresh.example.com', 'other@fresh.example.org', 'jane.doe@example.co', 'not-an-email', ''];
    const br = fc.constantFrom('\n', '\r\n', '\r');
    const text = fc.constantFrom('Ann', 'Bo b', 'x', '');
    // A name cell: plain, quoted with delimiters and line breaks inside, or raw with a line break in it.
    const name = fc.oneof(
      text,
      fc.tuple(text, br, text).map(([a, b, c]) => `"${a},${b}""${c}"`),
      fc.tuple(text, br).map(([a, b]) => `${a}${b}`),
    );
    const email = fc.oneof(fc.constantFrom(...suppressed), fc.constantFrom(...fresh)).map((e) => (/[,<\s]/.test(e) ? `"${e}"` : e));
    const list = fc.record({
      header: br,
      rows: fc.array(fc.record({ email, name, br, blank: fc.constantFrom('', '', '', '\n', '\r', '\r\n') }), { minLength: 1, maxLength: 80 }),
      lastBreak: fc.boolean(),
    }).map((l) => 'email,name' + l.header + l.rows.map((r, i) =>
      r.blank + r.email + ',' + r.name + (i < l.rows.length - 1 || l.lastBreak ? r.br : '')).join(''));

    // Each scrub starts a worker pool: 50 lists of up to 80 rows keep this within seconds.
    const lists = fc.sample(list, { numRuns: 50, seed: 10 });
    const runs = [];
    for (const [i, l] of lists.entries()) runs.push({ input: join(work, `gen-${i}.csv`), ...await scrub(`gen-${i}`, l) });
    const read = pythonRows(runs.flatMap((r) => [r.input, r.out, r.removed]));

    const store = await openStore(db);
    let suppressedSeen = 0;
    try {
      for (const [i, r] of runs.entries()) {
        const [input, eligible, removed] = [0, 1, 2].map((k) => read[i * 3 + k] as string[][]) as [string[][], string[][], string[][]];
        for (const row of eligible.slice(1)) {
          const decision = await store.check({ email: row[0] ?? '' });
          expect(decision.eligible, `${JSON.stringify(lists[i])}: ${JSON.stringify(row)}`).toBe(true);
        }
        expect(eligible.length - 1, JSON.stringify(lists[i])).toBe(r.report.eligible);
        expect(removed.length - 1, JSON.stringify(lists[i])).toBe(r.report.suppressed + r.report.invalid);
        expect(input.length - 1, JSON.stringify(lists[i])).toBe(r.report.rows);
        suppressedSeen += r.report.suppressed;
      }
    } finally {
      await store.close();
    }
    expect(suppressedSeen).toBeGreaterThan(lists.length);
  });
});
