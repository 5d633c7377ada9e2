/** The `tideflow` command as a user runs it: a real process on real files. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import type { RunPlan } from "../../protocol/api";
import type { RunSummary } from "../../protocol/runner";
import { readRunnerInfo } from "../../common/runner-client";
import { processAlive } from "../../runner/exec/process-tree";
import { workspace } from "../runner/fixture";

const ROOT = resolve(__dirname, "../..");
const CLI = join(ROOT, "dist/cli.js");

function tideflow(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("check passes on the example workspace", () => {
  const r = tideflow(["check", "examples/daily-sales.flow.ts", "examples/crm.flow.ts", "examples/hourly-events.flow.ts", "examples/weekly-report.flow.ts", "--workspace", "examples"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /4 workflow files checked: 0 errors, 0 warnings/);
});

test("check on the broken examples exits 1 and shows every diagnostic code", () => {
  const r = tideflow(["check", "examples/broken", "--json"]);
  assert.equal(r.code, 1, r.stderr);
  const report = JSON.parse(r.stdout) as { files: { path: string; diagnostics: { code: string; range: { start: { line: number } } }[] }[]; errors: number };
  const codes = new Set(report.files.flatMap((f) => f.diagnostics.map((d) => d.code)));
  for (const code of ["parse-error", "missing-workflow", "invalid-id", "duplicate-task", "duplicate-workflow", "unknown-upstream", "cycle", "invalid-cron", "invalid-timezone", "invalid-duration", "invalid-option", "task-not-in-workflow", "not-static"]) {
    assert.ok(codes.has(code), `missing ${code}`);
  }
  assert.ok(report.errors > 10);
});

test("check's text output is file:line:col, usable from a pre-commit hook", () => {
  const dir = mkdtempSync(join(tmpdir(), "tideflow-cli-"));
  try {
    writeFileSync(join(dir, "a.flow.ts"), `import { workflow, task } from "tideflow";\nexport const x = task("x", { timeout: "forever" }, async () => {});\nexport default workflow("a", { tasks: [x] });\n`);
    const r = tideflow(["check", "a.flow.ts"], dir);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^a\.flow\.ts:2:39: error \[invalid-duration\] `timeout` "forever" is not a duration/m);
    writeFileSync(join(dir, "a.flow.ts"), `import { workflow, task } from "tideflow";\nexport const x = task("x", { timeout: "1h" }, async () => {});\nexport default workflow("a", { tasks: [x] });\n`);
    assert.equal(tideflow(["check", "."], dir).code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("dag writes an SVG with one box per task, cross-workflow upstreams included", () => {
  const dir = mkdtempSync(join(tmpdir(), "tideflow-cli-"));
  try {
    const out = join(dir, "daily.svg");
    const r = tideflow(["dag", "examples/daily-sales.flow.ts", "--svg", out, "--workspace", "examples"]);
    assert.equal(r.code, 0, r.stderr);
    const svg = readFileSync(out, "utf8");
    assert.match(svg, /<svg[^>]+xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.equal((svg.match(/<g class="node /g) ?? []).length, 7);
    assert.match(svg, /data-id="crm\.sync_accounts"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("dag on a file with errors writes what it can, prints the errors and exits 1", () => {
  const dir = mkdtempSync(join(tmpdir(), "tideflow-cli-"));
  try {
    writeFileSync(join(dir, "bad.flow.ts"), `import { workflow, shell } from "tideflow";\nexport const a = shell("a", { timeout: "soon" }, "true");\nexport const b = shell("b", { upstream: [a] }, "true");\nexport default workflow("bad", { tasks: [a, b] });\n`);
    const out = join(dir, "bad.svg");
    const r = tideflow(["dag", "bad.flow.ts", "--svg", out], dir);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal((readFileSync(out, "utf8").match(/<g class="node /g) ?? []).length, 2, "still drawn");
    assert.match(r.stderr, /^bad\.flow\.ts:2:\d+: error \[invalid-duration\] /m);
    assert.match(r.stderr, /^bad\.flow\.ts has 1 error: the DAG drawn may be incomplete$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("usage errors say what is wrong and exit 2", () => {
  const r = tideflow(["check"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /check takes one or more files or directories/);
  assert.equal(tideflow(["frobnicate"]).code, 2);
  assert.match(tideflow(["dag", "examples/crm.flow.ts"]).stderr, /dag needs --svg OUT/);
  assert.match(tideflow(["check", "README.md"]).stderr, /is not a \*\.flow\.ts/);
  const missing = tideflow(["check", "examples/nope.flow.ts"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read examples\/nope\.flow\.ts/);
});

test("test and backfill --dry-run print the plan and create nothing, starting the runner if none runs", async () => {
  const ws = workspace({
    "chain.flow.ts": `import { workflow, shell, task } from "tideflow";
export const a = shell("a", "echo a");
export const b = shell("b", { upstream: [a] }, "echo b");
export const c = task("c", { upstream: [b] }, async () => {});
export const d = shell("d", { upstream: [a] }, "echo d");
export default workflow("chain", { schedule: "30 2 * * *", timezone: "Asia/Shanghai", tasks: [a, b, c, d] });
`,
  });
  try {
    assert.equal(readRunnerInfo(ws.dir), undefined);
    const r = await ws.cli(["backfill", "chain.flow.ts", "--from", "2026-11-01", "--to", "2026-11-03", "--order", "desc", "--parallel", "2", "--dry-run"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /started the runner \(pid \d+\)/);
    assert.ok(processAlive(readRunnerInfo(ws.dir)!.pid), "the runner runs");
    assert.equal(
      r.stdout,
      "dry run, nothing created: backfill of chain (chain.flow.ts); parallelism 2, order desc\n" +
        "tasks, in dependency order: a, b (after a), c (after b), d (after a)\n\n" +
        "  2026-11-03  cyctime 2026-11-04T02:30:00+08:00\n" +
        "  2026-11-02  cyctime 2026-11-03T02:30:00+08:00\n" +
        "  2026-11-01  cyctime 2026-11-02T02:30:00+08:00\n\n" +
        "would run 3 workflow instances × 4 tasks = 12 task instances\n",
    );

    const json = await ws.cli(["test", "chain.flow.ts", "--task", "b", "--downstream", "--date", "2026-11-19", "--dry-run", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    assert.doesNotMatch(json.stderr, /started the runner/, "the runner started by the first command serves");
    const plan = JSON.parse(json.stdout) as RunPlan;
    assert.deepEqual(plan, {
      kind: "test",
      file: join(ws.dir, "chain.flow.ts"),
      workflow: "chain",
      tasks: [
        { id: "b", kind: "shell", upstream: [] },
        { id: "c", kind: "task", upstream: ["b"] },
      ],
      instances: [{ bizdate: "2026-11-19", cyctime: "2026-11-20T02:30:00+08:00" }],
      parallelism: 1,
      order: "asc",
      total: 2,
    });

    const refused = await ws.cli(["test", "chain.flow.ts", "--task", "zzz", "--dry-run"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^tideflow: workflow `chain` has no task `zzz`; it has `a`, `b`, `c`, `d`$/m);
    const usage = await ws.cli(["test", "chain.flow.ts", "--dry-run", "--detach"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--dry-run creates no run/);

    const runs = await ws.cli(["runs", "--json"]);
    assert.deepEqual(JSON.parse(runs.stdout) as RunSummary[], []);
    const bundles = join(ws.dir, ".tideflow", "bundles");
    assert.deepEqual(existsSync(bundles) ? readdirSync(bundles) : [], []);
    assert.doesNotMatch(readFileSync(join(ws.dir, ".tideflow", "journal"), "utf8"), /run\.created/);
  } finally {
    await ws.dispose();
  }
});

test("usage lists --dry-run for test and backfill", () => {
  const r = tideflow(["help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /test <file> .*\[--detach\|--dry-run\]/);
  assert.match(r.stdout, /\[--order asc\|desc\] \[--json\] \[--detach\|--dry-run\]/);
});
