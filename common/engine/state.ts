/**
 * The engine's state: the runs themselves (all that `snapshot` serializes) and the
 * indexes derived from them, which make every decision cost what it touches rather than
 * the size of the runs. The indexes are never serialized: `indexRun` builds them from a
 * run in any state, and the reducer (apply.ts) keeps them exact record by record;
 * `verifyIndexes` checks that it does.
 */
import type { InstanceState, Run, RunState, RunTask, TaskInstance, TaskState, WorkflowInstance } from "../../protocol/runner";
import { TASK_STATES } from "../../protocol/runner";
import { LazyMap, LazySet, MinHeap, Tally, TaskTable } from "./tables";

/** Derived, per run; rebuilt by `apply` alone, never serialized. */
export interface RunIndex {
  run: Run;
  defs: Map<string, RunTask>;
  /** Direct downstream task ids within the selection. */
  downstream: Map<string, string[]>;
  /** Same order as `run.instances`; an instance's position is its priority. */
  instances: InstanceIndex[];
  /** Number of instances in state `active` / `queued`. */
  active: number;
  queued: number;
  /** Positions of queued instances; may hold stale entries (see `peekQueued`). */
  queue: MinHeap;
  /** Task instances per state, over the whole run. */
  counts: Record<TaskState, number>;
  /** Instances per bizdate: when above 1 (hourly), messages add the cyctime. */
  perBizdate: Map<string, number>;
}

/** Derived, per workflow instance. */
export interface InstanceIndex {
  run: RunIndex;
  inst: WorkflowInstance;
  position: number;
  /**
   * Task id → its task instance. These per-instance tables are small classes over the
   * run's shared task positions (see `TaskTable`), not Maps: four Maps and a Set cost
   * 740 bytes an instance, 74 MB of a 100,000-instance run's heap.
   */
  tasks: Pick<Map<string, TaskInstance>, "get" | "has">;
  /** Exactly the task instances in state `waiting`, in the order they got there. */
  waiting: LazySet<TaskInstance>;
  /** Number of task instances in state `running`. */
  running: number;
  /** Task id → the tasks whose `after` list names it (exactly). */
  afterOf: LazyMap<string, Set<string>>;
  /**
   * Task id → how many of its upstreams and `after` tasks are not `success`. A task is
   * ready when this is 0: kept up to date on every change, so that checking readiness
   * costs O(1) even below a wide fan-in (a task with thousands of upstreams).
   */
  unmet: { get(task: string): number | undefined; set(task: string, value: number): unknown };
}

/**
 * Elements the scheduler has looked at (instances, queued positions, tasks, timers), summed
 * over every engine in the process: tests assert on it that a decision's work does not grow
 * with the run (test/unit/scale.test.ts, engine.test.ts). Nothing in the product reads it.
 */
export const schedulerWork = { steps: 0 };

interface Timer {
  at: number;
  idx: InstanceIndex;
}

export class EngineState {
  /** Every run, in creation order. The state `snapshot()` serializes. */
  readonly runs = new Map<string, RunIndex>();
  readonly instances = new Map<string, InstanceIndex>();
  /**
   * Pending times: a running attempt's deadline (until it timed out), or a waiting task's
   * retry time. Bounded by the active work (running + retry-waiting tasks), so scanning it
   * per decision is cheap.
   */
  readonly timers = new Map<TaskInstance, Timer>();
  /** Highest n of the `run-<n>` ids seen, for the next default id. */
  runSeq = 0;
  /** Set by `halt`: nothing starts. */
  halted = false;

  /**
   * Builds a run's derived indexes from its state, whatever that state is: a new run's
   * (all `not_run`, every instance `queued`) or one fetched from a runner (`load`).
   */
  indexRun(run: Run): void {
    if (this.runs.has(run.id)) throw new Error(`journal has run ${run.id} created twice`);
    const downstream = new Map<string, string[]>(run.tasks.map((t) => [t.id, []]));
    for (const t of run.tasks) for (const u of t.upstream) downstream.get(u)?.push(t.id);
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    const index: RunIndex = {
      run,
      defs: new Map(run.tasks.map((t) => [t.id, t])),
      downstream,
      instances: [],
      active: 0,
      queued: 0,
      queue: new MinHeap(),
      counts,
      perBizdate: new Map(),
    };
    // Every instance lists the run's tasks in the run's order (as `run.created` makes
    // them): its tables then share one position map. A run loaded in another order gets Maps.
    const positions = new Map(run.tasks.map((t, i) => [t.id, i]));
    run.instances.forEach((inst, position) => {
      if (this.instances.has(inst.id)) throw new Error(`journal has instance ${inst.id} twice`);
      const aligned = inst.tasks.length === run.tasks.length && inst.tasks.every((t, i) => t.task === run.tasks[i].id);
      const tasks = aligned ? new TaskTable(positions, inst.tasks) : new Map(inst.tasks.map((t) => [t.task, t]));
      const idx: InstanceIndex = {
        run: index,
        inst,
        position,
        tasks,
        waiting: new LazySet(),
        running: 0,
        afterOf: new LazyMap(),
        unmet: aligned ? new Tally(positions) : new Map(),
      };
      const unmetOf = (task: string) => (tasks.get(task)?.state === "success" ? 0 : 1);
      for (const t of run.tasks) {
        let unmet = 0;
        for (const u of t.upstream) unmet += unmetOf(u);
        idx.unmet.set(t.id, unmet);
      }
      for (const ti of inst.tasks) {
        counts[ti.state]++;
        if (ti.state === "waiting") idx.waiting.add(ti);
        if (ti.state === "running") idx.running++;
        for (const a of ti.after ?? []) {
          let set = idx.afterOf.get(a);
          if (!set) idx.afterOf.set(a, (set = new Set()));
          set.add(ti.task);
          idx.unmet.set(ti.task, idx.unmet.get(ti.task)! + unmetOf(a));
        }
        this.syncTimer(idx, ti);
      }
      adjustInstanceCount(index, inst.state, +1);
      if (inst.state === "queued") index.queue.push(position);
      index.instances.push(idx);
      index.perBizdate.set(inst.bizdate, (index.perBizdate.get(inst.bizdate) ?? 0) + 1);
      this.instances.set(inst.id, idx);
    });
    this.runs.set(run.id, index);
    const seq = /^run-(\d+)$/.exec(run.id);
    if (seq) this.runSeq = Math.max(this.runSeq, Number(seq[1]));
  }

  /** Drops a run and its instances (a client that no longer shows it). */
  forget(runId: string): void {
    const index = this.runs.get(runId);
    if (!index) return;
    for (const idx of index.instances) {
      this.instances.delete(idx.inst.id);
      for (const ti of idx.inst.tasks) this.timers.delete(ti);
    }
    this.runs.delete(runId);
  }

  syncTimer(idx: InstanceIndex, ti: TaskInstance): void {
    let at: number | undefined;
    if (ti.state === "waiting") at = ti.retryAt;
    else if (ti.state === "running") {
      const a = ti.attempts[ti.attempts.length - 1];
      if (a && a.endedAt === undefined && a.timedOutAt === undefined && a.killRequestedAt === undefined) at = a.deadline;
    }
    if (at === undefined) this.timers.delete(ti);
    else this.timers.set(ti, { at, idx });
  }

  /** The next default run id is above `run-<n>`: ids of runs lost from a damaged journal, or whose log folders exist, are never used again. */
  reserveRunIds(n: number): void {
    if (Number.isSafeInteger(n) && n > this.runSeq) this.runSeq = n;
  }

  reserveRunIdOf(id: unknown): void {
    const m = typeof id === "string" ? /^run-(\d+)$/.exec(id) : null;
    if (m) this.reserveRunIds(Number(m[1]));
  }

  /** The earliest pending time after `now` (what the last decision's `wake` said). */
  nextWake(now: number): number | undefined {
    let next: number | undefined;
    for (const { at } of this.timers.values()) {
      schedulerWork.steps++;
      if (at > now && (next === undefined || at < next)) next = at;
    }
    return next;
  }

  /** The run a record names; a record naming no run is a corrupt journal. */
  runIndex(id: string): RunIndex {
    const run = this.runs.get(id);
    if (!run) throw new Error(`journal names run ${id}, which was never created`);
    return run;
  }

  instanceIndex(id: string): InstanceIndex {
    const idx = this.instances.get(id);
    if (!idx) throw new Error(`journal names workflow instance ${id}, which was never created`);
    return idx;
  }
}

/** Every upstream in the selection and every task in `after` is `success`. */
export function isReady(idx: InstanceIndex, ti: TaskInstance): boolean {
  return idx.unmet.get(ti.task) === 0;
}

/** Replaces a task's `after` list, keeping `afterOf` and `unmet` exact. */
export function setAfter(idx: InstanceIndex, ti: TaskInstance, after: readonly string[]): void {
  const unmetOf = (task: string) => (idx.tasks.get(task)!.state === "success" ? 0 : 1);
  let unmet = idx.unmet.get(ti.task)!;
  for (const a of ti.after ?? []) {
    idx.afterOf.get(a)?.delete(ti.task);
    unmet -= unmetOf(a);
  }
  if (after.length > 0) {
    ti.after = [...after];
    for (const a of after) {
      let set = idx.afterOf.get(a);
      if (!set) idx.afterOf.set(a, (set = new Set()));
      set.add(ti.task);
      unmet += unmetOf(a);
    }
  } else delete ti.after;
  idx.unmet.set(ti.task, unmet);
}

export function adjustInstanceCount(run: RunIndex, state: InstanceState, delta: number): void {
  if (state === "active") run.active += delta;
  else if (state === "queued") run.queued += delta;
}

export function runStateOf(run: RunIndex): RunState {
  if (run.active + run.queued > 0) return "running";
  const c = run.counts;
  if (c.success === run.run.instances.length * run.run.tasks.length) return "success";
  if (c.failed > 0) return "failed";
  if (c.killed > 0) return "killed";
  if (c.paused > 0) return "paused";
  // Unreachable while instances finish only when nothing can progress: a not_run task
  // left over is downstream of a failed, killed or paused one.
  return "failed";
}

/**
 * Recomputes every derived index from the runs themselves and lists where the
 * incrementally kept ones differ (empty when consistent). For tests; O(everything).
 */
export function verifyIndexes(s: EngineState): string[] {
  const problems: string[] = [];
  const timers = new Map<TaskInstance, number>();
  for (const run of s.runs.values()) {
    const counts = Object.fromEntries(TASK_STATES.map((st) => [st, 0])) as Record<TaskState, number>;
    let active = 0;
    let queued = 0;
    for (const idx of run.instances) {
      if (idx.inst.state === "active") active++;
      if (idx.inst.state === "queued") queued++;
      const waiting = idx.inst.tasks.filter((t) => t.state === "waiting");
      if (waiting.length !== idx.waiting.size || waiting.some((t) => !idx.waiting.has(t))) problems.push(`${idx.inst.id}: waiting set`);
      const running = idx.inst.tasks.filter((t) => t.state === "running").length;
      if (running !== idx.running) problems.push(`${idx.inst.id}: running ${idx.running}, expected ${running}`);
      for (const ti of idx.inst.tasks) {
        counts[ti.state]++;
        const deps = [...run.defs.get(ti.task)!.upstream, ...(ti.after ?? [])];
        const unmet = deps.filter((u) => idx.tasks.get(u)!.state !== "success").length;
        if (unmet !== idx.unmet.get(ti.task)) problems.push(`${idx.inst.id} ${ti.task}: unmet ${idx.unmet.get(ti.task)}, expected ${unmet}`);
        for (const a of ti.after ?? []) if (!idx.afterOf.get(a)?.has(ti.task)) problems.push(`${idx.inst.id} ${ti.task}: afterOf ${a}`);
        const last = ti.attempts[ti.attempts.length - 1];
        if (ti.state === "waiting" && ti.retryAt !== undefined) timers.set(ti, ti.retryAt);
        if (ti.state === "running" && last?.endedAt === undefined && last?.timedOutAt === undefined && last?.killRequestedAt === undefined && last?.deadline !== undefined) {
          timers.set(ti, last.deadline);
        }
      }
      for (const [a, set] of idx.afterOf) {
        for (const t of set) if (!idx.tasks.get(t)!.after?.includes(a)) problems.push(`${idx.inst.id} ${t}: stale afterOf ${a}`);
      }
    }
    if (active !== run.active || queued !== run.queued) problems.push(`${run.run.id}: active/queued ${run.active}/${run.queued}, expected ${active}/${queued}`);
    for (const st of TASK_STATES) if (counts[st] !== run.counts[st]) problems.push(`${run.run.id}: ${st} count ${run.counts[st]}, expected ${counts[st]}`);
    if (run.run.state !== runStateOf(run)) problems.push(`${run.run.id}: state ${run.run.state}, expected ${runStateOf(run)}`);
  }
  if (timers.size !== s.timers.size || [...timers].some(([ti, at]) => s.timers.get(ti)?.at !== at)) problems.push("timers");
  return problems;
}
