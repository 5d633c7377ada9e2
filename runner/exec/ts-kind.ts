/**
 * The `ts` executor kind: a TS/JS task's function run in a warm worker process of the
 * pool (./pool.ts) from the run's frozen bundle (./bundle.ts). Its handle is
 * `{ executor: "ts", pid }`, the worker. It cannot adopt: a worker's channel to the
 * runner dies with the runner, and the worker with it, so after a crash the attempt runs
 * again as a failover attempt (cause `recovery`, no retry spent).
 */
import { availableParallelism } from "node:os";
import { relative } from "node:path";
import type { LogLevel } from "../logs";
import { bundlePath } from "./bundle";
import type { AttemptContext, AttemptControl, ExecutorKind, KindEnvironment, KindFactory } from "./kinds";
import { WorkerPool, type PoolOptions, type TaskLogLevel } from "./pool";
import { attemptEnv } from "./shell";

export interface TsKindOptions {
  /** dist/worker.js */
  workerPath: string;
  /** Most workers at once; default max(8, 2 × cores). */
  maxWorkers?: number;
  /** Pool tuning (defaults: 200 tasks per worker, 60 s idle timeout, 1 spare). */
  pool?: Pick<PoolOptions, "maxTasksPerWorker" | "idleTimeoutMs" | "spares">;
}

const TASK_LOG_LEVELS: Record<TaskLogLevel, ["stdout" | "stderr", LogLevel]> = {
  debug: ["stdout", "DEBUG"],
  info: ["stdout", "INFO"],
  warn: ["stderr", "WARN"],
  error: ["stderr", "ERROR"],
};

/** `ts` in the kinds table. */
export function tsKind(options: TsKindOptions): KindFactory {
  return (env) => new TsKind(env, options);
}

class TsKind implements ExecutorKind {
  readonly name = "ts";
  /** Made on the first TS task (or `prewarm`): a shell-only workspace starts no Node worker. */
  private pool: WorkerPool | undefined;

  constructor(
    private readonly env: KindEnvironment,
    private readonly options: TsKindOptions,
  ) {}

  start(ctx: AttemptContext): AttemptControl {
    const { effect, log } = ctx;
    const bundle = bundlePath(this.env.stateDir, effect.runId);
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
        started: (pid) =>
          ctx.spawned({ executor: this.name, pid }, `task ${effect.task} of workflow ${effect.workflow} in a task worker (${relative(this.env.root, bundle)})`),
        output: (stream, data) => log.chunk(stream, data),
        log: (level, text) => {
          const [stream, logLevel] = TASK_LOG_LEVELS[level];
          return log.write(stream, logLevel, text);
        },
        drained: () => log.drained(),
        ended: (exit) => ctx.ended(exit),
      },
    );
    return { kill: (onEscalate) => handle.kill(onEscalate) };
  }

  prewarm(): void {
    this.workers().prewarm();
  }

  close(): Promise<void> {
    return this.pool?.close() ?? Promise.resolve();
  }

  private workers(): WorkerPool {
    this.pool ??= new WorkerPool({
      workerPath: this.options.workerPath,
      cwd: this.env.root,
      maxWorkers: this.options.maxWorkers ?? Math.max(8, 2 * availableParallelism()),
      killGraceMs: this.env.killGraceMs,
      env: this.env.baseEnv,
      ...this.options.pool,
    });
    return this.pool;
  }
}
