/**
 * Process-group control: every attempt runs in a process group of its own (spawned with
 * `detached: true`, so its pgid is the child's pid), and ending an attempt means ending
 * that whole group — grandchildren and backgrounded jobs included (SPEC §4) — and the
 * processes that left it (`setsid`, daemons), found by the attempt's marker in their
 * environment. That holds on every exit path, a normal exit included; finding marked
 * processes after a normal exit is kept cheap by looking only at pids handed out since
 * the attempt started (`findMarkedSince`).
 *
 * Zombies: `kill(-pgid, 0)` succeeds while any member is a zombie, and an orphaned
 * grandchild that died is reaped by PID 1 — which in containers may take seconds, or never
 * happen. A zombie runs no code and holds no files, so on Linux "alive" means "has a member
 * that is not a zombie" (read from /proc); elsewhere the signal probe is all there is.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { processAlive } from "../../common/process-alive";

export { processAlive };

/** The environment variable that marks every process of an attempt: `<instanceId>/<task>/<attempt>`. */
export const MARKER_VAR = "TIDEFLOW_ATTEMPT_ID";

const isLinux = process.platform === "linux";

/** Pids of /proc, without this process. Empty off Linux or when /proc cannot be read. */
function procPids(): number[] {
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(name);
    if (pid !== process.pid) pids.push(pid);
  }
  return pids;
}

/** Whether the group has a member that is not a zombie, from /proc/<pid>/stat (`pid (comm) S ppid pgrp ...`). */
function groupHasLiveMember(pgid: number): boolean {
  for (const pid of procPids()) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    } catch {
      continue; // exited while we looked
    }
    // comm may hold spaces and parentheses: the fields start after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 3);
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") return true;
  }
  return false;
}

/** True while process group `pgid` has a live (non-zombie, on Linux) member. */
export function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    // EPERM: members exist, owned by someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  return isLinux ? groupHasLiveMember(pgid) : true;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: already gone. EPERM: not ours to signal; the poll below will keep seeing it.
  }
}

const POLL_FIRST_MS = 5;
const POLL_MAX_MS = 50;

function signalPids(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * SIGTERM to the whole group, SIGKILL after `graceMs` if any member is still alive;
 * resolves once the group has no live member. `onEscalate` is called when SIGKILL is sent.
 * With a `marker`, processes carrying it that left the group (`setsid`, a daemonizing
 * child) get the same signals, and are waited for too: they are still the attempt's tree.
 * Polls with a growing interval (5 ms to 50 ms): a group that obeys SIGTERM is usually
 * gone within the first polls.
 */
/** The process group of `pid` (from /proc/<pid>/stat), or undefined when unknown. */
export function processGroupOf(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "latin1");
    return Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return undefined;
  }
}

export function killProcessGroup(pgid: number, graceMs: number, onEscalate?: () => void, marker?: string): Promise<void> {
  // Marked processes outside the group: those inside get the group's signal once, not twice
  // (a task that traps TERM must see one TERM per kill).
  const escaped = (): number[] => (marker === undefined ? [] : findMarkedProcesses(marker).filter((pid) => processGroupOf(pid) !== pgid));
  const alive = (): boolean => processGroupAlive(pgid) || escaped().length > 0;
  if (!alive()) return Promise.resolve();
  signalGroup(pgid, "SIGTERM");
  signalPids(escaped(), "SIGTERM");
  const killAt = Date.now() + graceMs;
  let escalated = false;
  let interval = POLL_FIRST_MS;
  return new Promise((resolve) => {
    const poll = (): void => {
      if (!alive()) return resolve();
      if (!escalated && Date.now() >= killAt) {
        escalated = true;
        onEscalate?.();
        signalGroup(pgid, "SIGKILL");
        signalPids(escaped(), "SIGKILL");
      } else if (escalated) {
        signalPids(escaped(), "SIGKILL"); // spawned after the first SIGKILL
      }
      interval = Math.min(interval * 2, POLL_MAX_MS);
      const wait = escalated ? interval : Math.max(1, Math.min(interval, killAt - Date.now()));
      setTimeout(poll, wait);
    };
    setTimeout(poll, Math.min(POLL_FIRST_MS, Math.max(1, graceMs)));
  });
}

/**
 * Pids of the live processes whose environment marks them as belonging to the attempt
 * `marker` (`TIDEFLOW_ATTEMPT_ID=<marker>`). Linux only (/proc/<pid>/environ); elsewhere [].
 * A process's environ is the environment it was exec'd with, so a process that changed
 * its own `process.env` afterwards is not found, but everything it spawned is. Zombies
 * have an empty environ and are never returned.
 */
export function findMarkedProcesses(marker: string): number[] {
  if (!isLinux) return [];
  const needle = Buffer.from(`${MARKER_VAR}=${marker}\0`);
  return procPids().filter((pid) => carriesMarker(pid, needle));
}

/**
 * The pid the kernel handed out last (Linux: the 5th field of /proc/loadavg, for this pid
 * namespace), or undefined. Pids are handed out in increasing order, wrapping at pid_max:
 * so a process created after a given pid was handed out has a larger pid, or the counter
 * wrapped. One small read (~20 µs), where a scan of every process's environ costs about
 * 1 ms per hundred processes.
 */
export function lastPid(): number | undefined {
  if (!isLinux) return undefined;
  let text: string;
  try {
    // One pread on a descriptor kept open: the file's content is made at each read.
    loadavgFd ??= openSync("/proc/loadavg", "r");
    const n = readSync(loadavgFd, loadavgBuf, 0, loadavgBuf.length, 0);
    text = loadavgBuf.toString("latin1", 0, n).trimEnd();
  } catch {
    return undefined;
  }
  const last = Number(text.slice(text.lastIndexOf(" ") + 1));
  return Number.isInteger(last) && last > 0 ? last : undefined;
}

let loadavgFd: number | undefined;
const loadavgBuf = Buffer.alloc(128);

/** Whether /proc/loadavg counts pids as /proc names them (it does, unless the pid namespaces differ). */
const lastPidUsable = ((): boolean => {
  const last = lastPid();
  return last !== undefined && last >= process.pid;
})();

/** Ranges up to this many pids are probed one by one (`existsSync`, ~3 µs each); wider ones from a /proc listing. */
const PROBE_RANGE = 16;

function carriesMarker(pid: number, needle: Buffer): boolean {
  let environ: Buffer;
  try {
    environ = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false; // gone, or another user's process
  }
  for (let at = environ.indexOf(needle); at !== -1; at = environ.indexOf(needle, at + 1)) {
    if (at === 0 || environ[at - 1] === 0) return true;
  }
  return false;
}

/**
 * `findMarkedProcesses(marker)`, looking only at processes created after pid `after` was
 * handed out (an attempt's processes are all younger than the first one it started, or,
 * for a warm TS worker, than the last pid seen when its previous task ended). `last` is
 * the last pid handed out when this looked: the `after` of the next such question.
 * Cheap when nothing or little was started meanwhile: one read of /proc/loadavg, then one
 * probe per pid handed out since; the whole /proc is read only when something is found
 * (for the exact list) or /proc/loadavg cannot be used.
 */
export function findMarkedSince(after: number, marker: string): { pids: number[]; last: number } {
  if (!isLinux) return { pids: [], last: after };
  const last = lastPidUsable ? lastPid() : undefined;
  if (last === undefined) return { pids: findMarkedProcesses(marker), last: after };
  if (last === after) return { pids: [], last };
  const needle = Buffer.from(`${MARKER_VAR}=${marker}\0`);
  let hit = false;
  if (last > after && last - after <= PROBE_RANGE) {
    // Thread ids are probed too (they share the pid counter): a thread's environ is its process's.
    for (let pid = after + 1; pid <= last && !hit; pid++) {
      if (pid !== process.pid && existsSync(`/proc/${pid}/environ`)) hit = carriesMarker(pid, needle);
    }
  } else {
    const younger = last > after ? (pid: number) => pid > after : (pid: number) => pid > after || pid <= last; // wrapped
    for (const pid of procPids()) {
      if (younger(pid) && carriesMarker(pid, needle)) {
        hit = true;
        break;
      }
    }
  }
  return { pids: hit ? findMarkedProcesses(marker) : [], last };
}

/** How a spawned process tree ended, as `waitForTree` saw it. */
export interface TreeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** How long to wait for the output pipes to close once the group is gone, before giving up on them. */
const PIPE_CLOSE_WAIT_MS = 2000;

/** What the main process of an attempt left running when it exited. */
export interface Leftovers {
  /** Members of its process group were alive. */
  inGroup: boolean;
  /** Processes carrying the attempt's marker outside the group (setsid, a daemon): their pids. */
  escaped: number[];
}

/**
 * Resolves when the group leader `child` (spawned `detached`) has exited, its output is
 * read, and its process group is gone — and, with the attempt's `marker`, every process
 * carrying it too. What is still alive when the leader exits is ended (SIGTERM, SIGKILL
 * after `graceMs`; `onLeftovers` is told, and what it returns is called on the SIGKILL):
 * it belongs to the attempt, would outlive it, and may keep the output pipes open. (A
 * process being killed closes its pipes before it is gone, so the output closing says
 * nothing about the group.) Marked processes outside the group are looked for with
 * `findMarkedSince(child.pid)`: a read of /proc/loadavg when nothing else was started.
 * A process that left the group and dropped the marker but still holds a pipe is not
 * waited for: once the tree is gone, pipes not closed within a moment are destroyed —
 * unless a reader paused them for backpressure; then the wait starts again.
 */
export function waitForTree(
  child: ChildProcess,
  graceMs: number,
  onLeftovers?: (leftovers: Leftovers) => (() => void) | void,
  marker?: string,
): Promise<TreeExit> {
  return new Promise((resolve) => {
    let exit: TreeExit | undefined;
    let outputClosed = false;
    let groupGone = false;
    let giveUpTimer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (!exit || !outputClosed || !groupGone) return;
      clearTimeout(giveUpTimer);
      resolve(exit);
    };
    const giveUp = (): void => {
      if (outputClosed) return;
      const streams = [child.stdout, child.stderr].filter((s): s is NonNullable<typeof s> => !!s && !s.destroyed);
      if (streams.some((s) => s.isPaused())) {
        giveUpTimer = setTimeout(giveUp, PIPE_CLOSE_WAIT_MS);
        return;
      }
      for (const s of streams) s.destroy();
      outputClosed = true;
      finish();
    };
    const whenGroupGone = (): void => {
      groupGone = true;
      if (!outputClosed) giveUpTimer = setTimeout(giveUp, PIPE_CLOSE_WAIT_MS);
      finish();
    };
    child.once("close", () => {
      outputClosed = true;
      finish();
    });
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      const pgid = child.pid!;
      const inGroup = processGroupAlive(pgid);
      const escaped = marker === undefined || inGroup ? [] : findMarkedSince(pgid, marker).pids;
      if (!inGroup && escaped.length === 0) return whenGroupGone();
      const onEscalate = onLeftovers?.({ inGroup, escaped }) ?? undefined;
      void killProcessGroup(pgid, graceMs, onEscalate, marker).then(whenGroupGone);
    });
  });
}
