/**
 * A TS task worker (dist/worker.js): a long-lived Node process forked by the runner's pool
 * (`runner/exec/pool.ts`), leader of its own process group, running one task at a time.
 *
 * Channels:
 * - runner → worker: the IPC channel, `WorkerRequest` messages.
 * - worker → runner: frames on fd 3 (`kind u8, seq u32le, length u32le, payload`), written
 *   with blocking `writeSync`. The messages, frame kinds and framing are in
 *   `protocol/worker.ts`, which the pool imports too. Everything the runner must see in order — console output,
 *   ctx.log entries, the task's end — goes through this one pipe, so the end of a task
 *   comes after all of its output; and when the runner stops reading (its log file is
 *   behind), the task blocks in `write` as it would on a full stdout pipe, so neither
 *   process buffers without bound. fd 3 is not inherited by the task's own children.
 * - fds 1 and 2 are pipes too: output that bypasses `process.stdout` (children spawned
 *   with `stdio: "inherit"`, native code) reaches the task's log, unordered with the rest.
 *
 * Attribution: each task runs inside an AsyncLocalStorage context holding its `seq`, so
 * code that runs after its attempt ended (a leftover callback) is known by that seq.
 *
 * Between attempts (docs/runner-tasks.md says what a task may rely on): before the task's
 * function runs, the worker notes globalThis's own properties (once per loaded bundle),
 * process listeners and the active handles. When it settles, timers it set that are still
 * pending and keep the process alive are cleared; handles still open then (sockets, child
 * processes, pending file operations, timers of `timers/promises`) make the worker retire
 * after it (`retire`). Right after its end is sent — while the runner records it, so off
 * the critical path (~0.1 ms) — globalThis, process listeners, process.env, the working
 * directory, the umask and process.exitCode are put back (env and cwd as the worker
 * started). A task that leaves something that cannot be put back (a non-configurable
 * global), or whose code still runs after its end and shows it — throws, prints, calls
 * ctx.log, sets a timer — is reported (`X` frame, blamed on that attempt in runner.log),
 * never fails the task running then, and taints the worker: it finishes its current task,
 * declines the next (`declined`: the pool runs it elsewhere) and is retired. The workflow
 * file's top-level code runs once per worker for a run's bundle, outside any attempt:
 * what it sets up stays.
 *
 * Ending: SIGTERM (the runner kills the group) aborts `ctx.signal`; once the task settles,
 * or after the grace period, the worker re-raises SIGTERM on itself, so the runner sees the
 * attempt end by signal. A killed task never reports success. If the runner goes away
 * (IPC closed, fd 3 broken), the worker ends its whole group the same way, then SIGKILLs it.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { existsSync, writeSync } from "node:fs";
import { format } from "node:util";
import { FRAME_HEADER, GRACE_ENV, LOG_FRAME, writeFrameHeader, type FrameKind, type RunRequest, type TaskOutcome, type WorkerRequest } from "../protocol/worker";

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
/** Code of an ended attempt ran (or code we cannot place): no further task may run here. */
let tainted = false;
/** Seqs already reported with an `X` frame: one report per attempt. */
const reported = new Set<number>();
/** The run's bundle is being required: timers set by its top-level code are the worker's. */
let loading = false;
/** Pending timers set by the running attempt (pruned of fired ones as it grows). */
let attemptTimers = new Set<NodeJS.Timeout | NodeJS.Immediate>();
// The worker's own timers, never tracked.
const realSetTimeout = globalThis.setTimeout;
const realSetImmediate = globalThis.setImmediate;
// As the worker started; every attempt starts from these.
let pristineEnv: Record<string, string | undefined> = {};
let pristineCwd = "";
let pristineUmask = 0;
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
  writeFrameHeader(buf, kind, seq, n);
  writeFully(buf, FRAME_HEADER + n);
}

/**
 * The ended attempt `seq` (0: one we cannot name) left the worker unfit for another task:
 * tell the runner once (`text` follows "attempt <marker> " in its log) and take no further task.
 */
function unfit(seq: number, text: string): void {
  tainted = true;
  if (reported.has(seq)) return;
  reported.add(seq);
  send("X", seq, text);
}

/** Code of the ended attempt `seq` ran and `did` something. */
function leftover(seq: number, did: string): void {
  unfit(seq, `had ended, but its code still ran and ${did}`);
}

/** Which task's output this is: the async context it came from, else the running task; undefined: dropped. */
function outputSeq(what: string): number | undefined {
  const store = context.getStore();
  if (store !== undefined && store !== current?.seq) {
    leftover(store, what);
    return undefined;
  }
  return current?.seq;
}

function routeStream(stream: NodeJS.WriteStream, kind: "o" | "e"): void {
  stream.write = function write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (typeof encoding === "function") cb = encoding;
    const seq = outputSeq(kind === "o" ? "wrote to stdout" : "wrote to stderr");
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
    else leftover(seq, "called ctx.log");
  };
  return { debug: at(LOG_FRAME.debug), info: at(LOG_FRAME.info), warn: at(LOG_FRAME.warn), error: at(LOG_FRAME.error) };
}

/** Sets the task's variables in process.env (`restoreProcess` takes them away again). */
function applyEnv(env: Record<string, string>): void {
  for (const [name, value] of Object.entries(env)) process.env[name] = value;
}

type Timer = NodeJS.Timeout | NodeJS.Immediate;

/**
 * Notes a timer made by `setTimeout`/`setInterval`/`setImmediate` as the running attempt's,
 * to be cleared when it ends. Timers of the worker itself and of a bundle's top-level code
 * are not noted; one made by an ended attempt's code is cleared at once and reported.
 */
function track<T extends Timer>(timer: T, clear: (t: T) => void): T {
  if (loading) return timer;
  const seq = context.getStore() ?? current?.seq;
  if (seq === undefined) return timer;
  if (seq !== current?.seq) {
    clear(timer);
    leftover(seq, "set a timer");
    return timer;
  }
  attemptTimers.add(timer);
  // A task that makes many short timers: drop the fired ones (amortised: the set only grows).
  if (attemptTimers.size >= 1024 && (attemptTimers.size & 1023) === 0) {
    for (const t of attemptTimers) if ((t as { _destroyed?: boolean })._destroyed) attemptTimers.delete(t);
  }
  return timer;
}

function wrapTimer<F extends (...args: never[]) => Timer>(original: F, clear: (t: ReturnType<F>) => void): F {
  const wrapped = function (this: unknown, ...args: unknown[]): Timer {
    return track(Reflect.apply(original, this, args) as ReturnType<F>, clear);
  };
  // `name`, and util.promisify.custom (util.promisify(setTimeout) is timers/promises').
  for (const key of Reflect.ownKeys(original)) {
    if (key === "length" || key === "prototype") continue;
    const d = Reflect.getOwnPropertyDescriptor(original, key);
    if (d) Reflect.defineProperty(wrapped, key, d);
  }
  return wrapped as unknown as F;
}

/** The global timer functions and `node:timers`' (one object; bundles `require` it) track the attempt's timers. */
function installTimers(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const timers = require("node:timers") as Record<string, unknown>;
  const setTimeoutTracked = wrapTimer(globalThis.setTimeout, (t) => clearTimeout(t));
  const setIntervalTracked = wrapTimer(globalThis.setInterval, (t) => clearInterval(t));
  const setImmediateTracked = wrapTimer(globalThis.setImmediate, (t) => clearImmediate(t));
  globalThis.setTimeout = setTimeoutTracked;
  globalThis.setInterval = setIntervalTracked;
  globalThis.setImmediate = setImmediateTracked;
  timers.setTimeout = setTimeoutTracked;
  timers.setInterval = setIntervalTracked;
  timers.setImmediate = setImmediateTracked;
}

/**
 * globalThis's own properties, as attempts start from them. `keys` in `Reflect.ownKeys`
 * order; data properties' values and accessors' functions side by side, so that "nothing
 * changed" (the usual case) is checked without making a descriptor per data property.
 */
interface Globals {
  descriptors: Map<PropertyKey, PropertyDescriptor>;
  keys: PropertyKey[];
  dataKeys: PropertyKey[];
  dataValues: unknown[];
  accessorKeys: PropertyKey[];
  accessors: PropertyDescriptor[];
}

/** What an attempt started from, taken once its bundle is loaded, just before its function runs. */
interface Snapshot {
  globals: Globals;
  listeners: Map<string | symbol, ReturnType<typeof process.rawListeners>>;
  /** Active handles and requests by type (process.getActiveResourcesInfo()). */
  resources: Map<string, number>;
}

function resourceCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

function snapshotGlobals(): Globals {
  const g: Globals = { descriptors: new Map(), keys: Reflect.ownKeys(globalThis), dataKeys: [], dataValues: [], accessorKeys: [], accessors: [] };
  for (const key of g.keys) {
    const d = Reflect.getOwnPropertyDescriptor(globalThis, key)!;
    g.descriptors.set(key, d);
    if ("value" in d) {
      g.dataKeys.push(key);
      g.dataValues.push(d.value);
    } else {
      g.accessorKeys.push(key);
      g.accessors.push(d);
    }
  }
  return g;
}

/** Same keys in the same order, same data values, same accessors (a redefinition that changes only flags is not seen). */
function globalsUnchanged(g: Globals): boolean {
  const keys = Reflect.ownKeys(globalThis);
  if (keys.length !== g.keys.length) return false;
  for (let i = 0; i < keys.length; i++) if (keys[i] !== g.keys[i]) return false;
  const object = globalThis as unknown as Record<PropertyKey, unknown>;
  for (let i = 0; i < g.dataKeys.length; i++) if (!Object.is(object[g.dataKeys[i]], g.dataValues[i])) return false;
  for (let i = 0; i < g.accessorKeys.length; i++) {
    const d = Reflect.getOwnPropertyDescriptor(globalThis, g.accessorKeys[i]);
    if (!d || d.get !== g.accessors[i].get || d.set !== g.accessors[i].set) return false;
  }
  return true;
}

/**
 * globalThis as attempts start from it: taken when a bundle was loaded (its top-level code
 * may add globals), reused otherwise — each attempt's end puts globalThis back to it, so
 * taking it again would find the same.
 */
let globalsBaseline: Globals | undefined;

function snapshot(bundleLoaded: boolean): Snapshot {
  if (!globalsBaseline || bundleLoaded) globalsBaseline = snapshotGlobals();
  const listeners: Snapshot["listeners"] = new Map();
  for (const name of process.eventNames()) listeners.set(name, process.rawListeners(name));
  return { globals: globalsBaseline, listeners, resources: resourceCounts() };
}

/** Handle types there are more of than at `before`, e.g. `["TCPWrap", "FSReqCallback ×2"]`. */
function extraResources(before: Map<string, number>): string[] {
  const extra: string[] = [];
  for (const [type, n] of resourceCounts()) {
    const more = n - (before.get(type) ?? 0);
    if (more > 0) extra.push(more > 1 ? `${type} ×${more}` : type);
  }
  return extra;
}

function sameDescriptor(a: PropertyDescriptor, b: PropertyDescriptor): boolean {
  return (
    Object.is(a.value, b.value) &&
    a.get === b.get &&
    a.set === b.set &&
    a.writable === b.writable &&
    a.enumerable === b.enumerable &&
    a.configurable === b.configurable
  );
}

/** Clears the attempt's pending timers that keep the process alive; returns how many. Unref'd ones stay (see the header). */
function clearAttemptTimers(): number {
  let cleared = 0;
  for (const t of attemptTimers) {
    if ((t as { _destroyed?: boolean })._destroyed || !t.hasRef()) continue;
    cleared++;
    if ("refresh" in t) clearTimeout(t);
    else clearImmediate(t);
  }
  attemptTimers = new Set();
  return cleared;
}

/**
 * Puts the process back as the attempt found it (globals, listeners) or as the worker
 * started (env, cwd, umask, exitCode). Returns what could not be put back.
 */
function restoreProcess(before: Snapshot | undefined): string[] {
  const failed: string[] = [];
  if (before && !globalsUnchanged(before.globals)) {
    const { descriptors } = before.globals;
    for (const key of Reflect.ownKeys(globalThis)) {
      if (!descriptors.has(key) && !Reflect.deleteProperty(globalThis, key)) failed.push(`global ${String(key)}`);
    }
    for (const [key, d] of descriptors) {
      const now = Reflect.getOwnPropertyDescriptor(globalThis, key);
      if (now && sameDescriptor(now, d)) continue;
      if (!Reflect.defineProperty(globalThis, key, d)) failed.push(`global ${String(key)}`);
    }
  }
  if (before) {
    for (const name of process.eventNames()) {
      const kept = before.listeners.get(name) ?? [];
      for (const l of process.rawListeners(name)) {
        if (!kept.includes(l)) process.removeListener(name, l as (...args: unknown[]) => void);
      }
    }
    for (const [name, kept] of before.listeners) {
      const now = process.rawListeners(name);
      for (const l of kept) if (!now.includes(l)) process.on(name, l as (...args: unknown[]) => void);
    }
  }
  const env = process.env;
  for (const name of Object.keys(env)) if (!Object.hasOwn(pristineEnv, name)) delete env[name];
  for (const name in pristineEnv) if (env[name] !== pristineEnv[name]) env[name] = pristineEnv[name];
  if (process.cwd() !== pristineCwd) {
    try {
      process.chdir(pristineCwd);
    } catch (e) {
      failed.push(`the working directory (${(e as Error).message})`);
    }
  }
  process.umask(pristineUmask);
  process.exitCode = undefined;
  return failed;
}

/** Resolves after the event loop turned (an Immediate) or `ms`; a continuation of it sees no timer of its own as active. */
function nextTurn(ms: number): Promise<void> {
  return new Promise((resolve) => (ms === 0 ? realSetImmediate(resolve) : realSetTimeout(resolve, ms)));
}

/**
 * After the attempt's function settled, while it is still the running one (its late output
 * still goes to its log): clears its timers and waits a moment for handles it was closing.
 * Returns whether the worker can be reused; `notes` say what was done, for the attempt's
 * log. (The rest of the cleanup, `restoreProcess`, runs after its end is sent.)
 */
async function cleanUp(before: Snapshot | undefined, quick: boolean, notes: string[]): Promise<boolean> {
  let reusable = true;
  const cleared = clearAttemptTimers();
  if (cleared > 0) notes.push(`cleared ${cleared} pending timer${cleared > 1 ? "s" : ""} it set (a task's timers end with it)`);
  if (before && !quick) {
    // A file closing or a child being reaped right after the task settled is not a leak:
    // look again after a turn of the event loop, then after a few ms.
    let extra = extraResources(before.resources);
    for (const ms of [0, 5, 25]) {
      if (extra.length === 0) break;
      await nextTurn(ms);
      clearAttemptTimers(); // ones its late callbacks set meanwhile
      extra = extraResources(before.resources);
    }
    if (extra.length > 0) {
      notes.push(`it left ${extra.join(", ")} open: its worker is not reused`);
      reusable = false;
    }
  }
  clearAttemptTimers();
  return reusable;
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
  if (tainted) {
    const outcome: TaskOutcome = { ok: false, declined: true, retire: true, error: "code of an ended attempt ran in this worker" };
    send("F", seq, JSON.stringify(outcome));
    return;
  }
  const controller = new AbortController();
  let crash: (error: unknown) => void = () => {};
  const crashed = new Promise<never>((_, reject) => (crash = reject));
  crashed.catch(() => {}); // it only matters while raced below
  const task: RunningTask = { seq, controller, crash, crashed: false };
  current = task;
  applyEnv(request.env);
  let outcome: TaskOutcome;
  let before: Snapshot | undefined;
  try {
    let fn: (ctx: unknown) => unknown;
    // The bundle's top-level code belongs to no attempt: its timers, globals and
    // listeners stay (its output, while it loads, is this attempt's).
    loading = true;
    const bundleLoaded = require.cache[request.bundle] === undefined;
    try {
      fn = context.exit(() => findTask(request));
    } finally {
      loading = false;
    }
    const ctx = Object.freeze({
      ...request.ctx,
      params: Object.freeze({ ...request.ctx.params }),
      log: Object.freeze(logger(seq)),
      signal: controller.signal,
    });
    before = snapshot(bundleLoaded);
    await Promise.race([context.run(seq, async () => fn(ctx)), crashed]);
    outcome = { ok: true };
  } catch (e) {
    if (e instanceof SetupError) {
      outcome = { ok: false, setup: true, error: e.message };
    } else {
      send("E", seq, errorText(e));
      outcome = { ok: false, error: describe(e) };
    }
  }
  if (terminating) return die();
  const notes: string[] = [];
  // A crashed worker is retired anyway: no need to wait for its handles.
  const reusable = await cleanUp(before, task.crashed, notes);
  if (terminating) return die();
  if (task.crashed || tainted || !reusable) outcome.retire = true;
  if (notes.length > 0) send("W", seq, `tideflow: when the task ended: ${notes.join("; ")}`);
  send("F", seq, JSON.stringify(outcome));
  current = undefined;
  // Off the critical path: the runner records the end meanwhile, and the next request is
  // read only after this (~0.1 ms) has run.
  const failed = restoreProcess(before);
  if (failed.length > 0) {
    globalsBaseline = undefined;
    unfit(seq, `left ${failed.join(", ")} in a state the worker cannot put back`);
  }
}

/** A failed task's error as its author wants to read it: the message, and the task's own frames. */
function errorText(error: unknown): string {
  return error instanceof Error && error.stack ? taskStack(error.stack) : format(error);
}

/**
 * An uncaught exception or unhandled rejection fails the attempt whose code threw it — the
 * running one if the async context says so or says nothing. One from an ended attempt's
 * code is reported as that attempt's, and the running task goes on.
 */
function onUncaught(error: unknown): void {
  const seq = context.getStore();
  if (current && (seq === undefined || seq === current.seq)) {
    if (!current.crashed) {
      current.crashed = true;
      current.crash(error);
    }
    return; // the task already failed; its outcome is on its way
  }
  leftover(seq ?? 0, `threw ${errorText(error)}`);
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
  if (runnerGone && !graceTimer) graceTimer = realSetTimeout(die, graceMs);
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
  pristineEnv = { ...process.env };
  pristineCwd = process.cwd();
  pristineUmask = process.umask();
  process.setSourceMapsEnabled(true);
  installTimers();
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
