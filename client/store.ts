/**
 * The extension's picture of the runner's runs. It is built the way the runner builds its
 * own: runs fetched once (`runs.get`) are loaded into the engine (`Engine.load`), and every
 * record pushed afterwards is applied with the engine's own reducer (`Engine.apply`), so
 * there is no second interpretation of states here.
 *
 * - On each (re)connection and on `resync` the whole picture is fetched again.
 * - A record that does not fit (the runner answered `runs.get` with a state that already
 *   held it, or an event was lost) makes the run be fetched again rather than guessed at.
 * - Runs bigger than `maxLoadedTaskInstances` are kept as summaries, their counts updated
 *   from `task.state` records; the trees show their counts, not their instances.
 * - Changes are coalesced: listeners get at most one `StoreChange` per `coalesceMs` naming
 *   the runs, workflow instances and task instances that changed (the first at once).
 */
import * as vscode from "vscode";
import type { ApiEvent } from "../protocol/api";
import type { EngineRecord, Run, RunSummary, TaskInstance, TaskState, WorkflowInstance } from "../protocol/runner";
import { Engine } from "../common/engine/engine";
import type { RunnerClient } from "../common/runner-client";
import type { RunnerConnection } from "./connection";

export interface StoreChange {
  /** Runs appeared or disappeared (or everything was fetched again): rebuild the lists. */
  structure: boolean;
  runs: Set<string>;
  instances: Set<string>;
  /** `${instanceId}|${task}` */
  tasks: Set<string>;
}

export function taskKey(instanceId: string, task: string): string {
  return `${instanceId}|${task}`;
}

/** The latest task instance of a task, across the runs of its workflow. */
export interface LatestTaskInstance {
  run: Readonly<Run>;
  instance: Readonly<WorkflowInstance>;
  task: Readonly<TaskInstance>;
}

export class RunStore implements vscode.Disposable {
  private engine = new Engine();
  /** Runs too big to load, by id: summaries only. */
  private big = new Map<string, RunSummary>();
  private order: string[] = [];
  private loading: Promise<void> | undefined;
  private buffered: ApiEvent[] = [];
  private pending: StoreChange = emptyChange();
  private flushTimer: NodeJS.Timeout | undefined;
  private lastFlush = 0;
  private readonly emitter = new vscode.EventEmitter<StoreChange>();
  private readonly disposables: vscode.Disposable[] = [this.emitter];
  readonly onDidChange = this.emitter.event;
  /** Set once the first fetch is done (the trees show "loading" before). */
  loaded = false;

  constructor(
    private readonly connection: RunnerConnection,
    private readonly options: () => { coalesceMs: number; maxLoadedTaskInstances: number },
    private readonly log: (line: string) => void,
  ) {
    connection.onDidConnect((client) => void this.reload(client), undefined, this.disposables);
    connection.onEvent((e) => this.onEvent(e), undefined, this.disposables);
  }

  // ------------------------------------------------------------------------------------
  // Reading
  // ------------------------------------------------------------------------------------

  /** Every run, newest first. */
  summaries(): RunSummary[] {
    const loaded = new Map(this.engine.listRuns().map((s) => [s.id, s]));
    const out: RunSummary[] = [];
    for (const id of this.order) {
      const s = loaded.get(id) ?? this.big.get(id);
      if (s) out.push(s);
    }
    return out;
  }

  summary(runId: string): RunSummary | undefined {
    return this.big.get(runId) ?? this.engine.runSummary(runId);
  }

  /** A loaded run (live object: never mutate it), or undefined for unknown and too-big runs. */
  run(runId: string): Readonly<Run> | undefined {
    return this.engine.viewRun(runId);
  }

  isBig(runId: string): boolean {
    return this.big.has(runId);
  }

  instance(instanceId: string): Readonly<WorkflowInstance> | undefined {
    return this.engine.viewInstance(instanceId);
  }

  taskInstance(instanceId: string, task: string): Readonly<TaskInstance> | undefined {
    return this.engine.viewInstance(instanceId)?.tasks.find((t) => t.task === task);
  }

  /**
   * The latest instance of each task of a workflow: from the newest run that selected the
   * task, its instance that ran last (latest start), or its first one when none ran.
   */
  latestByTask(workflow: string): Map<string, LatestTaskInstance> {
    const out = new Map<string, LatestTaskInstance>();
    for (const id of this.order) {
      const run = this.engine.viewRun(id);
      if (!run || run.workflow !== workflow) continue;
      for (const def of run.tasks) {
        if (out.has(def.id)) continue;
        let best: { instance: Readonly<WorkflowInstance>; task: Readonly<TaskInstance>; at: number } | undefined;
        for (const instance of run.instances) {
          const ti = instance.tasks.find((t) => t.task === def.id);
          if (!ti) continue;
          const at = ti.attempts.length > 0 ? ti.attempts[ti.attempts.length - 1].startedAt : -1;
          if (!best || at > best.at) best = { instance, task: ti, at };
        }
        if (best) out.set(def.id, { run, instance: best.instance, task: best.task });
      }
    }
    return out;
  }

  /** The task states of one workflow instance (the DAG preview's colors). */
  taskStates(instanceId: string): Map<string, TaskState> | undefined {
    const inst = this.engine.viewInstance(instanceId);
    return inst && new Map(inst.tasks.map((t) => [t.task, t.state]));
  }

  // ------------------------------------------------------------------------------------
  // Keeping up
  // ------------------------------------------------------------------------------------

  /** Fetches every run again, then applies what arrived meanwhile. */
  reload(client: RunnerClient): Promise<void> {
    const run = async () => {
      this.buffered = [];
      const list = await client.request("runs.list", {});
      const engine = new Engine();
      const big = new Map<string, RunSummary>();
      const limit = this.options().maxLoadedTaskInstances;
      const toLoad = list.filter((s) => {
        const total = Object.values(s.counts).reduce((a, b) => a + b, 0);
        if (total > limit) big.set(s.id, s);
        return total <= limit;
      });
      // Pipelined on the one socket; answers come in order.
      const runs = await Promise.all(toLoad.map((s) => client.request("runs.get", { run: s.id })));
      for (const r of runs) engine.load(r);
      this.engine = engine;
      this.big = big;
      this.order = list.sort((a, b) => b.createdAt - a.createdAt || runNumber(b.id) - runNumber(a.id)).map((s) => s.id);
      this.loaded = true;
      this.pending.structure = true;
      const events = this.buffered;
      this.buffered = [];
      this.loading = undefined;
      for (const e of events) this.onEvent(e);
      this.schedule();
    };
    const p = run().catch((e: unknown) => {
      this.loading = undefined;
      this.log(`cannot fetch the runs: ${e instanceof Error ? e.message : String(e)}`);
    });
    this.loading = p;
    return p;
  }

  private onEvent(e: ApiEvent): void {
    if (this.loading) {
      this.buffered.push(e);
      return;
    }
    switch (e.event) {
      case "records":
        this.applyRecords(e.records);
        return;
      case "resync":
        this.log(`resync: ${e.reason}`);
        void this.connection.request("runner.status", {}).then(
          () => this.refetchAll(),
          () => undefined,
        );
        return;
      case "log":
      case "stopping":
        return;
      default: {
        const never: never = e;
        void never;
      }
    }
  }

  private refetchAll(): void {
    void this.connection.attach().then((client) => client && this.reload(client));
  }

  private applyRecords(records: EngineRecord[]): void {
    const stale = new Set<string>();
    for (const r of records) {
      const runId = r.type === "run.created" ? r.run.id : r.runId;
      if (stale.has(runId)) continue;
      if (r.type === "run.created") {
        const total = r.run.instances.length * r.run.tasks.length;
        if (this.engine.hasRun(runId) || this.big.has(runId)) continue;
        this.order.unshift(runId);
        this.pending.structure = true;
        if (total > this.options().maxLoadedTaskInstances) {
          stale.add(runId); // its summary comes from runs.list
          continue;
        }
      }
      const big = this.big.get(runId);
      if (big) {
        if (r.type === "task.state") {
          big.counts[r.from]--;
          big.counts[r.to]++;
        } else if (r.type === "run.state") big.state = r.to;
        this.pending.runs.add(runId);
        continue;
      }
      if (r.type !== "run.created" && !this.engine.hasRun(runId)) {
        stale.add(runId);
        continue;
      }
      try {
        this.engine.apply(r);
      } catch (e) {
        this.log(`record for ${runId} does not fit the state seen (${e instanceof Error ? e.message : String(e)}); fetching the run again`);
        stale.add(runId);
        continue;
      }
      this.pending.runs.add(runId);
      if ("instanceId" in r) {
        this.pending.instances.add(r.instanceId);
        if ("task" in r) this.pending.tasks.add(taskKey(r.instanceId, r.task));
      }
    }
    for (const runId of stale) void this.refetchRun(runId);
    this.schedule();
  }

  private async refetchRun(runId: string): Promise<void> {
    try {
      const list = await this.connection.request("runs.list", {});
      const s = list.find((x) => x.id === runId);
      if (!s) return;
      const total = Object.values(s.counts).reduce((a, b) => a + b, 0);
      if (total > this.options().maxLoadedTaskInstances) {
        this.engine.forget(runId);
        this.big.set(runId, s);
      } else {
        this.engine.load(await this.connection.request("runs.get", { run: runId }));
        this.big.delete(runId);
      }
      if (!this.order.includes(runId)) this.order.unshift(runId);
      this.pending.structure = true;
      this.schedule();
    } catch (e) {
      this.log(`cannot fetch ${runId}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** The first change after a quiet `coalesceMs` goes out at once; later ones wait for the next slot. */
  private schedule(): void {
    if (this.flushTimer) return;
    const wait = this.lastFlush + this.options().coalesceMs - Date.now();
    if (wait <= 0) this.flush();
    else this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const change = this.pending;
    this.pending = emptyChange();
    if (change.structure || change.runs.size > 0) {
      this.lastFlush = Date.now();
      this.emitter.fire(change);
    }
  }

  /** Waits for a fetch under way (tests, commands that just created a run). */
  settled(): Promise<void> {
    return this.loading ?? Promise.resolve();
  }

  dispose(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const d of this.disposables) d.dispose();
  }
}

function emptyChange(): StoreChange {
  return { structure: false, runs: new Set(), instances: new Set(), tasks: new Set() };
}

function runNumber(id: string): number {
  const m = /^run-(\d+)$/.exec(id);
  return m ? Number(m[1]) : 0;
}
