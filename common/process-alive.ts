/**
 * Whether a process exists, and whether it is still the one a file named.
 *
 * `kill(pid, 0)` alone is not enough to trust a pid from `.tideflow/runner.lock` or
 * `runner.json`: a `kill -9`ed runner may linger as a zombie (it exists, and will never
 * answer), and after a reboot or a long time its pid may belong to another process. So a
 * zombie counts as dead, and the runner records its process start time (field 22 of
 * `/proc/<pid>/stat`, in clock ticks since boot) beside its pid: a pid whose start time
 * differs is another process. Where `/proc` is missing (not Linux) only `kill(pid, 0)`
 * is used.
 */
import { readFileSync } from "node:fs";

interface ProcStat {
  /** R, S, D, Z, T, … */
  state: string;
  /** Clock ticks since boot, as text (it may exceed 2^53 in theory). */
  start: string;
}

function procStat(pid: number): ProcStat | undefined | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // No such process; null: no /proc to ask.
    return code === "ENOENT" || code === "ESRCH" ? undefined : null;
  }
  // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0], start: fields[19] };
}

/** True while process `pid` exists and is not a zombie (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = procStat(pid);
  if (stat === null) return true;
  return stat !== undefined && stat.state !== "Z";
}

/** The process's start time (opaque text), or undefined when it is gone or cannot be read. */
export function processStartTime(pid: number): string | undefined {
  return procStat(pid)?.start;
}

/**
 * True when `pid` is alive and, if `start` is known, is the process that had that start
 * time: the same process a lock or info file was written by, not a later one with its pid.
 */
export function sameProcessAlive(pid: number, start: string | undefined): boolean {
  if (!processAlive(pid)) return false;
  if (start === undefined) return true;
  const now = processStartTime(pid);
  return now === undefined || now === start;
}

/** The command line of `pid`, for messages ("node /…/runner.js --workspace …"), or undefined. */
export function processCommand(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ") || undefined;
  } catch {
    return undefined;
  }
}
