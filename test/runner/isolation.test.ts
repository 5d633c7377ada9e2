/**
 * TS tasks on a warm worker do not see each other (issue 8 §1): a task that sets a global,
 * an environment variable, changes directory and leaves timers behind does not change what
 * the next task on the same worker sees, and its timers never fire; code of an attempt that
 * has ended and still runs (an unref'd timer of `node:timers/promises`, which no cleanup
 * can see) is blamed on that attempt in runner.log, not on the task running at that time,
 * and the worker is not reused. Real CLI, real runner, real workers.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { RunDocument } from "../../runner/cli-format";
import { type Workspace, until, workspace } from "./fixture";

const FLOW = `import { workflow, task } from "tideflow";
import { mkdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export const dirty = task("dirty", async () => {
  (globalThis as Record<string, unknown>).TF_LEAK = "from dirty";
  process.env.TF_LEAK_ENV = "from dirty";
  mkdirSync("sub", { recursive: true });
  process.chdir("sub");
  process.on("SIGUSR2", () => console.log("dirty's listener"));
  setTimeout(() => { throw new Error("late boom from dirty"); }, 300);
  setInterval(() => console.log("tick from dirty"), 50);
  console.log("worker " + process.pid);
});
export const check = task("check", { upstream: [dirty] }, async () => {
  const seen = { global: (globalThis as Record<string, unknown>).TF_LEAK ?? null, env: process.env.TF_LEAK_ENV ?? null, cwd: process.cwd(), sigusr2: process.listenerCount("SIGUSR2") };
  console.log("worker " + process.pid);
  console.log("seen " + JSON.stringify(seen));
  await new Promise((r) => setTimeout(r, 900)); // dirty's timers would have fired by now
  console.log("check done");
});
export default workflow("iso", { tasks: [dirty, check] });
`;

const BLAME_FLOW = `import { workflow, task } from "tideflow";
import { existsSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export const late = task("late", async () => {
  void sleep(2000, undefined, { ref: false }).then(() => { throw new Error("late rejection from late"); });
  console.log("worker " + process.pid);
});
// Runs until the runner has blamed late (a wait on that event, not on a time).
export const victim = task("victim", { upstream: [late] }, async () => {
  console.log("worker " + process.pid);
  const blamed = () => existsSync(".tideflow/runner.log") && readFileSync(".tideflow/runner.log", "utf8").includes("late rejection from late");
  for (let i = 0; i < 1200 && !blamed(); i++) await new Promise((r) => setTimeout(r, 50));
  console.log(blamed() ? "victim done" : "victim gave up waiting for the blame");
});
export const after_ = task("after_", { upstream: [victim] }, async () => {
  console.log("worker " + process.pid);
});
export default workflow("blame", { tasks: [late, victim, after_] });
`;

let ws: Workspace;

before(() => {
  ws = workspace({ "iso.flow.ts": FLOW, "blame.flow.ts": BLAME_FLOW });
});
after(() => ws.dispose());

async function logOf(run: string, task: string): Promise<string> {
  const r = await ws.cli(["logs", run, task]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

function workerPid(log: string): number {
  const m = / stdout INFO worker (\d+)$/m.exec(log);
  assert.ok(m, log);
  return Number(m[1]);
}

test("the next task on a warm worker sees none of the previous task's globals, env, cwd, listeners or timers", { timeout: 120_000 }, async () => {
  const r = await ws.cli(["test", "iso.flow.ts", "--date", "2024-06-01", "--json"], { timeoutMs: 90_000 });
  const doc = JSON.parse(r.stdout) as RunDocument;
  const dirtyLog = await logOf(doc.id, "dirty");
  const checkLog = await logOf(doc.id, "check");
  assert.equal(r.code, 0, `${r.stderr}\n--- dirty\n${dirtyLog}\n--- check\n${checkLog}`);
  assert.deepEqual(doc.instances[0].tasks.map((t) => [t.task, t.state]), [["dirty", "success"], ["check", "success"]]);
  // Same worker (cleaned, not replaced: the fast path).
  assert.equal(workerPid(checkLog), workerPid(dirtyLog));
  const seen = JSON.parse(/ stdout INFO seen (.*)$/m.exec(checkLog)![1]) as Record<string, unknown>;
  assert.deepEqual(seen, { global: null, env: null, cwd: ws.dir, sigusr2: 0 });
  assert.match(checkLog, / stdout INFO check done$/m);
  assert.doesNotMatch(checkLog, /tick from dirty|late boom/);
  // The cleanup is told in the attempt that left the timers.
  assert.match(dirtyLog, /stderr WARN tideflow: .*cleared 2 pending timers/);
});

test("code of an ended attempt that throws later is blamed on that attempt in runner.log, and the worker is not reused", { timeout: 120_000 }, async () => {
  const r = await ws.cli(["test", "blame.flow.ts", "--date", "2024-06-01", "--json"], { timeoutMs: 90_000 });
  const doc = JSON.parse(r.stdout) as RunDocument;
  const lateLog = await logOf(doc.id, "late");
  const victimLog = await logOf(doc.id, "victim");
  const afterLog = await logOf(doc.id, "after_");
  assert.equal(r.code, 0, `${r.stderr}\n--- late\n${lateLog}\n--- victim\n${victimLog}`);
  assert.deepEqual(doc.instances[0].tasks.map((t) => t.state), ["success", "success", "success"]);
  // late's leftover throws 2 s after late set its timer. The victim normally runs on late's warm
  // worker by then, and is not blamed; on a machine slow enough that the victim had not
  // started, the idle worker is retired and the victim runs on another one. Either way:
  // the victim is not blamed, and late's worker runs nothing after the throw.
  assert.match(victimLog, / stdout INFO victim done$/m);
  assert.doesNotMatch(victimLog, /late rejection/);
  // The worker was retired after the throw: the next task ran elsewhere.
  assert.notEqual(workerPid(afterLog), workerPid(lateLog));
  const runnerLog = join(ws.dir, ".tideflow", "runner.log");
  const line = await until("the blame in runner.log", () => existsSync(runnerLog) && readFileSync(runnerLog, "utf8").split("\n").find((l) => l.includes("late rejection from late")));
  assert.match(line, /task worker \d+ is not reused: attempt \S+\/late\/1 had ended, but its code still ran and threw Error: late rejection from late/);
});
