/**
 * `tideflow`: the command line, built from one command table. `check` and `dag` work on
 * files alone (and live in dist/cli-files.js, loaded only by them); the commands that run
 * instances talk to the workspace's runner.
 *
 * Exit codes (docs/cli.md): 0 done, 1 refused or did not succeed, 2 usage, 3 internal
 * error, 4 no runner running for a command that only reads.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { RunnerError, RunnerStartError } from "../common/runner-client";
import { isUsageError } from "../common/cli-usage";
import { calendarDateProblem } from "../common/zone";
import type { FileCommands } from "../protocol/cli-files";
import { commandHelp, didYouMean, parseCommand, shortUsage, type Args, type CommandSpec, type OptionSpec } from "./cli/args";
import { CommandError, NoRunnerError, STATE_FILTERS, logs, operate, rerunDownstream, runnerCommand, runs, show, startRun } from "./cli-runner";
import { OPERATIONS } from "../protocol/operations";

/** check and dag, from their own bundle (server/cli-files.ts): it holds the analyzer and TypeScript (~11 MB). */
function files(): FileCommands {
  // A require of a computed path is left alone by esbuild, so the entry stays small.
  const path = join(__dirname, "cli-files.js");
  return require(path) as FileCommands;
}

const DATE: OptionSpec["pattern"] = { test: /^\d{4}-\d{2}-\d{2}$/, expected: "a date as YYYY-MM-DD" };
const calendarDate = (raw: string) => {
  const problem = calendarDateProblem(raw);
  return problem === undefined ? undefined : `is not a calendar date: ${problem}`;
};
const json: OptionSpec = { type: "boolean", help: "print one JSON document" };
/** --date of the commands on an existing run: a bizdate, a cyctime prefix or an instance id. */
const pickDate: OptionSpec = { type: "string", value: "D", help: "the workflow instance(s): a bizdate, a cyctime prefix (2026-11-20T03) or an instance id" };

function runOptions(kind: "test" | "backfill"): Record<string, OptionSpec> {
  return {
    ...(kind === "test"
      ? { date: { type: "string", value: "YYYY-MM-DD", pattern: DATE, check: calendarDate, help: "the bizdate (default: yesterday)" } }
      : {
          from: { type: "string", value: "YYYY-MM-DD", pattern: DATE, check: calendarDate, help: "the first bizdate" },
          to: { type: "string", value: "YYYY-MM-DD", pattern: DATE, check: calendarDate, help: "the last bizdate" },
        }),
    task: { type: "string", value: "ID", multiple: true, help: "run only this task (repeat for more)" },
    downstream: { type: "boolean", help: "with --task: also every task downstream of those" },
    ...(kind === "backfill"
      ? {
          parallel: { type: "integer", value: "N", min: 1, help: "workflow instances at once (default 1)" },
          order: { type: "string", value: "asc|desc", choices: ["asc", "desc"], help: "bizdate order (default asc)" },
        }
      : {}),
    json: { type: "boolean", help: "print the ended run (or the plan) as one JSON document" },
    detach: { type: "boolean", help: "return at once with the run id" },
    "dry-run": { type: "boolean", help: "print what the run would have, create nothing" },
  };
}


/** Every command: its usage, its options, whether it needs a runner, its handler. */
const COMMANDS: CommandSpec[] = [
  {
    name: "check",
    usage: "check <file|dir>... [--json] [--workspace DIR]",
    summary: "Validate workflow files; exit 1 when any has an error (usable as a pre-commit hook).",
    positionals: { min: 1, max: Infinity, what: "one or more files or directories" },
    options: { json },
    runner: "none",
    run: (a) => files().check({ paths: a.positionals, workspace: a.string("workspace"), json: a.flag("json") }),
  },
  {
    name: "dag",
    usage: "dag <file> --svg OUT [--workspace DIR]",
    summary: 'Lay out a workflow\'s DAG and write it as SVG (OUT "-" writes to stdout).',
    positionals: { min: 1, max: 1, what: "one workflow file" },
    options: { svg: { type: "string", value: "OUT", help: 'the SVG file to write ("-": stdout)' } },
    runner: "none",
    run: (a) => files().dag({ path: a.positionals[0], svg: a.string("svg"), workspace: a.string("workspace") }),
  },
  {
    name: "test",
    usage: "test <file> [--task ID]... [--downstream] [--date YYYY-MM-DD] [--json] [--detach|--dry-run]",
    summary: "Run a test instance (one bizdate; default yesterday) and wait for it.\nExit 0 only if every task instance succeeded.",
    positionals: { min: 1, max: 1, what: "one workflow file" },
    options: runOptions("test"),
    elsewhere: Object.fromEntries(["from", "to", "parallel", "order"].map((f) => [f, `--${f} is for backfill; a test runs one bizdate (--date)`])),
    runner: "starts",
    run: (a) => startRun("test", a),
  },
  {
    name: "backfill",
    usage: "backfill <file> --from YYYY-MM-DD --to YYYY-MM-DD [--task ID]... [--downstream] [--parallel N] [--order asc|desc] [--json] [--detach|--dry-run]",
    summary:
      "Run one workflow instance per cron fire time whose bizdate is in the range, and wait.\n" +
      "Exit 0 only if every task instance succeeded. --detach returns at once with the run\n" +
      "id; --dry-run prints the workflow instances and tasks the run would have.",
    positionals: { min: 1, max: 1, what: "one workflow file" },
    options: runOptions("backfill"),
    elsewhere: { date: "backfill takes --from and --to, not --date" },
    runner: "starts",
    run: (a) => startRun("backfill", a),
  },
  {
    name: "runs",
    usage: "runs [--state STATE] [--json]",
    summary: "List the workspace's runs with their task instances counted by state.",
    positionals: { min: 0, max: 0, what: "no arguments (did you mean `tideflow show <run>`?)" },
    options: { state: { type: "string", value: "STATE", choices: STATE_FILTERS, help: "runs in this run state, or having task instances in this task state" }, json },
    runner: "reads",
    run: runs,
  },
  {
    name: "show",
    usage: "show <run> [--date D] [--all] [--history] [--json]",
    summary:
      'Show a run: its workflow instances and task instances. <run>: run-3, 3 or "last".\n' +
      "A run of more than 200 task instances is summarised: counts per state, then the failed,\n" +
      "killed, running and paused ones (20 of each); --all shows every instance.",
    positionals: { min: 1, max: 1, what: "one run id (see `tideflow runs`)" },
    options: {
      date: pickDate,
      all: { type: "boolean", help: "every workflow instance, however many" },
      history: { type: "boolean", help: "each task instance's state changes" },
      json,
    },
    runner: "reads",
    run: show,
  },
  {
    name: "logs",
    usage: "logs <run> <task> [--date D] [--attempt N] [--follow]",
    summary: "Print a task instance's log (its last attempt unless --attempt).",
    positionals: { min: 2, max: 2, what: "a run and a task: tideflow logs <run> <task>" },
    options: {
      date: pickDate,
      attempt: { type: "integer", value: "N", min: 1, help: "that attempt's log" },
      follow: { type: "boolean", short: "f", help: "go on printing new lines until the task instance ends" },
    },
    runner: "reads",
    run: logs,
  },
  ...OPERATIONS.map(
    ({ op, batch }): CommandSpec => ({
      name: op,
      usage: `${op} <run> [<task>] [--date D] [--json]`,
      summary: `${op[0].toUpperCase()}${op.slice(1)} a task instance.\nWithout a task: ${batch} (with --date: of those instances only).`,
      positionals: { min: 1, max: 2, what: `a run and optionally a task: tideflow ${op} <run> [<task>]` },
      options: { date: pickDate, json },
      runner: "starts",
      run: (a) => operate(op, a),
    }),
  ),
  {
    name: "rerun-downstream",
    usage: "rerun-downstream <run> <task> [--only ID]... [--date D] [--json]",
    summary: "Rerun a task and the tasks downstream of it (or only those of --only), in dependency order.",
    positionals: { min: 2, max: 2, what: "a run and a task: tideflow rerun-downstream <run> <task>" },
    options: { only: { type: "string", value: "ID", multiple: true, help: "rerun only this downstream task (repeat for more)" }, date: pickDate, json },
    runner: "starts",
    run: rerunDownstream,
  },
  {
    name: "runner",
    usage: "runner start|stop|status [--json]",
    summary: "Start, stop or ask about the workspace's runner (its state is in .tideflow/).",
    positionals: { min: 1, max: 1, what: "start, stop or status" },
    options: { json },
    // `runner start` starts one; stop and status never do.
    runner: "starts",
    run: runnerCommand,
  },
];

function overview(): string {
  const lines = COMMANDS.map((c) => `  ${c.usage}\n      ${c.summary.split("\n")[0]}\n`).join("");
  return (
    `usage: tideflow <command> [options]      tideflow <command> --help      tideflow --version\n\n${lines}\n` +
    `  <run> is a run id (run-3), its number (3) or "last". --date picks a workflow instance\n` +
    `  by bizdate (YYYY-MM-DD), or by cyctime (2026-11-20T03) when a bizdate has several.\n` +
    `  Every command takes --workspace DIR (default: the current directory). test, backfill\n` +
    `  and the operations start the workspace's runner when none is running; runs, show and\n` +
    `  logs never do (exit 4). Exit codes: 0 done, 1 refused or failed, 2 usage, 3 internal error.\n`
  );
}

function version(): string {
  // package.json sits beside dist/ in the package and in a checkout.
  const pkg = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/** The command being run, for the usage line of an error it throws. */
let current: CommandSpec | undefined;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    const about = name === "help" && rest[0] ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write(about ? commandHelp(about) : overview());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`tideflow ${version()}\n`);
    return 0;
  }
  const spec = COMMANDS.find((c) => c.name === name);
  if (!spec) {
    const guess = didYouMean(name, COMMANDS.map((c) => c.name));
    throw new CommandLineError(`unknown command "${name}"${guess ? `; did you mean "${guess}"?` : ""}`);
  }
  current = spec;
  const args: Args = parseCommand(spec, rest);
  if (args.flag("help")) {
    process.stdout.write(commandHelp(spec));
    return 0;
  }
  return spec.run(args);
}

/** A usage error outside any command (an unknown command). */
class CommandLineError extends Error {}

/**
 * Ends the process once stdout and stderr have taken everything written to them.
 * `process.exit()` right after a write to a pipe drops whatever the pipe had no room for
 * (64 KiB); the explicit exit after the flush keeps a socket that is still closing from
 * holding the command open.
 */
function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const flushed = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write("", flushed);
  process.stderr.write("", flushed);
}

// A reader that went away (`tideflow logs ... | head`) wants no more output: end quietly
// with 0, as a command whose output was cut short by its reader, not with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
}

/** A file-system refusal (.tideflow/ not writable…) as a sentence, or undefined. */
function fileSystemMessage(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof err.code !== "string" || !err.path) return undefined;
  const verb = err.syscall === "mkdir" ? "create" : err.syscall === "open" || err.syscall === "write" ? "write" : "use";
  const reason: Record<string, string> = { EACCES: "permission denied", EPERM: "permission denied", EROFS: "read-only file system", ENOSPC: "no space left", ENOTDIR: "a file is in the way" };
  if (!reason[err.code]) return undefined;
  const why = err.path.includes(".tideflow") ? " (the runner keeps the workspace's state there)" : "";
  return `cannot ${verb} ${err.path}: ${reason[err.code]}${why}`;
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (e: unknown) => {
    if (e instanceof CommandLineError) {
      process.stderr.write(`tideflow: ${e.message}\n${shortUsage(undefined)}`);
      return exitWhenFlushed(2);
    }
    if (isUsageError(e)) {
      const spec = (e.command ? COMMANDS.find((c) => c.name === e.command) : undefined) ?? current;
      process.stderr.write(`tideflow: ${e.message}\n${shortUsage(spec)}`);
      return exitWhenFlushed(2);
    }
    if (e instanceof RunnerError || e instanceof CommandError || e instanceof RunnerStartError) {
      process.stderr.write(`tideflow: ${e.message}\n`);
      return exitWhenFlushed(1);
    }
    if (e instanceof NoRunnerError) {
      process.stderr.write(`tideflow: ${e.message}\n`);
      return exitWhenFlushed(4);
    }
    const fs = fileSystemMessage(e);
    if (fs) {
      process.stderr.write(`tideflow: ${fs}\n`);
      return exitWhenFlushed(1);
    }
    process.stderr.write(`tideflow: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    exitWhenFlushed(3);
  },
);
