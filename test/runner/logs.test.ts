/**
 * Attempt logs (runner/logs.ts) on real files: the line format the log grammar expects,
 * line splitting across chunks, multi-line messages, ordering, and that subscribers see a
 * line only once it is in the file.
 *
 * Run: `node --import tsx --test test/runner/logs.test.ts`.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type AttemptKey, formatLogLine, formatTimestamp, LogStore } from "../../runner/logs";

/** The grammar's line prefix (syntaxes/tideflow-log.tmLanguage.json), anchored with a message. */
const LINE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}) (stdout|stderr|system) (DEBUG|INFO|WARN|ERROR) (.*)$/;

let dir: string;
let attemptNo = 0;
const key = (task = "t"): AttemptKey => ({ runId: "run-1", instanceId: "run-1@20261120T023000+0800", task, attempt: ++attemptNo });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tideflow-logs-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("format", () => {
  test("timestamp in the local zone with milliseconds and offset, matching Date", () => {
    const at = Date.UTC(2026, 10, 19, 18, 30, 1, 7);
    const stamp = formatTimestamp(at);
    assert.match(stamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.007[+-]\d{2}:\d{2}$/);
    // The stamp names the same instant.
    assert.equal(Date.parse(stamp), at);
    const offsetMin = -new Date(at).getTimezoneOffset();
    const sign = offsetMin < 0 ? "-" : "+";
    const abs = Math.abs(offsetMin);
    assert.ok(stamp.endsWith(`${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`), stamp);
    // Cached per millisecond, but never stale across them.
    assert.equal(Date.parse(formatTimestamp(at + 1)), at + 1);
    assert.equal(Date.parse(formatTimestamp(at + 1000)), at + 1000);
    assert.equal(formatTimestamp(at), stamp);
  });

  test("a line: timestamp, stream, level, message", () => {
    const at = Date.UTC(2026, 10, 19, 18, 30, 1, 123);
    const line = formatLogLine(at, "stderr", "WARN", "disk almost full");
    const m = LINE.exec(line);
    assert.ok(m, line);
    assert.deepEqual(m.slice(2), ["stderr", "WARN", "disk almost full"]);
    assert.ok(!line.endsWith("\n"));
  });
});

/** Messages (the part after the level) of a log file, with stream and level. */
function entries(path: string): string[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const m = LINE.exec(line);
      assert.ok(m, `not a log line: ${JSON.stringify(line)}`);
      return `${m[2]} ${m[3]} ${m[4]}`;
    });
}

describe("AttemptLog", () => {
  test("raw output: lines split across chunks, CRLF, partial last line kept until close", async () => {
    const store = new LogStore(dir);
    const k = key();
    const log = store.open(k);
    log.chunk("stdout", "hel");
    log.chunk("stdout", Buffer.from("lo\r\nwor"));
    log.chunk("stderr", "oops\n");
    // A UTF-8 character split between two chunks.
    const snow = Buffer.from("snow ☃\n");
    log.chunk("stdout", snow.subarray(0, 6));
    log.chunk("stdout", snow.subarray(6));
    log.chunk("stdout", "tail without newline");
    await log.close();
    assert.deepEqual(entries(store.pathFor(k)), [
      "stdout INFO hello",
      "stderr WARN oops",
      "stdout INFO worsnow ☃",
      "stdout INFO tail without newline",
    ]);
  });

  test("a multi-line message is one entry per line; ordering across write and chunk", async () => {
    const store = new LogStore(dir);
    const k = key();
    const log = store.open(k);
    log.write("system", "INFO", "attempt 1 started (pid 42): bash -c echo");
    log.write("stderr", "ERROR", "Error: boom\n    at f (a.ts:1:1)\n");
    log.chunk("stdout", "a\nb\n");
    log.write("stdout", "DEBUG", "");
    log.write("system", "INFO", "attempt 1 finished: exit code 0 after 5ms");
    await log.close();
    assert.deepEqual(entries(store.pathFor(k)), [
      "system INFO attempt 1 started (pid 42): bash -c echo",
      "stderr ERROR Error: boom",
      "stderr ERROR     at f (a.ts:1:1)",
      "stdout INFO a",
      "stdout INFO b",
      "stdout DEBUG ",
      "system INFO attempt 1 finished: exit code 0 after 5ms",
    ]);
  });

  test("many lines keep their order and are written in few batches", async () => {
    const store = new LogStore(dir);
    const k = key();
    const log = store.open(k);
    let batches = 0;
    store.subscribe({ instanceId: k.instanceId, task: k.task }, () => batches++);
    for (let i = 0; i < 20_000; i++) log.chunk("stdout", `${i}\n`);
    await log.close();
    const got = entries(store.pathFor(k)).map((e) => Number(e.slice("stdout INFO ".length)));
    assert.equal(got.length, 20_000);
    assert.ok(got.every((n, i) => n === i), "lines out of order");
    assert.ok(batches >= 1 && batches <= 3, `expected the lines of one turn in one write, got ${batches} batches`);
  });

  test("a subscriber sees a batch only once it is in the file, with the file's size", async () => {
    const store = new LogStore(dir);
    const k = key("subscribed");
    const seen: { lines: string[]; onDisk: string; end: number }[] = [];
    let delivered: () => void = () => {};
    const off = store.subscribe({ instanceId: k.instanceId, task: k.task, attempt: k.attempt }, (got, text, end) => {
      const lines = text.slice(0, -1).split("\n");
      assert.deepEqual(got, k);
      seen.push({ lines, onDisk: readFileSync(store.pathFor(k), "utf8"), end });
      delivered();
    });
    // Another attempt of the same task: not delivered to an attempt-specific subscription.
    const other = store.open({ ...k, attempt: k.attempt + 1000 });
    other.write("stdout", "INFO", "other attempt");
    const log = store.open(k);
    await new Promise<void>((resolve) => {
      delivered = resolve;
      log.write("stdout", "INFO", "first");
    });
    log.chunk("stdout", "second\nthird\n");
    await log.close();
    await other.close();
    off();
    assert.deepEqual(
      seen.flatMap((s) => s.lines.map((l) => LINE.exec(l)![4])),
      ["first", "second", "third"],
    );
    for (const s of seen) {
      for (const line of s.lines) assert.ok(s.onDisk.includes(`${line}\n`), `delivered before written: ${line}`);
      assert.equal(Buffer.byteLength(s.onDisk), s.end);
    }
    // read() continues from an offset and returns whole lines only.
    const whole = await store.read(k);
    assert.equal(whole.size, seen.at(-1)!.end);
    const rest = await store.read(k, seen[0].end);
    assert.deepEqual(rest.text.split("\n").filter(Boolean).map((l) => LINE.exec(l)![4]), ["second", "third"]);
    assert.deepEqual(await store.read({ ...k, attempt: 99_999 }), { text: "", size: 0 });
  });

  test("subscribing to every attempt of a task, and unsubscribing", async () => {
    const store = new LogStore(dir);
    const k1 = key("every");
    const k2 = { ...k1, attempt: k1.attempt + 1 };
    const got: string[] = [];
    const off = store.subscribe({ instanceId: k1.instanceId, task: "every" }, (k, text) => got.push(`${k.attempt}:${text.split("\n").length - 1}`));
    const a = store.open(k1);
    a.write("stdout", "INFO", "x");
    await a.close();
    const b = store.open(k2);
    b.write("stdout", "INFO", "y\nz");
    await b.close();
    off();
    const c = store.open({ ...k1, attempt: k1.attempt + 2 });
    c.write("stdout", "INFO", "after unsubscribe");
    await c.close();
    assert.deepEqual(got, [`${k1.attempt}:1`, `${k2.attempt}:2`]);
  });

  test("backpressure: chunk returns false above the high-water mark and drained() resolves", async () => {
    const store = new LogStore(dir);
    const k = key();
    const log = store.open(k);
    const block = `${"x".repeat(1023)}\n`.repeat(1024); // 1 MiB
    let accepted = true;
    let blocks = 0;
    while (accepted && blocks < 64) {
      accepted = log.chunk("stdout", block);
      blocks++;
    }
    assert.equal(accepted, false, "never asked to pause");
    await log.drained();
    assert.equal(log.chunk("stdout", "more\n"), true);
    await log.close();
    assert.equal(entries(store.pathFor(k)).length, blocks * 1024 + 1);
  });

  test("a log that cannot be opened reports the error and close() still resolves", async () => {
    const errors: string[] = [];
    // The logs directory is a file: mkdir fails.
    const stateDir = join(dir, "broken");
    await mkdir(stateDir);
    await writeFile(join(stateDir, "logs"), "");
    const store = new LogStore(stateDir, { onError: (_k, e) => errors.push((e as NodeJS.ErrnoException).code ?? e.message) });
    const log = store.open(key());
    assert.equal(log.write("stdout", "INFO", "lost"), true);
    await log.close();
    assert.equal(errors.length, 1);
    assert.ok(log.error);
  });
});
