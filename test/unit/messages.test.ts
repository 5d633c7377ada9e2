/**
 * A bad cron or date is explained in the user's words: which field, what was written,
 * what is allowed. Never a library's internals ("Constraint error, got value 61 expected
 * range 0-59") or the API's ("expects `bizdate` … got a string"). Issue 20.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkCron } from "../../common/cron";
import { calendarDateProblem } from "../../common/zone";
import { paramsProblem } from "../../runner/api-params";

test("cron: each field's mistake is named with what is allowed", () => {
  const cases: [string, string | undefined][] = [
    ["61 * * * *", "the minute field has 61; minutes go from 0 to 59"],
    ["0 25 * * *", "the hour field has 25; hours go from 0 to 23"],
    ["0 0 32 * *", "the day-of-month field has 32; days of the month go from 1 to 31"],
    ["0 0 * 13 *", "the month field has 13; months go from 1 to 12"],
    ["0 0 * * 8", "the day-of-week field has 8; days of the week go from 0 to 7"],
    ["0 0 * * MON-FOO", "the day-of-week field has `FOO`; days of the week are 0-7 or SUN-SAT"],
    ["0 0 * JANUARY *", "the month field has `JANUARY`; months are 1-12 or JAN-DEC"],
    ["*/0 * * * *", "the minute field has `*/0`: a step (`/N`) is a whole number from 1"],
    ["5-2 * * * *", "the minute field has the range 5-2, which runs backwards (write 2-5, or a list)"],
    ["60 0 * * * *", "the second field has 60; seconds go from 0 to 59"],
    ["*/5 * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got 4"],
    // Valid ones stay valid.
    ["0 0 * * MON-FRI", undefined],
    ["30 2 * jan,MAR *", undefined],
    ["0 0 L * *", undefined],
    ["0 0 * * 5L", undefined],
    ["0 0 * * 1#2", undefined],
    ["0 0 ? * 7", undefined],
    ["0 */15 9-17 * * 1-5", undefined],
  ];
  for (const [expr, want] of cases) assert.equal(checkCron(expr, "UTC"), want, expr);
  for (const [expr] of cases) assert.doesNotMatch(checkCron(expr) ?? "", /Constraint|Validation|expected range/, expr);
});

test("dates: why a YYYY-MM-DD is not a calendar date", () => {
  assert.equal(calendarDateProblem("2026-02-30"), "February 2026 has 28 days");
  assert.equal(calendarDateProblem("2024-02-30"), "February 2024 has 29 days");
  assert.equal(calendarDateProblem("2026-04-31"), "April 2026 has 30 days");
  assert.equal(calendarDateProblem("2026-13-01"), "there is no month 13 (months are 01 to 12)");
  assert.equal(calendarDateProblem("2026-01-00"), "days start at 01");
  assert.equal(calendarDateProblem("2024-02-29"), undefined);
  assert.equal(calendarDateProblem("2026-2-3"), undefined, "not YYYY-MM-DD at all: the shape's message says so");
});

test("the API says which date is wrong and why, not its type", () => {
  const why = paramsProblem("runs.create", { kind: "test", file: "f.flow.ts", bizdate: "2026-02-30" });
  assert.equal(why, "runs.create got `bizdate` 2026-02-30, which is not a calendar date: February 2026 has 28 days");
});
