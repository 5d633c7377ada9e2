/**
 * The runner's WebSocket API as a program sees it: every error carries a `code`
 * (protocol/api.ts `ApiErrorCode`) beside its sentence, malformed requests are answered
 * `invalid-params` saying what was expected and what came, `runs.plan` creates nothing,
 * and a run of thousands of workflow instances can be read in pages. Real runner, real
 * socket, raw frames where a client library would not send them.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import type { ApiError, ApiErrorCode, ApiMethod, ApiMethods, ApiResponse, CreateRunParams, RunPlan } from "../../protocol/api";
import type { Run } from "../../protocol/runner";
import { RunnerClient, RunnerError, readRunnerInfo } from "../../common/runner-client";
import { addDays } from "../../common/zone";
import { type Workspace, until, workspace } from "./fixture";

let ws: Workspace;
let client: RunnerClient;
let outsideDir: string;

const CHAIN = `import { workflow, shell, task } from "tideflow";
export const a = shell("a", "echo a");
export const b = shell("b", { upstream: [a] }, "echo b");
export const c = task("c", { upstream: [b] }, async (ctx) => { ctx.log.info("c"); });
export default workflow("chain", { schedule: "30 2 * * *", timezone: "Asia/Shanghai", tasks: [a, b, c] });
`;

before(async () => {
  outsideDir = mkdtempSync(join(tmpdir(), "tideflow-outside-"));
  writeFileSync(join(outsideDir, "elsewhere.flow.ts"), CHAIN.replace('"chain"', '"elsewhere"'));
  ws = workspace({
    "chain.flow.ts": CHAIN,
    "gate.flow.ts": `import { workflow, shell } from "tideflow";
export const gate = shell("gate", "while [ ! -f go-gate ]; do sleep 0.05; done");
export const later = shell("later", { upstream: [gate] }, "echo later");
export default workflow("gate", { tasks: [gate, later] });
`,
    // Unscheduled: one workflow instance per calendar day.
    "big.flow.ts": `import { workflow, shell } from "tideflow";
export const one = shell("one", "while [ ! -f go-big ]; do sleep 0.05; done");
export const two = shell("two", { upstream: [one] }, "true");
export default workflow("big", { timezone: "UTC", tasks: [one, two] });
`,
    "bad.flow.ts": `import { workflow, shell } from "tideflow";\nexport const x = shell("x", { timeout: "soon" }, "true");\nexport default workflow("bad", { tasks: [x] });\n`,
    "nobundle.flow.ts": `import { workflow, task } from "tideflow";
import missing from "no-such-package-xyz";
export const t = task("t", async () => { missing(); });
export default workflow("nobundle", { tasks: [t] });
`,
  });
  symlinkSync(join(outsideDir, "elsewhere.flow.ts"), join(ws.dir, "link.flow.ts"));
  symlinkSync(join(ws.dir, "chain.flow.ts"), join(ws.dir, "alias.flow.ts"));
  const r = await ws.cli(["runner", "start"]);
  assert.equal(r.code, 0, r.stderr);
  client = await ws.client();
});
after(async () => {
  client?.close();
  await ws.dispose();
  rmSync(outsideDir, { recursive: true, force: true });
});

/** A socket that sends frames as they are, and hands back the runner's answers in order. */
async function rawSocket() {
  const info = readRunnerInfo(ws.dir)!;
  const socket = new WebSocket(`ws://127.0.0.1:${info.port}/`, { headers: { authorization: `Bearer ${info.token}` }, perMessageDeflate: false });
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  const answers: ApiResponse[] = [];
  let wake: (() => void) | undefined;
  socket.on("message", (d) => {
    const msg = JSON.parse(d.toString()) as ApiResponse | { event: string };
    if ("event" in msg) return;
    answers.push(msg);
    wake?.();
  });
  return {
    socket,
    send(frame: string | Buffer, binary = false) {
      socket.send(frame, { binary });
    },
    async next(): Promise<ApiResponse> {
      // A hang guard, not a speed test.
      const deadline = Date.now() + 30_000;
      while (answers.length === 0) {
        if (Date.now() > deadline) throw new Error("no answer within 30 s");
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
      }
      return answers.shift()!;
    },
  };
}

function errorOf(response: ApiResponse): ApiError & { id: number } {
  assert.ok("error" in response, `expected an error, got ${JSON.stringify(response).slice(0, 300)}`);
  return { id: response.id, ...response.error };
}

/** The request is refused with `code`; returns the error's detail. */
async function refused<M extends ApiMethod>(method: M, params: ApiMethods[M]["params"], code: ApiErrorCode): Promise<ApiError> {
  try {
    await client.request(method, params);
  } catch (e) {
    assert.ok(e instanceof RunnerError, `expected a RunnerError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e.detail;
  }
  assert.fail(`${method} ${JSON.stringify(params)} was not refused (expected ${code})`);
}

function bundles(): string[] {
  return readdirSync(join(ws.dir, ".tideflow", "bundles")).sort();
}

const file = (name: string) => join(ws.dir, name);

test("a frame that is not a JSON request gets invalid-params with id -1, and the connection serves on", async () => {
  const raw = await rawSocket();
  const frames: [string | Buffer, boolean, RegExp][] = [
    ["not json", false, /got text that is not JSON/],
    [Buffer.from([1, 2, 3]), true, /requests are JSON text frames; got a binary frame of 3 byte\(s\)/],
    [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), false, /a text frame must be UTF-8; got 4 byte\(s\) that are not/],
    ["[1,2]", false, /a request is a JSON object \{ id, method, params \}; got an array/],
    ['"runner.status"', false, /got a string/],
    [JSON.stringify({ method: "runner.status" }), false, /`id` is an integer .*; got nothing/],
    [JSON.stringify({ id: "7", method: "runner.status" }), false, /`id` is an integer .*; got a string \(`"7"`\)/],
  ];
  for (const [frame, binary, message] of frames) {
    raw.send(frame, binary);
    const error = errorOf(await raw.next());
    assert.equal(error.id, -1, String(frame));
    assert.equal(error.code, "invalid-params", String(frame));
    assert.match(error.message, message);
  }
  raw.send(JSON.stringify({ id: 8, method: "runner.status", params: {} }));
  const ok = await raw.next();
  assert.equal(ok.id, 8);
  assert.ok("result" in ok && ok.result && typeof (ok.result as { pid: number }).pid === "number");
  assert.equal(raw.socket.readyState, WebSocket.OPEN);
  raw.socket.close();
});

test("a request with no method or an unknown one gets unknown-method with its id", async () => {
  const raw = await rawSocket();
  raw.send(JSON.stringify({ id: 1, params: {} }));
  const none = errorOf(await raw.next());
  assert.deepEqual([none.id, none.code], [1, "unknown-method"]);
  assert.match(none.message, /^the request has no `method`; the methods are runner\.status, .*runs\.plan/);
  raw.send(JSON.stringify({ id: 2, method: "runs.delete", params: { run: "last" } }));
  const unknown = errorOf(await raw.next());
  assert.deepEqual([unknown.id, unknown.code], [2, "unknown-method"]);
  assert.match(unknown.message, /^unknown method "runs\.delete"; the methods are /);
  raw.send(JSON.stringify({ id: 3, method: "toString" }));
  assert.equal(errorOf(await raw.next()).code, "unknown-method", "inherited names are no methods");
  raw.socket.close();
});

test("malformed params get invalid-params saying what was expected and what came, and create nothing", async () => {
  const runsBefore = (await client.request("runs.list", {})).length;
  const chain = file("chain.flow.ts");
  const cases: [ApiMethod, unknown, RegExp][] = [
    // Today's "spec.tasks.filter is not a function".
    ["runs.create", { kind: "test", file: chain, tasks: "a" }, /^runs\.create expects `tasks` to be an array of task ids, got a string \(`"a"`\)$/],
    ["runs.create", { kind: "test", file: chain, tasks: ["a", 3] }, /expects `tasks` to be an array of task ids, got an array \(`\["a",3\]`\)/],
    ["runs.create", { kind: "test", file: chain, bizdate: "20261119" }, /expects `bizdate` to be a calendar date written YYYY-MM-DD, got a string \(`"20261119"`\)/],
    ["runs.create", { kind: "test", file: chain, bizdate: "2026-02-30" }, /got `bizdate` 2026-02-30, which is not a calendar date: February 2026 has 28 days/],
    ["runs.create", { kind: "backfill", file: chain, from: "2026-11-01", to: "2026/11/03" }, /expects `to` to be a calendar date written YYYY-MM-DD/],
    ["runs.create", { kind: "backfill", file: chain, from: "2026-11-01", to: "2026-11-03", parallelism: 0 }, /expects `parallelism` to be an integer from 1 and up, got a number \(`0`\)/],
    ["runs.create", { kind: "backfill", file: chain, from: "2026-11-01", to: "2026-11-03", parallelism: 1.5 }, /expects `parallelism` to be an integer from 1 and up, got a number \(`1\.5`\)/],
    ["runs.create", { kind: "backfill", file: chain, from: "2026-11-01", to: "2026-11-03", order: "newest" }, /expects `order` to be asc or desc, got a string \(`"newest"`\)/],
    ["runs.create", { kind: "prod", file: chain }, /expects `kind` to be test or backfill, got a string \(`"prod"`\)/],
    ["runs.create", { kind: "test" }, /^runs\.create expects `file` to be the workflow file's path, got nothing$/],
    ["runs.create", { kind: "test", file: chain, parallel: 2 }, /^runs\.create takes no `parallel`; it takes `kind`, `file`, /],
    ["runs.create", [], /^runs\.create expects `params` to be an object with `kind`, `file`/],
    ["runs.plan", { kind: "test", file: chain, tasks: "a" }, /^runs\.plan expects `tasks` to be an array of task ids, got a string/],
    ["runs.get", { run: 3 }, /^runs\.get expects `run` to be a run id \(run-3, 3 or last\), got a number \(`3`\)$/],
    ["runs.get", { run: "last", instance: false }, /^runs\.get takes no `instance`; it takes `run`, `instances`$/],
    ["runs.instances", { run: "last", limit: 1001 }, /expects `limit` to be an integer from 1 to 1000, got a number \(`1001`\)/],
    ["runs.instances", { run: "last", state: "done" }, /expects `state` to be not_run, waiting, running, success, failed, killed or paused, got a string/],
    ["runs.list", { state: "done" }, /^runs\.list expects `state` to be running, success, failed, killed or paused/],
    ["task.operate", { run: "last", op: "explode" }, /expects `op` to be kill, rerun, set-success, pause or resume, got a string \(`"explode"`\)/],
    ["task.rerunDownstream", { run: "last" }, /expects `task` to be a task id, got nothing/],
    ["logs.read", { run: "last", task: "a", attempt: 0 }, /expects `attempt` to be an integer from 1 and up, got a number \(`0`\)/],
    ["subscribe", { logs: { task: "a" } }, /^subscribe expects `logs\.instanceId` to be a workflow instance id, got nothing$/],
    ["unsubscribe", {}, /expects `subscription` to be an integer from 1 and up, got nothing/],
    ["runner.status", { verbose: true }, /^runner\.status takes no `verbose`; it takes no params$/],
  ];
  const raw = await rawSocket();
  let id = 100;
  for (const [method, params, message] of cases) {
    raw.send(JSON.stringify({ id: ++id, method, params }));
    const error = errorOf(await raw.next());
    assert.equal(error.id, id);
    assert.equal(error.code, "invalid-params", `${method} ${JSON.stringify(params)}: ${error.message}`);
    assert.match(error.message, message);
  }
  raw.socket.close();
  assert.equal((await client.request("runs.list", {})).length, runsBefore);
});

test("the workflow file: file-not-found, outside-workspace (symlinks resolved), workflow-invalid with diagnostics, bundle-failed", async () => {
  for (const method of ["runs.create", "runs.plan"] as const) {
    const ask = (f: string, code: ApiErrorCode) => refused(method, { kind: "test", file: f, by: "test" }, code);
    assert.match((await ask(file("missing.flow.ts"), "file-not-found")).message, /^missing\.flow\.ts does not exist$/);
    assert.match((await ask(join(outsideDir, "elsewhere.flow.ts"), "outside-workspace")).message, /elsewhere\.flow\.ts is outside the workspace /);
    assert.equal((await ask("../../etc/passwd.flow.ts", "outside-workspace")).code, "outside-workspace");
    assert.match((await ask(file("link.flow.ts"), "outside-workspace")).message, /^link\.flow\.ts resolves to .*elsewhere\.flow\.ts, which is outside the workspace /);
    const invalid = await ask(file("bad.flow.ts"), "workflow-invalid");
    assert.match(invalid.message, /^bad\.flow\.ts has 1 error; fix it first/);
    assert.equal(invalid.diagnostics?.length, 1);
    assert.match(invalid.diagnostics![0], /^bad\.flow\.ts:2:\d+: `timeout` "soon" is not a duration/);
  }
  // A symlink that stays inside the workspace is a workflow file like any other.
  const plan = await client.request("runs.plan", { kind: "test", file: file("alias.flow.ts"), bizdate: "2026-11-19" });
  assert.equal(plan.workflow, "chain");
  // Only runs.create bundles; the plan of the same file is fine.
  const before = bundles();
  const bundle = await refused("runs.create", { kind: "test", file: file("nobundle.flow.ts") }, "bundle-failed");
  assert.match(bundle.message, /^cannot bundle nobundle\.flow\.ts: .*Could not resolve "no-such-package-xyz"/);
  assert.deepEqual(bundles(), before, "a failed bundle leaves no file");
  assert.equal((await client.request("runs.plan", { kind: "test", file: file("nobundle.flow.ts") })).total, 1);
});

test("the engine's refusals keep their code, and wrong-state its states", async () => {
  const { run } = await client.request("runs.create", { kind: "test", file: file("gate.flow.ts"), bizdate: "2026-11-19", by: "test" });
  await until("gate to run", async () => (await client.request("runs.get", { run: run.id })).instances[0].tasks[0].state === "running");

  const wrong = await refused("task.operate", { run: run.id, task: "gate", op: "rerun" }, "wrong-state");
  assert.equal(wrong.message, "rerun needs state not_run, success, failed or killed; `gate` on 2026-11-19 is running");
  assert.deepEqual([wrong.state, wrong.allowed], ["running", ["not_run", "success", "failed", "killed"]]);
  const resume = await refused("task.operate", { run: run.id, task: "later", op: "resume" }, "wrong-state");
  assert.deepEqual([resume.state, resume.allowed], ["not_run", ["paused"]]);
  const downstream = await refused("task.rerunDownstream", { run: run.id, task: "gate" }, "wrong-state");
  assert.equal(downstream.state, "running");

  assert.match((await refused("task.operate", { run: run.id, task: "ghost", op: "pause" }, "no-task")).message, /did not select task `ghost`/);
  assert.match((await refused("runs.get", { run: "run-999" }, "no-run")).message, /^no run run-999/);
  assert.equal((await refused("runs.instances", { run: "run-999" }, "no-run")).code, "no-run");
  assert.match((await refused("task.operate", { run: run.id, task: "gate", op: "kill", date: "2020-01-01" }, "no-instance")).message, /has no workflow instance for 2020-01-01/);
  assert.equal((await refused("subscribe", { logs: { instanceId: "run-999@x", task: "a" } }, "no-instance")).code, "no-instance");
  const notYet = await refused("logs.read", { run: run.id, task: "later" }, "no-log");
  assert.equal(notYet.state, "not_run");
  assert.match(notYet.message, /has not run yet \(state not_run\)/);
  assert.equal((await refused("logs.read", { run: run.id, task: "gate", attempt: 5 }, "no-log")).state, "running");
  assert.equal((await refused("task.operate", { run: run.id, op: "set-success" }, "nothing-to-do")).code, "nothing-to-do");
  assert.equal((await refused("task.rerunDownstream", { run: run.id, task: "later", only: ["gate"] }, "invalid-spec")).code, "invalid-spec");
  assert.equal((await refused("task.rerunDownstream", { run: run.id, task: "gate", only: ["ghost"] }, "no-task")).code, "no-task");
  assert.match((await refused("runs.create", { kind: "test", file: file("chain.flow.ts"), tasks: ["zzz"] }, "invalid-spec")).message, /no task `zzz`/);

  const backfill = (await client.request("runs.create", { kind: "backfill", file: file("chain.flow.ts"), from: "2026-11-01", to: "2026-11-02", tasks: ["a"] })).run;
  const ambiguous = await refused("logs.read", { run: backfill.id, task: "a" }, "ambiguous-instance");
  assert.match(ambiguous.message, /has 2 workflow instances; pick one with --date/);
  assert.deepEqual(ambiguous.instances, ["2026-11-02T02:30:00+08:00", "2026-11-03T02:30:00+08:00"]);

  ws.write("go-gate", "");
  await until("the gate run to end", async () => (await client.request("runs.get", { run: run.id })).state === "success");
  const noneLeft = await refused("task.operate", { run: run.id, op: "kill" }, "nothing-to-do");
  assert.match(noneLeft.message, /^kill run needs a waiting or running task, or a workflow instance not started yet/);
});

test("runs.plan answers what runs.create would create, creating nothing: no record, no bundle, no run id", async () => {
  const params: CreateRunParams = {
    kind: "backfill",
    file: file("chain.flow.ts"),
    from: "2026-11-01",
    to: "2026-11-03",
    tasks: ["b"],
    downstream: true,
    order: "desc",
    parallelism: 2,
    by: "test",
  };
  // Runs of earlier tests must be over, so that whatever changes now is the plan's doing.
  const runs = await until("every run to end", async () => {
    const list = await client.request("runs.list", {});
    return list.every((r) => r.state !== "running") && list;
  });
  const journal = (await client.request("runner.status", {})).journal;
  const bundled = bundles();

  const plan = await client.request("runs.plan", params);
  assert.deepEqual(plan, {
    kind: "backfill",
    file: file("chain.flow.ts"),
    workflow: "chain",
    tasks: [
      { id: "b", kind: "shell", upstream: [] },
      { id: "c", kind: "task", upstream: ["b"] },
    ],
    instances: [
      { bizdate: "2026-11-03", cyctime: "2026-11-04T02:30:00+08:00" },
      { bizdate: "2026-11-02", cyctime: "2026-11-03T02:30:00+08:00" },
      { bizdate: "2026-11-01", cyctime: "2026-11-02T02:30:00+08:00" },
    ],
    parallelism: 2,
    order: "desc",
    total: 6,
  } satisfies RunPlan);
  assert.deepEqual(await client.request("runs.list", {}), runs);
  assert.deepEqual((await client.request("runner.status", {})).journal, journal, "nothing journaled");
  assert.deepEqual(bundles(), bundled, "nothing bundled");

  const { run } = await client.request("runs.create", params);
  const last = Math.max(0, ...runs.map((r) => Number(r.id.slice(4))));
  assert.equal(run.id, `run-${last + 1}`, "the plan took no run id");
  assert.deepEqual(run.instances.map((i) => ({ bizdate: i.bizdate, cyctime: i.cyctime })), plan.instances);
  assert.deepEqual(run.tasks.map((t) => ({ id: t.id, kind: t.kind, upstream: t.upstream })), plan.tasks);
  assert.deepEqual([run.parallelism, run.order], [plan.parallelism, plan.order]);

  // Refused as runs.create is, with the same code and sentence.
  for (const bad of [{ ...params, tasks: ["zzz"] }, { ...params, from: "2026-11-05" }, { ...params, kind: "test" as const }]) {
    const planned = await refused("runs.plan", bad, "invalid-spec");
    const created = await refused("runs.create", bad, "invalid-spec");
    assert.equal(planned.message, created.message);
  }
});

test("a run of 3,000 workflow instances: runs.get without instances, runs.instances pages, a state filter", async () => {
  const from = "2018-01-01";
  const to = addDays(from, 2999);
  const { run } = await client.request("runs.create", { kind: "backfill", file: file("big.flow.ts"), from, to, by: "test" });
  assert.equal(run.instances.length, 3000);
  await until("the first instance's `one` to run", async () => (await client.request("runs.instances", { run: run.id, state: "running" })).total === 1);
  const paused = [addDays(from, 10), addDays(from, 1500), addDays(from, 2999)];
  for (const date of paused) await client.request("task.operate", { run: run.id, task: "two", op: "pause", date, by: "test" });

  const full = await client.request("runs.get", { run: run.id });
  const bare = await client.request("runs.get", { run: run.id, instances: false });
  assert.deepEqual(bare.instances, []);
  assert.deepEqual({ ...bare, instances: full.instances }, full, "everything but the instances is there");
  assert.ok(JSON.stringify(bare).length < 5_000, `runs.get without instances is ${JSON.stringify(bare).length} bytes`);
  assert.ok(JSON.stringify(full).length > 500_000);

  const summary = (await client.request("runs.list", {})).find((r) => r.id === run.id)!;
  assert.equal(summary.instances, 3000);
  assert.deepEqual([summary.counts.running, summary.counts.paused, summary.counts.not_run], [1, 3, 5996]);

  const first = await client.request("runs.instances", { run: run.id });
  assert.deepEqual([first.runId, first.total, first.offset, first.instances.length], [run.id, 3000, 0, 100]);
  assert.deepEqual(first.instances[0], full.instances[0], "whole workflow instances, task instances included");
  const pages = [];
  for (let offset = 0; offset < 3000; offset += 1000) pages.push(...(await client.request("runs.instances", { run: run.id, offset, limit: 1000 })).instances);
  assert.deepEqual(pages.map((i) => i.id), full.instances.map((i) => i.id));
  const tail = await client.request("runs.instances", { run: run.id, offset: 2950, limit: 100 });
  assert.deepEqual([tail.total, tail.instances.length, tail.instances.at(-1)!.bizdate], [3000, 50, to]);
  const beyond = await client.request("runs.instances", { run: `${run.id.slice(4)}`, offset: 5000 });
  assert.deepEqual([beyond.runId, beyond.total, beyond.instances.length], [run.id, 3000, 0]);

  const withPaused = await client.request("runs.instances", { run: run.id, state: "paused" });
  assert.deepEqual([withPaused.total, withPaused.instances.map((i) => i.bizdate)], [3, paused]);
  const secondPaused = await client.request("runs.instances", { run: run.id, state: "paused", offset: 1, limit: 1 });
  assert.deepEqual([secondPaused.total, secondPaused.offset, secondPaused.instances.map((i) => i.bizdate)], [3, 1, [paused[1]]]);
  const running = await client.request("runs.instances", { run: run.id, state: "running" });
  assert.deepEqual(running.instances.map((i) => i.bizdate), [from]);
  assert.equal((await client.request("runs.instances", { run: run.id, state: "success" })).total, 0);

  await client.request("task.operate", { run: run.id, op: "kill", by: "test" });
  const killed = await until("the big run to be killed", async () => {
    const r: Run = await client.request("runs.get", { run: run.id, instances: false });
    return r.state === "killed" && r;
  });
  assert.equal(killed.state, "killed");
});
