import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { WorkflowModel } from "../../protocol/model";
import type { Decision, EngineRecord, StartEffect } from "../../protocol/runner";
import { Engine } from "../../common/engine/engine";
import { Journal } from "../../runner/journal";

const dir = mkdtempSync(join(tmpdir(), "tideflow-journal-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const fresh = () => join(dir, `journal-${++seq}`);

function rec(i: number): EngineRecord {
  return { type: "run.state", at: 1_700_000_000_000 + i, runId: `run-${i}`, from: "running", to: "success" };
}

test("records appended come back in order on reopen, with a header and one checksummed line each", async () => {
  const path = fresh();
  const { journal, records } = Journal.open(path);
  assert.deepEqual(records, []);
  await journal.append([rec(1), rec(2)]);
  await journal.append([rec(3)]);
  assert.equal(journal.length, 3);
  await journal.close();
  const lines = readFileSync(path, "utf8").split("\n");
  assert.equal(lines[0], '{"tideflow-journal":1}');
  assert.match(lines[1], /^[0-9a-f]{8} \{"type":"run.state"/);
  const again = Journal.open(path);
  assert.deepEqual(again.records, [rec(1), rec(2), rec(3)]);
  assert.equal(again.dropped, undefined);
  assert.equal(again.journal.size, statSync(path).size);
  await again.journal.close();
});

test("appends made in the same turn share one write, and every promise resolves after it", async () => {
  const path = fresh();
  const { journal } = Journal.open(path);
  const order: number[] = [];
  const all = Array.from({ length: 50 }, (_, i) => journal.append([rec(i)]).then(() => order.push(i)));
  await Promise.all(all);
  assert.deepEqual(order, [...Array(50).keys()]);
  await journal.close();
  assert.equal(Journal.open(path).records.length, 50);
});

test("a torn last record (no newline) is dropped and cut off the file; appending goes on after it", async () => {
  const path = fresh();
  const { journal } = Journal.open(path);
  await journal.append([rec(1), rec(2)]);
  await journal.close();
  const good = statSync(path).size;
  appendFileSync(path, '1234abcd {"type":"run.sta');
  const reopened = Journal.open(path);
  assert.deepEqual(reopened.records, [rec(1), rec(2)]);
  assert.match(reopened.dropped!.reason, /torn last record/);
  assert.equal(reopened.dropped!.keptAs, undefined);
  assert.equal(statSync(path).size, good);
  await reopened.journal.append([rec(3)]);
  await reopened.journal.close();
  assert.deepEqual(Journal.open(path).records, [rec(1), rec(2), rec(3)]);
});

test("a record cut in the middle of a multi-byte write is caught by its checksum", async () => {
  const path = fresh();
  const { journal } = Journal.open(path);
  await journal.append([rec(1), rec(2)]);
  await journal.close();
  // Lose the last 5 bytes but keep a newline at the end: the line is complete-looking
  // but its checksum no longer matches.
  const size = statSync(path).size;
  truncateSync(path, size - 6);
  appendFileSync(path, "\n");
  const reopened = Journal.open(path);
  assert.deepEqual(reopened.records, [rec(1)]);
  assert.match(reopened.dropped!.reason, /torn last record \((checksum mismatch|invalid JSON)\)/);
  await reopened.journal.close();
});

test("a corrupt record in the middle costs only itself: the rest is kept, the original saved aside, the file repaired", async () => {
  const path = fresh();
  const { journal } = Journal.open(path);
  await journal.append([rec(1), rec(2), rec(3)]);
  await journal.close();
  const text = readFileSync(path, "utf8");
  const damaged = text.replace('"runId":"run-2"', '"runId":"run-X"');
  writeFileSync(path, damaged);
  const reopened = Journal.open(path);
  assert.deepEqual(reopened.records, [rec(1), rec(3)]);
  assert.equal(reopened.dropped, undefined);
  assert.equal(reopened.damage!.records, 1);
  assert.equal(reopened.damage!.bytes, text.split("\n")[2].length + 1);
  assert.match(reopened.damage!.reasons[0], /line 3 .*checksum mismatch/);
  assert.match(reopened.damage!.lines[0], /run-X/);
  assert.equal(readFileSync(reopened.damage!.keptAs, "utf8"), damaged);
  await reopened.journal.append([rec(4)]);
  await reopened.journal.close();
  assert.ok(readdirSync(dir).some((f) => f.startsWith(`journal-${seq}.corrupt-`)));
  // Repaired: the next open finds no damage.
  const again = Journal.open(path);
  assert.deepEqual(again.records, [rec(1), rec(3), rec(4)]);
  assert.equal(again.damage, undefined);
  await again.journal.close();
});

test("several bad lines in the middle and a torn tail: each bad line is skipped, the tail cut", async () => {
  const path = fresh();
  const { journal } = Journal.open(path);
  await journal.append([1, 2, 3, 4, 5, 6].map(rec));
  await journal.close();
  const lines = readFileSync(path, "utf8").split("\n");
  lines[2] = "garbage without checksum";
  lines[4] = lines[4].replace("run-4", "run-5");
  writeFileSync(path, `${lines.join("\n")}0000abcd {"type":`);
  const reopened = Journal.open(path);
  assert.deepEqual(reopened.records, [rec(1), rec(3), rec(5), rec(6)]);
  assert.equal(reopened.damage!.records, 2);
  assert.match(reopened.dropped!.reason, /torn/);
  await reopened.journal.close();
  assert.deepEqual(Journal.open(path).records, [rec(1), rec(3), rec(5), rec(6)]);
});

test("a file that is not a journal is refused with a clear error, not overwritten", () => {
  const path = fresh();
  writeFileSync(path, "hello\nworld\n");
  assert.throws(() => Journal.open(path), /is not a Tideflow journal/);
  assert.equal(readFileSync(path, "utf8"), "hello\nworld\n");
});

test("a torn header (crash right after creation) starts an empty journal", async () => {
  const path = fresh();
  writeFileSync(path, '{"tideflow-jour');
  const { journal, records } = Journal.open(path);
  assert.deepEqual(records, []);
  await journal.append([rec(1)]);
  await journal.close();
  assert.deepEqual(Journal.open(path).records, [rec(1)]);
});

// ---------------------------------------------------------------------------------------
// Replay of a damaged journal (Engine.restore and its repairs), every record lost in turn
// ---------------------------------------------------------------------------------------

const R0 = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
function chainModel(retries = 0): WorkflowModel {
  const t = (id: string, upstream: string[]): WorkflowModel["tasks"][number] => ({
    id,
    kind: "shell",
    command: `echo ${id}`,
    idRange: R0,
    range: R0,
    calleeRange: R0,
    upstream: upstream.map((u) => ({ task: u, form: "string" as const, range: R0, taskRange: R0 })),
    retries,
    retryDelayMs: 0,
    listed: true,
  });
  return { id: "j", idRange: R0, range: R0, calleeRange: R0, timezone: "UTC", tasks: [t("a", []), t("b", ["a"])] };
}

/** Eight finished runs as a runner makes them (one with a failed first attempt that was retried, one rerun by hand); every record. */
function eightFinishedRuns(): { engine: Engine; records: EngineRecord[] } {
  const engine = new Engine();
  const records: EngineRecord[] = [];
  let now = 1_800_000_000_000;
  let pid = 1000;
  const take = (d: Decision) => {
    records.push(...d.records);
    for (const e of d.effects) if (e.type === "start") starts.push(e);
  };
  const starts: StartEffect[] = [];
  const drain = (fail?: (e: StartEffect) => boolean) => {
    while (starts.length > 0) {
      const e = starts.shift()!;
      now += 10;
      const p = engine.recordProcess(e, e.attempt, { executor: "shell", pid: pid++ }, now);
      if (p) records.push(p);
      now += 10;
      const r = engine.onAttemptExit(e.instanceId, e.task, e.attempt, { exitCode: fail?.(e) ? 1 : 0 }, now);
      assert.ok(r.ok);
      take(r);
    }
  };
  for (let i = 1; i <= 8; i++) {
    const wf = chainModel(i === 3 ? 1 : 0);
    const r = engine.createRun({ kind: "test", file: "/w/j.flow.ts", workflow: "j", downstream: false, bizdate: `2026-01-0${i}` }, wf, (now += 100));
    assert.ok(r.ok);
    take(r);
    drain((e) => i === 3 && e.task === "a" && e.attempt === 1);
    if (i === 5) {
      const inst = engine.getRun("run-5")!.instances[0].id;
      const again = engine.rerun({ instanceId: inst, task: "b" }, (now += 100));
      assert.ok(again.ok);
      take(again);
      drain();
    }
  }
  assert.ok(engine.listRuns().every((r) => r.state === "success"));
  return { engine, records: JSON.parse(JSON.stringify(records)) as EngineRecord[] };
}

/** A runner's start over `records`: restore, the repairs and recovery; the start effects it gives. */
function restart(records: EngineRecord[]): { engine: Engine; starts: StartEffect[]; notApplied: number } {
  const now = 1_900_000_000_000;
  const { engine, notApplied } = Engine.restore([], records);
  const starts: StartEffect[] = [];
  for (const d of [engine.closeLostAttemptEnds(now), engine.recover(now), engine.settleLostTransitions(now)]) {
    for (const e of d.effects) if (e.type === "start") starts.push(e);
  }
  return { engine, starts, notApplied };
}

test("restore of an undamaged journal is replay; of a snapshot, the same state with exact indexes", () => {
  const { engine, records } = eightFinishedRuns();
  const restored = Engine.restore([], records);
  assert.equal(restored.notApplied, 0);
  assert.equal(restored.adjusted, 0);
  assert.deepEqual(restored.engine.snapshot(), Engine.replay(records).snapshot());
  const entries = JSON.parse(JSON.stringify([...engine.snapshotEntries()])) as unknown[];
  const fromSnapshot = Engine.restore(entries, []);
  assert.deepEqual(fromSnapshot.engine.snapshot(), engine.snapshot());
  assert.deepEqual(fromSnapshot.engine.verifyIndexes(), []);
  assert.equal(fromSnapshot.engine.createRun({ kind: "test", file: "/w/j.flow.ts", workflow: "j", downstream: false, bizdate: "2026-02-01" }, chainModel(), 1).ok && "ok", "ok");
  assert.ok(fromSnapshot.engine.hasRun("run-9"));
});

test("any one record lost: finished runs stay finished, nothing starts again, attempt numbers and run ids are never reused", () => {
  const { engine: original, records } = eightFinishedRuns();
  const before = original.snapshot();
  for (let i = 0; i < records.length; i++) {
    const lost = records[i];
    const what = `record ${i} (${lost.type}${"to" in lost ? ` → ${lost.to}` : ""} of ${lost.type === "run.created" ? lost.run.id : lost.runId})`;
    const { engine, starts, notApplied } = restart([...records.slice(0, i), ...records.slice(i + 1)]);
    assert.deepEqual(starts, [], `${what}: nothing starts`);
    const lostRun = lost.type === "run.created" ? lost.run.id : undefined;
    for (const run of before.runs) {
      if (run.id === lostRun) {
        assert.equal(engine.hasRun(run.id), false);
        assert.ok(notApplied > 0, `${what}: the run's other records are counted`);
        continue;
      }
      const now = engine.getRun(run.id)!;
      assert.equal(now.state, "success", `${what}: ${run.id} state`);
      for (const [k, ti] of run.instances[0].tasks.entries()) {
        const t = now.instances[0].tasks[k];
        assert.equal(t.state, "success", `${what}: ${run.id} ${t.task}`);
        assert.equal(t.attempts.length, ti.attempts.length, `${what}: ${run.id} ${t.task} attempts`);
        assert.ok(t.attempts.every((a) => a.endedAt !== undefined), `${what}: ${run.id} ${t.task} attempts ended`);
      }
    }
    assert.deepEqual(engine.verifyIndexes(), [], what);
    const next = engine.createRun({ kind: "test", file: "/w/j.flow.ts", workflow: "j", downstream: false, bizdate: "2026-02-01" }, chainModel(), 2e12);
    assert.ok(next.ok && next.runId === "run-9", `${what}: next id ${next.ok ? next.runId : next.reason}`);
  }
});

test("compaction: the journal starts with the snapshot, then the records appended since; appends during it are acknowledged as usual", async () => {
  const path = fresh();
  const { journal } = Journal.open(path, { compactMinBytes: 1000, compactRatio: 1 });
  // The "state" is the list of records appended so far.
  const state: EngineRecord[] = [];
  journal.setSnapshotSource(() => state.map((r) => ({ copy: r })));
  const append = (r: EngineRecord) => {
    state.push(r);
    return journal.append([r]);
  };
  for (let i = 0; i < 200; i++) await append(rec(i));
  assert.ok(journal.compactions >= 2, `${journal.compactions} compactions`);
  // Appends racing a forced compaction.
  const racing = [append(rec(1000)), journal.compact(), append(rec(1001)), append(rec(1002))];
  await Promise.all(racing);
  await append(rec(1003));
  await journal.close();
  assert.equal(readFileSync(path, "utf8").split("\n")[0], '{"tideflow-journal":2}');
  const again = Journal.open(path);
  const seen = [...again.snapshot.map((e) => (e as { copy: EngineRecord }).copy), ...again.records];
  assert.deepEqual(seen, state);
  assert.ok(again.records.length < 50, `${again.records.length} records after the snapshot`);
  assert.ok(!readdirSync(dir).some((f) => f === `journal-${seq}.compact`));
  await again.journal.close();
});

test("a left-over .compact (a compaction cut short) is removed at open; the journal is untouched", async () => {
  const path = fresh();
  const { journal } = Journal.open(path);
  await journal.append([rec(1)]);
  await journal.close();
  writeFileSync(`${path}.compact`, '{"tideflow-journal":2}\nhalf');
  const again = Journal.open(path);
  assert.deepEqual(again.records, [rec(1)]);
  assert.equal(readdirSync(dir).includes(`journal-${seq}.compact`), false);
  await again.journal.close();
});
