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
 * Spawns the shell task; the caller reads `stdout`/`stderr` and waits for the tree. A
 * spawn failure (a missing `cwd`, no bash) surfaces as the child's `error` event with
 * `pid` undefined, as Node reports it.
 */
export function spawnShell(effect: StartEffect, root: string, baseEnv: NodeJS.ProcessEnv): ChildProcess {
  return spawn("bash", ["-c", effect.command ?? ""], {
    cwd: root,
    env: { ...baseEnv, ...attemptEnv(effect) },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
}
