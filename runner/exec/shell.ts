/**
 * Shell tasks: `bash -c <command>` in the workspace root, in a process group of its own,
 * with the attempt's environment (SPEC §1 "Dates") and the marker that finds its processes.
 *
 * Hot path: a chain of no-op shell tasks costs about one `bash` spawn each, so nothing
 * here adds a process (no wrapper, no `setsid`) or a synchronous file-system call; the
 * environment is one object spread over a snapshot of the runner's own.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { StartEffect } from "../../protocol/runner";
import { MARKER_VAR } from "./process-tree";

/** `<instanceId>/<task>/<attempt>`: the value of `TIDEFLOW_ATTEMPT_ID` in every process of the attempt. */
export function attemptMarker(a: { instanceId: string; task: string; attempt: number }): string {
  return `${a.instanceId}/${a.task}/${a.attempt}`;
}

/** `PARAM_<NAME>`: the param name upper-cased, characters a shell variable cannot hold as `_`. */
export function paramVar(name: string): string {
  return `PARAM_${name.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}`;
}

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
 * What bash runs before the task's command: how it ends goes to `$TIDEFLOW_EXIT_FILE`
 * (the exit status, or the name of the signal that ended it), so that a runner that
 * adopts the attempt after a crash — it is not the process's parent, so it cannot wait
 * for it — learns how it ended. Same process, no wrapper: it costs no spawn. A command
 * that sets its own EXIT trap or `exec`s replaces this; such an attempt, if it ends while
 * no runner watches, has no known exit and runs again as a failover attempt.
 */
const EXIT_RECORDER =
  String.raw`for s in TERM INT HUP; do trap "printf %s $s > \"\$TIDEFLOW_EXIT_FILE\"; trap - $s EXIT; kill -$s \$\$" $s; done; ` +
  String.raw`trap 'printf %s $? > "$TIDEFLOW_EXIT_FILE"' EXIT` +
  "\n";

/** The files an attempt's output and end are captured in, beside its log (`<task>.<n>.log`). */
export function capturePaths(logPath: string): { stdout: string; stderr: string; exit: string } {
  const base = logPath.replace(/\.log$/, "");
  return { stdout: `${base}.out`, stderr: `${base}.err`, exit: `${base}.exit` };
}

/**
 * Spawns the shell task with its stdout and stderr on the file descriptors given (the
 * capture files, which the executor tails) and waits for nothing; the caller waits for
 * the tree. A spawn failure (a missing `cwd`, no bash) surfaces as the child's `error`
 * event with `pid` undefined, as Node reports it.
 */
export function spawnShell(effect: StartEffect, root: string, baseEnv: NodeJS.ProcessEnv, out: { stdout: number; stderr: number; exitFile: string }): ChildProcess {
  return spawn("bash", ["-c", EXIT_RECORDER + (effect.command ?? "")], {
    cwd: root,
    env: { ...baseEnv, ...attemptEnv(effect), TIDEFLOW_EXIT_FILE: out.exitFile },
    stdio: ["ignore", out.stdout, out.stderr],
    detached: true,
  });
}
