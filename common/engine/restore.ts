/**
 * A runner's journal at its start, and its compaction: `restoreInto` rebuilds the state
 * from snapshot entries and records that may be damaged (lines lost or torn), using each
 * record as far as it still tells the truth; `closeLostAttemptEnds` and
 * `settleLostTransitions` repair what a lost record left half done; `snapshotEntries` is
 * what a compacted journal starts with. A journal without damage replays strictly
 * through the reducer alone (`Engine.replay`).
 */
import type { Decision, EngineRecord, Run, TaskInstance, WorkflowInstance } from "../../protocol/runner";
import { applyRecord } from "./apply";
import { base, Tx } from "./decision";
import { fail, settle, succeed } from "./scheduling";
import type { EngineState, InstanceIndex } from "./state";

/** An attempt known only from later records: its start record was lost from a damaged journal. */
export const LOST_ATTEMPT_ERROR = "its records were lost from a damaged journal";
/** An attempt whose end was decided but whose end record was lost from a damaged journal. */
export const LOST_END_ERROR = "its exit status was lost from a damaged journal";

/** One line of a compacted journal's snapshot (`Engine.snapshotEntries`, `Engine.restore`). */
export type SnapshotEntry = { runSeq: number } | { run: Run } | { instancesOf: string; instances: WorkflowInstance[] };
/** Instances per snapshot entry: a damaged line costs at most these, and no line is huge. */
const SNAPSHOT_CHUNK = 1000;

/** `Engine.restore`, into an empty state. */
export function restoreInto(s: EngineState, snapshot: Iterable<unknown>, records: Iterable<EngineRecord>): { notApplied: number; adjusted: number; problems: string[] } {
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
    if (s.runs.has(run.id) || run.instances.some((i) => s.instances.has(i.id))) {
      notApplied++;
      problem(`snapshot: run ${run.id} twice`);
      return;
    }
    s.indexRun(run);
  };
  for (const entry of snapshot as Iterable<SnapshotEntry>) {
    if (entry === null || typeof entry !== "object") notApplied++;
    else if ("runSeq" in entry) s.reserveRunIds(entry.runSeq);
    else if ("run" in entry) {
      place();
      held = entry.run;
      s.reserveRunIdOf(entry.run.id);
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
        applyRecord(s, record);
        continue;
      } catch {
        // fitted below
      }
    }
    let fitted: EngineRecord | undefined;
    try {
      fitted = fit(s, record);
      if (fitted) applyRecord(s, fitted);
    } catch (e) {
      fitted = undefined;
      problem(`${record.type}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!fitted) {
      // An applied record's run exists, so its id is taken already; a skipped one's is taken here.
      const named = record.type === "run.created" ? record.run?.id : record.runId;
      s.reserveRunIdOf(named);
      notApplied++;
      if (problems.length < 20 && !problems[problems.length - 1]?.startsWith(record.type)) problem(`${record.type} of ${String(named)}: names what does not exist`);
    } else if (fitted !== record) adjusted++;
  }
  return { notApplied, adjusted, problems };
}

/**
 * The record as it can still be applied to the current state (see `restore`), or
 * undefined. May give the task an attempt whose start record was lost.
 */
function fit(s: EngineState, r: EngineRecord): EngineRecord | undefined {
  if (r.type === "run.created") {
    if (s.runs.has(r.run.id) || r.run.instances.some((i) => s.instances.has(i.id))) return undefined;
    return r;
  }
  if (r.type === "run.state") {
    const run = s.runs.get(r.runId)?.run;
    if (!run) return undefined;
    return run.state === r.from ? r : { ...r, from: run.state };
  }
  const idx = s.instances.get(r.instanceId);
  if (!idx || idx.run.run.id !== r.runId) return undefined;
  if (r.type === "instance.state") return idx.inst.state === r.from ? r : { ...r, from: idx.inst.state };
  const ti = idx.tasks.get(r.task);
  if (!ti) return undefined;
  switch (r.type) {
    case "task.state":
      if (r.after?.some((a) => !idx.tasks.has(a))) return undefined;
      if (r.to === "running" && r.attempt !== undefined && r.attempt > ti.attempts.length) {
        lostAttempts(s, idx, ti, r.attempt, r.at, r.cause === "retry" ? "retry" : "scheduler");
      }
      return ti.state === r.from ? r : { ...r, from: ti.state };
    case "attempt.started":
      if (r.attempt <= ti.attempts.length) return undefined;
      lostAttempts(s, idx, ti, r.attempt - 1, r.at, undefined);
      return r;
    case "attempt.process":
    case "attempt.timed-out":
    case "attempt.ended":
      if (r.attempt > ti.attempts.length) lostAttempts(s, idx, ti, r.attempt, r.at, "scheduler");
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
function lostAttempts(s: EngineState, idx: InstanceIndex, ti: TaskInstance, upTo: number, at: number, open: "scheduler" | "retry" | undefined): void {
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
  s.syncTimer(idx, ti);
}

/**
 * After a damaged journal, before processes left over are looked for: attempts whose
 * end was decided (the task's history moved on from `running` with that attempt, and
 * not by a kill) but whose `attempt.ended` record was lost are closed, so that nothing
 * takes them for attempts that may still run.
 */
export function closeLostAttemptEnds(s: EngineState, now: number): Decision {
  const tx = new Tx(s, now);
  for (const run of s.runs.values()) {
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
export function settleLostTransitions(s: EngineState, now: number): Decision {
  const tx = new Tx(s, now);
  for (const run of s.runs.values()) {
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

/**
 * The state as journal snapshot entries, for `restore`: the run-id floor, then each run
 * (a run of many instances as several entries). Live objects: serialize each at once.
 */
export function* snapshotEntries(s: EngineState): Generator<SnapshotEntry> {
  yield { runSeq: s.runSeq };
  for (const { run } of s.runs.values()) {
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
