/**
 * The runner's WebSocket API (SPEC §4): what clients (the CLI, the extension) send and
 * what the runner pushes. Every message is one JSON text frame.
 *
 * - Client → runner: `{ id, method, params }`; the runner answers each with
 *   `{ id, result }` or `{ id, error: { message } }` (a refused operation is an error
 *   whose message says why, in words a person understands).
 * - Runner → client, unasked, after `subscribe`: `{ event, ... }` (see `ApiEvent`).
 *   Records are pushed only once they are durable in the journal; log lines once they
 *   are in the attempt's log file.
 * - A client that reads too slowly never slows the runner: its events are dropped
 *   once its send buffer is full, and when it has drained it gets `resync` (fetch the
 *   state again with `runs.get` / `logs.read`).
 */
import type { EngineRecord, Run, RunOrder, RunState, RunSummary, TaskState } from "./runner";

/** `.tideflow/runner.json` (mode 0600): how a client finds and authenticates to the runner. */
export interface RunnerInfo {
  pid: number;
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
  /** One line per task instance changed, e.g. "load on 2026-11-19: failed → not_run". */
  changed: string[];
}

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
  journal: { records: number; bytes: number };
  clients: number;
}

/** Every request: its params and its result. */
export interface ApiMethods {
  "runner.status": { params: Record<string, never>; result: RunnerStatus };
  /** Stops the runner: running attempts are killed and their ends journaled first. */
  "runner.stop": { params: Record<string, never>; result: { stopping: true } };
  "runs.list": { params: { state?: RunState }; result: RunSummary[] };
  "runs.get": { params: { run: string }; result: Run };
  "runs.create": { params: CreateRunParams; result: { run: Run } };
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
  | { id: number; error: { message: string } };

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
