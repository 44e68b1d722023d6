import type { Command } from 'commander';
import { OptoutError, describeValue } from '../../errors.js';
import { getLinkSettings, listLinkKeys, rotateLinkKey, setLinkBaseUrl, type LinkKeyInfo } from '../../links/keys.js';
import { unsubscribeLink } from '../../links/links.js';
import { withStore } from '../args.js';

/** `180` or `180d`: days. */
function parseDays(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*d?\s*$/.exec(value);
  const n = m?.[1] === undefined ? NaN : Number(m[1]);
  if (!Number.isFinite(n) || n > 3650) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`--retire-after\` to be a number of days such as 180 or 180d (at most 3650), got ${describeValue(value)}`);
  }
  return n;
}

function describe(k: LinkKeyInfo): string {
  return [k.id, k.createdAt, k.current ? 'current' : k.retiresAt === null ? 'valid' : `retires ${k.retiresAt}`].join('  ');
}

export function registerLinks(program: Command): void {
  const links = program.command('links')
    .description('one-click unsubscribe links (RFC 8058) that optout serve answers at /u/<token>');

  links.command('create <email>')
    .description('make an unsubscribe link for an address; prints the URL and the two headers to put on the message')
    .option('--unit <id>', 'the business unit the link unsubscribes from (default: account-wide)')
    .option('--campaign <label>', 'a label kept in the audit record when the link is used')
    .option('--base-url <url>', 'where optout serve is reached, e.g. https://mail.example.com (default: the one set with links config)')
    .option('--json', 'print { url, token, headers, ... } as JSON')
    .action(async (email: string, flags: { unit?: string; campaign?: string; baseUrl?: string; json?: boolean }, cmd: Command) => {
      const link = await withStore(cmd, 'optout links create', (store) =>
        unsubscribeLink(store, email, { unit: flags.unit, campaign: flags.campaign, baseUrl: flags.baseUrl, actor: 'cli' }), { create: true });
      if (flags.json) {
        process.stdout.write(JSON.stringify(link) + '\n');
        return;
      }
      process.stdout.write(`${link.url}\n\n`);
      for (const [name, value] of Object.entries(link.headers)) process.stdout.write(`${name}: ${value}\n`);
    });

  links.command('config')
    .description('show or set the base URL of new links')
    .option('--base-url <url>', 'an https URL where optout serve answers /u/<token> (http only on loopback)')
    .option('--json', 'print JSON')
    .action(async (flags: { baseUrl?: string; json?: boolean }, cmd: Command) => {
      const settings = await withStore(cmd, 'optout links config', (store) =>
        flags.baseUrl === undefined ? getLinkSettings(store) : setLinkBaseUrl(store, flags.baseUrl, 'cli'), { create: flags.baseUrl !== undefined });
      if (flags.json) process.stdout.write(JSON.stringify(settings ?? { baseUrl: null }) + '\n');
      else process.stdout.write(settings === undefined ? 'no base URL: set one with --base-url\n' : `base URL ${settings.baseUrl}\n`);
    });

  links.command('rotate-key')
    .description('add the key new links are made with; links of the keys in use now keep working for --retire-after days')
    .option('--retire-after <days>', 'days until the keys in use now are refused', '180')
    .option('--json', 'print JSON')
    .action(async (flags: { retireAfter: string; json?: boolean }, cmd: Command) => {
      const retireAfterDays = parseDays(flags.retireAfter);
      const r = await withStore(cmd, 'optout links rotate-key', (store) => rotateLinkKey(store, { retireAfterDays, actor: 'cli' }), { create: true });
      if (flags.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        process.stdout.write(`new key ${r.key.id}\n`);
        for (const k of r.retiring) process.stdout.write(`key ${k.id} retires ${k.retiresAt ?? ''}\n`);
      }
    });

  links.command('keys')
    .description('list the link keys (no secrets)')
    .option('--json', 'print a JSON array')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const keys = await withStore(cmd, 'optout links keys', (store) => listLinkKeys(store));
      if (flags.json) process.stdout.write(JSON.stringify(keys) + '\n');
      else for (const k of keys) process.stdout.write(describe(k) + '\n');
    });
}
