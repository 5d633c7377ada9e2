/**
 * Scheduling: what runs next, once a decision has changed something (`settle`), and what
 * a task's end means for it and its downstream (`succeed`, `fail`, `failover`), in the
 * terms of `protocol/runner.ts`:
 * - A run holds at most `parallelism` workflow instances `active`; `queued` ones are
 *   activated in the run's order (by cyctime, asc or desc) as slots free up.
 * - An active instance starts `waiting` tasks, first come first served, while fewer than
 *   `concurrency` of its tasks run. A task is promoted `not_run → waiting` once every
 *   upstream in the selection (and every task in its `after` list) is `success`.
 * - An instance is `finished` when none of its tasks is waiting or running: then nothing
 *   can progress without an operator, so it gives its slot to the next instance (a paused
 *   or failed task does not hold a backfill up). An operation that gives a finished
 *   instance something to do queues it again, behind the slot limit like everyone else.
 * - An attempt being killed keeps its concurrency slot until its processes are gone: the
 *   task stays `running` until the exit report makes it `killed` (see `kill`).
 * - A pending retry is `waiting` with `retryAt` (not `failed`): nothing needs a person yet,
 *   and the instance keeps its slot until the retry has run. Timeouts and due retries are
 *   the state's timers: `tick` acts on them, and every decision ends with the next `wake`.
 */
import type { Decision, HistoryCause, StartEffect, TaskInstance } from "../../protocol/runner";
import { base, Tx } from "./decision";
import { type EngineState, type InstanceIndex, isReady, type RunIndex, runStateOf, schedulerWork } from "./state";

/** The end of every decision: `schedule`, then the run states and the wake. */
export function settle(tx: Tx): Decision {
  schedule(tx);
  for (const run of tx.touched) {
    const state = runStateOf(run);
    if (state !== run.run.state) tx.emit({ type: "run.state", at: tx.now, runId: run.run.id, from: run.run.state, to: state });
  }
  const wake = tx.state.nextWake(tx.now);
  if (wake !== undefined) tx.effects.push({ type: "wake", at: wake });
  return { records: tx.records, effects: tx.effects };
}

/**
 * Starts what can start, finishes and activates instances, until nothing moves. Also
 * between the steps of a batch operation, so that each step sees what the scheduler made
 * of the one before, as it would had each been a decision of its own.
 */
export function schedule(tx: Tx): void {
  while (tx.dirty.size > 0 || tx.slots.size > 0) {
    for (const idx of tx.dirty) {
      schedulerWork.steps++;
      tx.dirty.delete(idx);
      tx.touched.add(idx.run);
      if (idx.inst.state === "active") {
        startReady(tx, idx);
        if (idx.waiting.size === 0 && idx.running === 0) {
          tx.setInstanceState(idx, "finished");
          tx.slots.add(idx.run);
        }
      } else if (idx.inst.state === "finished" && hasWork(idx)) {
        tx.setInstanceState(idx, "queued");
        tx.slots.add(idx.run);
      }
    }
    for (const run of tx.slots) {
      schedulerWork.steps++;
      tx.slots.delete(run);
      tx.touched.add(run);
      while (run.active < run.run.parallelism) {
        const next = peekQueued(run);
        if (next === undefined) break;
        activate(tx, next);
      }
    }
  }
}

/**
 * Kills attempts past their deadline (a `kill` effect; the exit report then fails them)
 * and starts retries that fell due. Any call is safe: nothing due, nothing happens.
 */
export function tick(s: EngineState, now: number): Decision {
  const tx = new Tx(s, now);
  for (const [ti, timer] of s.timers) {
    schedulerWork.steps++;
    if (timer.at > now) continue;
    if (ti.state === "running") {
      const idx = timer.idx;
      const attempt = ti.attempts.length;
      const ref = { runId: idx.run.run.id, instanceId: idx.inst.id, task: ti.task, attempt };
      tx.emit({ type: "attempt.timed-out", at: now, ...ref });
      tx.effects.push({ type: "kill", ...ref, reason: "timeout" });
    } else {
      tx.dirty.add(timer.idx);
    }
  }
  return settle(tx);
}

/** → success, and promote downstream that became ready. */
export function succeed(tx: Tx, idx: InstanceIndex, ti: TaskInstance, cause: HistoryCause, by: string | undefined, attempt: number | undefined): void {
  tx.transition(idx, ti, "success", cause, by, attempt);
  tx.dirty.add(idx);
  // Outside active instances, activation (or the finished instance's requeue) promotes.
  if (idx.inst.state !== "active") return;
  const candidates = new Set(idx.run.downstream.get(ti.task));
  for (const t of idx.afterOf.get(ti.task) ?? []) candidates.add(t);
  for (const id of candidates) {
    schedulerWork.steps++;
    const d = idx.tasks.get(id)!;
    if (d.state === "not_run" && isReady(idx, d)) tx.transition(idx, d, "waiting", "upstream");
  }
}

/** The current attempt (ended already) failed: retry if the budget allows, else → failed. */
export function fail(tx: Tx, idx: InstanceIndex, ti: TaskInstance, cause: "timeout" | "recovery" | undefined): void {
  const def = idx.run.defs.get(ti.task)!;
  const attempt = ti.attempts[ti.attempts.length - 1];
  if (attempt.retry < def.retries) {
    tx.transition(idx, ti, "waiting", cause ?? "retry", undefined, attempt.n);
    tx.emit({ type: "task.retry-scheduled", at: tx.now, ...base(idx, ti.task), attempt: attempt.n, retryAt: tx.now + def.retryDelayMs });
  } else {
    tx.transition(idx, ti, "failed", cause ?? "scheduler", undefined, attempt.n);
  }
  tx.dirty.add(idx);
}

/**
 * The current attempt (ended already) was lost by the runner, not failed by the task:
 * back to `waiting` for a failover attempt (cause `recovery`) that keeps the retry count.
 */
export function failover(tx: Tx, idx: InstanceIndex, ti: TaskInstance, attempt: number): void {
  tx.transition(idx, ti, "waiting", "recovery", undefined, attempt);
  tx.dirty.add(idx);
}

/** What the executor needs to run (or adopt) an attempt of `task`. */
export function startEffect(idx: InstanceIndex, task: string, attempt: number, deadline: number | undefined): StartEffect {
  const def = idx.run.defs.get(task)!;
  const run = idx.run.run;
  return {
    type: "start",
    ...base(idx, task),
    workflow: run.workflow,
    file: run.file,
    kind: def.kind,
    ...(def.command !== undefined ? { command: def.command } : {}),
    attempt,
    bizdate: idx.inst.bizdate,
    cyctime: idx.inst.cyctime,
    params: { ...def.params },
    ...(def.timeoutMs !== undefined ? { timeoutMs: def.timeoutMs } : {}),
    ...(deadline !== undefined ? { deadline } : {}),
  };
}

/** The next queued instance in run order. Drops stale heap entries (left by instances that left `queued`), which changes nothing observable. */
function peekQueued(run: RunIndex): InstanceIndex | undefined {
  while (run.queue.size > 0) {
    schedulerWork.steps++;
    const idx = run.instances[run.queue.peek()!];
    if (idx.inst.state === "queued") return idx;
    run.queue.pop();
  }
  return undefined;
}

function activate(tx: Tx, idx: InstanceIndex): void {
  tx.setInstanceState(idx, "active");
  for (const ti of idx.inst.tasks) {
    schedulerWork.steps++;
    if (ti.state !== "not_run" || !isReady(idx, ti)) continue;
    // Roots start because the instance did; others (re-activated instance) because an upstream succeeded.
    const cause = idx.run.defs.get(ti.task)!.upstream.length > 0 || ti.after ? "upstream" : "scheduler";
    tx.transition(idx, ti, "waiting", cause);
  }
  tx.dirty.add(idx);
}

/** A finished instance has work again when an operation made a task waiting or ready. */
function hasWork(idx: InstanceIndex): boolean {
  if (idx.waiting.size > 0) return true;
  for (const t of idx.inst.tasks) {
    schedulerWork.steps++;
    if (t.state === "not_run" && isReady(idx, t)) return true;
  }
  return false;
}

function startReady(tx: Tx, idx: InstanceIndex): void {
  if (tx.state.halted) return;
  const limit = idx.run.run.concurrency;
  // Deleting the current element while iterating a Set is safe; `startTask` does so via apply.
  for (const ti of idx.waiting) {
    schedulerWork.steps++;
    if (idx.running >= limit) return;
    if (ti.retryAt !== undefined && ti.retryAt > tx.now) continue;
    startTask(tx, idx, ti);
  }
}

function startTask(tx: Tx, idx: InstanceIndex, ti: TaskInstance): void {
  const def = idx.run.defs.get(ti.task)!;
  const isRetry = ti.retryAt !== undefined;
  const previous = ti.attempts[ti.attempts.length - 1];
  // A failover attempt (the runner lost the previous one) keeps its retry count.
  const last = ti.history[ti.history.length - 1];
  const isFailover = !isRetry && previous !== undefined && last?.to === "waiting" && last.cause === "recovery";
  const attempt = ti.attempts.length + 1;
  const deadline = def.timeoutMs !== undefined ? tx.now + def.timeoutMs : undefined;
  const cause = isRetry ? "retry" : isFailover ? "recovery" : "scheduler";
  tx.emit({
    type: "attempt.started",
    at: tx.now,
    ...base(idx, ti.task),
    attempt,
    cause,
    retry: isRetry && previous ? previous.retry + 1 : isFailover ? previous.retry : 0,
    ...(deadline !== undefined ? { deadline } : {}),
  });
  tx.transition(idx, ti, "running", cause, undefined, attempt);
  tx.effects.push(startEffect(idx, ti.task, attempt, deadline));
}
