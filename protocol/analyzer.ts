/**
 * The channel between the analyzer's child process (`server/analyze-process.ts`,
 * dist/analyze.js) and its parents, the runner and the language server, which reach it
 * through `common/analyze-client.ts`: `AnalyzeRequest` IPC messages in, one
 * `AnalyzeResponse` with the same `id` for each, in order.
 */
import type { FileAnalysis, TaskModel, TideflowDiagnostic, WorkflowModel } from "./model";

export type AnalyzeRequest =
  | { id: number; kind: "file"; /** Absolute path. */ file: string }
  | { id: number; kind: "index"; files: { uri: string; path: string; maxFileSize?: number }[] };

export type FileResult =
  | { ok: true; workflow?: WorkflowModel; errors: TideflowDiagnostic[] }
  /** `reason` completes "<file> …"; `why` says which of the two it is, for a program. */
  | { ok: false; why: "not-a-workflow-file" | "unreadable"; reason: string };

export type AnalyzeResponse =
  | ({ id: number; kind: "file" } & FileResult)
  | { id: number; kind: "index"; analyses: PackedAnalysis[]; /** Files that could not be read. */ missing: string[] }
  | { id: number; kind: "error"; message: string };

/**
 * A FileAnalysis as plain JSON. `tasks` shares its objects with `workflow.tasks`; across
 * the process boundary a shared task is sent once, as its index in `workflow.tasks`.
 */
export interface PackedAnalysis {
  uri: string;
  workflow?: WorkflowModel;
  tasks: (TaskModel | number)[];
  diagnostics: TideflowDiagnostic[];
}

export function packAnalysis(a: FileAnalysis): PackedAnalysis {
  const listed = new Map(a.workflow?.tasks.map((t, i) => [t, i]));
  return { uri: a.uri, workflow: a.workflow, tasks: a.tasks.map((t) => listed.get(t) ?? t), diagnostics: a.diagnostics };
}

export function unpackAnalysis(p: PackedAnalysis): FileAnalysis {
  return {
    uri: p.uri,
    ...(p.workflow ? { workflow: p.workflow } : {}),
    tasks: p.tasks.map((t) => (typeof t === "number" ? p.workflow!.tasks[t] : t)),
    diagnostics: p.diagnostics,
  };
}
