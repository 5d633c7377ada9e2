/** The extension's pure pieces: reading a failed attempt's log, the date checks and the downstream selection of run commands. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { lastErrorLine } from "../../client/log-lines";
import { dateProblem, downstreamOf } from "../../client/selection";

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
  });
});

describe("dateProblem", () => {
  test("real calendar dates pass; others say what was expected", () => {
    assert.equal(dateProblem("2026-11-19"), undefined);
    assert.equal(dateProblem(" 2024-02-29 "), undefined);
    assert.match(dateProblem("2026-02-30")!, /not a date of the calendar/);
    assert.match(dateProblem("2025-02-29")!, /not a date of the calendar/);
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
