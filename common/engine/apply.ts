/**
 * The reducer: one `EngineRecord` applied to the state. The only code that changes a run,
 * so that replaying a journal (`Engine.replay`, `restore`), a decision applying its own
 * records as it makes them (`Tx.emit`) and the extension applying the records a runner
 * pushes (`Engine.load`, then `apply`) all reach the same state. A record that does not
 * fit the state throws: the journal is corrupt (`restore` fits what it can).
 */
import type { EngineRecord, InstanceState, Run, RunCreatedRecord, TaskInstance, TaskState } from "../../protocol/runner";
import { adjustInstanceCount, type EngineState, type InstanceIndex, setAfter } from "./state";

/** Applies one record. Throws when the record does not fit the state (a corrupt journal). */
export function applyRecord(s: EngineState, record: EngineRecord): void {
  switch (record.type) {
    case "run.created":
      applyRunCreated(s, record);
      return;
    case "run.state": {
      const run = s.runIndex(record.runId).run;
      expectState(`run ${run.id}`, run.state, record.from);
      run.state = record.to;
      if (record.to === "running") delete run.endedAt;
      else run.endedAt = record.at;
      return;
    }
    case "instance.state": {
      const idx = s.instanceIndex(record.instanceId);
      expectState(`instance ${idx.inst.id}`, idx.inst.state, record.from);
      idx.inst.state = record.to;
      const run = idx.run;
      adjustInstanceCount(run, record.from, -1);
      adjustInstanceCount(run, record.to, +1);
      if (record.to === "queued") run.queue.push(idx.position);
      return;
    }
    case "task.state": {
      const idx = s.instanceIndex(record.instanceId);
      const ti = taskOf(idx, record.task);
      expectState(`task ${record.task} of ${idx.inst.id}`, ti.state, record.from);
      ti.state = record.to;
      idx.run.counts[record.from]--;
      idx.run.counts[record.to]++;
      if (record.from === "waiting") idx.waiting.delete(ti);
      if (record.to === "waiting") idx.waiting.add(ti);
      if (record.from === "running") idx.running--;
      if (record.to === "running") idx.running++;
      if ((record.from === "success") !== (record.to === "success")) {
        const delta = record.to === "success" ? -1 : 1;
        for (const d of idx.run.downstream.get(ti.task) ?? []) idx.unmet.set(d, idx.unmet.get(d)! + delta);
        for (const d of idx.afterOf.get(ti.task) ?? []) idx.unmet.set(d, idx.unmet.get(d)! + delta);
      }
      // A pending retry survives pause/resume; anything else that moves the task consumes or cancels it.
      if (record.to !== "waiting" && record.to !== "paused") delete ti.retryAt;
      if (record.after !== undefined) setAfter(idx, ti, record.after);
      else if (record.to !== "not_run" && record.to !== "waiting" && record.to !== "paused") setAfter(idx, ti, []);
      ti.history.push({
        at: record.at,
        from: record.from,
        to: record.to,
        cause: record.cause,
        ...(record.by !== undefined ? { by: record.by } : {}),
        ...(record.attempt !== undefined ? { attempt: record.attempt } : {}),
      });
      s.syncTimer(idx, ti);
      return;
    }
    case "attempt.started": {
      const idx = s.instanceIndex(record.instanceId);
      const ti = taskOf(idx, record.task);
      if (record.attempt !== ti.attempts.length + 1) {
        throw new Error(
          `journal out of order: expected attempt ${ti.attempts.length + 1} of ${record.task} on ${idx.inst.id}, got ${record.attempt}`,
        );
      }
      ti.attempts.push({
        n: record.attempt,
        startedAt: record.at,
        cause: record.cause,
        retry: record.retry,
        ...(record.deadline !== undefined ? { deadline: record.deadline } : {}),
      });
      s.syncTimer(idx, ti);
      return;
    }
    case "attempt.process": {
      const idx = s.instanceIndex(record.instanceId);
      const a = attemptOf(idx, taskOf(idx, record.task), record.attempt);
      a.pid = record.pid;
      if (record.handle) a.handle = record.handle;
      return;
    }
    case "attempt.timed-out": {
      const idx = s.instanceIndex(record.instanceId);
      const ti = taskOf(idx, record.task);
      attemptOf(idx, ti, record.attempt).timedOutAt = record.at;
      s.syncTimer(idx, ti);
      return;
    }
    case "attempt.kill-requested": {
      const idx = s.instanceIndex(record.instanceId);
      const ti = taskOf(idx, record.task);
      const a = attemptOf(idx, ti, record.attempt);
      a.killRequestedAt = record.at;
      if (record.by !== undefined) a.killRequestedBy = record.by;
      s.syncTimer(idx, ti);
      return;
    }
    case "attempt.ended": {
      const idx = s.instanceIndex(record.instanceId);
      const ti = taskOf(idx, record.task);
      const attempt = attemptOf(idx, ti, record.attempt);
      attempt.endedAt = record.at;
      if (record.exitCode !== undefined) attempt.exitCode = record.exitCode;
      if (record.signal !== undefined) attempt.signal = record.signal;
      if (record.error !== undefined) attempt.error = record.error;
      s.syncTimer(idx, ti);
      return;
    }
    case "task.retry-scheduled": {
      const idx = s.instanceIndex(record.instanceId);
      const ti = taskOf(idx, record.task);
      ti.retryAt = record.retryAt;
      s.syncTimer(idx, ti);
      return;
    }
    default: {
      const never: never = record;
      throw new Error(`unknown record type ${JSON.stringify((never as { type?: unknown }).type)}`);
    }
  }
}

function applyRunCreated(s: EngineState, record: RunCreatedRecord): void {
  const def = record.run;
  const run: Run = {
    id: def.id,
    kind: def.kind,
    file: def.file,
    workflow: def.workflow,
    spec: structuredClone(def.spec),
    createdAt: record.at,
    ...(def.by !== undefined ? { by: def.by } : {}),
    parallelism: def.parallelism,
    order: def.order,
    concurrency: def.concurrency,
    tasks: structuredClone(def.tasks),
    state: "running",
    instances: def.instances.map((i) => ({
      id: i.id,
      runId: def.id,
      bizdate: i.bizdate,
      cyctime: i.cyctime,
      state: "queued" as InstanceState,
      tasks: def.tasks.map((t) => ({ task: t.id, state: "not_run" as TaskState, attempts: [], history: [] })),
    })),
  };
  s.indexRun(run);
}

function expectState(what: string, actual: string, expected: string): void {
  if (actual !== expected) throw new Error(`journal out of order: expected ${what} in state ${expected}, got ${actual}`);
}

function taskOf(idx: InstanceIndex, task: string): TaskInstance {
  const ti = idx.tasks.get(task);
  if (!ti) throw new Error(`journal names task ${task} of ${idx.inst.id}, which its run did not select`);
  return ti;
}

function attemptOf(idx: InstanceIndex, ti: TaskInstance, n: number) {
  const a = ti.attempts[n - 1];
  if (!a) throw new Error(`journal names attempt ${n} of ${ti.task} on ${idx.inst.id}, which has ${ti.attempts.length}`);
  return a;
}
