/**
 * A damaged journal, as a user meets it: 8 finished runs made with the real CLI, one byte
 * of one record flipped while the runner is down, then a restart. Only that record is
 * lost: finished runs stay finished, nothing runs again (the tasks' own execution log and
 * the attempt logs prove it), run ids and log folders are never reused, and the damage is
 * reported (runner.log, `runner.status`, `tideflow runner status --json`).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { afterEach, test } from "node:test";
import type { RunnerStatus } from "../../protocol/api";
import type { WorkflowModel } from "../../protocol/model";
import type { Decision, EngineRecord, Run, StartEffect } from "../../protocol/runner";
import { Engine } from "../../common/engine/engine";
import { Journal } from "../../runner/journal";
import { readRunnerInfo } from "../../common/runner-client";
import { processAlive } from "../../runner/exec/process-tree";
import { journalDamageWarning } from "../../runner/cli-format";
import { type Workspace, until, workspace } from "./fixture";

const FLOW = `import { workflow, shell } from "tideflow";
export const a = shell("a", 'echo "$TIDEFLOW_ATTEMPT_ID" >> "$TIDEFLOW_TEST_OUT/exec"; echo a ran');
export const b = shell("b", { upstream: [a] }, 'echo "$TIDEFLOW_ATTEMPT_ID" >> "$TIDEFLOW_TEST_OUT/exec"; echo b ran');
export default workflow("j", { tasks: [a, b] });
`;

let ws: Workspace | undefined;
/** This file is also the child process of the compaction tests, which registers no test. */
const IS_CHILD = process.env.TIDEFLOW_JOURNAL_CHILD !== undefined;
const it: typeof test = IS_CHILD ? ((() => undefined) as unknown as typeof test) : test;
if (!IS_CHILD) afterEach(async () => {
  await ws?.dispose();
  ws = undefined;
});

interface Line {
  start: number;
  end: number;
  record: EngineRecord;
}

function journalLines(path: string): { data: Buffer; lines: Line[] } {
  const data = readFileSync(path);
  const lines: Line[] = [];
  let pos = data.indexOf(0x0a) + 1;
  while (pos < data.length) {
    const nl = data.indexOf(0x0a, pos);
    const text = data.toString("utf8", pos, nl);
    lines.push({ start: pos, end: nl, record: JSON.parse(text.slice(9)) as EngineRecord });
    pos = nl + 1;
  }
  return { data, lines };
}

/** Flips one byte of the line's JSON (a digit of its `at`), so that its checksum fails. */
function flipByteOf(path: string, data: Buffer, line: Line): void {
  const text = data.toString("latin1", line.start, line.end);
  const at = text.indexOf('"at":') + 5;
  assert.ok(at > 5);
  const copy = Buffer.from(data);
  copy[line.start + at + 3] = copy[line.start + at + 3] === 0x31 ? 0x32 : 0x31;
  writeFileSync(path, copy);
  writeFileSync(`${path}.flipped`, copy);
}

/** Eight finished test runs, each of two shell tasks; the runner stopped; what was executed and logged. */
async function eightRuns(): Promise<{ journal: string; exec: string; logs: Map<string, string> }> {
  const w = workspace({ "j.flow.ts": FLOW });
  ws = w;
  const out = join(w.dir, "out");
  mkdirSync(out);
  process.env.TIDEFLOW_TEST_OUT = out;
  for (let i = 1; i <= 8; i++) {
    const r = await w.cli(["test", "j.flow.ts", "--date", `2026-01-0${i}`]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  }
  const stop = await w.cli(["runner", "stop"]);
  assert.equal(stop.code, 0, stop.stderr);
  const exec = readFileSync(join(out, "exec"), "utf8");
  assert.equal(exec.trim().split("\n").length, 16);
  return { journal: join(w.dir, ".tideflow", "journal"), exec, logs: logFiles(w.dir) };
}

function logFiles(dir: string): Map<string, string> {
  const root = join(dir, ".tideflow", "logs");
  const files = new Map<string, string>();
  for (const folder of readdirSync(root)) {
    for (const f of readdirSync(join(root, folder))) files.set(`${folder}/${f}`, readFileSync(join(root, folder, f), "utf8"));
  }
  return files;
}

async function status(): Promise<RunnerStatus> {
  const client = await ws!.client();
  try {
    return await client.request("runner.status", {});
  } finally {
    client.close();
  }
}

async function runs(): Promise<Run[]> {
  const client = await ws!.client();
  try {
    const list = await client.request("runs.list", {});
    return await Promise.all(list.map((r) => client.request("runs.get", { run: r.id })));
  } finally {
    client.close();
  }
}

it("one flipped byte loses one record: finished runs stay finished, nothing runs again, the damage is reported", async () => {
  const before = await eightRuns();
  const { data, lines } = journalLines(before.journal);
  // The worst record to lose: the one that moves run-4's first task from running to
  // success. Without it the task looks as if it were still running.
  const victim = lines.find((l) => l.record.type === "task.state" && l.record.runId === "run-4" && l.record.task === "a" && l.record.to === "success");
  assert.ok(victim);
  flipByteOf(before.journal, data, victim);

  const started = await ws!.cli(["runner", "start"]);
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stderr, /^tideflow: warning: the runner's journal was damaged .*1 record/m, "the command that started the runner says so");
  const s = await status();
  assert.ok(s.journal.damage, "runner.status reports the damage");
  assert.match((await ws!.cli(["runner", "status"])).stdout, /journal was damaged/);
  assert.equal(s.journal.damage.records, 1);
  assert.equal(s.journal.damage.bytes, victim.end + 1 - victim.start);
  assert.ok(s.journal.damage.keptAs && existsSync(s.journal.damage.keptAs));
  assert.deepEqual(readFileSync(s.journal.damage.keptAs), readFileSync(before.journal + ".flipped"), "the original is kept");
  assert.ok(Math.abs(s.journal.damage.at - Date.now()) < 120_000);
  const warning = journalDamageWarning(s);
  assert.match(warning ?? "", /journal was damaged.*1 record/);
  const json = await ws!.cli(["runner", "status", "--json"]);
  assert.equal(JSON.parse(json.stdout).journal.damage.records, 1);
  assert.match(readFileSync(join(ws!.dir, ".tideflow", "runner.log"), "utf8"), /journal: .*damaged/);

  // A new run: fresh id, fresh log folder, and by the time it ends the recovery has had
  // every chance to restart old work.
  const r = await ws!.cli(["test", "j.flow.ts", "--date", "2026-02-01"]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /^run-9:/);

  const all = await runs();
  assert.deepEqual(all.map((x) => [x.id, x.state]), [...Array(9).keys()].map((i) => [`run-${i + 1}`, "success"]));
  for (const run of all) {
    for (const ti of run.instances[0].tasks) {
      assert.equal(ti.state, "success", `${run.id} ${ti.task}`);
      assert.equal(ti.attempts.length, 1, `${run.id} ${ti.task} attempts`);
      assert.ok(ti.attempts[0].endedAt !== undefined, `${run.id} ${ti.task} attempt ended`);
      assert.ok(!ti.attempts[0].error, `${run.id} ${ti.task}: ${ti.attempts[0].error}`);
    }
  }
  const exec = readFileSync(join(ws!.dir, "out", "exec"), "utf8");
  assert.equal(exec.slice(0, before.exec.length), before.exec, "earlier executions unchanged");
  const added = exec.slice(before.exec.length).trim().split("\n");
  assert.equal(added.length, 2, `only the new run executed: ${added.join(", ")}`);
  assert.ok(added[0].startsWith("run-9@") && added[0].endsWith("/a/1"), added[0]);
  assert.ok(added[1].startsWith("run-9@") && added[1].endsWith("/b/1"), added[1]);
  const after = logFiles(ws!.dir);
  for (const [file, text] of before.logs) assert.equal(after.get(file), text, `${file} unchanged`);
  const newLogs = [...after.keys()].filter((f) => !before.logs.has(f));
  assert.equal(newLogs.length, 2);
  assert.ok(newLogs.every((f) => f.startsWith("run-9@")), newLogs.join(", "));

  // The damage is told once: the journal was repaired, so the next start is clean.
  const stop = await ws!.cli(["runner", "stop"]);
  assert.equal(stop.code, 0, stop.stderr);
  const clean = await ws!.cli(["runner", "start"]);
  assert.doesNotMatch(clean.stderr, /damaged/);
  assert.equal((await status()).journal.damage, undefined);
  assert.equal((await runs()).filter((x) => x.state === "success").length, 9);
});

it("ids are never reused: not after a lost run.created, not after a journal that lost its last runs", async () => {
  const before = await eightRuns();
  const { data, lines } = journalLines(before.journal);
  const created8 = lines.find((l) => l.record.type === "run.created" && l.record.run.id === "run-8")!;
  flipByteOf(before.journal, data, created8);
  await ws!.cli(["runner", "start"]);
  const s = await status();
  assert.equal(s.journal.damage?.records, 1);
  assert.ok((s.journal.damage?.notApplied ?? 0) > 0, "run-8's other records could not be applied, and are counted");
  assert.deepEqual((await runs()).map((x) => x.id), ["run-1", "run-2", "run-3", "run-4", "run-5", "run-6", "run-7"]);
  const r = await ws!.cli(["test", "j.flow.ts", "--date", "2026-02-01"]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /^run-9:/, "run-8's id stays taken");
  await ws!.cli(["runner", "stop"]);

  // A journal that knows nothing of run-8 and run-9 (an older copy put back): their log
  // folders still hold the ids.
  const keep = lines.find((l) => l.record.type === "run.created" && l.record.run.id === "run-8")!.start;
  writeFileSync(before.journal, data.subarray(0, keep));
  await ws!.cli(["runner", "start"]);
  const again = await ws!.cli(["test", "j.flow.ts", "--date", "2026-02-02"]);
  assert.equal(again.code, 0, again.stderr + again.stdout);
  assert.match(again.stdout, /^run-10:/);
  await until("run-10's logs", () => readdirSync(join(ws!.dir, ".tideflow", "logs")).some((f) => f.startsWith("run-10@")));
  const logs = logFiles(ws!.dir);
  for (const [file, text] of before.logs) assert.equal(logs.get(file), text, `${file} unchanged`);
});

// ---------------------------------------------------------------------------------------
// Compaction: SIGKILL at every step of it loses nothing acknowledged
// ---------------------------------------------------------------------------------------

const R0 = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
const MODEL: WorkflowModel = {
  id: "j",
  idRange: R0,
  range: R0,
  calleeRange: R0,
  timezone: "UTC",
  tasks: ["a", "b"].map((id, i) => ({ id, kind: "shell" as const, command: `echo ${id}`, idRange: R0, range: R0, calleeRange: R0, upstream: i ? [{ task: "a", form: "string" as const, range: R0, taskRange: R0 }] : [], listed: true })),
};

/**
 * The child: a journal with a tiny compaction threshold and an engine driving runs, as
 * the runner does (decide, append, act once durable). Prints `rec <records>` before each
 * append and `ack <decision number>` once it is durable; dies at `crashAt`.
 */
async function child(path: string, crashAt: number | undefined, decisions: number): Promise<void> {
  const opened = Journal.open(path, { compactMinBytes: 16 * 1024, compactRatio: 0.5, crashAt });
  const { engine } = Engine.restore(opened.snapshot, opened.records);
  const journal = opened.journal;
  journal.setSnapshotSource(() => engine.snapshotEntries());
  let n = 0;
  let now = 1_800_000_000_000;
  const starts: StartEffect[] = [];
  const commit = (d: Decision) => {
    const k = ++n;
    process.stdout.write(`rec ${JSON.stringify(d.records)}\n`);
    const done = journal.append(d.records).then(() => {
      process.stdout.write(`ack ${k}\n`);
      for (const e of d.effects) if (e.type === "start") starts.push(e);
    });
    return done;
  };
  let day = 0;
  while (n < decisions) {
    const r = engine.createRun({ kind: "test", file: "/w/j.flow.ts", workflow: "j", downstream: false, bizdate: `2026-01-01` }, MODEL, (now += 1000));
    if (!r.ok) throw new Error(r.reason);
    day++;
    const waits = [commit(r)];
    if (day % 3 === 0) await Promise.all(waits);
    while (starts.length > 0 || waits.length > 0) {
      await Promise.all(waits.splice(0));
      for (const e of starts.splice(0)) {
        const x = engine.onAttemptExit(e.instanceId, e.task, e.attempt, { exitCode: 0 }, (now += 10));
        if (x.ok) waits.push(commit(x));
      }
    }
  }
  await journal.close();
  process.stdout.write(`done ${journal.compactions}\n`);
}

if (process.env.TIDEFLOW_JOURNAL_CHILD) {
  const [path, crash, decisions] = process.env.TIDEFLOW_JOURNAL_CHILD.split("|");
  void child(path, crash ? Number(crash) : undefined, Number(decisions));
}

function runChild(path: string, crashAt: number | undefined, decisions: number): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  return new Promise((res) => {
    const c = spawn(process.execPath, ["--import", "tsx", __filename], {
      env: { ...process.env, TIDEFLOW_JOURNAL_CHILD: `${path}|${crashAt ?? ""}|${decisions}` },
    });
    let out = "";
    let err = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    c.on("close", (code, signal) => res({ code, signal, out, err }));
  });
}

/** The decisions the child made, and how many of them were acknowledged (a prefix: appends resolve in order). */
function childLog(out: string): { decisions: EngineRecord[][]; acked: number } {
  const decisions: EngineRecord[][] = [];
  let acked = 0;
  for (const line of out.split("\n")) {
    if (line.startsWith("rec ")) decisions.push(JSON.parse(line.slice(4)) as EngineRecord[]);
    if (line.startsWith("ack ")) acked = Math.max(acked, Number(line.slice(4)));
  }
  return { decisions, acked };
}

/** The journal holds every acknowledged decision and then a prefix of the rest, nothing else. */
function assertSurvived(path: string, decisions: EngineRecord[][], acked: number, what: string): void {
  const opened = Journal.open(path);
  const restored = Engine.restore(opened.snapshot, opened.records);
  assert.equal(restored.notApplied, 0, what);
  assert.equal(opened.damage, undefined, what);
  const found = JSON.stringify(restored.engine.snapshot());
  const candidates: number[] = [];
  for (let k = acked; k <= decisions.length; k++) {
    if (JSON.stringify(Engine.replay(decisions.slice(0, k).flat()).snapshot()) === found) return void opened.journal.close();
    candidates.push(k);
  }
  assert.fail(`${what}: the journal matches no prefix of ${acked}..${decisions.length} decisions`);
}

it("compaction keeps the journal proportional to the live state and loses nothing", async () => {
  const d = mkdtempSync(join(tmpdir(), "tideflow-compact-"));
  try {
    const path = join(d, "journal");
    const r = await runChild(path, undefined, 1500);
    assert.equal(r.code, 0, r.err);
    const compactions = Number(/done (\d+)/.exec(r.out)![1]);
    assert.ok(compactions >= 3, `compacted ${compactions} times`);
    const { decisions, acked } = childLog(r.out);
    assert.equal(acked, decisions.length);
    // Proportional: at most the snapshot and half of it again in records (compactRatio 0.5), plus the threshold and a batch.
    const total = decisions.reduce((n, x) => n + x.reduce((m, rec) => m + JSON.stringify(rec).length + 10, 0), 0);
    const { engine } = Engine.restore([], decisions.flat());
    const live = [...engine.snapshotEntries()].reduce((n, e) => n + JSON.stringify({ snapshot: e }).length + 10, 0);
    const size = statSync(path).size;
    assert.ok(size <= 1.5 * live + 16 * 1024 + 64 * 1024, `journal ${size} bytes for a live state of ${live} (records written: ${total})`);
    assertSurvived(path, decisions, acked, "after a clean close");
    assert.equal(existsSync(`${path}.compact`), false);
    // A second life on the compacted journal goes on from it.
    const again = await runChild(path, undefined, 200);
    assert.equal(again.code, 0, again.err);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

for (const step of [1, 2, 3, 4, 5, 6, 7]) {
  it(`SIGKILL at compaction step ${step} loses no acknowledged record`, async () => {
    const d = mkdtempSync(join(tmpdir(), "tideflow-compact-"));
    try {
      const path = join(d, "journal");
      const r = await runChild(path, step, 100_000);
      assert.equal(r.signal, "SIGKILL", `the child died at step ${step}: ${r.err}`);
      const { decisions, acked } = childLog(r.out);
      assert.ok(acked > 10, `acked ${acked}`);
      assertSurvived(path, decisions, acked, `killed at step ${step}`);
      assert.equal(existsSync(`${path}.compact`), false, "the unfinished compaction is removed at open");
      // And the journal goes on working after it.
      const again = await runChild(path, undefined, 50);
      assert.equal(again.code, 0, again.err);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
}

it("a real runner compacts its journal, and one killed in the middle of a compaction loses no finished run", async () => {
  const w = workspace({ "j.flow.ts": FLOW });
  ws = w;
  const out = join(w.dir, "out");
  mkdirSync(out);
  process.env.TIDEFLOW_TEST_OUT = out;
  process.env.TIDEFLOW_TEST_JOURNAL_COMPACT_BYTES = "4096";
  process.env.TIDEFLOW_TEST_JOURNAL_CRASH_AT = "6";
  const finished: string[] = [];
  try {
    for (let i = 0; i < 30; i++) {
      const r = await w.cli(["test", "j.flow.ts", "--date", `2026-01-${String(i + 1).padStart(2, "0")}`]);
      if (r.code !== 0) break;
      finished.push(/^(run-\d+):/.exec(r.stdout)![1]);
    }
  } finally {
    delete process.env.TIDEFLOW_TEST_JOURNAL_CRASH_AT;
  }
  assert.ok(finished.length > 0 && finished.length < 30, `the runner died in a compaction after ${finished.length} runs`);
  const dead = readRunnerInfo(w.dir)!.pid;
  await until("the killed runner to be gone", () => !processAlive(dead), 30_000);
  const started = await w.cli(["runner", "start"]);
  assert.equal(started.code, 0, started.stderr + readFileSync(join(w.dir, ".tideflow", "runner.log"), "utf8").slice(-3000));
  const s = await status();
  assert.equal(s.journal.damage, undefined);
  const all = await runs();
  for (const id of finished) assert.equal(all.find((x) => x.id === id)?.state, "success", id);
  // Compactions happen on (the threshold is still tiny) and the journal stays small.
  for (let i = 0; i < 6; i++) {
    const r = await w.cli(["test", "j.flow.ts", "--date", `2026-02-0${i + 1}`]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    finished.push(/^(run-\d+):/.exec(r.stdout)![1]);
  }
  await w.cli(["runner", "stop"]);
  const journal = join(w.dir, ".tideflow", "journal");
  assert.equal(readFileSync(journal, "utf8").split("\n")[0], '{"tideflow-journal":2}');
  await w.cli(["runner", "start"]);
  // Every run that finished is there as it finished (the one the kill interrupted is the
  // recovery's business, not the journal's).
  const again = await runs();
  for (const id of finished) {
    const run = again.find((x) => x.id === id);
    assert.equal(run?.state, "success", id);
    assert.ok(run.instances[0].tasks.every((t) => t.attempts.length === 1), id);
  }
  delete process.env.TIDEFLOW_TEST_JOURNAL_COMPACT_BYTES;
});
