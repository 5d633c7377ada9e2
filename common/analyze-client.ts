/**
 * The parent's side of dist/analyze.js (`server/analyze-process.ts`): analysis in a child
 * process, kept warm for `idleMs` after its last answer, then let go. The messages are
 * `protocol/analyzer.ts`.
 *
 * In common/, not server/, because it has two parents: the language server (the
 * workspace index) and the runner (one workflow file per run). It loads none of the
 * analyzer — only `fork` and the messages — so the runner reads workflow files without
 * TypeScript's parser in its heap, and without importing the server's code.
 */
import { type ChildProcess, fork } from "node:child_process";
import type { FileAnalysis } from "../protocol/model";
import { unpackAnalysis, type AnalyzeRequest, type AnalyzeResponse, type FileResult } from "../protocol/analyzer";

type Pending = { resolve(r: AnalyzeResponse): void; reject(e: Error): void };
type Request = AnalyzeRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

export class AnalyzerProcess {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private stderr = "";

  constructor(
    private readonly path: string,
    private readonly idleMs = 30_000,
  ) {}

  /** One workflow file, for a run. */
  async analyzeFile(file: string): Promise<FileResult> {
    const r = await this.request({ kind: "file", file });
    if (r.kind !== "file") throw new Error(r.kind === "error" ? r.message : "unexpected answer");
    return r;
  }

  /** Many files, for an index: their analyses, and the uris that could not be read. */
  async index(files: { uri: string; path: string; maxFileSize?: number }[]): Promise<{ analyses: FileAnalysis[]; missing: string[] }> {
    const r = await this.request({ kind: "index", files });
    if (r.kind !== "index") throw new Error(r.kind === "error" ? r.message : "unexpected answer");
    return { analyses: r.analyses.map(unpackAnalysis), missing: r.missing };
  }

  /** Lets the process go now. */
  close(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.child?.connected) this.child.disconnect();
    this.child = undefined;
  }

  private request(body: Request): Promise<AnalyzeResponse> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const child = this.child ?? this.spawn();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      child.send({ ...body, id } as AnalyzeRequest);
    });
  }

  private spawn(): ChildProcess {
    const child = fork(this.path, [], { stdio: ["ignore", "ignore", "pipe", "ipc"] });
    this.child = child;
    this.stderr = "";
    child.stderr!.on("data", (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    child.on("message", (m: AnalyzeResponse) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m);
      if (this.pending.size === 0) {
        this.idleTimer = setTimeout(() => this.close(), this.idleMs);
        this.idleTimer.unref();
      }
    });
    const fail = (error: Error) => {
      if (this.child === child) this.child = undefined;
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
    };
    child.once("exit", (code, signal) => fail(new Error(`the analyzer process ended (${signal ?? `code ${code}`})${this.stderr ? `: ${this.stderr.trim()}` : ""}`)));
    child.once("error", fail);
    return child;
  }
}
