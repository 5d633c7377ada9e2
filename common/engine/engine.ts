/**
 * The runner's engine: runs, workflow instances and task instances as an event-sourced
 * state machine (SPEC §3). Pure: no I/O, no timers, no clock (`now` is always passed in).
 *
 * - State changes only in `apply(record)`. Decisions (`createRun`, `onAttemptExit`,
 *   `tick`, `recover`, the operations) compute records, apply each at once (later steps
 *   of the same decision see its effect), and return them with the effects for the
 *   executor. `Engine.replay(records)` therefore rebuilds the same state.
 * - The caller persists a decision's records before it performs the effects; if the
 *   runner dies in between, the journal shows attempts as running whose processes may
 *   never have started, and `recover` ends them.
 *
 * `Engine` is the one public face (the runner, the extension and the tests use nothing
 * else); the work is done in this folder's modules, each over the same `EngineState`:
 * - state.ts, tables.ts: the runs and the indexes derived from them;
 * - apply.ts: the reducer, the only code that changes the state;
 * - decision.ts: one decision under way (`Tx`), which emits records through the reducer;
 * - plan.ts: what a run spec asks of a workflow, and the run's creation;
 * - scheduling.ts: slots, concurrency, readiness, retries, timeouts and wake times;
 * - attempts.ts: attempt exits, spawned processes, recovery after a restart;
 * - operations.ts: the operator's operations, their refusals and their batch forms;
 * - restore.ts: a damaged journal's restore, its repairs, snapshot entries;
 * - refusals.ts: refusal codes and the sentences they carry.
 */
import type { WorkflowModel } from "../../protocol/model";
import type { OperationSpec } from "../../protocol/operations";
import type {
  AttemptExit,
  AttemptHandle,
  CreateRunResult,
  Decision,
  EngineRecord,
  EngineSnapshot,
  OperationResult,
  Run,
  RunScope,
  RunSpec,
  RunSummary,
  StartEffect,
  TaskRef,
  TaskState,
  WorkflowInstance,
} from "../../protocol/runner";
import { applyRecord } from "./apply";
import { attemptEffect, onAttemptExit, pendingKillOf, recordProcess, recover, unendedAttempts } from "./attempts";
import { type BatchScope, kill, killRun, operateRun, operateTask, rerunDownstream, rerunFailed } from "./operations";
import { createRun } from "./plan";
import { closeLostAttemptEnds, restoreInto, type SnapshotEntry, settleLostTransitions, snapshotEntries } from "./restore";
import { tick } from "./scheduling";
import { EngineState, type RunIndex, verifyIndexes } from "./state";

/** The states each single-task operation is allowed from (SPEC §3): protocol/operations.ts. */
export { OPERATION_FROM } from "../../protocol/operations";
export { RECOVERY_ERROR, RECOVERY_KILLED_ERROR, STOPPED_ERROR } from "./attempts";
export { DEFAULT_CONCURRENCY, planRun, type RunDraft } from "./plan";
export { LOST_ATTEMPT_ERROR, LOST_END_ERROR, type SnapshotEntry } from "./restore";
export { schedulerWork } from "./state";
export type { BatchScope } from "./operations";

export class Engine {
  private readonly state = new EngineState();

  static replay(records: Iterable<EngineRecord>): Engine {
    const engine = new Engine();
    for (const record of records) engine.apply(record);
    return engine;
  }

  /**
   * Rebuilds the state a runner's journal holds (its start), tolerating damage: the
   * snapshot entries of a compacted journal (`snapshotEntries`), then the records. A record
   * that no longer fits, because a neighbour was lost, is used as far as it still tells
   * the truth, else skipped and counted in `notApplied`:
   * - a state change whose `from` is not the current state is applied from the current
   *   state (its `to` is what happened then), counted in `adjusted`;
   * - a record naming an attempt the task does not have yet gives the task that attempt
   *   (its `attempt.started` was lost; one lost before it ends at once), so that attempt
   *   numbers, and with them log files, are never used twice;
   * - a record naming a run, instance, task or attempt that does not exist, a run created
   *   twice, or anything `apply` refuses, is skipped.
   * Every `run-<n>` id named anywhere, skipped records included, stays taken.
   * `closeLostAttemptEnds` and `settleLostTransitions` then repair what a lost record left
   * half done. `replay` is the strict form (the extension, tests).
   */
  static restore(snapshot: Iterable<unknown>, records: Iterable<EngineRecord>): { engine: Engine; notApplied: number; adjusted: number; problems: string[] } {
    const engine = new Engine();
    return { engine, ...restoreInto(engine.state, snapshot, records) };
  }

  /**
   * After a damaged journal, before processes left over are looked for: attempts whose
   * end was decided (the task's history moved on from `running` with that attempt, and
   * not by a kill) but whose `attempt.ended` record was lost are closed, so that nothing
   * takes them for attempts that may still run.
   */
  closeLostAttemptEnds(now: number): Decision {
    return closeLostAttemptEnds(this.state, now);
  }

  /**
   * After a damaged journal, once `recover` has run: a task still `running` whose attempt
   * has ended lost the record of how the engine decided that end. It is decided again
   * from the attempt (success on exit 0, else failed or retried as its budget says),
   * cause `recovery`, and the scheduler carries on. Nothing that finished runs again.
   */
  settleLostTransitions(now: number): Decision {
    return settleLostTransitions(this.state, now);
  }

  /** The next default run id is above `run-<n>`: ids of runs lost from a damaged journal, or whose log folders exist, are never used again. */
  reserveRunIds(n: number): void {
    this.state.reserveRunIds(n);
  }

  /**
   * The state as journal snapshot entries, for `restore`: the run-id floor, then each run
   * (a run of many instances as several entries). Live objects: serialize each at once.
   */
  snapshotEntries(): Generator<SnapshotEntry> {
    return snapshotEntries(this.state);
  }

  // ------------------------------------------------------------------------------------
  // apply: the only place state changes
  // ------------------------------------------------------------------------------------

  /** Applies one record. Throws when the record does not fit the state (a corrupt journal). */
  apply(record: EngineRecord): void {
    applyRecord(this.state, record);
  }

  /**
   * Takes a run as a runner reported it (`runs.get`), in whatever state, so that the
   * records that follow apply to it as they do in the runner: the extension keeps its
   * picture of the runs with this same reducer. Replaces an earlier copy of the run.
   */
  load(run: Run): void {
    this.forget(run.id);
    this.state.indexRun(structuredClone(run));
  }

  /** Drops a run and its instances (a client that no longer shows it). */
  forget(runId: string): void {
    this.state.forget(runId);
  }

  /** Whether the engine holds the run (a client loads only some). */
  hasRun(runId: string): boolean {
    return this.state.runs.has(runId);
  }

  // ------------------------------------------------------------------------------------
  // Decisions
  // ------------------------------------------------------------------------------------

  /**
   * Creates a run of `workflow` (the analyzer's model of `spec.file`) and starts what it
   * can. Refused (nothing recorded) when the spec does not fit the workflow (`planRun`).
   */
  createRun(spec: RunSpec, workflow: WorkflowModel, now: number, by?: string, id?: string): CreateRunResult {
    return createRun(this.state, spec, workflow, now, by, id);
  }

  /**
   * The executor saw attempt `attempt` of `task` end. Reports for an attempt that has
   * ended already (recovered, or reported twice) change nothing. A report for an open
   * attempt that is no longer current or no longer running (the task was killed, or
   * rerun since) records how it ended and leaves the task's state alone.
   *
   * An attempt an operator asked to kill becomes `killed` here. `exit.interrupted`: the runner
   * ended it because it is stopping (not the task's fault): the task goes back to
   * `waiting` for a failover attempt (cause `recovery`) that does not consume a retry.
   */
  onAttemptExit(instanceId: string, task: string, attempt: number, exit: AttemptExit, now: number): OperationResult {
    return onAttemptExit(this.state, instanceId, task, attempt, exit, now);
  }

  /**
   * From now on nothing starts: `runner stop` is ending the running attempts, and their
   * ends (reported with `interrupted`) must not start retries or downstream tasks that
   * would never run. Not journaled: the next runner starts unhalted.
   */
  halt(): void {
    this.state.halted = true;
  }

  /**
   * Call when a `wake` time has come (any call is safe): kills attempts past their
   * deadline (the exit report then fails them) and starts retries that fell due.
   */
  tick(now: number): Decision {
    return tick(this.state, now);
  }

  /**
   * The executor spawned an attempt's process: the record to journal (already applied),
   * or undefined when the attempt is unknown or already ended (a kill raced the spawn).
   */
  recordProcess(ref: TaskRef, attempt: number, handle: AttemptHandle, now: number): EngineRecord | undefined {
    return recordProcess(this.state, ref, attempt, handle, now);
  }

  /** The `start` effect of an existing attempt, as the scheduler made it: what an executor needs to adopt it. */
  attemptEffect(instanceId: string, task: string, attempt: number): StartEffect | undefined {
    return attemptEffect(this.state, instanceId, task, attempt);
  }

  /** Why an unended attempt is being killed (`operator`, `timeout`), if it is. */
  pendingKillOf(instanceId: string, task: string, attempt: number): "operator" | "timeout" | undefined {
    return pendingKillOf(this.state, instanceId, task, attempt);
  }

  /** Attempts with no recorded end, and their pids: what a crashed runner may have left running. */
  unendedAttempts(): { runId: string; instanceId: string; task: string; attempt: number; pid?: number; handle?: AttemptHandle }[] {
    return unendedAttempts(this.state);
  }

  /**
   * After a restart (the journal replayed), for every attempt with no recorded end except
   * those in `adopted` (markers `<instanceId>/<task>/<attempt>` of attempts the executor
   * found still running and adopted; their exits come later through `onAttemptExit`):
   * its process is gone with no known exit, so it ends with `RECOVERY_ERROR` and the task
   * goes back to `waiting` for a failover attempt (cause `recovery`) that does not consume
   * a retry (SPEC §3). An attempt being killed by an operator becomes `killed`, one being
   * killed for its timeout fails as timed out. Then the scheduler carries on. Scans every
   * task instance, once per restart.
   */
  recover(now: number, adopted: ReadonlySet<string> = new Set()): Decision {
    return recover(this.state, now, adopted);
  }

  // ------------------------------------------------------------------------------------
  // Operations: each checks its precondition and is refused with the reason otherwise.
  // ------------------------------------------------------------------------------------

  /**
   * waiting → killed at once. running: the attempt is asked to end (a `kill` effect) and
   * the task stays `running` until its processes are gone (`onAttemptExit` makes it
   * `killed`), so that nothing needing it ended (rerun, set success, downstream) can
   * start meanwhile. A second kill of the same attempt is refused.
   */
  kill(ref: TaskRef, now: number, by?: string): OperationResult {
    return kill(this.state, ref, now, by);
  }

  /**
   * not_run, success, failed, killed → waiting: the task runs again (a new attempt, with
   * a fresh retry budget) as soon as its instance has a slot, whatever its upstreams'
   * states: the operator asked for this task. On success its not_run downstream proceeds.
   */
  rerun(ref: TaskRef, now: number, by?: string): OperationResult {
    return operateTask(this.state, "rerun", ref, now, by);
  }

  /** failed, killed → success; not_run downstream proceeds. */
  setSuccess(ref: TaskRef, now: number, by?: string): OperationResult {
    return operateTask(this.state, "setSuccess", ref, now, by);
  }

  /** not_run, waiting → paused: not started until resumed; its downstream waits. */
  pause(ref: TaskRef, now: number, by?: string): OperationResult {
    return operateTask(this.state, "pause", ref, now, by);
  }

  /**
   * paused → waiting when it can start (its upstreams succeeded, or a retry was pending
   * when it was paused), else → not_run.
   */
  resume(ref: TaskRef, now: number, by?: string): OperationResult {
    return operateTask(this.state, "resume", ref, now, by);
  }

  /**
   * The task reruns (as `rerun`), and each chosen downstream task (ids, or `"all"` of its
   * transitive downstream) gets a new attempt after the rerun tasks it depends on,
   * directly or through tasks that are not rerun, have succeeded.
   */
  rerunDownstream(ref: TaskRef, downstream: readonly string[] | "all", now: number, by?: string): OperationResult {
    return rerunDownstream(this.state, ref, downstream, now, by);
  }

  /**
   * Kill run (a run, or one of its workflow instances), the batch form of `kill` (SPEC
   * §3): every waiting and running task instance is killed as `kill` does (running ones
   * become `killed` when their processes are gone), and workflow instances that have not
   * started (queued) are cancelled: they finish with their tasks `not_run`, so the run
   * ends. Not_run and paused tasks of started instances keep their state. `rerunFailed`
   * afterwards reruns what was killed and queues the cancelled instances again.
   */
  killRun(scope: RunScope, now: number, by?: string): OperationResult {
    return killRun(this.state, scope, now, by);
  }

  /** Rerun failed (a run, or one instance): every failed or killed task reruns, in dependency order. */
  rerunFailed(scope: RunScope, now: number, by?: string): OperationResult {
    return rerunFailed(this.state, scope, now, by);
  }

  /**
   * The batch form of an operation (no task named) on a run, or on some of its workflow
   * instances, as one decision: the scope checked once, every record and effect in one
   * answer for one journal batch, run states and the wake worked out once at the end.
   * - `kill`: `killRun`, on the run, or on each instance in turn;
   * - `rerun`: `rerunFailed`, on the run, or on each instance in turn;
   * - `setSuccess`, `pause`, `resume`: the single-task operation on every task instance
   *   in a state it is allowed from (OPERATION_FROM), in run order.
   * Each step sees what the scheduler made of those before it, so the records are the
   * ones the steps would make as decisions of their own (less the run-state changes in
   * between). Refused `nothing-to-do` when there is nothing to change in the scope.
   */
  operateRun(operation: OperationSpec["method"], scope: BatchScope, now: number, by?: string): OperationResult {
    return operateRun(this.state, operation, scope, now, by);
  }

  // ------------------------------------------------------------------------------------
  // Queries: copies, so callers cannot change the engine's state behind `apply`.
  // ------------------------------------------------------------------------------------

  /** The run; `instances: false` leaves its workflow instances out (`instances: []`), without copying them. */
  getRun(id: string, options: { instances?: boolean } = {}): Run | undefined {
    const run = this.state.runs.get(id);
    if (!run) return undefined;
    return options.instances === false ? structuredClone({ ...run.run, instances: [] }) : structuredClone(run.run);
  }

  /**
   * A page of a run's workflow instances, in run order: those from `offset` (of the
   * matching ones), at most `limit`; with `state`, only instances having a task instance
   * in it. `total` counts every match.
   */
  instancesPage(runId: string, offset: number, limit: number, state?: TaskState): { total: number; instances: WorkflowInstance[] } | undefined {
    const run = this.state.runs.get(runId);
    if (!run) return undefined;
    const all = run.run.instances;
    const matching = state === undefined ? all : all.filter((i) => i.tasks.some((t) => t.state === state));
    return { total: matching.length, instances: structuredClone(matching.slice(offset, offset + limit)) };
  }

  listRuns(): RunSummary[] {
    return [...this.state.runs.values()].map(summaryOf);
  }

  /** One run's summary (the Instances tree's run rows), without building every run's. */
  runSummary(id: string): RunSummary | undefined {
    const index = this.state.runs.get(id);
    return index && summaryOf(index);
  }

  /**
   * The live run and instance objects, for read-only views that cannot afford a copy per
   * refresh (the extension's trees over 10,000 task instances). Never mutate them: only
   * `apply` changes state.
   */
  viewRun(id: string): Readonly<Run> | undefined {
    return this.state.runs.get(id)?.run;
  }

  viewInstance(instanceId: string): Readonly<WorkflowInstance> | undefined {
    return this.state.instances.get(instanceId)?.inst;
  }

  getInstance(instanceId: string): WorkflowInstance | undefined {
    const idx = this.state.instances.get(instanceId);
    return idx && structuredClone(idx.inst);
  }

  /** Ids of a run's instances for a bizdate (several for sub-daily schedules), in run order. */
  findInstances(runId: string, bizdate: string): string[] {
    return (this.state.runs.get(runId)?.instances ?? []).filter((i) => i.inst.bizdate === bizdate).map((i) => i.inst.id);
  }

  /** The earliest pending time after `now` (what the last decision's `wake` said). */
  nextWake(now: number): number | undefined {
    return this.state.nextWake(now);
  }

  snapshot(): EngineSnapshot {
    return { runs: [...this.state.runs.values()].map((r) => structuredClone(r.run)) };
  }

  /**
   * Recomputes every derived index from the runs themselves and lists where the
   * incrementally kept ones differ (empty when consistent). For tests; O(everything).
   */
  verifyIndexes(): string[] {
    return verifyIndexes(this.state);
  }
}

function summaryOf({ run, counts }: RunIndex): RunSummary {
  return {
    id: run.id,
    kind: run.kind,
    file: run.file,
    workflow: run.workflow,
    state: run.state,
    createdAt: run.createdAt,
    ...(run.endedAt !== undefined ? { endedAt: run.endedAt } : {}),
    ...(run.by !== undefined ? { by: run.by } : {}),
    instances: run.instances.length,
    counts: { ...counts },
  };
}
