/**
 * Test and backfill runs as a user makes them: the real CLI, the real runner in the
 * background, real shell and TS task processes. Every operation of SPEC §3 and its refusal.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import type { Run, TaskInstance } from "../../protocol/runner";
import { findMarkedProcesses, processGroupAlive } from "../../runner/exec/process-tree";
import { formatRun, type RunDocument } from "../../runner/cli-format";
import { RunnerError } from "../../common/runner-client";
import { CLI, type Workspace, until, workspace } from "./fixture";

let ws: Workspace;

const FLOWS: Record<string, string> = {
  "chain.flow.ts": `import { workflow, shell, task } from "tideflow";
export const a = shell("a", { params: { GREETING: "hi there" } },
  'echo "a $BIZDATE $BIZDATE_ISO $CYCTIME $TIDEFLOW_WORKFLOW $TIDEFLOW_TASK $TIDEFLOW_ATTEMPT $PARAM_GREETING"');
export const b = shell("b", { upstream: [a] }, "echo b-out; echo b-err >&2");
export const c = task("c", { upstream: [b] }, async (ctx) => { ctx.log.info("c saw " + ctx.bizdate + " " + ctx.cyctime); });
export default workflow("chain", { schedule: "30 2 * * *", timezone: "Asia/Shanghai", tasks: [a, b, c] });
`,
  "long.flow.ts": `import { workflow, shell } from "tideflow";
export const slow = shell("slow", "echo started; sleep 300 & bash -c 'sleep 300' & wait");
export const next = shell("next", { upstream: [slow] }, "echo next");
export default workflow("long", { tasks: [slow, next] });
`,
  "flaky.flow.ts": `import { workflow, shell } from "tideflow";
export const flaky = shell("flaky", { retries: 1, retryDelay: "100ms" }, "echo try $TIDEFLOW_ATTEMPT; exit 3");
export const next = shell("next", { upstream: [flaky] }, "echo next ran");
export default workflow("flaky", { tasks: [flaky, next] });
`,
  "gate.flow.ts": `import { workflow, shell } from "tideflow";
export const gate = shell("gate", "while [ ! -f go ]; do sleep 0.05; done");
export const later = shell("later", { upstream: [gate] }, "echo later");
export default workflow("gate", { tasks: [gate, later] });
`,
  "timeout.flow.ts": `import { workflow, shell } from "tideflow";
export const stuck = shell("stuck", { timeout: "1s" }, "trap '' TERM; echo ignoring TERM; sleep 300 & wait");
export default workflow("timeout", { tasks: [stuck] });
`,
};

before(async () => {
  ws = workspace(FLOWS);
  const r = await ws.cli(["runner", "start"]);
  assert.equal(r.code, 0, r.stderr);
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

function taskOf(run: Run, task: string, i = 0): TaskInstance {
  return run.instances[i].tasks.find((t) => t.task === task)!;
}

test("test runs a workflow for one bizdate, waits, and prints the SPEC's JSON document", async () => {
  const r = await ws.cli(["test", "chain.flow.ts", "--date", "2026-11-19", "--json"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = JSON.parse(r.stdout) as RunDocument;
  assert.equal(doc.kind, "test");
  assert.equal(doc.state, "success");
  assert.equal(doc.instances.length, 1);
  assert.equal(doc.instances[0].bizdate, "2026-11-19");
  assert.equal(doc.instances[0].cyctime, "2026-11-20T02:30:00+08:00");
  assert.deepEqual(
    doc.instances[0].tasks.map((t) => [t.task, t.state, t.attempts, t.exitCode]),
    [["a", "success", 1, 0], ["b", "success", 1, 0], ["c", "success", 1, 0]],
  );
  for (const t of doc.instances[0].tasks) assert.ok(t.startedAt! <= t.endedAt!);

  const logA = await ws.cli(["logs", doc.id, "a"]);
  assert.match(logA.stdout, /stdout INFO a 20261119 2026-11-19 2026-11-20T02:30:00\+08:00 chain a 1 hi there$/m);
  assert.match(logA.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d system INFO /m);
  const logB = await ws.cli(["logs", doc.id, "b"]);
  assert.match(logB.stdout, / stdout INFO b-out$/m);
  assert.match(logB.stdout, / stderr WARN b-err$/m);
  const logC = await ws.cli(["logs", doc.id, "c"]);
  assert.match(logC.stdout, / stdout INFO c saw 2026-11-19 2026-11-20T02:30:00\+08:00$/m);
});

test("a failing task is retried after retryDelay, then fails; set-success lets its downstream run", async () => {
  const r = await ws.cli(["test", "flaky.flow.ts", "--json"]);
  assert.equal(r.code, 1, r.stderr);
  const doc = JSON.parse(r.stdout) as RunDocument;
  const [flaky, next] = doc.instances[0].tasks;
  assert.deepEqual([flaky.state, flaky.attempts, flaky.exitCode], ["failed", 2, 3]);
  assert.equal(next.state, "not_run");
  const log1 = await ws.cli(["logs", doc.id, "flaky", "--attempt", "1"]);
  assert.match(log1.stdout, /stdout INFO try 1$/m);
  const log2 = await ws.cli(["logs", doc.id, "flaky"]);
  assert.match(log2.stdout, /stdout INFO try 2$/m);

  const refused = await ws.cli(["pause", doc.id, "flaky"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /pause needs state not_run or waiting; `flaky` .* is failed/);

  const ok = await ws.cli(["set-success", doc.id, "flaky"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /flaky on \d{4}-\d\d-\d\d: failed → success/);
  const run = await until("next to succeed", async () => {
    const run = await getRun(doc.id);
    return taskOf(run, "next").state === "success" && run;
  });
  assert.equal(run.state, "success");
  const history = taskOf(run, "flaky").history.map((h) => `${h.from}>${h.to}:${h.cause}${h.by ? `:${h.by}` : ""}`);
  assert.ok(history.includes("failed>success:operator:cli"), history.join(" "));
  assert.ok(history.some((h) => h.endsWith(":retry")), history.join(" "));
});

test("kill ends the task's whole process tree; downstream stays not_run; rerun runs it again", async () => {
  const started = await ws.cli(["test", "long.flow.ts", "--detach"]);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  const running = await until("slow to run with a pid", async () => {
    const t = taskOf(await getRun(id), "slow");
    return t.state === "running" && t.attempts[0]?.pid !== undefined && t;
  });
  const pid = running.attempts[0].pid!;
  const marker = `${(await getRun(id)).instances[0].id}/slow/1`;
  await until("the sleeps to start", () => findMarkedProcesses(marker).length >= 3);

  const refused = await ws.cli(["rerun", id, "slow"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /rerun needs state not_run, success, failed or killed; `slow` .* is running/);

  const killed = await ws.cli(["kill", id, "slow"]);
  assert.equal(killed.code, 0, killed.stderr);
  assert.match(killed.stdout, /slow on .*: running, attempt 1 being killed/);
  await until("the process group to be gone", () => !processGroupAlive(pid));
  assert.deepEqual(findMarkedProcesses(marker), []);
  const run = await until("the attempt's end to be recorded", async () => {
    const run = await getRun(id);
    return taskOf(run, "slow").attempts[0].endedAt !== undefined && run;
  });
  assert.equal(taskOf(run, "slow").state, "killed");
  assert.equal(taskOf(run, "next").state, "not_run");
  assert.equal(run.state, "killed");
  const log = await ws.cli(["logs", id, "slow"]);
  assert.match(log.stdout, /stdout INFO started$/m);
  assert.match(log.stdout, /system \w+ .*kill/im);

  const rerun = await ws.cli(["rerun", id, "slow"]);
  assert.equal(rerun.code, 0, rerun.stderr);
  const again = await until("attempt 2 to run", async () => {
    const t = taskOf(await getRun(id), "slow");
    return t.state === "running" && t.attempts[1]?.pid !== undefined && t;
  });
  assert.equal(again.attempts.length, 2);
  // The batch form: kill the whole run.
  const killRun = await ws.cli(["kill", id]);
  assert.equal(killRun.code, 0, killRun.stderr);
  await until("attempt 2's group to be gone", () => !processGroupAlive(again.attempts[1].pid!));
});

test("kill of a task that traps TERM: running (being killed) until its processes are gone; no rerun, set-success or downstream before; then killed", async () => {
  // The trap keeps the task going until the test has looked (the file "release"), not
  // for a set time; a runner of its own with a kill grace far longer than the test lets
  // the task end by itself, as a hang guard: SIGKILL would come after 120 s.
  const own = workspace({
    "stubborn.flow.ts": `import { workflow, shell } from "tideflow";
export const stubborn = shell("stubborn", "trap 'echo got TERM; while [ ! -f release ]; do sleep 0.05; done; echo still writing; exit 0' TERM; echo up; while true; do sleep 0.1; done");
export const after = shell("after", { upstream: [stubborn] }, "echo after ran");
export default workflow("stubborn", { tasks: [stubborn, after] });
`,
  });
  try {
    await stubbornKill(own);
  } finally {
    await own.dispose();
  }
});

async function stubbornKill(ws: Workspace): Promise<void> {
  const getRun = async (id: string): Promise<Run> => {
    const client = await ws.client();
    try {
      return await client.request("runs.get", { run: id });
    } finally {
      client.close();
    }
  };
  const started = await ws.cli(["test", "stubborn.flow.ts", "--detach"], { env: { TIDEFLOW_KILL_GRACE_MS: "120000" } });
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  await until("stubborn to print", async () => (await ws.cli(["logs", id, "stubborn"])).stdout.includes("stdout INFO up"));
  const client = await ws.client();
  try {
    const refusal = async (op: "rerun" | "set-success" | "kill") => {
      try {
        await client.request("task.operate", { run: id, task: "stubborn", op });
      } catch (e) {
        assert.ok(e instanceof RunnerError, String(e));
        return e;
      }
      assert.fail(`${op} was not refused while the killed attempt still runs`);
    };
    const killed = await client.request("task.operate", { run: id, task: "stubborn", op: "kill", by: "test" });
    assert.deepEqual(killed.counts, { "running: being killed": 1 });
    // The trap keeps the task going: it is not killed yet, and nothing may act as if it were.
    const during = await getRun(id);
    const t = taskOf(during, "stubborn");
    assert.equal(t.state, "running");
    assert.ok(t.attempts[0].killRequestedAt !== undefined);
    assert.equal((await refusal("rerun")).code, "wrong-state");
    assert.equal((await refusal("set-success")).code, "wrong-state");
    const again = await refusal("kill");
    assert.equal(again.code, "kill-pending");
    assert.match(again.message, /is being killed already/);
    assert.match(formatRun(during), /stubborn +running +attempt 1 .*being killed/);
    await until("the trap to have started", async () => (await ws.cli(["logs", id, "stubborn"])).stdout.includes("stdout INFO got TERM"));
    assert.equal(taskOf(await getRun(id), "stubborn").state, "running", "still running while the trap runs");
    ws.write("release", "");
  } finally {
    client.close();
  }
  const run = await until("the attempt to end", async () => {
    const run = await getRun(id);
    return taskOf(run, "stubborn").attempts[0].endedAt !== undefined && run;
  });
  const t = taskOf(run, "stubborn");
  assert.equal(t.state, "killed");
  assert.equal(t.attempts.length, 1);
  assert.equal(taskOf(run, "after").state, "not_run");
  assert.equal(taskOf(run, "after").attempts.length, 0);
  assert.deepEqual(findMarkedProcesses(`${run.instances[0].id}/stubborn/1`), []);
  const log = (await ws.cli(["logs", id, "stubborn"])).stdout;
  // The kill request, then the task's last words, then its end: one attempt, in order.
  const order = ["kill requested", "stdout INFO still writing", "attempt 1 finished"].map((l) => log.indexOf(l));
  assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])), log);
  assert.equal(log.match(/stdout INFO got TERM/g)?.length, 1, `one kill, one TERM:\n${log}`);
}

test("a timeout kills the attempt (SIGKILL after the grace when TERM is ignored) and fails it", async () => {
  // The task never ends by itself: without the timeout the CLI's 60 s timer ends the wait.
  const r = await ws.cli(["test", "timeout.flow.ts", "--json"]);
  assert.equal(r.code, 1, r.stderr);
  const doc = JSON.parse(r.stdout) as RunDocument;
  const stuck = doc.instances[0].tasks[0];
  assert.equal(stuck.state, "failed");
  const run = await getRun(doc.id);
  assert.ok(taskOf(run, "stuck").history.some((h) => h.cause === "timeout"));
  // The timeout counts from the spawn: on a loaded machine it may come before bash has
  // run `trap '' TERM`, and then TERM ends it. Once the task said it ignores TERM, only
  // SIGKILL after the grace can have.
  const log = (await ws.cli(["logs", doc.id, "stuck"])).stdout;
  if (/stdout INFO ignoring TERM/.test(log)) assert.equal(stuck.signal, "SIGKILL", log);
  else assert.ok(stuck.signal === "SIGTERM" || stuck.signal === "SIGKILL", `${stuck.signal}:\n${log}`);
  assert.deepEqual(findMarkedProcesses(`${run.instances[0].id}/stuck/1`), []);
});

test("pause holds a task (and its downstream); resume lets it run", async () => {
  const started = await ws.cli(["test", "gate.flow.ts", "--detach"]);
  const id = started.stdout.trim();
  const paused = await ws.cli(["pause", id, "later"]);
  assert.equal(paused.code, 0, paused.stderr);
  assert.match(paused.stdout, /later on .*: not_run → paused/);
  ws.write("go", "");
  const held = await until("gate to succeed", async () => {
    const run = await getRun(id);
    return taskOf(run, "gate").state === "success" && run;
  });
  assert.equal(taskOf(held, "later").state, "paused");
  assert.equal((await getRun(id)).state, "paused");
  const resumed = await ws.cli(["resume", id, "later"]);
  assert.equal(resumed.code, 0, resumed.stderr);
  await until("the run to succeed", async () => (await getRun(id)).state === "success");
});

test("rerun-downstream reruns the task and the chosen downstream in order, leaving the rest", async () => {
  const first = await ws.cli(["test", "chain.flow.ts", "--json"]);
  assert.equal(first.code, 0, first.stderr);
  const id = (JSON.parse(first.stdout) as RunDocument).id;
  const r = await ws.cli(["rerun-downstream", id, "a", "--only", "b"]);
  assert.equal(r.code, 0, r.stderr);
  const run = await until("the rerun to finish", async () => {
    const run = await getRun(id);
    return run.state === "success" && taskOf(run, "b").attempts.length === 2 && run;
  });
  assert.deepEqual(run.instances[0].tasks.map((t) => t.attempts.length), [2, 2, 1]);
  assert.ok(taskOf(run, "b").attempts[1].startedAt >= taskOf(run, "a").attempts[1].endedAt!);
  const bad = await ws.cli(["rerun-downstream", id, "a", "--only", "nope"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /nope/);
});

test("backfill: one instance per bizdate, in the asked order, parallelism honoured; runs and show list it", async () => {
  const r = await ws.cli(["backfill", "chain.flow.ts", "--from", "2026-11-01", "--to", "2026-11-05", "--parallel", "2", "--order", "desc", "--task", "a", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as RunDocument;
  assert.deepEqual(doc.instances.map((i) => i.bizdate), ["2026-11-05", "2026-11-04", "2026-11-03", "2026-11-02", "2026-11-01"]);
  assert.ok(doc.instances.every((i) => i.tasks.length === 1 && i.tasks[0].task === "a" && i.tasks[0].state === "success"));
  const run = await getRun(doc.id);
  // desc: the latest bizdate starts first; never more than 2 instances at once.
  const spans = run.instances.map((i) => [i.tasks[0].attempts[0].startedAt, i.tasks[0].attempts[0].endedAt!] as const);
  assert.ok(spans[0][0] <= spans[4][0]);
  for (const [s] of spans) assert.ok(spans.filter(([s2, e2]) => s2 <= s && s < e2).length <= 2);

  const withDownstream = await ws.cli(["backfill", "chain.flow.ts", "--from", "2026-11-01", "--to", "2026-11-02", "--task", "b", "--downstream", "--json"]);
  assert.equal(withDownstream.code, 0, withDownstream.stderr);
  assert.deepEqual((JSON.parse(withDownstream.stdout) as RunDocument).instances[0].tasks.map((t) => t.task), ["b", "c"]);

  const runs = await ws.cli(["runs"]);
  assert.match(runs.stdout, new RegExp(`^${doc.id}\\s+backfill\\s+chain\\s+success\\s+5\\s+5 success`, "m"));
  const show = await ws.cli(["show", doc.id]);
  assert.match(show.stdout, /2026-11-03 {2}cyctime 2026-11-04T02:30:00\+08:00/);
  const one = await ws.cli(["logs", doc.id, "a"]);
  assert.equal(one.code, 1);
  assert.match(one.stderr, /has 5 workflow instances; pick one with --date/);
  const dated = await ws.cli(["logs", doc.id, "a", "--date", "2026-11-03"]);
  assert.match(dated.stdout, /stdout INFO a 20261103 /);
});

test("logs --follow waits for a task to start, prints its lines as they come, and stops when it ends", async () => {
  ws.write("tick.flow.ts", `import { workflow, shell } from "tideflow";
export const wait = shell("wait", "while [ ! -f go-tick ]; do sleep 0.05; done");
export const tick = shell("tick", { upstream: [wait] }, "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done");
export default workflow("tick", { tasks: [wait, tick] });
`);
  const started = await ws.cli(["test", "tick.flow.ts", "--detach"]);
  const id = started.stdout.trim();
  // The follower, read as it writes: tick starts only once it says it is waiting.
  const follower = spawn(process.execPath, [CLI, "logs", id, "tick", "--follow"], { cwd: ws.dir, env: { ...process.env, TIDEFLOW_KILL_GRACE_MS: "1000" } });
  const timer = setTimeout(() => follower.kill("SIGKILL"), 120_000); // hang guard
  let stdout = "";
  let stderr = "";
  follower.stdout.on("data", (d) => (stdout += d));
  follower.stderr.on("data", (d) => (stderr += d));
  const closed = new Promise<number | null>((resolveClose) => follower.on("close", (code) => resolveClose(code)));
  try {
    await until("the follower to wait for tick", () => /waiting for `tick` to start \(it is not_run\)/.test(stderr), 60_000);
    assert.equal(taskOf(await getRun(id), "tick").attempts.length, 0, "tick must not have started before the follower");
    ws.write("go-tick", "");
    const code = await closed;
    assert.equal(code, 0, stderr);
  } finally {
    clearTimeout(timer);
    follower.kill("SIGKILL");
  }
  const r = { stdout, stderr };
  const ticks = r.stdout.split("\n").filter((l) => / stdout INFO tick \d$/.test(l)).map((l) => l.slice(-1));
  assert.deepEqual(ticks, ["1", "2", "3", "4", "5"]);
  assert.match(r.stdout, /system INFO attempt 1 finished: exit code 0/);
});

test("a bad workflow file or request is refused with the reason, and the runner keeps serving", async () => {
  ws.write("bad.flow.ts", `import { workflow, shell } from "tideflow";\nexport const x = shell("x", { timeout: "soon" }, "true");\nexport default workflow("bad", { tasks: [x] });\n`);
  const bad = await ws.cli(["test", "bad.flow.ts"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /bad\.flow\.ts has 1 error; fix it first .*\n.*bad\.flow\.ts:2:\d+: `timeout` "soon" is not a duration/);
  const missing = await ws.cli(["test", "chain.flow.ts", "--task", "zzz"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no task `zzz`/);
  const usage = await ws.cli(["backfill", "chain.flow.ts", "--from", "2026-11-01"]);
  assert.equal(usage.code, 2);
  const status = await ws.cli(["runner", "status"]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /runner pid \d+ on 127\.0\.0\.1:\d+/);
  assert.ok(readFileSync(`${ws.dir}/.tideflow/journal`, "utf8").startsWith('{"tideflow-journal":1}'));
});
