/**
 * The HTML every Tideflow webview page is built from: escaping, the `html` template tag,
 * the Content Security Policy and its nonce.
 *
 * Invariant: text reaches a page only through `escapeHtml`, and the `html` tag applies it
 * to every interpolated value that is not already `SafeHtml`; so a task named
 * `<img src=x onerror=alert(1)>` is shown, never parsed. Pure (no `vscode`): unit-tested
 * in plain Node.
 */
import { randomBytes } from "node:crypto";

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for element content and for quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** Markup that is already safe: produced by `html` (or `SafeHtml.trusted` for fixed literals). */
export class SafeHtml {
  private constructor(readonly value: string) {}

  /** For markup written in this code base, never for text that came from outside. */
  static trusted(markup: string): SafeHtml {
    return new SafeHtml(markup);
  }

  toString(): string {
    return this.value;
  }
}

export type HtmlValue = string | number | SafeHtml | null | undefined | false | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return "";
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

/**
 * Template tag: html`<td>${task}</td>` escapes `task`. Arrays are joined, null, undefined
 * and false render nothing, nested `html` results pass through unescaped.
 */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
  return SafeHtml.trusted(out);
}

/** A fresh nonce per page: 128 random bits from `crypto`, base64. */
export function makeNonce(): string {
  return randomBytes(16).toString("base64");
}

/**
 * Nothing is allowed but the extension's own styles and images (`cspSource` is the
 * webview's resource origin) and scripts carrying this page's nonce. No inline scripts,
 * no inline styles (so no `style=` attributes either).
 */
export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  if (!/^[A-Za-z0-9+/=_-]+$/.test(nonce)) throw new Error(`Expected a base64 nonce, got ${JSON.stringify(nonce)}`);
  // Host and scheme sources, and the one keyword VS Code puts there ('self', as code-server does).
  if (!/^('self'|[^\s;'"<>&]+)( ('self'|[^\s;'"<>&]+))*$/.test(cspSource)) {
    throw new Error(`Expected webview.cspSource to be CSP source expressions, got ${JSON.stringify(cspSource)}`);
  }
  return `default-src 'none'; img-src ${cspSource}; style-src ${cspSource}; script-src 'nonce-${nonce}';`;
}

export interface WebviewPageOptions {
  /** `webview.cspSource`. */
  cspSource: string;
  nonce: string;
  title: string;
  /** Stylesheet URIs (from `webview.asWebviewUri`), in order. */
  styles: readonly string[];
  /** Script URIs (from `webview.asWebviewUri`); each gets the nonce. */
  scripts: readonly string[];
  body: SafeHtml;
  /** Attributes of <body>, e.g. `{ class: "dag" }`; values are escaped. */
  bodyAttributes?: Readonly<Record<string, string>>;
}

export function webviewPage(options: WebviewPageOptions): string {
  const attributes = Object.entries(options.bodyAttributes ?? {}).map(
    ([name, value]) => html` ${SafeHtml.trusted(attributeName(name))}="${value}"`,
  );
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${cspAttribute(contentSecurityPolicy(options.cspSource, options.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
${options.styles.map((href) => html`<link rel="stylesheet" href="${href}">\n`)}<title>${options.title}</title>
</head>
<body${attributes}>
${options.body}
${options.scripts.map((src) => html`<script nonce="${options.nonce}" src="${src}"></script>\n`)}</body>
</html>
`.value;
}

/**
 * The policy as written: its quotes ('none', 'nonce-…') need no escaping inside a
 * double-quoted attribute, and the page should read literally. `contentSecurityPolicy`
 * checked its parts; this refuses anything that could end the attribute.
 */
function cspAttribute(csp: string): SafeHtml {
  if (/[&<>"]/.test(csp)) throw new Error(`Expected a policy without &, <, > or ", got ${JSON.stringify(csp)}`);
  return SafeHtml.trusted(csp);
}

function attributeName(name: string): string {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`Expected an attribute name like "data-kind", got ${JSON.stringify(name)}`);
  return name;
}
