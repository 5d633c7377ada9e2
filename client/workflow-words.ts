/**
 * A workflow in words for the Workflows view (pure, so that tests can read it): its
 * schedule and next fire time, and whether another file holds a workflow of the same id.
 */
import type { WorkflowSummary } from "../protocol/lsp";
import { describeCron, nextFireTimes } from "../common/cron";

/** Whether another workflow of `all` has `w`'s id (a duplicate-workflow error): its row then shows its file. */
export function sameIdElsewhere(w: Pick<WorkflowSummary, "id" | "uri">, all: readonly Pick<WorkflowSummary, "id" | "uri">[]): boolean {
  return all.some((o) => o.id === w.id && o.uri !== w.uri);
}

/** A schedule in words and its next fire time with the bizdate. */
export function scheduleText(w: Pick<WorkflowSummary, "schedule" | "scheduleInvalid" | "timezone">, now = new Date()): { short: string; long: string } {
  if (w.scheduleInvalid) return { short: "invalid schedule", long: "The schedule is not a valid cron expression: the Problems view says why. Until it is fixed nothing can run." };
  if (!w.schedule) return { short: "unscheduled", long: "No schedule: a backfill makes one instance per day." };
  let words: string;
  try {
    words = describeCron(w.schedule);
  } catch {
    return { short: w.schedule, long: `\`${w.schedule}\`` };
  }
  try {
    const [next] = nextFireTimes(w.schedule, w.timezone, 1, now);
    const at = next.cyctime.slice(0, 16).replace("T", " ");
    return {
      short: `${words.charAt(0).toLowerCase()}${words.slice(1)} · next ${at}`,
      long: `\`${w.schedule}\`${w.timezone ? ` (${w.timezone})` : ""}: ${words}.\n\nNext: ${next.cyctime}, bizdate ${next.bizdate}.`,
    };
  } catch {
    return { short: words, long: words };
  }
}
