/** Checks and selections of the run commands (pure: no VS Code API, tested in test/unit/client.test.ts). */
import { calendarDateProblem, isCalendarDate } from "../common/zone";
import type { WorkflowSummary } from "../protocol/lsp";

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Why `text` is not a real calendar date as YYYY-MM-DD, or undefined when it is one. */
export function dateProblem(text: string): string | undefined {
  if (!DATE.test(text.trim())) return `expected a date as YYYY-MM-DD, got "${text}"`;
  if (!isCalendarDate(text.trim())) return `${text.trim()} is not a calendar date: ${calendarDateProblem(text.trim())}`;
  return undefined;
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
