/**
 * Where the runner writes an attempt's log (runner/logs.ts), which the CLI and the
 * extension also read from disk when no runner runs:
 * `<state dir>/logs/<instance id>/<task>.<attempt>.log`.
 */
import { join } from "node:path";

/** `<state dir>/logs`. */
export function logsDir(stateDir: string): string {
  return join(stateDir, "logs");
}

/** The log file of one attempt, under `logsDir(stateDir)`. */
export function attemptLogPath(logs: string, instanceId: string, task: string, attempt: number): string {
  return join(logs, instanceId, `${task}.${attempt}.log`);
}
