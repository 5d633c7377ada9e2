/**
 * The operations of SPEC §3, what an operator asks of task instances: kill, rerun, set
 * success, pause, resume and rerun downstream on one task instance, and the batch forms
 * on a run or some of its instances. Each checks its precondition (the states of
 * protocol/operations.ts), is refused with the reason otherwise (nothing changed), and
 * else is one decision: its records, then whatever the scheduler starts because of it.
 */
import { OPERATION_FROM } from "../../protocol/operations";
import type { OperationResult, Refusal, RunScope, TaskInstance, TaskRef, TaskState } from "../../protocol/runner";
import { base, Tx } from "./decision";
import { describe, describeInstance, orList, refuse, resolve } from "./refusals";
import { settle, succeed } from "./scheduling";
import { type EngineState, type InstanceIndex, isReady, type RunIndex } from "./state";

const RERUN_FROM = OPERATION_FROM.rerun;
const KILL_FROM = OPERATION_FROM.kill;
const SET_SUCCESS_FROM = OPERATION_FROM.setSuccess;
const PAUSE_FROM = OPERATION_FROM.pause;
const RESUME_FROM = OPERATION_FROM.resume;

/** `Engine.kill`. */
export function kill(s: EngineState, ref: TaskRef, now: number, by?: string): OperationResult {
  const found = resolveIn(s, ref, "kill", KILL_FROM);
  if (!found.ok) return found;
  const pending = pendingKill(found.idx, found.ti);
  if (pending) return pending;
  const tx = new Tx(s, now);
  killTask(tx, found.idx, found.ti, by);
  return { ok: true, ...settle(tx) };
}

/** `Engine.rerun`. */
export function rerun(s: EngineState, ref: TaskRef, now: number, by?: string): OperationResult {
  return operate(s, ref, "rerun", RERUN_FROM, now, (tx, idx, ti) => {
    tx.transition(idx, ti, "waiting", "operator", by, undefined, ti.after ? [] : undefined);
    tx.dirty.add(idx);
  });
}

/** `Engine.setSuccess`. */
export function setSuccess(s: EngineState, ref: TaskRef, now: number, by?: string): OperationResult {
  return operate(s, ref, "set success", SET_SUCCESS_FROM, now, (tx, idx, ti) => succeed(tx, idx, ti, "operator", by, undefined));
}

/** `Engine.pause`. */
export function pause(s: EngineState, ref: TaskRef, now: number, by?: string): OperationResult {
  return operate(s, ref, "pause", PAUSE_FROM, now, (tx, idx, ti) => {
    tx.transition(idx, ti, "paused", "operator", by);
    tx.dirty.add(idx);
  });
}

/** `Engine.resume`. */
export function resume(s: EngineState, ref: TaskRef, now: number, by?: string): OperationResult {
  return operate(s, ref, "resume", RESUME_FROM, now, (tx, idx, ti) => {
    const ready = ti.retryAt !== undefined || (idx.inst.state !== "queued" && isReady(idx, ti));
    tx.transition(idx, ti, ready ? "waiting" : "not_run", "operator", by);
    tx.dirty.add(idx);
  });
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

/** `Engine.killRun`. */
export function killRun(s: EngineState, scope: RunScope, now: number, by?: string): OperationResult {
  const found = resolveScope(s, scope);
  if (!found.ok) return found;
  const tx = new Tx(s, now);
  for (const idx of found.instances) {
    if (idx.inst.state === "queued") {
      tx.setInstanceState(idx, "finished");
      tx.touched.add(idx.run);
      continue;
    }
    if (idx.waiting.size === 0 && idx.running === 0) continue;
    for (const ti of idx.inst.tasks) {
      if (KILL_FROM.includes(ti.state) && !pendingKill(idx, ti)) killTask(tx, idx, ti, by);
    }
  }
  if (tx.records.length === 0) {
    return refuse("nothing-to-do", `kill run needs a waiting or running task, or a workflow instance not started yet; ${found.label} has none (run state ${found.run.run.state})`);
  }
  return { ok: true, ...settle(tx) };
}

/** `Engine.rerunFailed`. */
export function rerunFailed(s: EngineState, scope: RunScope, now: number, by?: string): OperationResult {
  const found = resolveScope(s, scope);
  if (!found.ok) return found;
  const tx = new Tx(s, now);
  for (const idx of found.instances) {
    if (idx.inst.state === "finished" && idx.inst.tasks.every((t) => t.state === "not_run" && t.attempts.length === 0)) {
      // Cancelled by a kill run before it started: it queues again.
      tx.setInstanceState(idx, "queued");
      tx.slots.add(idx.run);
      continue;
    }
    const set = new Set(idx.inst.tasks.filter((t) => t.state === "failed" || t.state === "killed").map((t) => t.task));
    if (set.size > 0) resetInOrder(tx, idx, set, undefined, by);
  }
  if (tx.records.length === 0) {
    return refuse("nothing-to-do", `rerun failed needs a failed or killed task or a cancelled workflow instance; ${found.label} has none (run state ${found.run.run.state})`);
  }
  return { ok: true, ...settle(tx) };
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

/** One task's operation: refused unless the task is in `from`, else `change` in one transaction. */
function operate(
  s: EngineState,
  ref: TaskRef,
  operation: string,
  from: readonly TaskState[],
  now: number,
  change: (tx: Tx, idx: InstanceIndex, ti: TaskInstance) => void,
): OperationResult {
  const found = resolveIn(s, ref, operation, from);
  if (!found.ok) return found;
  const tx = new Tx(s, now);
  change(tx, found.idx, found.ti);
  return { ok: true, ...settle(tx) };
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

function resolveScope(s: EngineState, scope: RunScope): { ok: true; run: RunIndex; instances: InstanceIndex[]; label: string } | Refusal {
  const run = s.runs.get(scope.runId);
  if (!run) return refuse("no-run", `no run \`${scope.runId}\``);
  if (scope.instanceId === undefined) return { ok: true, run, instances: run.instances, label: `run ${run.run.id}` };
  const idx = s.instances.get(scope.instanceId);
  if (!idx || idx.run !== run) return refuse("no-instance", `run ${run.run.id} has no workflow instance \`${scope.instanceId}\``);
  return { ok: true, run, instances: [idx], label: `the instance on ${describeInstance(idx)}` };
}
