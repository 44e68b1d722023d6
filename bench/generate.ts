/**
 * Deterministic generator of opt-out lists that look like an ESP/CRM export:
 * `email,first_name,last_name,company,unsubscribed_at`, about 58 bytes a row.
 *
 * Every row is a pure function of (seed, row index): rows are never stored, so memory stays flat
 * however many rows are asked for, and a duplicate of any earlier row can be produced by
 * regenerating that row from its index. Mix (shares of data rows):
 * - ~5% duplicates of an earlier address, drawn from the whole file or from a recent window:
 *   the same address, another case, surrounding spaces, or a variant with the same key
 *   (gmail dots, googlemail.com, +tag, ya.ru);
 * - ~1% invalid cells (no @, inner space, trailing dot, empty, @localhost, @@, .., no TLD);
 * - ~20% mixed case, ~1% surrounding spaces, ~3% rows with quoted fields, a few with an extra
 *   trailing column, some IDN domains and non-ASCII local parts.
 *
 * CLI: `node dist/bench/generate.js --rows N --out FILE [--seed S] [--gzip]`
 */
import { createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { formatBytes, formatNumber } from './lib/measure.js';

export const HEADER = 'email,first_name,last_name,company,unsubscribed_at';
/** @default 42 */
export const DEFAULT_SEED = 42;
/** Row indices stay below 2^31, as the int32 draws that pick earlier rows require. */
export const MAX_ROWS = 2_000_000_000;

export interface GenerateOptions {
  /** Data rows, header not included. An integer from 1 to {@link MAX_ROWS}. */
  rows: number;
  /**
   * Any integer from 0 to 4294967295; the same seed gives byte-identical output.
   * @default 42
   */
  seed?: number;
}

export interface WriteListOptions extends GenerateOptions {
  out: string;
  /**
   * Gzip the output (deterministic for a given zlib build).
   * @default false
   */
  gzip?: boolean;
}

/** Bytes per yielded piece: large enough to amortize stream overhead. */
const PIECE_BYTES = 1 << 20;
/** Room past PIECE_BYTES for the row that crosses it (rows are well under 1 KiB). */
const ROW_MARGIN = 4096;

// Shares of data rows; the rest are fresh addresses.
const DUPLICATE_SHARE = 0.05;
const INVALID_SHARE = 0.01;
/** Share of duplicates that point into the last {@link RECENT_WINDOW} rows (double submits). */
const RECENT_DUPLICATE_SHARE = 0.3;
const RECENT_WINDOW = 5_000;
/** Rows without first and last name (forms that ask for the address only). */
const NO_NAME_SHARE = 0.55;
/** Rows whose first name carries a quoted nickname. */
const NICKNAME_SHARE = 0.006;
/** Rows on a company domain that show the company name. */
const COMPANY_SHOWN_SHARE = 0.25;
/** Rows on a free-mail domain that still name an employer. */
const FREEMAIL_COMPANY_SHARE = 0.03;

// ---------------------------------------------------------------------------------------------
// Randomness: a hash of (seed, index, salt) seeds a mulberry32 stream. Two streams exist so that
// regenerating an earlier row's identity in the middle of a row leaves the row's own draws alone.

const SALT_KIND = 0x1b873593;
const SALT_IDENTITY = 0x2f6a1c3d;
const SALT_ROW = 0x5bd1e995;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hash3(seed: number, index: number, salt: number): number {
  return fmix32(fmix32(index ^ salt) ^ fmix32((seed + Math.imul(salt, 0x9e3779b1)) | 0));
}

/**
 * Stream states live in a typed array: a module-level `let` holding a 32-bit value outside the
 * small-integer range is boxed as a new heap number on every store.
 */
const state = new Int32Array(2);
const ID = 0;
const ROW = 1;

function next(stream: number): number {
  const s = ((state[stream] as number) + 0x6d2b79f5) | 0;
  state[stream] = s;
  let t = Math.imul(s ^ (s >>> 15), 1 | s);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function idRandom(): number {
  return next(ID);
}

function rowRandom(): number {
  return next(ROW);
}

// `| 0` keeps the draws int32 for the JIT: as doubles, every `%` in the digit writers becomes
// a call to fmod.
function idInt(n: number): number {
  return (idRandom() * n) | 0;
}

function rowInt(n: number): number {
  return (rowRandom() * n) | 0;
}

const KIND_FRESH = 0;
const KIND_DUPLICATE = 1;
const KIND_INVALID = 2;

/** Derived from the index alone, so that a later row can tell whether an earlier one is fresh. */
function kindOf(seed: number, index: number): number {
  if (index === 0) return KIND_FRESH;
  const u = hash3(seed, index, SALT_KIND) / 4294967296;
  return u < DUPLICATE_SHARE ? KIND_DUPLICATE : u < DUPLICATE_SHARE + INVALID_SHARE ? KIND_INVALID : KIND_FRESH;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary.

const FIRST_NAMES = words(`
James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard
Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty
Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua
Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa Timothy Deborah Ronald
Stephanie Edward Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia Jacob Kathleen Gary Amy
Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry Pamela Justin Emma Scott Nicole
Brandon Helen Benjamin Samantha Samuel Katherine Gregory Christine Alexander Debra Frank Rachel
Patrick Carolyn Raymond Janet Jack Catherine Dennis Maria Jerry Heather Tyler Diane Aaron Ruth
Adam Olivia Nathan Joyce Henry Virginia Douglas Victoria Zachary Kelly Peter Lauren Kyle
Christina Noah Joan Ethan Evelyn Jeremy Judith Walter Megan Christian Andrea Keith Cheryl Roger
Hannah Terry Jacqueline Austin Martha Sean Gloria Gerald Teresa Carl Ann Harold Sara Dylan
Madison Arthur Frances Lawrence Kathryn Jordan Janice Jesse Jean Bryan Abigail Billy Alice
Bruce Judy Gabriel Sophia Joe Grace Logan Denise Alan Amber Juan Doris Albert Marilyn Willie
Danielle Elijah Beverly Wayne Isabella Randy Theresa Vincent Diana Mason Natalie Roy Brittany
Ralph Charlotte Bobby Marie Russell Kayla Bradley Alexis Philip Lori Eugene Alyssa Mia Liam
Ava Lucas Ella Leo Chloé Zoë José María Søren Łukasz François Renée Jürgen Björn Günter Ingrid
Astrid Mikael Sven Lars Hans Klaus Jörg Anaïs Hélène Léa Amélie Noémie Inès Raphaël Benoît
Joël Élodie Sébastien Ángel Sofía Lucía Martín Andrés Nicolás Matías Camila Valentina Álvaro
Joaquín João Gonçalo Pedro Luís Marco Giulia Francesca Alessandro Giuseppe Lorenzo Chiara
Matteo Aleksandr Dmitri Olga Natalia Katarzyna Małgorzata Paweł Tomasz Agnieszka Jiří Tomáš
Petra Zoltán Ákos Priya Rahul Aarav Ananya Vikram Deepika Arjun Sanjay Wei Jing Hao Yuki
Haruto Sakura Kenji Min-jun Ji-woo Seo-yeon Mohammed Fatima Ahmed Aisha Omar Yusuf Layla
Mehmet Ayşe Emre Zeynep Linh Oluwaseun Chinedu Amara Kwame Siobhán Seán Niamh Aoife Eoin
Ciarán Mary-Jane Jean-Luc Anne-Marie
`);

const LAST_NAMES = words(`
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans
Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson
Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders
Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler
Henderson Barnes Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham
Reynolds Griffin Wallace West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens
Murray Ford Castro Marshall Owens Harrison McDonald Woods Washington Kennedy Wells Vargas Henry
Chen Freeman Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Shaw
Snyder Mason Dixon Hunt Hicks Holmes Palmer Black Robertson Boyd Rose Stone Salazar Fox Warren
Mills Rice Garza Daniels Ferguson Nichols Stephens Soto Weaver Gardner Payne Grant Dunn Spencer
Hawkins Arnold Pierce Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson Carroll
Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Richards
Contreras Willis Carpenter Lawrence Sandoval Müller Schmidt Schneider Fischer Weber Meyer Wagner
Becker Schulz Schäfer Koch Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun
Krüger Hofmann Hartmann Lange Werner Krause Lehmann Köhler Maier Weiß Jäger Groß Dubois Durand
Lefèvre Moreau Laurent Simon Michel Leroy Roux Fournier Girard Bonnet Dupont Lambert Fontaine
Rousseau Vincent García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez
Jiménez Hernández Díaz Moreno Muñoz Álvarez Alonso Gutiérrez Navarro Rossi Russo Ferrari
Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti De_Luca Costa Giordano
Mancini Rizzo Lombardi Silva Santos Ferreira Pereira Oliveira Rodrigues Martins Sousa Fernandes
Gonçalves Gomes Lopes Marques Alves Almeida Ribeiro Pinto Carvalho Teixeira Nowak Kowalski
Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak Dąbrowski Novák
Svoboda Dvořák Černý Nagy Kovács Tóth Szabó Horváth Jansen de_Jong de_Vries van_den_Berg
van_Dijk Bakker Visser Smit Meijer de_Boer Mulder Jensen Nielsen Hansen Pedersen Andersen Larsen
Johansson Andersson Karlsson Nilsson Eriksson Larsson Olsen Berg Haugen Virtanen Korhonen
Mäkinen Nieminen Ivanov Smirnov Kuznetsov Popov Sokolov Petrov Volkov Kozlov Yılmaz Kaya Demir
Şahin Çelik Öztürk Sharma Verma Gupta Singh Kumar Reddy Iyer Rao Mehta Shah Joshi Das Wang Li
Zhang Liu Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo Lin Sato Suzuki Takahashi Tanaka
Watanabe Ito Yamamoto Nakamura Kobayashi Kato Park Choi Jung Kang Cho Yoon Jang Lim Le Pham
Hoang Phan Vu Vo Dang Bui Do Ngo Duong Ly O'Brien O'Connor O'Neill O'Sullivan Walsh Byrne
McCarthy Doyle Gallagher Okafor Adeyemi Mensah Boateng Abubakar Nkosi Dlamini Mwangi Hassan Ali
Hussein Khan Ahmed Rahman Haddad Khoury Nasser Cohen Levi Mizrahi Peretz Friedman Smith-Jones
Taylor-Wood Lloyd-Evans
`);

const NICKNAMES = new Map(
  Object.entries({
    Robert: 'Bob',
    William: 'Bill',
    Elizabeth: 'Liz',
    Katherine: 'Kate',
    James: 'Jim',
    Margaret: 'Peggy',
    Richard: 'Rick',
    Michael: 'Mike',
    Jennifer: 'Jen',
    Christopher: 'Chris',
    Alexander: 'Sasha',
    Patricia: 'Trish',
    Jonathan: 'Jon',
    Samantha: 'Sam',
    Aleksandr: 'Sasha',
    Giuseppe: 'Beppe',
    Francesca: 'Franci',
    Gregory: 'Greg',
    Matthew: 'Matt',
    Daniel: 'Dan',
    Anthony: 'Tony',
    Nicholas: 'Nick',
    Benjamin: 'Ben',
    Timothy: 'Tim',
    Jeffrey: 'Jeff',
    Stephen: 'Steve',
    Steven: 'Steve',
    Andrew: 'Andy',
    Joshua: 'Josh',
    Edward: 'Ted',
    Thomas: 'Tom',
    Joseph: 'Joe',
    Charles: 'Charlie',
    Kenneth: 'Ken',
    Ronald: 'Ron',
    Donald: 'Don',
    Lawrence: 'Larry',
    Raymond: 'Ray',
    Zachary: 'Zach',
    Nathan: 'Nate',
    Rebecca: 'Becky',
    Deborah: 'Debbie',
    Victoria: 'Vicky',
    Jacqueline: 'Jackie',
    Kimberly: 'Kim',
    Stephanie: 'Steph',
    Christine: 'Chris',
    Cynthia: 'Cindy',
    Abigail: 'Abby',
    Susan: 'Sue',
    Pamela: 'Pam',
    Samuel: 'Sam',
    Alessandro: 'Sandro',
  }),
);

const COMPANY_WORDS = words(`
north south east west blue red green silver golden apex summit peak cedar pine oak maple birch
harbor river lake ocean coastal island prairie canyon valley ridge stone iron copper granite
bright clear swift true bold prime first united global metro urban civic royal grand liberty
pioneer frontier heritage legacy vertex quantum vector nova stellar orbit lunar solar polar
atlas titan phoenix falcon eagle hawk raven fox wolf bear lion tiger otter beacon lantern
anchor compass keystone cornerstone bridge tower castle meadow willow aspen sequoia juniper
sage indigo crimson amber ivory onyx cobalt emerald sapphire velvet echo pulse spark fusion
nimbus zenith horizon evergreen highland lowland redwood bluebird hummingbird acme northwind
contoso fabrikam initech globex umbrella hooli vandelay wayne stark tyrell cyberdyne soylent
alpine arctic autumn azure basalt bay birchwood blackstone bluewater boulder brook cascade
chestnut citadel clover coral crescent crest crystal cypress dawn delta dune elm ember everest
fern fjord flint forge garnet glacier grove hazel heron hickory ironwood jade jasper kestrel
lakeside laurel lighthouse lynx magnolia marble mariner mesa midland mistral monarch moss
nautilus oakridge obsidian orchard osprey pacific palisade panther pebble pelican pinnacle
quarry quartz rainier rapids redstone riverside rockwell rowan saffron salt sandstone sentinel
shoreline sierra skyline slate solstice spruce starling sterling stonebridge sunrise tidewater
timber topaz trident tundra twin valor verdant vista walnut waterfront whitewater wildflower
`);

const COMPANY_KINDS = words(`
labs tech systems logistics health foods media capital partners consulting works solutions
energy software studio group analytics dynamics retail ventures bank insurance legal design
motors pharma realty travel fitness cloud data networks security robotics textiles outdoor
brewing coffee bakery dental clinic academy print marine aero farms garden homes builders
foundry interiors kitchens mobility payments recruiting research staffing supply telecom
therapy tools transport vision water wellness wines
`);

/** TLD, legal forms (repeats weigh; a leading comma makes the name need quotes), weight. */
const COMPANY_TLDS: readonly (readonly [string, readonly string[], number])[] = [
  ['com', ['Inc.', 'LLC', '', '', 'Corp.', 'Co.', 'Inc.', 'LLC', ', Inc.'], 55],
  ['io', ['', 'Inc.'], 5],
  ['co', ['', 'Ltd'], 4],
  ['net', ['', 'Inc.'], 4],
  ['de', ['GmbH', 'AG', 'GmbH & Co. KG', 'e.K.'], 8],
  ['co.uk', ['Ltd', 'Ltd', 'plc', 'LLP', ', Ltd.'], 7],
  ['fr', ['SAS', 'SARL', 'SA'], 4],
  ['nl', ['B.V.', 'N.V.'], 3],
  ['es', ['S.L.', 'S.A.'], 2],
  ['it', ['S.r.l.', 'S.p.A.'], 2],
  ['com.au', ['Pty Ltd', 'Pty Ltd', ', Pty. Ltd.'], 2],
  ['ca', ['Inc.', 'Ltd.', 'Inc.', ', Inc.'], 2],
  ['ch', ['AG', 'GmbH', 'SA'], 1],
  ['org', [''], 1],
];

/** Free-mail domains with their share of all rows, in percent. */
const FREEMAIL: readonly (readonly [string, number])[] = [
  ['gmail.com', 22],
  ['googlemail.com', 1],
  ['yahoo.com', 6],
  ['yahoo.co.uk', 1],
  ['yahoo.fr', 0.5],
  ['hotmail.com', 5],
  ['hotmail.co.uk', 0.7],
  ['outlook.com', 4],
  ['live.com', 1.2],
  ['msn.com', 0.5],
  ['icloud.com', 2.5],
  ['me.com', 0.5],
  ['aol.com', 1.5],
  ['gmx.de', 1.2],
  ['gmx.net', 0.6],
  ['web.de', 1],
  ['t-online.de', 0.6],
  ['orange.fr', 0.8],
  ['free.fr', 0.5],
  ['laposte.net', 0.3],
  ['libero.it', 0.5],
  ['proton.me', 0.6],
  ['protonmail.com', 0.4],
  ['yandex.ru', 0.5],
  ['ya.ru', 0.2],
  ['mail.ru', 0.5],
  ['qq.com', 0.4],
  ['naver.com', 0.2],
  ['comcast.net', 0.8],
  ['verizon.net', 0.3],
  ['att.net', 0.3],
  ['btinternet.com', 0.3],
  ['sky.com', 0.2],
  ['bigpond.com', 0.2],
  ['rediffmail.com', 0.2],
  ['uol.com.br', 0.2],
];

/** Internationalized domains (kept in Unicode, as exports show them). */
const IDN_DOMAINS = words(`
bücher.de müller-bau.de straße-immobilien.de café-lumière.fr añejo.mx köln-reisen.de
zürich-versicherung.ch ålesund-fisk.no españa-viajes.es 例え.jp почта.рф dänisch-design.dk
`);
const IDN_SHARE = 0.5; // percent of rows

const PLUS_TAGS = words('news shop promo lists 2019 amazon deals work spam signup ebay receipts');

function words(text: string): string[] {
  // `_` stands for a space inside one entry (de_Luca -> "de Luca").
  const out = text
    .split(/\s+/)
    .filter((w) => w !== '')
    .map((w) => w.replaceAll('_', ' ').normalize('NFC'));
  return [...new Set(out)];
}

const TRANSLIT: Record<string, string> = { ø: 'o', ł: 'l', ß: 'ss', æ: 'ae', đ: 'd', ı: 'i', å: 'a' };

/** ASCII form used in local parts: José -> jose, O'Brien -> o'brien, De Luca -> deluca. */
function asciiName(display: string): string {
  return display
    .toLowerCase()
    .replace(/[øłßæđıå]/g, (c) => TRANSLIT[c] ?? '')
    .normalize('NFD')
    .replace(/[^a-z0-9'-]/g, '');
}

/** Unicode form for local parts on IDN domains (RFC 6531): José García -> josé, garcía. */
function unicodeName(display: string): string {
  return display.toLowerCase().replace(/[\s'-]/g, '');
}

// ---------------------------------------------------------------------------------------------
// Rows are assembled as bytes: as strings, each concatenation allocates a rope node and each
// write flattens and encodes them, which cost more than choosing the content. All fixed text
// lives in one pool addressed by token ids, so copies read one hot array instead of hundreds of
// small ones scattered over the heap.

const enc = new TextEncoder();
const poolParts: Uint8Array[] = [];
const tokenOffsets: number[] = [];
const tokenLengths: number[] = [];
const tokenIds = new Map<string, number>();
let poolLength = 0;

function tok(text: string): number {
  const known = tokenIds.get(text);
  if (known !== undefined) return known;
  const b = enc.encode(text);
  const id = tokenOffsets.length;
  tokenIds.set(text, id);
  poolParts.push(b);
  tokenOffsets.push(poolLength);
  tokenLengths.push(b.length);
  poolLength += b.length;
  return id;
}

function toks(list: readonly string[]): Int32Array {
  return Int32Array.from(list, tok);
}

/** Tokens of the first character of each entry (a code point, never half of one). */
function initials(list: readonly string[]): Int32Array {
  return Int32Array.from(list, (s) => tok(String.fromCodePoint(s.codePointAt(0) ?? 0x3f)));
}

const C_TAB = 9;
const C_LF = 10;
const C_SPACE = 32;
const C_QUOTE = 34;
const C_PLUS = 43;
const C_COMMA = 44;
const C_HYPHEN = 45;
const C_DOT = 46;
const C_COLON = 58;
const C_AT = 64;
const C_UNDERSCORE = 95;

const FIRST_ASCII = FIRST_NAMES.map(asciiName);
const LAST_ASCII = LAST_NAMES.map(asciiName);
const FIRST_UNICODE = FIRST_NAMES.map(unicodeName);
const LAST_UNICODE = LAST_NAMES.map(unicodeName);

const T_FIRST_DISPLAY = toks(FIRST_NAMES);
const T_LAST_DISPLAY = toks(LAST_NAMES);
const T_FIRST_ASCII = toks(FIRST_ASCII);
const T_LAST_ASCII = toks(LAST_ASCII);
const T_FIRST_UNICODE = toks(FIRST_UNICODE);
const T_LAST_UNICODE = toks(LAST_UNICODE);
const T_FIRST_ASCII_INITIAL = initials(FIRST_ASCII);
const T_LAST_ASCII_INITIAL = initials(LAST_ASCII);
const T_FIRST_UNICODE_INITIAL = initials(FIRST_UNICODE);
const T_LAST_UNICODE_INITIAL = initials(LAST_UNICODE);
const T_LAST_SLUG = toks(LAST_ASCII.map((n) => n.replace(/['-]/g, '')));
const T_NICK = toks(FIRST_NAMES.map((n) => NICKNAMES.get(n) ?? (n.length > 5 ? n.slice(0, 4) : n)));
const T_WORD = toks(COMPANY_WORDS);
const T_WORD_CAP = toks(COMPANY_WORDS.map(capitalize));
const T_KIND = toks(COMPANY_KINDS);
const T_KIND_CAP = toks(COMPANY_KINDS.map(capitalize));
const T_TLD = toks(COMPANY_TLDS.map(([tld]) => tld));
const T_FORMS = COMPANY_TLDS.map(([, forms]) => toks(forms));
const T_FREEMAIL = toks(FREEMAIL.map(([d]) => d));
const T_IDN = toks(IDN_DOMAINS);
const T_TAG = toks(PLUS_TAGS);
const T_LAW_TAIL = toks([' & Co', ' & Partners', ' LLP']);
const T_LAW_TLD = toks(['com', 'law', 'co.uk']);
const T_OFFSET = toks(['+01:00', '+02:00', '-05:00', '-08:00', '+05:30', '+09:00']);
const T_EXTRA = toks(['', 'legacy', '"imported via API, v1"', 'n/a']);
/** Days 2019-01-01 .. 2025-06-30 as `YYYY-MM-DDT`. */
const T_DAY = toks(
  Array.from(
    { length: (Date.UTC(2025, 5, 30) - Date.UTC(2019, 0, 1)) / 86_400_000 + 1 },
    (_, d) => `${new Date(Date.UTC(2019, 0, 1 + d)).toISOString().slice(0, 10)}T`,
  ),
);
const T_GMAIL = tok('gmail.com');
const T_GOOGLEMAIL = tok('googlemail.com');
const T_YANDEX = tok('yandex.ru');
const T_YARU = tok('ya.ru');
const T_LOCALHOST = tok('localhost');
const T_AMPERSAND = tok(' &');
const T_DOT = tok('.');
const T_EMPTY = tok('');
const T_SPACE = tok(' ');
const T_AT = tok('@');
const T_PLUS = tok('+');
const T_DOUBLE_DOT = tok('..');

// Every token exists by now; nothing calls tok() after this point.
const POOL: Uint8Array = (() => {
  const pool = new Uint8Array(poolLength);
  poolParts.forEach((b, i) => pool.set(b, tokenOffsets[i]));
  return pool;
})();
const TOKEN_OFFSET = Int32Array.from(tokenOffsets);
const TOKEN_LENGTH = Int32Array.from(tokenLengths);

/** Which key rule a free-mail domain falls under, so variants can be made without comparing text. */
const DOMAIN_OTHER = 0;
const DOMAIN_GMAIL = 1;
const DOMAIN_GOOGLEMAIL = 2;
const DOMAIN_YANDEX = 3;
const DOMAIN_YARU = 4;
const FREEMAIL_KIND = Int32Array.from(FREEMAIL, ([d]) =>
  d === 'gmail.com'
    ? DOMAIN_GMAIL
    : d === 'googlemail.com'
      ? DOMAIN_GOOGLEMAIL
      : d === 'yandex.ru'
        ? DOMAIN_YANDEX
        : d === 'ya.ru'
          ? DOMAIN_YARU
          : DOMAIN_OTHER,
);

/** 4096 slots of domain choices, so that a weighted pick costs one multiply. */
const DOMAIN_SLOTS = 4096;
const SLOT_IDN = -1;
const SLOT_COMPANY = -2;
const DOMAIN_TABLE: Int16Array = (() => {
  const table = new Int16Array(DOMAIN_SLOTS).fill(SLOT_COMPANY);
  let pos = 0;
  const fill = (value: number, percent: number): void => {
    const end = Math.min(DOMAIN_SLOTS, pos + Math.round((percent / 100) * DOMAIN_SLOTS));
    table.fill(value, pos, end);
    pos = end;
  };
  FREEMAIL.forEach(([, weight], i) => fill(i, weight));
  fill(SLOT_IDN, IDN_SHARE);
  return table;
})();

const TLD_SLOTS = 1024;
const TLD_TABLE: Uint8Array = (() => {
  const total = COMPANY_TLDS.reduce((s, [, , w]) => s + w, 0);
  const table = new Uint8Array(TLD_SLOTS);
  let pos = 0;
  COMPANY_TLDS.forEach(([, , w], i) => {
    const end = i === COMPANY_TLDS.length - 1 ? TLD_SLOTS : pos + Math.round((w / total) * TLD_SLOTS);
    table.fill(i, pos, end);
    pos = end;
  });
  return table;
})();

function capitalize(w: string): string {
  return w.charAt(0).toUpperCase() + w.slice(1);
}

/** The `i`-th entry of a token table (bounds are the caller's draw). */
function t(table: Int32Array, i: number): number {
  return table[i] as number;
}

function putToken(dst: Uint8Array, at: number, token: number): number {
  const o = TOKEN_OFFSET[token] as number;
  const n = TOKEN_LENGTH[token] as number;
  for (let k = 0; k < n; k++) dst[at + k] = POOL[o + k] as number;
  return at + n;
}

function putRange(dst: Uint8Array, at: number, src: Uint8Array, from: number, to: number): number {
  for (let k = from; k < to; k++) dst[at++] = src[k] as number;
  return at;
}

function writeInt(dst: Uint8Array, at: number, n: number): number {
  n |= 0;
  let len = 1;
  for (let v = n; v >= 10; v = (v / 10) | 0) len++;
  for (let k = at + len - 1; k >= at; k--) {
    dst[k] = 48 + (n % 10);
    n = (n / 10) | 0;
  }
  return at + len;
}

function writePad(dst: Uint8Array, at: number, n: number, width: number): number {
  n |= 0;
  for (let k = at + width - 1; k >= at; k--) {
    dst[k] = 48 + (n % 10);
    n = (n / 10) | 0;
  }
  return at + width;
}

function indexOfByte(buf: Uint8Array, from: number, to: number, c: number): number {
  for (let k = from; k < to; k++) if (buf[k] === c) return k;
  return -1;
}

// ---------------------------------------------------------------------------------------------
// One person: the parts of a row that a duplicate repeats. identity() fills these scratch
// buffers and fields; every row calls it exactly once (for itself or for the row it repeats).

/** The address: local part, `@`, domain. */
const em = new Uint8Array(1024);
let emLen = 0;
let emAt = 0;
/** Position of the `+` of a tag in the local part, or -1. */
let emPlus = -1;
let idFirst = 0;
let idLast = 0;
let idFreemail = false;
let idDomainKind = DOMAIN_OTHER;
/** The company's display name (company domains only). */
const co = new Uint8Array(256);
let coLen = 0;
let coComma = false;
/** The domain, chosen before the local part that precedes it. */
const dm = new Uint8Array(256);
let dmLen = 0;

function emToken(token: number): void {
  emLen = putToken(em, emLen, token);
}

function emByte(c: number): void {
  em[emLen++] = c;
}

/** Numbers people add to taken free-mail names; wide enough that fresh addresses rarely collide. */
function emNumber(): void {
  const r = idRandom();
  if (r < 0.1) emLen = writePad(em, emLen, idInt(100), 2);
  else if (r < 0.3) emLen = writeInt(em, emLen, 1945 + idInt(68));
  else if (r < 0.6) emLen = writeInt(em, emLen, 100 + idInt(900));
  else if (r < 0.9) emLen = writeInt(em, emLen, 1000 + idInt(9000));
  else emLen = writeInt(em, emLen, 10_000 + idInt(990_000));
}

/** Appends two name parts to the local part, with a separator byte between them (0: none). */
function local(a: number, sep: number, b: number): void {
  emToken(a);
  if (sep !== 0) emByte(sep);
  emToken(b);
}

const LETTER_A = 97;

/** first.m.last */
function withMiddleInitial(f: number, l: number): void {
  emToken(f);
  emByte(C_DOT);
  emByte(LETTER_A + idInt(26));
  emByte(C_DOT);
  emToken(l);
}

function identity(seed: number, index: number): void {
  state[ID] = hash3(seed, index, SALT_IDENTITY);
  idFirst = idInt(FIRST_NAMES.length);
  idLast = idInt(LAST_NAMES.length);
  let f = t(T_FIRST_ASCII, idFirst);
  let l = t(T_LAST_ASCII, idLast);
  let fi = t(T_FIRST_ASCII_INITIAL, idFirst);
  let li = t(T_LAST_ASCII_INITIAL, idLast);
  emLen = 0;
  coLen = 0;
  coComma = false;
  idFreemail = false;
  idDomainKind = DOMAIN_OTHER;
  const slot = DOMAIN_TABLE[idInt(DOMAIN_SLOTS)] ?? SLOT_COMPANY;
  if (slot >= 0) {
    dmLen = putToken(dm, 0, t(T_FREEMAIL, slot));
    idDomainKind = FREEMAIL_KIND[slot] ?? DOMAIN_OTHER;
    idFreemail = true;
    // Taken names get numbers on free-mail: first.last1987, jsmith42, first_last994...
    const s = idRandom();
    if (s < 0.2) {
      local(f, C_DOT, l);
      emNumber();
    } else if (s < 0.3) {
      local(f, 0, l);
      emNumber();
    } else if (s < 0.6) {
      // Initial + last name leaves few combinations: only long numbers keep them apart.
      local(fi, 0, l);
      emLen = writeInt(em, emLen, 1000 + idInt(99_000));
    } else if (s < 0.66) {
      local(f, C_UNDERSCORE, l);
      emLen = writePad(em, emLen, idInt(1000), 3);
    } else if (s < 0.8) {
      emToken(f);
      emLen = writeInt(em, emLen, 1000 + idInt(999_000));
    } else if (s < 0.86) {
      local(l, C_DOT, f);
      emNumber();
    } else if (s < 0.92) {
      withMiddleInitial(f, l);
      emNumber();
    } else {
      emToken(f);
      emByte(LETTER_A + idInt(26));
      emToken(l);
      emLen = writePad(em, emLen, idInt(100), 2);
    }
  } else {
    if (slot === SLOT_IDN) {
      dmLen = putToken(dm, 0, t(T_IDN, idInt(T_IDN.length)));
      if (idRandom() < 0.4) {
        f = t(T_FIRST_UNICODE, idFirst);
        l = t(T_LAST_UNICODE, idLast);
        fi = t(T_FIRST_UNICODE_INITIAL, idFirst);
        li = t(T_LAST_UNICODE_INITIAL, idLast);
      }
    } else {
      company();
    }
    const s = idRandom();
    if (s < 0.45) local(f, C_DOT, l);
    else if (s < 0.7) local(fi, 0, l);
    else if (s < 0.78) local(fi, C_DOT, l);
    else if (s < 0.83) local(f, C_UNDERSCORE, l);
    else if (s < 0.88) local(f, 0, li);
    else if (s < 0.92) local(l, C_DOT, f);
    else if (s < 0.96) withMiddleInitial(f, l);
    else emToken(f);
  }
  emPlus = -1;
  if (idRandom() < 0.02) {
    emPlus = emLen;
    emByte(C_PLUS);
    emToken(t(T_TAG, idInt(T_TAG.length)));
  }
  emAt = emLen;
  emByte(C_AT);
  emLen = putRange(em, emLen, dm, 0, dmLen);
}

/** A company domain and its display name; law firms get "Last, Last & Co" (quoted in CSV). */
function company(): void {
  if (idRandom() < 0.08) {
    const a = idInt(LAST_NAMES.length);
    const b = idInt(LAST_NAMES.length);
    coComma = idRandom() < 0.5;
    coLen = putToken(co, 0, t(T_LAST_DISPLAY, a));
    if (coComma) co[coLen++] = C_COMMA;
    else coLen = putToken(co, coLen, T_AMPERSAND);
    co[coLen++] = C_SPACE;
    coLen = putToken(co, coLen, t(T_LAST_DISPLAY, b));
    coLen = putToken(co, coLen, t(T_LAW_TAIL, idInt(T_LAW_TAIL.length)));
    dmLen = putToken(dm, 0, t(T_LAST_SLUG, a));
    dmLen = putToken(dm, dmLen, t(T_LAST_SLUG, b));
    dm[dmLen++] = C_DOT;
    dmLen = putToken(dm, dmLen, t(T_LAW_TLD, idInt(T_LAW_TLD.length)));
    return;
  }
  const w = idInt(T_WORD.length);
  const k = idInt(T_KIND.length);
  const tld = TLD_TABLE[idInt(TLD_SLOTS)] ?? 0;
  const forms = T_FORMS[tld] as Int32Array;
  const form = t(forms, idInt(forms.length));
  // Short brands ("apex.io", "Apex Inc.") next to descriptive ones ("apexlabs.com").
  const brandOnly = idRandom() < 0.2;
  coLen = putToken(co, 0, t(T_WORD_CAP, w));
  if (!brandOnly) {
    co[coLen++] = C_SPACE;
    coLen = putToken(co, coLen, t(T_KIND_CAP, k));
  }
  if (TOKEN_LENGTH[form] !== 0) {
    coComma = POOL[TOKEN_OFFSET[form] as number] === C_COMMA;
    if (!coComma) co[coLen++] = C_SPACE;
    coLen = putToken(co, coLen, form);
  }
  dmLen = putToken(dm, 0, t(T_WORD, w));
  if (!brandOnly) {
    if (idRandom() < 0.1) dm[dmLen++] = C_HYPHEN;
    dmLen = putToken(dm, dmLen, t(T_KIND, k));
  }
  dm[dmLen++] = C_DOT;
  dmLen = putToken(dm, dmLen, t(T_TLD, tld));
}

// ---------------------------------------------------------------------------------------------
// How a row shows the address: case, spaces, and the ways a duplicate or an invalid cell arises.
// Edits work on `em` in place; only ASCII letters change case, so lower-casing undoes it.

const tmp = new Uint8Array(1024);

/** Replaces `del` bytes of `em` at `start` with a token. */
function splice(start: number, del: number, token: number): void {
  const tail = putRange(tmp, 0, em, start + del, emLen);
  emLen = putRange(em, putToken(em, start, token), tmp, 0, tail);
}

function upper(from: number, to: number): void {
  for (let k = from; k < to; k++) {
    const c = em[k] as number;
    if (c >= 97 && c <= 122) em[k] = c - 32;
  }
}

function caseVariant(): void {
  const r = rowRandom();
  if (r < 0.35) {
    upper(0, 1);
  } else if (r < 0.65) {
    let up = true;
    for (let k = 0; k < emAt; k++) {
      const c = em[k] as number;
      if (up) upper(k, k + 1);
      up = c === C_DOT || c === C_UNDERSCORE || c === C_HYPHEN;
    }
  } else if (r < 0.8) {
    upper(0, emLen);
  } else if (r < 0.92) {
    upper(emAt + 1, emAt + 2);
  } else {
    upper(emAt + 1, emLen);
  }
}

/** 0 = none; otherwise which whitespace surrounds the cell. */
function pickSpacing(): number {
  const r = rowRandom();
  return r < 0.4 ? 1 : r < 0.75 ? 2 : r < 0.95 ? 3 : 4;
}

/** A fresh address as emitted: ~20% mixed case, ~1% surrounding whitespace. */
function decorate(): number {
  if (rowRandom() < 0.2) caseVariant();
  return rowRandom() < 0.007 ? pickSpacing() : 0;
}

/** An earlier row index that holds a fresh address: a duplicate must repeat something real. */
function earlierFresh(seed: number, index: number): number {
  let j =
    rowRandom() < RECENT_DUPLICATE_SHARE
      ? index - 1 - rowInt(Math.min(index, RECENT_WINDOW))
      : rowInt(index);
  while (j > 0 && kindOf(seed, j) !== KIND_FRESH) j--;
  return j;
}

function duplicateVariant(): number {
  const r = rowRandom();
  if (r < 0.25) return 0;
  if (r < 0.6) {
    caseVariant();
    return 0;
  }
  if (r < 0.7) {
    if (rowRandom() < 0.3) caseVariant();
    return pickSpacing();
  }
  sameKeyVariant();
  return decorate();
}

function swapDomain(token: number): void {
  splice(emAt + 1, emLen - emAt - 1, token);
}

/** Another spelling of the same mailbox under the key rules: gmail dots, googlemail, +tag, ya.ru. */
function sameKeyVariant(): void {
  sameKeyEdit();
  // The edits move the `@`; case variants that follow need it.
  emAt = indexOfByte(em, 0, emLen, C_AT);
}

function sameKeyEdit(): void {
  const stemEnd = emPlus >= 0 ? emPlus : emAt;
  const r = rowRandom();
  if (idDomainKind === DOMAIN_GMAIL || idDomainKind === DOMAIN_GOOGLEMAIL) {
    if (r < 0.45 && stemEnd >= 2) {
      if (indexOfByte(em, 0, stemEnd, C_DOT) >= 0) {
        let w = 0;
        for (let k = 0; k < emLen; k++) if (k >= stemEnd || em[k] !== C_DOT) em[w++] = em[k] as number;
        emLen = w;
      } else {
        splice(1 + rowInt(stemEnd - 1), 0, T_DOT);
      }
      return;
    }
    if (r < 0.65) {
      swapDomain(idDomainKind === DOMAIN_GMAIL ? T_GOOGLEMAIL : T_GMAIL);
      return;
    }
  } else if (idDomainKind === DOMAIN_YANDEX || idDomainKind === DOMAIN_YARU) {
    if (r < 0.5) {
      swapDomain(idDomainKind === DOMAIN_YARU ? T_YANDEX : T_YARU);
      return;
    }
  }
  if (emPlus >= 0 && rowRandom() < 0.5) {
    splice(emPlus, emAt - emPlus, T_EMPTY);
  } else {
    splice(stemEnd, emAt - stemEnd, t(T_TAG, rowInt(T_TAG.length)));
    splice(stemEnd, 0, T_PLUS);
  }
}

function invalidVariant(): void {
  const r = rowRandom();
  if (r < 0.25) {
    splice(emAt, 1, rowRandom() < 0.5 ? T_DOT : T_EMPTY);
  } else if (r < 0.42) {
    const dot = indexOfByte(em, 0, emAt, C_DOT);
    if (dot > 0) em[dot] = C_SPACE;
    else splice(1, 0, T_SPACE);
  } else if (r < 0.55) {
    em[emLen++] = C_DOT;
  } else if (r < 0.7) {
    emLen = 0;
  } else if (r < 0.8) {
    swapDomain(T_LOCALHOST);
  } else if (r < 0.87) {
    splice(emAt, 0, T_AT);
  } else if (r < 0.94) {
    const dot = indexOfByte(em, 0, emAt, C_DOT);
    if (dot > 0) splice(dot, 1, T_DOUBLE_DOT);
    else splice(1, 0, T_DOUBLE_DOT);
  } else {
    const dot = indexOfByte(em, emAt, emLen, C_DOT);
    if (dot > 0) emLen = dot;
  }
}

// ---------------------------------------------------------------------------------------------
// Rows.

let out: Buffer = Buffer.alloc(0);
let pos = 0;

/** A cell in quotes, inner quotes doubled. */
function putQuoted(b: Uint8Array, from: number, to: number): void {
  out[pos++] = C_QUOTE;
  for (let k = from; k < to; k++) {
    const c = b[k] as number;
    if (c === C_QUOTE) out[pos++] = C_QUOTE;
    out[pos++] = c;
  }
  out[pos++] = C_QUOTE;
}

function putQuotedToken(token: number): void {
  const o = TOKEN_OFFSET[token] as number;
  putQuoted(POOL, o, o + (TOKEN_LENGTH[token] as number));
}

function putSpacing(kind: number, leading: boolean): void {
  if (kind === 0) return;
  if (kind === 1) {
    if (leading) out[pos++] = C_SPACE;
  } else if (kind === 2) {
    if (!leading) out[pos++] = C_SPACE;
  } else if (kind === 3) {
    out[pos++] = C_SPACE;
    out[pos++] = C_SPACE;
  } else if (leading) {
    out[pos++] = C_TAB;
  } else {
    out[pos++] = 0xc2; // U+00A0, no-break space
    out[pos++] = 0xa0;
  }
}

function putTimestamp(): void {
  const sec = rowInt(86_400);
  pos = putToken(out, pos, t(T_DAY, rowInt(T_DAY.length)));
  pos = writePad(out, pos, (sec / 3600) | 0, 2);
  out[pos++] = C_COLON;
  pos = writePad(out, pos, ((sec / 60) | 0) % 60, 2);
  out[pos++] = C_COLON;
  pos = writePad(out, pos, sec % 60, 2);
  const r = rowRandom();
  if (r < 0.98) {
    if (r >= 0.95) {
      out[pos++] = C_DOT;
      pos = writePad(out, pos, rowInt(1000), 3);
    }
    out[pos++] = 90; // Z
  } else {
    pos = putToken(out, pos, t(T_OFFSET, rowInt(T_OFFSET.length)));
  }
}

/** Appends data row `index` (0-based) of the list for `seed`, with its line feed, to `out`. */
function writeRow(seed: number, index: number): void {
  const kind = kindOf(seed, index);
  state[ROW] = hash3(seed, index, SALT_ROW);
  let spacing: number;
  if (kind === KIND_DUPLICATE) {
    identity(seed, earlierFresh(seed, index));
    spacing = duplicateVariant();
  } else {
    identity(seed, index);
    if (kind === KIND_INVALID) {
      invalidVariant();
      spacing = 0;
    } else {
      spacing = decorate();
    }
  }
  // Some exporters quote every field of some rows.
  const all = rowRandom() < 0.01;

  if (all) out[pos++] = C_QUOTE;
  putSpacing(spacing, true);
  pos = putRange(out, pos, em, 0, emLen);
  putSpacing(spacing, false);
  if (all) out[pos++] = C_QUOTE;
  out[pos++] = C_COMMA;

  const n = rowRandom();
  if (n >= NO_NAME_SHARE) {
    const first = t(T_FIRST_DISPLAY, idFirst);
    if (n < NO_NAME_SHARE + NICKNAME_SHARE) {
      // `Robert "Bob"`, written as "Robert ""Bob""".
      let k = putToken(tmp, 0, first);
      tmp[k++] = C_SPACE;
      tmp[k++] = C_QUOTE;
      k = putToken(tmp, k, t(T_NICK, idFirst));
      tmp[k++] = C_QUOTE;
      putQuoted(tmp, 0, k);
    } else if (all) {
      putQuotedToken(first);
    } else {
      pos = putToken(out, pos, first);
    }
    out[pos++] = C_COMMA;
    const last = t(T_LAST_DISPLAY, idLast);
    if (all) putQuotedToken(last);
    else pos = putToken(out, pos, last);
  } else {
    if (all) putQuoted(tmp, 0, 0);
    out[pos++] = C_COMMA;
    if (all) putQuoted(tmp, 0, 0);
  }
  out[pos++] = C_COMMA;

  if (coLen > 0) {
    if (rowRandom() >= COMPANY_SHOWN_SHARE) coLen = 0;
  } else if (idFreemail && rowRandom() < FREEMAIL_COMPANY_SHARE) {
    coLen = putToken(co, 0, t(T_WORD_CAP, rowInt(T_WORD_CAP.length)));
    co[coLen++] = C_SPACE;
    coLen = putToken(co, coLen, t(T_KIND_CAP, rowInt(T_KIND_CAP.length)));
    coComma = false;
  }
  if (all || (coComma && coLen > 0)) putQuoted(co, 0, coLen);
  else pos = putRange(out, pos, co, 0, coLen);
  out[pos++] = C_COMMA;

  if (all) out[pos++] = C_QUOTE;
  putTimestamp();
  if (all) out[pos++] = C_QUOTE;
  if (rowRandom() < 0.0005) {
    out[pos++] = C_COMMA;
    pos = putToken(out, pos, t(T_EXTRA, rowInt(T_EXTRA.length)));
  }
  out[pos++] = C_LF;
}

function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Expected \`${name}\` to be an integer from ${min} to ${max}, got \`${String(value)}\` (${typeof value})`,
    );
  }
  return value;
}

/**
 * Yields the list as text pieces of many rows each, the header line first. Every piece ends
 * with a line feed, so their concatenation is the file.
 */
export function* generateRows(opts: GenerateOptions): Generator<string> {
  for (const piece of generateBuffers(opts)) yield piece.toString('utf8');
}

function* generateBuffers(opts: GenerateOptions): Generator<Buffer> {
  const rows = checkInteger('rows', opts.rows, 1, MAX_ROWS);
  const seed = checkInteger('seed', opts.seed ?? DEFAULT_SEED, 0, 0xffff_ffff);
  yield Buffer.from(`${HEADER}\n`);
  // `out` and `pos` are shared by every generator in the process; each piece is filled in one
  // synchronous stretch, so interleaved generators never see each other's half-built piece.
  for (let i = 0; i < rows; ) {
    out = Buffer.allocUnsafe(PIECE_BYTES + ROW_MARGIN);
    pos = 0;
    while (i < rows && pos < PIECE_BYTES) writeRow(seed, i++);
    yield out.subarray(0, pos);
  }
}

/**
 * Writes the list to `out` (parent folders are created). `bytes` is the size of the file
 * written, compressed when `gzip` is set.
 */
export async function writeList(opts: WriteListOptions): Promise<{ rows: number; bytes: number }> {
  const pieces = generateBuffers(opts);
  const out = resolve(opts.out);
  await mkdir(dirname(out), { recursive: true });
  // Two pieces in flight (~2 MB) keep the disk busy without buffering the file.
  const source = Readable.from(pieces, { highWaterMark: 2 });
  const sink = createWriteStream(out, { highWaterMark: 1 << 20 });
  if (opts.gzip === true) await pipeline(source, createGzip(), sink);
  else await pipeline(source, sink);
  return { rows: opts.rows, bytes: (await stat(out)).size };
}

// ---------------------------------------------------------------------------------------------
// CLI.

const USAGE = 'Usage: node dist/bench/generate.js --rows N --out FILE [--seed S] [--gzip]';

function parseCount(flag: string, text: string | undefined, min: number, max: number): number {
  const digits = text?.replaceAll('_', '');
  const n = digits !== undefined && /^\d+$/.test(digits) ? Number(digits) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new RangeError(`Expected \`${flag}\` to be an integer from ${min} to ${max}, got \`${text ?? ''}\``);
  }
  return n;
}

export async function main(argv: readonly string[]): Promise<number> {
  let rows: number;
  let seed: number;
  let out: string;
  let gzip: boolean;
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        rows: { type: 'string' },
        out: { type: 'string' },
        seed: { type: 'string' },
        gzip: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (values.rows === undefined) throw new RangeError('Missing `--rows`');
    if (values.out === undefined || values.out === '') throw new RangeError('Missing `--out`');
    rows = parseCount('--rows', values.rows, 1, MAX_ROWS);
    seed = values.seed === undefined ? DEFAULT_SEED : parseCount('--seed', values.seed, 0, 0xffff_ffff);
    out = values.out;
    gzip = values.gzip === true;
  } catch (err) {
    process.stderr.write(`generate: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const started = performance.now();
  const result = await writeList({ rows, seed, out, gzip });
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write(
    `generate: rows=${result.rows} bytes=${result.bytes} (${formatBytes(result.bytes)}) ` +
      `seconds=${seconds.toFixed(2)} rate=${formatNumber(result.rows / seconds)} rows/s out=${out}\n`,
  );
  return 0;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`generate: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
