/** The questions run commands ask: bizdates, date ranges, task selections, parallelism. */
import * as vscode from "vscode";
import { previousDay, zonedIso } from "../common/cron";
import type { WorkflowSummary } from "../protocol/lsp";

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Why `text` is not a real calendar date as YYYY-MM-DD, or undefined when it is one. */
export function dateProblem(text: string): string | undefined {
  const m = DATE.exec(text.trim());
  if (!m) return `expected a date as YYYY-MM-DD, got "${text}"`;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  if (t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d) return `${text} is not a date of the calendar`;
  return undefined;
}

/** Today's date in the workflow's zone (the machine's when it sets none). */
export function todayIn(timezone: string | undefined, now = new Date()): string {
  return zonedIso(now, timezone).slice(0, 10);
}

/** Yesterday first, then the six days before, then "another date". Undefined when cancelled. */
export async function pickBizdate(w: Pick<WorkflowSummary, "id" | "timezone">, title: string): Promise<string | undefined> {
  let day = todayIn(w.timezone);
  const items: (vscode.QuickPickItem & { date?: string })[] = [];
  for (let i = 0; i < 7; i++) {
    day = previousDay(day);
    items.push({ label: day, description: i === 0 ? "yesterday" : `${i + 1} days ago`, date: day });
  }
  items.push({ label: "Another date…", description: "YYYY-MM-DD", alwaysShow: true });
  const picked = await vscode.window.showQuickPick(items, {
    title,
    placeHolder: `Bizdate of the test instance of ${w.id}${w.timezone ? ` (${w.timezone})` : ""}`,
    ignoreFocusOut: true,
  });
  if (!picked) return undefined;
  if (picked.date) return picked.date;
  return askDate(title, "Bizdate (YYYY-MM-DD)", previousDay(todayIn(w.timezone)));
}

export async function askDate(title: string, prompt: string, value: string, after?: string): Promise<string | undefined> {
  const text = await vscode.window.showInputBox({
    title,
    prompt,
    value,
    ignoreFocusOut: true,
    validateInput: (v) => dateProblem(v) ?? (after && v.trim() < after ? `must be ${after} or later (the first bizdate)` : undefined),
  });
  return text?.trim();
}

/** Downstream (transitively) of `task` within the workflow, in the workflow's task order. */
export function downstreamOf(w: Pick<WorkflowSummary, "tasks">, task: string): string[] {
  const out = new Set<string>();
  const queue = [task];
  while (queue.length > 0) {
    const t = queue.shift()!;
    for (const c of w.tasks) if (c.upstream.includes(t) && !out.has(c.id) && c.id !== task) {
      out.add(c.id);
      queue.push(c.id);
    }
  }
  return w.tasks.filter((t) => out.has(t.id)).map((t) => t.id);
}
