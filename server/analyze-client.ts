/**
 * The parent's side of dist/analyze.js (see analyze-process.ts): analysis in a child
 * process, kept warm for `idleMs` after its last answer, then let go.
 */
import { type ChildProcess, fork } from "node:child_process";
import type { FileAnalysis, TaskModel, TideflowDiagnostic, WorkflowModel } from "../protocol/model";

export type AnalyzeRequest =
  | { id: number; kind: "file"; /** Absolute path. */ file: string }
  | { id: number; kind: "index"; files: { uri: string; path: string; maxFileSize?: number }[] };

export type FileResult =
  | { ok: true; workflow?: WorkflowModel; errors: TideflowDiagnostic[] }
  /** `reason` completes "<file> …"; `why` says which of the two it is, for a program. */
  | { ok: false; why: "not-a-workflow-file" | "unreadable"; reason: string };

export type AnalyzeResponse =
  | ({ id: number; kind: "file" } & FileResult)
  | { id: number; kind: "index"; analyses: PackedAnalysis[]; /** Files that could not be read. */ missing: string[] }
  | { id: number; kind: "error"; message: string };

/**
 * A FileAnalysis as plain JSON. `tasks` shares its objects with `workflow.tasks`; across
 * the process boundary a shared task is sent once, as its index in `workflow.tasks`.
 */
export interface PackedAnalysis {
  uri: string;
  workflow?: WorkflowModel;
  tasks: (TaskModel | number)[];
  diagnostics: TideflowDiagnostic[];
}

export function packAnalysis(a: FileAnalysis): PackedAnalysis {
  const listed = new Map(a.workflow?.tasks.map((t, i) => [t, i]));
  return { uri: a.uri, workflow: a.workflow, tasks: a.tasks.map((t) => listed.get(t) ?? t), diagnostics: a.diagnostics };
}

export function unpackAnalysis(p: PackedAnalysis): FileAnalysis {
  return {
    uri: p.uri,
    ...(p.workflow ? { workflow: p.workflow } : {}),
    tasks: p.tasks.map((t) => (typeof t === "number" ? p.workflow!.tasks[t] : t)),
    diagnostics: p.diagnostics,
  };
}

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
