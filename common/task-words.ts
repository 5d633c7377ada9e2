/**
 * A task instance in words, the same in the Instances tree, the palette's picks and the
 * CLI: a short headline (its state and the one fact that matters most, to fit a 300 px
 * sidebar) and every fact (for tooltips and screen readers).
 */
import type { TaskInstance, TaskState, WorkflowInstance } from "../protocol/runner";
import { elapsed, localTime } from "./time-format";

/**
 * Who set the task instance to success by hand (`"vscode"`, `"cli"`; `""` when not
 * recorded), or undefined when its success, if any, is its own attempt's.
 */
export function setSuccessBy(ti: Readonly<TaskInstance>): string | undefined {
  if (ti.state !== "success") return undefined;
  const last = ti.history[ti.history.length - 1];
  if (last?.cause !== "operator" || last.from === "running") return undefined;
  return last.by ?? "";
}

/** How the last attempt ended, in a word or two: `exit 3`, `SIGKILL`, `timed out`, `error`. */
function outcome(ti: Readonly<TaskInstance>): string | undefined {
  const last = ti.attempts[ti.attempts.length - 1];
  if (!last || last.endedAt === undefined) return undefined;
  if (last.error?.startsWith("timed out")) return "timed out";
  if (last.exitCode !== undefined && last.exitCode !== 0) return `exit ${last.exitCode}`;
  if (last.signal) return last.signal;
  if (last.error !== undefined) return "error";
  return undefined;
}

/** `success · 3.2 s`, `failed · exit 3`, `success · set by vscode`, `waiting · retry at 02:31:05`. */
export function taskHeadline(ti: Readonly<TaskInstance>, now = Date.now()): string {
  const last = ti.attempts[ti.attempts.length - 1];
  const by = setSuccessBy(ti);
  let fact: string | undefined;
  if (by !== undefined) fact = `set by ${by || "hand"}`;
  else if (ti.state === "waiting" && ti.retryAt !== undefined) fact = `retry at ${localTime(ti.retryAt).slice(11)}`;
  else if (ti.state === "running" && last?.killRequestedAt !== undefined) fact = "being killed";
  else if (ti.state === "failed" || ti.state === "killed") fact = outcome(ti) ?? (last ? elapsed((last.endedAt ?? now) - last.startedAt) : undefined);
  else if (last && (ti.state === "running" || ti.state === "success")) fact = elapsed((last.endedAt ?? now) - last.startedAt);
  return fact === undefined ? ti.state : `${ti.state} · ${fact}`;
}

/** Every fact: `success`, `set success by vscode`, `attempt 1`, `14 s`, `SIGTERM`, `retry at …`. */
export function taskFacts(ti: Readonly<TaskInstance>, now = Date.now()): string[] {
  const facts: string[] = [ti.state];
  const by = setSuccessBy(ti);
  if (by !== undefined) facts.push(`set success by ${by || "hand"}`);
  const last = ti.attempts[ti.attempts.length - 1];
  if (last) {
    facts.push(`attempt ${last.n}`);
    facts.push(elapsed((last.endedAt ?? now) - last.startedAt));
    const how = outcome(ti);
    if (how !== undefined) facts.push(how);
    if (last.endedAt === undefined && last.killRequestedAt !== undefined) facts.push("being killed");
  }
  if (ti.retryAt !== undefined && ti.state === "waiting") facts.push(`retry at ${localTime(ti.retryAt).slice(11)}`);
  return facts;
}

/** The order of the states that need a person's eyes, most pressing first. */
const PRESSING: readonly TaskState[] = ["running", "failed", "killed", "waiting", "paused"];

/** One state for a workflow instance, the most pressing of its tasks'. */
export function instanceState(inst: Readonly<WorkflowInstance>): TaskState {
  const has = (s: TaskState) => inst.tasks.some((t) => t.state === s);
  for (const s of PRESSING) if (has(s)) return s;
  if (inst.tasks.every((t) => t.state === "success")) return "success";
  return "not_run";
}

/**
 * Workflow instances with live work first, so that a 60-day backfill's running and failed
 * instances are not below the fold: running, failed, killed, waiting, paused, then the
 * rest; run order (cyctime) within each group.
 */
export function liveFirst<I extends Readonly<WorkflowInstance>>(instances: readonly I[]): I[] {
  const rank = (i: I) => {
    const k = PRESSING.indexOf(instanceState(i));
    return k === -1 ? PRESSING.length : k;
  };
  return instances.map((i, at) => ({ i, at, r: rank(i) })).sort((a, b) => a.r - b.r || a.at - b.at).map((x) => x.i);
}
