import { describe, expect, it } from 'vitest';
import { OptoutError, exitCodeFor, type OptoutErrorCode } from '../../src/errors.js';
import { validateSyncUrl, type AddressPolicyOptions } from '../../src/fetch/url-policy.js';

function errorOf(fn: () => unknown): OptoutError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OptoutError) return err;
    throw err;
  }
  throw new Error('expected an OptoutError, nothing was thrown');
}

function codeOf(url: unknown, options?: AddressPolicyOptions): OptoutErrorCode {
  return errorOf(() => validateSyncUrl(url as string, options)).code;
}

/** Refused by the default policy, before any lookup or connection. */
const REFUSED: readonly string[] = [
  'http://0177.0.0.1/',
  'http://2130706433/',
  'http://[::ffff:7f00:1]/',
  'http://[0:0:0:0:0:ffff:127.0.0.1]/',
  'http://localhost./',
  'http://[::1]/',
  'http://[::]/',
  'http://localhost/',
  'http://LOCALHOST:8080/list.csv',
  'http://ＬＯＣＡＬＨＯＳＴ/',
  'http://%6c%6fcalhost/',
  'http://api.localhost/',
  'http://127.1/',
  'http://0x7f.0.0.1/',
  'http://0/',
  'http://0.0.0.0:8080/',
  'http://10.1.2.3/',
  'http://172.16.5.4/',
  'http://192.168.0.1/',
  'http://100.64.1.1/',
  'http://169.254.169.254/latest/meta-data/',
  'http://[::ffff:a9fe:a9fe]/',
  'http://[64:ff9b::a9fe:a9fe]/',
  'http://[fe80::1]/',
  'http://[fd00::1]/',
  'http://[ff02::1]/',
  'http://224.0.0.1/',
  'http://255.255.255.255/',
  'http://metadata.google.internal/computeMetadata/v1/',
  'http://metadata.google.internal./',
  'http://instance-data.ec2.internal/',
  'http://metadata/',
  'http://intranet/',
  'http://printer.local/',
  'http://router.home.arpa/',
  'ftp://example.com/list.csv',
  'file:///etc/passwd',
  'gopher://example.com/',
  'data:text/plain,a@example.com',
  'javascript:alert(1)',
  'ws://example.com/',
  'https://user:secret@example.com/list.csv',
  'https://user@example.com/',
  'https://:secret@example.com/',
];

const INVALID: readonly unknown[] = [
  '',
  'not a url',
  '/relative/list.csv',
  'example.com/list.csv',
  'http://',
  'http://[fe80::1%25eth0]/',
  'http://1.2.3.4.5/',
  'http://exa mple.com/',
  42,
  null,
  undefined,
];

describe('validateSyncUrl', () => {
  it.each(REFUSED)('refuses %s', (url) => {
    expect(codeOf(url)).toBe('OPTOUT_ERR_URL_REFUSED');
  });

  it.each(INVALID)('calls %j not a URL', (url) => {
    expect(codeOf(url)).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  it.each([
    ['https://example.com/list.csv', 'https://example.com/list.csv'],
    ['http://lists.example.org:8080/export?since=2024&format=csv', 'http://lists.example.org:8080/export?since=2024&format=csv'],
    ['HTTPS://Example.COM/a#section', 'https://example.com/a'],
    ['https://example.com./list.csv', 'https://example.com./list.csv'],
    ['https://1.1.1.1/list.csv', 'https://1.1.1.1/list.csv'],
    ['http://[2606:4700::1]:8443/', 'http://[2606:4700::1]:8443/'],
    ['https://xn--bcher-kva.example/liste.csv', 'https://xn--bcher-kva.example/liste.csv'],
    ['https://bücher.example/liste.csv', 'https://xn--bcher-kva.example/liste.csv'],
  ])('accepts %s', (url, href) => {
    expect(validateSyncUrl(url).href).toBe(href);
  });

  it('accepts a URL object and returns a copy', () => {
    const input = new URL('https://example.com/list.csv#x');
    const out = validateSyncUrl(input);
    expect(out.href).toBe('https://example.com/list.csv');
    expect(input.hash).toBe('#x');
  });

  it('with allowPrivate, allows local hosts but still only http(s) without credentials', () => {
    for (const url of ['http://localhost/', 'http://127.0.0.1:9/', 'http://[::1]/', 'http://10.0.0.1/', 'http://metadata/']) {
      expect(validateSyncUrl(url, { allowPrivate: true }).href).toBe(url);
    }
    expect(codeOf('ftp://localhost/', { allowPrivate: true })).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(codeOf('http://u:p@localhost/', { allowPrivate: true })).toBe('OPTOUT_ERR_URL_REFUSED');
  });

  it('asks allowAddress about literal addresses with their port; names stay checked', () => {
    const seen: Array<[string, number]> = [];
    const allowAddress = (address: string, port: number): boolean => {
      seen.push([address, port]);
      return address === '127.0.0.1' && port === 8080;
    };
    expect(validateSyncUrl('http://127.0.0.1:8080/', { allowAddress }).port).toBe('8080');
    expect(codeOf('http://127.0.0.1:8081/', { allowAddress })).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(codeOf('http://[::1]:8080/', { allowAddress })).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(codeOf('http://localhost:8080/', { allowAddress })).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(codeOf('https://1.1.1.1/', { allowAddress })).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(seen).toEqual([['127.0.0.1', 8080], ['127.0.0.1', 8081], ['::1', 8080], ['1.1.1.1', 443]]);
  });

  it('validates its options', () => {
    expect(codeOf('https://example.com/', { allowPrivate: 'yes' as never })).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(codeOf('https://example.com/', { allowAddress: true as never })).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(codeOf('https://example.com/', { allowPrivate: true, allowAddress: () => true })).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  it('never repeats credentials or the query in a message', () => {
    const withPassword = errorOf(() => validateSyncUrl('https://user:hunter2@example.com/list.csv'));
    expect(withPassword.message).not.toContain('hunter2');
    const withToken = errorOf(() => validateSyncUrl('http://10.0.0.1/list.csv?token=s3cr3t'));
    expect(withToken.message).toContain('http://10.0.0.1/list.csv');
    expect(withToken.message).not.toContain('s3cr3t');
  });

  it('maps the refusal and the size limit to exit code 2', () => {
    expect(exitCodeFor(new OptoutError('OPTOUT_ERR_URL_REFUSED', 'x'))).toBe(2);
    expect(exitCodeFor(new OptoutError('OPTOUT_ERR_FETCH_TOO_LARGE', 'x'))).toBe(2);
    expect(exitCodeFor(new OptoutError('OPTOUT_ERR_FETCH', 'x'))).toBe(1);
    expect(exitCodeFor(new OptoutError('OPTOUT_ERR_FETCH_TIMEOUT', 'x'))).toBe(1);
  });
});
