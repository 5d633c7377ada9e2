/**
 * The Tideflow extension: the language client, the runner connection and the run store,
 * the Workflows and Instances views, the command table, code lenses and diagnostics from
 * runs, attempt logs, the DAG preview and instance details.
 *
 * Activation does no I/O beyond starting the language client and attaching to a runner
 * that already runs; the runner itself starts on the first run command, and only in a
 * trusted workspace.
 */
import * as path from "node:path";
import * as vscode from "vscode";
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from "vscode-languageclient/node";
import type { DagLayout } from "../protocol/dag";
import { DagRequest, WorkflowsRequest, type WorkflowsResult } from "../protocol/lsp";
import type { Run, WorkflowInstance } from "../protocol/runner";
import { COMMAND_TABLE, registerCommands, type CommandContext, type TaskTarget } from "./commands";
import { readConfig } from "./config";
import { RunnerConnection } from "./connection";
import { DagPanel } from "./dag-panel";
import { DetailsPanel } from "./details-panel";
import { LOG_SCHEME, LogDocuments } from "./log-documents";
import { PLAN_SCHEME, PlanDocuments } from "./plan-document";
import { LatestInstanceLenses, RunDiagnostics } from "./run-feedback";
import { RunnerLogTail } from "./runner-log";
import { RunnerStatusItem } from "./status-bar";
import { RunStore } from "./store";
import { InstancesTree, type InstancesNode } from "./trees/instances";
import { WorkflowsTree } from "./trees/workflows";

let connection: RunnerConnection | undefined;
let languageClient: LanguageClient | undefined;

/** What tests and the benchmark read back through `vscode.extensions.getExtension(...).exports`. */
export interface TideflowApi {
  activateMs: number;
  commands: string[];
}

export async function activate(context: vscode.ExtensionContext): Promise<TideflowApi> {
  const t0 = performance.now();
  const output = vscode.window.createOutputChannel("Tideflow", { log: true });
  context.subscriptions.push(output);
  const log = (line: string) => output.info(line);
  let shown = false;
  /** An unexpected error: logged; shown once per session with a button to the output. */
  const report = (e: unknown) => {
    const message = e instanceof Error ? e.message : String(e);
    output.error(e instanceof Error ? (e.stack ?? message) : message);
    if (shown) {
      void vscode.window.showErrorMessage(`Tideflow: ${message}`);
      return;
    }
    shown = true;
    void vscode.window.showErrorMessage(`Tideflow: ${message}`, "Open Output").then((b) => b && output.show());
  };

  // The language server: diagnostics, lenses, hover, ... (works in Restricted Mode: it only reads files).
  const module = context.asAbsolutePath(path.join("dist", "server.js"));
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.stdio },
    debug: { module, transport: TransportKind.stdio, options: { execArgv: ["--nolazy", "--inspect=6009"] } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", pattern: "**/*.flow.ts" },
      { scheme: "file", pattern: "**/*.flow.js" },
    ],
    outputChannelName: "Tideflow Language Server",
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.flow.{ts,js}") },
  };
  const lsp = new LanguageClient("tideflow", "Tideflow Language Server", serverOptions, clientOptions);
  languageClient = lsp;
  // The extension also activates on any TypeScript/JavaScript file (a workflow file opened
  // from outside the workspace); the server starts only once there is a workflow file to
  // serve, or the Tideflow views are used.
  let lspStarted: Promise<void> | undefined;
  const startLsp = (): Promise<void> => (lspStarted ??= lsp.start().then(() => void workflows.refresh(), report));
  const isFlow = (d: vscode.TextDocument) => d.uri.scheme === "file" && /\.flow\.(ts|js)$/.test(d.uri.path);

  // One runner per workspace: the first folder's (multi-root workspaces share it).
  const folder = vscode.workspace.workspaceFolders?.[0];
  const root = folder?.uri.fsPath;
  const conn = new RunnerConnection(root, context.asAbsolutePath(path.join("dist", "runner.js")), log, () => readConfig().keepAlive);
  connection = conn;
  const runnerLog = new RunnerLogTail(root);
  conn.onDidConnect(() => runnerLog.follow(), undefined, context.subscriptions);
  context.subscriptions.push(runnerLog);
  const store = new RunStore(conn, () => ({ coalesceMs: readConfig().treeCoalesceMs, maxLoadedTaskInstances: readConfig().maxLoadedTaskInstances }), log);

  const workflows = new WorkflowsTree(async () => {
    await startLsp();
    // By method name: the protocol module and the client may hold different copies of RequestType.
    return (await lsp.sendRequest<WorkflowsResult>(WorkflowsRequest.method, {})).workflows;
  });
  const instances = new InstancesTree(store, () => conn.state);
  const instancesView = vscode.window.createTreeView<InstancesNode>("tideflow.instances", { treeDataProvider: instances, canSelectMany: true, showCollapseAll: true });
  instances.view = instancesView;
  const workflowsView = vscode.window.createTreeView("tideflow.workflows", { treeDataProvider: workflows, showCollapseAll: true });
  const logs = new LogDocuments(conn);
  const plans = new PlanDocuments();
  const lenses = new LatestInstanceLenses(store, workflows);
  const runDiagnostics = new RunDiagnostics(store, workflows, conn);
  const status = new RunnerStatusItem(conn, store);

  const fileChanged = new vscode.EventEmitter<string>();
  const instancesChanged = new vscode.EventEmitter<ReadonlySet<string>>();
  store.onDidChange((c) => instancesChanged.fire(c.structure ? new Set() : c.instances));
  const recentInstances = (workflow: string) => {
    const out: { id: string; label: string }[] = [];
    for (const s of store.summaries()) {
      if (s.workflow !== workflow) continue;
      const run = store.run(s.id);
      for (const inst of [...(run?.instances ?? [])].reverse()) {
        out.push({ id: inst.id, label: `${s.id} · ${s.kind} · ${inst.bizdate}${run && run.instances.length > 1 ? ` (${inst.cyctime.slice(11, 16)})` : ""}` });
        if (out.length >= 50) return out;
      }
    }
    return out;
  };
  const revealTask = async (uri: string, task: string) => {
    let w = workflows.byUri(uri) ?? (await workflows.refresh(), workflows.byUri(uri));
    const dot = task.indexOf(".");
    if (dot > 0 && !w?.tasks.some((x) => x.id === task)) {
      // An external node: `workflow.task` of another workflow file.
      w = workflows.byId(task.slice(0, dot));
      task = task.slice(dot + 1);
      if (w) uri = w.uri;
    }
    const t = w?.tasks.find((x) => x.id === task);
    // The cursor at the task's start, nothing selected: a keystroke must not replace the task.
    const range = t ? new vscode.Range(t.range.start.line, t.range.start.character, t.range.start.line, t.range.start.character) : undefined;
    await vscode.window.showTextDocument(vscode.Uri.parse(uri), { selection: range, preview: false, viewColumn: vscode.ViewColumn.One });
  };
  const showDetails = (target: TaskTarget) =>
    DetailsPanel.show(context.extensionUri, {
      run: (id) => store.run(id) as Run | undefined,
      instance: (id) => store.instance(id) as WorkflowInstance | undefined,
      onDidChangeInstances: instancesChanged.event,
      showLog: (t) => void vscode.commands.executeCommand("tideflow.showLog", { runId: t.runId, instanceId: t.instanceId, task: t.task, ...(t.attempt ? { attempt: t.attempt } : {}) }),
    }, target);
  const showDag = (uri: string, workflow: string) =>
    DagPanel.show(context.extensionUri, {
      layout: async (u) => {
        await startLsp();
        return lsp.sendRequest<DagLayout | null>(DagRequest.method, { uri: u });
      },
      recentInstances,
      taskStates: (id) => store.taskStates(id),
      onDidChangeInstances: instancesChanged.event,
      onDidChangeWorkflowFile: fileChanged.event,
      revealTask: (u, t) => void revealTask(u, t),
    }, uri, workflow);

  const ctx: CommandContext = { connection: conn, store, workflows, instances, instancesView, logs, plans, showDag, showDetails, log };

  // Workflow files re-analyzed (the server published diagnostics): the Workflows view, the DAG panels.
  let refreshTimer: NodeJS.Timeout | undefined;
  const pendingFiles = new Set<string>();
  context.subscriptions.push(
    vscode.languages.onDidChangeDiagnostics((e) => {
      const flows = e.uris.filter((u) => /\.flow\.(ts|js)$/.test(u.path));
      if (flows.length === 0) return;
      for (const u of flows) pendingFiles.add(u.toString());
      if (refreshTimer) clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => {
        refreshTimer = undefined;
        void workflows.refresh().then(() => {
          for (const u of pendingFiles) fileChanged.fire(u);
          pendingFiles.clear();
        });
      }, 150);
    }),
    { dispose: () => refreshTimer && clearTimeout(refreshTimer) },
  );

  context.subscriptions.push(
    conn,
    store,
    instances,
    instancesView,
    workflowsView,
    logs,
    lenses,
    runDiagnostics,
    status,
    fileChanged,
    instancesChanged,
    vscode.workspace.registerTextDocumentContentProvider(LOG_SCHEME, logs),
    vscode.workspace.registerTextDocumentContentProvider(PLAN_SCHEME, plans),
    vscode.languages.registerCodeLensProvider(
      [
        { scheme: "file", pattern: "**/*.flow.ts" },
        { scheme: "file", pattern: "**/*.flow.js" },
      ],
      lenses,
    ),
    ...registerCommands(ctx, report),
    conn.onDidChangeState((s) => {
      void vscode.commands.executeCommand("setContext", "tideflow.runnerState", s);
      instances.refreshAll();
    }),
    conn.onDidCrash(({ pid }) => {
      void vscode.window
        .showWarningMessage(
          `Tideflow: the runner (pid ${pid}) stopped unexpectedly. The states shown are as it last reported them; ` +
            "tasks it was running may still run. Start Runner adopts them, with their logs.",
          "Start Runner",
        )
        .then((choice) => choice === "Start Runner" && vscode.commands.executeCommand("tideflow.startRunner"));
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("tideflow.instances")) instances.refreshAll();
    }),
  );
  void vscode.commands.executeCommand("setContext", "tideflow.runnerState", conn.state);

  // Attach to a runner that already runs (one the CLI started, or another window's with keepAlive).
  void conn.attach().catch(() => undefined);
  if (vscode.workspace.textDocuments.some(isFlow)) void startLsp();
  else {
    context.subscriptions.push(vscode.workspace.onDidOpenTextDocument((d) => isFlow(d) && void startLsp()));
    void vscode.workspace.findFiles("**/*.flow.{ts,js}", "**/node_modules/**", 1).then((found) => found.length > 0 && void startLsp());
  }

  return { activateMs: performance.now() - t0, commands: COMMAND_TABLE.map((c) => c.id) };
}

export async function deactivate(): Promise<void> {
  await connection?.shutdown();
  if (languageClient?.isRunning()) await languageClient.stop();
}
