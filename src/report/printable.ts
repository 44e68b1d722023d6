/**
 * Text that came from a file, a request or an option, made safe to print on a terminal or in a
 * log line: a header of a binary file, a `--source` label with escape sequences or newlines
 * could otherwise rewrite the screen or forge log lines, and ten thousand headers would flood it.
 * Control characters (C0, DEL, C1) and the bidirectional and zero-width format characters show as
 * escapes; the length is capped.
 */

// C0 and DEL, C1, and the format characters that reorder or hide text (bidi embeddings,
// overrides and isolates, marks, zero-width characters, the BOM).
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** @param maxChars characters kept before the cut (which says how many were left out) @default 200 */
export function printable(text: string, maxChars = 200): string {
  const cut = text.length > maxChars ? text.slice(0, maxChars) : text;
  const shown = cut.replace(UNPRINTABLE, (c) => NAMED[c] ?? (c.charCodeAt(0) < 0x100
    ? '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0')
    : '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')));
  return cut === text ? shown : `${shown}… (${text.length - maxChars} more characters)`;
}
