/**
 * Spare capture files (`.tideflow/capture/<name>.out`, `.err`, `.exit`), made ahead of
 * need. Why: creating a file is a directory and journal operation, and here it cost
 * 0.5–0.6 ms each right after the runner's journal sync — three per shell attempt, on the
 * path from one task's end to the next one's start, more than the spawn itself. A spare is
 * made in the background (the thread pool) while attempts run; an attempt takes one and
 * nothing is created on its way to start. A taken spare serves one attempt and is
 * deleted with its log complete, as before.
 *
 * The attempt's handle names its spare (`ref`), so a runner that restarts after a crash
 * finds the files of an attempt it adopts. Files no attempt owns (spares of a runner that
 * died) are deleted by `sweep` once adoption is over.
 */
import { close, mkdirSync, open, readdirSync, readFileSync, unlink } from "node:fs";
import { join } from "node:path";
import type { CapturePaths } from "./shell";

const EXTENSIONS = ["out", "err", "exit"] as const;
const MIN_SPARES = 4;
const MAX_SPARES = 128;

/** Deletes an attempt's capture files (in the background; a missing one is fine). */
export function removeCaptureFiles(paths: CapturePaths): void {
  for (const f of [paths.stdout, paths.stderr, paths.exit]) unlink(f, () => undefined);
}

export class CapturePool {
  private readonly spares: string[] = [];
  private making = 0;
  private counter = 0;
  private target = MIN_SPARES;
  /** Taken and not yet released: their files belong to an attempt. */
  private readonly inUse = new Set<string>();
  private readonly prefix = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  private closed = false;

  constructor(readonly dir: string) {}

  pathsOf(name: string): CapturePaths {
    return { stdout: join(this.dir, `${name}.out`), stderr: join(this.dir, `${name}.err`), exit: join(this.dir, `${name}.exit`) };
  }

  /**
   * Files for a new attempt: a spare (made already), or, when none is ready, fresh names
   * whose files the spawn helper and bash create. `running` (attempts now running) sizes
   * the stock: a backfill at parallelism 16 keeps more spares than a chain.
   */
  take(running: number): { name: string; paths: CapturePaths } {
    this.target = Math.max(MIN_SPARES, Math.min(MAX_SPARES, 2 * running));
    const name = this.spares.pop() ?? this.newName();
    this.inUse.add(name);
    this.refill();
    return { name, paths: this.pathsOf(name) };
  }

  /** Makes the first spares now. */
  prepare(): void {
    this.refill();
  }

  /** Marks files found by adoption as an attempt's. */
  claim(name: string): void {
    this.inUse.add(name);
  }

  /** The attempt's log is complete: its files go. */
  release(name: string): void {
    this.inUse.delete(name);
    removeCaptureFiles(this.pathsOf(name));
  }

  /**
   * After a restart's adoption: the name whose exit file says it was `marker`'s (an
   * attempt whose handle never reached the journal, and whose process is gone).
   */
  findByExitMarker(marker: string): string | undefined {
    for (const f of this.list()) {
      if (!f.endsWith(".exit")) continue;
      try {
        const text = readFileSync(join(this.dir, f), "utf8").trim();
        if (text.slice(text.indexOf(" ") + 1) === marker) return f.slice(0, -".exit".length);
      } catch {
        // gone meanwhile
      }
    }
    return undefined;
  }

  /** Deletes every file no attempt owns (left by a runner that died). */
  sweep(): void {
    for (const f of this.list()) {
      const name = f.slice(0, f.lastIndexOf("."));
      if (!this.inUse.has(name) && !this.spares.includes(name)) unlink(join(this.dir, f), () => undefined);
    }
  }

  /** Deletes the spares (the runner stops); files of attempts still owned stay. */
  close(): void {
    this.closed = true;
    for (const name of this.spares.splice(0)) this.release(name);
  }

  private list(): string[] {
    try {
      return readdirSync(this.dir);
    } catch {
      return [];
    }
  }

  private newName(): string {
    if (this.counter === 0) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return `${this.prefix}-${(this.counter++).toString(36)}`;
  }

  /** Makes spares in the background up to the target; a spare that could not be made is dropped. */
  private refill(): void {
    while (!this.closed && this.spares.length + this.making < this.target) {
      const name = this.newName();
      this.making++;
      let left = EXTENSIONS.length;
      let failed = false;
      for (const ext of EXTENSIONS) {
        open(join(this.dir, `${name}.${ext}`), "wx", 0o600, (err, fd) => {
          if (err) failed = true;
          else close(fd, () => undefined);
          if (--left > 0) return;
          this.making--;
          if (failed || this.closed) this.release(name);
          else this.spares.push(name);
        });
      }
    }
  }
}
