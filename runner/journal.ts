/**
 * The runner's journal: every engine record, in order, in `.tideflow/journal`
 * (user-facing description: docs/runner-journal.md).
 *
 * Format: a header line, then one entry per line as `<crc32 of the JSON, 8 hex> <JSON>\n`.
 * A compacted journal (header version 2) starts with snapshot entries, `{"snapshot": …}`
 * (what the snapshot source gave, one line each), followed by records as usual.
 *
 * Damage: every line is self-delimiting and checksummed, so a bad line costs only itself.
 * Replay skips it and resynchronises at the next newline. A bad tail (a last line without
 * newline, or bad lines with no good one after them) is what a crash leaves while writing:
 * it is cut off the file (`dropped`). Bad lines followed by good ones are damage: the
 * original file is kept as `<journal>.corrupt-<ms>`, the journal is rewritten without them,
 * and `damage` says what was lost (the caller tells the user).
 *
 * Durability is batched (group commit): `append` queues records and returns a promise;
 * everything queued in one turn of the event loop (and while a compaction's switch-over
 * is in flight) goes out at the end of the turn in a single write+fdatasync, made
 * synchronously. A busy runner therefore pays one sync per batch, not per task, and an
 * idle one pays it at once. The caller performs a decision's effects (start a process,
 * acknowledge a client) only after its promise resolves.
 *
 * Compaction keeps the file proportional to the live state: once the records after the
 * snapshot outgrow `max(compactMinBytes, compactRatio × snapshot)`, the next batch taken
 * for writing marks the point P. The snapshot source is asked for the state at P (it must
 * be the state after exactly the records appended so far: the engine applies a decision's
 * records before they are appended, synchronously), and it is written to
 * `<journal>.compact` with fdatasync, while batches go on to the old file as usual (each
 * acknowledged when durable there) and are remembered. When the snapshot is durable, the
 * next batch is written to the new file after the remembered ones, the new file is synced,
 * renamed over the old one, and the directory synced; only then is that batch
 * acknowledged. A crash at any point leaves either the old file (with every acknowledged
 * record) or the new one (snapshot + every record after P); a stale `.compact` is removed
 * at open.
 */
import {
  close,
  closeSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  open,
  openSync,
  readFileSync,
  rename,
  renameSync,
  rmSync,
  unlink,
  write,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { crc32 } from "node:zlib";
import type { EngineRecord } from "../protocol/runner";

const HEADER = '{"tideflow-journal":1}\n';
/** A journal that starts with snapshot entries. */
const HEADER_V2 = '{"tideflow-journal":2}\n';

export interface JournalOpenResult {
  journal: Journal;
  /** The snapshot entries a compacted journal starts with (empty for a plain one), in order. */
  snapshot: unknown[];
  /** The records after the snapshot, in order. */
  records: EngineRecord[];
  /** Set when replay cut off a torn tail (normal after a crash). */
  dropped?: { bytes: number; reason: string; keptAs?: string };
  /** Set when lines in the middle were unreadable (they were skipped, the rest kept). */
  damage?: JournalDamageFound;
}

export interface JournalDamageFound {
  /** Unreadable lines skipped. */
  records: number;
  bytes: number;
  /** The original file, as found. */
  keptAs: string;
  /** Why, for the first few: "line 12 at byte 3456: checksum mismatch". */
  reasons: string[];
  /** The raw text of the skipped lines (latin1), for what can still be read in them (run ids). */
  lines: string[];
}

export interface JournalOptions {
  /** fdatasync each batch (default true). Benchmarks of the engine alone may turn it off. */
  sync?: boolean;
  /** Compaction starts once the records after the snapshot exceed this many bytes… (default 16 MiB) */
  compactMinBytes?: number;
  /** …and `compactRatio` times the snapshot's size (default 1). */
  compactRatio?: number;
  /**
   * Tests only: SIGKILL this process at step k (1–7) of the next compaction, to prove that
   * a crash there loses nothing. See `crashPoint`.
   */
  crashAt?: number;
}

/** Produces the state at the moment it is called, as JSON-able entries. */
export type SnapshotSource = () => Iterable<unknown>;

interface Pending {
  chunks: string[];
  waiters: { resolve(): void; reject(e: Error): void }[];
}

interface Compaction {
  tmp: string;
  fd: number | undefined;
  /** Encoded records of the batches taken after P, already in the old file. */
  since: string[];
  ready: boolean;
  snapshotBytes: number;
  entries: number;
}

export class Journal {
  private pending: Pending | undefined;
  private flushing = false;
  private flushScheduled = false;
  private failed: Error | undefined;
  private closed = false;
  private bytes: number;
  private count: number;
  private fd: number;
  /** Bytes of the header and snapshot at the file's start. */
  private snapshotBytes: number;
  private source: SnapshotSource | undefined;
  private compaction: Compaction | undefined;
  private forced: { resolve(): void; reject(e: Error): void }[] = [];
  private compactionCount = 0;
  private readonly minBytes: number;
  private readonly ratio: number;

  private constructor(
    private readonly path: string,
    fd: number,
    size: number,
    snapshotBytes: number,
    count: number,
    private readonly sync: boolean,
    private readonly options: JournalOptions,
  ) {
    this.fd = fd;
    this.bytes = size;
    this.count = count;
    this.snapshotBytes = snapshotBytes;
    this.minBytes = options.compactMinBytes ?? 16 * 1024 * 1024;
    this.ratio = options.compactRatio ?? 1;
  }

  /** Opens (creating) the journal and replays it. Throws only when the file cannot be opened or is not a journal. */
  static open(path: string, options: JournalOptions = {}): JournalOpenResult {
    // A compaction that did not finish: the journal itself is whole.
    rmSync(`${path}.compact`, { force: true });
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      data = Buffer.alloc(0);
    }
    if (data.length === 0) {
      writeDurable(path, Buffer.from(HEADER));
      data = Buffer.from(HEADER);
    }
    const parsed = parse(data, path);
    let dropped: JournalOpenResult["dropped"];
    let damage: JournalDamageFound | undefined;
    if (parsed.bad.length > 0) {
      // Keep the whole original, so that nothing is destroyed that a person might want to
      // look at, then rewrite the journal without the bad lines (and without a torn tail).
      const keptAs = `${path}.corrupt-${Date.now()}`;
      writeDurable(keptAs, data);
      const parts: Buffer[] = [];
      let from = 0;
      for (const b of parsed.bad) {
        parts.push(data.subarray(from, b.start));
        from = b.end;
      }
      parts.push(data.subarray(from, parsed.end));
      writeDurable(`${path}.tmp`, Buffer.concat(parts));
      renameSync(`${path}.tmp`, path);
      syncDir(path);
      damage = {
        records: parsed.bad.length,
        bytes: parsed.bad.reduce((n, b) => n + b.end - b.start, 0),
        keptAs,
        reasons: parsed.bad.slice(0, 5).map((b) => b.reason),
        lines: parsed.bad.map((b) => data.toString("latin1", b.start, Math.min(b.end, b.start + 64 * 1024))),
      };
      if (parsed.end < data.length) dropped = { bytes: data.length - parsed.end, reason: parsed.tornReason };
    } else if (parsed.end < data.length) {
      dropped = { bytes: data.length - parsed.end, reason: parsed.tornReason };
    }
    const fd = openSync(path, "a", 0o600);
    if (!damage && parsed.end < data.length) ftruncateSync(fd, parsed.end);
    if (parsed.end === 0) writeSync(fd, HEADER);
    const size = fstatSync(fd).size;
    const journal = new Journal(path, fd, size, parsed.snapshotEnd, parsed.snapshot.length + parsed.records.length, options.sync ?? true, options);
    return { journal, snapshot: parsed.snapshot, records: parsed.records, dropped, damage };
  }

  /** Bytes on disk (acknowledged or not yet). */
  get size(): number {
    return this.bytes;
  }

  /** Entries in the file (snapshot entries and records), replayed ones included. */
  get length(): number {
    return this.count;
  }

  /** Compactions finished since open. */
  get compactions(): number {
    return this.compactionCount;
  }

  /**
   * Enables compaction: `source` gives the state after exactly the records appended so
   * far (it is called synchronously, when a batch is taken for writing).
   */
  setSnapshotSource(source: SnapshotSource): void {
    this.source = source;
  }

  /** Compacts now (at the next batch), whatever the size; resolves when the new file is in place. */
  compact(): Promise<void> {
    if (!this.source) return Promise.reject(new Error("journal: no snapshot source"));
    const done = new Promise<void>((resolve, reject) => this.forced.push({ resolve, reject }));
    this.kick();
    return done;
  }

  /** Queues records; resolves once they (and everything queued before them) are durable. */
  append(records: readonly EngineRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error("journal is closed"));
    if (this.failed) return Promise.reject(this.failed);
    if (records.length === 0 && !this.pending && !this.flushing && !this.compaction) return Promise.resolve();
    const pending = (this.pending ??= { chunks: [], waiters: [] });
    for (const r of records) pending.chunks.push(encode(r));
    this.count += records.length;
    const done = new Promise<void>((resolve, reject) => pending.waiters.push({ resolve, reject }));
    this.flushSoon();
    return done;
  }

  /**
   * At the end of this turn of the event loop: everything appended in the turn (the exits
   * that came in together, a batch operation) goes out in one write and one sync.
   */
  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (!this.flushing) this.flush();
    });
  }

  /** Waits for everything queued (and a compaction under way), then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.compaction) await this.compact().catch(() => undefined);
    if (this.pending || this.flushing) await this.append([]).catch(() => undefined);
    this.closed = true;
    closeSync(this.fd);
  }

  /** An empty batch, so that a waiting compaction starts or finishes when nothing else is written. */
  private kick(): void {
    if (this.flushing || this.closed) return;
    this.pending ??= { chunks: [], waiters: [] };
    this.flush();
  }

  private wantsCompaction(): boolean {
    if (!this.source || this.failed) return false;
    if (this.forced.length > 0) return true;
    const tail = this.bytes - this.snapshotBytes;
    return tail > this.minBytes && tail > this.ratio * this.snapshotBytes;
  }

  private flush(): void {
    const batch = this.pending;
    if (!batch) return;
    this.pending = undefined;
    this.flushing = true;
    const c = this.compaction;
    if (c?.ready) {
      this.switchOver(c, batch);
      return;
    }
    if (c) c.since.push(...batch.chunks);
    else if (this.wantsCompaction()) this.beginCompaction();
    this.writeBatch(batch);
  }

  /**
   * Synchronous, on the runner's thread: a batch is small, and a write plus fdatasync here
   * costs less than handing both to the thread pool and waking up for each (the futex
   * round trips cost more system time than the sync on this kind of VM). The loop is held
   * for the sync's duration; what arrives meanwhile goes in the next batch.
   */
  private writeBatch(batch: Pending): void {
    const buf = Buffer.from(batch.chunks.join(""));
    let err: Error | null = null;
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(this.fd, buf, off, buf.length - off);
      if (this.sync) fdatasyncSync(this.fd);
    } catch (e) {
      err = e as Error;
    }
    this.finish(batch, err, buf.length);
  }

  private finish(batch: Pending, err: Error | null, written: number): void {
    this.flushing = false;
    if (err) {
      // A journal that cannot be written must stop the runner's progress: everything
      // queued now and later is refused with the cause.
      this.failed = new Error(`journal ${this.path}: ${err.message}`);
      for (const w of batch.waiters) w.reject(this.failed);
      if (this.pending) for (const w of this.pending.waiters) w.reject(this.failed);
      this.pending = undefined;
      for (const w of this.forced.splice(0)) w.reject(this.failed);
      return;
    }
    this.bytes += written;
    for (const w of batch.waiters) w.resolve();
    if (this.pending) this.flush();
    else if (this.compaction?.ready || (!this.compaction && this.forced.length > 0)) this.kick();
  }

  /** Point P: the state now is the old file's content plus the batch being written. */
  private beginCompaction(): void {
    const lines: string[] = [HEADER_V2];
    for (const entry of this.source!()) lines.push(encode({ snapshot: entry }));
    const c: Compaction = { tmp: `${this.path}.compact`, fd: undefined, since: [], ready: false, snapshotBytes: 0, entries: lines.length - 1 };
    this.compaction = c;
    const forced = this.forced.splice(0);
    void (async () => {
      c.fd = await new Promise<number>((res, rej) => open(c.tmp, "w", 0o600, (e, fd) => (e ? rej(e) : res(fd))));
      // In pieces of ≤ 8 MiB, so that the snapshot's text is not copied whole once more.
      let piece: string[] = [];
      let pieceLength = 0;
      let first = true;
      for (const line of lines) {
        piece.push(line);
        pieceLength += line.length;
        if (pieceLength >= 8 * 1024 * 1024) {
          c.snapshotBytes += await writeAsync(c.fd, Buffer.from(piece.join("")));
          piece = [];
          pieceLength = 0;
          if (first) this.crashPoint(1);
          first = false;
        }
      }
      c.snapshotBytes += await writeAsync(c.fd, Buffer.from(piece.join("")));
      if (first) this.crashPoint(1);
      this.crashPoint(2);
      await new Promise<void>((res, rej) => fsync(c.fd!, (e) => (e ? rej(e) : res())));
      this.crashPoint(3);
    })().then(
      () => {
        c.ready = true;
        this.forced.push(...forced);
        this.kick();
      },
      (e: Error) => {
        this.abortCompaction(c, e);
        for (const w of forced) w.reject(e);
      },
    );
  }

  /** Writes `batch` after the snapshot and the records since P, and puts the new file in place. */
  private switchOver(c: Compaction, batch: Pending): void {
    const tail = Buffer.from(c.since.join("") + batch.chunks.join(""));
    const forced = this.forced.splice(0);
    let renamed = false;
    void (async () => {
      await writeAsync(c.fd!, tail);
      this.crashPoint(4);
      await new Promise<void>((res, rej) => fdatasync(c.fd!, (e) => (e ? rej(e) : res())));
      this.crashPoint(5);
      await new Promise<void>((res, rej) => rename(c.tmp, this.path, (e) => (e ? rej(e) : res())));
      renamed = true;
      this.crashPoint(6);
      // Once renamed, the new file is the journal whatever happens: a failed directory
      // sync only means that a crash now might bring back the old (whole) file.
      await syncDirAsync(this.path).catch((e: Error) => process.emitWarning(`journal ${this.path}: directory sync after compaction: ${e.message}`));
      this.crashPoint(7);
    })().then(
      () => {
        const old = this.fd;
        this.fd = c.fd!;
        this.compaction = undefined;
        close(old, () => undefined);
        this.snapshotBytes = c.snapshotBytes;
        this.bytes = c.snapshotBytes;
        this.count = c.entries + c.since.length + batch.chunks.length;
        this.compactionCount++;
        for (const w of forced) w.resolve();
        this.finish(batch, null, tail.length);
      },
      (e: Error) => {
        // Before the rename: the old file is still the journal; the batch goes there.
        if (renamed) throw e;
        this.abortCompaction(c, e);
        for (const w of forced) w.reject(e);
        this.writeBatch(batch);
      },
    );
  }

  private abortCompaction(c: Compaction, e: Error): void {
    this.compaction = undefined;
    if (c.fd !== undefined) close(c.fd, () => undefined);
    unlink(c.tmp, () => undefined);
    process.emitWarning(`journal ${this.path}: compaction failed, the journal goes on uncompacted: ${e.message}`);
  }

  /**
   * Steps of a compaction, for `crashAt`: 1 part of the snapshot written, 2 all of it
   * written, 3 it is synced, 4 the records since P written after it, 5 those synced,
   * 6 the new file renamed over the old, 7 the directory synced.
   */
  private crashPoint(step: number): void {
    if (this.options.crashAt === step) process.kill(process.pid, "SIGKILL");
  }
}

function writeAll(fd: number, buf: Buffer, offset: number, done: (err: Error | null) => void): void {
  if (buf.length === 0) return done(null);
  write(fd, buf, offset, buf.length - offset, null, (err, n) => {
    if (err) return done(err);
    if (offset + n < buf.length) return writeAll(fd, buf, offset + n, done);
    done(null);
  });
}

function writeAsync(fd: number, buf: Buffer): Promise<number> {
  return new Promise((res, rej) => writeAll(fd, buf, 0, (e) => (e ? rej(e) : res(buf.length))));
}

/** Writes a file and syncs it (a new file that must survive a crash as a whole). */
function writeDurable(path: string, data: Buffer): void {
  const fd = openSync(path, "w", 0o600);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes a rename in the file's directory durable. */
function syncDir(path: string): void {
  const fd = openSync(dirname(path), "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDirAsync(path: string): Promise<void> {
  return new Promise((res, rej) =>
    open(dirname(path), "r", (e, fd) => {
      if (e) return rej(e);
      fsync(fd, (e2) => close(fd, () => (e2 ? rej(e2) : res())));
    }),
  );
}

function encode(entry: unknown): string {
  const json = JSON.stringify(entry);
  return `${crc32(json).toString(16).padStart(8, "0")} ${json}\n`;
}

interface Parsed {
  snapshot: unknown[];
  records: EngineRecord[];
  /** Byte offset after the last good line: a torn tail starts here. */
  end: number;
  tornReason: string;
  /** Offset after the header and the snapshot entries. */
  snapshotEnd: number;
  /** Bad lines followed by a good one (damage), each with its newline. */
  bad: { start: number; end: number; reason: string }[];
}

/**
 * Every good line. A bad line is skipped (the next one starts after its newline); bad
 * lines after the last good one are a torn tail, reported by `end` and `tornReason`.
 */
function parse(data: Buffer, path: string): Parsed {
  const headerEnd = data.indexOf(0x0a);
  const header = data.subarray(0, headerEnd < 0 ? data.length : headerEnd + 1).toString("utf8");
  if (header !== HEADER && header !== HEADER_V2) {
    if (headerEnd < 0 && (HEADER.startsWith(header) || HEADER_V2.startsWith(header))) {
      return { snapshot: [], records: [], end: 0, tornReason: "torn header", snapshotEnd: 0, bad: [] };
    }
    throw new Error(`${path} is not a Tideflow journal (or a newer version of one): its first line is ${JSON.stringify(header.slice(0, 60))}`);
  }
  const snapshot: unknown[] = [];
  const records: EngineRecord[] = [];
  const bad: Parsed["bad"] = [];
  /** Bad lines since the last good one. */
  let suspect: Parsed["bad"] = [];
  let pos = headerEnd + 1;
  let end = pos;
  let snapshotEnd = pos;
  let line = 1;
  let tornReason = "";
  while (pos < data.length) {
    line++;
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) {
      tornReason = "torn last record (no newline): the runner stopped while writing it";
      break;
    }
    let why: string | undefined;
    // "xxxxxxxx " then JSON.
    if (nl - pos < 10 || data[pos + 8] !== 0x20) why = "no checksum";
    else {
      const sum = Number.parseInt(data.toString("latin1", pos, pos + 8), 16);
      const json = data.subarray(pos + 9, nl);
      if (crc32(json) !== sum) why = "checksum mismatch";
      else {
        try {
          const entry = JSON.parse(json.toString("utf8")) as { snapshot?: unknown };
          if (entry !== null && typeof entry === "object" && "snapshot" in entry) {
            snapshot.push(entry.snapshot);
            if (records.length === 0) snapshotEnd = nl + 1;
          } else records.push(entry as EngineRecord);
        } catch {
          why = "invalid JSON";
        }
      }
    }
    if (why === undefined) {
      bad.push(...suspect);
      suspect = [];
      end = nl + 1;
    } else {
      suspect.push({ start: pos, end: nl + 1, reason: `line ${line} at byte ${pos}: ${why}` });
      tornReason = `torn last record (${why})`;
    }
    pos = nl + 1;
  }
  if (suspect.length > 1) tornReason = `torn last ${suspect.length} records (${suspect[0].reason})`;
  return { snapshot, records, end, tornReason, snapshotEnd, bad };
}
