/**
 * What the runs say, shown where the tasks are written:
 * - a code lens on each task with its latest instance (state, bizdate, duration), which
 *   opens the instance's details;
 * - a `tideflow-run` diagnostic on a task whose latest attempt failed, with the log's last
 *   error line; it goes when the task succeeds (or is rerun).
 * Task ranges come from the server's `tideflow/workflows` (the Workflows tree's fetch).
 */
import * as vscode from "vscode";
import { elapsed } from "../common/time-format";
import type { LatestTaskInstance, RunStore } from "./store";
import { taskStateCodicon } from "./states";
import { lastErrorLine } from "./log-documents";
import type { RunnerConnection } from "./connection";
import { toRange, type WorkflowsTree } from "./trees/workflows";

export class LatestInstanceLenses implements vscode.CodeLensProvider, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.emitter.event;
  private readonly disposables: vscode.Disposable[] = [this.emitter];
  /** Documents whose lenses show a running task: their durations move, so they refresh once a second. */
  private readonly running = new Set<string>();
  private readonly ticker = setInterval(() => {
    if (this.running.size > 0) this.emitter.fire();
  }, 1000);

  constructor(
    private readonly store: RunStore,
    private readonly workflows: WorkflowsTree,
  ) {
    store.onDidChange(() => this.emitter.fire(), undefined, this.disposables);
    workflows.onDidFetch(() => this.emitter.fire(), undefined, this.disposables);
  }

  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    const uri = doc.uri.toString();
    this.running.delete(uri);
    const w = this.workflows.byUri(uri);
    if (!w) return [];
    const latest = this.store.latestByTask(w.id);
    const lenses: vscode.CodeLens[] = [];
    for (const t of w.tasks) {
      const l = latest.get(t.id);
      if (!l) continue;
      if (l.task.state === "running") this.running.add(uri);
      const range = toRange(t.range);
      lenses.push(
        new vscode.CodeLens(new vscode.Range(range.start, range.start), {
          title: lensTitle(l),
          tooltip: `Latest instance of ${t.id}: ${l.run.id}, bizdate ${l.instance.bizdate} — open its details`,
          command: "tideflow.showDetails",
          arguments: [{ runId: l.run.id, instanceId: l.instance.id, task: t.id }],
        }),
      );
    }
    return lenses;
  }

  dispose(): void {
    clearInterval(this.ticker);
    for (const d of this.disposables) d.dispose();
  }
}

export function lensTitle(l: LatestTaskInstance, now = Date.now()): string {
  const a = l.task.attempts[l.task.attempts.length - 1];
  const took = a ? ` · ${elapsed((a.endedAt ?? now) - a.startedAt)}` : "";
  return `$(${taskStateCodicon(l.task.state)}) ${l.task.state} · ${l.instance.bizdate}${took}`;
}

export class RunDiagnostics implements vscode.Disposable {
  private readonly collection = vscode.languages.createDiagnosticCollection("tideflow-run");
  private readonly disposables: vscode.Disposable[] = [this.collection];
  /** Last error line per `instance|task|attempt`, read once from its log. */
  private readonly reasons = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: RunStore,
    private readonly workflows: WorkflowsTree,
    private readonly connection: RunnerConnection,
  ) {
    store.onDidChange(() => this.schedule(), undefined, this.disposables);
    workflows.onDidFetch(() => this.schedule(), undefined, this.disposables);
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.update();
    }, 200);
  }

  private async update(): Promise<void> {
    const next = new Map<string, vscode.Diagnostic[]>();
    for (const w of this.workflows.all()) {
      const latest = this.store.latestByTask(w.id);
      for (const t of w.tasks) {
        const l = latest.get(t.id);
        if (!l || l.task.state !== "failed") continue;
        const a = l.task.attempts[l.task.attempts.length - 1];
        const key = `${l.instance.id}|${t.id}|${a?.n}`;
        let reason = this.reasons.get(key);
        if (reason === undefined && a) {
          reason = await this.connection
            .request("logs.read", { run: l.run.id, date: l.instance.id, task: t.id, attempt: a.n })
            .then((r) => lastErrorLine(r.text) ?? "", () => "");
          this.reasons.set(key, reason);
        }
        const exit = a?.error ?? (a?.exitCode !== undefined ? `exit code ${a.exitCode}` : a?.signal ?? "");
        const d = new vscode.Diagnostic(
          toRange(t.range),
          `${t.id} failed on ${l.instance.bizdate} (${l.run.id}, attempt ${a?.n ?? 0}${exit ? `, ${exit}` : ""})${reason ? `: ${reason}` : ""}`,
          vscode.DiagnosticSeverity.Error,
        );
        d.source = "tideflow-run";
        d.code = "task-failed";
        const list = next.get(w.uri) ?? [];
        list.push(d);
        next.set(w.uri, list);
      }
    }
    this.collection.clear();
    for (const [uri, list] of next) this.collection.set(vscode.Uri.parse(uri), list);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}
