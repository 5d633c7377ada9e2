/**
 * The runner's own log (`.tideflow/runner.log`, written by the background runner) shown in
 * the "Tideflow Runner" output channel: what was appended since the window opened, as it
 * is appended. The file is shared by every runner of the workspace (it is opened in append
 * mode), so a runner started from a terminal shows here too.
 */
import { closeSync, openSync, readSync, statSync, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";

export class RunnerLogTail implements vscode.Disposable {
  private readonly channel = vscode.window.createOutputChannel("Tideflow Runner");
  private watcher: FSWatcher | undefined;
  private offset: number | undefined;
  private readonly path: string | undefined;

  constructor(root: string | undefined) {
    this.path = root && join(root, ".tideflow", "runner.log");
    // What was there before this window opened is old news; a log created later is read from its start.
    try {
      this.offset = this.path ? statSync(this.path).size : undefined;
    } catch {
      this.offset = 0;
    }
  }

  /** Starts following the file from its end (idempotent); called when the window attaches to a runner. */
  follow(): void {
    if (!this.path || this.watcher) return;
    try {
      this.watcher = watch(this.path, () => this.read());
      this.watcher.on("error", () => this.stop());
      this.read();
    } catch {
      // No log yet: the next attach tries again.
    }
  }

  private read(): void {
    if (!this.path || this.offset === undefined) return;
    try {
      const size = statSync(this.path).size;
      if (size < this.offset) this.offset = 0; // truncated
      if (size === this.offset) return;
      const fd = openSync(this.path, "r");
      try {
        const buf = Buffer.alloc(Math.min(size - this.offset, 1 << 20));
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        this.offset += n;
        this.channel.append(buf.subarray(0, n).toString("utf8"));
      } finally {
        closeSync(fd);
      }
    } catch {
      this.stop();
    }
  }

  private stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  dispose(): void {
    this.stop();
    this.channel.dispose();
  }
}
