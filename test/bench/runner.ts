/**
 * The runner's figures (`TIDEFLOW_BENCH=runner`): each measured through the real runner
 * process (dist/runner.js in a temp workspace, spoken to over its WebSocket API with the
 * typed client), beside a baseline measured in the same run on the same machine. Spawn
 * baselines come from a minimal Node child process (not this large one), with the bash-loop
 * floor beside them (see MINIMAL_SPAWNER).
 *
 * 1. a chain of 500 no-op shell tasks vs 500 sequential `sh -c true` spawns;
 * 2. a chain of 500 no-op TS tasks: runner overhead per task;
 * 3. a backfill of 1,000 bizdates × 1 no-op shell task, parallelism 8, vs 1,000
 *    `sh -c true` spawns 8 at a time;
 * 4. restart (spawn → runner.json → a client connected) with a journal of ≥100,000
 *    records vs the same on an empty workspace;
 * 5. the runner's RSS after 10,000 task instances vs an idle runner's;
 * 6. a task printing 200,000 lines: all in the log file and all delivered to a
 *    subscribed client, vs the same command redirected to a file.
 *
 * A run is timed from the `runs.create` request to the arrival of its `run.state`
 * record leaving `running` (the client is subscribed to records first).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import type { ApiEvent, CreateRunParams } from "../../protocol/api";
import type { EngineRecord, Run, RunState, StartEffect } from "../../protocol/runner";
import { RunnerClient, ensureRunner, readRunnerInfo } from "../../common/runner-client";
import { processAlive } from "../../runner/exec/process-tree";
import { Engine } from "../../common/engine/engine";
import { Journal } from "../../runner/journal";
import { loadWorkspace } from "../../server/workspace-scan";
import { ROOT } from "../lsp/harness";

type Row = Record<string, unknown>;

export interface RunnerBenchHelpers {
  goal(what: string, figure: number | null, unit: string, limit: number, compare?: "<=" | "<"): void;
  printTable(title: string, data: Row[]): void;
  /** Adds a row to `.bench/results.json`. */
  addRow(row: Row): void;
}

const RUNNER = join(ROOT, "dist/runner.js");
const RUN_TIMEOUT_MS = 180_000;

function r1(x: number | null | undefined): number | null {
  return x === null || x === undefined ? null : Math.round(x * 10) / 10;
}

function r2(x: number | null | undefined): number | null {
  return x === null || x === undefined ? null : Math.round(x * 100) / 100;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function taskId(i: number): string {
  return `t${String(i).padStart(4, "0")}`;
}

function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------------------
// Workflow files (read statically by the runner: literals only).

/** `n` tasks, each upstream of the next. */
function chainFlow(id: string, n: number, kind: "shell" | "task"): string {
  const out = [`import { workflow, ${kind} } from "tideflow";`, ""];
  for (let i = 1; i <= n; i++) {
    const t = taskId(i);
    const body = kind === "shell" ? `"true"` : "async () => {}";
    out.push(i === 1 ? `export const ${t} = ${kind}("${t}", ${body});` : `export const ${t} = ${kind}("${t}", { upstream: [${taskId(i - 1)}] }, ${body});`);
  }
  out.push("", `export default workflow("${id}", { tasks: [${Array.from({ length: n }, (_, i) => taskId(i + 1)).join(", ")}] });`, "");
  return out.join("\n");
}

/** `n` independent no-op shell tasks; unscheduled, so a backfill has one instance per calendar day. */
function wideFlow(id: string, n: number): string {
  const out = [`import { workflow, shell } from "tideflow";`, ""];
  for (let i = 1; i <= n; i++) out.push(`export const ${taskId(i)} = shell("${taskId(i)}", "true");`);
  out.push("", `export default workflow("${id}", { tasks: [${Array.from({ length: n }, (_, i) => taskId(i + 1)).join(", ")}] });`, "");
  return out.join("\n");
}

const LINES = 200_000;
/** About 60 bytes per line, as an application's log would have. */
const LOUD60 = `awk 'BEGIN { for (i = 1; i <= ${LINES}; i++) printf "12:00:00.000 INFO ingest: processed row %07d of batch 42\\n", i }'`;
const LOUD_SEQ = `seq 1 ${LINES}`;

/** A small task first, so that the client subscribes to the loud task's logs before it starts. */
function loudFlow(): string {
  return [
    `import { workflow, shell } from "tideflow";`,
    ``,
    `export const first = shell("first", "sleep 0.3");`,
    `export const loud = shell("loud", { upstream: [first] }, ${JSON.stringify(LOUD_SEQ)});`,
    `export const loud60 = shell("loud60", { upstream: [first] }, ${JSON.stringify(LOUD60)});`,
    ``,
    `export default workflow("loud", { tasks: [first, loud, loud60] });`,
    ``,
  ].join("\n");
}

const WARMUP_FLOW = `import { workflow, shell, task } from "tideflow";
export const a = shell("a", "true");
export const b = task("b", { upstream: [a] }, async () => {});
export default workflow("warmup", { tasks: [a, b] });
`;

// ---------------------------------------------------------------------------------------
// Baselines in this process.

function spawnExit(command: string, args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => resolve(code));
  });
}

/**
 * The baselines' spawner is a minimal Node process, not this one: fork cost grows with the
 * parent's size, and this bench process is large (its own spawns took 4–6 ms each where a
 * small Node process takes 1.5–2.4 ms), which made the runner look as fast as the floor.
 * The child spawns `n` × `<shell> -c true`, `width` at a time, and prints the elapsed ms.
 * Shell tasks run in bash (SPEC §1), so `bash -c true` is the same work; `sh -c true` (dash
 * here, ~0.9 ms cheaper to start) is printed beside it, as the issue first stated the goal.
 */
const MINIMAL_SPAWNER = `
const { spawn } = require("node:child_process");
const n = Number(process.argv[1]), width = Number(process.argv[2]), shell = process.argv[3];
const t0 = performance.now();
let started = 0, done = 0;
const one = () => {
  if (started >= n) return;
  started++;
  spawn(shell, ["-c", "true"], { stdio: "ignore" }).on("exit", () => {
    if (++done === n) console.log(performance.now() - t0);
    else one();
  });
};
for (let i = 0; i < width; i++) one();
`;

function minimalSpawns(n: number, width: number, shell: "sh" | "bash"): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", MINIMAL_SPAWNER, String(n), String(width), shell], { stdio: ["ignore", "pipe", "inherit"] });
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

async function sequentialSpawns(n: number, shell: "sh" | "bash" = "bash"): Promise<number> {
  return minimalSpawns(n, 1, shell);
}

async function parallelSpawns(n: number, width: number, shell: "sh" | "bash" = "bash"): Promise<number> {
  return minimalSpawns(n, width, shell);
}

/** The floor: `n` sequential `<shell> -c true` from a bash loop (fork of a small bash, timed inside it). */
function bashLoopSpawns(n: number, shell: "sh" | "bash" = "bash"): Promise<number> {
  return new Promise((resolve, reject) => {
    const script = `s=$EPOCHREALTIME; for ((i=0;i<$1;i++)); do ${shell} -c true; done; echo "$s $EPOCHREALTIME"`;
    const child = spawn("bash", ["-c", script, "_", String(n)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", () => {
      const [a, b] = out.trim().split(" ").map((x) => Number(x.replace(",", ".")));
      if (Number.isFinite(a) && Number.isFinite(b)) resolve((b - a) * 1000);
      else reject(new Error(`bash loop printed ${JSON.stringify(out)}`));
    });
  });
}

// ---------------------------------------------------------------------------------------
// The runner.

function procStatus(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

interface Started {
  dir: string;
  client: RunnerClient;
  pid: number;
  resyncs: number;
}

async function startRunner(dir: string): Promise<Started> {
  const { client } = await ensureRunner(dir, RUNNER);
  const started: Started = { dir, client, pid: client.info.pid, resyncs: 0 };
  client.onEvent((e) => {
    if (e.event === "resync") started.resyncs++;
  });
  await client.request("subscribe", { records: true });
  return started;
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid) && Date.now() < deadline) await sleep(20);
  return !processAlive(pid);
}

/** `runner.stop`, then SIGTERM, then SIGKILL: never leaves a runner behind. */
async function stopRunner(r: { client?: RunnerClient; pid: number }): Promise<void> {
  if (r.client) {
    await r.client.request("runner.stop", {}).catch(() => undefined);
    r.client.close();
  }
  if (await waitForExit(r.pid, 15_000)) return;
  try {
    process.kill(r.pid, "SIGTERM");
  } catch {
    return;
  }
  if (await waitForExit(r.pid, 10_000)) return;
  try {
    process.kill(r.pid, "SIGKILL");
  } catch {
    // gone
  }
  await waitForExit(r.pid, 5_000);
}

interface RunResult {
  run: Run;
  state: RunState;
  /** runs.create request → its answer. */
  createMs: number;
  /** runs.create request → the run's end record. */
  totalMs: number;
  records: number;
}

/**
 * Creates a run and waits for its `run.state` record leaving `running`. `onRecord` sees
 * every record of the run as it arrives; `onCreated` runs as soon as the answer is in;
 * `onEnded` when the end is seen, before the run is fetched (its JSON costs the runner memory).
 */
async function runToEnd(
  r: Started,
  params: CreateRunParams,
  hooks: {
    onRecord?: (rec: EngineRecord, at: number) => void;
    onCreated?: (run: Run) => Promise<void> | void;
    /** The end is seen (before the final `runs.get`). */
    onEnded?: (at: number) => void;
  } = {},
): Promise<RunResult> {
  const { client } = r;
  const early: { rec: EngineRecord; at: number }[] = [];
  let runId: string | undefined;
  let records = 0;
  let ended: { state: RunState; at: number } | undefined;
  let wake: (() => void) | undefined;
  let stopped = false;
  let resynced = false;
  const see = (rec: EngineRecord, at: number) => {
    records++;
    hooks.onRecord?.(rec, at);
    if (rec.type === "run.state" && rec.from === "running" && rec.to !== "running" && !ended) {
      ended = { state: rec.to, at };
      wake?.();
    }
  };
  const off = client.onEvent((e: ApiEvent) => {
    const at = performance.now();
    if (e.event === "stopping") {
      stopped = true;
      wake?.();
    } else if (e.event === "resync") {
      resynced = true;
      wake?.();
    } else if (e.event === "records") {
      for (const rec of e.records) {
        if (!("runId" in rec) && rec.type !== "run.created") continue;
        const id = rec.type === "run.created" ? rec.run.id : rec.runId;
        if (runId === undefined) early.push({ rec, at });
        else if (id === runId) see(rec, at);
      }
    }
  });
  try {
    const start = performance.now();
    const { run } = await client.request("runs.create", { by: "bench", ...params });
    const createMs = performance.now() - start;
    runId = run.id;
    for (const { rec, at } of early) {
      const id = rec.type === "run.created" ? rec.run.id : (rec as { runId: string }).runId;
      if (id === runId) see(rec, at);
    }
    await hooks.onCreated?.(run);
    const deadline = start + RUN_TIMEOUT_MS;
    while (!ended) {
      if (stopped) throw new Error(`the runner stopped while ${run.id} ran`);
      if (performance.now() > deadline) throw new Error(`${run.id} did not end within ${RUN_TIMEOUT_MS / 1000} s`);
      if (resynced) {
        // Records were dropped (this client read too slowly): poll the run instead.
        const now = await client.request("runs.get", { run: run.id });
        if (now.state !== "running") ended = { state: now.state, at: performance.now() };
        else await sleep(20);
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 250);
      });
      wake = undefined;
    }
    hooks.onEnded?.(ended.at);
    const final = await client.request("runs.get", { run: run.id });
    return { run: final, state: ended.state, createMs, totalMs: ended.at - start, records };
  } finally {
    off();
  }
}

function countTasks(run: Run): { total: number; success: number } {
  let total = 0;
  let success = 0;
  for (const inst of run.instances) {
    for (const t of inst.tasks) {
      total++;
      if (t.state === "success") success++;
    }
  }
  return { total, success };
}

function newWorkspace(name: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `tideflow-bench-${name}-`));
  for (const [path, text] of Object.entries(files)) writeFileSync(join(dir, path), text);
  return dir;
}

// ---------------------------------------------------------------------------------------

export async function benchRunner(h: RunnerBenchHelpers): Promise<void> {
  if (!existsSync(RUNNER)) throw new Error(`${RUNNER} is missing: run \`npm run build\` first`);
  // The machine is shared: say what was measured and how busy the machine was.
  const built = statSync(RUNNER);
  const context = {
    runner_kb: Math.round(built.size / 1024),
    runner_built: built.mtime.toISOString(),
    load_avg_1m: r2(loadavg()[0]),
    bench_process_rss_mb: r1(process.memoryUsage().rss / 1024 / 1024),
  };
  h.addRow({ bench: "runner context", ...context });
  console.log(`runner: dist/runner.js ${context.runner_kb} KB built ${context.runner_built}; load average ${context.load_avg_1m}; this process (the baselines' spawner) ${context.bench_process_rss_mb} MB RSS`);
  const dirs: string[] = [];
  const runners: Started[] = [];
  const own: ChildProcess[] = [];
  try {
    await benchRuns(h, dirs, runners);
    await benchMemory(h, dirs, runners);
    await benchRestart(h, dirs, own);
  } finally {
    for (const r of runners) await stopRunner(r);
    for (const c of own) if (c.pid !== undefined && processAlive(c.pid)) await stopRunner({ pid: c.pid });
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** 1, 2, 3 and 6 on one runner (after a warm-up run), each beside its baseline. */
async function benchRuns(h: RunnerBenchHelpers, dirs: string[], runners: Started[]): Promise<void> {
  const N = 500;
  const DAYS = 1000;
  const dir = newWorkspace("runs", {
    "warmup.flow.ts": WARMUP_FLOW,
    "shell-chain.flow.ts": chainFlow("shell_chain", N, "shell"),
    "ts-chain.flow.ts": chainFlow("ts_chain", N, "task"),
    "one.flow.ts": wideFlow("one", 1),
    "loud.flow.ts": loudFlow(),
  });
  dirs.push(dir);
  process.stdout.write("runner: starting… ");
  const r = await startRunner(dir);
  runners.push(r);
  const file = (name: string) => join(dir, name);
  const bizdate = "2024-06-01";

  process.stdout.write("warm-up… ");
  const warm = await runToEnd(r, { kind: "test", file: file("warmup.flow.ts"), bizdate });
  if (warm.state !== "success") throw new Error(`the warm-up run ended ${warm.state}`);

  // 1. 500 shell tasks in a chain vs 500 sequential spawns.
  process.stdout.write("shell chain… ");
  const spawnsBefore = await sequentialSpawns(N);
  const shellChain = await runToEnd(r, { kind: "test", file: file("shell-chain.flow.ts"), bizdate });
  const spawnsAfter = await sequentialSpawns(N);
  const spawnMs = Math.min(spawnsBefore, spawnsAfter);
  const shSpawnMs = await sequentialSpawns(N, "sh");
  const floorMs = await bashLoopSpawns(N);

  // 2. 500 TS tasks in a chain.
  process.stdout.write("TS chain… ");
  const tsChain = await runToEnd(r, { kind: "test", file: file("ts-chain.flow.ts"), bizdate });

  // 3. Backfill of 1,000 days × 1 shell task, parallelism 8.
  process.stdout.write("backfill… ");
  const from = "2024-01-01";
  const to = addDays(from, DAYS - 1);
  const parBefore = await parallelSpawns(DAYS, 8);
  const backfill = await runToEnd(r, { kind: "backfill", file: file("one.flow.ts"), from, to, parallelism: 8 });
  const parAfter = await parallelSpawns(DAYS, 8);
  const parMs = Math.min(parBefore, parAfter);
  const shParMs = await parallelSpawns(DAYS, 8, "sh");

  // 6. 200,000 log lines, to the file and to a subscribed client.
  process.stdout.write("loud tasks… ");
  const loud: Row[] = [];
  for (const [task, command] of [["loud", LOUD_SEQ], ["loud60", LOUD60]] as const) {
    loud.push(await benchLoud(r, file("loud.flow.ts"), task, command, bizdate, dir));
  }
  console.log("done");

  const shellRow: Row[] = [
    {
      what: `${N} shell tasks, chain`,
      state: shellChain.state,
      ok_tasks: countTasks(shellChain.run).success,
      runner_ms: r1(shellChain.totalMs),
      create_ms: r1(shellChain.createMs),
      exec_ms: r1(shellChain.totalMs - shellChain.createMs),
      per_task_ms: r2((shellChain.totalMs - shellChain.createMs) / N),
      baseline: `${N} × spawn bash -c true, sequential, from a minimal Node process`,
      baseline_ms: r1(spawnMs),
      baseline_per_task_ms: r2(spawnMs / N),
      ratio: r2((shellChain.totalMs - shellChain.createMs) / spawnMs),
      sh_baseline_per_task_ms: r2(shSpawnMs / N),
      ratio_to_sh: r2((shellChain.totalMs - shellChain.createMs) / shSpawnMs),
      floor_bash_loop_ms: r1(floorMs),
      floor_per_task_ms: r2(floorMs / N),
    },
    {
      what: `${N} TS tasks, chain`,
      state: tsChain.state,
      ok_tasks: countTasks(tsChain.run).success,
      runner_ms: r1(tsChain.totalMs),
      create_ms: r1(tsChain.createMs),
      exec_ms: r1(tsChain.totalMs - tsChain.createMs),
      per_task_ms: r2((tsChain.totalMs - tsChain.createMs) / N),
      baseline: "0 (no-op)",
      baseline_ms: 0,
    },
    {
      what: `backfill ${DAYS} days × 1 shell task, parallelism 8`,
      state: backfill.state,
      ok_tasks: countTasks(backfill.run).success,
      runner_ms: r1(backfill.totalMs),
      create_ms: r1(backfill.createMs),
      exec_ms: r1(backfill.totalMs - backfill.createMs),
      per_task_ms: r2((backfill.totalMs - backfill.createMs) / DAYS),
      baseline: `${DAYS} × spawn bash -c true, 8 at a time, from a minimal Node process`,
      baseline_ms: r1(parMs),
      baseline_per_task_ms: r2(parMs / DAYS),
      ratio: r2((backfill.totalMs - backfill.createMs) / parMs),
      sh_baseline_per_task_ms: r2(shParMs / DAYS),
      ratio_to_sh: r2((backfill.totalMs - backfill.createMs) / shParMs),
    },
  ];
  for (const row of shellRow) h.addRow({ bench: "runner runs", ...row });
  h.printTable("Runs through the real runner (runner_ms: runs.create request → run.state end record; exec_ms: its answer → the end record; after a warm-up run) vs spawns from a minimal Node process (best of before/after), and the floor: the same spawns from a bash loop", shellRow);
  for (const row of loud) h.addRow({ bench: "runner logs", ...row });
  h.printTable(`A task printing ${LINES.toLocaleString("en")} lines (from the loud task's running record to the later of the run's end record and the client having every line) vs the command redirected to a file`, loud);

  // The goals are about running tasks: the one-time cost of creating the run (reading the
  // workflow file in the analyzer process, bundling it with esbuild) is in create_ms.
  const exec = (x: RunResult) => x.totalMs - x.createMs;
  h.goal(`${N} shell tasks (chain, after runs.create) / ${N} sequential bash -c true`, shellChain.state === "success" ? exec(shellChain) / spawnMs : null, "×", 1.5);
  h.goal(`${N} shell tasks (chain, after runs.create) / ${N} sequential sh -c true (dash)`, shellChain.state === "success" ? exec(shellChain) / shSpawnMs : null, "×", 1.5);
  h.goal(`runner overhead per TS task, ${N}-task chain (after runs.create)`, tsChain.state === "success" ? exec(tsChain) / N : null, "ms", 1);
  h.goal(`backfill ${DAYS} days × 1 shell task, parallelism 8 (after runs.create) / ${DAYS} bash -c true 8 at a time`, backfill.state === "success" ? exec(backfill) / parMs : null, "×", 1.5);
  h.goal(`backfill ${DAYS} days × 1 shell task, parallelism 8 (after runs.create)`, backfill.state === "success" ? exec(backfill) / 1000 : null, "s", 5, "<");
  h.goal(`backfill ${DAYS} days × 1 shell task, parallelism 8, runs.create included`, backfill.state === "success" ? backfill.totalMs / 1000 : null, "s", 5, "<");
  for (const row of loud) {
    h.goal(`${row.task}: ${LINES.toLocaleString("en")} lines → file + client / redirect to file`, row.all_delivered && row.all_in_file ? (row.ratio as number) : null, "×", 2);
  }
}

async function benchLoud(r: Started, file: string, task: string, command: string, bizdate: string, dir: string): Promise<Row> {
  // A client as `tideflow logs --follow` is: it counts what log events bring, by byte
  // offset, and after a `resync` (events dropped because it read too slowly) it reads the
  // missing part of the file with `logs.read`.
  let got = 0; // log bytes the client has
  let viaEvents = 0;
  let viaReads = 0;
  let allAt: number | undefined;
  let runningAt: number | undefined;
  let endAt: number | undefined;
  let instanceId = "";
  let runId = "";
  let subscription = -1;
  let reading: Promise<void> = Promise.resolve();
  const stdoutLines = (text: string) => {
    let n = 0;
    for (let at = text.indexOf(" stdout "); at !== -1; at = text.indexOf(" stdout ", at + 1)) n++;
    return n;
  };
  const have = () => {
    if (allAt === undefined && viaEvents + viaReads >= LINES) allAt = performance.now();
  };
  const catchUp = () =>
    (reading = reading.then(async () => {
      const read = await r.client.request("logs.read", { run: runId, task, date: instanceId, attempt: 1, offset: got });
      if (read.size > got) {
        viaReads += stdoutLines(read.text);
        got = read.size;
        have();
      }
    }));
  const off = r.client.onEvent((e) => {
    if (e.event === "log" && e.subscription === subscription) {
      if (e.end <= got) return;
      const buf = Buffer.from(e.text);
      const fresh = buf.subarray(Math.max(0, buf.length - (e.end - got)));
      viaEvents += stdoutLines(fresh.toString("utf8"));
      got = e.end;
      have();
    } else if (e.event === "resync" && runId) {
      void catchUp();
    }
  });
  const resyncsBefore = r.resyncs;
  try {
    const result = await runToEnd(
      r,
      { kind: "test", file, bizdate, tasks: ["first", task] },
      {
        onCreated: async (run) => {
          runId = run.id;
          instanceId = run.instances[0].id;
          ({ subscription } = await r.client.request("subscribe", { logs: { instanceId, task } }));
        },
        onRecord: (rec, at) => {
          if (rec.type === "task.state" && rec.task === task && rec.to === "running") runningAt = at;
        },
        onEnded: (at) => {
          endAt = at;
        },
      },
    );
    const byEnd = viaEvents + viaReads;
    // Whatever the client still misses (dropped events), as a follower would fetch it.
    await reading;
    if (allAt === undefined) await catchUp();
    await r.client.request("unsubscribe", { subscription }).catch(() => undefined);
    const logPath = join(dir, ".tideflow", "logs", instanceId, `${task}.1.log`);
    const inFile = stdoutLines(readFileSync(logPath, "utf8"));
    const attempt = result.run.instances[0].tasks.find((t) => t.task === task)?.attempts[0];

    // Baseline: the same command, its output redirected to a file, from this process.
    const out = join(dir, `baseline-${task}.txt`);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      await spawnExit("bash", ["-c", `${command} > ${out}`]);
      times.push(performance.now() - start);
    }
    const baselineMs = median(times);
    const done = runningAt !== undefined && endAt !== undefined && allAt !== undefined ? Math.max(endAt, allAt) - runningAt : Number.NaN;
    return {
      task,
      state: result.state,
      lines_in_file: inFile,
      all_in_file: inFile === LINES,
      client_lines: viaEvents + viaReads,
      via_events: viaEvents,
      via_logs_read: viaReads,
      by_end_record: byEnd,
      all_delivered: viaEvents + viaReads === LINES,
      resyncs: r.resyncs - resyncsBefore,
      log_mb: r1(statSync(logPath).size / 1024 / 1024),
      output_mb: r1(statSync(out).size / 1024 / 1024),
      end_record_ms: runningAt !== undefined && endAt !== undefined ? r1(endAt - runningAt) : null,
      all_lines_ms: runningAt !== undefined && allAt !== undefined ? r1(allAt - runningAt) : null,
      runner_clock_ms: attempt && result.run.endedAt !== undefined ? result.run.endedAt - attempt.startedAt : null,
      baseline_ms: r1(baselineMs),
      ratio: r2(done / baselineMs),
    };
  } finally {
    off();
  }
}

/** 5. RSS of the runner after 10,000 task instances, vs an idle runner on an empty workspace. */
async function benchMemory(h: RunnerBenchHelpers, dirs: string[], runners: Started[]): Promise<void> {
  const DAYS = 1000;
  const TASKS = 10;
  const emptyDir = newWorkspace("idle");
  dirs.push(emptyDir);
  process.stdout.write(`runner memory: idle runner… `);
  const idle = await startRunner(emptyDir);
  runners.push(idle);
  await idle.client.request("runner.status", {});
  await sleep(500);
  const idleStatus = procStatus(idle.pid);
  await stopRunner(idle);
  runners.splice(runners.indexOf(idle), 1);

  const dir = newWorkspace("rss", { "wide.flow.ts": wideFlow("wide", TASKS) });
  dirs.push(dir);
  process.stdout.write(`${DAYS} days × ${TASKS} tasks… `);
  const r = await startRunner(dir);
  runners.push(r);
  const from = "2024-01-01";
  let atEnd = { rss: Number.NaN, hwm: Number.NaN };
  const result = await runToEnd(
    r,
    { kind: "backfill", file: join(dir, "wide.flow.ts"), from, to: addDays(from, DAYS - 1), parallelism: 8 },
    { onEnded: () => (atEnd = procStatus(r.pid)) },
  );
  await sleep(500);
  const status = procStatus(r.pid);
  const runnerStatus = await r.client.request("runner.status", {});
  console.log("done");
  const counts = countTasks(result.run);
  const row: Row = {
    task_instances: counts.total,
    succeeded: counts.success,
    state: result.state,
    run_s: r2(result.totalMs / 1000),
    per_task_ms: r2(result.totalMs / counts.total),
    journal_records: runnerStatus.journal.records,
    journal_mb: r1(runnerStatus.journal.bytes / 1024 / 1024),
    rss_at_end_mb: r1(atEnd.rss),
    peak_at_end_mb: r1(atEnd.hwm),
    rss_mb: r1(status.rss),
    peak_rss_mb: r1(status.hwm),
    idle_rss_mb: r1(idleStatus.rss),
    idle_peak_rss_mb: r1(idleStatus.hwm),
  };
  h.addRow({ bench: "runner memory", ...row });
  h.printTable(
    `Runner memory after a backfill of ${DAYS} days × ${TASKS} shell tasks, parallelism 8 (/proc/<pid>/status; at the end record, and 0.5 s after a runs.get of the whole run) vs an idle runner on an empty workspace`,
    [row],
  );
  h.goal(`runner RSS with ${counts.total.toLocaleString("en")} task instances (at the end record)`, atEnd.rss, "MB", 150);
  h.goal(`runner RSS with ${counts.total.toLocaleString("en")} task instances (after runs.get of the run)`, status.rss, "MB", 150);
  h.goal(`runner peak RSS (VmHWM) with ${counts.total.toLocaleString("en")} task instances`, status.hwm, "MB", 150);
  await stopRunner(r);
  runners.splice(runners.indexOf(r), 1);
}

/**
 * A real journal of ≥ `min` records, made by the engine in process as the runner would:
 * backfills of a 10-task chain whose every attempt is spawned and exits 0 at once.
 */
async function writeJournal(dir: string, min: number): Promise<{ records: number; bytes: number; taskInstances: number; ms: number }> {
  const start = performance.now();
  const TASKS = 10;
  const flow = join(dir, "restart.flow.ts");
  writeFileSync(flow, chainFlow("restart", TASKS, "shell"));
  const index = await loadWorkspace(dir, [flow]);
  const workflow = index.get(pathToFileURL(flow).href)?.workflow;
  if (!workflow) throw new Error("the restart workflow did not analyze");
  mkdirSync(join(dir, ".tideflow"), { recursive: true, mode: 0o700 });
  const { journal } = Journal.open(join(dir, ".tideflow", "journal"), { sync: false });
  const engine = new Engine();
  let now = Date.parse("2026-01-01T00:00:00Z");
  let pid = 100_000;
  let taskInstances = 0;
  let day = "2020-01-01";
  while (journal.length < min) {
    const to = addDays(day, 499);
    const created = engine.createRun(
      { kind: "backfill", file: flow, workflow: workflow.id, downstream: false, from: day, to, parallelism: 8 },
      workflow,
      now,
      "bench",
    );
    if (!created.ok) throw new Error(created.reason);
    day = addDays(to, 1);
    const pending: EngineRecord[] = [...created.records];
    let starts: StartEffect[] = created.effects.filter((e): e is StartEffect => e.type === "start");
    while (starts.length > 0) {
      const next: StartEffect[] = [];
      for (const s of starts) {
        now += 3;
        taskInstances++;
        const proc = engine.recordProcess(s, s.attempt, { executor: "shell", pid: pid++ }, now);
        if (proc) pending.push(proc);
        now += 7;
        const exit = engine.onAttemptExit(s.instanceId, s.task, s.attempt, { exitCode: 0 }, now);
        if (!exit.ok) throw new Error(exit.reason);
        pending.push(...exit.records);
        for (const e of exit.effects) if (e.type === "start") next.push(e);
      }
      starts = next;
      if (pending.length > 10_000) void journal.append(pending.splice(0));
    }
    await journal.append(pending.splice(0));
  }
  await journal.close();
  return { records: journal.length, bytes: statSync(join(dir, ".tideflow", "journal")).size, taskInstances, ms: performance.now() - start };
}

/** Spawn → runner.json with the child's pid → a client connected. */
async function timeStart(dir: string, own: ChildProcess[]): Promise<{ readyMs: number; infoMs: number; replayLine: string; journalRecords: number }> {
  const logPath = join(dir, "bench-runner.log");
  const out = openSync(logPath, "w");
  const start = performance.now();
  const child = spawn(process.execPath, [RUNNER, "--workspace", dir], { stdio: ["ignore", out, out], cwd: dir });
  closeSync(out);
  own.push(child);
  let exited: number | null | undefined;
  child.once("exit", (code) => (exited = code));
  const deadline = start + 30_000;
  let infoMs = 0;
  let client: RunnerClient | undefined;
  while (!client) {
    if (exited !== undefined) throw new Error(`the runner exited at start (${exited}): ${readFileSync(logPath, "utf8")}`);
    if (performance.now() > deadline) throw new Error("the runner did not come up within 30 s");
    const info = readRunnerInfo(dir);
    if (info && info.pid === child.pid) {
      infoMs = performance.now() - start;
      client = await RunnerClient.connect(info).catch(() => undefined);
      if (client) break;
    }
    await sleep(1);
  }
  const readyMs = performance.now() - start;
  const status = await client.request("runner.status", {});
  await stopRunner({ client, pid: child.pid! });
  const replayLine = /journal: .* replayed in \d+ ms/.exec(readFileSync(logPath, "utf8"))?.[0] ?? "";
  return { readyMs, infoMs, replayLine, journalRecords: status.journal.records };
}

/** 4. Restart with a journal of ≥ 100,000 records vs a start on an empty workspace. */
async function benchRestart(h: RunnerBenchHelpers, dirs: string[], own: ChildProcess[]): Promise<void> {
  const TIMES = 3;
  process.stdout.write("runner restart: writing the journal… ");
  const dir = newWorkspace("restart");
  dirs.push(dir);
  const made = await writeJournal(dir, 100_000);
  const emptyDir = newWorkspace("empty");
  dirs.push(emptyDir);
  process.stdout.write("starts… ");
  const big: Awaited<ReturnType<typeof timeStart>>[] = [];
  const empty: Awaited<ReturnType<typeof timeStart>>[] = [];
  for (let i = 0; i < TIMES; i++) {
    empty.push(await timeStart(emptyDir, own));
    big.push(await timeStart(dir, own));
  }
  console.log("done");
  const row = (what: string, runs: typeof big, extra: Row): Row => ({
    workspace: what,
    journal_records: runs[0].journalRecords,
    ...extra,
    ready_median_ms: r1(median(runs.map((x) => x.readyMs))),
    ready_each_ms: runs.map((x) => r1(x.readyMs)).join(" / "),
    runner_json_median_ms: r1(median(runs.map((x) => x.infoMs))),
    runner_says: runs[runs.length - 1].replayLine,
  });
  const restartRows = [
    row("empty", empty, { journal_mb: 0, made_in_ms: null }),
    row(`${made.taskInstances.toLocaleString("en")} task instances`, big, { journal_mb: r1(made.bytes / 1024 / 1024), made_in_ms: r1(made.ms) }),
  ];
  for (const r of restartRows) h.addRow({ bench: "runner restart", ...r });
  h.printTable(`Runner start: spawn of node dist/runner.js → runner.json with its pid → a client connected (${TIMES} starts each, alternating)`, restartRows);
  const bigMedian = median(big.map((x) => x.readyMs));
  h.goal(`runner restart with a journal of ${made.records.toLocaleString("en")} records, to ready`, bigMedian / 1000, "s", 1);
}
