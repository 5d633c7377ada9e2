/**
 * A shell attempt's output goes to capture files (`<task>.<n>.out`, `.err`), not to pipes
 * held by the runner, and the runner tails them into the attempt's log. Why: a pipe's
 * reader dies with the runner, and a task writing to it then gets SIGPIPE. With files, a
 * runner killed with `kill -9` leaves its attempts running and writing; the next runner
 * adopts them (executor.ts `adopt`) and reads on from where the log ends, so no line is
 * lost. Lines read after a gap carry the time they were read. The capture files are
 * deleted once the attempt's log is complete.
 *
 * Tailing is a read loop: on each `pump` (a timer while the attempt runs, and a last one
 * after it ended) everything new is read and handed to the log, waiting for the log to
 * drain when it is behind, which is the back-pressure a pipe gave. Reads are synchronous:
 * a read of a file the kernel just wrote is served from the page cache in microseconds,
 * less than the thread-pool round trip of an asynchronous read, and the last read of a
 * short attempt is on the path to its downstream's start.
 */
import { closeSync, openSync, read, readSync, readFileSync, statSync } from "node:fs";
import type { AttemptLog } from "../logs";

const CHUNK = 256 * 1024;
/**
 * One read buffer for every tail: reads are synchronous and the log copies what it keeps,
 * so nothing holds the buffer across a read. (A buffer per attempt cost two 256 KiB
 * allocations — mmap, page faults, munmap — per shell task.)
 */
const readBuf = Buffer.allocUnsafe(CHUNK);

function readAsync(fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, 0, buf.length, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

export class CaptureTail {
  /** Opened on the first read that finds the file (the spawn helper creates it). */
  private fd: number | undefined;
  private pos: number;
  private pumping: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** For asynchronous reads of a tail with a lot to read (the shared buffer serves synchronous ones only). */
  private ownBuf: Buffer | undefined;

  constructor(
    private readonly path: string,
    private readonly stream: "stdout" | "stderr",
    private readonly log: AttemptLog,
    start = 0,
  ) {
    this.pos = start;
  }

  private open(): boolean {
    if (this.fd !== undefined) return true;
    try {
      this.fd = openSync(this.path, "r");
      return true;
    } catch {
      return false; // not made yet: nothing to read
    }
  }

  /** Reads what is new up to the end of the file; concurrent calls share one loop that runs once more. */
  pump(): Promise<void> {
    if (this.pumping) {
      this.again = true;
      return this.pumping;
    }
    this.pumping = (async () => {
      do {
        this.again = false;
        // The first read is synchronous (most reads find a few lines, or nothing); after a
        // full chunk there is a lot to read, and reads go to the thread pool so that the
        // log's writes and its delivery to clients proceed between them.
        let buf: Buffer = readBuf;
        for (;;) {
          if (this.closed || !this.open()) return;
          let n: number;
          try {
            n = buf === readBuf ? readSync(this.fd!, buf, 0, CHUNK, this.pos) : await readAsync(this.fd!, buf, this.pos);
          } catch {
            n = 0;
          }
          if (n === 0 || this.closed) break;
          this.pos += n;
          // The log copies what it keeps, so the buffer can be reused.
          if (!this.log.chunk(this.stream, buf.subarray(0, n))) await this.log.drained();
          if (n === CHUNK) buf = this.ownBuf ??= Buffer.allocUnsafe(CHUNK);
        }
      } while (this.again);
    })().finally(() => (this.pumping = undefined));
    return this.pumping;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fd !== undefined) closeSync(this.fd);
  }
}

/**
 * Where to read on in a capture file after a restart: just after the `lines`-th newline
 * (the log holds that many complete lines of the stream; a partial last line was held in
 * memory and is read again). A log line cut because it exceeded the log's longest partial
 * line counts as one more line, so such an attempt may lose the rest of that long line.
 */
export function offsetAfterLines(path: string, lines: number): number {
  if (lines === 0) return 0;
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    return 0;
  }
  let pos = 0;
  for (let i = 0; i < lines; i++) {
    const nl = data.indexOf(10, pos);
    if (nl === -1) return data.length;
    pos = nl + 1;
  }
  return pos;
}

/** How many stdout and stderr lines an attempt's log holds (`<time> <stream> …`). */
export function loggedLines(logPath: string): { stdout: number; stderr: number } {
  const counts = { stdout: 0, stderr: 0 };
  let text: string;
  try {
    text = readFileSync(logPath, "utf8");
  } catch {
    return counts;
  }
  for (const line of text.split("\n")) {
    const sp = line.indexOf(" ");
    if (sp < 0) continue;
    if (line.startsWith("stdout ", sp + 1)) counts.stdout++;
    else if (line.startsWith("stderr ", sp + 1)) counts.stderr++;
  }
  return counts;
}

/**
 * How the attempt ended per its exit file (`<status> <marker>`, or `<status>` from older
 * runners): an exit code or a signal, and when (the file's modification time: the
 * attempt's bash writes it as it exits); undefined when there is no file, or it is
 * another attempt's (not known).
 */
export function readExitFile(path: string, marker?: string): (({ exitCode: number } | { signal: string }) & { endedAt: number }) | undefined {
  let text: string;
  let endedAt: number;
  try {
    text = readFileSync(path, "utf8").trim();
    endedAt = Math.floor(statSync(path).mtimeMs);
  } catch {
    return undefined;
  }
  const sp = text.indexOf(" ");
  const status = sp === -1 ? text : text.slice(0, sp);
  if (sp !== -1 && marker !== undefined && text.slice(sp + 1) !== marker) return undefined;
  if (/^\d+$/.test(status)) return { exitCode: Number(status), endedAt };
  if (/^[A-Z]+$/.test(status)) return { signal: `SIG${status}`, endedAt };
  return undefined;
}

export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
