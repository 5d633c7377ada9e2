/**
 * The command line as a person meets it: --help per command, --version, "did you mean",
 * plain messages for bad values, a short usage on an error, and a clear message when
 * .tideflow/ cannot be written. The real CLI (dist/cli.js) in real processes.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CLI, ROOT } from "../runner/fixture";

function tideflow(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const COMMANDS = ["check", "dag", "test", "backfill", "runs", "show", "logs", "kill", "rerun", "set-success", "pause", "resume", "rerun-downstream", "runner"];

test("every command has --help: its usage, its options, exit 0, no runner needed", () => {
  for (const cmd of COMMANDS) {
    const r = tideflow([cmd, "--help"]);
    assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: tideflow ${cmd}\\b`), cmd);
    assert.match(r.stdout, /--workspace DIR/, cmd);
    assert.equal(r.stderr, "", cmd);
  }
  const backfill = tideflow(["backfill", "-h"]).stdout;
  for (const o of ["--from YYYY-MM-DD", "--to YYYY-MM-DD", "--task ID...", "--downstream", "--parallel N", "--order asc|desc", "--json", "--detach", "--dry-run"]) {
    assert.ok(backfill.includes(o), `backfill --help lists ${o}`);
  }
  // The overview names every command.
  const all = tideflow(["--help"]);
  assert.equal(all.code, 0);
  for (const cmd of COMMANDS) assert.match(all.stdout, new RegExp(`^  ${cmd}\\b`, "m"), cmd);
});

test("--version prints the package's version", () => {
  const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  for (const flag of ["--version", "-v"]) {
    const r = tideflow([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `tideflow ${version}\n`);
  }
});

/** A usage error: exit 2, the message, the command's own usage line and a pointer, nothing more. */
function assertUsageError(args: string[], message: RegExp, command?: string) {
  const r = tideflow(args);
  assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  assert.match(lines[0], message, args.join(" "));
  assert.doesNotMatch(r.stderr, /Option '|ERR_PARSE_ARGS|    at /, "no Node parser text, no stack");
  if (command) {
    assert.deepEqual(lines.slice(1), [lines[1], `see \`tideflow ${command} --help\``]);
    assert.match(lines[1], new RegExp(`^usage: tideflow ${command} `));
  } else {
    assert.deepEqual(lines.slice(1), ["see `tideflow --help`"]);
  }
}

test("mistyped commands and options get a did-you-mean", () => {
  assertUsageError(["sho", "1"], /^tideflow: unknown command "sho"; did you mean "show"\?$/);
  assertUsageError(["backfil", "x.flow.ts"], /^tideflow: unknown command "backfil"; did you mean "backfill"\?$/);
  assertUsageError(["frobnicate"], /^tideflow: unknown command "frobnicate"$/);
  assertUsageError(["runs", "--stat", "running"], /^tideflow: unknown option --stat for runs; did you mean --state\?$/, "runs");
  assertUsageError(["logs", "1", "a", "--atempt", "2"], /^tideflow: unknown option --atempt for logs; did you mean --attempt\?$/, "logs");
  assertUsageError(["runner", "stat"], /^tideflow: runner takes start, stop or status, got "stat"; did you mean status\?$/, "runner");
});

test("bad values get plain messages, not the argument parser's", () => {
  const backfill = ["backfill", "examples/crm.flow.ts", "--from", "2026-11-01", "--to", "2026-11-02"];
  assertUsageError([...backfill, "--parallel", "-1"], /^tideflow: --parallel expects an integer of 1 or more, got "-1"$/, "backfill");
  assertUsageError([...backfill, "--parallel", "x"], /^tideflow: --parallel expects an integer of 1 or more, got "x"$/, "backfill");
  assertUsageError([...backfill, "--parallel"], /^tideflow: --parallel needs a value \(N\)$/, "backfill");
  assertUsageError([...backfill, "--order", "dsc"], /^tideflow: --order expects asc or desc, got "dsc"; did you mean desc\?$/, "backfill");
  assertUsageError([...backfill.slice(0, 4), "--to", "11/02/2026"], /^tideflow: --to expects a date as YYYY-MM-DD, got "11\/02\/2026"$/, "backfill");
  assertUsageError(["runs", "--json=yes"], /^tideflow: --json takes no value, got "yes"$/, "runs");
  assertUsageError(["show"], /^tideflow: show takes one run id \(see `tideflow runs`\)$/, "show");
  assertUsageError(["check"], /^tideflow: check takes one or more files or directories$/, "check");
});

/**
 * A copy of what `tideflow test` runs before it reaches .tideflow/ (the dist/cli.js bundle,
 * and ../package.json it reads its version from), in a fresh temp folder that everyone may
 * enter: the checkout itself may live under a folder only its owner enters (mktemp -d).
 */
function cliCopy(root: string): string {
  mkdirSync(join(root, "dist"));
  const cli = join(root, "dist", "cli.js");
  copyFileSync(CLI, cli);
  copyFileSync(join(ROOT, "package.json"), join(root, "package.json"));
  return cli;
}

test("an unwritable .tideflow/ is a clear message, not a stack trace", (t) => {
  const root = mkdtempSync(join(tmpdir(), "tideflow-ro-"));
  const dir = join(root, "ws");
  try {
    chmodSync(root, 0o755);
    mkdirSync(dir);
    const cli = cliCopy(root);
    writeFileSync(join(dir, "one.flow.ts"), `import { workflow, shell } from "tideflow";\nexport const a = shell("a", "true");\nexport default workflow("one", { tasks: [a] });\n`);
    chmodSync(dir, 0o555);
    // root writes anywhere: run the CLI as nobody then.
    const asUser = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
    if (asUser.length > 0) {
      // nobody needs to reach node and the temp folder; where either lives under a folder
      // closed to others (TMPDIR, a Node under /root), this cannot be arranged.
      const probe = spawnSync(asUser[0], [...asUser.slice(1), process.execPath, cli, "--version"], { cwd: dir, encoding: "utf8", timeout: 30_000 });
      if (probe.status !== 0) {
        t.skip(`running as root, and nobody cannot run ${process.execPath} ${cli} in ${dir}: ${probe.error?.message ?? /^\w*Error\b.*$/m.exec(probe.stderr)?.[0] ?? probe.stderr.trim()}`);
        return;
      }
    }
    const argv = [...asUser, process.execPath, cli, "test", "one.flow.ts"];
    const r = spawnSync(argv[0], argv.slice(1), { cwd: dir, encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.equal(r.stderr, `tideflow: cannot create ${join(dir, ".tideflow")}: permission denied (the runner keeps the workspace's state there)\n`);
  } finally {
    if (existsSync(dir)) chmodSync(dir, 0o755);
    rmSync(root, { recursive: true, force: true });
  }
});

test("docs/cli.md names every option of every command's table entry", () => {
  const docs = readFileSync(join(ROOT, "docs/cli.md"), "utf8");
  for (const cmd of COMMANDS) {
    const help = tideflow([cmd, "--help"]).stdout;
    for (const [option] of help.matchAll(/--[a-z][a-z-]*/g)) {
      assert.ok(docs.includes(option), `docs/cli.md does not mention ${cmd}'s ${option}`);
    }
  }
});
