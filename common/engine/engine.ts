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
 * Scheduling (slots, concurrency, readiness, retries, timeouts): scheduling.ts.
 */
import type { WorkflowModel } from "../../protocol/model";
import type {
  AttemptExit,
  CreateRunResult,
  Decision,
  EngineRecord,
  EngineSnapshot,
  OperationResult,
  Refusal,
  Run,
  RunCreatedRecord,
  RunScope,
  RunSpec,
  StartEffect,
  RunSummary,
  TaskInstance,
  TaskRef,
  TaskState,
  WorkflowInstance,
} from "../../protocol/runner";
import { OPERATION_FROM } from "../../protocol/operations";
import { attemptEffect, onAttemptExit, pendingKillOf, recordProcess, recover, unendedAttempts } from "./attempts";
import { base, Tx } from "./decision";
import { planRun } from "./plan";
import { describe, describeInstance, orList, refuse, resolve } from "./refusals";
import { fail, settle, succeed, tick } from "./scheduling";
import { applyRecord } from "./apply";
import { EngineState, type InstanceIndex, isReady, type RunIndex, verifyIndexes } from "./state";

/** An attempt known only from later records: its start record was lost from a damaged journal. */
export const LOST_ATTEMPT_ERROR = "its records were lost from a damaged journal";
/** An attempt whose end was decided but whose end record was lost from a damaged journal. */
export const LOST_END_ERROR = "its exit status was lost from a damaged journal";

/** One line of a compacted journal's snapshot (`Engine.snapshotEntries`, `Engine.restore`). */
export type SnapshotEntry = { runSeq: number } | { run: Run } | { instancesOf: string; instances: WorkflowInstance[] };
/** Instances per snapshot entry: a damaged line costs at most these, and no line is huge. */
const SNAPSHOT_CHUNK = 1000;

const RERUN_FROM = OPERATION_FROM.rerun;
const KILL_FROM = OPERATION_FROM.kill;
const SET_SUCCESS_FROM = OPERATION_FROM.setSuccess;
const PAUSE_FROM = OPERATION_FROM.pause;
const RESUME_FROM = OPERATION_FROM.resume;

/** The states each single-task operation is allowed from (SPEC §3): protocol/operations.ts. */
export { OPERATION_FROM };
export { DEFAULT_CONCURRENCY, planRun, type RunDraft } from "./plan";
export { RECOVERY_ERROR, RECOVERY_KILLED_ERROR, STOPPED_ERROR } from "./attempts";

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
    let notApplied = 0;
    let adjusted = 0;
    const problems: string[] = [];
    const problem = (what: string) => {
      if (problems.length < 20) problems.push(what);
    };
    let held: Run | undefined;
    const place = () => {
      if (!held) return;
      const run = held;
      held = undefined;
      if (engine.state.runs.has(run.id) || run.instances.some((i) => engine.state.instances.has(i.id))) {
        notApplied++;
        problem(`snapshot: run ${run.id} twice`);
        return;
      }
      engine.state.indexRun(run);
    };
    for (const entry of snapshot as Iterable<SnapshotEntry>) {
      if (entry === null || typeof entry !== "object") notApplied++;
      else if ("runSeq" in entry) engine.reserveRunIds(entry.runSeq);
      else if ("run" in entry) {
        place();
        held = entry.run;
        engine.state.reserveRunIdOf(entry.run.id);
      } else if ("instancesOf" in entry && held?.id === entry.instancesOf) held.instances.push(...entry.instances);
      else {
        notApplied++;
        problem("snapshot: an entry that belongs to no run");
      }
    }
    place();
    for (const record of records) {
      // Fast path: `apply` checks these records fully before it changes anything, so a
      // record that fits costs no more than in `replay`; one that throws is fitted below.
      if (record.type !== "run.created" && !(record.type === "task.state" && (record.to === "running" || record.after !== undefined))) {
        try {
          engine.apply(record);
          continue;
        } catch {
          // fitted below
        }
      }
      let fitted: EngineRecord | undefined;
      try {
        fitted = engine.fit(record);
        if (fitted) engine.apply(fitted);
      } catch (e) {
        fitted = undefined;
        problem(`${record.type}: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (!fitted) {
        // An applied record's run exists, so its id is taken already; a skipped one's is taken here.
        const named = record.type === "run.created" ? record.run?.id : record.runId;
        engine.state.reserveRunIdOf(named);
        notApplied++;
        if (problems.length < 20 && !problems[problems.length - 1]?.startsWith(record.type)) problem(`${record.type} of ${String(named)}: names what does not exist`);
      } else if (fitted !== record) adjusted++;
    }
    return { engine, notApplied, adjusted, problems };
  }

  /**
   * The record as it can still be applied to the current state (see `restore`), or
   * undefined. May give the task an attempt whose start record was lost.
   */
  private fit(r: EngineRecord): EngineRecord | undefined {
    if (r.type === "run.created") {
      if (this.state.runs.has(r.run.id) || r.run.instances.some((i) => this.state.instances.has(i.id))) return undefined;
      return r;
    }
    if (r.type === "run.state") {
      const run = this.state.runs.get(r.runId)?.run;
      if (!run) return undefined;
      return run.state === r.from ? r : { ...r, from: run.state };
    }
    const idx = this.state.instances.get(r.instanceId);
    if (!idx || idx.run.run.id !== r.runId) return undefined;
    if (r.type === "instance.state") return idx.inst.state === r.from ? r : { ...r, from: idx.inst.state };
    const ti = idx.tasks.get(r.task);
    if (!ti) return undefined;
    switch (r.type) {
      case "task.state":
        if (r.after?.some((a) => !idx.tasks.has(a))) return undefined;
        if (r.to === "running" && r.attempt !== undefined && r.attempt > ti.attempts.length) {
          this.lostAttempts(idx, ti, r.attempt, r.at, r.cause === "retry" ? "retry" : "scheduler");
        }
        return ti.state === r.from ? r : { ...r, from: ti.state };
      case "attempt.started":
        if (r.attempt <= ti.attempts.length) return undefined;
        this.lostAttempts(idx, ti, r.attempt - 1, r.at, undefined);
        return r;
      case "attempt.process":
      case "attempt.timed-out":
      case "attempt.ended":
        if (r.attempt > ti.attempts.length) this.lostAttempts(idx, ti, r.attempt, r.at, "scheduler");
        return r;
      case "task.retry-scheduled":
        return r;
      default:
        return undefined;
    }
  }

  /**
   * Gives `ti` attempts up to `upTo` whose `attempt.started` was lost: the last one open
   * (`open`: its cause; it goes on as the records say), any before it ended at once.
   */
  private lostAttempts(idx: InstanceIndex, ti: TaskInstance, upTo: number, at: number, open: "scheduler" | "retry" | undefined): void {
    while (ti.attempts.length < upTo) {
      const n = ti.attempts.length + 1;
      const previous = ti.attempts[ti.attempts.length - 1];
      const last = n === upTo && open !== undefined;
      const cause = last ? open : "scheduler";
      ti.attempts.push({
        n,
        startedAt: at,
        cause,
        retry: cause === "retry" && previous ? previous.retry + 1 : 0,
        ...(last ? {} : { endedAt: at, error: LOST_ATTEMPT_ERROR }),
      });
    }
    this.state.syncTimer(idx, ti);
  }

  /**
   * After a damaged journal, before processes left over are looked for: attempts whose
   * end was decided (the task's history moved on from `running` with that attempt, and
   * not by a kill) but whose `attempt.ended` record was lost are closed, so that nothing
   * takes them for attempts that may still run.
   */
  closeLostAttemptEnds(now: number): Decision {
    const tx = new Tx(this.state, now);
    for (const run of this.state.runs.values()) {
      for (const idx of run.instances) {
        for (const ti of idx.inst.tasks) {
          for (const a of ti.attempts) {
            if (a.endedAt !== undefined) continue;
            // The current attempt of a running task may well run; a killed one may still be dying.
            if (a.n === ti.attempts.length && (ti.state === "running" || ti.state === "killed")) continue;
            let end: TaskInstance["history"][number] | undefined;
            for (let i = ti.history.length - 1; i >= 0 && !end; i--) if (ti.history[i].attempt === a.n && ti.history[i].from === "running") end = ti.history[i];
            if (!end || end.to === "killed" || end.cause === "operator") continue;
            const ok = end.to === "success" && end.cause === "scheduler";
            tx.emit({ type: "attempt.ended", at: now, ...base(idx, ti.task), attempt: a.n, ...(ok ? { exitCode: 0 } : { error: LOST_END_ERROR }) });
          }
        }
      }
    }
    return { records: tx.records, effects: [] };
  }

  /**
   * After a damaged journal, once `recover` has run: a task still `running` whose attempt
   * has ended lost the record of how the engine decided that end. It is decided again
   * from the attempt (success on exit 0, else failed or retried as its budget says),
   * cause `recovery`, and the scheduler carries on. Nothing that finished runs again.
   */
  settleLostTransitions(now: number): Decision {
    const tx = new Tx(this.state, now);
    for (const run of this.state.runs.values()) {
      for (const idx of run.instances) {
        for (const ti of idx.inst.tasks) {
          const a = ti.attempts[ti.attempts.length - 1];
          if (ti.state !== "running" || !a || a.endedAt === undefined) continue;
          const ok = a.timedOutAt === undefined && a.error === undefined && a.signal === undefined && a.exitCode === 0;
          if (ok) succeed(tx, idx, ti, "recovery", undefined, a.n);
          else fail(tx, idx, ti, "recovery");
        }
      }
    }
    if (tx.records.length === 0) return { records: [], effects: [] };
    return settle(tx);
  }

  /** The next default run id is above `run-<n>`: ids of runs lost from a damaged journal, or whose log folders exist, are never used again. */
  reserveRunIds(n: number): void {
    this.state.reserveRunIds(n);
  }

  /**
   * The state as journal snapshot entries, for `restore`: the run-id floor, then each run
   * (a run of many instances as several entries). Live objects: serialize each at once.
   */
  *snapshotEntries(): Generator<SnapshotEntry> {
    yield { runSeq: this.state.runSeq };
    for (const { run } of this.state.runs.values()) {
      if (run.instances.length <= SNAPSHOT_CHUNK) {
        yield { run };
        continue;
      }
      yield { run: { ...run, instances: run.instances.slice(0, SNAPSHOT_CHUNK) } };
      for (let i = SNAPSHOT_CHUNK; i < run.instances.length; i += SNAPSHOT_CHUNK) {
        yield { instancesOf: run.id, instances: run.instances.slice(i, i + SNAPSHOT_CHUNK) };
      }
    }
  }

  // ------------------------------------------------------------------------------------
  // apply: the only place state changes
  // ------------------------------------------------------------------------------------

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
    const planned = planRun(spec, workflow, now);
    if (!planned.ok) return planned;
    const runId = id ?? `run-${this.state.runSeq + 1}`;
    if (this.state.runs.has(runId)) return refuse("invalid-spec", `a run with id \`${runId}\` exists already`);
    const { instances, ...draft } = planned.draft;
    const def: RunCreatedRecord["run"] = {
      id: runId,
      ...draft,
      ...(by !== undefined ? { by } : {}),
      instances: instances.map((t) => ({ id: `${runId}@${t.cyctime.replace(/[-:]/g, "")}`, bizdate: t.bizdate, cyctime: t.cyctime })),
    };
    const tx = new Tx(this.state, now);
    tx.emit({ type: "run.created", at: now, run: def });
    const run = this.state.runIndex(def.id);
    tx.slots.add(run);
    tx.touched.add(run);
    return { ok: true, runId: def.id, ...settle(tx) };
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
  onAttemptExit(
    instanceId: string,
    task: string,
    attempt: number,
    exit: AttemptExit,
    now: number,
  ): OperationResult {
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
  recordProcess(ref: TaskRef, attempt: number, pid: number, now: number): EngineRecord | undefined {
    return recordProcess(this.state, ref, attempt, pid, now);
  }

  /** The `start` effect of an existing attempt, as `startTask` made it: what an executor needs to adopt it. */
  attemptEffect(instanceId: string, task: string, attempt: number): StartEffect | undefined {
    return attemptEffect(this.state, instanceId, task, attempt);
  }

  /** Why an unended attempt is being killed (`operator`, `timeout`), if it is. */
  pendingKillOf(instanceId: string, task: string, attempt: number): "operator" | "timeout" | undefined {
    return pendingKillOf(this.state, instanceId, task, attempt);
  }

  /** Attempts with no recorded end, and their pids: what a crashed runner may have left running. */
  unendedAttempts(): { runId: string; instanceId: string; task: string; attempt: number; pid?: number }[] {
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
    const found = this.resolveIn(ref, "kill", KILL_FROM);
    if (!found.ok) return found;
    const pending = this.pendingKill(found.idx, found.ti);
    if (pending) return pending;
    const tx = new Tx(this.state, now);
    this.killTask(tx, found.idx, found.ti, by);
    return { ok: true, ...settle(tx) };
  }

  /** The refusal for a task whose attempt is being killed already, if it is. */
  private pendingKill(idx: InstanceIndex, ti: TaskInstance): Refusal | undefined {
    const a = ti.attempts[ti.attempts.length - 1];
    if (ti.state !== "running" || a?.killRequestedAt === undefined) return undefined;
    return refuse("kill-pending", `${describe(idx, ti.task)} is being killed already (asked at ${new Date(a.killRequestedAt).toISOString()}); it becomes killed when its processes are gone`, {
      state: ti.state,
    });
  }

  /** `kill` on one task instance in state waiting or running (not being killed). */
  private killTask(tx: Tx, idx: InstanceIndex, ti: TaskInstance, by: string | undefined): void {
    if (ti.state === "running") {
      const attempt = ti.attempts.length;
      tx.emit({ type: "attempt.kill-requested", at: tx.now, ...base(idx, ti.task), attempt, ...(by !== undefined ? { by } : {}) });
      tx.effects.push({ type: "kill", ...base(idx, ti.task), attempt, reason: "operator" });
      tx.touched.add(idx.run);
    } else {
      tx.transition(idx, ti, "killed", "operator", by);
      tx.dirty.add(idx);
    }
  }

  /**
   * not_run, success, failed, killed → waiting: the task runs again (a new attempt, with
   * a fresh retry budget) as soon as its instance has a slot, whatever its upstreams'
   * states: the operator asked for this task. On success its not_run downstream proceeds.
   */
  rerun(ref: TaskRef, now: number, by?: string): OperationResult {
    return this.operate(ref, "rerun", RERUN_FROM, now, (tx, idx, ti) => {
      tx.transition(idx, ti, "waiting", "operator", by, undefined, ti.after ? [] : undefined);
      tx.dirty.add(idx);
    });
  }

  /** failed, killed → success; not_run downstream proceeds. */
  setSuccess(ref: TaskRef, now: number, by?: string): OperationResult {
    return this.operate(ref, "set success", SET_SUCCESS_FROM, now, (tx, idx, ti) => succeed(tx, idx, ti, "operator", by, undefined));
  }

  /** not_run, waiting → paused: not started until resumed; its downstream waits. */
  pause(ref: TaskRef, now: number, by?: string): OperationResult {
    return this.operate(ref, "pause", PAUSE_FROM, now, (tx, idx, ti) => {
      tx.transition(idx, ti, "paused", "operator", by);
      tx.dirty.add(idx);
    });
  }

  /**
   * paused → waiting when it can start (its upstreams succeeded, or a retry was pending
   * when it was paused), else → not_run.
   */
  resume(ref: TaskRef, now: number, by?: string): OperationResult {
    return this.operate(ref, "resume", RESUME_FROM, now, (tx, idx, ti) => {
      const ready = ti.retryAt !== undefined || (idx.inst.state !== "queued" && isReady(idx, ti));
      tx.transition(idx, ti, ready ? "waiting" : "not_run", "operator", by);
      tx.dirty.add(idx);
    });
  }

  /**
   * The task reruns (as `rerun`), and each chosen downstream task (ids, or `"all"` of its
   * transitive downstream) gets a new attempt after the rerun tasks it depends on,
   * directly or through tasks that are not rerun, have succeeded.
   */
  rerunDownstream(ref: TaskRef, downstream: readonly string[] | "all", now: number, by?: string): OperationResult {
    const found = resolve(this.state, ref);
    if (!found.ok) return found;
    const { idx, ti } = found;
    const run = idx.run;
    const below = new Set<string>();
    const stack = [ti.task];
    while (stack.length > 0) {
      for (const d of run.downstream.get(stack.pop()!) ?? []) {
        if (!below.has(d)) {
          below.add(d);
          stack.push(d);
        }
      }
    }
    let chosen: string[];
    if (downstream === "all") chosen = run.run.tasks.map((t) => t.id).filter((t) => below.has(t));
    else {
      const problems: string[] = [];
      let unknown = false;
      for (const d of downstream) {
        if (!run.defs.has(d)) {
          problems.push(`\`${d}\` is not a task of run ${run.run.id}`);
          unknown = true;
        } else if (!below.has(d)) problems.push(`\`${d}\` is not downstream of \`${ti.task}\``);
      }
      if (problems.length > 0) return refuse(unknown ? "no-task" : "invalid-spec", `rerun downstream: ${problems.join("; ")}`);
      chosen = [...new Set(downstream)].filter((d) => d !== ti.task);
    }
    const set = new Set([ti.task, ...chosen]);
    const wrong = [...set].map((t) => idx.tasks.get(t)!).filter((t) => !RERUN_FROM.includes(t.state));
    if (wrong.length > 0) {
      return refuse(
        "wrong-state",
        `rerun downstream needs every chosen task in state ${orList(RERUN_FROM)}; on ${describeInstance(idx)} ` +
          wrong.map((t) => `\`${t.task}\` is ${t.state}`).join(", "),
        { state: wrong[0].state, allowed: RERUN_FROM },
      );
    }
    const tx = new Tx(this.state, now);
    this.resetInOrder(tx, idx, set, ti.task, by);
    return { ok: true, ...settle(tx) };
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
    const found = this.resolveScope(scope);
    if (!found.ok) return found;
    const tx = new Tx(this.state, now);
    for (const idx of found.instances) {
      if (idx.inst.state === "queued") {
        tx.setInstanceState(idx, "finished");
        tx.touched.add(idx.run);
        continue;
      }
      if (idx.waiting.size === 0 && idx.running === 0) continue;
      for (const ti of idx.inst.tasks) {
        if (KILL_FROM.includes(ti.state) && !this.pendingKill(idx, ti)) this.killTask(tx, idx, ti, by);
      }
    }
    if (tx.records.length === 0) {
      return refuse("nothing-to-do", `kill run needs a waiting or running task, or a workflow instance not started yet; ${found.label} has none (run state ${found.run.run.state})`);
    }
    return { ok: true, ...settle(tx) };
  }

  /** Rerun failed (a run, or one instance): every failed or killed task reruns, in dependency order. */
  rerunFailed(scope: RunScope, now: number, by?: string): OperationResult {
    const found = this.resolveScope(scope);
    if (!found.ok) return found;
    const tx = new Tx(this.state, now);
    for (const idx of found.instances) {
      if (idx.inst.state === "finished" && idx.inst.tasks.every((t) => t.state === "not_run" && t.attempts.length === 0)) {
        // Cancelled by a kill run before it started: it queues again.
        tx.setInstanceState(idx, "queued");
        tx.slots.add(idx.run);
        continue;
      }
      const set = new Set(idx.inst.tasks.filter((t) => t.state === "failed" || t.state === "killed").map((t) => t.task));
      if (set.size > 0) this.resetInOrder(tx, idx, set, undefined, by);
    }
    if (tx.records.length === 0) {
      return refuse("nothing-to-do", `rerun failed needs a failed or killed task or a cancelled workflow instance; ${found.label} has none (run state ${found.run.run.state})`);
    }
    return { ok: true, ...settle(tx) };
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

  // ------------------------------------------------------------------------------------
  // Internals
  // ------------------------------------------------------------------------------------

  /**
   * Puts the tasks of `set` back to run in dependency order: each goes to `waiting` when
   * nothing it waits for is rerun or unfinished, else to `not_run` with `after` naming the
   * rerun tasks it reaches only through tasks that keep their `success` (direct upstreams
   * need no entry: `isReady` checks them anyway). `forced` (the operator's own pick) goes
   * to `waiting` regardless, like `rerun`.
   */
  private resetInOrder(tx: Tx, idx: InstanceIndex, set: Set<string>, forced: string | undefined, by: string | undefined): void {
    const run = idx.run;
    for (const def of run.run.tasks) {
      if (!set.has(def.id)) continue;
      const ti = idx.tasks.get(def.id)!;
      if (def.id === forced) {
        tx.transition(idx, ti, "waiting", "operator", by, undefined, ti.after ? [] : undefined);
        continue;
      }
      const after: string[] = [];
      const seen = new Set<string>();
      const stack = def.upstream.filter((u) => !set.has(u) && idx.tasks.get(u)!.state === "success");
      while (stack.length > 0) {
        const v = stack.pop()!;
        if (seen.has(v)) continue;
        seen.add(v);
        for (const u of run.defs.get(v)!.upstream) {
          if (set.has(u)) {
            if (!after.includes(u) && !def.upstream.includes(u)) after.push(u);
          } else if (!seen.has(u) && idx.tasks.get(u)!.state === "success") stack.push(u);
        }
      }
      const ready = after.length === 0 && def.upstream.every((u) => !set.has(u) && idx.tasks.get(u)!.state === "success");
      const to: TaskState = ready ? "waiting" : "not_run";
      const afterChange = after.length > 0 ? after : ti.after ? [] : undefined;
      // A not_run task needs no record unless its `after` list changes: it runs when its upstreams do.
      if (ti.state === to && afterChange === undefined) continue;
      tx.transition(idx, ti, to, "operator", by, undefined, afterChange);
    }
    tx.dirty.add(idx);
  }

  /** One task's operation: refused unless the task is in `from`, else `change` in one transaction. */
  private operate(
    ref: TaskRef,
    operation: string,
    from: readonly TaskState[],
    now: number,
    change: (tx: Tx, idx: InstanceIndex, ti: TaskInstance) => void,
  ): OperationResult {
    const found = this.resolveIn(ref, operation, from);
    if (!found.ok) return found;
    const tx = new Tx(this.state, now);
    change(tx, found.idx, found.ti);
    return { ok: true, ...settle(tx) };
  }

  /** Resolves and checks the precondition: "rerun needs state ...; `load` on 2026-11-19 is running". */
  private resolveIn(ref: TaskRef, operation: string, from: readonly TaskState[]) {
    const found = resolve(this.state, ref);
    if (!found.ok) return found;
    if (!from.includes(found.ti.state)) {
      return refuse("wrong-state", `${operation} needs state ${orList(from)}; ${describe(found.idx, ref.task)} is ${found.ti.state}`, {
        state: found.ti.state,
        allowed: from,
      });
    }
    return found;
  }

  private resolveScope(
    scope: RunScope,
  ): { ok: true; run: RunIndex; instances: InstanceIndex[]; label: string } | Refusal {
    const run = this.state.runs.get(scope.runId);
    if (!run) return refuse("no-run", `no run \`${scope.runId}\``);
    if (scope.instanceId === undefined) return { ok: true, run, instances: run.instances, label: `run ${run.run.id}` };
    const idx = this.state.instances.get(scope.instanceId);
    if (!idx || idx.run !== run) return refuse("no-instance", `run ${run.run.id} has no workflow instance \`${scope.instanceId}\``);
    return { ok: true, run, instances: [idx], label: `the instance on ${describeInstance(idx)}` };
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
