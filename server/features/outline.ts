import { SymbolKind, type CodeLens, type DocumentSymbol, type FoldingRange } from "vscode-languageserver";
import { COMMANDS, type WorkflowCommandArgs } from "../../protocol/lsp";
import type { FileAnalysis, TaskModel } from "../../protocol/model";

export function documentSymbols(file: FileAnalysis): DocumentSymbol[] {
  const taskSymbol = (t: TaskModel): DocumentSymbol => ({
    name: t.id,
    detail: t.kind === "shell" ? "shell task" : "task",
    kind: SymbolKind.Function,
    range: t.range,
    selectionRange: t.idRange,
  });
  const wf = file.workflow;
  if (!wf) return file.tasks.map(taskSymbol);
  return [{
    name: wf.id,
    detail: wf.schedule ? `workflow · ${wf.schedule}` : "workflow",
    kind: SymbolKind.Module,
    // A symbol's range must contain its children's; tasks are declared above the workflow.
    range: file.tasks.reduce((r, t) => (t.range.start.line < r.start.line ? { start: t.range.start, end: r.end } : r), wf.range),
    selectionRange: wf.idRange,
    children: file.tasks.map(taskSymbol),
  }];
}

export function foldingRanges(file: FileAnalysis): FoldingRange[] {
  const out: FoldingRange[] = [];
  for (const r of [...file.tasks.map((t) => t.range), ...(file.workflow ? [file.workflow.range] : [])]) {
    if (r.end.line > r.start.line) out.push({ startLine: r.start.line, endLine: r.end.line });
  }
  return out;
}

/** VS Code's own command that shows the Problems view. */
const SHOW_PROBLEMS = "workbench.actions.view.problems";

/**
 * Lenses above the workflow and each of its tasks: ▶ Test, Backfill…, Show DAG. A file
 * with `errors` (its own and cross-file ones: a run of it would be refused) gets, instead
 * of the run lenses, one that says how many errors there are and opens Problems.
 */
export function codeLenses(file: FileAnalysis, errors = 0): CodeLens[] {
  const wf = file.workflow;
  if (!wf) return [];
  const lenses: CodeLens[] = [];
  const add = (range: CodeLens["range"], task?: string) => {
    const args: WorkflowCommandArgs = { uri: file.uri, workflow: wf.id, ...(task ? { task } : {}) };
    if (errors > 0) {
      const title = `⚠ ${errors} error${errors === 1 ? "" : "s"} in this file: fix ${errors === 1 ? "it" : "them"} to run`;
      lenses.push({ range, command: { title, command: SHOW_PROBLEMS, arguments: [] } });
    } else {
      lenses.push(
        { range, command: { title: task ? "▶ Test task" : "▶ Test workflow", command: COMMANDS.test, arguments: [args] } },
        { range, command: { title: "Backfill…", command: COMMANDS.backfill, arguments: [args] } },
      );
    }
    lenses.push({ range, command: { title: "Show DAG", command: COMMANDS.showDag, arguments: [args] } });
  };
  add(wf.calleeRange);
  for (const t of wf.tasks) add(t.calleeRange, t.id);
  return lenses;
}
