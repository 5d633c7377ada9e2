/**
 * Commands that only read never start a runner, and a mistyped --workspace never creates
 * a folder. Real CLI processes; the OS says whether a runner process exists.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { readRunnerInfo } from "../../common/runner-client";
import { workspace } from "../runner/fixture";

const FLOW = `import { workflow, shell } from "tideflow";
export const a = shell("a", "echo a");
export default workflow("one", { tasks: [a] });
`;

/** Runner processes (dist/runner.js) serving `dir`, as ps sees them. */
function runnersFor(dir: string): string[] {
  const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.includes("runner.js") && l.includes(`--workspace ${dir}`));
}

test("runs, show and logs with no runner say so, exit 4 and start none", async () => {
  const ws = workspace({ "one.flow.ts": FLOW });
  try {
    for (const args of [["runs"], ["runs", "--json"], ["show", "1"], ["logs", "1", "a"], ["logs", "1", "a", "--follow"]]) {
      const r = await ws.cli(args, { timeoutMs: 20_000 });
      assert.equal(r.code, 4, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^tideflow: no runner is running for .*; `tideflow runner start` starts it/m, args.join(" "));
      assert.doesNotMatch(r.stderr, /started the runner/);
      assert.equal(r.stdout, "");
    }
    assert.equal(readRunnerInfo(ws.dir), undefined);
    assert.deepEqual(runnersFor(ws.dir), []);
    assert.equal(existsSync(join(ws.dir, ".tideflow")), false, "nothing written to the workspace");
  } finally {
    await ws.dispose();
  }
});

test("runner stop with no runner says so and starts none", async () => {
  const ws = workspace({ "one.flow.ts": FLOW });
  try {
    const r = await ws.cli(["runner", "stop"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^no runner is running for /);
    assert.doesNotMatch(r.stdout + r.stderr, /started|stopped the runner/);
    assert.deepEqual(runnersFor(ws.dir), []);
    assert.equal(existsSync(join(ws.dir, ".tideflow")), false);
  } finally {
    await ws.dispose();
  }
});

test("a --workspace that does not exist is an error and no folder is created", async () => {
  const ws = workspace({ "one.flow.ts": FLOW });
  try {
    const typo = join(ws.dir, "no-such", "place");
    for (const args of [["runs"], ["runner", "start"], ["runner", "status"], ["test", "one.flow.ts"], ["check", "one.flow.ts"]]) {
      const r = await ws.cli([...args, "--workspace", typo], { timeoutMs: 20_000 });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^tideflow: --workspace ${typo.replace(/[/.]/g, "\\$&")}: no such folder`, "m"), args.join(" "));
      assert.equal(existsSync(join(ws.dir, "no-such")), false, `${args.join(" ")} created the folder`);
    }
    const file = await ws.cli(["runs", "--workspace", "one.flow.ts"]);
    assert.equal(file.code, 2);
    assert.match(file.stderr, /--workspace one\.flow\.ts: not a folder/);
    assert.deepEqual(runnersFor(typo), []);
  } finally {
    await ws.dispose();
  }
});

test("runs --state running with none running says no running runs", async () => {
  const ws = workspace({ "one.flow.ts": FLOW });
  try {
    const done = await ws.cli(["test", "one.flow.ts", "--date", "2026-11-01"]);
    assert.equal(done.code, 0, done.stdout + done.stderr);
    const r = await ws.cli(["runs", "--state", "running"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "no running runs (1 run in all: `tideflow runs`)\n");
    const all = await ws.cli(["runs"]);
    assert.match(all.stdout, /^run-1\s+test\s+one\s+success/m);
  } finally {
    await ws.dispose();
  }
});
