import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { OptoutError, describeValue } from '../../errors.js';
import { addEndpoint, endpointUrl, listEndpoints, removeEndpoint, type EndpointSummary } from '../../inbound/endpoints.js';
import { normalizeBaseUrl } from '../../links/keys.js';
import { withStore } from '../args.js';

/** A secret given as `@file` is read from the file, so that it stays out of shell history and `ps`. */
function valueOrFile(flag: string, value: string | undefined): string | undefined {
  if (value === undefined || !value.startsWith('@')) return value;
  return readText(flag, value.slice(1)).trim();
}

function readText(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Cannot read the file of \`${flag}\`, ${describeValue(path)}: ${(cause as Error).message}`, { cause });
  }
}

function describe(e: EndpointSummary): string {
  return [e.id, e.provider, e.unit ?? '*', e.path, e.credential, e.createdAt].join('  ');
}

interface AddFlags {
  unit?: string; signingKey?: string; publicKey?: string; basicAuth?: string; snsCert?: string; topicArn?: string; baseUrl?: string; json?: boolean;
}

export function registerInbound(program: Command): void {
  const inbound = program.command('inbound')
    .description('endpoints where ESPs (sns, sendgrid, mailgun, postmark) post bounces and complaints, which become suppressions');

  inbound.command('add <provider>')
    .description('add an endpoint for sns, sendgrid, mailgun or postmark and print the URL to paste into the provider')
    .option('--unit <id>', 'business unit its events suppress in (default: account-wide)')
    .option('--signing-key <key|@file>', 'mailgun: the HTTP webhook signing key')
    .option('--public-key <key|@file>', 'sendgrid: the signed Event Webhook\'s verification key')
    .option('--basic-auth <user:password|@file>', 'postmark: the credentials put in the webhook URL (default: made up and printed once)')
    .option('--sns-cert <file>', 'sns: pin this PEM signing certificate instead of fetching the one the message names')
    .option('--topic-arn <arn>', 'sns: take messages from this topic only (recommended: anyone can have SNS sign messages of a topic of their own)')
    .option('--base-url <url>', 'the server\'s public URL, to print the whole endpoint URL (default: the one of optout links config)')
    .option('--json', 'print JSON')
    .action(async (provider: string, flags: AddFlags, cmd: Command) => {
      // Checked before anything is stored: a refused URL must not leave an endpoint behind.
      if (flags.baseUrl !== undefined) normalizeBaseUrl(flags.baseUrl);
      const { added, url } = await withStore(cmd, 'optout inbound add', async (store) => {
        const made = await addEndpoint(store, {
          provider, unit: flags.unit, actor: 'cli',
          signingKey: valueOrFile('--signing-key', flags.signingKey),
          publicKey: valueOrFile('--public-key', flags.publicKey),
          basicAuth: valueOrFile('--basic-auth', flags.basicAuth),
          snsCert: flags.snsCert === undefined ? undefined : readText('--sns-cert', flags.snsCert),
          topicArn: flags.topicArn,
        });
        return { added: made, url: await endpointUrl(store, made.endpoint, flags.baseUrl, made.basicAuth) };
      }, { create: true });
      if (flags.json) {
        process.stdout.write(JSON.stringify({ ...added.endpoint, url, ...(added.basicAuth === undefined ? {} : { basicAuth: added.basicAuth }) }) + '\n');
        return;
      }
      process.stdout.write(`${url}\n`);
      process.stderr.write(`inbound endpoint ${added.endpoint.id} (${added.endpoint.provider}, unit ${added.endpoint.unit ?? '*'})\n`);
      if (added.basicAuth !== undefined) process.stderr.write(`basic auth ${added.basicAuth}: shown once, put it in the webhook URL (https://user:password@host/...)\n`);
    });

  inbound.command('list')
    .description('list endpoints (secrets masked)')
    .option('--json', 'print a JSON array')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const list = await withStore(cmd, 'optout inbound list', (store) => listEndpoints(store));
      if (flags.json) process.stdout.write(JSON.stringify(list) + '\n');
      else for (const e of list) process.stdout.write(describe(e) + '\n');
    });

  inbound.command('remove <id>')
    .description('remove an endpoint: its provider\'s next deliveries get a 404')
    .option('--json', 'print JSON')
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => {
      const removed = await withStore(cmd, 'optout inbound remove', (store) => removeEndpoint(store, id));
      if (flags.json) process.stdout.write(JSON.stringify(removed) + '\n');
      else process.stdout.write(`removed ${removed.id} (${removed.provider})\n`);
    });
}
