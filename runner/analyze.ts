/**
 * The runner's side of dist/analyze.js (see analyze-worker.ts): workflow analysis in a
 * child process, kept warm for `idleMs` after its last request, then let go.
 */
import { type ChildProcess, fork } from "node:child_process";
import type { TideflowDiagnostic, WorkflowModel } from "../protocol/model";

export interface AnalyzeRequest {
  /** Absolute path of the workflow file. */
  file: string;
}

export type AnalyzeResponse =
  | { ok: true; workflow?: WorkflowModel; errors: TideflowDiagnostic[] }
  /** `reason` completes "<file> …". */
  | { ok: false; reason: string };

interface Pending {
  resolve(r: AnalyzeResponse): void;
  reject(e: Error): void;
}

export class Analyzer {
  private child: ChildProcess | undefined;
  private readonly pending: Pending[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private stderr = "";

  constructor(
    private readonly analyzerPath: string,
    private readonly idleMs = 30_000,
  ) {}

  analyze(request: AnalyzeRequest): Promise<AnalyzeResponse> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const child = this.child ?? this.spawn();
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      child.send(request);
    });
  }

  /** Lets the process go now. */
  close(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.child?.disconnect();
    this.child = undefined;
  }

  private spawn(): ChildProcess {
    const child = fork(this.analyzerPath, [], { stdio: ["ignore", "ignore", "pipe", "ipc"] });
    this.child = child;
    this.stderr = "";
    child.stderr!.on("data", (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    child.on("message", (m: AnalyzeResponse) => {
      this.pending.shift()?.resolve(m);
      if (this.pending.length === 0) {
        this.idleTimer = setTimeout(() => this.close(), this.idleMs);
        this.idleTimer.unref();
      }
    });
    child.once("exit", (code, signal) => {
      if (this.child === child) this.child = undefined;
      const error = new Error(`the analyzer process ended (${signal ?? `code ${code}`})${this.stderr ? `: ${this.stderr.trim()}` : ""}`);
      for (const p of this.pending.splice(0)) p.reject(error);
    });
    child.once("error", (e) => {
      for (const p of this.pending.splice(0)) p.reject(e);
    });
    return child;
  }
}
