/** A backfill's plan as a read-only document: every cyctime × task that would run, and the total. */
import * as vscode from "vscode";
import type { RunPlan } from "../protocol/api";

export const PLAN_SCHEME = "tideflow-plan";

export class PlanDocuments implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  private seq = 0;
  private readonly uris = new WeakMap<RunPlan, vscode.Uri>();

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }

  async show(plan: RunPlan): Promise<void> {
    const uri = vscode.Uri.from({ scheme: PLAN_SCHEME, path: `/${plan.workflow}-plan-${++this.seq}.txt` });
    this.texts.set(uri.toString(), formatPlan(plan));
    this.uris.set(plan, uri);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { preview: true, preserveFocus: true });
  }

  close(plan: RunPlan): void {
    const uri = this.uris.get(plan);
    if (!uri) return;
    this.texts.delete(uri.toString());
    const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputText && t.input.uri.toString() === uri.toString());
    void vscode.window.tabGroups.close(tabs);
  }
}

export function formatPlan(plan: RunPlan): string {
  const lines = [
    `${plan.kind} of ${plan.workflow} (${plan.file})`,
    `${plan.instances.length} workflow instance${plan.instances.length === 1 ? "" : "s"} × ${plan.tasks.length} task${plan.tasks.length === 1 ? "" : "s"} = ${plan.total} task instances; ${plan.parallelism} instance(s) at a time, ${plan.order === "asc" ? "oldest" : "newest"} bizdate first`,
    "",
    `tasks, in dependency order: ${plan.tasks.map((t) => t.id).join(", ")}`,
    "",
    "bizdate     cyctime                     tasks",
  ];
  for (const i of plan.instances) lines.push(`${i.bizdate}  ${i.cyctime.padEnd(26)}  ${plan.tasks.map((t) => t.id).join(" ")}`);
  return `${lines.join("\n")}\n`;
}
