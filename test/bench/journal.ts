/**
 * Restart after 1,000,000 journal records (issue 8 §3): many small runs written through
 * the real Journal (compaction on, with the runner's thresholds) by the real engine, as a
 * runner makes them; then the real runner (dist/runner.js) is started on the workspace and
 * timed from spawn to a connected client. Baseline, from the same run: a minimal Node
 * process that reads and JSON.parses a file of the journal's size (the journal's own
 * content as one JSON array), spawn to exit.
 *
 * Run: `node esbuild.mjs && node --import tsx test/bench/journal.ts [records] [--uncompacted]`
 * (default 1,000,000; `--uncompacted` also measures the same journal written with
 * compaction off, as before it existed). Prints figures; asserts nothing.
 */
import { spawn, spawnSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import type { WorkflowModel } from "../../protocol/model";
import type { EngineRecord, StartEffect } from "../../protocol/runner";
import { Engine } from "../../common/engine/engine";
import { Journal } from "../../runner/journal";
import { RunnerClient, readRunnerInfo } from "../../common/runner-client";

const ROOT = resolve(__dirname, "../..");
const RUNNER = join(ROOT, "dist/runner.js");
const R0 = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
const MODEL: WorkflowModel = {
  id: "small",
  idRange: R0,
  range: R0,
  calleeRange: R0,
  timezone: "UTC",
  tasks: [{ id: "only", kind: "shell", command: "echo hello", idRange: R0, range: R0, calleeRange: R0, upstream: [], listed: true }],
};

async function writeJournal(dir: string, target: number, compact: boolean): Promise<{ written: number; runs: number; ms: number; compactions: number }> {
  const t0 = performance.now();
  const { journal } = Journal.open(join(dir, ".tideflow", "journal"), { sync: false, ...(compact ? {} : { compactMinBytes: Number.POSITIVE_INFINITY }) });
  const engine = new Engine();
  journal.setSnapshotSource(() => engine.snapshotEntries());
  const file = join(dir, "small.flow.ts");
  let now = Date.parse("2026-01-01T00:00:00Z");
  let written = 0;
  let runs = 0;
  let pid = 100_000;
  let batch: EngineRecord[] = [];
  const flush = async () => {
    written += batch.length;
    await journal.append(batch);
    batch = [];
  };
  while (written + batch.length < target) {
    const r = engine.createRun({ kind: "test", file, workflow: "small", downstream: false, bizdate: "2025-12-31" }, MODEL, (now += 1000), "cli");
    if (!r.ok) throw new Error(r.reason);
    runs++;
    batch.push(...r.records);
    for (const s of r.effects.filter((e): e is StartEffect => e.type === "start")) {
      const p = engine.recordProcess(s, s.attempt, { executor: "shell", pid: pid++ }, (now += 3));
      if (p) batch.push(p);
      const x = engine.onAttemptExit(s.instanceId, s.task, s.attempt, { exitCode: 0 }, (now += 7));
      if (!x.ok) throw new Error(x.reason);
      batch.push(...x.records);
    }
    if (batch.length >= 5000) await flush();
  }
  await flush();
  await journal.close();
  return { written, runs, ms: performance.now() - t0, compactions: journal.compactions };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Spawn → runner.json with the child's pid → a client connected; the runner's own replay line. */
async function timeRunnerStart(dir: string): Promise<{ readyMs: number; replay: string; records: number }> {
  const logPath = join(dir, "bench-runner.log");
  const out = openSync(logPath, "w");
  const start = performance.now();
  const child = spawn(process.execPath, [RUNNER, "--workspace", dir], { stdio: ["ignore", out, out], cwd: dir });
  closeSync(out);
  let exited: number | null | undefined;
  child.once("exit", (code) => (exited = code));
  let client: RunnerClient | undefined;
  while (!client) {
    if (exited !== undefined) throw new Error(`the runner exited (${exited}): ${readFileSync(logPath, "utf8")}`);
    if (performance.now() - start > 60_000) throw new Error("the runner did not come up within 60 s");
    const info = readRunnerInfo(dir);
    if (info && info.pid === child.pid) client = await RunnerClient.connect(info).catch(() => undefined);
    if (!client) await sleep(1);
  }
  const readyMs = performance.now() - start;
  const status = await client.request("runner.status", {});
  await client.request("runner.stop", {}).catch(() => undefined);
  client.close();
  await new Promise<void>((r) => (exited !== undefined ? r() : child.once("exit", () => r())));
  const replay = /journal: .* replayed in \d+ ms/.exec(readFileSync(logPath, "utf8"))?.[0] ?? "";
  return { readyMs, replay, records: status.journal.records };
}

/** A minimal Node process reading and parsing `path` as JSON, spawn to exit; and its own parse time. */
function timeParse(path: string): { spawnToExitMs: number; parseMs: number } {
  const start = performance.now();
  const r = spawnSync(
    process.execPath,
    ["-e", `const t=performance.now();JSON.parse(require("fs").readFileSync(${JSON.stringify(path)},"utf8"));process.stdout.write(String(performance.now()-t))`],
    { encoding: "utf8" },
  );
  const spawnToExitMs = performance.now() - start;
  if (r.status !== 0) throw new Error(r.stderr);
  return { spawnToExitMs, parseMs: Number(r.stdout) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** One workspace: the journal written (compacted or not), the runner's restart and the baseline, timed. */
async function measure(target: number, compact: boolean): Promise<Record<string, unknown>[]> {
  const dir = mkdtempSync(join(tmpdir(), "tideflow-bench-journal-"));
  try {
    mkdirSync(join(dir, ".tideflow"), { recursive: true, mode: 0o700 });
    process.stdout.write(`${compact ? "compacted" : "uncompacted (compaction off)"}: writing ${target} records… `);
    const made = await writeJournal(dir, target, compact);
    const journalPath = join(dir, ".tideflow", "journal");
    const bytes = statSync(journalPath).size;
    console.log(`${made.written} records of ${made.runs} runs in ${(made.ms / 1000).toFixed(1)} s; ${made.compactions} compactions; journal now ${(bytes / 1e6).toFixed(1)} MB`);

    // The baseline file: the journal's own entries as one JSON array (the same size, less the checksums).
    const text = readFileSync(journalPath, "utf8");
    const lines = text.split("\n").slice(1, -1);
    const baseline = join(dir, "baseline.json");
    writeFileSync(baseline, `[${lines.map((l) => l.slice(9)).join(",")}]`);
    const baselineBytes = statSync(baseline).size;

    const runner: Awaited<ReturnType<typeof timeRunnerStart>>[] = [];
    const parse: ReturnType<typeof timeParse>[] = [];
    for (let i = 0; i < 3; i++) {
      parse.push(timeParse(baseline));
      runner.push(await timeRunnerStart(dir));
    }
    const ready = median(runner.map((r) => r.readyMs));
    const base = median(parse.map((p) => p.spawnToExitMs));
    const label = compact ? "compacted" : "uncompacted";
    console.log(`${label}: restart after ${made.written} records: ${Math.round(ready)} ms (goal ≤ 1000 ms), ${(ready / base).toFixed(2)}× the read+parse baseline (${Math.round(base)} ms)`);
    return [
      { what: `${label}: runner restart, spawn → connected (median of 3)`, ms: Math.round(ready), file_MB: +(bytes / 1e6).toFixed(1), entries: runner[0].records, runner_log: runner[runner.length - 1].replay },
      { what: `${label}: baseline, node reads + JSON.parses a file of that size, spawn → exit`, ms: Math.round(base), file_MB: +(baselineBytes / 1e6).toFixed(1), parse_only_ms: Math.round(median(parse.map((p) => p.parseMs))) },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const target = Number(process.argv[2] ?? 1_000_000);
  const rows = [...(await measure(target, true)), ...(process.argv.includes("--uncompacted") ? await measure(target, false) : [])];
  console.table(rows);
}

void main();
