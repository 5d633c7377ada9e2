/**
 * A warm pool of TS task workers (`runner/worker.ts`, dist/worker.js): Node processes,
 * each the leader of its own process group, each running one task at a time and reused
 * for the next, so a TS task costs an IPC round trip instead of a Node start (~50 ms).
 *
 * Policy:
 * - At most `maxWorkers` processes (not counting ones being ended). Jobs beyond that
 *   wait, first come first served.
 * - `spares` idle (or starting) workers are kept ready beyond the queued jobs: when a job
 *   takes a worker, a replacement starts in the background. A job goes to the idle worker
 *   that finished a task most recently, so a chain of tasks keeps using one warm worker.
 * - A worker is retired (its group ended) after `maxTasksPerWorker` tasks (bounding what
 *   a long life accumulates: required bundles, leaks), after a task that crashed it
 *   (uncaught exception) or that it could not clean up after (see `runner/worker.ts`), when
 *   code of an ended task ran in it (blamed on that task in the runner's log; a task it
 *   then declines goes back to the head of the queue), when it has been idle for
 *   `idleTimeoutMs`, and — with its whole process group, the task's children included —
 *   when its task is killed.
 * - No process outlives its task: when a task ends, processes carrying its marker (its
 *   children, also ones that left the group) are looked for among those started since the
 *   previous task ended (`findMarkedSince`: one read of /proc/loadavg when there are none);
 *   if any, the attempt's log says so, the worker is retired with them, and the task's end
 *   is reported once they are gone.
 * - A worker that dies before saying it is ready fails the queued jobs with its stderr,
 *   rather than being started again and again.
 *
 * The channel (IPC requests in, frames on fd 3 out) is `protocol/worker.ts`, shared with
 * the worker; why its frames are one ordered pipe is said in `runner/worker.ts`.
 */
import { fork, type ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import type { AttemptExit } from "../../protocol/runner";
import { GRACE_ENV, LOG_FRAME_LEVEL, readFrames, type RunRequest, type TaskContextData, type TaskLogLevel, type TaskOutcome } from "../../protocol/worker";
import { findMarkedSince, killProcessGroup, MARKER_VAR, waitForTree } from "./process-tree";

export type { TaskLogLevel };

/** One TS task to run. */
export interface TaskJob {
  /** Absolute path of the run's bundle. */
  bundle: string;
  workflow: string;
  task: string;
  ctx: TaskContextData;
  /** Variables set in the worker's process.env while the task runs. */
  env: Record<string, string>;
}

/** Where a job's events go (the executor writes them to the attempt's log). */
export interface TaskSink {
  /** The job was handed to worker `pid` (its process group id). */
  started(pid: number): void;
  /** Console and raw output. False: stop reading the worker until `drained()`. */
  output(stream: "stdout" | "stderr", data: Buffer): boolean;
  /** A ctx.log entry. False: stop reading the worker until `drained()`. */
  log(level: TaskLogLevel, text: string): boolean;
  drained(): Promise<void>;
  /** Exactly once per job. */
  ended(exit: AttemptExit): void;
}

export interface TaskHandle {
  /**
   * Ends the job: a running one by ending its worker's whole process group (SIGTERM, then
   * SIGKILL after the grace period; `onEscalate` is told), its end then reported through
   * the sink with the signal; a job still waiting for a worker ends at once, with an error.
   * No-op once the job has ended.
   */
  kill(onEscalate?: () => void): void;
}

export interface PoolOptions {
  workerPath: string;
  /** The tasks' working directory: the workspace root. */
  cwd: string;
  maxWorkers: number;
  killGraceMs: number;
  /** Default 200. */
  maxTasksPerWorker?: number;
  /** Default 60 s. */
  idleTimeoutMs?: number;
  /** Idle workers kept ready; default 1. */
  spares?: number;
  /** The workers' environment; default: the runner's. */
  env?: NodeJS.ProcessEnv;
  /** The runner's log (what belongs to no open attempt log); default: stderr, as the runner logs. */
  log?: (message: string) => void;
}

interface Job {
  seq: number;
  request: RunRequest;
  sink: TaskSink;
  /** Set while running. */
  worker: Worker | undefined;
  /** It finished, and its end is reported once the processes it left are gone. */
  finishing: boolean;
  ended: boolean;
}

type WorkerState = "starting" | "idle" | "busy" | "retiring";

interface Worker {
  child: ChildProcess;
  pid: number;
  state: WorkerState;
  job: Job | undefined;
  tasks: number;
  /** When it last finished a task (performance.now()); 0 for a fresh worker. */
  lastUsed: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Unparsed tail of the frame pipe. */
  pending: Buffer | undefined;
  /** stderr before the ready frame: the reason if the worker never gets ready. */
  startupErr: string;
  exited: Promise<void>;
  /** The last pid handed out when its previous task ended (its own pid at first): its next task's processes are younger. */
  pidMark: number;
  /** Recent tasks' markers by seq: whom to blame for code that runs after its task ended. */
  history: Map<number, string>;
  /** Code of an ended task ran in it: it takes no further task. */
  tainted: boolean;
}

/** Markers kept per worker for blame (a leftover fires within moments of its task's end). */
const HISTORY = 16;

export class WorkerPool {
  private readonly opts: Required<Omit<PoolOptions, "env" | "log">> & { env: NodeJS.ProcessEnv };
  private readonly log: (message: string) => void;
  // Invariants: `workers` holds every live process (any state); a job is in `queue` xor
  // has a `worker` xor has `ended`; a busy worker's `job` is that job.
  private readonly workers = new Set<Worker>();
  private readonly queue: Job[] = [];
  private seq = 0;
  private closing = false;

  constructor(opts: PoolOptions) {
    if (!(opts.maxWorkers >= 1)) throw new RangeError(`Expected maxWorkers to be a number from 1 and up, got ${opts.maxWorkers}`);
    this.opts = {
      maxTasksPerWorker: 200,
      idleTimeoutMs: 60_000,
      spares: 1,
      ...opts,
      env: opts.env ?? process.env,
    };
    this.log =
      opts.log ??
      ((m) => {
        try {
          process.stderr.write(`${new Date().toISOString()} ${m}\n`);
        } catch {
          // nowhere to report it
        }
      });
  }

  /** Workers alive, any state. */
  size(): number {
    return this.workers.size;
  }

  /** Starts spare workers now, so that the first task does not wait for a Node start. */
  prewarm(): void {
    this.ensureCapacity(true);
  }

  run(job: TaskJob, sink: TaskSink): TaskHandle {
    const seq = (this.seq = (this.seq % 0xffff_fffe) + 1);
    const queued: Job = { seq, request: { type: "run", seq, ...job }, sink, worker: undefined, finishing: false, ended: false };
    if (this.closing) {
      this.end(queued, { error: "the runner is shutting down" });
    } else {
      this.queue.push(queued);
      this.dispatch(true);
    }
    return { kill: (onEscalate) => this.kill(queued, onEscalate) };
  }

  /** Ends every worker (busy ones with the grace period) and fails queued jobs; resolves when all processes are gone. */
  async close(): Promise<void> {
    this.closing = true;
    for (const job of this.queue.splice(0)) this.end(job, { error: "the runner is shutting down" });
    const exits = [...this.workers].map((w) => {
      this.retire(w);
      return w.exited;
    });
    await Promise.all(exits);
  }

  private kill(job: Job, onEscalate?: () => void): void {
    if (job.ended || job.finishing) return; // finishing: its leftovers are being ended already
    const worker = job.worker;
    if (!worker) {
      this.queue.splice(this.queue.indexOf(job), 1);
      this.end(job, { error: "killed while waiting for a task worker" });
      return;
    }
    this.retire(worker, onEscalate);
  }

  private end(job: Job, exit: AttemptExit): void {
    if (job.ended) return;
    job.ended = true;
    job.worker = undefined;
    job.sink.ended(exit);
  }

  /**
   * Hands queued jobs to idle workers, and starts workers for the rest — plus spares when
   * `withSpares` (a job just arrived: the worker it took is replaced). Spares are topped up
   * only on demand, so workers that idled out stay gone until TS tasks come again.
   */
  private dispatch(withSpares: boolean): void {
    while (this.queue.length > 0) {
      const worker = this.takeIdle();
      if (!worker) break;
      this.assign(worker, this.queue.shift()!);
    }
    this.ensureCapacity(withSpares);
  }

  /**
   * The idle worker that finished a task most recently: it has the run's bundle loaded and
   * its code warm; fresh spares come last, and the others may idle out.
   */
  private takeIdle(): Worker | undefined {
    let found: Worker | undefined;
    for (const w of this.workers) if (w.state === "idle" && (!found || w.lastUsed > found.lastUsed)) found = w;
    return found;
  }

  private ensureCapacity(withSpares: boolean): void {
    if (this.closing) return;
    let ready = 0;
    let live = 0;
    for (const w of this.workers) {
      if (w.state === "idle" || w.state === "starting") ready++;
      if (w.state !== "retiring") live++;
    }
    const wanted = this.queue.length + (withSpares ? this.opts.spares : 0);
    for (; ready < wanted && live < this.opts.maxWorkers; ready++, live++) this.spawn();
  }

  private assign(worker: Worker, job: Job): void {
    clearTimeout(worker.idleTimer);
    worker.state = "busy";
    worker.job = job;
    job.worker = worker;
    worker.history.set(job.seq, job.request.env[MARKER_VAR] ?? `${job.request.workflow}.${job.request.task}`);
    if (worker.history.size > HISTORY) worker.history.delete(worker.history.keys().next().value!);
    job.sink.started(worker.pid);
    try {
      worker.child.send(job.request);
    } catch {
      this.retire(worker); // the channel is gone; the worker's exit ends the job
    }
  }

  private spawn(): void {
    let child: ChildProcess;
    try {
      child = fork(this.opts.workerPath, [], {
        cwd: this.opts.cwd,
        env: { ...this.opts.env, [GRACE_ENV]: String(this.opts.killGraceMs) },
        // Not the runner's own flags (a loader, an inspector port).
        execArgv: [],
        detached: true,
        stdio: ["ignore", "pipe", "pipe", "pipe", "ipc"],
        serialization: "json",
      });
    } catch (e) {
      this.failQueue(`the task worker could not be started: ${(e as Error).message}`);
      return;
    }
    if (child.pid === undefined) {
      child.once("error", (e) => this.failQueue(`the task worker could not be started: ${e.message}`));
      return;
    }
    const worker: Worker = {
      child,
      pid: child.pid,
      state: "starting",
      job: undefined,
      tasks: 0,
      lastUsed: 0,
      idleTimer: undefined,
      pending: undefined,
      startupErr: "",
      exited: Promise.resolve(),
      pidMark: child.pid,
      history: new Map(),
      tainted: false,
    };
    this.workers.add(worker);
    child.on("error", () => {}); // a failed send or kill; the exit handler cleans up
    const frames = child.stdio[3] as Readable;
    frames.on("data", (data: Buffer) => this.onFrames(worker, frames, data));
    this.pipeOutput(worker, child.stdout!, "stdout");
    this.pipeOutput(worker, child.stderr!, "stderr");
    worker.exited = waitForTree(child, this.opts.killGraceMs).then((exit) => this.onExit(worker, exit.code, exit.signal));
  }

  private pipeOutput(worker: Worker, stream: Readable, name: "stdout" | "stderr"): void {
    stream.on("data", (data: Buffer) => {
      const job = worker.job;
      if (job) {
        if (!job.sink.output(name, data)) this.pauseUntilDrained(stream, job);
      } else if (worker.state === "starting" && name === "stderr" && worker.startupErr.length < 4096) {
        worker.startupErr += data.toString("utf8");
      }
    });
  }

  private pauseUntilDrained(stream: Readable, job: Job): void {
    if (stream.isPaused()) return;
    stream.pause();
    void job.sink.drained().then(() => stream.resume());
  }

  private onFrames(worker: Worker, stream: Readable, data: Buffer): void {
    const buf = worker.pending ? Buffer.concat([worker.pending, data]) : data;
    const off = readFrames(buf, (kind, seq, payload) => this.onFrame(worker, stream, kind, seq, payload));
    worker.pending = off === buf.length ? undefined : buf.subarray(off);
    // Don't pin a large chunk for a small tail.
    if (worker.pending && off > 0 && worker.pending.length < 4096) worker.pending = Buffer.from(worker.pending);
  }

  private onFrame(worker: Worker, stream: Readable, kind: string, seq: number, payload: Buffer): void {
    if (kind === "R") {
      if (worker.state === "starting") {
        worker.state = "idle";
        worker.startupErr = "";
        this.becameIdle(worker);
      }
      return;
    }
    if (kind === "X") return this.onLeftover(worker, seq, payload.toString("utf8"));
    const job = worker.job;
    if (!job || job.seq !== seq) return; // output of a task that has ended
    if (kind === "o" || kind === "e") {
      if (!job.sink.output(kind === "o" ? "stdout" : "stderr", payload)) this.pauseUntilDrained(stream, job);
    } else if (LOG_FRAME_LEVEL[kind] !== undefined) {
      if (!job.sink.log(LOG_FRAME_LEVEL[kind], payload.toString("utf8"))) this.pauseUntilDrained(stream, job);
    } else if (kind === "F") {
      // Being killed: the job ends with the worker's exit (its signal). The task may have
      // settled only because the kill's SIGTERM ended its children before the worker saw it.
      if (worker.state === "retiring") return;
      let outcome: TaskOutcome;
      try {
        outcome = JSON.parse(payload.toString("utf8")) as TaskOutcome;
      } catch {
        outcome = { ok: false, error: "the task worker sent an unreadable result", retire: true };
      }
      worker.job = undefined;
      if (outcome.declined) {
        // Tainted by an ended task's code before it heard of this one: run it elsewhere.
        job.worker = undefined;
        job.sink.log("warn", `tideflow: task worker ${worker.pid} is not reused (code of an ended task ran in it); this task moves to a fresh worker`);
        this.retire(worker);
        this.queue.unshift(job);
        this.dispatch(true);
        return;
      }
      worker.tasks++;
      worker.lastUsed = performance.now();
      const exit: AttemptExit = outcome.ok ? { exitCode: 0 } : outcome.setup ? { error: outcome.error } : { exitCode: 1, error: outcome.error };
      const marker = job.request.env[MARKER_VAR];
      const left = marker === undefined ? { pids: [], last: worker.pidMark } : findMarkedSince(worker.pidMark, marker);
      worker.pidMark = left.last;
      if (left.pids.length > 0 || outcome.retire) {
        // Its processes (and whatever the worker could not clean) go with the worker; the
        // task's end is reported once they are gone.
        if (left.pids.length > 0) {
          const grace = `${this.opts.killGraceMs}ms`;
          job.sink.log("warn", `tideflow: the task left ${left.pids.length} process(es) running (pid ${left.pids.join(", ")}): ending them (SIGTERM, SIGKILL after ${grace})`);
        }
        job.finishing = true;
        const gone = this.retire(worker, undefined, marker);
        void Promise.all([gone, worker.exited]).then(() => this.end(job, exit));
      } else {
        this.end(job, exit);
        if (worker.tainted || worker.tasks >= this.opts.maxTasksPerWorker || this.closing) {
          this.retire(worker);
        } else {
          worker.state = "idle";
          this.becameIdle(worker);
        }
      }
      this.dispatch(false);
    }
  }

  /**
   * The ended task `seq` left the worker unfit (its code still ran — threw, printed, set a
   * timer — or it left state the worker cannot put back): that task is blamed in the
   * runner's log (its attempt log is closed), the task running now is not, and the worker
   * is retired once it is idle.
   */
  private onLeftover(worker: Worker, seq: number, what: string): void {
    const who = worker.history.get(seq);
    this.log(`task worker ${worker.pid} is not reused: ${who ? `attempt ${who}` : "an earlier task"} ${what}`);
    worker.tainted = true;
    if (worker.state === "idle") this.retire(worker);
  }

  private becameIdle(worker: Worker): void {
    worker.idleTimer = setTimeout(() => {
      if (worker.state === "idle") this.retire(worker);
    }, this.opts.idleTimeoutMs);
    worker.idleTimer.unref();
    this.dispatch(false);
  }

  /**
   * Ends the worker's process group — and the processes marked as the attempt `marker`'s
   * (by default the task it runs) that left the group; `onExit` follows. Resolves when all
   * of them are gone.
   */
  private retire(worker: Worker, onEscalate?: () => void, marker = worker.job?.request.env[MARKER_VAR]): Promise<void> {
    if (worker.state === "retiring") return worker.exited;
    worker.state = "retiring";
    clearTimeout(worker.idleTimer);
    return killProcessGroup(worker.pid, this.opts.killGraceMs, onEscalate, marker);
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    const wasStarting = worker.state === "starting";
    this.workers.delete(worker);
    clearTimeout(worker.idleTimer);
    worker.state = "retiring";
    const job = worker.job;
    worker.job = undefined;
    if (job) this.end(job, { ...(code !== null ? { exitCode: code } : {}), ...(signal !== null ? { signal } : {}) });
    if (wasStarting && !this.closing) {
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      const stderr = worker.startupErr.trim();
      this.failQueue(`the task worker exited (${how}) before it was ready${stderr ? `: ${stderr}` : ""}`);
      return;
    }
    this.dispatch(false);
  }

  private failQueue(error: string): void {
    for (const job of this.queue.splice(0)) this.end(job, { error });
  }
}
