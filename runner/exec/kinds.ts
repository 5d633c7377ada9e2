/**
 * The executor seam. The executor (./executor.ts) owns what every attempt has in common —
 * its log, the line saying how it ended, kill requests, reporting exactly one end — and
 * hands the running itself to an executor kind picked from a table: `shell` (bash, local
 * processes, ./shell-kind.ts) and `ts` (the warm worker pool, ./ts-kind.ts). A kind says
 * where an attempt runs in an `AttemptHandle`, which the journal keeps, so that a later
 * runner gives the attempt back to the kind that started it (`adopt`). A remote kind (a
 * queue of workers on other machines) is one more entry: the engine and the daemon do not
 * change.
 */
import type { AttemptExit, AttemptHandle, StartEffect } from "../../protocol/runner";
import type { AttemptLog } from "../logs";

/** What a kind gets for one attempt. */
export interface AttemptContext {
  readonly effect: StartEffect;
  /** The attempt's log: output goes here (`chunk`, `write`). The executor closes it. */
  readonly log: AttemptLog;
  /** Where the log lives (`<…>/<task>.<n>.log`): files of the attempt may sit beside it. */
  readonly logPath: string;
  /** Every process of the attempt carries `TIDEFLOW_ATTEMPT_ID=<marker>`. */
  readonly marker: string;
  /** The attempt's process exists (journaled as its handle); `what` is said in its log. */
  spawned(handle: AttemptHandle, what: string): void;
  /** How the attempt ended; the first call counts. Output still to read goes in `drain` first. */
  ended(exit: AttemptExit): void;
}

/** What the executor can do with a running attempt. */
export interface AttemptControl {
  /** Ends the attempt's processes: SIGTERM, SIGKILL after the grace (then `onEscalate`). */
  kill(onEscalate: () => void): void;
  /** After the end, before the log is closed: the rest of the attempt's output into the log. */
  drain?(): Promise<void>;
  /** After the log is closed: the attempt's temporary files may go. */
  cleanup?(): void;
}

/** What every kind is made with. */
export interface KindEnvironment {
  /** The workspace root: the tasks' working directory. */
  root: string;
  /** `<root>/.tideflow` */
  stateDir: string;
  /** The runner's environment when it started; each attempt adds its own variables. */
  baseEnv: NodeJS.ProcessEnv;
  /** SIGTERM → SIGKILL delay. */
  killGraceMs: number;
}

export interface ExecutorKind {
  /** The name in the table and in the handles it makes. */
  readonly name: string;
  /** Starts the attempt; nothing throws (a failure to start is `ctx.ended` with `error`). */
  start(ctx: AttemptContext): AttemptControl;
  /**
   * Takes over an attempt a previous runner started, from its journaled handle. Undefined
   * when this kind cannot (the attempt then runs again as a failover attempt); when the
   * attempt already ended, `ctx.ended` is called with what is known of it.
   */
  adopt?(ctx: AttemptContext, handle: AttemptHandle): AttemptControl | undefined;
  /** The restarted runner adopted what it could: what no attempt owns may go. */
  recovered?(): void;
  /** Gets ready for attempts soon to come (a spare worker). */
  prewarm?(): void;
  /** Every attempt has ended; release what the kind holds (helpers, workers). */
  close(): Promise<void>;
}

/** Makes a kind; the table of kinds is `{ name: factory }`. */
export type KindFactory = (env: KindEnvironment) => ExecutorKind;

/** `<instanceId>/<task>/<attempt>`: the value of `TIDEFLOW_ATTEMPT_ID` in every process of the attempt. */
export function attemptMarker(a: { instanceId: string; task: string; attempt: number }): string {
  return `${a.instanceId}/${a.task}/${a.attempt}`;
}
