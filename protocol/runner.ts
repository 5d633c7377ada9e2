/**
 * Runs, instances and the records that change them: the runner engine's vocabulary.
 *
 * Producers and consumers:
 * - The engine (`common/engine/engine.ts`) is the only producer of `EngineRecord`s and
 *   `Effect`s, and the only code that mutates `Run` objects (through `apply`).
 * - The journal (`runner/journal.ts`) persists `EngineRecord`s, in order, and replays them
 *   into a fresh engine on restart; records are plain JSON and carry everything needed
 *   to rebuild the state, so replay never needs the workflow file again.
 * - The executor (`runner/exec/`) performs `Effect`s (start and kill processes; the
 *   daemon sets the wake-up timer) and reports attempt exits back to the engine.
 * - The WebSocket API, the CLI and the extension read `Run`, `RunSummary` and the other
 *   plain-data shapes; they never see engine internals.
 */

/**
 * - `not_run`: waiting for an upstream (or for its workflow instance to get a slot).
 * - `waiting`: ready; waiting for a concurrency slot, or for a pending retry's time.
 * - `running`: the current attempt's process runs.
 * - `success` / `failed`: the last attempt ended so (no retries left, for `failed`).
 * - `killed`: stopped by a person (kill, kill run).
 * - `paused`: will not start until resumed; its downstream waits.
 */
export type TaskState = "not_run" | "waiting" | "running" | "success" | "failed" | "killed" | "paused";

export const TASK_STATES: readonly TaskState[] = [
  "not_run",
  "waiting",
  "running",
  "success",
  "failed",
  "killed",
  "paused",
];

/** States no scheduler decision leaves: only an operator moves a task out of them. */
export const TERMINAL_TASK_STATES: readonly TaskState[] = ["success", "failed", "killed"];

export type RunKind = "test" | "backfill";

export type RunOrder = "asc" | "desc";

/** What a client asks for (CLI `test`/`backfill`, the extension's commands). */
export interface RunSpec {
  kind: RunKind;
  /** The workflow file, as the client names it (a `file:` URI or a path). */
  file: string;
  /** The workflow id; must be the id of the workflow the file defines. */
  workflow: string;
  /** Selected task ids; undefined selects every task of the workflow. */
  tasks?: string[];
  /** Also select everything downstream (transitively, within the workflow) of `tasks`. */
  downstream: boolean;
  /** Test runs: the bizdate (`YYYY-MM-DD`); default: yesterday in the workflow's zone. */
  bizdate?: string;
  /** Backfills: the first and last bizdate (`YYYY-MM-DD`), both included. */
  from?: string;
  to?: string;
  /** How many workflow instances run at once; default 1. */
  parallelism?: number;
  /** Bizdate order in which workflow instances start; default `asc`. */
  order?: RunOrder;
}

/**
 * One selected task as the run froze it at creation: later edits of the workflow file do
 * not change a run that exists.
 */
export interface RunTask {
  id: string;
  kind: "task" | "shell";
  /** Shell tasks: the command. */
  command?: string;
  /** Upstream task ids inside the selection. Upstreams outside it (other workflows'
   * tasks included) count as satisfied and are not listed. */
  upstream: string[];
  retries: number;
  retryDelayMs: number;
  timeoutMs?: number;
  /** Workflow params overlaid with the task's own params. */
  params: Record<string, string>;
}

/**
 * - `running`: some workflow instance is queued or active.
 * - otherwise the run has ended for now (an operator can bring it back to `running`):
 *   `success` when every task instance succeeded, else `failed` if any failed, else
 *   `killed` if any was killed, else `paused`.
 */
export type RunState = "running" | "success" | "failed" | "killed" | "paused";

/**
 * Scheduling state of a workflow instance:
 * - `queued`: waits for one of the run's `parallelism` slots; its tasks do not start.
 * - `active`: holds a slot; ready tasks start up to the run's `concurrency`.
 * - `finished`: no task is waiting or running, so nothing can progress without an
 *   operator (every task is success/failed/killed, or paused, or downstream of one of
 *   those). It releases its slot; an operation that gives it work queues it again.
 */
export type InstanceState = "queued" | "active" | "finished";

export interface Run {
  id: string;
  kind: RunKind;
  file: string;
  workflow: string;
  /** The request as the client sent it. */
  spec: RunSpec;
  createdAt: number;
  /** Who asked for it (`"cli"`, `"vscode"`, ...). */
  by?: string;
  parallelism: number;
  order: RunOrder;
  /** Max running tasks within one workflow instance. */
  concurrency: number;
  /** Selected tasks in dependency order (every task after its upstreams). */
  tasks: RunTask[];
  state: RunState;
  /** When the run last left `running`; absent while running. */
  endedAt?: number;
  /** In the order they start (by cyctime, `asc` or `desc`). */
  instances: WorkflowInstance[];
}

export interface WorkflowInstance {
  /** Unique across runs: `<runId>@<cyctime compacted>`, e.g. `run-3@20261120T023000+0800`. */
  id: string;
  runId: string;
  bizdate: string;
  /** ISO 8601 with the zone's offset. */
  cyctime: string;
  state: InstanceState;
  /** One per selected task, in the run's task order. */
  tasks: TaskInstance[];
}

export interface TaskInstance {
  task: string;
  state: TaskState;
  attempts: Attempt[];
  history: HistoryEntry[];
  /** A retry is pending: the task (`waiting` or `paused`) starts again no earlier than this. */
  retryAt?: number;
  /**
   * Set by rerun-downstream / rerun-failed: rerun tasks this one must wait for besides its
   * direct upstreams (they reach it only through tasks that are not rerun). Cleared when
   * the task starts or ends.
   */
  after?: string[];
}

/**
 * `retry`: an automatic retry after a failure (it consumes one of `retries`); `recovery`:
 * a failover attempt after the runner lost the previous one (stopped with the runner, or
 * gone with no known exit after a crash), which does not.
 */
export type AttemptCause = "scheduler" | "retry" | "recovery";

export interface Attempt {
  /** 1-based, across the task instance's whole life (operator reruns continue it). */
  n: number;
  startedAt: number;
  /** `retry` when started as an automatic retry. */
  cause: AttemptCause;
  /** 0 for a first try, k for the k-th automatic retry after it (compared with `retries`). */
  retry: number;
  /** startedAt + timeoutMs, when the task has a timeout. */
  deadline?: number;
  /** The process (and process group) id, once the executor spawned it. */
  pid?: number;
  /** Which executor runs it and how to find it again (`attempt.process`); absent in older journals. */
  handle?: AttemptHandle;
  /** When the engine asked the executor to kill it for passing its deadline. */
  timedOutAt?: number;
  /**
   * When an operator asked for it to be killed. The task stays `running` (shown as being
   * killed) until the attempt's processes are gone; then it becomes `killed`.
   */
  killRequestedAt?: number;
  /** Who asked, for the `killed` history entry. */
  killRequestedBy?: string;
  endedAt?: number;
  exitCode?: number;
  signal?: string;
  /** Why it failed, when an exit code alone does not say (timeout, recovery, spawn error). */
  error?: string;
}

export type HistoryCause = "scheduler" | "retry" | "timeout" | "operator" | "recovery" | "upstream";

/** One state change of a task instance, as shown in its history. */
export interface HistoryEntry {
  at: number;
  from: TaskState;
  to: TaskState;
  cause: HistoryCause;
  /** Who, for operator changes: `"cli"`, `"vscode"`, ... */
  by?: string;
  /** The attempt the change concerns (started, ended). */
  attempt?: number;
}

/** A run in lists (`tideflow runs`, the Instances tree's top level). */
export interface RunSummary {
  id: string;
  kind: RunKind;
  file: string;
  workflow: string;
  state: RunState;
  createdAt: number;
  endedAt?: number;
  by?: string;
  instances: number;
  /** Task instances per state. */
  counts: Record<TaskState, number>;
}

/** The engine's whole state as plain JSON (what `snapshot()` returns). */
export interface EngineSnapshot {
  runs: Run[];
}

// ---------------------------------------------------------------------------------------
// Records: the journal's content. Produced by engine decisions, consumed by `apply`.
// Every record carries `at` (ms since the epoch, the `now` of the decision).
// ---------------------------------------------------------------------------------------

interface TaskRecordBase {
  at: number;
  runId: string;
  instanceId: string;
  task: string;
}

/** A run exists, with its frozen task definitions and instance dates; every instance `queued`. */
export interface RunCreatedRecord {
  type: "run.created";
  at: number;
  run: {
    id: string;
    kind: RunKind;
    file: string;
    workflow: string;
    spec: RunSpec;
    by?: string;
    parallelism: number;
    order: RunOrder;
    concurrency: number;
    tasks: RunTask[];
    instances: { id: string; bizdate: string; cyctime: string }[];
  };
}

export interface RunStateRecord {
  type: "run.state";
  at: number;
  runId: string;
  from: RunState;
  to: RunState;
}

export interface InstanceStateRecord {
  type: "instance.state";
  at: number;
  runId: string;
  instanceId: string;
  from: InstanceState;
  to: InstanceState;
}

/** A task instance's state changes; applying it appends the history entry. */
export interface TaskStateRecord extends TaskRecordBase {
  type: "task.state";
  from: TaskState;
  to: TaskState;
  cause: HistoryCause;
  by?: string;
  attempt?: number;
  /** Replaces the task's `after` list (rerun-downstream, rerun-failed). */
  after?: string[];
}

/** The attempt's process is to be started (the `start` effect goes with it). */
export interface AttemptStartedRecord extends TaskRecordBase {
  type: "attempt.started";
  attempt: number;
  cause: AttemptCause;
  retry: number;
  deadline?: number;
}

/**
 * Where an attempt runs, as its executor kind describes it (runner/exec/kinds.ts): the
 * kind's name, and what that kind needs to find the attempt again after a runner restart
 * — for the local kinds the process group id; a remote kind adds where (`host`) and its
 * own reference (`ref`). Journaled once the attempt's process exists.
 */
export interface AttemptHandle {
  /** The executor kind that started it: "shell", "ts", or a remote kind's name. */
  executor: string;
  /** Its main process (for the local kinds also its process group id). */
  pid: number;
  /** The machine it runs on, when not this one. */
  host?: string;
  /** The kind's own reference to it (a queue job id…). */
  ref?: string;
}

/**
 * The executor started the attempt's process (`handle`; `pid` repeats `handle.pid` for
 * older readers). A restarted runner uses it to adopt the attempt, or to end what a
 * crashed runner left running.
 */
export interface AttemptProcessRecord extends TaskRecordBase {
  type: "attempt.process";
  attempt: number;
  pid: number;
  /** Absent in journals of runners before the executor seam (0.1.0): read as a local attempt of the task's kind. */
  handle?: AttemptHandle;
}

/** The attempt passed its deadline; the engine asked for it to be killed. */
export interface AttemptTimedOutRecord extends TaskRecordBase {
  type: "attempt.timed-out";
  attempt: number;
}

/**
 * An operator asked for the attempt to be killed (`kill`, `kill <run>`); the task becomes
 * `killed` when the attempt's processes are gone, not before (SPEC §3).
 */
export interface AttemptKillRequestedRecord extends TaskRecordBase {
  type: "attempt.kill-requested";
  attempt: number;
  by?: string;
}

/** The attempt's process ended (or is known to be gone, after a runner restart). */
export interface AttemptEndedRecord extends TaskRecordBase {
  type: "attempt.ended";
  attempt: number;
  exitCode?: number;
  signal?: string;
  error?: string;
}

/** A failed attempt will be retried at `retryAt`. */
export interface TaskRetryScheduledRecord extends TaskRecordBase {
  type: "task.retry-scheduled";
  /** The attempt that failed. */
  attempt: number;
  retryAt: number;
}

export type EngineRecord =
  | RunCreatedRecord
  | RunStateRecord
  | InstanceStateRecord
  | TaskStateRecord
  | AttemptStartedRecord
  | AttemptProcessRecord
  | AttemptTimedOutRecord
  | AttemptKillRequestedRecord
  | AttemptEndedRecord
  | TaskRetryScheduledRecord;

// ---------------------------------------------------------------------------------------
// Effects: commands from the engine to the executor. Perform them only after the records
// of the same decision are durable, so that a crash in between is seen by `recover`.
// ---------------------------------------------------------------------------------------

/** Start the attempt's process; report its end with `onAttemptExit`. */
export interface StartEffect {
  type: "start";
  runId: string;
  instanceId: string;
  workflow: string;
  file: string;
  task: string;
  kind: "task" | "shell";
  command?: string;
  attempt: number;
  bizdate: string;
  cyctime: string;
  params: Record<string, string>;
  timeoutMs?: number;
  /** The engine kills the attempt (a `kill` effect, reason `timeout`) at its first tick past this. */
  deadline?: number;
}

/** End the attempt's whole process tree (SIGTERM, then SIGKILL after a grace period). */
export interface KillEffect {
  type: "kill";
  runId: string;
  instanceId: string;
  task: string;
  attempt: number;
  reason: "operator" | "timeout";
}

/**
 * Call `tick(at)` at (or soon after) this time: a retry falls due or a deadline passes.
 * Every decision that is not refused ends with the wake for the earliest pending time, and
 * it replaces any earlier one; a decision without a wake has nothing timed pending.
 * A tick with nothing due is harmless.
 */
export interface WakeEffect {
  type: "wake";
  at: number;
}

export type Effect = StartEffect | KillEffect | WakeEffect;

/** What every engine decision returns: records already applied, effects to perform. */
export interface Decision {
  records: EngineRecord[];
  effects: Effect[];
}

/**
 * Why the engine refused: stable values a program acts on, the same as the API's
 * `ApiErrorCode` of that name (protocol/api.ts), so that the runner passes them through.
 * - `no-run` / `no-instance` / `no-task`: the reference names nothing (`no-task`: the run
 *   did not select that task).
 * - `no-log`: no such attempt (an attempt is what has a log).
 * - `wrong-state`: the task's state does not allow the operation (`state`, `allowed`).
 * - `nothing-to-do`: a batch operation found no task instance it applies to.
 * - `invalid-spec`: the run spec does not fit the workflow, or the chosen tasks do not fit
 *   the run (a task that is not downstream).
 */
export type RefusalCode = "no-run" | "no-instance" | "no-task" | "no-log" | "wrong-state" | "kill-pending" | "nothing-to-do" | "invalid-spec";

/** A refused decision: nothing changed. `reason` is for a person, `code` for a program. */
export interface Refusal {
  ok: false;
  code: RefusalCode;
  reason: string;
  /** `wrong-state`: the task instance's state, and the states the operation needs. */
  state?: TaskState;
  allowed?: TaskState[];
}

/** Operations (and run creation) are refused, changing nothing, with a reason a person understands. */
export type OperationResult = ({ ok: true } & Decision) | Refusal;

export type CreateRunResult = ({ ok: true; runId: string } & Decision) | Refusal;

/** How the executor saw an attempt end. */
export interface AttemptExit {
  exitCode?: number;
  signal?: string;
  /** The executor's own failure (spawn failed, bundle failed); the attempt fails. */
  error?: string;
  /**
   * The runner ended it because the runner is stopping (not the task's fault): the task
   * runs again, as a failover attempt, when a runner starts.
   */
  interrupted?: boolean;
  /**
   * When the attempt ended, when the executor knows it and it was not just now: an attempt
   * that ended while no runner watched (adopted after a restart) ended when its exit file
   * was written, not when the new runner saw it. Default: the time the exit is applied.
   */
  endedAt?: number;
}

/** A task instance addressed by an operation. */
export interface TaskRef {
  instanceId: string;
  task: string;
}

/** A whole run, or one of its workflow instances (kill run, rerun failed). */
export interface RunScope {
  runId: string;
  instanceId?: string;
}
