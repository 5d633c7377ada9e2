/**
 * The runner's journal: every engine record, in order, in `.tideflow/journal`.
 *
 * Format: a header line, then one record per line as `<crc32 of the JSON, 8 hex> <JSON>\n`.
 * Append-only, so a crash can only leave a torn last line; replay checks every line's
 * checksum and drops a torn tail (and cuts it off the file) instead of failing.
 *
 * Durability is batched (group commit): `append` queues records and returns a promise;
 * everything queued while the previous write+fdatasync was in flight goes out in the next
 * single write+fdatasync. A busy runner therefore pays one sync per batch, not per task,
 * and an idle one pays it at once. The caller performs a decision's effects (start a
 * process, acknowledge a client) only after its promise resolves.
 */
import { closeSync, fdatasync, fstatSync, ftruncateSync, openSync, readFileSync, write, writeFileSync, writeSync } from "node:fs";
import { crc32 } from "node:zlib";
import type { EngineRecord } from "../protocol/runner";

const HEADER = '{"tideflow-journal":1}\n';

export interface JournalOpenResult {
  journal: Journal;
  records: EngineRecord[];
  /** Set when replay cut something off: a torn tail (normal after a crash) or a corrupt line. */
  dropped?: { bytes: number; reason: string; keptAs?: string };
}

export interface JournalOptions {
  /** fdatasync each batch (default true). Benchmarks of the engine alone may turn it off. */
  sync?: boolean;
}

interface Pending {
  chunks: string[];
  waiters: { resolve(): void; reject(e: Error): void }[];
}

export class Journal {
  private pending: Pending | undefined;
  private flushing = false;
  private failed: Error | undefined;
  private closed = false;
  private bytes: number;
  private count: number;

  private constructor(
    private readonly path: string,
    private readonly fd: number,
    size: number,
    count: number,
    private readonly sync: boolean,
  ) {
    this.bytes = size;
    this.count = count;
  }

  /** Opens (creating) the journal and replays it. Throws only when the file cannot be opened or is not a journal. */
  static open(path: string, options: JournalOptions = {}): JournalOpenResult {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      writeFileSync(path, HEADER, { mode: 0o600 });
      data = Buffer.from(HEADER);
    }
    if (data.length === 0) {
      writeFileSync(path, HEADER, { mode: 0o600 });
      data = Buffer.from(HEADER);
    }
    const { records, end, reason } = parse(data, path);
    let dropped: JournalOpenResult["dropped"];
    if (end < data.length) {
      // Keep the whole original when the damage is not just a torn tail, so that nothing
      // is destroyed that a person might want to look at.
      let keptAs: string | undefined;
      if (!reason.startsWith("torn")) {
        keptAs = `${path}.corrupt-${Date.now()}`;
        writeFileSync(keptAs, data, { mode: 0o600 });
      }
      dropped = { bytes: data.length - end, reason, keptAs };
    }
    const fd = openSync(path, "a");
    if (end < data.length) ftruncateSync(fd, end);
    if (end === 0) writeSync(fd, HEADER);
    const size = fstatSync(fd).size;
    return { journal: new Journal(path, fd, size, records.length, options.sync ?? true), records, dropped };
  }

  /** Bytes on disk (acknowledged or not yet). */
  get size(): number {
    return this.bytes;
  }

  /** Records in the file, replayed ones included. */
  get length(): number {
    return this.count;
  }

  /** Queues records; resolves once they (and everything queued before them) are durable. */
  append(records: readonly EngineRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error("journal is closed"));
    if (this.failed) return Promise.reject(this.failed);
    if (records.length === 0 && !this.pending && !this.flushing) return Promise.resolve();
    const pending = (this.pending ??= { chunks: [], waiters: [] });
    for (const r of records) pending.chunks.push(encode(r));
    this.count += records.length;
    const done = new Promise<void>((resolve, reject) => pending.waiters.push({ resolve, reject }));
    if (!this.flushing) this.flush();
    return done;
  }

  /** Waits for everything queued, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.pending || this.flushing) await this.append([]).catch(() => undefined);
    this.closed = true;
    closeSync(this.fd);
  }

  private flush(): void {
    const batch = this.pending;
    if (!batch) return;
    this.pending = undefined;
    this.flushing = true;
    const buf = Buffer.from(batch.chunks.join(""));
    const finish = (err: Error | null) => {
      this.flushing = false;
      if (err) {
        // A journal that cannot be written must stop the runner's progress: everything
        // queued now and later is refused with the cause.
        this.failed = new Error(`journal ${this.path}: ${err.message}`);
        for (const w of batch.waiters) w.reject(this.failed);
        if (this.pending) for (const w of this.pending.waiters) w.reject(this.failed);
        this.pending = undefined;
        return;
      }
      this.bytes += buf.length;
      for (const w of batch.waiters) w.resolve();
      if (this.pending) this.flush();
    };
    writeAll(this.fd, buf, 0, (err) => {
      if (err || !this.sync) return finish(err);
      fdatasync(this.fd, finish);
    });
  }
}

function writeAll(fd: number, buf: Buffer, offset: number, done: (err: Error | null) => void): void {
  write(fd, buf, offset, buf.length - offset, null, (err, n) => {
    if (err) return done(err);
    if (offset + n < buf.length) return writeAll(fd, buf, offset + n, done);
    done(null);
  });
}

function encode(record: EngineRecord): string {
  const json = JSON.stringify(record);
  return `${crc32(json).toString(16).padStart(8, "0")} ${json}\n`;
}

/**
 * Every valid record up to the first bad line. `end` is the byte offset after the last
 * good line; `reason` says why anything after it is dropped.
 */
function parse(data: Buffer, path: string): { records: EngineRecord[]; end: number; reason: string } {
  const headerEnd = data.indexOf(0x0a);
  const header = data.subarray(0, headerEnd < 0 ? data.length : headerEnd + 1).toString("utf8");
  if (header !== HEADER) {
    if (headerEnd < 0 && HEADER.startsWith(header)) return { records: [], end: 0, reason: "torn header" };
    throw new Error(`${path} is not a Tideflow journal (or a newer version of one): its first line is ${JSON.stringify(header.slice(0, 60))}`);
  }
  const records: EngineRecord[] = [];
  let pos = headerEnd + 1;
  while (pos < data.length) {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) return { records, end: pos, reason: "torn last record (no newline): the runner stopped while writing it" };
    const bad = (what: string) => ({
      records,
      end: pos,
      reason: nl === data.length - 1 ? `torn last record (${what})` : `corrupt record ${records.length + 1} at byte ${pos} (${what}); ${data.length - nl - 1} bytes after it dropped`,
    });
    // "xxxxxxxx " then JSON.
    if (nl - pos < 10 || data[pos + 8] !== 0x20) return bad("no checksum");
    const sum = Number.parseInt(data.toString("latin1", pos, pos + 8), 16);
    const json = data.subarray(pos + 9, nl);
    if (crc32(json) !== sum) return bad("checksum mismatch");
    try {
      records.push(JSON.parse(json.toString("utf8")) as EngineRecord);
    } catch {
      return bad("invalid JSON");
    }
    pos = nl + 1;
  }
  return { records, end: pos, reason: "" };
}
