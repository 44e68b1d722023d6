/**
 * Address policy `optout/1`: which cells an opt-out list accepts, the address it shows and the
 * key it deduplicates, stores and checks on.
 *
 * The normative rules are in design.md ("Address policy `optout/1`"); the acceptance test is the
 * conformance corpus (test/fixtures/conformance/email-corpus.json). The policy is VERSIONED: a
 * store records the {@link POLICY_VERSION} its keys were made with, so any change to what is
 * accepted or to how keys are formed needs a new version (and a re-key), never an in-place edit.
 *
 * Pure: no I/O, no mutable module state. Runs on every cell of multi-million-row imports, so the
 * common case (plain ASCII `local@domain.tld`) takes a single pass over the characters with at
 * most a table lookup per character and allocates only the result strings. Anything unusual (non-ASCII, display
 * names, `mailto:`, `xn--` labels, any error) falls back to the reference implementation, which
 * is written for clarity and is the one that decides every reason code.
 */

import { domainToASCII, domainToUnicode } from 'node:url';

/** Identifies these rules; stored with the keys they produced. */
export const POLICY_VERSION = 'optout/1';

/**
 * Why a cell is not an address under `optout/1`. Stable identifiers: reject files and API
 * errors carry them, so a code is never renamed or reused for another meaning.
 *
 * - `EMPTY`: nothing left after trimming and unwrapping (`""`, `"  "`, `"<>"`, `"mailto:"`).
 * - `ANGLE_BRACKETS`: a `<` or `>` other than one pair enclosing the whole address at the end.
 * - `INVALID_CHARACTER`: a control, format (zero-width, bidi), surrogate, private-use, unassigned or space character.
 * - `NO_AT_SIGN`: no `@` at all.
 * - `MULTIPLE_AT_SIGNS`: another `@` in the local part (`a@b@c.org`).
 * - `EMPTY_LOCAL_PART`: nothing before the `@`.
 * - `EMPTY_DOMAIN`: nothing after the `@`.
 * - `QUOTED_LOCAL_PART`: a `"` in the local part: quoted strings are not supported.
 * - `LOCAL_PART_INVALID_CHARACTER`: an ASCII character outside RFC 5322 atext in the local part (`( ) , : ; [ ] \` ...).
 * - `LOCAL_PART_COMBINING_MARK`: the local part starts with a combining mark.
 * - `LOCAL_PART_DOT`: a leading, trailing or doubled dot in the local part.
 * - `LOCAL_PART_TOO_LONG`: the local part is over 64 UTF-8 octets (after NFC and lower-casing).
 * - `DOMAIN_IP_LITERAL`: the domain is an address literal (`[...]`) or a bare dotted-quad IPv4 address.
 * - `DOMAIN_INVALID_CHARACTER`: a domain character that is neither ASCII `[A-Za-z0-9.-]` nor a letter, mark or decimal digit.
 * - `DOMAIN_NO_DOT`: a single-label domain (`localhost`, `example`).
 * - `DOMAIN_TRAILING_DOT`: the domain ends with a dot (a fully qualified name, not an address domain).
 * - `DOMAIN_EMPTY_LABEL`: the domain starts with a dot or has two dots in a row.
 * - `DOMAIN_LABEL_TOO_LONG`: a label is over 63 octets in its ASCII (A-label) form.
 * - `DOMAIN_LABEL_HYPHEN`: a label starts or ends with a hyphen.
 * - `DOMAIN_LABEL_RESERVED`: a label has `--` in its third and fourth positions and is not an `xn--` A-label.
 * - `DOMAIN_IDNA`: the internationalized domain is not valid IDNA (bad punycode, disallowed or non-canonical labels).
 * - `DOMAIN_TOO_LONG`: the domain is over 253 octets in its ASCII form.
 * - `DOMAIN_NUMERIC_TLD`: the last label is all digits.
 * - `DOMAIN_INVALID_TLD`: the last label is neither 2+ ASCII letters nor an `xn--` A-label.
 * - `ADDRESS_TOO_LONG`: local part + `@` + ASCII domain is over 254 octets.
 */
export type AddressReason =
  | 'EMPTY'
  | 'ANGLE_BRACKETS'
  | 'INVALID_CHARACTER'
  | 'NO_AT_SIGN'
  | 'MULTIPLE_AT_SIGNS'
  | 'EMPTY_LOCAL_PART'
  | 'EMPTY_DOMAIN'
  | 'QUOTED_LOCAL_PART'
  | 'LOCAL_PART_INVALID_CHARACTER'
  | 'LOCAL_PART_COMBINING_MARK'
  | 'LOCAL_PART_DOT'
  | 'LOCAL_PART_TOO_LONG'
  | 'DOMAIN_IP_LITERAL'
  | 'DOMAIN_INVALID_CHARACTER'
  | 'DOMAIN_NO_DOT'
  | 'DOMAIN_TRAILING_DOT'
  | 'DOMAIN_EMPTY_LABEL'
  | 'DOMAIN_LABEL_TOO_LONG'
  | 'DOMAIN_LABEL_HYPHEN'
  | 'DOMAIN_LABEL_RESERVED'
  | 'DOMAIN_IDNA'
  | 'DOMAIN_TOO_LONG'
  | 'DOMAIN_NUMERIC_TLD'
  | 'DOMAIN_INVALID_TLD'
  | 'ADDRESS_TOO_LONG';

/** The result of {@link normalizeEmail}. */
export type NormalizedAddress =
  | { valid: true; address: string; key: string }
  | { valid: false; reason: AddressReason };

type Invalid = { valid: false; reason: AddressReason };

// A record (rather than a bare array) makes the compiler reject a code missing from the list.
const REASONS: Record<AddressReason, true> = {
  EMPTY: true,
  ANGLE_BRACKETS: true,
  INVALID_CHARACTER: true,
  NO_AT_SIGN: true,
  MULTIPLE_AT_SIGNS: true,
  EMPTY_LOCAL_PART: true,
  EMPTY_DOMAIN: true,
  QUOTED_LOCAL_PART: true,
  LOCAL_PART_INVALID_CHARACTER: true,
  LOCAL_PART_COMBINING_MARK: true,
  LOCAL_PART_DOT: true,
  LOCAL_PART_TOO_LONG: true,
  DOMAIN_IP_LITERAL: true,
  DOMAIN_INVALID_CHARACTER: true,
  DOMAIN_NO_DOT: true,
  DOMAIN_TRAILING_DOT: true,
  DOMAIN_EMPTY_LABEL: true,
  DOMAIN_LABEL_TOO_LONG: true,
  DOMAIN_LABEL_HYPHEN: true,
  DOMAIN_LABEL_RESERVED: true,
  DOMAIN_IDNA: true,
  DOMAIN_TOO_LONG: true,
  DOMAIN_NUMERIC_TLD: true,
  DOMAIN_INVALID_TLD: true,
  ADDRESS_TOO_LONG: true,
};

/** Every reason code, in the order the checks run. */
export const ADDRESS_REASONS: readonly AddressReason[] = Object.freeze(Object.keys(REASONS) as AddressReason[]);

// Invalid results are shared frozen singletons: a rejected cell costs no allocation, and a
// caller cannot corrupt the answer another caller gets.
const INVALID = Object.freeze(
  Object.fromEntries(ADDRESS_REASONS.map((reason) => [reason, Object.freeze({ valid: false, reason })])),
) as Readonly<Record<AddressReason, Invalid>>;

// ---------------------------------------------------------------------------------------------
// Character classes for ASCII, one table lookup per character on the fast path.

const ATEXT = 1; // RFC 5322 atext (the dot is handled separately)
const LDH = 2; // letter, digit, hyphen
const UPPER = 4;
const ALPHA = 8;

const CLASS = new Uint8Array(128);
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = ATEXT | LDH;
for (let c = 0x41; c <= 0x5a; c++) CLASS[c] = ATEXT | LDH | ALPHA | UPPER;
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = ATEXT | LDH | ALPHA;
for (const ch of "!#$%&'*+-/=?^_`{|}~") CLASS[ch.charCodeAt(0)] = ATEXT;
CLASS[0x2d] = ATEXT | LDH;

const AT = 0x40;
const DOT = 0x2e;
const HYPHEN = 0x2d;
const PLUS = 0x2b;

/** The ASCII characters `String.prototype.trim` removes: TAB, LF, VT, FF, CR, SPACE. */
function isAsciiTrimmed(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

// ---------------------------------------------------------------------------------------------
// Public entry point.

/**
 * Applies the address policy `optout/1` to one cell.
 *
 * Never throws. A valid result carries the `address` to show (lower-case NFC local part, ASCII
 * domain) and the `key` to deduplicate, store and check on; an invalid one carries the most
 * specific {@link AddressReason}.
 */
export function normalizeEmail(input: string): NormalizedAddress {
  // Untyped callers (a CSV row with a missing column) hand in undefined; that is an empty cell.
  if (typeof input !== 'string') return INVALID.EMPTY;
  return fastPath(input) ?? normalizeEmailReference(input);
}

/**
 * The plain-ASCII case in one pass: `local@domain.tld`, possibly padded with ASCII whitespace,
 * possibly upper-case. Returns undefined whenever anything needs a closer look (including every
 * invalid input), so that the reference implementation alone decides reason codes and the two
 * can never disagree on a code.
 */
function fastPath(s: string): NormalizedAddress | undefined {
  const n = s.length;
  let start = 0;
  let end = n;
  while (start < end && isAsciiTrimmed(s.charCodeAt(start))) start++;
  while (end > start && isAsciiTrimmed(s.charCodeAt(end - 1))) end--;
  // Also bounds the scan of an oversized cell (a pasted paragraph) to the reference path.
  if (end - start > 254) return undefined;

  let upper = false;
  let plus = -1;
  let at = -1;
  let afterDot = true; // the start of the local part behaves like a dot: catches a leading dot
  let i = start;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    // Most characters are lower-case letters; testing for them first saves ~15% overall.
    if (c >= 0x61 && c <= 0x7a) {
      afterDot = false;
      continue;
    }
    if (c === AT) {
      at = i;
      break;
    }
    if (c === DOT) {
      if (afterDot) return undefined;
      afterDot = true;
      continue;
    }
    if (c >= 128) return undefined;
    const f = CLASS[c]!;
    if ((f & ATEXT) === 0) return undefined;
    if ((f & UPPER) !== 0) upper = true;
    if (c === PLUS && plus < 0) plus = i;
    afterDot = false;
  }
  // No @, an empty local part or a trailing dot; ASCII, so code units are octets.
  if (at < 0 || afterDot || at - start > 64) return undefined;

  let labelLen = 0;
  let dots = 0;
  let lastHyphen = false;
  let labelAlpha = true;
  for (i = at + 1; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x61 && c <= 0x7a) {
      lastHyphen = false;
      if (++labelLen > 63) return undefined;
      continue;
    }
    if (c === DOT) {
      if (labelLen === 0 || lastHyphen) return undefined;
      dots++;
      labelLen = 0;
      labelAlpha = true;
      continue;
    }
    if (c >= 128) return undefined;
    const f = CLASS[c]!;
    if ((f & LDH) === 0) return undefined;
    if (c === HYPHEN) {
      // A leading hyphen, or `--` in positions 3-4: either invalid or an `xn--` label, which
      // must go through IDNA so that bad punycode is rejected.
      if (labelLen === 0 || (labelLen === 3 && lastHyphen)) return undefined;
      lastHyphen = true;
    } else {
      lastHyphen = false;
    }
    if ((f & ALPHA) === 0) labelAlpha = false;
    else if ((f & UPPER) !== 0) upper = true;
    if (++labelLen > 63) return undefined;
  }
  // The TLD: 2+ ASCII letters (which also rules out a trailing hyphen or dot).
  if (dots === 0 || labelLen < 2 || !labelAlpha) return undefined;
  if (end - at - 1 > 253) return undefined;

  let address = start === 0 && end === n ? s : s.slice(start, end);
  if (upper) address = address.toLowerCase();
  return valid(address, at - start, plus < 0 ? -1 : plus - start);
}

// ---------------------------------------------------------------------------------------------
// Keys.

/**
 * Builds the result for a valid address, with its key (design.md item 9).
 * `at` is the index of the `@` in `address`; `plus` the index of the first `+`, or -1.
 */
function valid(address: string, at: number, plus: number): NormalizedAddress {
  const domainStart = at + 1;
  const domainLen = address.length - domainStart;
  let gmail = false;
  let canonicalDomain: string | undefined;
  // Compare in place by length first: no slicing of the domain for the common case.
  switch (domainLen) {
    case 5:
      if (address.startsWith('ya.ru', domainStart)) canonicalDomain = 'yandex.ru';
      break;
    case 9:
      if (address.startsWith('gmail.com', domainStart)) gmail = true;
      else if (
        address.startsWith('yandex.', domainStart) &&
        (address.endsWith('.ua') || address.endsWith('.kz') || address.endsWith('.by'))
      ) {
        canonicalDomain = 'yandex.ru';
      }
      break;
    case 10:
      if (address.startsWith('yandex.com', domainStart)) canonicalDomain = 'yandex.ru';
      break;
    case 14:
      if (address.startsWith('googlemail.com', domainStart)) {
        gmail = true;
        canonicalDomain = 'gmail.com';
      }
      break;
  }
  // A `+` at the very start is the whole local part, not a tag: cutting there would leave the
  // key with an empty local part.
  const cut = plus > 0;
  if (!cut && !gmail && canonicalDomain === undefined) {
    return { valid: true, address, key: address };
  }
  // Cut literally, as design.md says: `jane.+news@x.org` keys as `jane.@x.org`, which is not
  // itself a valid address (nothing else can share that key, so nothing is lost).
  let local = address.slice(0, cut ? plus : at);
  if (gmail) {
    // Gmail ignores dots; a local part never starts with a dot, so something always remains.
    const undotted = local.replaceAll('.', '');
    if (undotted.length > 0) local = undotted;
  }
  const key = local + '@' + (canonicalDomain ?? address.slice(domainStart));
  return { valid: true, address, key };
}

// ---------------------------------------------------------------------------------------------
// The reference implementation: every rule in the order of design.md, every reason code.

// General categories C (Cc control, Cf format, Cs surrogate, Co private use, Cn unassigned) and
// Z (Zs space, Zl line, Zp paragraph separators). Single-character classes: no backtracking.
const FORBIDDEN_CHARACTER = /[\p{C}\p{Z}]/u;
// Before IDNA a domain holds ASCII LDH and dots, or letters, marks and decimal digits (which is
// what a U-label may hold). Anything else is a symbol or punctuation that IDNA would either pass
// through (`_`, `!`) or silently map (fullwidth dots and hyphens, `⒈` -> `1.`), both wrong here.
const DOMAIN_FORBIDDEN_CHARACTER = /[^A-Za-z0-9.\-\p{L}\p{M}\p{Nd}]/u;
const STARTS_WITH_MARK = /^\p{M}/u;
const NON_ASCII = /[^\x00-\x7f]/;
const XN_LABEL = /(?:^|\.)xn--/i;
const MAILTO = /^mailto:/i;
const ALL_DIGITS = /^\p{Nd}+$/u;
const ALL_LETTERS = /^[A-Za-z]+$/;
const DOTTED_QUAD = /^\p{Nd}+\.\p{Nd}+\.\p{Nd}+\.\p{Nd}+$/u;

/**
 * The complete policy, without the fast path. Exported for differential tests that hold the
 * fast path to it; use {@link normalizeEmail}.
 * @internal
 */
export function normalizeEmailReference(input: string): NormalizedAddress {
  // 1. Trim.
  let s = input.trim();
  if (s.length === 0) return INVALID.EMPTY;

  // 2. Unwrap `Display Name <addr>` / `<addr>`, then `mailto:` (so `<mailto:...>` works too).
  if (s.charCodeAt(s.length - 1) === 0x3e /* > */) {
    const open = s.lastIndexOf('<');
    if (open < 0) return INVALID.ANGLE_BRACKETS;
    const inner = s.slice(open + 1, -1);
    if (inner.includes('>') || hasAngleBracket(s, open)) return INVALID.ANGLE_BRACKETS;
    // The display name is discarded unread: quotes, commas and spaces in it are expected.
    s = inner.trim();
  } else if (s.includes('<') || s.includes('>')) {
    return INVALID.ANGLE_BRACKETS;
  }
  if (MAILTO.test(s)) {
    s = s.slice(7);
    // In a URL a `?` in the address itself would be percent-encoded: the first one starts the query.
    const query = s.indexOf('?');
    if (query >= 0) s = s.slice(0, query);
    s = s.trim();
  }
  if (s.length === 0) return INVALID.EMPTY;

  // 3. Invisible, ambiguous or spacing characters anywhere in the address.
  if (FORBIDDEN_CHARACTER.test(s)) return INVALID.INVALID_CHARACTER;

  // 4. Split at the last `@`: a quoted local part may hold `@`, so it is recognized first.
  const at = s.lastIndexOf('@');
  if (at < 0) return INVALID.NO_AT_SIGN;
  const rawLocal = s.slice(0, at);
  const rawDomain = s.slice(at + 1);
  if (rawLocal.length === 0) return INVALID.EMPTY_LOCAL_PART;
  if (rawDomain.length === 0) return INVALID.EMPTY_DOMAIN;
  if (rawLocal.includes('"')) return INVALID.QUOTED_LOCAL_PART;
  if (rawLocal.includes('@')) return INVALID.MULTIPLE_AT_SIGNS;

  // 5. Local part.
  const local = normalizeLocal(rawLocal);
  if (typeof local !== 'string') return local;

  // 6. Domain.
  const domain = normalizeDomain(rawDomain);
  if (typeof domain !== 'string') return domain;

  // 7. Whole address. Like the local part's limit, in both forms: a mail system sees the
  // address as it was written, and NFC can make it longer or shorter (the corpus holds a
  // decomposed address that fits only once composed, and must be rejected).
  const localOctets = Math.max(utf8Length(local), utf8Length(rawLocal));
  if (localOctets + 1 + domain.length > 254) return INVALID.ADDRESS_TOO_LONG;

  // 8 and 9.
  return valid(local + '@' + domain, local.length, local.indexOf('+'));
}

/** Whether `s` has a `<` or `>` before index `end`. */
function hasAngleBracket(s: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x3c || c === 0x3e) return true;
  }
  return false;
}

/** The local part as it appears in the address, or why it is not acceptable. */
function normalizeLocal(raw: string): string | Invalid {
  let local: string;
  if (NON_ASCII.test(raw)) {
    // NFC again after lower-casing: case mapping can leave a string that is not NFC, and the
    // address must come back unchanged when normalized again.
    local = raw.normalize('NFC').toLowerCase().normalize('NFC');
  } else {
    local = raw.toLowerCase();
  }
  // Checked on the final form: NFC can turn a non-ASCII character into ASCII punctuation
  // (U+037E GREEK QUESTION MARK -> `;`).
  for (let i = 0; i < local.length; i++) {
    const c = local.charCodeAt(i);
    if (c < 128 && c !== DOT && (CLASS[c]! & ATEXT) === 0) return INVALID.LOCAL_PART_INVALID_CHARACTER;
  }
  // A leading mark would combine with whatever precedes the address when it is displayed.
  if (STARTS_WITH_MARK.test(local)) return INVALID.LOCAL_PART_COMBINING_MARK;
  if (
    local.charCodeAt(0) === DOT ||
    local.charCodeAt(local.length - 1) === DOT ||
    local.includes('..')
  ) {
    return INVALID.LOCAL_PART_DOT;
  }
  // Both as written and as normalized: either form is what some system will be handed.
  if (utf8Length(local) > 64 || utf8Length(raw) > 64) return INVALID.LOCAL_PART_TOO_LONG;
  return local;
}

/** The domain in lower-case A-label form, or why it is not acceptable. */
function normalizeDomain(raw: string): string | Invalid {
  if (raw.charCodeAt(0) === 0x5b /* [ */) return INVALID.DOMAIN_IP_LITERAL;
  if (DOMAIN_FORBIDDEN_CHARACTER.test(raw)) return INVALID.DOMAIN_INVALID_CHARACTER;

  let ascii: string;
  if (NON_ASCII.test(raw)) {
    // Shape first, on the labels as written: hyphen rules apply to U-labels too (`-中` encodes
    // to `xn----lq6a`, which has no leading hyphen), and an all-digit TLD must never reach
    // domainToASCII, which would parse the name as an IPv4 address.
    const shape = checkDomainShape(raw, false);
    if (shape !== undefined) return shape;
    ascii = domainToASCII(raw);
    if (ascii.length === 0) return INVALID.DOMAIN_IDNA;
  } else {
    ascii = raw.toLowerCase();
  }
  const shape = checkDomainShape(ascii, true);
  if (shape !== undefined) return shape;
  if (XN_LABEL.test(raw)) {
    const checked = checkALabels(ascii);
    if (checked !== undefined) return checked;
  }
  return ascii;
}

/**
 * Validates `xn--` labels given as such: the punycode must decode, the U-labels must obey the
 * same character and hyphen rules as a domain typed in Unicode, and the encoding must be the
 * canonical one (so that one domain has one key).
 */
function checkALabels(ascii: string): Invalid | undefined {
  const unicode = domainToUnicode(ascii);
  if (unicode.length === 0 || DOMAIN_FORBIDDEN_CHARACTER.test(unicode)) return INVALID.DOMAIN_IDNA;
  const shape = checkDomainShape(unicode, false);
  if (shape !== undefined) return shape;
  if (domainToASCII(unicode) !== ascii) return INVALID.DOMAIN_IDNA;
  return undefined;
}

/**
 * The label rules. With `full`, `d` is the final lower-case ASCII form and every rule applies
 * (characters, lengths, TLD). Without it, `d` may hold U-labels and only the rules that hold for
 * any form apply (dots, hyphens, an all-ASCII TLD); lengths are defined on the ASCII form.
 */
function checkDomainShape(d: string, full: boolean): Invalid | undefined {
  const n = d.length;
  const lastDot = d.lastIndexOf('.');
  if (lastDot < 0) return INVALID.DOMAIN_NO_DOT;
  if (lastDot === n - 1) return INVALID.DOMAIN_TRAILING_DOT;

  let labelStart = 0;
  for (let i = 0; i <= n; i++) {
    if (i < n && d.charCodeAt(i) !== DOT) continue;
    const len = i - labelStart;
    if (len === 0) return INVALID.DOMAIN_EMPTY_LABEL;
    if (full) {
      for (let j = labelStart; j < i; j++) {
        const c = d.charCodeAt(j);
        // IDNA passes some symbols through; only LDH may come out of it.
        if (c >= 128 || (CLASS[c]! & LDH) === 0 || (CLASS[c]! & UPPER) !== 0) {
          return INVALID.DOMAIN_INVALID_CHARACTER;
        }
      }
      if (len > 63) return INVALID.DOMAIN_LABEL_TOO_LONG;
    }
    if (d.charCodeAt(labelStart) === HYPHEN || d.charCodeAt(i - 1) === HYPHEN) {
      return INVALID.DOMAIN_LABEL_HYPHEN;
    }
    if (
      len >= 4 &&
      d.charCodeAt(labelStart + 2) === HYPHEN &&
      d.charCodeAt(labelStart + 3) === HYPHEN &&
      !startsWithXn(d, labelStart)
    ) {
      return INVALID.DOMAIN_LABEL_RESERVED;
    }
    labelStart = i + 1;
  }

  if (full && n > 253) return INVALID.DOMAIN_TOO_LONG;

  const tldStart = lastDot + 1;
  const tld = d.slice(tldStart);
  // Any decimal digits, not only ASCII: fullwidth digits would become ASCII in IDNA, and the
  // name would then be read as an IPv4 address.
  if (ALL_DIGITS.test(tld)) {
    return DOTTED_QUAD.test(d) ? INVALID.DOMAIN_IP_LITERAL : INVALID.DOMAIN_NUMERIC_TLD;
  }
  if (NON_ASCII.test(tld)) return undefined; // a U-label TLD: judged on its A-label later
  if (tld.length >= 2 && (ALL_LETTERS.test(tld) || startsWithXn(d, tldStart))) return undefined;
  return INVALID.DOMAIN_INVALID_TLD;
}

function startsWithXn(d: string, i: number): boolean {
  return (
    (d.charCodeAt(i) | 0x20) === 0x78 /* x */ &&
    (d.charCodeAt(i + 1) | 0x20) === 0x6e /* n */ &&
    d.charCodeAt(i + 2) === HYPHEN &&
    d.charCodeAt(i + 3) === HYPHEN
  );
}

/** Octets of `s` in UTF-8; a lone surrogate counts as the 3 octets of its replacement. */
function utf8Length(s: string): number {
  let octets = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) octets += 1;
    else if (c < 0x800) octets += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      octets += 4;
      i++;
    } else octets += 3;
  }
  return octets;
}
