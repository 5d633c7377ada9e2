/** The runner's side of dist/analyze.js (see analyze-worker.ts): analysis in a short-lived process. */
import { fork } from "node:child_process";
import type { TideflowDiagnostic, WorkflowModel } from "../protocol/model";

export interface AnalyzeRequest {
  root: string;
  /** Absolute path of the workflow file. */
  file: string;
}

export type AnalyzeResponse =
  | { ok: true; workflow?: WorkflowModel; errors: TideflowDiagnostic[] }
  /** `reason` completes "<file> …". */
  | { ok: false; reason: string };

export function analyzeInWorker(analyzerPath: string, request: AnalyzeRequest): Promise<AnalyzeResponse> {
  return new Promise((resolve, reject) => {
    const child = fork(analyzerPath, [], { stdio: ["ignore", "ignore", "pipe", "ipc"] });
    let answer: AnalyzeResponse | undefined;
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()).slice(-4000));
    child.once("message", (m: AnalyzeResponse) => (answer = m));
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (answer) resolve(answer);
      else reject(new Error(`the analyzer process ended (${signal ?? `code ${code}`}) without an answer${stderr ? `: ${stderr.trim()}` : ""}`));
    });
    child.send(request);
  });
}
