import { describe, expect, it } from 'vitest';
import {
  ADDRESS_REASONS,
  POLICY_VERSION,
  normalizeEmail,
  type AddressReason,
} from '../../src/policy/email.js';

/** The result fields of a valid input, or fails the test with the reason it got instead. */
function accept(input: string): { address: string; key: string } {
  const r = normalizeEmail(input);
  if (!r.valid) throw new Error(`expected ${JSON.stringify(input)} to be valid, got ${r.reason}`);
  return { address: r.address, key: r.key };
}

function reasonOf(input: string): AddressReason | 'VALID' {
  const r = normalizeEmail(input);
  return r.valid ? 'VALID' : r.reason;
}

const a = (n: number, ch = 'a'): string => ch.repeat(n);

/** A domain of exactly `length` octets: 63-letter labels, then a shorter last one (all letters). */
function domainOf(length: number): string {
  const labels: string[] = [];
  let left = length;
  let letter = 0;
  while (left > 0) {
    const room = labels.length === 0 ? left : left - 1; // a dot before every label but the first
    const size = Math.min(63, room);
    // Keep the last label at least 2 long (a valid TLD).
    const take = room - size === 1 ? size - 1 : size;
    labels.push(a(take, String.fromCharCode(0x62 + (letter++ % 24))));
    left -= take + (labels.length === 1 ? 0 : 1);
  }
  const d = labels.join('.');
  if (d.length !== length) throw new Error(`domainOf(${length}) built ${d.length}`);
  return d;
}

/** At least one input per reason code; each must produce exactly that code. */
const REASON_EXAMPLES: Record<AddressReason, string[]> = {
  EMPTY: ['', '   ', ' \t\r\n\u00a0\ufeff', '<>', 'mailto:', 'Jane < >', 'mailto:?subject=x'],
  ANGLE_BRACKETS: [
    '<unclosed@example.org',
    'closed@example.org>',
    '<a@example.org> trailing',
    'a<b@example.org',
    'Jane <j@example.org>>',
    'a <b> <c@example.org>',
    '<\u0338me@example.com', // renders as `≮me@example.com`
  ],
  INVALID_CHARACTER: [
    'Jane Doe jane@example.org',
    'jane@exa mple.org',
    'ja\u00a0ne@example.org', // NBSP inside: only the ends are trimmed
    'jane\u200b@example.org', // zero-width space (format)
    '\u200bjane@example.org', // not trimmed: ZWSP is not white space
    'ja\u202ene@example.org', // bidi override
    'ja\u0000ne@example.org',
    'ja\u0085ne@example.org', // NEL is a C1 control
    '\ue000@example.org', // private use
    '\u0378@example.org', // unassigned
    '\ud800@example.org', // lone surrogate
    'jane@example.org\u2028x',
  ],
  NO_AT_SIGN: ['jane.example.org', 'hello\uff20world', 'mailto:jane?to=x@example.org'],
  MULTIPLE_AT_SIGNS: ['user@@example.org', 'a@b@example.org', 'test\\@test@iana.org'],
  EMPTY_LOCAL_PART: ['@example.org', '<@example.org>', 'mailto:@example.org'],
  EMPTY_DOMAIN: ['jane@', 'mailto:jane@?subject=x'],
  QUOTED_LOCAL_PART: ['"jane"@example.org', '"a@b"@example.org', 'a."b".c@example.org', '"jane@example.org'],
  LOCAL_PART_INVALID_CHARACTER: [
    'a,b@example.org',
    '(comment)jane@example.org',
    'a:b@example.org',
    'a;b@example.org',
    'a[b]@example.org',
    'a\\b@example.org',
    'me\u037e@example.org', // GREEK QUESTION MARK, `;` after NFC
  ],
  LOCAL_PART_COMBINING_MARK: ['\u0301jane@example.org', '\u20dd@example.org'],
  LOCAL_PART_DOT: ['.jane@example.org', 'jane.@example.org', 'ja..ne@example.org', '.@example.org'],
  LOCAL_PART_TOO_LONG: [`${a(65)}@example.org`, `${a(33, 'é')}@example.org`],
  DOMAIN_IP_LITERAL: ['a@[127.0.0.1]', 'a@[IPv6:::1]', 'a@[tag:text]', 'a@127.0.0.1'],
  DOMAIN_INVALID_CHARACTER: [
    'a@exa_mple.org',
    'a@example!.org',
    'a@example.org/path',
    'a@example.org:25',
    'a@(comment)example.org',
    'a@\u2603.com', // ☃: a symbol, not a letter
    'a@\u2488example.com', // ⒈ would map to `1.`
    'a@example\uff0eorg', // fullwidth full stop: only the ASCII dot separates labels
    'a@exa\uff0dmple.org', // fullwidth hyphen
  ],
  DOMAIN_NO_DOT: ['user@example', 'a@localhost', 'a@\u4e2d\u56fd'],
  DOMAIN_TRAILING_DOT: ['user@example.com.', 'a@b\u00fccher.de.', 'a@.'],
  DOMAIN_EMPTY_LABEL: ['a@.example.org', 'a@example..org', 'a@b\u00fccher..de'],
  DOMAIN_LABEL_TOO_LONG: [`a@${a(64, 'b')}.com`, `a@\u00fc${a(58, 'b')}.com`],
  DOMAIN_LABEL_HYPHEN: ['a@-example.org', 'a@example-.org', 'a@example.org-', 'a@-\u4e2d.com', 'a@xn----lq6a.com'],
  DOMAIN_LABEL_RESERVED: ['a@ab--c.org', 'a@yy--0.tld', 'a@ab--\u4e2d.com'],
  DOMAIN_IDNA: [
    'a@xn--0.tld', // not punycode
    'a@xn--wca.com', // decodes to `Ü`, which IDNA maps: not the canonical form of `ü`
    'a@xn--ab-abc.com',
    'a@xn--n3h.com', // decodes to ☃
    'a@\u0301b.com', // U-label starting with a combining mark
  ],
  DOMAIN_TOO_LONG: [`a@${domainOf(254)}`],
  DOMAIN_NUMERIC_TLD: ['x@example.123', 'a@1.2.3', 'a@\u4f8b\u3048.\uff11\uff12\uff13'],
  DOMAIN_INVALID_TLD: ['a@b.c', 'a@example.c0m', 'a@bad.tld-2', 'a@example.x'],
  ADDRESS_TOO_LONG: [`${a(64)}@${domainOf(190)}`, `${a(32, 'é')}@${domainOf(190)}`],
};

describe('POLICY_VERSION and ADDRESS_REASONS', () => {
  it('names the policy', () => {
    expect(POLICY_VERSION).toBe('optout/1');
  });

  it('lists unique, stable upper-case codes and cannot be modified', () => {
    expect(new Set(ADDRESS_REASONS).size).toBe(ADDRESS_REASONS.length);
    for (const code of ADDRESS_REASONS) expect(code).toMatch(/^[A-Z][A-Z_]*[A-Z]$/);
    expect(Object.isFrozen(ADDRESS_REASONS)).toBe(true);
  });

  it('has an example for every code, and no example for a code it does not list', () => {
    expect(Object.keys(REASON_EXAMPLES).sort()).toEqual([...ADDRESS_REASONS].sort());
  });
});

describe('reason codes', () => {
  const cases = Object.entries(REASON_EXAMPLES).flatMap(([reason, inputs]) =>
    inputs.map((input) => ({ reason, input, label: `${reason}: ${JSON.stringify(input).slice(0, 80)}` })),
  );

  it.each(cases)('$label', ({ reason, input }) => {
    expect(reasonOf(input)).toBe(reason);
  });

  it('produces every code in ADDRESS_REASONS from some input', () => {
    const produced = new Set<string>();
    for (const inputs of Object.values(REASON_EXAMPLES)) {
      for (const input of inputs) produced.add(reasonOf(input));
    }
    for (const code of ADDRESS_REASONS) expect(produced, code).toContain(code);
  });

  it('shares one frozen result per code (rejects allocate nothing)', () => {
    const first = normalizeEmail('no-at-sign');
    expect(normalizeEmail('still no at sign')).not.toBe(first); // a space: another code
    expect(normalizeEmail('other-no-at-sign')).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });

  it('treats a non-string from an untyped caller as an empty cell', () => {
    expect(normalizeEmail(undefined as unknown as string)).toEqual({ valid: false, reason: 'EMPTY' });
    expect(normalizeEmail(null as unknown as string)).toEqual({ valid: false, reason: 'EMPTY' });
  });
});

describe('trimming, display names and mailto:', () => {
  it.each([
    ['  jane@example.org  '],
    ['\tjane@example.org\r\n'],
    ['\u00a0jane@example.org\u00a0'], // NBSP
    ['\ufeffjane@example.org'], // BOM at the start of a file
    ['\u3000jane@example.org\u2029'], // ideographic space, paragraph separator
    ['Jane Doe <jane@example.org>'],
    ['"Doe, Jane" <jane@example.org>'],
    ['"Jane (the boss)" <jane@example.org>'],
    ['Jane<jane@example.org>'],
    ['<jane@example.org>'],
    ['  < jane@example.org >  '],
    ['mailto:jane@example.org'],
    ['MailTo:Jane@Example.org'],
    ['mailto:jane@example.org?subject=unsubscribe&body=x'],
    ['<mailto:jane@example.org?subject=unsubscribe>'],
    ['Jane <mailto:jane@example.org>'],
    ['mailto: jane@example.org '],
  ])('%j is jane@example.org', (input) => {
    expect(accept(input)).toEqual({ address: 'jane@example.org', key: 'jane@example.org' });
  });

  it('keeps `?` in an address that is not a mailto: URL (it is atext)', () => {
    expect(accept('what?@example.org').address).toBe('what?@example.org');
  });

  it('does not percent-decode mailto: URLs (`%` is atext)', () => {
    expect(accept('mailto:jane%2Bnews@example.org').address).toBe('jane%2bnews@example.org');
  });

  it('rejects a display name without angle brackets', () => {
    expect(reasonOf('Jane Doe jane@example.org')).toBe('INVALID_CHARACTER');
  });

  it('rejects angle brackets anywhere but around the address at the end', () => {
    expect(reasonOf('<jane@example.org> Jane')).toBe('ANGLE_BRACKETS');
    expect(reasonOf('"a<b" <jane@example.org>')).toBe('ANGLE_BRACKETS');
    expect(reasonOf('jane@<example>.org')).toBe('ANGLE_BRACKETS');
  });

  it('returns the same address object contents whether or not the cell needed trimming', () => {
    expect(normalizeEmail(' Jane@Example.org ')).toEqual(normalizeEmail('jane@example.org'));
  });
});

describe('address: case, NFC', () => {
  it('lower-cases the local part and the domain', () => {
    expect(accept('John.DOE@Example.COM')).toEqual({ address: 'john.doe@example.com', key: 'john.doe@example.com' });
  });

  it('accepts every ASCII atext character in the local part', () => {
    expect(accept("!#$%&'*+-/=?^_`{|}~@example.org").address).toBe("!#$%&'*+-/=?^_`{|}~@example.org");
  });

  it('composes the local part to NFC', () => {
    const decomposed = 'Jose\u0301@example.org';
    expect(accept(decomposed).address).toBe('jos\u00e9@example.org');
    expect(accept(decomposed)).toEqual(accept('JOS\u00c9@example.org'));
  });

  it('maps CJK compatibility ideographs to their canonical form (NFC)', () => {
    expect(accept('\uf96e@example.org').address).toBe('\u8449@example.org');
  });

  it('lower-cases non-ASCII letters with the full Unicode mapping', () => {
    expect(accept('\u00d1O\u00d1O@example.org').address).toBe('\u00f1o\u00f1o@example.org');
    expect(accept('\u0416\u0415\u041d\u042f@example.org').address).toBe('\u0436\u0435\u043d\u044f@example.org');
    expect(accept('STRA\u00dfE@example.org').address).toBe('stra\u00dfe@example.org');
    expect(accept('\u0130@example.org').address).toBe('i\u0307@example.org');
  });

  it('accepts non-ASCII letters, digits, punctuation and symbols in the local part (RFC 6531)', () => {
    for (const local of ['\u6211\u8cb7', '\u0440\u0430\u043c', '\uff20', '\u{1f606}', '\u{10437}\u{24b62}', 'caf\u00e9']) {
      expect(accept(`${local}@example.org`).address).toBe(`${local}@example.org`);
    }
  });

  it('allows combining marks after the first character', () => {
    expect(accept('a\u20dd@example.org').address).toBe('a\u20dd@example.org');
  });
});

describe('IDN domains', () => {
  it('converts U-labels to lower-case A-labels', () => {
    expect(accept('user@B\u00fccher.DE')).toEqual({ address: 'user@xn--bcher-kva.de', key: 'user@xn--bcher-kva.de' });
    expect(accept('a@\u81fa\u7db2\u4e2d\u5fc3.\u53f0\u7063').address).toBe('a@xn--fiqq24b10vi0d.xn--kpry57d');
    expect(accept('a@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444').address).toBe('a@xn--e1afmkfd.xn--p1ai');
  });

  it('gives an A-label domain typed in any case the same address as its U-label form', () => {
    expect(accept('user@XN--BCHER-KVA.DE')).toEqual(accept('user@b\u00fccher.de'));
    expect(accept('user@xn--bcher-kva.de')).toEqual(accept('user@B\u00dcCHER.de'));
  });

  it('maps fullwidth letters through IDNA', () => {
    expect(accept('a@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com').address).toBe('a@example.com');
  });

  it('keeps ß (IDNA2008, non-transitional)', () => {
    expect(accept('a@stra\u00dfe.de').address).toBe('a@xn--strae-oqa.de');
  });

  it('never lets IDNA read the domain as an IPv4 address', () => {
    expect(reasonOf('a@\uff11\uff12\uff17.\uff10.\uff10.\uff11')).toBe('DOMAIN_IP_LITERAL');
    expect(reasonOf('a@\u4f8b.0x7f')).toBe('DOMAIN_INVALID_TLD');
    expect(reasonOf('a@0x7f.1')).toBe('DOMAIN_NUMERIC_TLD');
  });

  it('accepts an xn-- TLD and an all-digit label that is not the TLD', () => {
    expect(accept('a@xn--hxajbheg2az3al.xn--jxalpdlp').address).toBe('a@xn--hxajbheg2az3al.xn--jxalpdlp');
    expect(accept('a@123.com').address).toBe('a@123.com');
    expect(accept('a@c--n.com').address).toBe('a@c--n.com');
  });

  it('accepts an xn-- local part (it is just atext there)', () => {
    expect(accept('xn--test@example.org').address).toBe('xn--test@example.org');
  });
});

describe('length limits in UTF-8 octets', () => {
  it('local part: 64 octets', () => {
    expect(reasonOf(`${a(64)}@example.org`)).toBe('VALID');
    expect(reasonOf(`${a(65)}@example.org`)).toBe('LOCAL_PART_TOO_LONG');
    // 32 two-octet characters fit, 33 do not, though both are far under 64 UTF-16 units.
    expect(reasonOf(`${a(32, '\u00e9')}@example.org`)).toBe('VALID');
    expect(reasonOf(`${a(33, '\u00e9')}@example.org`)).toBe('LOCAL_PART_TOO_LONG');
    expect(reasonOf(`${a(21, '\u4e2d')}@example.org`)).toBe('VALID'); // 63 octets
    expect(reasonOf(`${a(22, '\u4e2d')}@example.org`)).toBe('LOCAL_PART_TOO_LONG');
    expect(reasonOf(`${a(16, '\u{1f606}')}@example.org`)).toBe('VALID'); // 64 octets, 32 UTF-16 units
    expect(reasonOf(`${a(17, '\u{1f606}')}@example.org`)).toBe('LOCAL_PART_TOO_LONG');
  });

  it('local part: both as written and after NFC', () => {
    // 22 x (e + U+0301) is 66 octets as written, 44 once composed.
    expect(reasonOf(`${a(22, 'e\u0301')}@example.org`)).toBe('LOCAL_PART_TOO_LONG');
    expect(reasonOf(`${a(21, 'e\u0301')}@example.org`)).toBe('VALID');
    // U+FB2C (3 octets) decomposes into three 2-octet code points.
    expect(reasonOf(`\ufb2c${a(61)}@example.org`)).toBe('LOCAL_PART_TOO_LONG');
  });

  it('labels: 63 octets of the A-label', () => {
    expect(reasonOf(`a@${a(63, 'b')}.com`)).toBe('VALID');
    expect(reasonOf(`a@${a(64, 'b')}.com`)).toBe('DOMAIN_LABEL_TOO_LONG');
    // A 59-character U-label whose A-label is longer than 63.
    expect(reasonOf(`a@\u00fc${a(58, 'b')}.com`)).toBe('DOMAIN_LABEL_TOO_LONG');
  });

  it('domain: 253 octets (of which 252 usable: the whole address is then 254)', () => {
    expect(reasonOf(`a@${domainOf(252)}`)).toBe('VALID');
    expect(reasonOf(`a@${domainOf(252).toUpperCase()}`)).toBe('VALID');
    expect(reasonOf(`a@${domainOf(253)}`)).toBe('ADDRESS_TOO_LONG');
    expect(reasonOf(`a@${domainOf(254)}`)).toBe('DOMAIN_TOO_LONG');
  });

  it('whole address: 254 octets', () => {
    expect(reasonOf(`${a(64)}@${domainOf(189)}`)).toBe('VALID');
    expect(reasonOf(`${a(64)}@${domainOf(190)}`)).toBe('ADDRESS_TOO_LONG');
    expect(reasonOf(`${a(32, '\u00e9')}@${domainOf(189)}`)).toBe('VALID');
    expect(reasonOf(`${a(32, '\u00e9')}@${domainOf(190)}`)).toBe('ADDRESS_TOO_LONG');
    // Surrounding white space does not count.
    expect(reasonOf(`   ${a(64)}@${domainOf(189)}   `)).toBe('VALID');
  });
});

describe('keys', () => {
  it.each([
    ['jane+news@example.org', 'jane@example.org'],
    ['jane+news+more@example.org', 'jane@example.org'],
    ['Jane+News@Example.org', 'jane@example.org'],
    ['+onlytag@example.org', '+onlytag@example.org'],
    ['++@example.org', '++@example.org'],
    ['a++b@example.org', 'a@example.org'],
    ['j.ane@outlook.com', 'j.ane@outlook.com'],
    ['jane+x@yahoo.com', 'jane@yahoo.com'],
    ['j.a.n.e@gmail.com', 'jane@gmail.com'],
    ['J.Ane+news@GMail.com', 'jane@gmail.com'],
    ['j.ane@googlemail.com', 'jane@gmail.com'],
    ['j.ane+x@GoogleMail.COM', 'jane@gmail.com'],
    ['jane.+x@gmail.com', 'jane@gmail.com'],
    ['+j.ane@gmail.com', '+jane@gmail.com'],
    ['j.ane@mail.gmail.com', 'j.ane@mail.gmail.com'],
    ['j.ane@gmail.co.uk', 'j.ane@gmail.co.uk'],
    ['jane@ya.ru', 'jane@yandex.ru'],
    ['jane@yandex.com', 'jane@yandex.ru'],
    ['jane@yandex.ua', 'jane@yandex.ru'],
    ['jane@yandex.kz', 'jane@yandex.ru'],
    ['jane@yandex.by', 'jane@yandex.ru'],
    ['jane@yandex.ru', 'jane@yandex.ru'],
    ['j.ane+x@Yandex.COM', 'j.ane@yandex.ru'],
    ['jane@yandex.de', 'jane@yandex.de'],
    ['jane@myya.ru', 'jane@myya.ru'],
    ['\u00e9l\u00e8ve+tag@b\u00fccher.de', '\u00e9l\u00e8ve@xn--bcher-kva.de'],
  ])('%s -> %s', (input, key) => {
    expect(accept(input).key).toBe(key);
  });

  it('keeps the address as given while the key folds it', () => {
    expect(accept('First.Last+News@GoogleMail.com')).toEqual({
      address: 'first.last+news@googlemail.com',
      key: 'firstlast@gmail.com',
    });
  });

  it('cuts a tag after a trailing dot literally on other domains (the key is then no valid address)', () => {
    expect(accept('jane.+news@example.org').key).toBe('jane.@example.org');
  });

  it('is the same object as the address when nothing folds (no extra string)', () => {
    const r = accept('jane@example.org');
    expect(r.key).toBe(r.address);
  });
});
