/**
 * The Tideflow SDK: what workflow files import as `"tideflow"`.
 *
 * Workflow files are read statically by the language server (literals only) and run by
 * the Tideflow runner, which bundles them and resolves `tideflow` to this module. The
 * functions here only build plain descriptors; nothing runs at import time.
 */

/** `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"1d"`, compounds such as `"1h30m"`, or milliseconds. */
export type Duration = number | `${number}${"ms" | "s" | "m" | "h" | "d"}` | (string & {});

export interface TaskLogger {
  debug(message: string, ...rest: unknown[]): void;
  info(message: string, ...rest: unknown[]): void;
  warn(message: string, ...rest: unknown[]): void;
  error(message: string, ...rest: unknown[]): void;
}

/** What a task function receives. */
export interface TaskContext {
  /** Business date, `YYYY-MM-DD`: the cyctime's calendar date minus one day. */
  readonly bizdate: string;
  /** The cron fire time of this instance, ISO 8601 with the workflow zone's offset. */
  readonly cyctime: string;
  readonly params: Readonly<Record<string, string>>;
  readonly log: TaskLogger;
  /** Aborted when the task is killed or times out. */
  readonly signal: AbortSignal;
  /** 1 for the first attempt, 2 for the first retry, and so on. */
  readonly attempt: number;
  readonly workflow: string;
  readonly task: string;
}

/** A task of this workflow (its constant), `"task_id"`, or `"workflow_id.task_id"`. */
export type Upstream = AnyTaskDef | string;

export interface TaskOptions {
  upstream?: readonly Upstream[];
  /** Attempts after the first failed one. Integer, 0 or more. */
  retries?: number;
  retryDelay?: Duration;
  timeout?: Duration;
  params?: Record<string, string>;
  description?: string;
}

export type TaskFunction = (ctx: TaskContext) => unknown | Promise<unknown>;

export interface TaskDef {
  readonly kind: "task";
  readonly id: string;
  readonly options: TaskOptions;
  readonly run: TaskFunction;
}

export interface ShellTaskDef {
  readonly kind: "shell";
  readonly id: string;
  readonly options: TaskOptions;
  /** Run with `bash -c`; sees BIZDATE, BIZDATE_ISO, CYCTIME, PARAM_<NAME>, ... */
  readonly command: string;
}

export type AnyTaskDef = TaskDef | ShellTaskDef;

export interface WorkflowOptions {
  /** Cron, 5 fields (minute first) or 6 (second first). Omit for an unscheduled workflow. */
  schedule?: string;
  /** IANA zone, e.g. `"Asia/Shanghai"`. Default: the machine's zone. */
  timezone?: string;
  /** Most tasks of one workflow instance running at once. Integer, 1 or more. */
  concurrency?: number;
  description?: string;
  /** Defaults for every task's params. */
  params?: Record<string, string>;
  tasks: readonly AnyTaskDef[];
}

export interface WorkflowDef {
  readonly kind: "workflow";
  readonly id: string;
  readonly options: WorkflowOptions;
}

export function task(id: string, run: TaskFunction): TaskDef;
export function task(id: string, options: TaskOptions, run: TaskFunction): TaskDef;
export function task(id: string, a: TaskOptions | TaskFunction, b?: TaskFunction): TaskDef {
  const [options, run] = typeof a === "function" ? [{}, a] : [a, b];
  if (typeof run !== "function") {
    throw new TypeError(`task("${id}"): expected a function as the last argument, got ${typeof run}`);
  }
  return { kind: "task", id, options, run };
}

export function shell(id: string, command: string): ShellTaskDef;
export function shell(id: string, options: TaskOptions, command: string): ShellTaskDef;
export function shell(id: string, a: TaskOptions | string, b?: string): ShellTaskDef {
  const [options, command] = typeof a === "string" ? [{}, a] : [a, b];
  if (typeof command !== "string") {
    throw new TypeError(`shell("${id}"): expected a command string as the last argument, got ${typeof command}`);
  }
  return { kind: "shell", id, options, command };
}

export function workflow(id: string, options: WorkflowOptions): WorkflowDef {
  return { kind: "workflow", id, options };
}
