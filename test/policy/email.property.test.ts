import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeEmail, normalizeEmailReference } from '../../src/policy/email.js';

// ---------------------------------------------------------------------------------------------
// Generators. Arbitrary strings are almost never addresses, so most properties also run on
// address-shaped input built from the pieces that matter: atext, dots, `+` tags, case, the
// folded domains, IDN labels, white space and wrappers at the ends.

const ATEXT_ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~";
const LOCAL_EXTRA = [
  '\u00e9', '\u00df', '\u0436', '\u4e2d', '\u{1f606}', 'e\u0301', '\u0130', '\u00c9', '+', '.', '\u037e',
];

const localChar = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...ATEXT_ASCII) },
  { weight: 1, arbitrary: fc.constantFrom(...LOCAL_EXTRA) },
);
const atom = fc.string({ unit: localChar, minLength: 1, maxLength: 12 });
const localPart = fc.array(atom, { minLength: 1, maxLength: 4 }).map((atoms) => atoms.join('.'));

const LDH = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-';
const ldhLabel = fc
  .string({ unit: fc.constantFrom(...LDH), minLength: 1, maxLength: 20 })
  .filter((l) => !l.startsWith('-') && !l.endsWith('-'));
const idnLabel = fc.constantFrom(
  'b\u00fccher', 'M\u00fcnchen', '\u4e2d\u6587', '\u043f\u0440\u0438\u043c\u0435\u0440', 'xn--bcher-kva',
  'XN--MNCHEN-3YA', 'stra\u00dfe',
);
const tld = fc.constantFrom('com', 'org', 'DE', 'co', 'info', 'xn--p1ai', '\u0440\u0444', 'io');
const specialDomain = fc.constantFrom(
  'gmail.com', 'GMail.com', 'googlemail.com', 'GoogleMail.COM', 'ya.ru', 'yandex.ru', 'yandex.com',
  'yandex.ua', 'yandex.kz', 'yandex.by', 'Yandex.BY', 'mail.gmail.com', 'outlook.com',
);
const label = fc.oneof({ weight: 4, arbitrary: ldhLabel }, { weight: 1, arbitrary: idnLabel });
const domain = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(fc.array(label, { minLength: 1, maxLength: 3 }), tld).map(([ls, t]) => [...ls, t].join('.')),
  },
  { weight: 2, arbitrary: specialDomain },
);
const asciiDomain = fc
  .tuple(fc.array(ldhLabel, { minLength: 1, maxLength: 3 }), fc.constantFrom('com', 'org', 'DE', 'Io'))
  .map(([ls, t]) => [...ls, t].join('.'));

const bareAddress = fc.tuple(localPart, domain).map(([l, d]) => `${l}@${d}`);

// Everything String.prototype.trim removes, ASCII and not.
const SPACES = [' ', '\t', '\n', '\r', '\u000b', '\u000c', '\u00a0', '\ufeff', '\u3000', '\u2028', '\u2029', '\u2003'];
const whiteSpace = fc.string({ unit: fc.constantFrom(...SPACES), maxLength: 4 });

const wrapping = fc.constantFrom('plain', 'angle', 'display', 'mailto', 'mailto-query', 'angle-mailto');
const wrapped = fc.tuple(bareAddress, wrapping).map(([addr, how]) => {
  switch (how) {
    case 'angle': return `<${addr}>`;
    case 'display': return `"Doe, Jane" <${addr}>`;
    case 'mailto': return `MailTo:${addr}`;
    case 'mailto-query': return `mailto:${addr}?subject=unsubscribe`;
    case 'angle-mailto': return `Jane <mailto:${addr}>`;
    default: return addr;
  }
});

const addressLike = fc.tuple(whiteSpace, wrapped, whiteSpace).map(([a, s, b]) => a + s + b);

// Arbitrary text, biased towards the characters the policy branches on.
const interesting = fc.constantFrom(
  '@', '.', '+', '<', '>', '"', ' ', '-', 'xn--', 'mailto:', '\u00a0', '\u200b', '\u0301', '[', ']',
);
const anyString = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'grapheme-composite', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }), // full Unicode, any code point
  fc.string({ unit: 'binary-ascii', maxLength: 40 }), // with control characters
  // Lone surrogates and other single UTF-16 units.
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)), maxLength: 40 }),
  fc.string({ unit: fc.oneof(interesting, fc.string({ unit: 'grapheme-ascii', maxLength: 3 })), maxLength: 20 }),
  fc.emailAddress(),
);

const anyInput = fc.oneof({ weight: 2, arbitrary: addressLike }, { weight: 1, arbitrary: anyString });

const RUNS = { numRuns: 2000 };
const FORBIDDEN = /[\p{C}\p{Z}]/u;

describe('normalizeEmail properties', () => {
  // Properties about valid results would pass vacuously if the generators made none.
  it('generates mostly valid addresses from the address-shaped generator', () => {
    const sample = fc.sample(addressLike, { numRuns: 1000, seed: 1 });
    const valid = sample.filter((s) => normalizeEmail(s).valid).length;
    expect(valid).toBeGreaterThan(500);
  });

  it('never throws, and always answers with a known shape', () => {
    fc.assert(
      fc.property(anyInput, (s) => {
        const r = normalizeEmail(s);
        if (r.valid) {
          expect(typeof r.address).toBe('string');
          expect(typeof r.key).toBe('string');
        } else {
          expect(typeof r.reason).toBe('string');
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('fast path and reference implementation agree on every input', () => {
    fc.assert(
      fc.property(anyInput, (s) => {
        expect(normalizeEmail(s)).toEqual(normalizeEmailReference(s));
      }),
      { numRuns: 5000 },
    );
  });

  it('is idempotent: the address normalizes to itself with the same key', () => {
    fc.assert(
      fc.property(anyInput, (s) => {
        const r = normalizeEmail(s);
        if (!r.valid) return;
        expect(normalizeEmail(r.address)).toEqual(r);
      }),
      RUNS,
    );
  });

  it('is idempotent on keys: a key normalizes to itself', () => {
    fc.assert(
      fc.property(anyInput, (s) => {
        const r = normalizeEmail(s);
        if (!r.valid) return;
        const again = normalizeEmail(r.key);
        // The one exception is spec-literal: design.md cuts the tag of `jane.+news@x.org` at the
        // `+`, leaving `jane.@x.org`, whose trailing dot no address may have.
        const keyLocal = r.key.slice(0, r.key.lastIndexOf('@'));
        if (keyLocal.endsWith('.')) {
          expect(again).toEqual({ valid: false, reason: 'LOCAL_PART_DOT' });
        } else {
          expect(again.valid && again.key).toBe(r.key);
          expect(again.valid && again.address).toBe(r.key);
        }
      }),
      RUNS,
    );
  });

  it('ignores the case of an ASCII domain', () => {
    fc.assert(
      fc.property(localPart, asciiDomain, (local, d) => {
        const lower = normalizeEmail(`${local}@${d.toLowerCase()}`);
        expect(normalizeEmail(`${local}@${d.toUpperCase()}`)).toEqual(lower);
        expect(normalizeEmail(`${local}@${d}`)).toEqual(lower);
      }),
      RUNS,
    );
  });

  it('ignores white space around the cell', () => {
    fc.assert(
      fc.property(anyInput, whiteSpace, whiteSpace, (s, before, after) => {
        expect(normalizeEmail(before + s + after)).toEqual(normalizeEmail(s));
      }),
      RUNS,
    );
  });

  it('never gives a key with an empty local part', () => {
    fc.assert(
      fc.property(anyInput, (s) => {
        const r = normalizeEmail(s);
        if (!r.valid) return;
        expect(r.key.lastIndexOf('@')).toBeGreaterThan(0);
        expect(r.key.endsWith('@')).toBe(false);
      }),
      RUNS,
    );
  });

  it('gives valid addresses without control or space characters, with a lower-case ASCII domain', () => {
    fc.assert(
      fc.property(anyInput, (s) => {
        const r = normalizeEmail(s);
        if (!r.valid) return;
        expect(FORBIDDEN.test(r.address)).toBe(false);
        expect(FORBIDDEN.test(r.key)).toBe(false);
        const at = r.address.lastIndexOf('@');
        expect(r.address.slice(at + 1)).toMatch(/^[a-z0-9-]+(?:\.[a-z0-9-]+)+$/);
        expect(r.address.slice(0, at)).toBe(r.address.slice(0, at).normalize('NFC'));
        expect(r.address.indexOf('@')).toBe(at);
      }),
      RUNS,
    );
  });

  it('keeps a valid address within the octet limits', () => {
    fc.assert(
      fc.property(anyInput, (s) => {
        const r = normalizeEmail(s);
        if (!r.valid) return;
        const at = r.address.lastIndexOf('@');
        expect(Buffer.byteLength(r.address.slice(0, at), 'utf8')).toBeLessThanOrEqual(64);
        expect(r.address.length - at - 1).toBeLessThanOrEqual(253);
        expect(Buffer.byteLength(r.address, 'utf8')).toBeLessThanOrEqual(254);
      }),
      RUNS,
    );
  });

  it('gives a key that folds tags: the untagged address has the same key', () => {
    fc.assert(
      fc.property(atom.filter((t) => !t.includes('+')), atom, domain, (base, tag, d) => {
        const tagged = normalizeEmail(`${base}+${tag}@${d}`);
        const plain = normalizeEmail(`${base}@${d}`);
        if (!tagged.valid || !plain.valid) return;
        expect(tagged.key).toBe(plain.key);
      }),
      RUNS,
    );
  });
});
