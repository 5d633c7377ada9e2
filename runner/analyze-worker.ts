/**
 * dist/analyze.js: reads a workflow file for run creation, in a child process.
 *
 * The analyzer needs TypeScript's parser: about 60 MB of RSS once loaded, and more while
 * it parses. The runner lives for hours and needs it only for a moment per run, so it
 * runs here, in a process whose memory all goes back to the OS when it exits (a worker
 * thread's did not: the runner kept ~60 MB after its first run). Input: one
 * `AnalyzeRequest` IPC message; output: one `AnalyzeResponse` message, then exit.
 */
import { pathToFileURL } from "node:url";
import { isWorkflowFile, loadWorkspace } from "../server/workspace-scan";
import type { AnalyzeRequest, AnalyzeResponse } from "./analyze";

async function analyze({ root, file }: AnalyzeRequest): Promise<AnalyzeResponse> {
  if (!isWorkflowFile(file)) return { ok: false, reason: "is not a workflow file (*.flow.ts or *.flow.js)" };
  // The whole workspace gives the cross-file checks (`workflow.task` upstreams) their context.
  const index = await loadWorkspace(root, [file]);
  const uri = pathToFileURL(file).href;
  const analysis = index.get(uri);
  if (!analysis) return { ok: false, reason: "cannot be read" };
  const errors = index.diagnostics(uri).filter((d) => d.severity === 1);
  return { ok: true, workflow: analysis.workflow, errors };
}

process.once("message", (request: AnalyzeRequest) => {
  analyze(request)
    .catch((e: unknown): AnalyzeResponse => ({ ok: false, reason: `cannot be analyzed: ${e instanceof Error ? e.message : String(e)}` }))
    .then((response) => process.send!(response, () => process.exit(0)));
});
