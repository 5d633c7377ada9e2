/**
 * dist/analyze.js: the analyzer in a child process, for the two long-lived processes that
 * would otherwise carry its garbage for hours:
 * - the runner reads one workflow file per run creation (`kind: "file"`), and does not
 *   load TypeScript's parser at all (idle runner: 50 MB instead of 144 MB);
 * - the language server indexes the workspace's files at start (`kind: "index"`), so the
 *   parse garbage of hundreds of files is freed with this process instead of staying in
 *   the server's heap.
 * A process, not a worker thread: its memory all goes back to the OS when it exits (a
 * thread's did not). The parent keeps it a short while for bursts
 * (`common/analyze-client.ts`).
 *
 * Protocol (`protocol/analyzer.ts`): `AnalyzeRequest` IPC messages in; one
 * `AnalyzeResponse` with the same `id` each, in order.
 */
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { analyzeFile } from "./analyzer/analyze";
import { WorkspaceIndex } from "./analyzer/workspace";
import { packAnalysis, type AnalyzeRequest, type AnalyzeResponse } from "../protocol/analyzer";
import { SEVERITY } from "../protocol/model";
import { isWorkflowFile } from "./workspace-scan";

async function answer(request: AnalyzeRequest): Promise<AnalyzeResponse> {
  if (request.kind === "index") {
    const analyses = [];
    const missing: string[] = [];
    for (const f of request.files) {
      let text: string;
      try {
        text = await readFile(f.path, "utf8");
      } catch {
        missing.push(f.uri);
        continue;
      }
      analyses.push(packAnalysis(analyzeFile(f.uri, text, { maxFileSize: f.maxFileSize })));
    }
    return { id: request.id, kind: "index", analyses, missing };
  }
  // Only the file itself: a run takes one workflow, and its upstreams in other workflows
  // count as satisfied (SPEC §3), so cross-file diagnostics do not concern it, but for a
  // cycle within the file, which refuses every run of it, any selection of its tasks
  // included, with the editor's message.
  const { id, file } = request;
  if (!isWorkflowFile(file)) return { id, kind: "file", ok: false, why: "not-a-workflow-file", reason: "is not a workflow file (*.flow.ts or *.flow.js)" };
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    return { id, kind: "file", ok: false, why: "unreadable", reason: `cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
  }
  const uri = pathToFileURL(file).href;
  const analysis = analyzeFile(uri, text);
  const alone = new WorkspaceIndex();
  alone.set(analysis);
  const cycles = alone.diagnostics(uri).filter((d) => d.code === "cycle");
  const errors = [...analysis.diagnostics, ...cycles]
    .filter((d) => d.severity === SEVERITY.error)
    .sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
  return { id, kind: "file", ok: true, workflow: analysis.workflow, errors };
}

let queue = Promise.resolve();
process.on("message", (request: AnalyzeRequest) => {
  queue = queue.then(() =>
    answer(request)
      .catch((e: unknown): AnalyzeResponse => ({ id: request.id, kind: "error", message: e instanceof Error ? e.message : String(e) }))
      .then((response) => new Promise<void>((resolve) => process.send!(response, () => resolve()))),
  );
});
// The parent went away, or let us go: nothing more will come.
process.on("disconnect", () => process.exit(0));
