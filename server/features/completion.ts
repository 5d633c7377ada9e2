import { CompletionItemKind, type CompletionItem, type Position } from "vscode-languageserver";
import type { TextDocument } from "vscode-languageserver-textdocument";
import type { WorkspaceIndex } from "../analyzer/workspace";

/** How far back we look for the enclosing `upstream: [`; options lists are short. */
const LOOKBEHIND = 4_000;

interface UpstreamContext {
  /** What is typed between the opening quote and the cursor. */
  prefix: string;
  /** Offset just after the opening quote. */
  start: number;
}

/**
 * Is the cursor inside a string literal that is an element of an `upstream: [...]` array?
 * Read from the text, not the AST, so that it works on half-typed code that does not parse.
 */
export function upstreamStringContext(text: string, offset: number): UpstreamContext | undefined {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  let quote: string | undefined;
  let quoteAt = -1;
  for (let i = lineStart; i < offset; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'" || c === "`") {
      quote = c;
      quoteAt = i;
    } else if (c === "/" && text[i + 1] === "/") {
      return undefined;
    }
  }
  if (!quote) return undefined;
  let depth = 0;
  const stop = Math.max(0, quoteAt - LOOKBEHIND);
  for (let i = quoteAt - 1; i >= stop; i--) {
    const c = text[i];
    if (c === "]" || c === ")" || c === "}") depth++;
    else if (c === "(" || c === "{") {
      if (depth === 0) return undefined;
      depth--;
    } else if (c === "[") {
      if (depth > 0) {
        depth--;
        continue;
      }
      const before = text.slice(Math.max(0, i - 40), i);
      if (!/\bupstream\s*:\s*$/.test(before)) return undefined;
      return { prefix: text.slice(quoteAt + 1, offset), start: quoteAt + 1 };
    }
  }
  return undefined;
}

/** `uri` is the index's spelling of the document's URI. */
export function completeUpstream(index: WorkspaceIndex, uri: string, doc: TextDocument, position: Position): CompletionItem[] {
  const offset = doc.offsetAt(position);
  const ctx = upstreamStringContext(doc.getText(), offset);
  if (!ctx) return [];
  const range = { start: doc.positionAt(ctx.start), end: position };
  const file = index.get(uri);
  const items: CompletionItem[] = [];
  const dot = ctx.prefix.indexOf(".");
  if (dot === -1) {
    for (const t of file?.tasks ?? []) {
      items.push({
        label: t.id,
        kind: CompletionItemKind.Reference,
        detail: `${t.kind === "shell" ? "shell task" : "task"} of this workflow`,
        documentation: t.description,
        textEdit: { range, newText: t.id },
        sortText: `0${t.id}`,
      });
    }
  }
  const wantWorkflow = dot === -1 ? undefined : ctx.prefix.slice(0, dot);
  for (const other of index.all()) {
    const wf = other.workflow;
    if (!wf || other === file || (wantWorkflow !== undefined && wf.id !== wantWorkflow)) continue;
    if (index.workflowFile(wf.id) !== other) continue;
    for (const t of wf.tasks) {
      const label = `${wf.id}.${t.id}`;
      items.push({
        label,
        kind: CompletionItemKind.Reference,
        detail: `task of workflow ${wf.id}`,
        documentation: t.description,
        textEdit: { range, newText: label },
        sortText: `1${label}`,
      });
    }
  }
  return items;
}
