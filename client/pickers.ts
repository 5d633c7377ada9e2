/** The questions run commands ask: bizdates, date ranges, task selections, parallelism. */
import * as vscode from "vscode";
import { checkCron, recentBizdates } from "../common/cron";
import { previousDay, zonedIso } from "../common/zone";
import type { WorkflowSummary } from "../protocol/lsp";
import { dateProblem } from "./selection";

export { dateProblem, downstreamOf } from "./selection";

/** Today's date in the workflow's zone (the machine's when it sets none). */
export function todayIn(timezone: string | undefined, now = new Date()): string {
  return zonedIso(now, timezone).slice(0, 10);
}

/**
 * The bizdates to offer first: a scheduled workflow's seven latest fire times (a weekly
 * schedule's Sundays, an hourly one's last seven days); yesterday and the six days before
 * when it has no valid schedule. Then "another date". Undefined when cancelled.
 */
export async function pickBizdate(w: Pick<WorkflowSummary, "id" | "timezone" | "schedule">, title: string): Promise<string | undefined> {
  const items: (vscode.QuickPickItem & { date?: string })[] = [];
  const yesterday = previousDay(todayIn(w.timezone));
  const fires = w.schedule && !checkCron(w.schedule, w.timezone) ? recentBizdates(w.schedule, w.timezone, 7) : [];
  if (fires.length > 0) {
    for (const f of fires) {
      items.push({ label: f.bizdate, description: `${f.bizdate === yesterday ? "yesterday · " : ""}fired ${f.cyctime.replace("T", " ").slice(0, 16)}`, date: f.bizdate });
    }
  } else {
    let day = todayIn(w.timezone);
    for (let i = 0; i < 7; i++) {
      day = previousDay(day);
      items.push({ label: day, description: i === 0 ? "yesterday" : `${i + 1} days ago`, date: day });
    }
  }
  items.push({ label: "Another date…", description: "YYYY-MM-DD", alwaysShow: true });
  const picked = await vscode.window.showQuickPick(items, {
    title,
    placeHolder: `Bizdate of the test instance of ${w.id}${w.timezone ? ` (${w.timezone})` : ""}`,
    ignoreFocusOut: true,
  });
  if (!picked) return undefined;
  if (picked.date) return picked.date;
  return askDate(title, "Bizdate (YYYY-MM-DD)", items[0]?.date ?? yesterday);
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

