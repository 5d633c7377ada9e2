/**
 * A runner crash never costs a task (issue 8 §2, SPEC §3): attempts running when the
 * runner is killed with -9 keep running, the next runner adopts them, records their real
 * exit and keeps every output line from before, during and after the gap; the attempt
 * number does not change and no retry is needed.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Run } from "../../protocol/runner";
import { readRunnerInfo } from "../../common/runner-client";
import { processAlive } from "../../runner/exec/process-tree";
import { type Workspace, until, workspace } from "./fixture";

let ws: Workspace;

before(() => {
  ws = workspace({
    "chain.flow.ts": `import { workflow, shell } from "tideflow";
export const first = shell("first", "echo first $BIZDATE; sleep 0.4");
export const second = shell("second", { upstream: [first] }, "echo second $BIZDATE; sleep 0.4");
export default workflow("chain", { tasks: [first, second] });
`,
    "gap.flow.ts": `import { workflow, shell } from "tideflow";
export const talk = shell("talk", "echo before; while [ ! -f gap-over ]; do sleep 0.05; done; echo during; echo to-stderr >&2; sleep 0.3; echo after; exit 3");
export default workflow("gap", { tasks: [talk] });
`,
  });
});
after(() => ws.dispose());

async function getRun(id: string): Promise<Run> {
  const client = await ws.client();
  try {
    return await client.request("runs.get", { run: id });
  } finally {
    client.close();
  }
}

/** `runner start`, then the run `id` as it ended. */
async function restartUntilEnded(id: string): Promise<Run> {
  const restart = await ws.cli(["runner", "start"]);
  assert.equal(restart.code, 0, restart.stderr);
  return until("the run to end", async () => {
    const r = await getRun(id);
    return r.state !== "running" && r;
  });
}

async function killRunner(): Promise<void> {
  const info = readRunnerInfo(ws.dir)!;
  process.kill(info.pid, "SIGKILL");
  await until("the runner to die", () => !processAlive(info.pid));
}

test("a 12-day backfill of a two-task chain survives kill -9 of the runner: every task succeeds on its first attempt", async () => {
  const started = await ws.cli(["backfill", "chain.flow.ts", "--from", "2026-11-01", "--to", "2026-11-12", "--parallel", "3", "--detach"]);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  await until("tasks to run with pids", async () => {
    const run = await getRun(id);
    return run.instances.some((i) => i.tasks.some((t) => t.state === "running" && t.attempts[0]?.pid !== undefined));
  });
  await killRunner();
  const restart = await ws.cli(["runner", "start"]);
  assert.equal(restart.code, 0, restart.stderr);
  const run = await until(
    "the backfill to end",
    async () => {
      const r = await getRun(id);
      return r.state !== "running" && r;
    },
    60_000,
  );
  assert.equal(run.state, "success");
  for (const inst of run.instances) {
    for (const t of inst.tasks) {
      assert.equal(t.state, "success", `${inst.bizdate} ${t.task}`);
      // A task whose pid the crashed runner had not journaled yet runs again as a failover
      // attempt; every other one kept its first attempt.
      if (t.attempts.length > 1) assert.equal(t.attempts[1].cause, "recovery", `${inst.bizdate} ${t.task}`);
    }
  }
  const adopted = run.instances.flatMap((i) => i.tasks).filter((t) => t.attempts.length === 1 && t.history.some((h) => h.cause === "recovery"));
  assert.equal(adopted.length, 0, "an adopted attempt needs no recovery transition");
});

test("an adopted attempt keeps its number, its real exit status and every line from before, during and after the gap", async () => {
  const started = await ws.cli(["test", "gap.flow.ts", "--detach"]);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  await until("talk to print before", async () => (await ws.cli(["logs", id, "talk"])).stdout.includes("stdout INFO before"));
  await killRunner();
  // The task goes on while no runner runs: it prints "during" into its capture file.
  const { writeFileSync } = await import("node:fs");
  writeFileSync(`${ws.dir}/gap-over`, "");
  // Restart once the task has written "during" (its capture file holds it), so that the
  // line really comes from the gap.
  const capture = join(ws.dir, ".tideflow", "capture");
  await until("talk to print during with no runner", () =>
    readdirSync(capture).some((f) => f.endsWith(".out") && readFileSync(join(capture, f), "utf8").includes("during")),
  );
  const run = await restartUntilEnded(id);
  const t = run.instances[0].tasks[0];
  assert.equal(t.state, "failed", "exit 3 is a failure, recorded as the task's own");
  assert.equal(t.attempts.length, 1);
  assert.equal(t.attempts[0].exitCode, 3);
  assert.equal(t.attempts[0].error, undefined);
  const log = (await ws.cli(["logs", id, "talk"])).stdout;
  // In order within a stream; stdout and stderr written during the gap are read one after the other.
  const order = ["stdout INFO before", "adopted by runner", "stdout INFO during", "stdout INFO after", "attempt 1 failed: exit code 3"].map((l) => log.indexOf(l));
  assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])), log);
  assert.ok(log.indexOf("stderr WARN to-stderr") > log.indexOf("adopted by runner"), log);
  // The duration counts from the attempt's real start, not from the adoption.
  assert.match(log, /attempt 1 failed: exit code 3 after (\d{3,} ms|[\d.]+ s)/);
  assert.equal(log.match(/stdout INFO before/g)?.length, 1, `no line twice:\n${log}`);
});

test("an attempt that ended while no runner ran is recorded as ending when it did, not when the next runner saw it", async () => {
  const started = await ws.cli(["test", "chain.flow.ts", "--task", "first", "--detach", "--date", "2026-10-01"]);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  const pid = await until("first to run with a pid", async () => (await getRun(id)).instances[0].tasks[0].attempts[0]?.pid);
  await killRunner();
  await until("first's process to end with no runner", () => !processAlive(pid));
  const goneSeen = Date.now();
  // A gap between the end and the restart (not a wait for anything): the old runner
  // dated the end at the restart, a gap later.
  await new Promise((r) => setTimeout(r, 1500));
  const run = await restartUntilEnded(id);
  const a = run.instances[0].tasks[0].attempts[0];
  assert.equal(a.exitCode, 0);
  assert.ok(a.endedAt !== undefined && a.endedAt <= goneSeen, `ended at ${a.endedAt}, but the process was seen gone at ${goneSeen}`);
  assert.ok(a.endedAt >= a.startedAt + 400, "it slept 0.4 s");
  const log = (await ws.cli(["logs", id, "first", "--date", "2026-10-01"])).stdout;
  const took = /attempt 1 finished: exit code 0 after (\d+) ms/.exec(log);
  assert.ok(took, log);
  assert.equal(Number(took[1]), a.endedAt - a.startedAt, "the log and the record say the same duration");
});

test("an attempt whose pid never reached the journal (the runner died first) is found by its marker and adopted", async () => {
  const { readFileSync, rmSync, writeFileSync } = await import("node:fs");
  rmSync(`${ws.dir}/gap-over`, { force: true });
  const started = await ws.cli(["test", "gap.flow.ts", "--detach", "--date", "2026-11-20"]);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  await until("talk to print before", async () => (await ws.cli(["logs", id, "talk"])).stdout.includes("stdout INFO before"));
  await killRunner();
  // The `attempt.process` record is journaled with the next batch: take it out, as if the
  // runner had died before that batch. Every journal line is checked on its own.
  const path = `${ws.dir}/.tideflow/journal`;
  const lines = readFileSync(path, "utf8").split("\n");
  const kept = lines.filter((l) => !(l.includes('"type":"attempt.process"') && l.includes(`"runId":"${id}"`)));
  assert.equal(lines.length - kept.length, 1, "one attempt.process record for the run");
  writeFileSync(path, kept.join("\n"));
  writeFileSync(`${ws.dir}/gap-over`, "");
  const run = await restartUntilEnded(id);
  const t = run.instances[0].tasks[0];
  assert.equal(t.attempts.length, 1, "adopted, not run again");
  assert.equal(t.attempts[0].exitCode, 3);
  const log = (await ws.cli(["logs", id, "talk"])).stdout;
  assert.ok(log.includes("adopted by runner") && log.includes("stdout INFO after"), log);
  const runnerLog = readFileSync(`${ws.dir}/.tideflow/runner.log`, "utf8");
  assert.match(runnerLog, /adopted talk on .* attempt 1 \(shell, process group \d+, found by its marker\)/);
});
