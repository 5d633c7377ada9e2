/**
 * `tideflow logs` with no runner: attempt logs are files (`.tideflow/logs/<instance
 * id>/<task>.<attempt>.log`, runner/logs.ts), so they are read from disk. The run,
 * instance and attempt are found from the file names alone, as the runner would: `<run>`
 * is `run-3`, `3` or `last`; `--date` a bizdate, a cyctime prefix or an instance id;
 * without `--attempt` the latest.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { previousDay } from "../../common/zone";
import { attemptLogPath, logsDir } from "../../common/log-files";

export interface OfflineLog {
  path: string;
  text: string;
  /** The workflow instance the log belongs to. */
  instanceId: string;
  attempt: number;
}

/** What cannot be found, said as the runner would; the caller adds that no runner runs. */
export class OfflineLogMissing extends Error {}

/** `run-3@20261120T023000+0800` → its bizdate, `2026-11-19` (the cyctime's own date, minus one day). */
function bizdateOf(instanceId: string): string | undefined {
  const m = /@(\d{4})(\d{2})(\d{2})T/.exec(instanceId);
  return m ? previousDay(`${m[1]}-${m[2]}-${m[3]}`) : undefined;
}

/** `2026-11-20T02:30` (any prefix of a cyctime as written) → `20261120T0230`, the instance id's form. */
function compact(cyctimePrefix: string): string {
  return cyctimePrefix.replace(/[-:]/g, "");
}

function runNumber(instanceId: string): number {
  return Number(/^run-(\d+)@/.exec(instanceId)?.[1] ?? NaN);
}

export function readLogOffline(stateDir: string, runRef: string, task: string, date?: string, attempt?: number): OfflineLog {
  const logs = logsDir(stateDir);
  let instances: string[];
  try {
    instances = readdirSync(logs).filter((d) => /^run-\d+@/.test(d));
  } catch {
    instances = [];
  }
  let runId: string;
  if (runRef === "last") {
    const latest = Math.max(...instances.map(runNumber));
    if (!Number.isFinite(latest)) throw new OfflineLogMissing("no run has a log in .tideflow/logs yet");
    runId = `run-${latest}`;
  } else runId = /^\d+$/.test(runRef) ? `run-${runRef}` : runRef;
  const ofRun = instances.filter((d) => d.startsWith(`${runId}@`));
  const withTask = ofRun.filter((d) => logFiles(join(logs, d), task).length > 0);
  if (withTask.length === 0) {
    throw new OfflineLogMissing(ofRun.length === 0 ? `.tideflow/logs has no log of ${runId}` : `.tideflow/logs has no log of \`${task}\` in ${runId}`);
  }
  let chosen = withTask;
  if (date !== undefined) {
    // As the runner reads --date: YYYY-MM-DD is a bizdate, `run-N@…` an instance id, anything else a cyctime prefix.
    const matches = /^\d{4}-\d{2}-\d{2}$/.test(date)
      ? (d: string) => bizdateOf(d) === date
      : date.includes("@")
        ? (d: string) => d === date
        : (d: string) => d.slice(runId.length + 1).startsWith(compact(date));
    chosen = withTask.filter(matches);
    if (chosen.length === 0) throw new OfflineLogMissing(`${runId} has no log of \`${task}\` for ${date}; it has logs for ${withTask.map((d) => bizdateOf(d)).join(", ")}`);
  }
  if (chosen.length > 1) {
    throw new OfflineLogMissing(`\`${task}\` of ${runId} has logs in ${chosen.length} workflow instances; pick one with --date (${chosen.map((d) => bizdateOf(d)).join(", ")})`);
  }
  const instanceId = chosen[0];
  const files = logFiles(join(logs, instanceId), task);
  const n = attempt ?? Math.max(...files);
  if (!files.includes(n)) throw new OfflineLogMissing(`\`${task}\` of ${instanceId} has no attempt ${n} on disk; it has ${files.sort((a, b) => a - b).join(", ")}`);
  const path = attemptLogPath(logs, instanceId, task, n);
  return { path, text: readFileSync(path, "utf8"), instanceId, attempt: n };
}

/** The attempt numbers of `task`'s log files in an instance's folder. */
function logFiles(dir: string, task: string): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const f of names) {
    if (!f.startsWith(`${task}.`) || !f.endsWith(".log")) continue;
    const n = f.slice(task.length + 1, -".log".length);
    if (/^\d+$/.test(n)) out.push(Number(n));
  }
  return out;
}
