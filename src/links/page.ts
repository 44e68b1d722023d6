/**
 * The page a person sees at an unsubscribe link: plain HTML with its CSS inline, no external
 * asset and no script, readable on a phone, with the security headers that go with it. Pure:
 * every text is escaped here, and the CSP names the one stylesheet by its hash.
 */
import { createHash } from 'node:crypto';
import { ACCOUNT_WIDE } from '../store/store.js';

const CSS = [
  ':root{color-scheme:light dark;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5}',
  'body{margin:0;padding:1rem;background:Canvas;color:CanvasText}',
  'main{max-width:32rem;margin:3rem auto;padding:1.5rem;border:1px solid GrayText;border-radius:.5rem}',
  'h1{font-size:1.5rem;margin:0 0 1rem}',
  'p{margin:0 0 1rem}',
  '.address{font-weight:600;overflow-wrap:anywhere}',
  'button{font:inherit;font-size:1.1rem;padding:.75rem 1.5rem;min-height:44px;border-radius:.4rem;border:2px solid #0b57d0;background:#0b57d0;color:#fff;cursor:pointer}',
  'button.secondary{background:transparent;color:inherit;border-color:GrayText}',
  'button:focus-visible{outline:3px solid #e8710a;outline-offset:2px}',
  '.note{font-size:.9rem;opacity:.85}',
].join('');

/** The CSP allows this stylesheet and nothing else. */
export const STYLE_HASH = `sha256-${createHash('sha256').update(CSS).digest('base64')}`;

/** On every answer of the link routes, whatever its status. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': `default-src 'none'; style-src '${STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** `jane@example.com` as `j•••@example.com`: enough for its owner to know it, not for a passer-by to read it. */
export function maskAddress(address: string): string {
  const at = address.lastIndexOf('@');
  const local = at > 0 ? address.slice(0, at) : address;
  const first = String.fromCodePoint(local.codePointAt(0) ?? 0x2a);
  return `${first}\u2022\u2022\u2022${at > 0 ? address.slice(at) : ''}`;
}

export function scopeText(scope: string): string {
  return scope === ACCOUNT_WIDE ? 'all emails from this sender' : `emails about “${scope}”`;
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

/** The one-click form: the RFC 8058 field, plus `via=page` so that the answer is a page with undo. */
const UNSUBSCRIBE_FORM = `<form method="post" action="">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit" name="via" value="page" aria-describedby="what">Unsubscribe</button>
</form>`;

export interface PageTarget { address: string; scope: string }

/** GET: what the link would do, and the button that does it. */
export function confirmPage(t: PageTarget): string {
  const masked = maskAddress(t.address);
  return layout('Unsubscribe', `<h1>Unsubscribe?</h1>
<p id="what">Stop ${escapeHtml(scopeText(t.scope))} to <span class="address" data-testid="address">${escapeHtml(masked)}</span>.</p>
${UNSUBSCRIBE_FORM}`);
}

/** After the page's POST: done, with undo while the window lasts (`ticket` undefined: no undo). */
export function donePage(t: PageTarget, ticket: string | undefined, windowMinutes: number): string {
  const masked = maskAddress(t.address);
  const undo = ticket === undefined ? '' : `<form method="post" action="">
<input type="hidden" name="undo" value="${escapeHtml(ticket)}">
<button type="submit" class="secondary" aria-describedby="undo-note">Undo</button>
</form>
<p class="note" id="undo-note">Clicked by mistake? You can undo this for ${windowMinutes} minutes.</p>`;
  return layout('Unsubscribed', `<h1>You are unsubscribed</h1>
<p><span class="address" data-testid="address">${escapeHtml(masked)}</span> will no longer get ${escapeHtml(scopeText(t.scope))}.</p>
${undo}`);
}

/** After an undo: subscribed again, with the button to unsubscribe after all. */
export function undonePage(t: PageTarget): string {
  const masked = maskAddress(t.address);
  return layout('Unsubscribe undone', `<h1>Unsubscribe undone</h1>
<p id="what"><span class="address" data-testid="address">${escapeHtml(masked)}</span> stays subscribed to ${escapeHtml(scopeText(t.scope))}.</p>
${UNSUBSCRIBE_FORM}`);
}

/** Every refusal and failure, without anything about the link or the list. */
export function messagePage(title: string, text: string): string {
  return layout(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(text)}</p>`);
}

/** The answer to a mail provider's one-click POST: no page to show, no undo to hand out. */
export const ONE_CLICK_DONE = 'Unsubscribed\n';
