/**
 * Attempt logs: one file per attempt, `<stateDir>/logs/<instanceId>/<task>.<attempt>.log`,
 * one entry per line in the format of `syntaxes/tideflow-log.tmLanguage.json`:
 * `2026-11-20T02:30:01.123+08:00 stdout INFO message` (local zone, ms, offset).
 *
 * Invariants:
 * - Lines of one attempt reach the file in the order they were given, in batches: lines
 *   accumulate and one `write` takes all of them — at the next event-loop turn once 64 KiB
 *   wait, else within 5 ms, and at once on `close` (never one syscall per line; at most
 *   one write in flight per file).
 * - Raw output is formatted as bytes, never decoded: each line's bytes are copied after
 *   the prefix into a reused buffer, so a task printing 200,000 lines costs no strings
 *   and no garbage. Strings are made only for subscribers, after the write.
 * - Subscribers get a batch only after its write completed, so a line a client saw is in
 *   the OS and survives `kill -9` of the runner.
 * - Memory is bounded by the caller honouring backpressure: `write`/`chunk` return false
 *   once more than `HIGH_WATER` bytes wait for the disk, and `drained()` resolves when
 *   the backlog is low again. A partial line longer than `MAX_PARTIAL` is cut into a line.
 * - Nothing here throws at the caller: a file that cannot be opened or written is reported
 *   once through `onError`, and that attempt's later lines are dropped.
 */
import * as fs from "node:fs";
import { dirname, join } from "node:path";
import { isoWithOffset, wallClock } from "../common/zone";
import { attemptLogPath, logsDir } from "../common/log-files";

export type LogStream = "stdout" | "stderr" | "system";
export type LogLevel = "DEBUG" | "INFO" | "WARN" | "ERROR";

export interface AttemptKey {
  runId: string;
  instanceId: string;
  task: string;
  attempt: number;
}

export interface LogFilter {
  instanceId: string;
  task: string;
  /** Undefined: every attempt of the task instance. */
  attempt?: number;
}

/**
 * Gets each written batch: its formatted lines as one text, each line ending in "\n"
 * (one string per batch, not per line: a loud task makes no garbage), and `end`, the file's size
 * (byte offset) just after the batch — a client that read the file up to `size` with
 * `read` skips batches with `end <= size`.
 */
export type LogListener = (key: AttemptKey, text: string, end: number) => void;

/**
 * Modes of everything under `.tideflow/`: the owner's only (logs hold whatever tasks print).
 * The umask can only narrow them.
 */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/**
 * At runner start: makes a `.tideflow/` that is reachable by others (made by hand, or by an
 * older runner under an existing folder) private again — the folder itself, and, once,
 * everything in it (later starts find the folder 0700 and look no further). Returns what
 * it did, for the runner's log; nothing when there was nothing to do.
 */
export function tightenStateDir(stateDir: string): string[] {
  let mode: number;
  try {
    mode = fs.statSync(stateDir).mode & 0o777;
  } catch {
    return [];
  }
  if ((mode & 0o077) === 0) return [];
  let count = 0;
  const failed: string[] = [];
  const tighten = (path: string, dir: boolean): void => {
    try {
      fs.chmodSync(path, dir ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE);
      count++;
    } catch (e) {
      failed.push(`${path}: ${(e as Error).message}`);
    }
  };
  tighten(stateDir, true);
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      failed.push(`${dir}: ${(e as Error).message}`);
      return;
    }
    for (const e of entries) {
      if (e.isSymbolicLink()) continue; // chmod would follow it out of .tideflow/
      const path = join(dir, e.name);
      tighten(path, e.isDirectory());
      if (e.isDirectory()) walk(path);
    }
  };
  walk(stateDir);
  const lines = [`tightened ${stateDir} to 0700 (it was ${mode.toString(8).padStart(4, "0")}) and ${count - 1} entr${count - 1 === 1 ? "y" : "ies"} in it to 0700/0600: the runner's state and logs are private`];
  if (failed.length > 0) lines.push(`could not tighten ${failed.length} entr${failed.length === 1 ? "y" : "ies"}: ${failed.slice(0, 5).join("; ")}`);
  return lines;
}

/** Bytes waiting for the disk above which `write`/`chunk` ask the producer to pause. */
export const HIGH_WATER = 4 * 1024 * 1024;
/** `drained()` resolves once the backlog is at or below this. */
const LOW_WATER = 1024 * 1024;
/** Pending bytes written at the next turn; less waits up to `FLUSH_DELAY_MS` for more. */
const FLUSH_BYTES = 64 * 1024;
const FLUSH_DELAY_MS = 5;
/** A closing log with at most this much pending writes it synchronously (`writeLastSync`). */
const SYNC_CLOSE_MAX = 64 * 1024;
/** Pending-bytes buffers start at this size and grow as needed. */
const BUFFER_MIN = 16 * 1024;
/** A buffer larger than this is not kept for reuse once written (memory shrinks after a burst). */
const BUFFER_KEEP_MAX = 1024 * 1024;
/** A line still without "\n" after this many bytes is logged as it is. */
const MAX_PARTIAL = 256 * 1024;

// Formatting a timestamp is on the hot path (every chunk of output): the zone conversion
// runs once per second of output, the milliseconds once per millisecond.
let stampMs = Number.NaN;
let stamp = "";
let stampSecond = Number.NaN;
let secondHead = "";
let secondOffset = "";

/** `2026-11-20T02:30:01.123+08:00`: `at` in the machine's zone. */
export function formatTimestamp(at: number): string {
  if (at === stampMs) return stamp;
  const second = Math.floor(at / 1000) * 1000;
  if (second !== stampSecond) {
    const wall = wallClock(second, undefined);
    const iso = isoWithOffset(wall, wall - second);
    secondHead = iso.slice(0, 19);
    secondOffset = iso.slice(19);
    stampSecond = second;
  }
  const ms = at - second;
  stamp = `${secondHead}.${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}${secondOffset}`;
  stampMs = at;
  return stamp;
}

/** One log entry, without the trailing "\n". */
export function formatLogLine(at: number, stream: LogStream, level: LogLevel, text: string): string {
  return `${formatTimestamp(at)} ${stream} ${level} ${text}`;
}

interface Subscription {
  attempt: number | undefined;
  listener: LogListener;
}

export interface LogStoreOptions {
  /** A log file could not be opened or written; its later lines are dropped. */
  onError?: (key: AttemptKey, error: Error) => void;
}

export class LogStore {
  readonly dir: string;
  private readonly onError: ((key: AttemptKey, error: Error) => void) | undefined;
  /** Directories created (or being created) by this store: one mkdir per instance, not per attempt. */
  private readonly dirs = new Map<string, Promise<void>>();
  /** By `instanceId \n task`. */
  private readonly subscriptions = new Map<string, Set<Subscription>>();

  constructor(stateDir: string, opts: LogStoreOptions = {}) {
    this.dir = logsDir(stateDir);
    this.onError = opts.onError;
  }

  pathFor(key: AttemptKey): string {
    return attemptLogPath(this.dir, key.instanceId, key.task, key.attempt);
  }

  /** Starts the attempt's log; the file is created (appended to, if it exists) in the background. */
  open(key: AttemptKey): AttemptLog {
    return new AttemptLog(this, key, this.pathFor(key));
  }

  subscribe(filter: LogFilter, listener: LogListener): () => void {
    const k = `${filter.instanceId}\n${filter.task}`;
    let set = this.subscriptions.get(k);
    if (!set) this.subscriptions.set(k, (set = new Set()));
    const sub: Subscription = { attempt: filter.attempt, listener };
    set.add(sub);
    return () => {
      set.delete(sub);
      if (set.size === 0 && this.subscriptions.get(k) === set) this.subscriptions.delete(k);
    };
  }

  /**
   * The file's whole lines from byte `offset` on; `size` is the byte offset just after the
   * returned text (where to read on from). A line being written at that moment is left
   * for the next read. `{ text: "", size: 0 }` when the file does not exist.
   */
  async read(key: AttemptKey, offset = 0): Promise<{ text: string; size: number }> {
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(this.pathFor(key), "r");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { text: "", size: 0 };
      throw e;
    }
    try {
      const { size } = await handle.stat();
      if (size <= offset) return { text: "", size: Math.min(offset, size) };
      const buffer = Buffer.allocUnsafe(size - offset);
      let filled = 0;
      while (filled < buffer.length) {
        const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      const whole = buffer.lastIndexOf(10, filled - 1) + 1;
      return { text: buffer.toString("utf8", 0, whole), size: offset + whole };
    } finally {
      await handle.close();
    }
  }

  /** @internal One mkdir per instance folder, not per attempt; a failed one is tried again next time. */
  ensureDir(dir: string): Promise<void> {
    let made = this.dirs.get(dir);
    if (!made) {
      made = fs.promises.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE }).then(() => undefined);
      made.catch(() => this.dirs.delete(dir)); // let a later attempt try again
      this.dirs.set(dir, made);
    }
    return made;
  }

  /** @internal Whether anyone subscribed to the attempt's task instance. */
  watched(key: AttemptKey): boolean {
    return this.subscriptions.has(`${key.instanceId}\n${key.task}`);
  }

  /** @internal */
  deliver(key: AttemptKey, text: string, end: number): void {
    const set = this.subscriptions.get(`${key.instanceId}\n${key.task}`);
    if (!set) return;
    for (const sub of set) {
      if (sub.attempt !== undefined && sub.attempt !== key.attempt) continue;
      try {
        sub.listener(key, text, end);
      } catch {
        // A failing subscriber must not stop the log nor the other subscribers.
      }
    }
  }

  /** @internal */
  reportError(key: AttemptKey, error: Error): void {
    this.onError?.(key, error);
  }
}

function levelOf(stream: "stdout" | "stderr"): LogLevel {
  return stream === "stdout" ? "INFO" : "WARN";
}

const LINE_END = /\r?\n/g;

export class AttemptLog {
  readonly key: AttemptKey;
  readonly path: string;
  /** The first open/write failure; lines after it are dropped. */
  error: Error | undefined;
  /** Resolves once the attempt's folder exists (files beside the log may be made then). */
  readonly folder: Promise<void>;

  private readonly store: LogStore;
  private fd: number | undefined;
  /** File size after the last completed write: the `end` given to subscribers. */
  private position = 0;
  // Formatted entries wait in `pending[0, pendingLength)`. While a write is in flight it
  // owns the other buffer; `spare` is the buffer to swap in when the write starts.
  private pending: Buffer = Buffer.allocUnsafe(0);
  private pendingLength = 0;
  private spare: Buffer | undefined;
  /** Bytes of the write in flight. */
  private inFlight = 0;
  /** Bytes pending plus bytes in the write in flight. */
  private backlog = 0;
  private writing = false;
  /** A flush is scheduled: `"soon"` (setImmediate) or `"later"` (the trickle timer, `timer`). */
  private scheduled: "soon" | "later" | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;
  private resolveClosed: (() => void) | undefined;
  private drainWaiters: (() => void)[] = [];
  /** Per stream: bytes of a line whose "\n" has not come yet. */
  private readonly partial: { stdout: Buffer | undefined; stderr: Buffer | undefined } = { stdout: undefined, stderr: undefined };
  /** The last prefix as bytes, reused while the timestamp, stream and level stay the same. */
  private prefixText = "";
  private prefixBytes: Buffer = Buffer.allocUnsafe(0);

  /** @internal use `LogStore.open` */
  constructor(store: LogStore, key: AttemptKey, path: string) {
    this.store = store;
    this.key = key;
    this.path = path;
    this.writing = true; // nothing is written before the file is open
    // In the background: creating a file can take a millisecond on a busy file system
    // (right after the journal's fdatasync, here), and the attempt's start need not wait.
    this.folder = store.ensureDir(dirname(path));
    this.folder.then(
      () => this.openFile(),
      (e: unknown) => this.fail(e),
    );
  }

  /**
   * A raw fd and callbacks: cheaper than FileHandle promises on this path, and closed only
   * by us. A new attempt's file does not exist yet, so it is created exclusively (size 0,
   * no `fstat`); an existing one (the attempt's log reopened after a runner restart) is
   * appended to from its current size.
   */
  private openFile(): void {
    const opened = (fd: number, size: number): void => {
      this.fd = fd;
      this.position = size;
      this.writing = false;
      if (this.closing) this.flush();
      else this.schedule();
    };
    fs.open(this.path, "wx", PRIVATE_FILE_MODE, (err, fd) => {
      if (!err) return opened(fd, 0);
      if (err.code !== "EEXIST") return this.fail(err);
      fs.open(this.path, "a", PRIVATE_FILE_MODE, (appendErr, appendFd) => {
        if (appendErr) return this.fail(appendErr);
        fs.fstat(appendFd, (statErr, stat) => {
          if (statErr) {
            fs.close(appendFd, () => {});
            return this.fail(statErr);
          }
          opened(appendFd, stat.size);
        });
      });
    });
  }

  /**
   * A whole message (ctx.log, the runner's system lines): one entry per line of `text`
   * ("\n" or "\r\n"; a single trailing newline is ignored). Returns false when the caller
   * should pause.
   */
  write(stream: LogStream, level: LogLevel, text: string, at = Date.now()): boolean {
    if (this.closing || this.error) return true; // dropped: nothing to wait for
    let body = text.endsWith("\n") ? text.slice(0, -1) : text;
    if (body.endsWith("\r")) body = body.slice(0, -1);
    const prefix = `${formatTimestamp(at)} ${stream} ${level} `;
    const entry = `${prefix}${body.includes("\n") ? body.replace(LINE_END, `\n${prefix}`) : body}\n`;
    this.reserve(entry.length * 3);
    this.pendingLength += this.pending.write(entry, this.pendingLength);
    return this.added();
  }

  /**
   * Raw process output: lines end at "\n" ("\r\n" too); a partial last line waits for the
   * next chunk of the same stream, or `endOutput`/`close`. stdout lines are INFO, stderr
   * lines WARN; all lines of a chunk get the chunk's arrival time. Returns false when the
   * caller should pause the producer until `drained()`.
   */
  chunk(stream: "stdout" | "stderr", data: Buffer | string): boolean {
    if (this.closing || this.error) return true; // dropped: nothing to wait for
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let nl = bytes.indexOf(10);
    if (nl === -1) {
      this.keepPartial(stream, bytes);
      return this.added();
    }
    const prefix = this.prefix(formatTimestamp(Date.now()), stream, levelOf(stream));
    let start = 0;
    const partial = this.partial[stream];
    if (partial) {
      this.partial[stream] = undefined;
      this.line(prefix, Buffer.concat([partial, bytes.subarray(0, nl)]), 0, nl + partial.length);
      start = nl + 1;
      nl = bytes.indexOf(10, start);
    }
    for (; nl !== -1; nl = bytes.indexOf(10, start)) {
      this.line(prefix, bytes, start, nl);
      start = nl + 1;
    }
    if (start < bytes.length) this.keepPartial(stream, bytes.subarray(start));
    return this.added();
  }

  /** Resolves once the backlog is low enough to resume a paused producer (at once if it is). */
  drained(): Promise<void> {
    if (this.backlog <= LOW_WATER || this.error) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * The process's output has ended: partial last lines become entries now (`close` does
   * it too), so that a line written after this one — how the attempt ended — comes last.
   */
  endOutput(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const rest = this.partial[stream];
      this.partial[stream] = undefined;
      if (rest && !this.error && !this.closing) {
        this.line(this.prefix(formatTimestamp(Date.now()), stream, levelOf(stream)), rest, 0, rest.length);
        this.added();
      }
    }
  }

  /** Flushes partial lines and pending writes and closes the file; resolves when everything is on it. */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.endOutput();
    this.closing = true;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.flush();
    return this.closed;
  }

  private prefix(stamp: string, stream: LogStream, level: LogLevel): Buffer {
    const text = `${stamp} ${stream} ${level} `;
    if (text !== this.prefixText) {
      this.prefixText = text;
      this.prefixBytes = Buffer.from(text, "latin1");
    }
    return this.prefixBytes;
  }

  /** Appends `prefix`, `bytes[start, end)` without a "\r" before `end`, and "\n". */
  private line(prefix: Buffer, bytes: Buffer, start: number, end: number): void {
    if (end > start && bytes[end - 1] === 13) end--;
    this.reserve(prefix.length + (end - start) + 1);
    const out = this.pending;
    let at = this.pendingLength;
    at += prefix.copy(out, at);
    at += bytes.copy(out, at, start, end);
    out[at++] = 10;
    this.pendingLength = at;
  }

  private keepPartial(stream: "stdout" | "stderr", bytes: Buffer): void {
    const held = this.partial[stream];
    // Copied: the caller's buffer may be reused.
    const joined = held ? Buffer.concat([held, bytes]) : Buffer.from(bytes);
    if (joined.length > MAX_PARTIAL) {
      this.partial[stream] = undefined;
      this.line(this.prefix(formatTimestamp(Date.now()), stream, levelOf(stream)), joined, 0, joined.length);
    } else {
      this.partial[stream] = joined;
    }
  }

  /** Makes room for `bytes` more pending bytes. */
  private reserve(bytes: number): void {
    const need = this.pendingLength + bytes;
    if (need <= this.pending.length) return;
    let size = Math.max(BUFFER_MIN, this.pending.length * 2);
    while (size < need) size *= 2;
    const grown = this.spare && this.spare.length >= need ? this.spare : Buffer.allocUnsafe(size);
    if (grown === this.spare) this.spare = undefined;
    this.pending.copy(grown, 0, 0, this.pendingLength);
    this.pending = grown;
  }

  /** Accounts for what was just added and schedules the write; the backpressure answer. */
  private added(): boolean {
    this.backlog = this.pendingLength + this.inFlight;
    if (!this.writing) this.schedule();
    return this.backlog < HIGH_WATER;
  }

  /**
   * When to write what is pending (no write in flight): a full batch (`FLUSH_BYTES`) at the
   * next turn; a trickle (a task printing a line now and then, or line by line) within
   * `FLUSH_DELAY_MS`, so that it costs a few writes per second, not one per line: an
   * `fs.write` costs more of the runner's time than formatting a hundred lines.
   */
  private schedule(): void {
    if (this.pendingLength === 0 || this.scheduled === "soon") return;
    if (this.pendingLength >= FLUSH_BYTES) {
      clearTimeout(this.timer);
      this.scheduled = "soon";
      setImmediate(() => this.flush());
    } else if (this.scheduled === undefined) {
      this.scheduled = "later";
      this.timer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
    }
  }

  /** Writes everything pending, unless a write (or the open) is in flight; its completion calls again. */
  private flush(): void {
    if (this.scheduled === "later") clearTimeout(this.timer);
    this.scheduled = undefined;
    if (this.writing) return;
    if (this.error || this.pendingLength === 0) {
      if (this.closing) this.finishClose();
      return;
    }
    if (this.closing && this.pendingLength <= SYNC_CLOSE_MAX) {
      this.writeLastSync();
      return;
    }
    const data = this.pending;
    const length = this.pendingLength;
    // New entries go to the other buffer while this one is written.
    this.pending = this.spare ?? Buffer.allocUnsafe(0);
    this.spare = undefined;
    this.pendingLength = 0;
    this.inFlight = length;
    this.writing = true;
    this.writeAll(data, 0, length, (err) => {
      this.writing = false;
      this.inFlight = 0;
      if (err) return this.fail(err);
      this.wrote(data, length);
      this.backlog = this.pendingLength;
      if (data.length <= BUFFER_KEEP_MAX && !this.closing) {
        if (this.pending.length === 0) this.pending = data;
        else this.spare = data;
      }
      if (this.backlog <= LOW_WATER) this.releaseDrainWaiters();
      if (this.closing || this.error) this.flush();
      else this.schedule();
    });
  }

  /**
   * The last few lines of a closing log (the line saying how the attempt ended, most
   * often all there is): written synchronously. A small write to the page cache takes
   * microseconds, a thread-pool round trip more, and the attempt's end — and its
   * downstream's start — waits for this write.
   */
  private writeLastSync(): void {
    const data = this.pending;
    const length = this.pendingLength;
    this.pendingLength = 0;
    try {
      for (let at = 0; at < length; ) at += fs.writeSync(this.fd!, data, at, length - at);
    } catch (e) {
      return this.fail(e);
    }
    this.wrote(data, length);
    this.backlog = 0;
    this.finishClose();
  }

  /** `data[0, length)` is in the file: subscribers get it. */
  private wrote(data: Buffer, length: number): void {
    this.position += length;
    // Text is made only for subscribers: logging nobody watches costs no decoding.
    if (this.store.watched(this.key)) this.store.deliver(this.key, data.toString("utf8", 0, length), this.position);
  }

  private writeAll(data: Buffer, from: number, to: number, done: (err: Error | null) => void): void {
    fs.write(this.fd!, data, from, to - from, null, (err, written) => {
      if (err) return done(err);
      if (from + written < to) return this.writeAll(data, from + written, to, done);
      done(null);
    });
  }

  private fail(e: unknown): void {
    if (this.error) return;
    this.error = e instanceof Error ? e : new Error(String(e));
    this.writing = false;
    this.pending = Buffer.allocUnsafe(0);
    this.pendingLength = 0;
    this.spare = undefined;
    this.backlog = 0;
    this.store.reportError(this.key, this.error);
    this.releaseDrainWaiters();
    if (this.closing) this.finishClose();
  }

  /**
   * Every line is in the file (its writes completed): `close()` resolves now, and the fd is
   * closed in the background — closing adds nothing to what the file holds, and an
   * attempt's end is reported one thread-pool round trip sooner.
   */
  private finishClose(): void {
    const resolve = this.resolveClosed;
    if (!resolve) return;
    this.resolveClosed = undefined;
    this.releaseDrainWaiters();
    if (this.fd !== undefined) fs.close(this.fd, () => {});
    this.fd = undefined;
    this.pending = Buffer.allocUnsafe(0);
    this.spare = undefined;
    resolve();
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
