/**
 * dist/analyze.js: reads workflow files for run creation, in a child process.
 *
 * The analyzer needs TypeScript's parser: about 60 MB of RSS once loaded, and more while
 * it parses. The runner lives for hours and needs it only for a moment per run, so it
 * runs here, in a process whose memory all goes back to the OS when it exits (a worker
 * thread's did not: the runner kept ~60 MB after its first run). The runner keeps the
 * process for a short while after a request, so that a burst of runs loads it once.
 *
 * Only the file itself is analyzed, not the workspace around it: a run takes one
 * workflow, and its upstreams in other workflows count as satisfied (SPEC §3), so
 * cross-file diagnostics do not concern it (the engine refuses a cycle on its own).
 *
 * Protocol: `AnalyzeRequest` IPC messages in, one `AnalyzeResponse` per request out, in order.
 */
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { analyzeFile } from "../server/analyzer/analyze";
import { isWorkflowFile } from "../server/workspace-scan";
import type { AnalyzeRequest, AnalyzeResponse } from "./analyze";

async function analyze({ file }: AnalyzeRequest): Promise<AnalyzeResponse> {
  if (!isWorkflowFile(file)) return { ok: false, reason: "is not a workflow file (*.flow.ts or *.flow.js)" };
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    return { ok: false, reason: `cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
  }
  const analysis = analyzeFile(pathToFileURL(file).href, text);
  return { ok: true, workflow: analysis.workflow, errors: analysis.diagnostics.filter((d) => d.severity === 1) };
}

// One at a time, in order: the runner matches answers to requests by order.
let queue = Promise.resolve();
process.on("message", (request: AnalyzeRequest) => {
  queue = queue.then(() =>
    analyze(request)
      .catch((e: unknown): AnalyzeResponse => ({ ok: false, reason: `cannot be analyzed: ${e instanceof Error ? e.message : String(e)}` }))
      .then((response) => new Promise<void>((resolve) => process.send!(response, () => resolve()))),
  );
});
// The runner went away (or let us go): nothing more will come.
process.on("disconnect", () => process.exit(0));
