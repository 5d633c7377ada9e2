/**
 * The channel between the runner's TS worker pool (`runner/exec/pool.ts`) and a TS task
 * worker (`runner/worker.ts`, dist/worker.js). The two sides are different bundles in
 * different processes: this module is all they share, so the worker's code never loads in
 * the runner and the pool's never in a worker.
 *
 * - runner → worker: the IPC channel (`serialization: "json"`), `WorkerRequest` messages.
 *   There is no terminate request: the pool ends a worker by signalling its process group
 *   (SIGTERM, SIGKILL after the grace period it passed in `GRACE_ENV`).
 * - worker → runner: frames on fd 3, `kind u8, seq u32le, length u32le, payload`
 *   (`FRAME_HEADER` bytes, then `length` bytes). Why one ordered pipe, written with
 *   blocking writes, is said in `runner/worker.ts`.
 */

/** Frame kinds, worker → runner. */
export type FrameKind =
  | "R" // ready: JSON { pid }
  | "o" // stdout text
  | "e" // stderr text
  | "D" // ctx.log.debug
  | "I" // ctx.log.info
  | "W" // ctx.log.warn
  | "E" // ctx.log.error
  | "X" // code of the ended attempt `seq` (0: unknown) still ran: text saying what it did
  | "F"; // finished: JSON TaskOutcome

/** Bytes before a frame's payload: kind (1), seq (4), payload length (4). */
export const FRAME_HEADER = 9;

export type TaskLogLevel = "debug" | "info" | "warn" | "error";

/** The frame kind of each ctx.log level. */
export const LOG_FRAME: Record<TaskLogLevel, FrameKind> = { debug: "D", info: "I", warn: "W", error: "E" };

/** The ctx.log level of a frame kind; absent: not a log frame. */
export const LOG_FRAME_LEVEL: Partial<Record<string, TaskLogLevel>> = { D: "debug", I: "info", W: "warn", E: "error" };

/** Environment variable through which the pool passes the kill grace period (ms) to the worker. */
export const GRACE_ENV = "TIDEFLOW_WORKER_GRACE_MS";

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

/** The `F` frame's payload. */
export interface TaskOutcome {
  ok: boolean;
  error?: string;
  /** The task never ran: its bundle or definition could not be found. */
  setup?: boolean;
  /** The worker's state is suspect (an uncaught exception, handles left open); do not reuse it. */
  retire?: boolean;
  /** The task was not run: the worker is tainted by an ended attempt's code; run it on another. */
  declined?: boolean;
}

/**
 * Writes a frame's header at the start of `buf`; the `length` payload bytes follow it at
 * `FRAME_HEADER`. (The worker fills the payload itself, into a buffer it reuses.)
 */
export function writeFrameHeader(buf: Buffer, kind: FrameKind, seq: number, length: number): void {
  buf[0] = kind.charCodeAt(0);
  buf.writeUInt32LE(seq, 1);
  buf.writeUInt32LE(length, 5);
}

/**
 * Calls `onFrame` for each whole frame at the start of `buf`, in order, and returns how
 * many bytes they took: the rest is the start of a frame still to come. `payload` is a
 * view into `buf`.
 */
export function readFrames(buf: Buffer, onFrame: (kind: string, seq: number, payload: Buffer) => void): number {
  let off = 0;
  while (buf.length - off >= FRAME_HEADER) {
    const length = buf.readUInt32LE(off + 5);
    const end = off + FRAME_HEADER + length;
    if (end > buf.length) break;
    onFrame(String.fromCharCode(buf[off]), buf.readUInt32LE(off + 1), buf.subarray(off + FRAME_HEADER, end));
    off = end;
  }
  return off;
}
