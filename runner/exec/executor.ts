/**
 * The executor: performs the engine's `start` and `kill` effects with real processes and
 * reports each attempt's end. Shell tasks run as `bash -c` (`./shell.ts`), TS/JS tasks in
 * the warm worker pool (`./pool.ts`) from the run's bundle (`./bundle.ts`). Every attempt
 * owns a process group; killing it ends the group (`./process-tree.ts`).
 *
 * Guarantees to the daemon:
 * - `onExit` is called exactly once per `start`, after the attempt's log is closed (all of
 *   its output, and the system line saying how it ended, are on disk).
 * - `onSpawn` is called once the attempt's process group exists (pid == pgid), before any
 *   `onExit` for it; not at all when nothing could be started.
 * - Nothing throws at the caller: failures to start come back through `onExit` with `error`.
 */
import type { ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, unlink } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, relative } from "node:path";
import type { AttemptExit, KillEffect, StartEffect } from "../../protocol/runner";
import { formatDuration } from "../../common/durations";
import type { AttemptLog, LogLevel, LogStore } from "../logs";
import { bundlePath } from "./bundle";
import { WorkerPool, type PoolOptions, type TaskLogLevel } from "./pool";
import { findMarkedProcesses, killProcessGroup, processGroupAlive, waitForTree } from "./process-tree";
import { attemptEnv, attemptMarker, capturePaths, spawnShell } from "./shell";
import { CaptureTail, fileSize, loggedLines, offsetAfterLines, readExitFile } from "./capture";

export interface ExecutorOptions {
  /** The workspace root: the tasks' working directory. */
  root: string;
  /** `<root>/.tideflow`: TS tasks' bundles are read from `<stateDir>/bundles/<runId>.cjs`. */
  stateDir: string;
  logs: LogStore;
  /** dist/worker.js */
  workerPath: string;
  /** SIGTERM → SIGKILL delay when killing an attempt; default 5000. */
  killGraceMs?: number;
  /** Most TS task workers at once; default max(8, 2 × cores). */
  maxWorkers?: number;
  /** Worker pool tuning (defaults: 200 tasks per worker, 60 s idle timeout, 1 spare). */
  pool?: Pick<PoolOptions, "maxTasksPerWorker" | "idleTimeoutMs" | "spares">;
  /** The attempt's process group exists; pid == pgid. The daemon journals it. */
  onSpawn(effect: StartEffect, pid: number): void;
  /** Exactly once per `start`, after the attempt's log is closed. */
  onExit(effect: StartEffect, exit: AttemptExit): void;
}

const DEFAULT_KILL_GRACE_MS = 5000;
/** Capture files are read this soon after a start, then this often while the attempt runs. */
const CAPTURE_FIRST_POLL_MS = 20;
const CAPTURE_POLL_MS = 50;
/** An adopted attempt (not this runner's child) is checked for its end this often. */
const ADOPTED_POLL_MS = 100;
export const ADOPTED_UNKNOWN_EXIT = "the runner restarted and the attempt's process ended with no known exit status (it left no exit file); it runs again as a failover attempt";

function keyOf(effect: StartEffect) {
  return { runId: effect.runId, instanceId: effect.instanceId, task: effect.task, attempt: effect.attempt };
}

const TASK_LOG_LEVELS: Record<TaskLogLevel, ["stdout" | "stderr", LogLevel]> = {
  debug: ["stdout", "DEBUG"],
  info: ["stdout", "INFO"],
  warn: ["stderr", "WARN"],
  error: ["stderr", "ERROR"],
};

interface RunningAttempt {
  effect: StartEffect;
  log: AttemptLog;
  startedAt: number;
  /** Set once the attempt's process group exists. */
  pid: number | undefined;
  /** Ends the attempt's process tree; set as soon as there is something to end. */
  stop: ((onEscalate: () => void) => void) | undefined;
  killRequested: boolean;
  /** Ended by `close` (the runner stops): reported with `interrupted` unless it had succeeded. */
  interrupted?: boolean;
  /** A shell attempt's capture files and how to read them to the end. */
  capture?: { paths: { stdout: string; stderr: string; exit: string }; drain(): Promise<void> };
  /** `finish` was called; the log is closing. */
  finished: boolean;
  /** Resolves after `onExit`. */
  settled: Promise<void>;
  settle: () => void;
}

function describeExit(n: number, exit: AttemptExit, took: string): [LogLevel, string] {
  if (exit.interrupted && exit.error !== undefined && exit.exitCode === undefined && exit.signal === undefined) {
    return ["WARN", `attempt ${n} ended: ${exit.error}`];
  }
  if (exit.interrupted) {
    const how = exit.signal !== undefined ? `killed by ${exit.signal}` : exit.exitCode !== undefined ? `exit code ${exit.exitCode}` : (exit.error ?? "not started");
    return ["WARN", `attempt ${n} ended by the runner stopping (${how}) after ${took}; it runs again, as a failover attempt, when a runner starts`];
  }
  if (exit.signal !== undefined) {
    return ["WARN", `attempt ${n} ended: killed by ${exit.signal} after ${took}${exit.error ? `: ${exit.error}` : ""}`];
  }
  if (exit.exitCode === undefined) return ["ERROR", `attempt ${n} failed to start: ${exit.error ?? "unknown reason"}`];
  if (exit.exitCode === 0 && exit.error === undefined) return ["INFO", `attempt ${n} finished: exit code 0 after ${took}`];
  return ["ERROR", `attempt ${n} failed: exit code ${exit.exitCode} after ${took}${exit.error ? `: ${exit.error}` : ""}`];
}

export class Executor {
  private readonly opts: ExecutorOptions;
  private readonly graceMs: number;
  /** The runner's environment when the executor was made; each attempt adds its own variables. */
  private readonly baseEnv: NodeJS.ProcessEnv;
  /** By attempt marker; an attempt stays here until its `onExit` has been called. */
  private readonly attempts = new Map<string, RunningAttempt>();
  /** Made on the first TS task (or `prewarm`): a shell-only workspace starts no Node worker. */
  private pool: WorkerPool | undefined;
  private closing: Promise<void> | undefined;

  constructor(opts: ExecutorOptions) {
    this.opts = opts;
    this.graceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.baseEnv = { ...process.env };
  }

  /** Attempts started and not yet reported through `onExit`. */
  active(): number {
    return this.attempts.size;
  }

  /** Starts a spare TS task worker now (e.g. when a run with TS tasks is created). */
  prewarm(): void {
    if (!this.closing) this.workers().prewarm();
  }

  start(effect: StartEffect): void {
    if (this.closing) {
      queueMicrotask(() => this.opts.onExit(effect, { error: "not started: the runner is stopping", interrupted: true }));
      return;
    }
    const id = attemptMarker(effect);
    if (this.attempts.has(id)) {
      // A daemon bug; keep the attempt that runs and refuse the second start.
      queueMicrotask(() => this.opts.onExit(effect, { error: `attempt ${id} is already running` }));
      return;
    }
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const attempt: RunningAttempt = {
      effect,
      log: this.opts.logs.open({ runId: effect.runId, instanceId: effect.instanceId, task: effect.task, attempt: effect.attempt }),
      startedAt: Date.now(),
      pid: undefined,
      stop: undefined,
      killRequested: false,
      finished: false,
      settled,
      settle,
    };
    this.attempts.set(id, attempt);
    try {
      if (effect.kind === "shell") this.startShell(attempt);
      else this.startTask(attempt);
    } catch (e) {
      this.finish(attempt, { error: `could not start: ${(e as Error).message}` });
    }
  }

  kill(effect: KillEffect): void {
    const attempt = this.attempts.get(attemptMarker(effect));
    if (attempt) this.stop(attempt, effect.reason);
  }

  /** Kills every attempt's tree and every worker; resolves when all are gone and every `onExit` was called. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const attempts = [...this.attempts.values()];
      for (const attempt of attempts) {
        attempt.interrupted = true;
        this.stop(attempt, "the runner is stopping");
      }
      await Promise.all(attempts.map((a) => a.settled));
      await this.pool?.close();
    })();
    return this.closing;
  }

  private workers(): WorkerPool {
    this.pool ??= new WorkerPool({
      workerPath: this.opts.workerPath,
      cwd: this.opts.root,
      maxWorkers: this.opts.maxWorkers ?? Math.max(8, 2 * availableParallelism()),
      killGraceMs: this.graceMs,
      env: this.baseEnv,
      ...this.opts.pool,
    });
    return this.pool;
  }

  private spawned(attempt: RunningAttempt, pid: number, what: string): void {
    attempt.pid = pid;
    attempt.log.write("system", "INFO", `attempt ${attempt.effect.attempt} started (pid ${pid}): ${what}`);
    this.opts.onSpawn(attempt.effect, pid);
  }

  private startShell(attempt: RunningAttempt): void {
    const { effect } = attempt;
    if (effect.command === undefined) throw new Error(`shell task ${effect.task} has no command`);
    const paths = capturePaths(this.opts.logs.pathFor(keyOf(effect)));
    mkdirSync(dirname(paths.stdout), { recursive: true, mode: 0o700 });
    const outFd = openSync(paths.stdout, "a", 0o600);
    const errFd = openSync(paths.stderr, "a", 0o600);
    let child: ChildProcess;
    try {
      child = spawnShell(effect, this.opts.root, this.baseEnv, { stdout: outFd, stderr: errFd, exitFile: paths.exit });
    } finally {
      closeSync(outFd);
      closeSync(errFd);
    }
    const pid = child.pid;
    this.capture(attempt, paths, 0, 0);
    if (pid === undefined) {
      child.once("error", (e) => this.finish(attempt, { error: `could not start bash: ${e.message}` }));
      return;
    }
    child.on("error", () => {}); // failed kills: the group kill below does not use the handle
    this.spawned(attempt, pid, `bash -c ${effect.command}`);
    attempt.stop = (onEscalate) => void killProcessGroup(pid, this.graceMs, onEscalate, attemptMarker(effect));
    void waitForTree(child, this.graceMs, this.leftovers(attempt, pid), attemptMarker(effect)).then(({ code, signal }) =>
      this.finish(attempt, signal !== null ? { signal } : { exitCode: code ?? undefined }),
    );
  }

  /**
   * Processes still running when bash exits are the attempt's: they are ended, also those
   * that left its group (`setsid`, daemons), found by the marker.
   */
  private leftovers(attempt: RunningAttempt, pid: number) {
    return ({ inGroup, escaped }: { inGroup: boolean; escaped: number[] }): (() => void) | undefined => {
      if (attempt.killRequested) return undefined; // being ended already
      const grace = formatDuration(this.graceMs);
      attempt.log.write(
        "system",
        "WARN",
        inGroup
          ? `the main process exited but left processes in group ${pid}: ending them`
          : `the main process exited but left ${escaped.length} process(es) outside its group (pid ${escaped.join(", ")}): ending them (SIGTERM, SIGKILL after ${grace})`,
      );
      return () => attempt.log.write("system", "WARN", `processes left by the attempt still running ${grace} after SIGTERM: SIGKILL`);
    };
  }

  /** Tails the attempt's capture files into its log while it runs; `finish` reads them to the end. */
  private capture(attempt: RunningAttempt, paths: { stdout: string; stderr: string; exit: string }, outAt: number, errAt: number): void {
    const tails = [new CaptureTail(paths.stdout, "stdout", attempt.log, outAt), new CaptureTail(paths.stderr, "stderr", attempt.log, errAt)];
    let timer: NodeJS.Timeout | undefined;
    const tick = (): void => {
      timer = undefined;
      void Promise.all(tails.map((t) => t.pump())).then(() => {
        if (!attempt.finished) timer = setTimeout(tick, CAPTURE_POLL_MS);
      });
    };
    timer = setTimeout(tick, CAPTURE_FIRST_POLL_MS);
    attempt.capture = {
      paths,
      drain: async () => {
        if (timer) clearTimeout(timer);
        timer = undefined;
        await Promise.all(tails.map((t) => t.pump()));
        for (const t of tails) t.close();
      },
    };
  }

  /**
   * Takes over an attempt a previous runner started (after a crash): `pid` is its process
   * group, recorded in the journal. Its output is read on from where its log ends, its
   * end is learnt by polling (this runner is not its parent) and read from its exit file,
   * and it can be killed as any attempt. Returns false when the attempt has no capture
   * files (it was not started as an adoptable shell attempt): the caller ends it instead.
   * When the process is already gone, it is finished at once with what its files say (no
   * exit file: `interrupted`, so that it runs again as a failover attempt).
   */
  adopt(effect: StartEffect, pid: number, startedAt = Date.now()): boolean {
    const key = keyOf(effect);
    const logPath = this.opts.logs.pathFor(key);
    const paths = capturePaths(logPath);
    if (!existsSync(paths.stdout) || !existsSync(paths.stderr)) return false;
    const logged = loggedLines(logPath);
    const outAt = offsetAfterLines(paths.stdout, logged.stdout);
    const errAt = offsetAfterLines(paths.stderr, logged.stderr);
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const attempt: RunningAttempt = {
      effect,
      log: this.opts.logs.open(key),
      startedAt,
      pid,
      stop: undefined,
      killRequested: false,
      finished: false,
      settled,
      settle,
    };
    this.attempts.set(attemptMarker(effect), attempt);
    const marker = attemptMarker(effect);
    const alive = (): boolean => processGroupAlive(pid) || findMarkedProcesses(marker).length > 0;
    const running = alive();
    const unread = fileSize(paths.stdout) - outAt + fileSize(paths.stderr) - errAt;
    attempt.log.write(
      "system",
      "WARN",
      `attempt ${effect.attempt} adopted by runner ${process.pid} after a restart: process group ${pid} ${running ? "still running" : "had ended"}` +
        (unread > 0 ? `; ${unread} byte(s) of output written while no runner was watching follow, stamped with the time they were read` : ""),
    );
    this.capture(attempt, paths, outAt, errAt);
    attempt.stop = (onEscalate) => void killProcessGroup(pid, this.graceMs, onEscalate, marker);
    const done = (): void => {
      const how = readExitFile(paths.exit);
      this.finish(attempt, how ?? { error: ADOPTED_UNKNOWN_EXIT, interrupted: true });
    };
    if (!running) {
      queueMicrotask(done);
      return true;
    }
    const poll = (): void => {
      if (attempt.finished) return;
      if (alive()) setTimeout(poll, ADOPTED_POLL_MS);
      else done();
    };
    setTimeout(poll, ADOPTED_POLL_MS);
    return true;
  }

  private startTask(attempt: RunningAttempt): void {
    const { effect, log } = attempt;
    const bundle = bundlePath(this.opts.stateDir, effect.runId);
    const handle = this.workers().run(
      {
        bundle,
        workflow: effect.workflow,
        task: effect.task,
        ctx: {
          bizdate: effect.bizdate,
          cyctime: effect.cyctime,
          params: effect.params,
          attempt: effect.attempt,
          workflow: effect.workflow,
          task: effect.task,
        },
        env: attemptEnv(effect),
      },
      {
        started: (pid) => this.spawned(attempt, pid, `task ${effect.task} of workflow ${effect.workflow} in a task worker (${relative(this.opts.root, bundle)})`),
        output: (stream, data) => log.chunk(stream, data),
        log: (level, text) => {
          const [stream, logLevel] = TASK_LOG_LEVELS[level];
          return log.write(stream, logLevel, text);
        },
        drained: () => log.drained(),
        ended: (exit) => this.finish(attempt, exit),
      },
    );
    attempt.stop ??= (onEscalate) => handle.kill(onEscalate);
  }

  private stop(attempt: RunningAttempt, reason: string): void {
    if (attempt.finished || attempt.killRequested) return;
    attempt.killRequested = true;
    const { log, pid } = attempt;
    const grace = formatDuration(this.graceMs);
    if (pid === undefined) {
      log.write("system", "WARN", `kill requested (${reason}) before the attempt started`);
    } else {
      log.write("system", "WARN", `kill requested (${reason}): SIGTERM to process group ${pid}, SIGKILL after ${grace}`);
    }
    attempt.stop?.(() => log.write("system", "WARN", `still running ${grace} after SIGTERM: SIGKILL to process group ${pid}`));
  }

  private finish(attempt: RunningAttempt, exit: AttemptExit): void {
    if (attempt.finished) return;
    attempt.finished = true;
    if (attempt.interrupted && !(exit.exitCode === 0 && exit.error === undefined)) exit = { ...exit, interrupted: true };
    const capture = attempt.capture;
    if (capture) {
      // Every byte the attempt wrote goes into its log before the line saying how it ended.
      void capture.drain().then(
        () => this.closeAttempt(attempt, exit, capture.paths),
        () => this.closeAttempt(attempt, exit, capture.paths),
      );
      return;
    }
    this.closeAttempt(attempt, exit, undefined);
  }

  private closeAttempt(attempt: RunningAttempt, exit: AttemptExit, capture: { stdout: string; stderr: string; exit: string } | undefined): void {
    const [level, line] = describeExit(attempt.effect.attempt, exit, formatDuration(Date.now() - attempt.startedAt));
    attempt.log.endOutput();
    attempt.log.write("system", level, line);
    void attempt.log.close().then(() => {
      if (capture) for (const f of [capture.stdout, capture.stderr, capture.exit]) unlink(f, () => undefined);
      this.attempts.delete(attemptMarker(attempt.effect));
      try {
        this.opts.onExit(attempt.effect, exit);
      } finally {
        attempt.settle();
      }
    });
  }
}
