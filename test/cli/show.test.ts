/** `tideflow show` as a person reads it: real runs in a real runner, through the CLI. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { until, workspace, type Workspace } from "../runner/fixture";

let ws: Workspace;
let id: string;

before(async () => {
  ws = workspace({
    "pz.flow.ts": `import { workflow, shell } from "tideflow";
export const a = shell("a", "sleep 0.3");
export const b = shell("b", { upstream: [a] }, "echo b");
export default workflow("pz", { tasks: [a, b] });
`,
  });
  const r = await ws.cli(["test", "pz.flow.ts", "--date", "2026-11-01", "--detach"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  id = r.stdout.trim();
  const paused = await ws.cli(["pause", id, "b"]);
  assert.equal(paused.code, 0, paused.stderr);
  await until("a to succeed", async () => /✓ a\s+success/.test((await ws.cli(["show", id])).stdout));
});

after(async () => {
  await ws.dispose();
});

test("a run with a paused task is not shown as ended", async () => {
  const r = await ws.cli(["show", id]);
  assert.equal(r.code, 0, r.stderr);
  const [head, created] = r.stdout.split("\n");
  assert.match(head, new RegExp(`^${id}  test of pz \\(pz\\.flow\\.ts\\)  paused$`));
  assert.doesNotMatch(created, /ended/, created);
  assert.match(created, new RegExp(`1 task instance paused: \`tideflow resume ${id} b\``), created);
  assert.match(r.stdout, /^ {2}2026-11-01 {2}cyctime \S+ {2}paused$/m, "the instance is paused, not finished");
  assert.doesNotMatch(r.stdout, /finished/);
  const runs = await ws.cli(["runs"]);
  assert.match(runs.stdout, new RegExp(`^${id}\\s+test\\s+pz\\s+paused\\s+1\\s+1 success, 1 paused`, "m"));
});

test("show --date that matches nothing is an error, as kill's is; --date \"\" is invalid", async () => {
  const r = await ws.cli(["show", id, "--date", "2025-01-01"]);
  assert.equal(r.code, 1, r.stdout);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr, `tideflow: ${id} has no workflow instance for 2025-01-01; its bizdates are 2026-11-01\n`);
  const empty = await ws.cli(["show", id, "--date", ""]);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /^tideflow: --date needs a value \(D\), got ""$/m);
  const ok = await ws.cli(["show", id, "--date", "2026-11-01"]);
  assert.equal(ok.code, 0, ok.stderr);
});

test("show of a 3-year hourly backfill prints a summary, not every instance; --all lists every instance", async () => {
  // How fast that summary comes is a figure of `npm run bench -- scale`; what makes it
  // fast is asserted here: the output is a summary (fetching and printing the whole run
  // printed 4 MB and took over a second).
  const big = workspace({
    "big.flow.ts": `import { workflow, shell } from "tideflow";
export const a = shell("a", "sleep 60");
export const b = shell("b", { upstream: [a] }, "true");
export const c = shell("c", { upstream: [b] }, "true");
export const d = shell("d", { upstream: [c] }, "true");
export const e = shell("e", { upstream: [d] }, "true");
export default workflow("big", { schedule: "0 * * * *", timezone: "UTC", tasks: [a, b, c, d, e] });
`,
  });
  try {
    const created = await big.cli(["backfill", "big.flow.ts", "--from", "2023-11-01", "--to", "2026-10-31", "--detach"]);
    assert.equal(created.code, 0, created.stderr);
    const run = created.stdout.trim();
    await until("the first a to run", async () => /running \(1\)/.test((await big.cli(["show", run])).stdout), 60_000);
    const killed = await big.cli(["kill", run, "a", "--date", "2023-11-02T00"]);
    assert.equal(killed.code, 0, killed.stderr);
    // Whether `kill` answers before or after the instance is marked killed, the next a
    // runs only after: wait for both, not for "running" alone, which the killed one was.
    await until("the killed a and the next a to run", async () => {
      const { stdout } = await big.cli(["show", run]);
      return /killed \(1\)/.test(stdout) && /running \(1\)/.test(stdout);
    }, 60_000);

    const r = await big.cli(["show", run]);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.ok(out.length < 2_000, `${out.length} characters:\n${out}`);
    assert.match(out, /^ {2}26,304 workflow instances × 5 tasks: 131,518 not_run, 1 running, 1 killed$/m);
    assert.match(out, /^ {2}killed \(1\):\n {5}2023-11-01 {2}00:00 {2}■ a +killed/m);
    assert.match(out, /^ {2}running \(1\):\n {5}2023-11-01 {2}01:00 {2}▶ a +running/m);
    assert.match(out, new RegExp(`tideflow show ${run} --all`));

    const all = await big.cli(["show", run, "--all"]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal((all.stdout.match(/^ {2}\d{4}-\d{2}-\d{2} {2}cyctime /gm) ?? []).length, 26_304);
  } finally {
    await big.dispose();
  }
});
