/**
 * The Workflows view's words (client/workflow-words.ts): an invalid cron says so instead
 * of "unscheduled", and two workflows with one id are told apart by their files (issue 20).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sameIdElsewhere, scheduleText } from "../../client/workflow-words";

test("a schedule that is not a valid cron reads 'invalid schedule', not 'unscheduled'", () => {
  assert.equal(scheduleText({ scheduleInvalid: true }).short, "invalid schedule");
  assert.match(scheduleText({ scheduleInvalid: true }).long, /not a valid cron expression/);
  assert.equal(scheduleText({}).short, "unscheduled");
  const now = new Date(Date.UTC(2026, 11, 7, 12, 0));
  assert.equal(scheduleText({ schedule: "30 2 * * *", timezone: "UTC" }, now).short, "at 02:30 · next 2026-12-08 02:30");
});

test("two workflows with one id: each row says its file", () => {
  const a = { id: "broken_demo", uri: "file:///w/broken/broken.flow.ts" };
  const b = { id: "broken_demo", uri: "file:///w/broken/duplicate.flow.ts" };
  const c = { id: "crm", uri: "file:///w/crm.flow.ts" };
  assert.equal(sameIdElsewhere(a, [a, b, c]), true);
  assert.equal(sameIdElsewhere(b, [a, b, c]), true);
  assert.equal(sameIdElsewhere(c, [a, b, c]), false);
});
