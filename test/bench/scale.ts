/**
 * Scheduling at scale (`npm run bench -- scale`, issue 8 §3), through the real runner
 * process (dist/runner.js in a temp workspace, spoken to over its WebSocket API):
 *
 * 1. per-task cost of an hourly backfill of one `echo` task at parallelism 16, at 1, ~1k,
 *    ~10k and ~100k task instances (a fresh runner each), beside the same number of bare
 *    `sh -c echo` spawns 16 at a time from a minimal Node child process; the runner's
 *    VmHWM beside each. Per-task cost = runs.create request (after a runs.plan warmed the
 *    analyzer) → the run's end record, / n; flatness is judged from ~1k task instances up.
 * 2. a 3-year backfill of an hourly 5-task chain (131,520 task instances): runs.create
 *    request → answer, and the runner's VmHWM after creation and after running 20 s;
 *    baselines from the same run: planning alone (`planRun`, in this process) and
 *    JSON.stringify + JSON.parse of the run the runner answered with; and the wall time of
 *    `tideflow show` of that run (a summary; goal 200 ms).
 *
 * TIDEFLOW_SCALE_MAX caps part 1's sizes (default 100000): the 100k run takes minutes.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { ApiEvent, CreateRunParams } from "../../protocol/api";
import type { RunSpec } from "../../protocol/runner";
import type { WorkflowModel } from "../../protocol/model";
import { RunnerClient, ensureRunner } from "../../common/runner-client";
import { planRun } from "../../common/engine/engine";
import { processAlive } from "../../runner/exec/process-tree";
import { ROOT } from "../lsp/harness";
import type { RunnerBenchHelpers } from "./runner";

const RUNNER = join(ROOT, "dist/runner.js");
const WIDTH = 16;

const r1 = (x: number) => Math.round(x * 10) / 10;
const r2 = (x: number) => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** As test/bench/runner.ts's MINIMAL_SPAWNER, with the task's command: `n` × `sh -c 'echo hi'`, `width` at a time; prints elapsed ms. */
const MINIMAL_SPAWNER = `
const { spawn } = require("node:child_process");
const n = Number(process.argv[1]), width = Number(process.argv[2]);
const t0 = performance.now();
let started = 0, done = 0;
const one = () => {
  if (started >= n) return;
  started++;
  spawn("sh", ["-c", "echo hi"], { stdio: ["ignore", "pipe", "pipe"] }).on("close", () => {
    if (++done === n) console.log(performance.now() - t0);
    else one();
  }).stdout.resume();
};
for (let i = 0; i < width; i++) one();
`;

function minimalSpawns(n: number, width: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", MINIMAL_SPAWNER, String(n), String(width)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", () => {
      const ms = Number(out.trim());
      if (Number.isFinite(ms)) resolve(ms);
      else reject(new Error(`minimal spawner printed ${JSON.stringify(out)}`));
    });
  });
}

function vmHwmMb(pid: number): number {
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return kb === undefined ? Number.NaN : Number(kb) / 1024;
}

function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

const ECHO_FLOW = (schedule: string | undefined) => `import { workflow, shell } from "tideflow";
export const hello = shell("hello", "echo hi");
export default workflow("echo_${schedule ? "hourly" : "daily"}", { ${schedule ? `schedule: "${schedule}", ` : ""}timezone: "UTC", tasks: [hello] });
`;

const CHAIN = ["extract", "clean", "join", "aggregate", "publish"];
const CHAIN_FLOW = `import { workflow, shell } from "tideflow";
${CHAIN.map((t, i) => `export const ${t} = shell("${t}", ${i === 0 ? "" : `{ upstream: [${CHAIN[i - 1]}] }, `}"echo ${t}");`).join("\n")}
export default workflow("hourly_chain", { schedule: "0 * * * *", timezone: "UTC", tasks: [${CHAIN.join(", ")}] });
`;

interface Runner {
  dir: string;
  client: RunnerClient;
  pid: number;
}

async function startIn(name: string, files: Record<string, string>): Promise<Runner> {
  const dir = mkdtempSync(join(tmpdir(), `tideflow-bench-scale-${name}-`));
  for (const [path, text] of Object.entries(files)) writeFileSync(join(dir, path), text);
  const { client } = await ensureRunner(dir, RUNNER);
  return { dir, client, pid: client.info.pid };
}

async function stop(r: Runner): Promise<void> {
  await r.client.request("runner.stop", {}).catch(() => undefined);
  r.client.close();
  const deadline = Date.now() + 20_000;
  while (processAlive(r.pid) && Date.now() < deadline) await sleep(20);
  if (processAlive(r.pid)) process.kill(r.pid, "SIGKILL");
  rmSync(r.dir, { recursive: true, force: true });
}

/** runs.create, then waits for the run's end record; `ms` from the request to that record. */
async function runToEnd(r: Runner, params: CreateRunParams, timeoutMs: number): Promise<{ ms: number; createMs: number; state: string; instances: number }> {
  let runId: string | undefined;
  let endedAt: number | undefined;
  let state = "running";
  let resynced = false;
  const pending: { id: string; to: string; at: number }[] = [];
  const off = r.client.onEvent((e: ApiEvent) => {
    if (e.event === "resync") resynced = true;
    if (e.event !== "records") return;
    for (const rec of e.records) {
      if (rec.type !== "run.state" || rec.to === "running") continue;
      if (runId === undefined) pending.push({ id: rec.runId, to: rec.to, at: performance.now() });
      else if (rec.runId === runId && endedAt === undefined) [endedAt, state] = [performance.now(), rec.to];
    }
  });
  try {
    await r.client.request("subscribe", { records: true });
    const start = performance.now();
    const { run } = await r.client.request("runs.create", { by: "bench", ...params });
    const createMs = performance.now() - start;
    runId = run.id;
    for (const p of pending) if (p.id === runId && endedAt === undefined) [endedAt, state] = [p.at, p.to];
    while (endedAt === undefined) {
      if (performance.now() - start > timeoutMs) throw new Error(`${runId} did not end within ${timeoutMs / 1000} s`);
      if (resynced) {
        const s = (await r.client.request("runs.list", {})).find((x) => x.id === runId);
        if (s && s.state !== "running") [endedAt, state] = [performance.now(), s.state];
      }
      await sleep(100);
    }
    return { ms: endedAt - start, createMs, state, instances: run.instances.length };
  } finally {
    off();
  }
}

export async function benchScale(h: RunnerBenchHelpers): Promise<void> {
  if (!existsSync(RUNNER)) throw new Error(`${RUNNER} is missing: run \`npm run build\` first`);
  console.log(`scale: load average ${r2(loadavg()[0])}`);
  await perTaskCost(h);
  await bigBackfill(h);
}

/** Part 1: per-task cost from 1 to ~100,000 task instances. */
async function perTaskCost(h: RunnerBenchHelpers): Promise<void> {
  const max = Number(process.env.TIDEFLOW_SCALE_MAX ?? 100_000);
  const sizes = [1, 1_000, 10_000, 100_000].filter((n) => n <= max);
  const rows: Record<string, unknown>[] = [];
  let first: number | undefined;
  let last: number | undefined;
  for (const n of sizes) {
    // One unscheduled instance for n = 1; else hourly, whole days: 1,008, 10,008, 99,984.
    const hourly = n > 1;
    const days = hourly ? Math.ceil(n / 24) - (n >= 100_000 ? 1 : 0) : 1;
    const r = await startIn(`n${n}`, { "echo.flow.ts": ECHO_FLOW(hourly ? "0 * * * *" : undefined) });
    try {
      const from = "2020-01-01";
      const params: CreateRunParams = { kind: "backfill", file: join(r.dir, "echo.flow.ts"), from, to: addDays(from, days - 1), parallelism: WIDTH };
      // Warm the analyzer on the file (a plan creates nothing), so that creation is not a cold start.
      await r.client.request("runs.plan", params);
      const idle = vmHwmMb(r.pid);
      const res = await runToEnd(r, params, 3_600_000);
      const hwm = vmHwmMb(r.pid);
      const baseline = await minimalSpawns(res.instances, WIDTH);
      const perTask = res.ms / res.instances;
      const perSpawn = baseline / res.instances;
      // Flatness is judged from ~1k up: a single task's figure is mostly request latency.
      if (res.instances >= 1_000) first ??= perTask;
      last = perTask;
      const row = {
        bench: "scale per-task cost",
        task_instances: res.instances,
        state: res.state,
        runner_ms_per_task: r2(perTask),
        bare_spawn_ms_each: r2(perSpawn),
        ratio: r2(perTask / perSpawn),
        create_ms: r1(res.createMs),
        runner_idle_hwm_mb: r1(idle),
        runner_hwm_mb: r1(hwm),
      };
      rows.push(row);
      h.addRow(row);
      console.log(`  ${res.instances} task instances: ${r2(perTask)} ms/task (bare spawn ${r2(perSpawn)} ms), runner VmHWM ${r1(hwm)} MB`);
    } finally {
      await stop(r);
    }
  }
  h.printTable(`Per-task cost, hourly echo backfill at parallelism ${WIDTH} (fresh runner per size) vs bare \`sh -c echo\` ${WIDTH} at a time`, rows);
  if (first !== undefined && last !== undefined && sizes[sizes.length - 1] > 1_000) {
    h.goal(`per-task cost at ${sizes[sizes.length - 1]} / at 1000 task instances (flat)`, last / first, "×", 1.5);
  }
}

/** Part 2: create a 3-year hourly 5-task backfill, and the runner's memory while it runs. */
async function bigBackfill(h: RunnerBenchHelpers): Promise<void> {
  const r = await startIn("chain", { "chain.flow.ts": CHAIN_FLOW });
  try {
    const params: CreateRunParams = { kind: "backfill", file: join(r.dir, "chain.flow.ts"), from: "2023-01-01", to: "2025-12-31", parallelism: WIDTH, by: "bench" };
    // Warm the analyzer on the same file (a plan creates nothing).
    await r.client.request("runs.plan", params);
    const idle = vmHwmMb(r.pid);
    const t0 = performance.now();
    const { run } = await r.client.request("runs.create", params);
    const createMs = performance.now() - t0;
    const afterCreate = vmHwmMb(r.pid);
    const total = run.instances.length * run.tasks.length;
    // Baselines from the same run, in this process.
    const t1 = performance.now();
    JSON.parse(JSON.stringify(run));
    const jsonMs = performance.now() - t1;
    const spec: RunSpec = { kind: "backfill", file: params.file, workflow: run.workflow, from: params.from, to: params.to, parallelism: WIDTH, downstream: false };
    const model = { id: run.workflow, schedule: "0 * * * *", timezone: "UTC", tasks: run.tasks.map((t) => ({ id: t.id, kind: t.kind, command: t.command, upstream: t.upstream.map((u) => ({ task: u })) })) };
    const t2 = performance.now();
    const planned = planRun(spec, model as unknown as WorkflowModel, Date.now());
    const planMs = performance.now() - t2;
    if (!planned.ok) throw new Error(planned.reason);
    // `tideflow show` of that run: a summary, not the whole run (test/cli/show.test.ts
    // asserts the summary; this is how long a person waits for it). Median of 5.
    const showTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      const shown = spawnSync(process.execPath, [join(ROOT, "dist/cli.js"), "show", run.id], { cwd: r.dir, encoding: "utf8" });
      showTimes.push(performance.now() - start);
      if (shown.status !== 0) throw new Error(`tideflow show ${run.id} exited ${shown.status}: ${shown.stderr}`);
    }
    const showMs = [...showTimes].sort((a, b) => a - b)[2];
    await sleep(20_000);
    const running = vmHwmMb(r.pid);
    const summary = (await r.client.request("runs.list", {})).find((s) => s.id === run.id);
    await r.client.request("task.operate", { run: run.id, op: "kill", by: "bench" }).catch(() => undefined);
    const row = {
      bench: "scale 3-year hourly 5-task backfill",
      task_instances: total,
      create_ms: r1(createMs),
      plan_alone_ms: r1(planMs),
      json_roundtrip_of_run_ms: r1(jsonMs),
      runner_idle_hwm_mb: r1(idle),
      runner_hwm_after_create_mb: r1(afterCreate),
      runner_hwm_after_20s_mb: r1(running),
      succeeded_in_20s: summary?.counts.success ?? null,
      cli_show_p50_ms: r1(showMs),
    };
    h.addRow(row);
    h.printTable("3-year backfill of an hourly 5-task chain", [row]);
    h.goal("create a 131,520-task-instance backfill (runs.create answered)", createMs, "ms", 2000);
    h.goal("runner VmHWM while that backfill runs", running, "MB", 300);
    h.goal("tideflow show of that backfill (median of 5)", showMs, "ms", 200);
  } finally {
    await stop(r);
  }
}
