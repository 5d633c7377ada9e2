/**
 * The executor: performs the engine's `start` and `kill` effects and reports each
 * attempt's end. What every attempt has in common lives here — its log, the line saying
 * how it ended, kill requests, exactly one end — and the running itself is done by an
 * executor kind from a table (./kinds.ts): `shell` (./shell-kind.ts) and `ts`
 * (./ts-kind.ts) by default; `route` picks the kind of each start.
 *
 * Guarantees to the daemon:
 * - `onExit` is called exactly once per `start` (and per successful `adopt`), after the
 *   attempt's log is closed (all of its output, and the system line saying how it ended,
 *   are on disk).
 * - `onSpawn` is called once the attempt's process exists, with the handle its kind gave,
 *   before any `onExit` for it; not at all when nothing could be started.
 * - Nothing throws at the caller: failures to start come back through `onExit` with `error`.
 */
import { join } from "node:path";
import type { AttemptExit, AttemptHandle, KillEffect, StartEffect } from "../../protocol/runner";
import { formatDuration } from "../../common/durations";
import { elapsed } from "../../common/time-format";
import type { AttemptLog, LogLevel, LogStore } from "../logs";
import { attemptMarker, type AttemptControl, type ExecutorKind, type KindEnvironment, type KindFactory } from "./kinds";
import { shellKind } from "./shell-kind";
import { tsKind, type TsKindOptions } from "./ts-kind";

export { ADOPTED_UNKNOWN_EXIT } from "./shell-kind";

export interface ExecutorOptions {
  /** The workspace root: the tasks' working directory. */
  root: string;
  /** `<root>/.tideflow`: TS tasks' bundles are read from `<stateDir>/bundles/<runId>.cjs`. */
  stateDir: string;
  logs: LogStore;
  /** dist/worker.js */
  workerPath: string;
  /** dist/spawner.js; default: beside `workerPath`. */
  spawnerPath?: string;
  /** SIGTERM → SIGKILL delay when killing an attempt; default 5000. */
  killGraceMs?: number;
  /** Most TS task workers at once; default max(8, 2 × cores). */
  maxWorkers?: number;
  /** Worker pool tuning (defaults: 200 tasks per worker, 60 s idle timeout, 1 spare). */
  pool?: TsKindOptions["pool"];
  /** More kinds, or replacements, by name (the default table has `shell` and `ts`). */
  kinds?: Record<string, KindFactory>;
  /** The kind that runs a start; default `shell` for shell tasks, `ts` for the others. */
  route?: (effect: StartEffect) => string;
  /** The attempt's process exists: where (its kind's handle). The daemon journals it. */
  onSpawn(effect: StartEffect, handle: AttemptHandle): void;
  /**
   * Exactly once per `start`, after the attempt's log is closed. A promise returned says
   * when the end is durable (journaled): the attempt's temporary files (capture files, from
   * which a restarted runner would learn the end) are kept until then.
   */
  onExit(effect: StartEffect, exit: AttemptExit): void | Promise<void>;
}

const DEFAULT_KILL_GRACE_MS = 5000;

/** The default route: a task's kind names its executor kind. */
export function defaultRoute(effect: Pick<StartEffect, "kind">): string {
  return effect.kind === "shell" ? "shell" : "ts";
}

interface RunningAttempt {
  effect: StartEffect;
  log: AttemptLog;
  startedAt: number;
  /** Set once the attempt's process exists. */
  handle: AttemptHandle | undefined;
  control: AttemptControl | undefined;
  killRequested: boolean;
  /** Ended by `close` (the runner stops): reported with `interrupted` unless it had succeeded. */
  interrupted?: boolean;
  /** The kind reported the end; the log is closing. */
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
  private readonly kindEnv: KindEnvironment;
  private readonly factories: Record<string, KindFactory>;
  /** Made on first use: a shell-only workspace starts no TS worker, a TS-only one no spawn helper. */
  private readonly kinds = new Map<string, ExecutorKind>();
  private readonly route: (effect: StartEffect) => string;
  /** By attempt marker; an attempt stays here until its `onExit` has been called. */
  private readonly attempts = new Map<string, RunningAttempt>();
  private closing: Promise<void> | undefined;

  constructor(opts: ExecutorOptions) {
    this.opts = opts;
    this.graceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.kindEnv = { root: opts.root, stateDir: opts.stateDir, baseEnv: { ...process.env }, killGraceMs: this.graceMs };
    this.factories = {
      shell: shellKind(opts.spawnerPath ?? join(opts.workerPath, "..", "spawner.js")),
      ts: tsKind({ workerPath: opts.workerPath, maxWorkers: opts.maxWorkers, pool: opts.pool }),
      ...opts.kinds,
    };
    this.route = opts.route ?? defaultRoute;
  }

  /** Attempts started and not yet reported through `onExit`. */
  active(): number {
    return this.attempts.size;
  }

  /** A run with tasks of these kinds is being created: their executor kinds get ready (a spare TS worker, the spawn helper). */
  prewarm(taskKinds: Iterable<StartEffect["kind"]>): void {
    if (this.closing) return;
    const names = new Set<string>();
    for (const kind of taskKinds) {
      try {
        names.add(this.route({ kind } as StartEffect));
      } catch {
        // a route that needs more of a start than its task's kind: nothing to warm
      }
    }
    for (const name of names) this.kind(name)?.prewarm?.();
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
    const attempt = this.track(effect, Date.now());
    const name = this.route(effect);
    const kind = this.kind(name);
    if (!kind) {
      this.finish(attempt, { error: `could not start: no executor kind ${JSON.stringify(name)}` });
      return;
    }
    try {
      attempt.control = kind.start(this.contextOf(attempt));
    } catch (e) {
      this.finish(attempt, { error: `could not start: ${(e as Error).message}` });
    }
  }

  /**
   * Takes over an attempt a previous runner started (after a crash), through the kind its
   * handle names. Returns false when that kind cannot (or does not exist): the caller ends
   * what is left of it and it runs again as a failover attempt. When it already ended, it
   * is finished at once with what is known of it.
   */
  adopt(effect: StartEffect, handle: AttemptHandle, startedAt = Date.now()): boolean {
    const kind = this.closing ? undefined : this.kind(handle.executor);
    if (!kind?.adopt || this.attempts.has(attemptMarker(effect))) return false;
    const attempt = this.track(effect, startedAt);
    attempt.handle = handle;
    const control = kind.adopt(this.contextOf(attempt), handle);
    if (!control) {
      // Nothing was written to its log: forget it without an end.
      this.attempts.delete(attemptMarker(effect));
      void attempt.log.close();
      return false;
    }
    attempt.control = control;
    return true;
  }

  /** Adoption after a restart is over (the daemon adopted what it could): each kind may clean up. */
  recovered(): void {
    for (const name of Object.keys(this.factories)) this.kind(name)?.recovered?.();
  }

  kill(effect: KillEffect): void {
    const attempt = this.attempts.get(attemptMarker(effect));
    if (attempt) this.stop(attempt, effect.reason);
  }

  /** Kills every attempt's tree and ends every kind; resolves when all are gone and every `onExit` was called. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const attempts = [...this.attempts.values()];
      for (const attempt of attempts) {
        attempt.interrupted = true;
        this.stop(attempt, "the runner is stopping");
      }
      await Promise.all(attempts.map((a) => a.settled));
      await Promise.all([...this.kinds.values()].map((k) => k.close()));
    })();
    return this.closing;
  }

  private kind(name: string): ExecutorKind | undefined {
    let kind = this.kinds.get(name);
    if (!kind) {
      const make = this.factories[name];
      if (!make) return undefined;
      kind = make(this.kindEnv);
      this.kinds.set(name, kind);
    }
    return kind;
  }

  private track(effect: StartEffect, startedAt: number): RunningAttempt {
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const key = { runId: effect.runId, instanceId: effect.instanceId, task: effect.task, attempt: effect.attempt };
    const attempt: RunningAttempt = {
      effect,
      log: this.opts.logs.open(key),
      startedAt,
      handle: undefined,
      control: undefined,
      killRequested: false,
      finished: false,
      settled,
      settle,
    };
    this.attempts.set(attemptMarker(effect), attempt);
    return attempt;
  }

  private contextOf(attempt: RunningAttempt) {
    const { effect } = attempt;
    return {
      effect,
      log: attempt.log,
      logPath: this.opts.logs.pathFor({ runId: effect.runId, instanceId: effect.instanceId, task: effect.task, attempt: effect.attempt }),
      marker: attemptMarker(effect),
      spawned: (handle: AttemptHandle, what: string) => {
        if (attempt.handle !== undefined || attempt.finished) return;
        attempt.handle = handle;
        attempt.log.write("system", "INFO", `attempt ${effect.attempt} started (pid ${handle.pid}${handle.host ? ` on ${handle.host}` : ""}): ${what}`);
        this.opts.onSpawn(effect, handle);
      },
      ended: (exit: AttemptExit) => this.finish(attempt, exit),
    };
  }

  private stop(attempt: RunningAttempt, reason: string): void {
    if (attempt.finished || attempt.killRequested) return;
    attempt.killRequested = true;
    const { log, handle } = attempt;
    const grace = formatDuration(this.graceMs);
    if (handle === undefined) {
      log.write("system", "WARN", `kill requested (${reason}) before the attempt's process existed: it is ended as soon as it does`);
    } else {
      log.write("system", "WARN", `kill requested (${reason}): SIGTERM to process group ${handle.pid}, SIGKILL after ${grace}`);
    }
    attempt.control?.kill(() => log.write("system", "WARN", `still running ${grace} after SIGTERM: SIGKILL to process group ${attempt.handle?.pid}`));
  }

  private finish(attempt: RunningAttempt, exit: AttemptExit): void {
    if (attempt.finished) return;
    attempt.finished = true;
    if (attempt.interrupted && !(exit.exitCode === 0 && exit.error === undefined)) exit = { ...exit, interrupted: true };
    const drain = attempt.control?.drain;
    if (!drain) return this.closeAttempt(attempt, exit);
    // Every byte the attempt wrote goes into its log before the line saying how it ended.
    void drain().then(
      () => this.closeAttempt(attempt, exit),
      () => this.closeAttempt(attempt, exit),
    );
  }

  private closeAttempt(attempt: RunningAttempt, exit: AttemptExit): void {
    // Until its real end: an adopted attempt that ended unwatched ended when its exit file says.
    const took = Math.max(0, Math.min(Date.now(), exit.endedAt ?? Date.now()) - attempt.startedAt);
    const [level, line] = describeExit(attempt.effect.attempt, exit, elapsed(took));
    attempt.log.endOutput();
    attempt.log.write("system", level, line);
    void attempt.log.close().then(() => {
      this.attempts.delete(attemptMarker(attempt.effect));
      let durable: void | Promise<void> = undefined;
      try {
        durable = this.opts.onExit(attempt.effect, exit);
      } finally {
        attempt.settle();
        const cleanup = (): void => attempt.control?.cleanup?.();
        if (durable instanceof Promise) durable.then(cleanup, cleanup);
        else cleanup();
      }
    });
  }
}
