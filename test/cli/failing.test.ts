/**
 * A run that does not succeed says why on stderr: each failed task instance with its
 * outcome, the last line it wrote to stderr and where its log is. `tideflow runs` lists
 * the newest run first. Real CLI, real runner (issue 20).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, test } from "node:test";
import { type Workspace, workspace } from "../runner/fixture";

const FLOW = `import { workflow, shell } from "tideflow";
export const load_table = shell("load_table", "echo loading; echo 'ERROR: table sales_raw does not exist' >&2; echo 'last words' >&2; exit 3");
export const report = shell("report", { upstream: [load_table] }, "true");
export default workflow("failing_flow", { timezone: "UTC", tasks: [load_table, report] });
`;

let ws: Workspace;
before(() => {
  ws = workspace({ "failing.flow.ts": FLOW });
});
after(async () => {
  await ws.dispose();
});

test("a failing test prints each failed task's outcome, last stderr line and log", async () => {
  const r = await ws.cli(["test", "failing.flow.ts", "--date", "2026-01-01"]);
  assert.equal(r.code, 1, r.stderr);
  const m = /^load_table failed: exit code 3\n {2}last words\n {2}log: (\S+) \(`tideflow logs (run-\d+) load_table`\)$/m.exec(r.stderr);
  assert.ok(m, r.stderr);
  assert.ok(existsSync(m[1]), `${m[1]} exists`);
  const logs = await ws.cli(["logs", m[2], "load_table"]);
  assert.match(logs.stdout, /stderr \S+ last words/);
  assert.doesNotMatch(r.stderr, /report/, "a task that did not run is not a failure");
});

test("a failing backfill names the business date of each failure, and caps the list", async () => {
  const r = await ws.cli(["backfill", "failing.flow.ts", "--from", "2026-01-01", "--to", "2026-01-07"]);
  assert.equal(r.code, 1, r.stderr);
  const named = r.stderr.match(/^load_table \(2026-01-0\d\) failed: exit code 3$/gm) ?? [];
  assert.equal(named.length, 5, r.stderr);
  assert.match(r.stderr, /`tideflow logs run-\d+ load_table --date \S+`/);
  assert.match(r.stderr, /^… and 2 more: `tideflow show run-\d+`$/m);
});

test("tideflow runs lists the newest run first", async () => {
  const r = await ws.cli(["runs"]);
  assert.equal(r.code, 0, r.stderr);
  const ids = [...r.stdout.matchAll(/^(run-\d+) /gm)].map((x) => x[1]);
  assert.deepEqual(ids, ["run-2", "run-1"]);
  const json = await ws.cli(["runs", "--json"]);
  assert.deepEqual((JSON.parse(json.stdout) as { id: string }[]).map((x) => x.id), ["run-2", "run-1"]);
});
