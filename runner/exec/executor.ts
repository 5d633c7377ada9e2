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
import { availableParallelism } from "node:os";
import { relative } from "node:path";
import type { AttemptExit, KillEffect, StartEffect } from "../../protocol/runner";
import { formatDuration } from "../../common/durations";
import type { AttemptLog, LogLevel, LogStore } from "../logs";
import { bundlePath } from "./bundle";
import { WorkerPool, type PoolOptions, type TaskLogLevel } from "./pool";
import { killProcessGroup, waitForTree } from "./process-tree";
import { attemptEnv, attemptMarker, spawnShell } from "./shell";

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
  /** `finish` was called; the log is closing. */
  finished: boolean;
  /** Resolves after `onExit`. */
  settled: Promise<void>;
  settle: () => void;
}

function describeExit(n: number, exit: AttemptExit, took: string): [LogLevel, string] {
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
    const { effect, log } = attempt;
    if (effect.command === undefined) throw new Error(`shell task ${effect.task} has no command`);
    const child = spawnShell(effect, this.opts.root, this.baseEnv);
    const pid = child.pid;
    if (pid === undefined) {
      child.once("error", (e) => this.finish(attempt, { error: `could not start bash: ${e.message}` }));
      return;
    }
    child.on("error", () => {}); // failed kills: the group kill below does not use the handle
    this.spawned(attempt, pid, `bash -c ${effect.command}`);
    attempt.stop = (onEscalate) => void killProcessGroup(pid, this.graceMs, onEscalate, attemptMarker(effect));
    for (const name of ["stdout", "stderr"] as const) {
      const stream = child[name]!;
      stream.on("data", (data: Buffer) => {
        if (!log.chunk(name, data)) {
          stream.pause();
          void log.drained().then(() => stream.resume());
        }
      });
    }
    // Processes still running when bash exits are the attempt's: they are ended, also those
    // that left its group (`setsid`, daemons), found by the marker.
    const leftovers = ({ inGroup, escaped }: { inGroup: boolean; escaped: number[] }): (() => void) | undefined => {
      if (attempt.killRequested) return undefined; // being ended already
      const grace = formatDuration(this.graceMs);
      log.write(
        "system",
        "WARN",
        inGroup
          ? `the main process exited but left processes in group ${pid}: ending them`
          : `the main process exited but left ${escaped.length} process(es) outside its group (pid ${escaped.join(", ")}): ending them (SIGTERM, SIGKILL after ${grace})`,
      );
      return () => log.write("system", "WARN", `processes left by the attempt still running ${grace} after SIGTERM: SIGKILL`);
    };
    void waitForTree(child, this.graceMs, leftovers, attemptMarker(effect)).then(({ code, signal }) =>
      this.finish(attempt, signal !== null ? { signal } : { exitCode: code ?? undefined }),
    );
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
    const [level, line] = describeExit(attempt.effect.attempt, exit, formatDuration(Date.now() - attempt.startedAt));
    attempt.log.endOutput();
    attempt.log.write("system", level, line);
    void attempt.log.close().then(() => {
      this.attempts.delete(attemptMarker(attempt.effect));
      try {
        this.opts.onExit(attempt.effect, exit);
      } finally {
        attempt.settle();
      }
    });
  }
}
