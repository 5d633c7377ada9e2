/**
 * A TS task worker (dist/worker.js): a long-lived Node process forked by the runner's pool
 * (`runner/exec/pool.ts`), leader of its own process group, running one task at a time.
 *
 * Channels:
 * - runner → worker: the IPC channel, `WorkerRequest` messages.
 * - worker → runner: frames on fd 3 (`kind u8, seq u32le, length u32le, payload`), written
 *   with blocking `writeSync`. Everything the runner must see in order — console output,
 *   ctx.log entries, the task's end — goes through this one pipe, so the end of a task
 *   comes after all of its output; and when the runner stops reading (its log file is
 *   behind), the task blocks in `write` as it would on a full stdout pipe, so neither
 *   process buffers without bound. fd 3 is not inherited by the task's own children.
 * - fds 1 and 2 are pipes too: output that bypasses `process.stdout` (children spawned
 *   with `stdio: "inherit"`, native code) reaches the task's log, unordered with the rest.
 *
 * Attribution: each task runs inside an AsyncLocalStorage context holding its `seq`;
 * output from a finished task's leftover callbacks carries the old seq and is dropped,
 * instead of landing in the next task's log.
 *
 * Ending: SIGTERM (the runner kills the group) aborts `ctx.signal`; once the task settles,
 * or after the grace period, the worker re-raises SIGTERM on itself, so the runner sees the
 * attempt end by signal. A killed task never reports success. If the runner goes away
 * (IPC closed, fd 3 broken), the worker ends its whole group the same way, then SIGKILLs it.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { existsSync, writeSync } from "node:fs";
import { format } from "node:util";

/** Frame kinds, worker → runner. */
export type FrameKind =
  | "R" // ready: JSON { pid }
  | "o" // stdout text
  | "e" // stderr text
  | "D" // ctx.log.debug
  | "I" // ctx.log.info
  | "W" // ctx.log.warn
  | "E" // ctx.log.error
  | "F"; // finished: JSON TaskOutcome

export const FRAME_HEADER = 9;

/** What a task sees as `ctx`, minus `log` and `signal`. */
export interface TaskContextData {
  bizdate: string;
  cyctime: string;
  params: Record<string, string>;
  attempt: number;
  workflow: string;
  task: string;
}

export interface RunRequest {
  type: "run";
  /** Tags every frame of this task; never 0. */
  seq: number;
  /** Absolute path of the run's CommonJS bundle. */
  bundle: string;
  workflow: string;
  task: string;
  ctx: TaskContextData;
  /** Set in process.env while the task runs (SPEC §1 variables and the attempt marker). */
  env: Record<string, string>;
}

export type WorkerRequest = RunRequest;

/** The `F` frame. */
export interface TaskOutcome {
  ok: boolean;
  error?: string;
  /** The task never ran: its bundle or definition could not be found. */
  setup?: boolean;
  /** The worker's state is suspect (an uncaught exception); do not reuse it. */
  retire?: boolean;
}

/** Environment variable through which the pool passes the kill grace period. */
export const GRACE_ENV = "TIDEFLOW_WORKER_GRACE_MS";

const FRAME_FD = 3;

interface RunningTask {
  seq: number;
  controller: AbortController;
  /** Fails the task with an uncaught exception / unhandled rejection. */
  crash(error: unknown): void;
  /** `crash` was called: the worker's state is suspect. */
  crashed: boolean;
}

class SetupError extends Error {}

// Mutable state. Invariants: `current` is set from a run request until its outcome is
// sent; `terminating` once SIGTERM arrived (or the runner went away), after which no
// outcome is sent and the process ends.
let current: RunningTask | undefined;
let terminating = false;
let runnerGone = false;
let graceTimer: NodeJS.Timeout | undefined;
const graceMs = Number(process.env[GRACE_ENV]) || 5000;
const context = new AsyncLocalStorage<number>();
let scratch = Buffer.allocUnsafe(64 * 1024);
const pause = new Int32Array(new SharedArrayBuffer(4));

function writeFully(buf: Buffer, length: number): void {
  let off = 0;
  while (off < length) {
    try {
      off += writeSync(FRAME_FD, buf, off, length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
        Atomics.wait(pause, 0, 0, 1);
        continue;
      }
      lostRunner();
      return;
    }
  }
}

function send(kind: FrameKind, seq: number, payload: string | Uint8Array): void {
  const max = FRAME_HEADER + (typeof payload === "string" ? payload.length * 3 : payload.length);
  if (max > scratch.length && max <= 1024 * 1024) scratch = Buffer.allocUnsafe(1 << Math.ceil(Math.log2(max)));
  const buf = max <= scratch.length ? scratch : Buffer.allocUnsafe(max);
  let n = payload.length;
  if (typeof payload === "string") n = buf.write(payload, FRAME_HEADER, "utf8");
  else buf.set(payload, FRAME_HEADER);
  buf[0] = kind.charCodeAt(0);
  buf.writeUInt32LE(seq, 1);
  buf.writeUInt32LE(n, 5);
  writeFully(buf, FRAME_HEADER + n);
}

/** Which task's output this is: the async context it came from, else the running task. */
function outputSeq(): number | undefined {
  const seq = context.getStore() ?? current?.seq;
  return seq !== undefined && seq === current?.seq ? seq : undefined;
}

function routeStream(stream: NodeJS.WriteStream, kind: "o" | "e"): void {
  stream.write = function write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (typeof encoding === "function") cb = encoding;
    const seq = outputSeq();
    if (seq !== undefined) {
      if (typeof chunk === "string") {
        send(kind, seq, typeof encoding === "string" && encoding !== "utf8" && encoding !== "utf-8" ? Buffer.from(chunk, encoding as BufferEncoding) : chunk);
      } else if (chunk instanceof Uint8Array) {
        send(kind, seq, chunk);
      } else {
        send(kind, seq, String(chunk));
      }
    }
    if (typeof cb === "function") process.nextTick(cb as () => void);
    return true;
  } as typeof stream.write;
}

/**
 * A failed task's stack as its author wants it: the frames of the task's code (source
 * mapped to the .flow.ts), without the worker's own frames and Node's below them.
 */
function taskStack(stack: string): string {
  const lines = stack.split("\n");
  const ours = lines.findIndex((l) => l.includes(__filename));
  return (ours > 0 ? lines.slice(0, ours) : lines).join("\n");
}

function logger(seq: number): Record<"debug" | "info" | "warn" | "error", (message: unknown, ...rest: unknown[]) => void> {
  const at = (kind: FrameKind) => (message: unknown, ...rest: unknown[]) => {
    if (current?.seq === seq) send(kind, seq, format(message, ...rest));
  };
  return { debug: at("D"), info: at("I"), warn: at("W"), error: at("E") };
}

/** Sets the task's variables in process.env; returns what puts the previous values back. */
function applyEnv(env: Record<string, string>): () => void {
  const previous: [string, string | undefined][] = [];
  for (const [name, value] of Object.entries(env)) {
    previous.push([name, process.env[name]]);
    process.env[name] = value;
  }
  return () => {
    for (const [name, value] of previous) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

interface TaskDefLike {
  kind?: unknown;
  id?: unknown;
  run?: unknown;
}

function findTask(request: RunRequest): (ctx: unknown) => unknown {
  if (!existsSync(request.bundle)) {
    throw new SetupError(`the run's bundle ${request.bundle} does not exist (the runner bundles the workflow file when the run is created)`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(request.bundle) as { default?: unknown };
  const wf = (mod.default ?? mod) as { kind?: unknown; id?: unknown; options?: { tasks?: unknown } };
  if (wf?.kind !== "workflow") throw new SetupError(`${request.bundle} has no default-exported workflow(...)`);
  if (wf.id !== request.workflow) throw new SetupError(`the bundle defines workflow ${String(wf.id)}, expected ${request.workflow}`);
  const tasks = Array.isArray(wf.options?.tasks) ? (wf.options.tasks as TaskDefLike[]) : [];
  const def = tasks.find((t) => t?.id === request.task);
  if (!def) throw new SetupError(`workflow ${request.workflow} has no task ${request.task}`);
  if (def.kind !== "task" || typeof def.run !== "function") {
    throw new SetupError(`task ${request.task} of workflow ${request.workflow} is not a TS task (kind ${String(def.kind)})`);
  }
  return def.run as (ctx: unknown) => unknown;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return `non-Error value thrown: ${format(error)}`;
}

async function run(request: RunRequest): Promise<void> {
  const { seq } = request;
  if (current || terminating) {
    const outcome: TaskOutcome = { ok: false, setup: true, retire: true, error: "the worker was not idle" };
    send("F", seq, JSON.stringify(outcome));
    return;
  }
  const controller = new AbortController();
  let crash: (error: unknown) => void = () => {};
  const crashed = new Promise<never>((_, reject) => (crash = reject));
  crashed.catch(() => {}); // it only matters while raced below
  const task: RunningTask = { seq, controller, crash, crashed: false };
  current = task;
  const restoreEnv = applyEnv(request.env);
  let outcome: TaskOutcome;
  try {
    const fn = context.run(seq, () => findTask(request));
    const ctx = Object.freeze({
      ...request.ctx,
      params: Object.freeze({ ...request.ctx.params }),
      log: Object.freeze(logger(seq)),
      signal: controller.signal,
    });
    await Promise.race([context.run(seq, async () => fn(ctx)), crashed]);
    outcome = { ok: true };
  } catch (e) {
    if (e instanceof SetupError) {
      outcome = { ok: false, setup: true, error: e.message };
    } else {
      send("E", seq, e instanceof Error && e.stack ? taskStack(e.stack) : format(e));
      outcome = { ok: false, error: describe(e) };
    }
  } finally {
    restoreEnv();
  }
  if (terminating) return die();
  if (task.crashed) outcome.retire = true;
  send("F", seq, JSON.stringify(outcome));
  current = undefined;
}

function onUncaught(error: unknown): void {
  if (current && !current.crashed) {
    current.crashed = true;
    current.crash(error);
    return;
  }
  if (current) return; // the task already failed; its outcome is on its way
  // Nothing of ours is running: leftover code of an earlier task broke the worker.
  process.exit(70);
}

function die(): never {
  if (runnerGone) {
    try {
      process.kill(-process.pid, "SIGKILL");
    } catch {
      // not a group leader (started by hand): fall through
    }
  }
  process.removeAllListeners("SIGTERM");
  process.kill(process.pid, "SIGTERM");
  // SIGTERM is delivered asynchronously; make sure nothing else runs meanwhile.
  return process.exit(143);
}

/**
 * SIGTERM: abort the task; `run` ends the process once it settles. The runner SIGKILLs the
 * group after its grace period if the task does not settle; only without a runner does
 * the worker keep that time itself.
 */
function terminate(): void {
  if (!terminating) {
    terminating = true;
    if (!current) die();
    current.controller.abort(new Error("the task was killed"));
  }
  if (runnerGone && !graceTimer) graceTimer = setTimeout(die, graceMs);
}

function lostRunner(): void {
  if (runnerGone) return;
  runnerGone = true;
  try {
    process.kill(-process.pid, "SIGTERM"); // the task's children too; our handler calls terminate()
  } catch {
    terminate();
  }
}

function main(): void {
  process.title = "tideflow-worker";
  delete process.env[GRACE_ENV];
  process.setSourceMapsEnabled(true);
  routeStream(process.stdout, "o");
  routeStream(process.stderr, "e");
  process.on("SIGTERM", terminate);
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
  process.on("disconnect", lostRunner);
  process.on("message", (request: WorkerRequest) => {
    if (request?.type === "run") void run(request);
  });
  send("R", 0, JSON.stringify({ pid: process.pid }));
}

if (typeof process.send === "function") main();
