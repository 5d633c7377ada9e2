/**
 * The runner's WebSocket API (SPEC §4): what clients (the CLI, the extension) send and
 * what the runner pushes. Every message is one JSON text frame.
 *
 * - Client → runner: `{ id, method, params }`; the runner answers each with
 *   `{ id, result }` or `{ id, error: { code, message, ... } }` (`ApiError`): a refused
 *   operation is an error whose `code` a program reads and whose message says why, in
 *   words a person understands. A frame that is not a JSON request gets
 *   `{ id: -1, error: { code: "invalid-params" } }`.
 * - Runner → client, unasked, after `subscribe`: `{ event, ... }` (see `ApiEvent`).
 *   Records are pushed only once they are durable in the journal; log lines once they
 *   are in the attempt's log file.
 * - A client that reads too slowly never slows the runner: its events are dropped
 *   once its send buffer is full, and when it has drained it gets `resync` (fetch the
 *   state again with `runs.get` / `logs.read`).
 */
import type { EngineRecord, Run, RunKind, RunOrder, RunState, RunSummary, TaskState, WorkflowInstance } from "./runner";

/**
 * Why the runner refused or failed a request: stable values a client acts on (grey out
 * an action, retry, tell the user), never reworded. The sentence beside it is for people.
 * - `invalid-params`: the request is malformed (not JSON, a missing or mistyped field);
 *   the message says what was expected and what came.
 * - `unknown-method`: no such method.
 * - `no-run` / `no-instance` / `no-task`: the target names nothing (`no-task`: the run did
 *   not select that task).
 * - `ambiguous-instance`: a single-task operation matched several workflow instances;
 *   `instances` lists some cyctimes to pick from.
 * - `wrong-state`: the operation is not allowed from the task's state; `state` is the
 *   state, `allowed` the states it is allowed from.
 * - `kill-pending`: the task's attempt is being killed already; it becomes `killed` when
 *   its processes are gone.
 * - `nothing-to-do`: a batch operation found no task instance it applies to.
 * - `no-log`: the task has no attempt yet, or not that attempt; `state` is the task
 *   instance's state (a follower waits while it is not_run, waiting or paused).
 * - `file-not-found`, `outside-workspace`: the workflow file.
 * - `workflow-invalid`: the file has errors or no workflow; `diagnostics` lists some.
 * - `invalid-spec`: the run request does not fit the workflow (unknown task, a bizdate
 *   range with no instance, too many instances, from after to), or rerun-downstream's
 *   `only` names a task that is not downstream.
 * - `bundle-failed`: esbuild could not bundle the workflow file.
 * - `stopping`: the runner is shutting down.
 * - `internal`: a bug; the message says what broke.
 * The engine's refusals (`RefusalCode`, protocol/runner.ts) are a subset, passed through.
 */
export type ApiErrorCode =
  | "invalid-params"
  | "unknown-method"
  | "no-run"
  | "no-instance"
  | "no-task"
  | "ambiguous-instance"
  | "wrong-state"
  | "kill-pending"
  | "nothing-to-do"
  | "no-log"
  | "file-not-found"
  | "outside-workspace"
  | "workflow-invalid"
  | "invalid-spec"
  | "bundle-failed"
  | "stopping"
  | "internal";

export interface ApiError {
  code: ApiErrorCode;
  message: string;
  /** `wrong-state`: the task instance's state, and the states the operation needs (`no-log`: the state alone). */
  state?: TaskState;
  allowed?: TaskState[];
  /** `ambiguous-instance`: some of the matching instances' cyctimes. */
  instances?: string[];
  /** `workflow-invalid`: the first errors, as `file:line:col: message`. */
  diagnostics?: string[];
}

/** `.tideflow/runner.json` (mode 0600): how a client finds and authenticates to the runner. */
export interface RunnerInfo {
  pid: number;
  /** The runner process's start time (Linux `/proc/<pid>/stat`), so that a reused pid is not taken for it. */
  pidStart?: string;
  port: number;
  /** Sent as `Authorization: Bearer <token>` on the upgrade request. 32 random bytes, hex. */
  token: string;
  /** The workspace root the runner serves (absolute). */
  workspace: string;
  startedAt: number;
  version: string;
}

/** `runs.create`: a test or backfill of a workflow file (the runner reads the file and fills the workflow id). */
export interface CreateRunParams {
  kind: "test" | "backfill";
  /** Absolute path of the workflow file. */
  file: string;
  tasks?: string[];
  downstream?: boolean;
  bizdate?: string;
  from?: string;
  to?: string;
  parallelism?: number;
  order?: RunOrder;
  /** Who asks: `"cli"`, `"vscode"`. */
  by?: string;
}

/**
 * Where a task operation applies. `run` is a run id (`run-3`, `3`, or `last`);
 * `date` narrows to the run's workflow instances of that bizdate (`YYYY-MM-DD`), or to one
 * instance by its cyctime or id. Without `date` the run's every instance is in scope.
 */
export interface Target {
  run: string;
  task?: string;
  date?: string;
}

export type TaskOperation = "kill" | "rerun" | "set-success" | "pause" | "resume";

export interface OperateParams extends Target {
  op: TaskOperation;
  by?: string;
}

export interface RerunDownstreamParams extends Target {
  task: string;
  /** Downstream tasks to rerun with it; omitted: all of them. */
  only?: string[];
  by?: string;
}

/** What an operation did. */
export interface OperateResult {
  runId: string;
  /**
   * One line per task instance changed, e.g. "load on 2026-11-19: failed → not_run", at
   * most `CHANGED_LINES_MAX` of them; `total` counts them all.
   */
  changed: string[];
  /** Task instances changed (and, for a kill, attempts asked to end). */
  total: number;
  /** Changes by kind: "waiting → killed", "running: being killed", "instance queued → finished"… */
  counts: Record<string, number>;
}

/** The most `changed` lines an OperateResult carries; a batch on a big run is summarised by `counts`. */
export const CHANGED_LINES_MAX = 50;

export interface LogsReadParams extends Target {
  task: string;
  /** Default: the latest attempt. */
  attempt?: number;
  /** Byte offset to read from (default 0). */
  offset?: number;
}

export interface LogsReadResult {
  runId: string;
  instanceId: string;
  task: string;
  attempt: number;
  /** The task instance's state now (a follower stops once it is terminal). */
  state: TaskState;
  path: string;
  text: string;
  /** File size after the text read: the offset to continue from. */
  size: number;
}

/** `runs.plan`: what `runs.create` with the same params would create. Nothing is created. */
export interface RunPlan {
  kind: RunKind;
  file: string;
  workflow: string;
  /** Selected tasks in dependency order, with their upstreams inside the selection. */
  tasks: { id: string; kind: "task" | "shell"; upstream: string[] }[];
  /** Workflow instances in the order they would start. */
  instances: { bizdate: string; cyctime: string }[];
  parallelism: number;
  order: RunOrder;
  /** instances × tasks: the task instances that would run. */
  total: number;
}

/** `runs.instances`: a page of a run's workflow instances, for runs too big for one message. */
export interface InstancesPageParams {
  run: string;
  /** First instance (0-based, in run order); default 0. */
  offset?: number;
  /** Default 100, at most 1000. */
  limit?: number;
  /** Only instances with at least one task instance in this state. */
  state?: TaskState;
}

export interface InstancesPage {
  runId: string;
  /** Instances that match (`state`), in all. */
  total: number;
  offset: number;
  instances: WorkflowInstance[];
}

export interface RunnerStatus {
  pid: number;
  port: number;
  workspace: string;
  startedAt: number;
  version: string;
  runs: number;
  runningRuns: number;
  /** Attempts whose processes run now. */
  activeAttempts: number;
  journal: {
    records: number;
    bytes: number;
    /**
     * Set when this runner found its journal damaged at start (not for a torn last
     * record, which is normal after a crash): `records` unreadable lines were dropped
     * (`bytes` in all), `notApplied` readable records no longer fitted and were skipped,
     * the original file is kept as `keptAs`; `at` is when it was found.
     */
    damage?: JournalDamage;
  };
  clients: number;
}

/** What a runner found damaged in its journal at start (docs/runner-journal.md). */
export interface JournalDamage {
  records: number;
  bytes: number;
  notApplied: number;
  keptAs?: string;
  at: number;
}

/** Every request: its params and its result. */
export interface ApiMethods {
  "runner.status": { params: Record<string, never>; result: RunnerStatus };
  /** Stops the runner: running attempts are killed and their ends journaled first. */
  "runner.stop": { params: Record<string, never>; result: { stopping: true } };
  "runs.list": { params: { state?: RunState }; result: RunSummary[] };
  /**
   * One run. `instances: false` leaves its workflow instances out (`instances: []`), for
   * runs too big for one message: use `runs.list`'s counts and `runs.instances` pages.
   */
  "runs.get": { params: { run: string; instances?: boolean }; result: Run };
  "runs.instances": { params: InstancesPageParams; result: InstancesPage };
  "runs.create": { params: CreateRunParams; result: { run: Run } };
  /** What `runs.create` would create, creating nothing (the CLI's `--dry-run`, the extension's backfill plan). */
  "runs.plan": { params: CreateRunParams; result: RunPlan };
  "task.operate": { params: OperateParams; result: OperateResult };
  "task.rerunDownstream": { params: RerunDownstreamParams; result: OperateResult };
  "logs.read": { params: LogsReadParams; result: LogsReadResult };
  /**
   * `records`: every engine record from now on. `logs`: live lines of a task instance's
   * attempts (one attempt, or all of them when `attempt` is omitted).
   */
  subscribe: {
    params: { records?: boolean; logs?: { instanceId: string; task: string; attempt?: number } };
    result: { subscription: number };
  };
  unsubscribe: { params: { subscription: number }; result: Record<string, never> };
}

export type ApiMethod = keyof ApiMethods;

export interface ApiRequest<M extends ApiMethod = ApiMethod> {
  id: number;
  method: M;
  params: ApiMethods[M]["params"];
}

export type ApiResponse<M extends ApiMethod = ApiMethod> =
  | { id: number; result: ApiMethods[M]["result"] }
  | { id: number; error: ApiError };

/** Durable engine records, in journal order. */
export interface RecordsEvent {
  event: "records";
  records: EngineRecord[];
}

/** Lines now in an attempt's log file, formatted as in the file. */
export interface LogEvent {
  event: "log";
  subscription: number;
  runId: string;
  instanceId: string;
  task: string;
  attempt: number;
  /** Whole lines, each ending in "\n" (one string per batch, whatever its number of lines). */
  text: string;
  /** The log file's size after these lines: lets a client that also read the file skip what it has. */
  end: number;
}

/** Events were dropped because the client read too slowly: fetch the state again. */
export interface ResyncEvent {
  event: "resync";
  reason: string;
}

/** The runner is shutting down (runner.stop, a signal). */
export interface StoppingEvent {
  event: "stopping";
}

export type ApiEvent = RecordsEvent | LogEvent | ResyncEvent | StoppingEvent;

export type ApiServerMessage = ApiResponse | ApiEvent;
