/**
 * `tideflow check` and `tideflow dag`: the commands that work on files alone. They load the
 * analyzer, and with it TypeScript's parser, so they are bundled apart (dist/cli-files.js)
 * and loaded only when one of them runs: the runner commands start without them. Here,
 * beside the analyzer, not in runner/ with the rest of the CLI: the CLI's entry
 * (`runner/cli.ts`) reaches them only through `protocol/cli-files.ts`, so the runner's
 * code imports nothing of the server's.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { UsageError, workspaceOf } from "../common/cli-usage";
import type { CheckOptions, DagOptions, FileCommands } from "../protocol/cli-files";
import type { TideflowDiagnostic } from "../protocol/model";
import { layoutDag } from "./dag/layout";
import { renderDagSvg } from "./dag/svg";
import { isDirectory, isWorkflowFile, loadWorkspace } from "./workspace-scan";

const SEVERITY_NAME: Record<number, string> = { 1: "error", 2: "warning", 3: "info", 4: "hint" };

/** The workspace a file belongs to: --workspace, else the current directory if it holds the file. */
function workspaceFor(target: string, flag: string | undefined, targetIsDir: boolean): string {
  if (flag !== undefined) return workspaceOf(flag);
  if (targetIsDir) return target;
  const cwd = process.cwd();
  return target.startsWith(cwd + sep) ? cwd : dirname(target);
}

export async function check(a: CheckOptions): Promise<number> {
  const positionals = a.paths;
  const targets: { path: string; isDir: boolean }[] = [];
  for (const p of positionals) {
    const path = resolve(p);
    const isDir = await isDirectory(path);
    if (!isDir && !isWorkflowFile(path)) throw new UsageError(`${p} is not a *.flow.ts / *.flow.js file or a directory`);
    targets.push({ path, isDir });
  }
  // One workspace gives the cross-file checks their context: --workspace, the directory
  // named, or the current directory.
  const root = workspaceFor(targets[0].path, a.workspace, targets.length === 1 && targets[0].isDir);
  const index = await loadWorkspace(root, targets.filter((t) => !t.isDir).map((t) => t.path));
  for (const t of targets.filter((t) => t.isDir && !(t.path + sep).startsWith(root + sep))) {
    for (const f of (await loadWorkspace(t.path)).all()) index.set(f);
  }
  const files = [...index.all()]
    .filter((f) => {
      const path = fileURLToPath(f.uri);
      return targets.some((t) => (t.isDir ? path.startsWith(t.path + sep) : path === t.path));
    })
    .sort((a, b) => a.uri.localeCompare(b.uri));
  for (const t of targets) {
    if (!t.isDir && !files.some((f) => fileURLToPath(f.uri) === t.path)) throw new UsageError(`cannot read ${relative(process.cwd(), t.path)}`);
  }

  let errors = 0;
  let warnings = 0;
  const report = files.map((f) => {
    const diagnostics = [...index.diagnostics(f.uri)].sort(byPosition);
    errors += diagnostics.filter((d) => d.severity === 1).length;
    warnings += diagnostics.filter((d) => d.severity === 2).length;
    return { path: relative(process.cwd(), fileURLToPath(f.uri)) || ".", workflow: f.workflow?.id ?? null, diagnostics };
  });
  if (a.json) {
    process.stdout.write(`${JSON.stringify({ files: report, errors, warnings }, null, 2)}\n`);
  } else {
    for (const f of report) {
      for (const d of f.diagnostics) {
        process.stdout.write(`${f.path}:${d.range.start.line + 1}:${d.range.start.character + 1}: ${SEVERITY_NAME[d.severity]} [${d.code}] ${d.message}\n`);
      }
    }
    process.stdout.write(`${files.length} workflow file${files.length === 1 ? "" : "s"} checked: ${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}\n`);
  }
  return errors > 0 ? 1 : 0;
}

export async function dag(a: DagOptions): Promise<number> {
  const svgOut = a.svg;
  if (!svgOut) throw new UsageError("dag needs --svg OUT");
  const target = resolve(a.path);
  const index = await loadWorkspace(workspaceFor(target, a.workspace, false), [target]);
  const file = index.get(pathToFileURL(target).href);
  if (!file) throw new UsageError(`cannot read ${a.path}`);
  if (!file.workflow) {
    process.stderr.write(`${a.path}: no workflow to draw (run \`tideflow check ${a.path}\` to see why)\n`);
    return 1;
  }
  const graph = index.graph(file.workflow.id);
  if (!graph || index.workflowFile(file.workflow.id) !== file) {
    process.stderr.write(`${a.path}: workflow id \`${file.workflow.id}\` is defined in another file too\n`);
    return 1;
  }
  const svg = renderDagSvg(layoutDag(graph), { title: file.workflow.id });
  if (svgOut === "-") {
    process.stdout.write(svg);
  } else {
    const out = resolve(svgOut);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, svg);
    process.stdout.write(`${relative(process.cwd(), out)}: ${graph.nodes.length} nodes, ${graph.edges.length} edges\n`);
  }
  // What could be drawn is written; a file with errors still fails, saying which.
  const errors = index.diagnostics(file.uri).filter((d) => d.severity === 1).sort(byPosition);
  if (errors.length === 0) return 0;
  const shown = relative(process.cwd(), target) || a.path;
  for (const d of errors) process.stderr.write(`${shown}:${d.range.start.line + 1}:${d.range.start.character + 1}: error [${d.code}] ${d.message}\n`);
  process.stderr.write(`${shown} has ${errors.length} error${errors.length === 1 ? "" : "s"}: the DAG drawn may be incomplete\n`);
  return 1;
}

function byPosition(a: TideflowDiagnostic, b: TideflowDiagnostic): number {
  return a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character;
}

// What the CLI's entry requires this bundle as: a mismatch is a type error here.
({ check, dag }) satisfies FileCommands;
