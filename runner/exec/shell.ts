/**
 * What a shell attempt is made of: `bash -c <command>` after a line that records how it
 * ends, in the workspace root, with the attempt's environment (SPEC §1 "Dates") and the
 * marker that finds its processes, and the files beside its log that capture it.
 * (./shell-kind.ts starts it; ./spawner.ts is the process that spawns it.)
 *
 * Hot path: a chain of no-op shell tasks costs about one `bash` spawn each, so nothing
 * here adds a process (no wrapper, no `setsid`); the environment is a small object over
 * the base environment the spawn helper already holds.
 */
import type { StartEffect } from "../../protocol/runner";
import { attemptMarker } from "./kinds";
import { MARKER_VAR } from "./process-tree";
import { paramVar } from "../../common/params";

export { attemptMarker };

export { paramVar };

/**
 * What an attempt adds to the environment, for shell and TS tasks alike: BIZDATE
 * (`20261119`), BIZDATE_ISO, CYCTIME, TIDEFLOW_WORKFLOW / _TASK / _ATTEMPT, PARAM_<NAME>
 * per param, and the attempt marker.
 */
export function attemptEnv(effect: StartEffect): Record<string, string> {
  const env: Record<string, string> = {
    BIZDATE: effect.bizdate.replace(/-/g, ""),
    BIZDATE_ISO: effect.bizdate,
    CYCTIME: effect.cyctime,
    TIDEFLOW_WORKFLOW: effect.workflow,
    TIDEFLOW_TASK: effect.task,
    TIDEFLOW_ATTEMPT: String(effect.attempt),
  };
  for (const [name, value] of Object.entries(effect.params)) env[paramVar(name)] = value;
  env[MARKER_VAR] = attemptMarker(effect);
  return env;
}

/**
 * What bash runs before the task's command: how it ends goes to `$TIDEFLOW_EXIT_FILE` as
 * `<status> <attempt marker>` (the exit status, or the name of the signal that ended
 * it), so that a runner that adopts the attempt after a crash — it is not the process's
 * parent, so it cannot wait for it — learns how it ended, and which attempt the file was
 * for. Same process, no wrapper: it costs no spawn. A command that sets its own EXIT trap
 * or `exec`s replaces this; such an attempt, if it ends while no runner watches, has no
 * known exit and runs again as a failover attempt.
 */
const EXIT_RECORDER =
  String.raw`for s in TERM INT HUP; do trap "printf '%s %s' $s "\$TIDEFLOW_ATTEMPT_ID" > "\$TIDEFLOW_EXIT_FILE"; trap - $s EXIT; kill -$s \$\$" $s; done; ` +
  String.raw`trap 'printf "%s %s" $? "$TIDEFLOW_ATTEMPT_ID" > "$TIDEFLOW_EXIT_FILE"' EXIT` +
  "\n";

export interface CapturePaths {
  stdout: string;
  stderr: string;
  exit: string;
}

/** Where runners before capture pools (0.1.0) captured an attempt: beside its log (`<task>.<n>.log`). */
export function capturePaths(logPath: string): CapturePaths {
  const base = logPath.replace(/\.log$/, "");
  return { stdout: `${base}.out`, stderr: `${base}.err`, exit: `${base}.exit` };
}

/** bash's arguments for a task's command: the exit recorder, then the command. */
export function shellArgs(command: string): string[] {
  return ["-c", EXIT_RECORDER + command];
}
