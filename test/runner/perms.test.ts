/**
 * The runner's state is private (issue 8 §1): with the usual umask 022, after a run of
 * shell and TS tasks that write logs, every folder under `.tideflow/` is 0700 and every
 * file 0600, as the OS reports them — also when `.tideflow/` existed before with wider
 * modes (it is tightened at runner start, and runner.log says so). Real CLI, real runner.
 */
import assert from "node:assert/strict";
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { type Workspace, workspace } from "./fixture";

const FLOW = `import { workflow, shell, task } from "tideflow";
export const a = shell("a", "echo out; echo err >&2");
export const b = task("b", { upstream: [a] }, async (ctx) => { console.log("ts out"); ctx.log.warn("ts warn"); });
export default workflow("perms", { tasks: [a, b] });
`;

/** Every entry under `dir`, with its permission bits and kind. */
function walk(dir: string, root = dir): { path: string; mode: number; dir: boolean }[] {
  const out: { path: string; mode: number; dir: boolean }[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const st = lstatSync(full);
    out.push({ path: relative(root, full), mode: st.mode & 0o777, dir: st.isDirectory() });
    if (st.isDirectory()) out.push(...walk(full, root));
  }
  return out;
}

function wrongModes(stateDir: string): string[] {
  const wrong: string[] = [];
  const top = lstatSync(stateDir).mode & 0o777;
  if (top !== 0o700) wrong.push(`.tideflow/ ${top.toString(8)}`);
  for (const e of walk(stateDir)) {
    const want = e.dir ? 0o700 : 0o600;
    if (e.mode !== want) wrong.push(`${e.path} ${e.mode.toString(8)} (want ${want.toString(8)})`);
  }
  return wrong;
}

let ws: Workspace;
let umask: number;

before(() => {
  umask = process.umask(0o022); // inherited by the CLI and the runner it starts
  ws = workspace({ "perms.flow.ts": FLOW });
});
after(async () => {
  await ws.dispose();
  process.umask(umask);
});

test("every file under .tideflow/ is 0600 and every folder 0700 after a run, even when .tideflow/ existed with wider modes", { timeout: 120_000 }, async () => {
  // State left by an older runner (or made by hand): world-readable.
  const stateDir = join(ws.dir, ".tideflow");
  mkdirSync(join(stateDir, "logs", "old-run@2024-01-01"), { recursive: true });
  writeFileSync(join(stateDir, "logs", "old-run@2024-01-01", "a.1.log"), "old\n");
  writeFileSync(join(stateDir, "runner.log"), "");
  for (const d of [stateDir, join(stateDir, "logs"), join(stateDir, "logs", "old-run@2024-01-01")]) chmodSync(d, 0o755);
  for (const f of [join(stateDir, "logs", "old-run@2024-01-01", "a.1.log"), join(stateDir, "runner.log")]) chmodSync(f, 0o644);
  assert.notDeepEqual(wrongModes(stateDir), []);

  const r = await ws.cli(["test", "perms.flow.ts", "--date", "2024-06-01"], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const logs = walk(join(stateDir, "logs")).filter((e) => !e.dir && e.path.endsWith(".log"));
  assert.ok(logs.length >= 3, `expected the run's logs, found ${logs.map((e) => e.path).join(", ")}`);
  assert.ok(walk(join(stateDir, "bundles")).some((e) => e.path.endsWith(".cjs")), "the TS task's bundle");
  assert.deepEqual(wrongModes(stateDir), []);
  assert.match(readFileSync(join(stateDir, "runner.log"), "utf8"), /tightened .*\.tideflow.* to 0700/);

  // Stopping writes nothing wider either.
  const stop = await ws.cli(["runner", "stop"]);
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual(wrongModes(stateDir), []);
});
