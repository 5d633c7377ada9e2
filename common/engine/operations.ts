/**
 * The operations of SPEC §3, what an operator asks of task instances: kill, rerun, set
 * success, pause, resume and rerun downstream on one task instance, and the batch forms
 * on a run or some of its instances. Each checks its precondition (the states of
 * protocol/operations.ts), is refused with the reason otherwise (nothing changed), and
 * else is one decision: its records, then whatever the scheduler starts because of it.
 */
import { OPERATION_FROM, OPERATIONS, type OperationSpec } from "../../protocol/operations";
import type { OperationResult, Refusal, RunScope, TaskInstance, TaskRef, TaskState } from "../../protocol/runner";
import { base, Tx } from "./decision";
import { describe, describeInstance, orList, refuse, resolve } from "./refusals";
import { schedule, settle, succeed } from "./scheduling";
import { type EngineState, type InstanceIndex, isReady, type RunIndex } from "./state";

type Method = OperationSpec["method"];

/** A batch operation's scope: a run, or some of its workflow instances (the runner's `--date`). */
export interface BatchScope {
  runId: string;
  /** The instances, taken in this order (the runner gives run order); default: the whole run. */
  instanceIds?: readonly string[];
}

const RERUN_FROM = OPERATION_FROM.rerun;
const KILL_FROM = OPERATION_FROM.kill;

/** For sentences: "set success needs state failed or killed". */
const LABEL = Object.fromEntries(OPERATIONS.map((o) => [o.method, o.label])) as Record<Method, string>;

/**
 * What a single-task operation other than kill does to a task instance in one of its
 * states: the one definition that the operation on a named task and its batch form share.
 */
const CHANGE: Record<Exclude<Method, "kill">, (tx: Tx, idx: InstanceIndex, ti: TaskInstance, by: string | undefined) => void> = {
  rerun(tx, idx, ti, by) {
    tx.transition(idx, ti, "waiting", "operator", by, undefined, ti.after ? [] : undefined);
    tx.dirty.add(idx);
  },
  setSuccess(tx, idx, ti, by) {
    succeed(tx, idx, ti, "operator", by, undefined);
  },
  pause(tx, idx, ti, by) {
    tx.transition(idx, ti, "paused", "operator", by);
    tx.dirty.add(idx);
  },
  resume(tx, idx, ti, by) {
    const ready = ti.retryAt !== undefined || (idx.inst.state !== "queued" && isReady(idx, ti));
    tx.transition(idx, ti, ready ? "waiting" : "not_run", "operator", by);
    tx.dirty.add(idx);
  },
};

/** `Engine.kill`. */
export function kill(s: EngineState, ref: TaskRef, now: number, by?: string): OperationResult {
  const found = resolveIn(s, ref, LABEL.kill, KILL_FROM);
  if (!found.ok) return found;
  const pending = pendingKill(found.idx, found.ti);
  if (pending) return pending;
  const tx = new Tx(s, now);
  killTask(tx, found.idx, found.ti, by);
  return { ok: true, ...settle(tx) };
}

/** `Engine.rerun`, `setSuccess`, `pause`, `resume`: refused unless the task is in one of the operation's states. */
export function operateTask(s: EngineState, operation: Exclude<Method, "kill">, ref: TaskRef, now: number, by?: string): OperationResult {
  const found = resolveIn(s, ref, LABEL[operation], OPERATION_FROM[operation]);
  if (!found.ok) return found;
  const tx = new Tx(s, now);
  CHANGE[operation](tx, found.idx, found.ti, by);
  return { ok: true, ...settle(tx) };
}

/** `Engine.rerunDownstream`. */
export function rerunDownstream(s: EngineState, ref: TaskRef, downstream: readonly string[] | "all", now: number, by?: string): OperationResult {
  const found = resolve(s, ref);
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
  const tx = new Tx(s, now);
  resetInOrder(tx, idx, set, ti.task, by);
  return { ok: true, ...settle(tx) };
}

/** `Engine.killRun`: the batch kill on the run, or on one instance. */
export function killRun(s: EngineState, scope: RunScope, now: number, by?: string): OperationResult {
  return operateRun(s, "kill", batchOf(scope), now, by);
}

/** `Engine.rerunFailed`: the batch rerun on the run, or on one instance. */
export function rerunFailed(s: EngineState, scope: RunScope, now: number, by?: string): OperationResult {
  return operateRun(s, "rerun", batchOf(scope), now, by);
}

/**
 * `Engine.operateRun`: the batch form of `operation` as one decision (one Tx, settled
 * once at the end: one set of run-state records, one wake). Its steps are, in order, the
 * changes the operation makes one scope or one task instance at a time, and `schedule`
 * runs between them, so that each step sees what the scheduler made of those before it,
 * exactly as if each had been a decision of its own:
 * - kill, rerun: the whole run in one step (`killInstance` / `rerunInstance` on every
 *   instance), or each instance of `instanceIds` as a step of its own;
 * - set success, pause, resume: each task instance in one of the operation's states when
 *   the decision starts, by instance then task order, as the single-task operation; one
 *   that an earlier step moved out of those states (a not_run task the scheduler started
 *   before its pause came) is left alone, as the single operation would refuse it.
 * Refused `nothing-to-do` when no step changed anything; `no-run` / `no-instance` when the
 * scope names what does not exist, before anything is looked at.
 */
export function operateRun(s: EngineState, operation: Method, scope: BatchScope, now: number, by?: string): OperationResult {
  const found = resolveBatch(s, scope);
  if (!found.ok) return found;
  const { run, instances } = found;
  const tx = new Tx(s, now);
  if (operation === "kill" || operation === "rerun") {
    const step = operation === "kill" ? killInstance : rerunInstance;
    if (instances === undefined) {
      for (const idx of run.instances) step(tx, idx, by);
    } else {
      for (const idx of instances) {
        step(tx, idx, by);
        schedule(tx);
      }
    }
    if (tx.records.length === 0) {
      // Nothing anywhere: the first step's refusal, worded as `killRun` / `rerunFailed` word it for its scope.
      const label = instances?.[0] ? `the instance on ${describeInstance(instances[0])}` : `run ${run.run.id}`;
      const needs =
        operation === "kill"
          ? "kill run needs a waiting or running task, or a workflow instance not started yet"
          : "rerun failed needs a failed or killed task or a cancelled workflow instance";
      return refuse("nothing-to-do", `${needs}; ${label} has none (run state ${run.run.state})`);
    }
  } else {
    const from = OPERATION_FROM[operation];
    const change = CHANGE[operation];
    const targets: [InstanceIndex, TaskInstance][] = [];
    for (const idx of instances ?? run.instances) for (const ti of idx.inst.tasks) if (from.includes(ti.state)) targets.push([idx, ti]);
    for (const [idx, ti] of targets) {
      if (!from.includes(ti.state)) continue;
      change(tx, idx, ti, by);
      schedule(tx);
    }
    if (tx.records.length === 0) {
      const which =
        instances === undefined
          ? `run ${run.run.id} has`
          : instances.length === 1
            ? `the instance on ${describeInstance(instances[0])} has`
            : `the ${instances.length} workflow instances asked for have`;
      return refuse("nothing-to-do", `${LABEL[operation]} needs a task instance in state ${orList(from)}; ${which} none (run state ${run.run.state})`);
    }
  }
  return { ok: true, ...settle(tx) };
}

/**
 * Kill run on one instance: a queued one is cancelled (it finishes with its tasks
 * `not_run`), a started one has its waiting and running tasks killed as `kill` does.
 */
function killInstance(tx: Tx, idx: InstanceIndex, by: string | undefined): void {
  if (idx.inst.state === "queued") {
    tx.setInstanceState(idx, "finished");
    tx.touched.add(idx.run);
    return;
  }
  if (idx.waiting.size === 0 && idx.running === 0) return;
  for (const ti of idx.inst.tasks) {
    if (KILL_FROM.includes(ti.state) && !pendingKill(idx, ti)) killTask(tx, idx, ti, by);
  }
}

/** Rerun failed on one instance: its failed and killed tasks rerun in dependency order; one cancelled by a kill run queues again. */
function rerunInstance(tx: Tx, idx: InstanceIndex, by: string | undefined): void {
  if (idx.inst.state === "finished" && idx.inst.tasks.every((t) => t.state === "not_run" && t.attempts.length === 0)) {
    // Cancelled by a kill run before it started: it queues again.
    tx.setInstanceState(idx, "queued");
    tx.slots.add(idx.run);
    return;
  }
  const set = new Set(idx.inst.tasks.filter((t) => t.state === "failed" || t.state === "killed").map((t) => t.task));
  if (set.size > 0) resetInOrder(tx, idx, set, undefined, by);
}

/** The refusal for a task whose attempt is being killed already, if it is. */
function pendingKill(idx: InstanceIndex, ti: TaskInstance): Refusal | undefined {
  const a = ti.attempts[ti.attempts.length - 1];
  if (ti.state !== "running" || a?.killRequestedAt === undefined) return undefined;
  return refuse("kill-pending", `${describe(idx, ti.task)} is being killed already (asked at ${new Date(a.killRequestedAt).toISOString()}); it becomes killed when its processes are gone`, {
    state: ti.state,
  });
}

/** `kill` on one task instance in state waiting or running (not being killed). */
function killTask(tx: Tx, idx: InstanceIndex, ti: TaskInstance, by: string | undefined): void {
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
 * Puts the tasks of `set` back to run in dependency order: each goes to `waiting` when
 * nothing it waits for is rerun or unfinished, else to `not_run` with `after` naming the
 * rerun tasks it reaches only through tasks that keep their `success` (direct upstreams
 * need no entry: `isReady` checks them anyway). `forced` (the operator's own pick) goes
 * to `waiting` regardless, like `rerun`.
 */
function resetInOrder(tx: Tx, idx: InstanceIndex, set: Set<string>, forced: string | undefined, by: string | undefined): void {
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

/** Resolves and checks the precondition: "rerun needs state ...; `load` on 2026-11-19 is running". */
function resolveIn(s: EngineState, ref: TaskRef, operation: string, from: readonly TaskState[]) {
  const found = resolve(s, ref);
  if (!found.ok) return found;
  if (!from.includes(found.ti.state)) {
    return refuse("wrong-state", `${operation} needs state ${orList(from)}; ${describe(found.idx, ref.task)} is ${found.ti.state}`, {
      state: found.ti.state,
      allowed: from,
    });
  }
  return found;
}

/** The scope's run and instances, or the refusal for the first thing it names that does not exist. */
function resolveBatch(s: EngineState, scope: BatchScope): { ok: true; run: RunIndex; instances: InstanceIndex[] | undefined } | Refusal {
  const run = s.runs.get(scope.runId);
  if (!run) return refuse("no-run", `no run \`${scope.runId}\``);
  if (scope.instanceIds === undefined) return { ok: true, run, instances: undefined };
  const instances: InstanceIndex[] = [];
  for (const id of new Set(scope.instanceIds)) {
    const idx = s.instances.get(id);
    if (!idx || idx.run !== run) return refuse("no-instance", `run ${run.run.id} has no workflow instance \`${id}\``);
    instances.push(idx);
  }
  return { ok: true, run, instances };
}

function batchOf(scope: RunScope): BatchScope {
  return scope.instanceId === undefined ? { runId: scope.runId } : { runId: scope.runId, instanceIds: [scope.instanceId] };
}
