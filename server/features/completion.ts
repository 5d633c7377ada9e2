import { CompletionItemKind, type CompletionItem, type Position, type Range } from "vscode-languageserver";
import type { TextDocument } from "vscode-languageserver-textdocument";
import { taskKey, type WorkspaceIndex } from "../analyzer/workspace";
import { ID_PATTERN } from "../../protocol/model";

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

/**
 * Task ids for the string under the cursor in an `upstream` list. Offered: tasks that can
 * be an upstream of the task being edited — not the task itself, not one of its downstream
 * tasks (that would make a cycle), not an entry it already lists, not an id that is not
 * valid, each once. Tasks of the same workflow first, then other workflows' as
 * `workflow.task`. `uri` is the index's spelling of the document's URI.
 */
export function completeUpstream(index: WorkspaceIndex, uri: string, doc: TextDocument, position: Position): CompletionItem[] {
  const offset = doc.offsetAt(position);
  const ctx = upstreamStringContext(doc.getText(), offset);
  if (!ctx) return [];
  const range = { start: doc.positionAt(ctx.start), end: position };
  const file = index.get(uri);
  // The task whose declaration holds the cursor, as last analyzed.
  const editing = file?.tasks.find((t) => contains(doc, t.range, offset));
  const excluded = new Set<string>();
  if (file && editing) {
    const own = file.workflow?.id;
    const key = (wf: string | undefined, task: string) => (wf === undefined || wf === own ? task : `${wf}.${task}`);
    excluded.add(editing.id);
    for (const ref of editing.upstream) {
      if (!contains(doc, ref.range, offset)) excluded.add(key(ref.workflow, ref.task));
    }
    const self = file.tasks.filter((t) => t.id === editing.id);
    const queue = self.map((t) => ({ file, task: t, key: taskKey(file, t) }));
    const seen = new Set(queue.map((h) => h.key));
    while (queue.length > 0) {
      for (const d of index.downstream(queue.shift()!)) {
        if (seen.has(d.key)) continue;
        seen.add(d.key);
        queue.push(d);
        excluded.add(key(d.file.workflow?.id, d.task.id));
      }
    }
  }
  const offered = new Set<string>();
  const items: CompletionItem[] = [];
  const offer = (label: string, item: Omit<CompletionItem, "label" | "textEdit">) => {
    if (offered.has(label) || excluded.has(label)) return;
    offered.add(label);
    items.push({ label, textEdit: { range, newText: label }, ...item });
  };
  const dot = ctx.prefix.indexOf(".");
  if (dot === -1) {
    for (const t of file?.tasks ?? []) {
      if (!ID_PATTERN.test(t.id)) continue;
      offer(t.id, {
        kind: CompletionItemKind.Reference,
        detail: `${t.kind === "shell" ? "shell task" : "task"} of this workflow`,
        documentation: t.description,
        sortText: `0${t.id}`,
      });
    }
  }
  const wantWorkflow = dot === -1 ? undefined : ctx.prefix.slice(0, dot);
  for (const other of index.all()) {
    const wf = other.workflow;
    if (!wf || other === file || !ID_PATTERN.test(wf.id) || (wantWorkflow !== undefined && wf.id !== wantWorkflow)) continue;
    if (index.workflowFile(wf.id) !== other) continue;
    for (const t of wf.tasks) {
      if (!ID_PATTERN.test(t.id)) continue;
      offer(`${wf.id}.${t.id}`, {
        kind: CompletionItemKind.Reference,
        detail: `task of workflow ${wf.id}`,
        documentation: t.description,
        sortText: `1${wf.id}.${t.id}`,
      });
    }
  }
  return items;
}

function contains(doc: TextDocument, range: Range, offset: number): boolean {
  return doc.offsetAt(range.start) <= offset && offset <= doc.offsetAt(range.end);
}
