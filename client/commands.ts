/**
 * Every command of the extension, in one table: its id, whether it needs a trusted
 * workspace, and its handler. `registerCommands` registers them in a loop; the palette
 * titles are in package.json (`Tideflow: Test Workflow`, ...).
 *
 * Commands take their target from where they are invoked: a code lens passes
 * `{ uri, workflow, task? }`; a tree passes its node (and, with multi-select, every
 * selected node); the palette passes nothing, and the command asks with a quick pick
 * offering only the targets the operation is allowed on.
 */
import * as vscode from "vscode";
import type { WorkflowCommandArgs, WorkflowSummary } from "../protocol/lsp";
import type { CreateRunParams, TaskOperation } from "../protocol/api";
import type { Run, RunKind, RunSummary, TaskState } from "../protocol/runner";
import { TASK_STATES } from "../protocol/runner";
import { OPERATION_FROM, type OperationSpec } from "../protocol/operations";
import { RunnerError } from "../common/runner-client";
import { localTime } from "../common/time-format";
import type { RunnerConnection } from "./connection";
import type { RunStore } from "./store";
import type { LogDocuments } from "./log-documents";
import type { PlanDocuments } from "./plan-document";
import { InstanceNode, RunNode, TaskNode, describeTask, type InstancesNode, type InstancesTree } from "./trees/instances";
import { WorkflowNode, WorkflowTaskNode, type WorkflowsTree } from "./trees/workflows";
import { askDate, downstreamOf, pickBizdate, todayIn } from "./pickers";
import { previousDay } from "../common/zone";

export const RESTRICTED_MESSAGE =
  "Tideflow does not run workflows in Restricted Mode: this workspace is not trusted, and running a workflow executes its code. Trust the workspace (Manage Workspace Trust) to run it.";

export interface CommandContext {
  connection: RunnerConnection;
  store: RunStore;
  workflows: WorkflowsTree;
  instances: InstancesTree;
  instancesView: vscode.TreeView<InstancesNode>;
  logs: LogDocuments;
  plans: PlanDocuments;
  showDag(uri: string, workflow: string): void;
  showDetails(target: TaskTarget): void;
  /** Logs to the Tideflow output channel. */
  log(line: string): void;
}

export interface TaskTarget {
  runId: string;
  instanceId: string;
  task: string;
}

interface CommandDef {
  id: string;
  /** Refused in Restricted Mode: the command runs task code or starts the runner. */
  needsTrust: boolean;
  run(ctx: CommandContext, ...args: unknown[]): unknown;
}

type EngineOp = OperationSpec["method"];

const TASK_OPS: { id: string; op: TaskOperation; engine: EngineOp; verb: string; needsTrust: boolean }[] = [
  { id: "tideflow.kill", op: "kill", engine: "kill", verb: "Kill", needsTrust: false },
  { id: "tideflow.rerun", op: "rerun", engine: "rerun", verb: "Rerun", needsTrust: true },
  { id: "tideflow.setSuccess", op: "set-success", engine: "setSuccess", verb: "Set Success", needsTrust: true },
  { id: "tideflow.pause", op: "pause", engine: "pause", verb: "Pause", needsTrust: false },
  { id: "tideflow.resume", op: "resume", engine: "resume", verb: "Resume", needsTrust: true },
];

export const COMMAND_TABLE: CommandDef[] = [
  { id: "tideflow.test", needsTrust: true, run: (ctx, arg) => testCommand(ctx, arg, false) },
  { id: "tideflow.testTask", needsTrust: true, run: (ctx, arg) => testCommand(ctx, arg, true) },
  { id: "tideflow.backfill", needsTrust: true, run: (ctx, arg) => backfillCommand(ctx, arg) },
  { id: "tideflow.showDag", needsTrust: false, run: (ctx, arg) => showDagCommand(ctx, arg) },
  ...TASK_OPS.map(
    (o): CommandDef => ({ id: o.id, needsTrust: o.needsTrust, run: (ctx, node, nodes) => taskOperation(ctx, o, node, nodes) }),
  ),
  { id: "tideflow.rerunDownstream", needsTrust: true, run: (ctx, node) => rerunDownstreamCommand(ctx, node) },
  { id: "tideflow.killRun", needsTrust: false, run: (ctx, node, nodes) => batchOperation(ctx, "kill", node, nodes) },
  { id: "tideflow.rerunFailed", needsTrust: true, run: (ctx, node, nodes) => batchOperation(ctx, "rerun", node, nodes) },
  { id: "tideflow.showLog", needsTrust: false, run: (ctx, node) => showLogCommand(ctx, node) },
  { id: "tideflow.showDetails", needsTrust: false, run: (ctx, node) => showDetailsCommand(ctx, node) },
  {
    id: "tideflow.startRunner",
    needsTrust: true,
    run: async (ctx) => {
      const client = await ctx.connection.ensure();
      void vscode.window.showInformationMessage(`Tideflow: the runner (pid ${client.info.pid}) serves ${ctx.connection.root}`);
    },
  },
  {
    id: "tideflow.stopRunner",
    needsTrust: false,
    run: async (ctx) => {
      if (!(await ctx.connection.stopRunner())) void vscode.window.showInformationMessage("Tideflow: the runner is not running");
    },
  },
  { id: "tideflow.filterInstances", needsTrust: false, run: (ctx) => filterCommand(ctx) },
  { id: "tideflow.clearFilter", needsTrust: false, run: (ctx) => ctx.instances.setFilter({}) },
  { id: "tideflow.refreshWorkflows", needsTrust: false, run: (ctx) => ctx.workflows.refresh() },
];

/** A command that cannot go on for a reason the user can fix (not a bug): shown as it is. */
class Refusal extends Error {}

export function registerCommands(ctx: CommandContext, report: (e: unknown) => void): vscode.Disposable[] {
  return COMMAND_TABLE.map((c) =>
    vscode.commands.registerCommand(c.id, async (...args: unknown[]) => {
      if (c.needsTrust && !vscode.workspace.isTrusted) {
        void vscode.window.showErrorMessage(RESTRICTED_MESSAGE, "Manage Workspace Trust").then((b) => {
          if (b) void vscode.commands.executeCommand("workbench.trust.manage");
        });
        return undefined;
      }
      try {
        return await c.run(ctx, ...args);
      } catch (e) {
        if (e instanceof Refusal) {
          void vscode.window.showErrorMessage(`Tideflow: ${e.message}`);
          ctx.log(`${c.id} refused: ${e.message}`);
        } else if (e instanceof RunnerError) {
          // A refusal: the runner's reason, as it gave it.
          void vscode.window.showErrorMessage(`Tideflow: ${e.message}`);
          ctx.log(`${c.id} refused (${e.code}): ${e.message}`);
        } else report(e);
        return undefined;
      }
    }),
  );
}

// ---------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------

function isLensArgs(a: unknown): a is WorkflowCommandArgs {
  return typeof a === "object" && a !== null && typeof (a as WorkflowCommandArgs).uri === "string" && typeof (a as WorkflowCommandArgs).workflow === "string";
}

function isTaskTarget(a: unknown): a is TaskTarget {
  return typeof a === "object" && a !== null && typeof (a as TaskTarget).runId === "string" && typeof (a as TaskTarget).instanceId === "string" && typeof (a as TaskTarget).task === "string";
}

/** The workflow a command is about: from a lens, a Workflows node, the active editor, or a pick. */
async function workflowOf(ctx: CommandContext, arg: unknown): Promise<{ w: WorkflowSummary; task?: string } | undefined> {
  if (ctx.workflows.all().length === 0) await ctx.workflows.refresh();
  if (isLensArgs(arg)) {
    const w = ctx.workflows.byUri(arg.uri) ?? ctx.workflows.byId(arg.workflow);
    if (!w) throw new Refusal(`no workflow ${arg.workflow} in the workspace (is the file saved and free of errors?)`);
    return { w, task: arg.task };
  }
  if (arg instanceof WorkflowNode) return { w: arg.summary };
  if (arg instanceof WorkflowTaskNode) return { w: arg.workflow, task: arg.task.id };
  const active = vscode.window.activeTextEditor?.document.uri.toString();
  const inEditor = active ? ctx.workflows.byUri(active) : undefined;
  // From the palette with a workflow file in the editor: that workflow.
  if (inEditor) return { w: inEditor };
  const all = ctx.workflows.all();
  if (all.length === 0) {
    void vscode.window.showWarningMessage("Tideflow: no workflow file (*.flow.ts, *.flow.js) in this workspace");
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(
    all.map((w) => ({
      label: w.id,
      description: vscode.workspace.asRelativePath(vscode.Uri.parse(w.uri)),
      w,
    })),
    { title: "Tideflow: workflow", placeHolder: "Which workflow?" },
  );
  return picked && { w: picked.w };
}

/** A run of a file with errors would be refused by the runner: say so before asking anything. */
function refuseIfBroken(w: WorkflowSummary): void {
  const n = w.diagnostics.errors;
  if (n > 0) throw new Refusal(`${w.id} has ${n} error${n === 1 ? "" : "s"} (see the Problems view): fix ${n === 1 ? "it" : "them"} before running it`);
}

async function saveIfDirty(uri: string): Promise<void> {
  const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
  if (doc?.isDirty) await doc.save();
}

function targetsOf(node: unknown, nodes: unknown): TaskTarget[] {
  const list = Array.isArray(nodes) && nodes.length > 0 ? nodes : node !== undefined ? [node] : [];
  const out: TaskTarget[] = [];
  for (const n of list) {
    if (n instanceof TaskNode) out.push({ runId: n.runId, instanceId: n.instanceId, task: n.task });
    else if (isTaskTarget(n)) out.push(n);
  }
  return out;
}

/** A pick of task instances (newest runs first) whose state is one of `allowed`. */
async function pickTaskInstance(ctx: CommandContext, title: string, allowed?: readonly TaskState[]): Promise<TaskTarget | undefined> {
  await ctx.store.settled();
  const items: (vscode.QuickPickItem & { target: TaskTarget })[] = [];
  collect: for (const s of ctx.store.summaries()) {
    const run = ctx.store.run(s.id);
    if (!run) continue;
    for (const inst of run.instances) {
      for (const ti of inst.tasks) {
        if (allowed && !allowed.includes(ti.state)) continue;
        items.push({
          label: `${ti.task}`,
          description: `${describeTask(ti).description} · ${inst.bizdate} · ${run.id} ${run.workflow}`,
          target: { runId: run.id, instanceId: inst.id, task: ti.task },
        });
        if (items.length >= 2000) break collect;
      }
    }
  }
  if (items.length === 0) {
    void vscode.window.showInformationMessage(`Tideflow: no task instance is ${allowed ? allowed.join(" or ") : "there"}`);
    return undefined;
  }
  return (await vscode.window.showQuickPick(items, { title, matchOnDescription: true }))?.target;
}

// ---------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------

async function testCommand(ctx: CommandContext, arg: unknown, askTask: boolean): Promise<void> {
  const got = await workflowOf(ctx, arg);
  if (!got) return;
  const { w } = got;
  refuseIfBroken(w);
  let task = got.task;
  if (askTask && !task) {
    const picked = await vscode.window.showQuickPick(w.tasks.map((t) => ({ label: t.id, description: t.kind })), { title: `Tideflow: Test Task of ${w.id}` });
    if (!picked) return;
    task = picked.label;
  }
  let downstream = false;
  if (task) {
    const below = downstreamOf(w, task);
    if (below.length > 0) {
      const choice = await vscode.window.showQuickPick(
        [
          { label: `Only ${task}`, downstream: false },
          { label: `${task} and its downstream`, description: below.join(", "), downstream: true },
        ],
        { title: `Tideflow: test ${task}` },
      );
      if (!choice) return;
      downstream = choice.downstream;
    }
  }
  const bizdate = await pickBizdate(w, `Tideflow: test ${task ?? w.id}`);
  if (!bizdate) return;
  await startRun(ctx, w, { kind: "test", file: fileOf(w), bizdate, ...(task ? { tasks: [task], downstream } : {}), by: "vscode" });
}

function fileOf(w: WorkflowSummary): string {
  return vscode.Uri.parse(w.uri).fsPath;
}

async function backfillCommand(ctx: CommandContext, arg: unknown): Promise<void> {
  const got = await workflowOf(ctx, arg);
  if (!got) return;
  const { w } = got;
  refuseIfBroken(w);
  const title = `Tideflow: Backfill ${w.id}`;
  const yesterday = previousDay(todayIn(w.timezone));
  const from = await askDate(title, "First bizdate (YYYY-MM-DD)", previousDay(previousDay(yesterday)));
  if (!from) return;
  const to = await askDate(title, `Last bizdate (YYYY-MM-DD), ${from} or later`, from > yesterday ? from : yesterday, from);
  if (!to) return;

  // Tasks: all, or one task with the downstream tasks the user ticks.
  let tasks: string[] | undefined;
  let downstream = false;
  type Sel = vscode.QuickPickItem & { sel: "all" | "task" | "some" };
  const options: Sel[] = [{ label: "All tasks", description: `${w.tasks.length}`, sel: "all" }];
  if (got.task) options.unshift({ label: `${got.task} and chosen downstream tasks…`, sel: "task" });
  options.push({ label: "Choose tasks…", sel: "some" });
  const sel = await vscode.window.showQuickPick(options, { title, placeHolder: "Which tasks?" });
  if (!sel) return;
  if (sel.sel === "task" && got.task) {
    const below = downstreamOf(w, got.task);
    tasks = [got.task];
    if (below.length > 0) {
      const picked = await vscode.window.showQuickPick(
        below.map((t) => ({ label: t, picked: true })),
        { title: `${title}: downstream of ${got.task} to include`, canPickMany: true },
      );
      if (!picked) return;
      tasks.push(...picked.map((p) => p.label));
    }
  } else if (sel.sel === "some") {
    const picked = await vscode.window.showQuickPick(
      w.tasks.map((t) => ({ label: t.id, description: t.kind })),
      { title: `${title}: tasks`, canPickMany: true },
    );
    if (!picked || picked.length === 0) return;
    tasks = picked.map((p) => p.label);
    const more = await vscode.window.showQuickPick(
      [
        { label: "Only these tasks", downstream: false },
        { label: "These tasks and everything downstream", downstream: true },
      ],
      { title },
    );
    if (!more) return;
    downstream = more.downstream;
  }

  const par = await vscode.window.showQuickPick(
    ["1", "2", "4", "8"].map((n) => ({ label: n, description: n === "1" ? "one workflow instance at a time" : `${n} workflow instances at once` })),
    { title: `${title}: parallelism` },
  );
  if (!par) return;
  const order = await vscode.window.showQuickPick(
    [
      { label: "Ascending", description: "oldest bizdate first", order: "asc" as const },
      { label: "Descending", description: "newest bizdate first", order: "desc" as const },
    ],
    { title: `${title}: order` },
  );
  if (!order) return;

  const params: CreateRunParams = {
    kind: "backfill",
    file: fileOf(w),
    from,
    to,
    parallelism: Number(par.label),
    order: order.order,
    ...(tasks ? { tasks, downstream } : {}),
    by: "vscode",
  };
  await saveIfDirty(w.uri);
  const client = await ctx.connection.ensure();
  const plan = await client.request("runs.plan", params);
  const summary = `${plan.instances.length} workflow instance${plan.instances.length === 1 ? "" : "s"} × ${plan.tasks.length} task${plan.tasks.length === 1 ? "" : "s"} = ${plan.total} task instances`;
  await ctx.plans.show(plan);
  const go = await vscode.window.showInformationMessage(
    `Backfill ${w.id} from ${from} to ${to}: ${summary}, ${plan.parallelism} at a time, ${plan.order === "asc" ? "oldest" : "newest"} first. Start it?`,
    { modal: true, detail: "The plan is open in the editor: every cyctime × task that will run." },
    "Start Backfill",
  );
  ctx.plans.close(plan);
  if (go !== "Start Backfill") return;
  await startRun(ctx, w, params);
}

/** Creates a run, reveals it in the Instances view and follows it with a progress notification. */
async function startRun(ctx: CommandContext, w: WorkflowSummary, params: CreateRunParams): Promise<void> {
  await saveIfDirty(w.uri);
  const client = await ctx.connection.ensure();
  const { run } = await client.request("runs.create", params);
  ctx.log(`${run.id}: ${run.kind} of ${run.workflow}, ${run.instances.length} instance(s) × ${run.tasks.length} task(s)`);
  await ctx.store.settled();
  void revealRun(ctx, run);
  void followRun(ctx, run);
}

async function revealRun(ctx: CommandContext, run: Run): Promise<void> {
  const first = run.instances[0];
  const task = run.tasks[0];
  if (!first || !task) return;
  // The run reaches the store within its coalescing delay, the tree after that, and the
  // view asks for the new nodes when it gets to it: on a busy machine that can take
  // seconds. So: wait for the store to have the run (its change event), then try to reveal
  // until the view knows the node or REVEAL_DEADLINE_MS have passed.
  const deadline = Date.now() + REVEAL_DEADLINE_MS;
  if (!ctx.store.run(run.id)) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, REVEAL_DEADLINE_MS);
      const sub = ctx.store.onDidChange(() => {
        if (ctx.store.run(run.id)) done();
      });
      function done(): void {
        clearTimeout(timer);
        sub.dispose();
        resolve();
      }
    });
  }
  let error: unknown = new Error("the run did not reach the Instances view");
  while (ctx.store.run(run.id) && Date.now() < deadline) {
    await ctx.instances.flushed();
    try {
      // The instance itself, expanded (its ancestors open on the way), then its first task:
      // revealing only the task left the instance collapsed now and then.
      const taskNode = ctx.instances.taskNode(run.id, first.id, task.id);
      const instanceNode = ctx.instances.getParent(taskNode)!;
      await ctx.instancesView.reveal(instanceNode, { select: false, focus: false, expand: true });
      await ctx.instancesView.reveal(taskNode, { select: false, focus: false });
      return;
    } catch (e) {
      error = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  ctx.log(`cannot reveal ${run.id} in the Instances view: ${error instanceof Error ? error.message : String(error)}`);
}

/** How long a new run's reveal in the Instances view keeps trying. */
const REVEAL_DEADLINE_MS = 15_000;

function followRun(ctx: CommandContext, run: Run): Thenable<void> {
  const total = run.instances.length * run.tasks.length;
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Tideflow: ${run.kind} of ${run.workflow} (${run.id})`, cancellable: true },
    (progress, token) =>
      new Promise<void>((resolve) => {
        let reported = 0;
        let gone: vscode.Disposable | undefined;
        const update = () => {
          const s = ctx.store.summary(run.id);
          if (!s) return;
          const done = s.counts.success + s.counts.failed + s.counts.killed;
          const running = s.counts.running;
          const pct = total > 0 ? (done / total) * 100 : 0;
          progress.report({ increment: pct - reported, message: `${done}/${total} task instances done${running ? `, ${running} running` : ""}${s.counts.failed ? `, ${s.counts.failed} failed` : ""}` });
          reported = pct;
          if (s.state !== "running") {
            sub.dispose();
            gone?.dispose();
            resolve();
            void announceEnd(ctx, s);
          }
        };
        const sub = ctx.store.onDidChange((c) => {
          if (c.structure || c.runs.has(run.id)) update();
        });
        // With no runner there is nothing to follow, and Cancel could not kill anything:
        // the progress ends (the crash has its own notification; the run goes on with the next runner).
        gone = ctx.connection.onDidChangeState((state) => {
          if (state !== "stopped") return;
          sub.dispose();
          gone?.dispose();
          resolve();
        });
        token.onCancellationRequested(() => {
          gone?.dispose();
          void ctx.connection.request("task.operate", { run: run.id, op: "kill", by: "vscode" }).catch((e: unknown) => {
            if (e instanceof RunnerError && e.code === "nothing-to-do") return;
            void vscode.window.showErrorMessage(`Tideflow: ${e instanceof Error ? e.message : String(e)}`);
          });
          sub.dispose();
          resolve();
        });
        update();
      }),
  );
}

async function announceEnd(ctx: CommandContext, s: RunSummary): Promise<void> {
  if (s.state === "success") {
    void vscode.window.showInformationMessage(`Tideflow: ${s.id} (${s.kind} of ${s.workflow}) succeeded`);
    return;
  }
  const run = ctx.store.run(s.id);
  let failed: TaskTarget | undefined;
  for (const inst of run?.instances ?? []) {
    const ti = inst.tasks.find((t) => t.state === "failed" || t.state === "killed");
    if (ti) {
      failed = { runId: s.id, instanceId: inst.id, task: ti.task };
      break;
    }
  }
  const counts = TASK_STATES.filter((st) => s.counts[st] > 0).map((st) => `${st} ${s.counts[st]}`).join(", ");
  const choice = await vscode.window.showWarningMessage(`Tideflow: ${s.id} (${s.kind} of ${s.workflow}) ended ${s.state}: ${counts}`, ...(failed ? ["Show Log", "Show Details"] : []));
  if (failed && choice === "Show Log") await showLogCommand(ctx, failed);
  if (failed && choice === "Show Details") ctx.showDetails(failed);
}

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

async function taskOperation(ctx: CommandContext, o: (typeof TASK_OPS)[number], node: unknown, nodes: unknown): Promise<void> {
  const allowed = OPERATION_FROM[o.engine];
  let targets = targetsOf(node, nodes);
  if (targets.length === 0) {
    const t = await pickTaskInstance(ctx, `Tideflow: ${o.verb}`, allowed);
    if (!t) return;
    targets = [t];
  }
  const refusals: string[] = [];
  let changed = 0;
  for (const t of targets) {
    try {
      const r = await ctx.connection.request("task.operate", { run: t.runId, date: t.instanceId, task: t.task, op: o.op, by: "vscode" });
      changed += r.changed.length;
      ctx.log(`${o.verb} ${t.task} (${t.runId}): ${r.changed.join("; ")}`);
    } catch (e) {
      if (!(e instanceof RunnerError) || targets.length === 1) throw e;
      refusals.push(`${t.task}: ${e.message}`);
    }
  }
  reportBatch(o.verb, targets.length, changed, refusals);
}

/** One message for a batch: how many changed, and the refusals with the runner's reasons. */
function reportBatch(verb: string, asked: number, changed: number, refusals: string[]): void {
  if (refusals.length > 0) {
    void vscode.window.showErrorMessage(`Tideflow: ${verb} refused for ${refusals.length} of ${asked}: ${refusals.slice(0, 3).join("; ")}${refusals.length > 3 ? "; …" : ""}`);
  }
  if (changed > 0) vscode.window.setStatusBarMessage(`Tideflow: ${verb}: ${changed} task instance${changed === 1 ? "" : "s"} changed`, 5000);
}

/** Kill Run / Rerun Failed: on run or instance nodes (several with multi-select), or a picked run. */
async function batchOperation(ctx: CommandContext, op: "kill" | "rerun", node: unknown, nodes: unknown): Promise<void> {
  const list = Array.isArray(nodes) && nodes.length > 0 ? nodes : node !== undefined ? [node] : [];
  const scopes: { run: string; date?: string }[] = [];
  for (const n of list) {
    if (n instanceof RunNode) scopes.push({ run: n.runId });
    else if (n instanceof InstanceNode) scopes.push({ run: n.runId, date: n.instanceId });
    else if (n instanceof TaskNode) scopes.push({ run: n.runId, date: n.instanceId });
    else if (typeof n === "object" && n !== null && typeof (n as { runId?: unknown }).runId === "string") scopes.push({ run: (n as { runId: string }).runId });
  }
  if (scopes.length === 0) {
    const wanted: RunSummary["state"][] = op === "kill" ? ["running"] : ["failed", "killed"];
    const runs = ctx.store.summaries().filter((s) => wanted.includes(s.state));
    if (runs.length === 0) {
      void vscode.window.showInformationMessage(`Tideflow: no run is ${wanted.join(" or ")}`);
      return;
    }
    const picked = await vscode.window.showQuickPick(
      runs.map((s) => ({ label: s.id, description: `${s.kind} of ${s.workflow} · ${s.state} · ${localTime(s.createdAt)}` })),
      { title: op === "kill" ? "Tideflow: Kill Run" : "Tideflow: Rerun Failed" },
    );
    if (!picked) return;
    scopes.push({ run: picked.label });
  }
  const verb = op === "kill" ? "Kill Run" : "Rerun Failed";
  const unique = [...new Map(scopes.map((s) => [`${s.run}|${s.date ?? ""}`, s])).values()];
  const refusals: string[] = [];
  let changed = 0;
  for (const s of unique) {
    try {
      const r = await ctx.connection.request("task.operate", { ...s, op, by: "vscode" });
      changed += r.changed.length;
      ctx.log(`${verb} ${s.run}${s.date ? ` ${s.date}` : ""}: ${r.changed.length} task instance(s) changed`);
    } catch (e) {
      if (!(e instanceof RunnerError) || unique.length === 1) throw e;
      refusals.push(`${s.run}${s.date ? ` ${s.date}` : ""}: ${e.message}`);
    }
  }
  reportBatch(verb, unique.length, changed, refusals);
}

async function rerunDownstreamCommand(ctx: CommandContext, node: unknown): Promise<void> {
  const allowed: readonly TaskState[] = OPERATION_FROM.rerun;
  const t = targetsOf(node, undefined)[0] ?? (await pickTaskInstance(ctx, "Tideflow: Rerun Downstream…", allowed));
  if (!t) return;
  const run = ctx.store.run(t.runId);
  const inst = ctx.store.instance(t.instanceId);
  if (!run || !inst) throw new Error(`${t.runId} is not loaded`);
  const below = downstreamOf({ tasks: run.tasks.map((d) => ({ id: d.id, upstream: d.upstream })) as WorkflowSummary["tasks"] }, t.task);
  if (below.length === 0) {
    const ok = await vscode.window.showInformationMessage(`${t.task} has no downstream task in ${run.id}. Rerun ${t.task} alone?`, "Rerun");
    if (ok) await ctx.connection.request("task.operate", { run: t.runId, date: t.instanceId, task: t.task, op: "rerun", by: "vscode" });
    return;
  }
  const stateOf = (task: string) => inst.tasks.find((x) => x.task === task)?.state;
  const picked = await vscode.window.showQuickPick(
    below.map((d) => ({ label: d, description: stateOf(d), picked: true })),
    { title: `Tideflow: rerun ${t.task} on ${inst.bizdate} and these downstream tasks`, canPickMany: true },
  );
  if (!picked) return;
  if (picked.length === 0) {
    await ctx.connection.request("task.operate", { run: t.runId, date: t.instanceId, task: t.task, op: "rerun", by: "vscode" });
    return;
  }
  const r = await ctx.connection.request("task.rerunDownstream", { run: t.runId, date: t.instanceId, task: t.task, only: picked.map((p) => p.label), by: "vscode" });
  ctx.log(`rerun downstream ${t.task} (${t.runId}): ${r.changed.join("; ")}`);
}

// ---------------------------------------------------------------------------------------
// Looking
// ---------------------------------------------------------------------------------------

async function showLogCommand(ctx: CommandContext, node: unknown): Promise<void> {
  const t = targetsOf(node, undefined)[0] ?? (await pickTaskInstance(ctx, "Tideflow: Show Log", ["running", "success", "failed", "killed", "waiting", "paused", "not_run"]));
  if (!t) return;
  const ti = ctx.store.taskInstance(t.instanceId, t.task);
  const inst = ctx.store.instance(t.instanceId);
  const attempts = ti?.attempts ?? [];
  if (attempts.length === 0) {
    void vscode.window.showInformationMessage(`Tideflow: ${t.task} has not run yet${ti ? ` (state ${ti.state})` : ""}, so it has no log`);
    return;
  }
  let n = attempts[attempts.length - 1].n;
  const explicit = (node as { attempt?: unknown } | undefined)?.attempt;
  if (typeof explicit === "number") n = explicit;
  else if (attempts.length > 1) {
    const picked = await vscode.window.showQuickPick(
      [...attempts].reverse().map((a) => ({
        label: `attempt ${a.n}`,
        description: `${a.cause} · started ${localTime(a.startedAt)}${a.endedAt ? ` · exit ${a.exitCode ?? a.signal ?? a.error ?? "?"}` : " · running"}`,
        n: a.n,
      })),
      { title: `Tideflow: log of ${t.task}` },
    );
    if (!picked) return;
    n = picked.n;
  }
  await ctx.logs.show({ ...t, attempt: n }, inst?.bizdate ?? "");
}

async function showDetailsCommand(ctx: CommandContext, node: unknown): Promise<void> {
  const t = targetsOf(node, undefined)[0] ?? (await pickTaskInstance(ctx, "Tideflow: Show Instance Details"));
  if (t) ctx.showDetails(t);
}

async function showDagCommand(ctx: CommandContext, arg: unknown): Promise<void> {
  const got = await workflowOf(ctx, arg);
  if (got) ctx.showDag(got.w.uri, got.w.id);
}

async function filterCommand(ctx: CommandContext): Promise<void> {
  const f = ctx.instances.filter;
  type Item = vscode.QuickPickItem & { key: ["state", TaskState] | ["kind", RunKind] | ["workflow", string] };
  const workflows = [...new Set(ctx.store.summaries().map((s) => s.workflow))].sort();
  const items: (Item | vscode.QuickPickItem)[] = [
    { label: "States", kind: vscode.QuickPickItemKind.Separator },
    ...TASK_STATES.map((s): Item => ({ label: s, key: ["state", s], picked: f.states?.includes(s) })),
    { label: "Kinds", kind: vscode.QuickPickItemKind.Separator },
    ...(["test", "backfill"] as const).map((k): Item => ({ label: k, key: ["kind", k], picked: f.kinds?.includes(k) })),
    { label: "Workflows", kind: vscode.QuickPickItemKind.Separator },
    ...workflows.map((w): Item => ({ label: w, key: ["workflow", w], picked: f.workflows?.includes(w) })),
  ];
  const picked = await vscode.window.showQuickPick(items, {
    title: "Tideflow: Filter Instances",
    placeHolder: "Show only runs and instances with these states, kinds and workflows (none ticked in a group: all)",
    canPickMany: true,
  });
  if (!picked) return;
  const keys = picked.filter((p): p is Item => "key" in p).map((p) => p.key);
  const states = keys.filter((k) => k[0] === "state").map((k) => k[1] as TaskState);
  const kinds = keys.filter((k) => k[0] === "kind").map((k) => k[1] as RunKind);
  const wfs = keys.filter((k) => k[0] === "workflow").map((k) => k[1]);
  ctx.instances.setFilter({
    ...(states.length ? { states } : {}),
    ...(kinds.length ? { kinds } : {}),
    ...(wfs.length ? { workflows: wfs } : {}),
  });
}
