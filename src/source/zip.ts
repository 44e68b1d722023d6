import { once } from 'node:events';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { OptoutError } from '../errors.js';
import { printable } from '../report/printable.js';

/** A ZIP archive starts with a local file header (an empty one with its end record). */
export function isZip(head: Uint8Array): boolean {
  return head[0] === 0x50 && head[1] === 0x4b && (head[2] === 0x03 || head[2] === 0x05) && (head[3] === 0x04 || head[3] === 0x06);
}

/**
 * Members that are a provider's list of subscribed contacts, not of opt-outs: Mailchimp's
 * audience export holds `subscribed_members_export_<id>.csv` beside the unsubscribed and the
 * cleaned members.
 */
const SUBSCRIBED_MEMBERS = /(^|\/)subscribed_members_export[^/]*$/i;

/** Bytes of a member read to tell text from binary. */
const SNIFF_BYTES = 4096;

export interface ZipMember {
  bytes: AsyncIterable<Buffer>;
  /** The member read. */
  name: string;
  /** Members passed over because they list subscribed contacts. */
  subscribed: string[];
  /** Releases the archive, its member read to the end or not. */
  close(): void;
}

async function entries(zip: ZipFile): Promise<Entry[]> {
  const out: Entry[] = [];
  for (;;) {
    zip.readEntry();
    const next = await Promise.race([once(zip, 'entry'), once(zip, 'end').then(() => undefined)]);
    if (next === undefined) return out;
    out.push(next[0] as Entry);
  }
}

async function readHead(zip: ZipFile, entry: Entry): Promise<Buffer> {
  const stream = await zip.openReadStreamPromise(entry);
  const parts: Buffer[] = [];
  let length = 0;
  for await (const part of stream as AsyncIterable<Buffer>) {
    parts.push(part);
    length += part.length;
    if (length >= SNIFF_BYTES) break;
  }
  stream.destroy();
  return Buffer.concat(parts, length).subarray(0, SNIFF_BYTES);
}

/** Text, not binary: no NUL byte (UTF-16 members are not read from a ZIP). */
const isText = (head: Buffer): boolean => head.length > 0 && !head.includes(0);

/** The archive's files, and of those its candidate lists (text, not subscribed contacts) and its lists of subscribed contacts. */
async function listMembers(zip: ZipFile, files: readonly Entry[]): Promise<{ candidates: Entry[]; subscribed: string[] }> {
  const candidates: Entry[] = [];
  const subscribed: string[] = [];
  for (const e of files) {
    if (!isText(await readHead(zip, e))) continue;
    if (SUBSCRIBED_MEMBERS.test(e.fileName)) subscribed.push(e.fileName);
    else candidates.push(e);
  }
  return { candidates, subscribed };
}

/** Files of the archive: no folders, no macOS resource forks. */
async function filesOf(zip: ZipFile): Promise<Entry[]> {
  return (await entries(zip)).filter((e) => !e.fileName.endsWith('/') && !e.fileName.startsWith('__MACOSX/'));
}

async function openZip(path: string, label: string): Promise<ZipFile> {
  try {
    return await yauzl.openPromise(path, { lazyEntries: true, autoClose: false });
  } catch (cause) {
    throw new OptoutError('OPTOUT_ERR_SOURCE', `${label} is not a valid ZIP archive: ${(cause as Error).message}`, { cause });
  }
}

/** The lists of a ZIP archive and its lists of subscribed contacts, by name; undefined for a file that is not a ZIP archive. */
export async function zipLists(path: string, label: string): Promise<{ lists: string[]; subscribed: string[] } | undefined> {
  const fd = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    await fd.read(head, 0, 4, 0);
    if (!isZip(head)) return undefined;
  } finally {
    await fd.close();
  }
  const zip = await openZip(path, label);
  try {
    const { candidates, subscribed } = await listMembers(zip, await filesOf(zip));
    return { lists: candidates.map((e) => e.fileName), subscribed };
  } finally {
    zip.close();
  }
}

/**
 * The list member of a ZIP archive: the one given (`member`: its path in the archive, or its
 * file name), else the one member whose content is text and that is not a list of subscribed
 * contacts. Folders, macOS resource forks and binary members are never lists.
 *
 * @throws OptoutError OPTOUT_ERR_ZIP_MEMBER when `member` names none, or when no member or
 *   several members could be the list (listing them); OPTOUT_ERR_SOURCE for a broken archive.
 */
export async function openZipMember(path: string, label: string, member: string | undefined): Promise<ZipMember> {
  const zip = await openZip(path, label);
  try {
    const files = await filesOf(zip);
    const { candidates, subscribed } = member === undefined ? await listMembers(zip, files) : { candidates: [], subscribed: [] };
    const names = files.map((e) => e.fileName);
    const list = (shown: string[]): string => shown.slice(0, 20).map((n) => `\`${printable(n, 120)}\``).join(', ') +
      (shown.length > 20 ? ` and ${shown.length - 20} more` : '');
    let chosen: Entry | undefined;
    if (member !== undefined) {
      chosen = files.find((e) => e.fileName === member) ?? files.find((e) => e.fileName.split('/').at(-1) === member);
      if (chosen === undefined) {
        throw new OptoutError('OPTOUT_ERR_ZIP_MEMBER', `${label} has no member \`${printable(member, 120)}\`. Its members: ${list(names)}.`);
      }
    } else {
      if (candidates.length !== 1) {
        throw new OptoutError('OPTOUT_ERR_ZIP_MEMBER', candidates.length === 0
          ? `${label} holds no list: no member is a text file${subscribed.length > 0 ? ' other than lists of subscribed contacts' : ''}. Its members: ${list(names)}.`
          : `${label} holds several lists: ${list(candidates.map((e) => e.fileName))}. Import them one at a time with --member <name>.`);
      }
      chosen = candidates[0] as Entry;
    }
    const stream: Readable = await zip.openReadStreamPromise(chosen);
    const name = chosen.fileName;
    const bytes = (async function* (): AsyncGenerator<Buffer> {
      try {
        for await (const part of stream as AsyncIterable<Buffer>) yield part;
      } catch (cause) {
        throw new OptoutError('OPTOUT_ERR_SOURCE', `Reading ${name} from ${label} failed: ${(cause as Error).message}`, { cause });
      } finally {
        stream.destroy();
        zip.close();
      }
    })();
    return {
      bytes, name, subscribed, close: () => {
        stream.destroy();
        zip.close();
      },
    };
  } catch (err) {
    zip.close();
    throw err;
  }
}
