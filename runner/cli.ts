/**
 * `tideflow`: the command line. `check` and `dag` work on files alone; the commands that
 * run instances talk to the workspace's runner.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { TideflowDiagnostic } from "../protocol/model";
import { RunnerError } from "../common/runner-client";
import { CommandError, UsageError, logs, operate, rerunDownstream, runnerCommand, runs, show, startRun } from "./cli-runner";

const USAGE = `usage: tideflow <command> [options]

  check <file|dir>... [--json] [--workspace DIR]
      Validate workflow files; exit 1 when any has an error (usable as a pre-commit hook).
  dag <file> --svg OUT [--workspace DIR]
      Lay out a workflow's DAG and write it as SVG (OUT "-" writes to stdout).

  test <file> [--task ID]... [--downstream] [--date YYYY-MM-DD] [--json] [--detach|--dry-run]
      Run a test instance (one bizdate; default yesterday) and wait for it; exit 0 only
      if every task instance succeeded.
  backfill <file> --from YYYY-MM-DD --to YYYY-MM-DD [--task ID]... [--downstream]
           [--parallel N] [--order asc|desc] [--json] [--detach|--dry-run]
      One workflow instance per cron fire time whose bizdate is in the range.
      --detach returns at once with the run id; --dry-run prints the workflow instances
      and tasks the run would have and creates nothing (--json: as one document).
  runs [--state STATE] [--json]
  show <run> [--date D] [--history] [--json]
  logs <run> <task> [--date D] [--attempt N] [--follow]
  kill|rerun|set-success|pause|resume <run> [<task>] [--date D]
      Without a task: the batch form on the run (or on the instances of --date):
      kill run, rerun failed, set every failed/killed task success, pause, resume.
  rerun-downstream <run> <task> [--only ID]... [--date D]
  runner start|stop|status

  <run> is a run id (run-3), its number (3) or "last". --date picks a workflow instance
  by bizdate (YYYY-MM-DD), or by cyctime (2026-11-20T03) when a bizdate has several.
  Runner commands talk to the runner of the current directory (or --workspace DIR)
  and start it in the background when none is running; its state is in .tideflow/.
`;

const SEVERITY_NAME: Record<number, string> = { 1: "error", 2: "warning", 3: "info", 4: "hint" };


async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "check":
      return check(rest);
    case "dag":
      return dag(rest);
    case "test":
    case "backfill":
      return startRun(command, rest);
    case "runs":
      return runs(rest);
    case "show":
      return show(rest);
    case "logs":
      return logs(rest);
    case "kill":
    case "rerun":
    case "set-success":
    case "pause":
    case "resume":
      return operate(command, rest);
    case "rerun-downstream":
      return rerunDownstream(rest);
    case "runner":
      return runnerCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** The workspace a file belongs to: --workspace, else the current directory if it holds the file. */
function workspaceFor(target: string, flag: string | undefined, targetIsDir: boolean): string {
  if (flag) return resolve(flag);
  if (targetIsDir) return target;
  const cwd = process.cwd();
  return target.startsWith(cwd + sep) ? cwd : dirname(target);
}

// The analyzer (TypeScript's parser inside) is loaded only by the commands that use it,
// so that the runner commands start fast.
const analyzer = () => import("../server/workspace-scan.js");

async function check(args: string[]): Promise<number> {
  const { isDirectory, isWorkflowFile, loadWorkspace } = await analyzer();
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false }, workspace: { type: "string" } },
  });
  if (positionals.length === 0) throw new UsageError("check takes one or more files or directories");
  const targets: { path: string; isDir: boolean }[] = [];
  for (const p of positionals) {
    const path = resolve(p);
    const isDir = await isDirectory(path);
    if (!isDir && !isWorkflowFile(path)) throw new UsageError(`${p} is not a *.flow.ts / *.flow.js file or a directory`);
    targets.push({ path, isDir });
  }
  // One workspace gives the cross-file checks their context: --workspace, the directory
  // named, or the current directory.
  const root = workspaceFor(targets[0].path, values.workspace, targets.length === 1 && targets[0].isDir);
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
  if (values.json) {
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

async function dag(args: string[]): Promise<number> {
  const { loadWorkspace } = await analyzer();
  const { layoutDag } = await import("../server/dag/layout.js");
  const { renderDagSvg } = await import("../server/dag/svg.js");
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { svg: { type: "string" }, workspace: { type: "string" } },
  });
  if (positionals.length !== 1) throw new UsageError("dag takes one workflow file");
  if (!values.svg) throw new UsageError("dag needs --svg OUT");
  const target = resolve(positionals[0]);
  const index = await loadWorkspace(workspaceFor(target, values.workspace, false), [target]);
  const file = index.get(pathToFileURL(target).href);
  if (!file) throw new UsageError(`cannot read ${positionals[0]}`);
  if (!file.workflow) {
    process.stderr.write(`${positionals[0]}: no workflow to draw (run \`tideflow check ${positionals[0]}\` to see why)\n`);
    return 1;
  }
  const graph = index.graph(file.workflow.id);
  if (!graph || index.workflowFile(file.workflow.id) !== file) {
    process.stderr.write(`${positionals[0]}: workflow id \`${file.workflow.id}\` is defined in another file too\n`);
    return 1;
  }
  const svg = renderDagSvg(layoutDag(graph), { title: file.workflow.id });
  if (values.svg === "-") {
    process.stdout.write(svg);
  } else {
    const out = resolve(values.svg);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, svg);
    process.stdout.write(`${relative(process.cwd(), out)}: ${graph.nodes.length} nodes, ${graph.edges.length} edges\n`);
  }
  return 0;
}

function byPosition(a: TideflowDiagnostic, b: TideflowDiagnostic): number {
  return a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError || (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))) {
      process.stderr.write(`tideflow: ${e.message}\n\n${USAGE}`);
      process.exit(2);
    }
    if (e instanceof RunnerError || e instanceof CommandError) {
      process.stderr.write(`tideflow: ${e.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`tideflow: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(3);
  },
);
