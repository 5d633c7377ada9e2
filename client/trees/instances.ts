/**
 * The Instances view: runs (newest first) → workflow instances → task instances, as
 * DataWorks' Operation Center lists them. Built from the RunStore's live objects:
 * - children are built only when a node is expanded;
 * - node objects are kept by id, so a change refreshes exactly the task instances that
 *   changed (and their instance and run, whose counts moved), at most one event per
 *   220 ms (see `scheduleFire`); the row of a run of more than 100 workflow instances
 *   refreshes at most every 2 s, since VS Code reads a refreshed row's children again;
 * - each item's `contextValue` is `<kind>.<state>`, which the menus' `when` clauses match
 *   against the states each operation is allowed from (SPEC §3).
 */
import * as vscode from "vscode";
import type { RunKind, RunSummary, TaskInstance, TaskState, WorkflowInstance } from "../../protocol/runner";
import { TASK_STATES } from "../../protocol/runner";
import { elapsed, localTime } from "../../common/time-format";
import { instanceState, liveFirst, taskFacts, taskHeadline } from "../../common/task-words";
import { runStateIcon, taskStateIcon } from "../states";
import { taskKey, type RunStore, type StoreChange } from "../store";

/** Above VS Code's 200 ms tree-event debounce (see `scheduleFire`). */
const FIRE_SPACING_MS = 220;
const BURST_MS = 20;
/** A run row with more workflow instances than this refreshes at most every WIDE_RUN_REFRESH_MS. */
const WIDE_RUN = 100;
const WIDE_RUN_REFRESH_MS = 2000;

export type InstancesNode = RunNode | InstanceNode | TaskNode | NoteNode;

export class RunNode {
  readonly kind = "run";
  constructor(readonly runId: string) {}
}

export class InstanceNode {
  readonly kind = "instance";
  constructor(
    readonly runId: string,
    readonly instanceId: string,
  ) {}
}

export class TaskNode {
  readonly kind = "task";
  constructor(
    readonly runId: string,
    readonly instanceId: string,
    readonly task: string,
  ) {}
}

export class NoteNode {
  readonly kind = "note";
  constructor(
    readonly id: string,
    readonly text: string,
  ) {}
}

export interface InstancesFilter {
  states?: TaskState[];
  workflows?: string[];
  kinds?: RunKind[];
}

export class InstancesTree implements vscode.TreeDataProvider<InstancesNode>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<InstancesNode | InstancesNode[] | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly nodes = new Map<string, InstancesNode>();
  private readonly disposables: vscode.Disposable[] = [this.emitter];
  private readonly pending = new Set<InstancesNode>();
  private pendingAll = false;
  private lastFire = 0;
  private fireTimer: ReturnType<typeof setTimeout> | undefined;
  private waiters: (() => void)[] = [];
  private readonly slow = new Set<InstancesNode>();
  private slowTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly ticker = setInterval(() => this.tick(), 1000);
  filter: InstancesFilter = {};
  view: vscode.TreeView<InstancesNode> | undefined;

  constructor(
    private readonly store: RunStore,
    private readonly runnerState: () => string,
  ) {
    store.onDidChange((c) => this.onChange(c), undefined, this.disposables);
  }

  setFilter(filter: InstancesFilter): void {
    this.filter = filter;
    this.refreshAll();
  }

  refreshAll(): void {
    this.pendingAll = true;
    this.scheduleFire();
  }

  private onChange(c: StoreChange): void {
    if (c.structure || this.filter.states) {
      // A state filter changes which nodes exist; a new run changes the root.
      this.pendingAll = true;
    } else if (!this.pendingAll) {
      for (const k of c.tasks) this.mark(`task:${k}`);
      for (const id of c.instances) this.mark(`instance:${id}`);
      for (const id of c.runs) {
        // Refreshing a row makes VS Code read its children again: for a run of many
        // instances that is the whole list, so its row (counts, state) waits for a slower slot.
        if ((this.store.run(id)?.instances.length ?? 0) > WIDE_RUN) this.markSlow(`run:${id}`);
        else this.mark(`run:${id}`);
      }
    }
    this.scheduleFire();
  }

  private markSlow(key: string): void {
    const n = this.nodes.get(key);
    if (!n) return;
    this.slow.add(n);
    this.slowTimer ??= setTimeout(() => {
      this.slowTimer = undefined;
      for (const m of this.slow) this.pending.add(m);
      this.slow.clear();
      this.scheduleFire();
    }, WIDE_RUN_REFRESH_MS);
  }

  private mark(key: string): void {
    const n = this.nodes.get(key);
    if (n) this.pending.add(n);
  }

  /**
   * VS Code's extension host debounces a tree's change events (200 ms, leading edge, and
   * every event restarts the wait): events closer together than that hold the view still
   * until they pause, which a busy backfill never does. So this tree fires at most once per
   * FIRE_SPACING_MS: the first change after a quiet spell shows after BURST_MS, later
   * ones are batched into the next slot.
   */
  private scheduleFire(): void {
    if (this.fireTimer) return;
    // A short first wait gathers a burst (a fast task's `running` and `success` records
    // arrive a few ms apart) into one event instead of one now and one 200 ms later.
    const wait = Math.max(BURST_MS, this.lastFire + FIRE_SPACING_MS - Date.now());
    this.fireTimer = setTimeout(() => this.fire(), wait);
  }

  private fire(): void {
    this.fireTimer = undefined;
    const all = this.pendingAll;
    const nodes = [...this.pending];
    this.pendingAll = false;
    this.pending.clear();
    if (all || nodes.length > 0) {
      this.lastFire = Date.now();
      this.emitter.fire(all ? undefined : nodes);
    }
    this.updateDescription();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once every change seen so far has been sent to the view. */
  flushed(): Promise<void> {
    if (!this.fireTimer) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** Running task instances' durations move: refresh their rows once a second while the view shows. */
  private tick(): void {
    if (!this.view?.visible || this.pendingAll) return;
    for (const n of this.nodes.values()) {
      if (n.kind === "task" && this.store.taskInstance(n.instanceId, n.task)?.state === "running") this.pending.add(n);
    }
    if (this.pending.size > 0) this.scheduleFire();
  }

  /** The view's description: task instances per state over the runs shown (DataWorks' statistics bar). */
  updateDescription(): void {
    if (!this.view) return;
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const s of this.visibleRuns()) for (const st of TASK_STATES) counts[st] += s.counts[st];
    const parts = TASK_STATES.filter((s) => counts[s] > 0).map((s) => `${s} ${counts[s]}`);
    const filtered = this.filter.states || this.filter.workflows || this.filter.kinds ? " (filtered)" : "";
    const description = parts.length > 0 ? parts.join(" · ") + filtered : filtered.trim();
    const stale = this.runnerState() !== "connected" && this.visibleRuns().some((r) => r.state === "running");
    const message = stale
      ? "The runner is not running: these states are as it last reported them. Start Runner to see them live."
      : this.store.loaded && filtered && this.visibleRuns().length === 0
        ? "No run matches the filter."
        : undefined;
    // Assign only what changed: a new message is one more change event in the view's debounce.
    if (this.view.description !== description) this.view.description = description;
    if (this.view.message !== message) this.view.message = message;
  }

  private visibleRuns(): RunSummary[] {
    const f = this.filter;
    return this.store.summaries().filter(
      (s) =>
        (!f.kinds || f.kinds.includes(s.kind)) &&
        (!f.workflows || f.workflows.includes(s.workflow)) &&
        (!f.states || f.states.some((st) => s.counts[st] > 0)),
    );
  }

  private node<T extends InstancesNode>(key: string, make: () => T): T {
    let n = this.nodes.get(key) as T | undefined;
    if (!n) this.nodes.set(key, (n = make()));
    return n;
  }

  getChildren(element?: InstancesNode): InstancesNode[] {
    if (!element) {
      if (this.runnerState() === "stopped" && this.store.summaries().length === 0) return [];
      return this.visibleRuns().map((s) => this.node(`run:${s.id}`, () => new RunNode(s.id)));
    }
    const states = this.filter.states;
    switch (element.kind) {
      case "run": {
        if (this.store.isBig(element.runId)) {
          const s = this.store.summary(element.runId);
          return [this.node(`note:${element.runId}`, () => new NoteNode(`note:${element.runId}`, `${s?.instances ?? 0} workflow instances: too many to list here (see \`tideflow show ${element.runId}\`)`))];
        }
        const run = this.store.run(element.runId);
        if (!run) return [];
        // Live work first: running, then failed and killed, waiting, paused; then the rest in run order.
        return liveFirst(run.instances.filter((i) => !states || i.tasks.some((t) => states.includes(t.state)))).map((i) =>
          this.node(`instance:${i.id}`, () => new InstanceNode(run.id, i.id)),
        );
      }
      case "instance": {
        const inst = this.store.instance(element.instanceId);
        if (!inst) return [];
        return inst.tasks
          .filter((t) => !states || states.includes(t.state))
          .map((t) => this.node(`task:${taskKey(inst.id, t.task)}`, () => new TaskNode(element.runId, inst.id, t.task)));
      }
      default:
        return [];
    }
  }

  getParent(element: InstancesNode): InstancesNode | undefined {
    switch (element.kind) {
      case "instance":
        return this.nodes.get(`run:${element.runId}`);
      case "task":
        return this.nodes.get(`instance:${element.instanceId}`);
      default:
        return undefined;
    }
  }

  /** The node of a task instance (built on demand), for `reveal`. */
  taskNode(runId: string, instanceId: string, task: string): TaskNode {
    this.node(`run:${runId}`, () => new RunNode(runId));
    this.node(`instance:${instanceId}`, () => new InstanceNode(runId, instanceId));
    return this.node(`task:${taskKey(instanceId, task)}`, () => new TaskNode(runId, instanceId, task));
  }

  dispose(): void {
    clearInterval(this.ticker);
    if (this.fireTimer) clearTimeout(this.fireTimer);
    if (this.slowTimer) clearTimeout(this.slowTimer);
    for (const d of this.disposables) d.dispose();
  }

  getTreeItem(element: InstancesNode): vscode.TreeItem {
    switch (element.kind) {
      case "run":
        return this.runItem(element);
      case "instance":
        return this.instanceItem(element);
      case "task":
        return this.taskItem(element);
      case "note": {
        const item = new vscode.TreeItem(element.text, vscode.TreeItemCollapsibleState.None);
        item.id = element.id;
        return item;
      }
    }
  }

  private runItem(n: RunNode): vscode.TreeItem {
    const s = this.store.summary(n.runId);
    const run = this.store.run(n.runId);
    const item = new vscode.TreeItem(`${n.runId} ${s?.workflow ?? ""}`, vscode.TreeItemCollapsibleState.Collapsed);
    item.id = `run:${n.runId}`;
    if (!s) return item;
    const dates = run ? dateRange(run.instances) : `${s.instances} instances`;
    const counts = TASK_STATES.filter((st) => s.counts[st] > 0).map((st) => `${st} ${s.counts[st]}`);
    item.description = `${s.state} · ${s.kind} · ${dates}${counts.length > 1 || s.state === "running" ? ` · ${counts.join(", ")}` : ""}`;
    item.iconPath = runStateIcon(s.state);
    item.contextValue = `run.${s.state}${batchFlags(s.counts)}`;
    item.tooltip = new vscode.MarkdownString(
      `**${n.runId}** — ${s.kind} of \`${s.workflow}\`, **${s.state}**\n\n` +
        `created ${localTime(s.createdAt)}${s.by ? ` by ${s.by}` : ""}${s.endedAt ? `, ended ${localTime(s.endedAt)} (${elapsed(s.endedAt - s.createdAt)})` : ""}\n\n` +
        `${s.instances} workflow instance${s.instances === 1 ? "" : "s"}; task instances: ${counts.join(", ")}`,
    );
    item.accessibilityInformation = { label: `${n.runId}, ${s.kind} of ${s.workflow}, ${s.state}, ${counts.join(", ")}` };
    return item;
  }

  private instanceItem(n: InstanceNode): vscode.TreeItem {
    const inst = this.store.instance(n.instanceId);
    const item = new vscode.TreeItem(inst?.bizdate ?? n.instanceId, vscode.TreeItemCollapsibleState.Collapsed);
    item.id = `instance:${n.instanceId}`;
    if (!inst) return item;
    const state = instanceState(inst);
    const counts = TASK_STATES.map((st) => [st, inst.tasks.filter((t) => t.state === st).length] as const).filter(([, c]) => c > 0);
    item.description = `${state} · cyctime ${inst.cyctime.replace("T", " ").slice(0, 16)}${counts.length > 1 ? ` · ${counts.map(([st, c]) => `${st} ${c}`).join(", ")}` : ""}`;
    item.iconPath = taskStateIcon(state);
    item.contextValue = `instance.${state}${batchFlags(Object.fromEntries(TASK_STATES.map((st) => [st, inst.tasks.filter((t) => t.state === st).length])) as Record<TaskState, number>)}`;
    item.tooltip = `${n.instanceId}\nbizdate ${inst.bizdate}, cyctime ${inst.cyctime} (${inst.state})`;
    item.accessibilityInformation = { label: `bizdate ${inst.bizdate}, ${state}, cyctime ${inst.cyctime}` };
    return item;
  }

  private taskItem(n: TaskNode): vscode.TreeItem {
    const ti = this.store.taskInstance(n.instanceId, n.task);
    const item = new vscode.TreeItem(n.task, vscode.TreeItemCollapsibleState.None);
    item.id = `task:${taskKey(n.instanceId, n.task)}`;
    if (!ti) return item;
    const { description, spoken, facts } = describeTask(ti);
    // Running as last reported, with no runner to say more: not known any more.
    const unknown = ti.state === "running" && this.runnerState() !== "connected";
    item.description = unknown ? "running? · no runner" : description;
    item.iconPath = unknown ? new vscode.ThemeIcon("question") : taskStateIcon(ti.state);
    item.contextValue = `task.${ti.state}`;
    item.accessibilityInformation = { label: `${n.task}: ${unknown ? "running as last reported, no runner" : spoken}` };
    const last = ti.history[ti.history.length - 1];
    item.tooltip =
      (unknown ? "No runner is running: this is the state it last reported. Start Runner adopts the attempt if it still runs.\n" : "") +
      `${n.task} — ${facts}${last ? `\n${ti.state} since ${localTime(last.at)} (${last.cause}${last.by ? ` by ${last.by}` : ""})` : ""}`;
    item.command = { command: "tideflow.showDetails", title: "Show Instance Details", arguments: [n] };
    return item;
  }
}

/**
 * A task instance in words (common/task-words.ts): the row shows its state and the one fact
 * that matters (`failed · exit 3`, `success · set by vscode`); a screen reader hears every
 * fact, and the tooltip shows them.
 */
export function describeTask(ti: Readonly<TaskInstance>, now = Date.now()): { description: string; spoken: string; facts: string } {
  const facts = taskFacts(ti, now);
  return { description: taskHeadline(ti, now), spoken: facts.join(", "), facts: facts.join(" · ") };
}

/**
 * What the batch operations can act on, as `contextValue` suffixes for the menus:
 * `.killable` (kill run: some task waiting or running), `.rerunnable` (rerun failed: some
 * task failed or killed).
 */
function batchFlags(counts: Record<TaskState, number>): string {
  const killable = counts.waiting + counts.running > 0;
  const rerunnable = counts.failed + counts.killed > 0;
  return `${killable ? ".killable" : ""}${rerunnable ? ".rerunnable" : ""}`;
}


function dateRange(instances: readonly Readonly<WorkflowInstance>[]): string {
  if (instances.length === 0) return "no instance";
  const dates = instances.map((i) => i.bizdate).sort();
  return dates[0] === dates[dates.length - 1] ? dates[0] : `${dates[0]} … ${dates[dates.length - 1]} (${instances.length})`;
}
