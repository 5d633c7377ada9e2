/**
 * The workflow model: what the analyzer extracts from a workflow file. Shared by the
 * language server, the CLI, the runner and the extension, so it holds plain data only.
 */

/** Zero-based, like LSP: `character` counts UTF-16 code units. */
export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export type DiagnosticCode =
  | "parse-error"
  | "missing-workflow"
  | "invalid-id"
  | "duplicate-task"
  | "duplicate-workflow"
  | "unknown-upstream"
  | "cycle"
  | "invalid-cron"
  | "invalid-timezone"
  | "invalid-duration"
  | "invalid-option"
  | "task-not-in-workflow"
  | "not-static"
  | "file-too-large";

/** Same numbering as LSP's DiagnosticSeverity. */
export type Severity = 1 | 2 | 3 | 4;
export const SEVERITY = { error: 1, warning: 2, information: 3, hint: 4 } as const;

export interface TideflowDiagnostic {
  range: Range;
  severity: Severity;
  code: DiagnosticCode;
  message: string;
  /** The fix a person would make, when it is obvious (a quick fix in the editor). */
  fix?: DiagnosticFix;
}

/** Replace each range of the diagnostic's file with its text. */
export interface DiagnosticFix {
  /** What the quick fix says: "Change to `transform`". */
  title: string;
  edits: { range: Range; newText: string }[];
}

/** One entry of a task's `upstream` list. */
export interface UpstreamRef {
  /** Task id it names, resolved from a constant when written as an identifier. */
  task: string;
  /** Workflow id for `"workflow_id.task_id"`; undefined for a task of the same workflow. */
  workflow?: string;
  /** How it was written: a string literal, or a task constant's name. */
  form: "string" | "identifier";
  /** Range of the whole literal or identifier. */
  range: Range;
  /** Range of just the task id inside the literal (what rename edits). */
  taskRange: Range;
}

export interface TaskModel {
  id: string;
  kind: "task" | "shell";
  /** Range of the id string literal. */
  idRange: Range;
  /** The top-level constant that holds the task, if any. */
  constName?: string;
  /** The whole declaration (folding, document symbols). */
  range: Range;
  /** Range of the `task`/`shell` callee: where code lenses sit. */
  calleeRange: Range;
  upstream: UpstreamRef[];
  retries?: number;
  retryDelayMs?: number;
  timeoutMs?: number;
  params?: Record<string, string>;
  description?: string;
  /** Shell tasks with a literal command. */
  command?: string;
  /** Listed in the workflow's `tasks`. */
  listed: boolean;
}

export interface WorkflowModel {
  id: string;
  idRange: Range;
  /** The whole `export default workflow(...)` statement. */
  range: Range;
  calleeRange: Range;
  schedule?: string;
  scheduleRange?: Range;
  timezone?: string;
  timezoneRange?: Range;
  concurrency?: number;
  description?: string;
  params?: Record<string, string>;
  tasks: TaskModel[];
}

/** What the analyzer returns for one file. */
export interface FileAnalysis {
  uri: string;
  /** Undefined when the file has no (statically readable) workflow. */
  workflow?: WorkflowModel;
  /** Tasks found in the file, listed in the workflow or not. Same objects as `workflow.tasks`. */
  tasks: TaskModel[];
  /** Diagnostics that depend on this file alone. */
  diagnostics: TideflowDiagnostic[];
}

/** A node id in the workspace graph: `workflow_id.task_id`. */
export function qualifiedTaskId(workflow: string, task: string): string {
  return `${workflow}.${task}`;
}

export const ID_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*$/;
