import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { EngineRecord } from "../../protocol/runner";
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

test("a corrupt record in the middle keeps what precedes it and saves the original file aside", async () => {
  const path = fresh();
  const { journal } = Journal.open(path);
  await journal.append([rec(1), rec(2), rec(3)]);
  await journal.close();
  const text = readFileSync(path, "utf8");
  writeFileSync(path, text.replace('"runId":"run-2"', '"runId":"run-X"'));
  const reopened = Journal.open(path);
  assert.deepEqual(reopened.records, [rec(1)]);
  assert.match(reopened.dropped!.reason, /corrupt record 2 .*checksum mismatch/);
  assert.ok(reopened.dropped!.keptAs);
  assert.equal(readFileSync(reopened.dropped!.keptAs!, "utf8"), text.replace('"runId":"run-2"', '"runId":"run-X"'));
  await reopened.journal.close();
  assert.ok(readdirSync(dir).some((f) => f.startsWith(`journal-${seq}.corrupt-`)));
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
