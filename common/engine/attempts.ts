/**
 * Attempts as the executor sees them: an attempt's exit (what it means for the task), its
 * spawned process, the `start` effect an adopted attempt is run on with, and the end of
 * attempts a crashed or stopped runner left with no known exit (`recover`).
 */
import type { AttemptExit, AttemptHandle, Decision, EngineRecord, OperationResult, StartEffect, TaskRef } from "../../protocol/runner";
import { formatDuration } from "../durations";
import { applyRecord } from "./apply";
import { Tx } from "./decision";
import { describe, refuse, resolve } from "./refusals";
import { fail, failover, settle, startEffect, succeed } from "./scheduling";
import type { EngineState } from "./state";

export const RECOVERY_ERROR = "the runner restarted and the attempt's process was gone with no known exit status; it runs again as a failover attempt";
export const STOPPED_ERROR = "ended by `runner stop`; it runs again, as a failover attempt, when a runner starts";
export const RECOVERY_KILLED_ERROR = "runner restarted before the killed attempt's exit was reported";

/** `Engine.onAttemptExit`. */
export function onAttemptExit(s: EngineState, instanceId: string, task: string, attempt: number, exit: AttemptExit, now: number): OperationResult {
  const found = resolve(s, { instanceId, task });
  if (!found.ok) return found;
  const { idx, ti } = found;
  const a = ti.attempts[attempt - 1];
  if (a === undefined) {
    return refuse("no-log", `${describe(idx, task)} has no attempt ${attempt}; it has ${ti.attempts.length}`);
  }
  if (a.endedAt !== undefined) return { ok: true, ...settle(new Tx(s, now)) };
  const tx = new Tx(s, now);
  const def = idx.run.defs.get(task)!;
  const timedOut = a.timedOutAt !== undefined;
  const error = timedOut
    ? `timed out after ${formatDuration(def.timeoutMs ?? 0)}`
    : exit.interrupted && a.killRequestedAt === undefined
      ? (exit.error ?? STOPPED_ERROR)
      : exit.error;
  // An end the executor dates (an adopted attempt's exit file) is kept, within the attempt's life.
  const endedAt = exit.endedAt !== undefined ? Math.min(now, Math.max(a.startedAt, exit.endedAt)) : now;
  tx.emit({
    type: "attempt.ended",
    at: endedAt,
    runId: idx.run.run.id,
    instanceId,
    task,
    attempt,
    ...(exit.exitCode !== undefined ? { exitCode: exit.exitCode } : {}),
    ...(exit.signal !== undefined ? { signal: exit.signal } : {}),
    ...(error !== undefined ? { error } : {}),
  });
  if (attempt === ti.attempts.length && ti.state === "running") {
    const succeeded = !timedOut && exit.error === undefined && exit.signal === undefined && exit.exitCode === 0;
    if (a.killRequestedAt !== undefined) {
      // The operator's kill is complete only now that the processes are gone (SPEC §3).
      tx.transition(idx, ti, "killed", "operator", a.killRequestedBy, attempt);
      tx.dirty.add(idx);
    } else if (exit.interrupted && !timedOut) failover(tx, idx, ti, attempt);
    else if (succeeded) succeed(tx, idx, ti, "scheduler", undefined, attempt);
    else fail(tx, idx, ti, timedOut ? "timeout" : undefined);
  }
  return { ok: true, ...settle(tx) };
}

/** `Engine.recordProcess`: the `attempt.process` record, applied, or undefined when the attempt is unknown or ended. */
export function recordProcess(s: EngineState, ref: TaskRef, attempt: number, handle: AttemptHandle, now: number): EngineRecord | undefined {
  const idx = s.instances.get(ref.instanceId);
  const ti = idx?.tasks.get(ref.task);
  const a = ti?.attempts[attempt - 1];
  if (!idx || !a || a.endedAt !== undefined) return undefined;
  const record: EngineRecord = { type: "attempt.process", at: now, runId: idx.run.run.id, instanceId: idx.inst.id, task: ref.task, attempt, pid: handle.pid, handle };
  applyRecord(s, record);
  return record;
}

/** The `start` effect of an existing attempt, as `startTask` made it: what an executor needs to adopt it. */
export function attemptEffect(s: EngineState, instanceId: string, task: string, attempt: number): StartEffect | undefined {
  const idx = s.instances.get(instanceId);
  const a = idx?.tasks.get(task)?.attempts[attempt - 1];
  if (!idx || !a) return undefined;
  return startEffect(idx, task, attempt, a.deadline);
}

/** Why an unended attempt is being killed (`operator`, `timeout`), if it is. */
export function pendingKillOf(s: EngineState, instanceId: string, task: string, attempt: number): "operator" | "timeout" | undefined {
  const a = s.instances.get(instanceId)?.tasks.get(task)?.attempts[attempt - 1];
  if (!a || a.endedAt !== undefined) return undefined;
  return a.killRequestedAt !== undefined ? "operator" : a.timedOutAt !== undefined ? "timeout" : undefined;
}

/** Attempts with no recorded end, and their pids: what a crashed runner may have left running. */
export function unendedAttempts(s: EngineState): { runId: string; instanceId: string; task: string; attempt: number; pid?: number; handle?: AttemptHandle }[] {
  const out: { runId: string; instanceId: string; task: string; attempt: number; pid?: number; handle?: AttemptHandle }[] = [];
  for (const run of s.runs.values()) {
    for (const idx of run.instances) {
      for (const ti of idx.inst.tasks) {
        const a = ti.attempts[ti.attempts.length - 1];
        if (a && a.endedAt === undefined) out.push({ runId: run.run.id, instanceId: idx.inst.id, task: ti.task, attempt: a.n, pid: a.pid, handle: a.handle });
      }
    }
  }
  return out;
}

/** `Engine.recover`: every unended attempt not in `adopted` ends; its task fails over, is killed or times out. */
export function recover(s: EngineState, now: number, adopted: ReadonlySet<string>): Decision {
  const tx = new Tx(s, now);
  for (const run of s.runs.values()) {
    for (const idx of run.instances) {
      for (const ti of idx.inst.tasks) {
        const a = ti.attempts[ti.attempts.length - 1];
        if (a === undefined || a.endedAt !== undefined) continue;
        if (adopted.has(`${idx.inst.id}/${ti.task}/${a.n}`)) continue;
        const running = ti.state === "running";
        const killing = !running || a.killRequestedAt !== undefined;
        const def = run.defs.get(ti.task)!;
        tx.emit({
          type: "attempt.ended",
          at: now,
          runId: run.run.id,
          instanceId: idx.inst.id,
          task: ti.task,
          attempt: a.n,
          error: killing
            ? RECOVERY_KILLED_ERROR
            : a.timedOutAt !== undefined
              ? `timed out after ${formatDuration(def.timeoutMs ?? 0)}; ${RECOVERY_KILLED_ERROR}`
              : RECOVERY_ERROR,
        });
        if (!running) continue;
        if (a.killRequestedAt !== undefined) {
          tx.transition(idx, ti, "killed", "operator", a.killRequestedBy, a.n);
          tx.dirty.add(idx);
        } else if (a.timedOutAt !== undefined) fail(tx, idx, ti, "timeout");
        else failover(tx, idx, ti, a.n);
      }
      if (idx.inst.state === "active") tx.dirty.add(idx);
    }
    if (run.run.state === "running") tx.slots.add(run);
  }
  return settle(tx);
}
