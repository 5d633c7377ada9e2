/**
 * The Workflows view: every workflow of the workspace (the server's `tideflow/workflows`)
 * → its tasks. A workflow shows its schedule in words and its next fire time with the
 * bizdate, and an error/warning badge; a click on a task reveals it in its file. It is
 * fetched again when the server publishes new diagnostics for a workflow file.
 */
import * as vscode from "vscode";
import type { WorkflowSummary } from "../../protocol/lsp";
import { scheduleText, sameIdElsewhere } from "../workflow-words";

export type WorkflowsNode = WorkflowNode | WorkflowTaskNode;

export class WorkflowNode {
  readonly kind = "workflow";
  constructor(readonly summary: WorkflowSummary) {}
}

export class WorkflowTaskNode {
  readonly kind = "workflowTask";
  constructor(
    readonly workflow: WorkflowSummary,
    readonly task: WorkflowSummary["tasks"][number],
  ) {}
}

export class WorkflowsTree implements vscode.TreeDataProvider<WorkflowsNode> {
  private readonly emitter = new vscode.EventEmitter<WorkflowsNode | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private workflows: WorkflowSummary[] = [];
  private fetching: Promise<void> | undefined;
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires after each fetch (lenses and run diagnostics read task ranges from it). */
  readonly onDidFetch = this.changed.event;

  constructor(private readonly fetch: () => Promise<WorkflowSummary[]>) {}

  all(): readonly WorkflowSummary[] {
    return this.workflows;
  }

  byUri(uri: string): WorkflowSummary | undefined {
    return this.workflows.find((w) => w.uri === uri);
  }

  byId(id: string): WorkflowSummary | undefined {
    return this.workflows.find((w) => w.id === id);
  }

  refresh(): Promise<void> {
    this.fetching ??= this.fetch()
      .then(
        (w) => {
          this.workflows = w.sort((a, b) => a.id.localeCompare(b.id));
        },
        () => undefined,
      )
      .finally(() => {
        this.fetching = undefined;
        this.emitter.fire(undefined);
        this.changed.fire();
      });
    return this.fetching;
  }

  getChildren(element?: WorkflowsNode): WorkflowsNode[] {
    if (!element) return this.workflows.map((w) => new WorkflowNode(w));
    if (element.kind === "workflow") return element.summary.tasks.map((t) => new WorkflowTaskNode(element.summary, t));
    return [];
  }

  getTreeItem(element: WorkflowsNode): vscode.TreeItem {
    if (element.kind === "workflow") {
      const w = element.summary;
      const item = new vscode.TreeItem(w.id, vscode.TreeItemCollapsibleState.Collapsed);
      item.id = `workflow:${w.id}:${w.uri}`;
      const when = scheduleText(w);
      const { errors, warnings } = w.diagnostics;
      const badge = errors > 0 ? `${errors} error${errors > 1 ? "s" : ""}` : warnings > 0 ? `${warnings} warning${warnings > 1 ? "s" : ""}` : "";
      // Two workflows with one id (an error) are told apart by their files.
      const file = sameIdElsewhere(w, this.workflows) ? vscode.workspace.asRelativePath(vscode.Uri.parse(w.uri)) : "";
      item.description = [file, badge, when.short].filter(Boolean).join(" · ");
      item.iconPath = new vscode.ThemeIcon(
        errors > 0 ? "error" : warnings > 0 ? "warning" : "type-hierarchy-sub",
        errors > 0 ? new vscode.ThemeColor("problemsErrorIcon.foreground") : warnings > 0 ? new vscode.ThemeColor("problemsWarningIcon.foreground") : undefined,
      );
      item.resourceUri = vscode.Uri.parse(w.uri);
      item.tooltip = new vscode.MarkdownString(
        `**${w.id}** — ${vscode.workspace.asRelativePath(vscode.Uri.parse(w.uri))}\n\n${when.long}\n\n${w.tasks.length} task${w.tasks.length === 1 ? "" : "s"}` +
          (badge ? `; ${badge}` : ""),
      );
      item.contextValue = errors > 0 ? "workflow.invalid" : "workflow";
      item.command = { command: "vscode.open", title: "Open", arguments: [vscode.Uri.parse(w.uri), { selection: toRange(w.range) }] };
      return item;
    }
    const { workflow: w, task: t } = element;
    const item = new vscode.TreeItem(t.id, vscode.TreeItemCollapsibleState.None);
    item.id = `workflowTask:${w.id}:${t.id}:${w.uri}`;
    item.iconPath = new vscode.ThemeIcon(t.kind === "shell" ? "terminal" : "symbol-method");
    item.description = t.upstream.length > 0 ? `← ${t.upstream.join(", ")}` : t.kind;
    item.tooltip = `${t.kind === "shell" ? "shell task" : "task"} ${t.id}${t.upstream.length ? `, after ${t.upstream.join(", ")}` : ""}`;
    item.contextValue = w.diagnostics.errors > 0 ? "workflowTask.invalid" : "workflowTask";
    item.command = { command: "vscode.open", title: "Reveal Task", arguments: [vscode.Uri.parse(w.uri), { selection: toRange(t.range) }] };
    return item;
  }
}


export function toRange(r: { start: { line: number; character: number }; end: { line: number; character: number } }): vscode.Range {
  return new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character);
}
