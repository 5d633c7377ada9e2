/** The extension's pure pieces: reading a failed attempt's log, the date checks, the downstream selection and the bizdates the test picker offers. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { lastErrorLine, lastTaskErrorLine } from "../../common/log-lines";
import { dateProblem, downstreamOf } from "../../client/selection";
import { recentBizdates } from "../../common/cron";

describe("lastErrorLine", () => {
  test("the task's own stderr line wins over the runner's closing line", () => {
    const log = [
      "2026-12-01T10:00:00.000+00:00 system INFO attempt 1 started",
      "2026-12-01T10:00:00.010+00:00 stdout INFO loading",
      "2026-12-01T10:00:00.011+00:00 stderr INFO ERROR: table sales_raw does not exist",
      "2026-12-01T10:00:00.020+00:00 system ERROR attempt 1 failed: exit code 3 after 11ms",
      "",
    ].join("\n");
    assert.equal(lastErrorLine(log), "ERROR: table sales_raw does not exist");
  });

  test("an ERROR the task logged counts; without one the runner's line; without any, the last line", () => {
    assert.equal(lastErrorLine("t stdout ERROR boom\nt system ERROR attempt 1 failed\n"), "boom");
    assert.equal(lastErrorLine("t stdout INFO fine\nt system ERROR attempt 1 failed: timeout\n"), "attempt 1 failed: timeout");
    assert.equal(lastErrorLine("t stdout INFO fine\n"), "t stdout INFO fine");
    assert.equal(lastErrorLine(""), undefined);
    // The task's own line only (the CLI's end-of-run report): none when it wrote no error.
    assert.equal(lastTaskErrorLine("t stdout INFO fine\nt system ERROR attempt 1 failed: timeout\n"), undefined);
    assert.equal(lastTaskErrorLine("t stderr WARN last words\nt stderr WARN \nt system ERROR attempt 1 failed\n"), "last words");
  });
});

describe("dateProblem", () => {
  test("real calendar dates pass; others say what was expected", () => {
    assert.equal(dateProblem("2026-11-19"), undefined);
    assert.equal(dateProblem(" 2024-02-29 "), undefined);
    assert.equal(dateProblem("2026-02-30"), "2026-02-30 is not a calendar date: February 2026 has 28 days");
    assert.equal(dateProblem("2025-02-29"), "2025-02-29 is not a calendar date: February 2025 has 28 days");
    assert.match(dateProblem("19/11/2026")!, /expected a date as YYYY-MM-DD, got "19\/11\/2026"/);
  });
});

describe("downstreamOf", () => {
  const w = {
    tasks: [
      { id: "extract", upstream: [] },
      { id: "load", upstream: ["extract"] },
      { id: "report", upstream: ["load", "crm.sync"] },
      { id: "audit", upstream: ["extract"] },
      { id: "other", upstream: [] },
    ],
  } as unknown as Parameters<typeof downstreamOf>[0];
  test("transitively, in the workflow's task order, without the task itself", () => {
    assert.deepEqual(downstreamOf(w, "extract"), ["load", "report", "audit"]);
    assert.deepEqual(downstreamOf(w, "load"), ["report"]);
    assert.deepEqual(downstreamOf(w, "other"), []);
  });
});

test("the test picker's bizdates: a schedule's latest fire times, one per bizdate, newest first", () => {
  const now = new Date("2026-12-02T18:00:00Z");
  // Weekly, Monday 08:00 in Shanghai: the bizdates are the Sundays before the fires.
  assert.deepEqual(recentBizdates("0 8 * * 1", "Asia/Shanghai", 3, now).map((f) => f.bizdate), ["2026-11-29", "2026-11-22", "2026-11-15"]);
  // Hourly and every minute: one entry per day, not one per fire.
  assert.deepEqual(recentBizdates("30 * * * *", "UTC", 3, now).map((f) => f.bizdate), ["2026-12-01", "2026-11-30", "2026-11-29"]);
  assert.deepEqual(recentBizdates("* * * * *", "UTC", 2, now).map((f) => f.cyctime), ["2026-12-02T18:00:00+00:00", "2026-12-01T23:59:00+00:00"]);
  // Monthly across a DST change keeps each fire's own offset.
  assert.deepEqual(recentBizdates("0 2 1 * *", "America/New_York", 2, now).map((f) => f.cyctime), ["2026-12-01T02:00:00-05:00", "2026-11-01T02:00:00-05:00"]);
});
