/**
 * Planning at scale (issue 8 §3): the dates of a 3-year hourly backfill are worked out with
 * one cron-parser step per day and one zone reading per week (how fast that is, is in
 * `npm run bench` / BENCHMARKS.md), and the fast path gives exactly the instances
 * cron-parser's own zone handling gives, for every kind of field (lists, ranges, steps,
 * `L`, day-of-month OR day-of-week, seconds) and zones with DST, half-hour offsets and none.
 *
 * Run: `node --import tsx --test test/unit/scale.test.ts`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { CronExpression, CronExpressionParser } from "cron-parser";
import { instanceTimes } from "../../common/engine/dates";
import { addDays, previousDay, startOfDay, zonedIso } from "../../common/zone";
import { Engine, planRun, schedulerWork } from "../../common/engine/engine";
import type { WorkflowModel } from "../../protocol/model";
import type { RunSpec } from "../../protocol/runner";

/** What cron-parser, stepping through the zone at every fire time, says the instances are. */
function reference(expr: string, tz: string, from: string, to: string): { bizdate: string; cyctime: string }[] {
  const start = startOfDay(addDays(from, 1), tz);
  const end = startOfDay(addDays(to, 2), tz);
  const it = CronExpressionParser.parse(expr, { tz, currentDate: new Date(start - 1000), endDate: new Date(end) });
  const out: { bizdate: string; cyctime: string }[] = [];
  while (it.hasNext()) {
    const fire = it.next().toDate();
    if (fire.getTime() >= end) break; // endDate is inclusive
    const cyctime = zonedIso(fire, tz);
    out.push({ bizdate: previousDay(cyctime.slice(0, 10)), cyctime });
  }
  return out;
}

/** Five hourly shell tasks in a chain: the 3-year backfill is 26,304 instances × 5. */
function hourlyChain(): WorkflowModel {
  const tasks = ["extract", "clean", "join", "aggregate", "publish"].map((id, i, all) => ({
    id,
    kind: "shell" as const,
    command: "echo hi",
    upstream: i === 0 ? [] : [{ task: all[i - 1] }],
  }));
  return { id: "hourly", schedule: "0 * * * *", timezone: "UTC", tasks } as unknown as WorkflowModel;
}

const THREE_YEARS: RunSpec = { kind: "backfill", file: "/ws/hourly.flow.ts", workflow: "hourly", from: "2023-01-01", to: "2025-12-31", parallelism: 16, downstream: false };

describe("instance dates at scale", () => {
  test("same instances as cron-parser's own zone handling, for every kind of field", () => {
    const exprs = [
      "0 * * * *",
      "*/20 8-10 * * *",
      "0 9 1,15 * 1-5", // day of month OR day of week
      "30 6 * 2,3 *",
      "0 0 L * *",
      "15 4 * * 0,6",
      "0 12 29 2 *",
      "0 */4 10-20 * *",
      "30 */30 3 * * *", // seconds
    ];
    const cases: [string, string, string][] = [
      ["UTC", "2024-01-20", "2024-03-05"],
      ["Europe/Berlin", "2026-03-20", "2026-04-03"],
      ["Europe/Berlin", "2026-10-20", "2026-11-03"],
      ["Asia/Kolkata", "2025-12-25", "2026-01-10"],
      ["America/Santiago", "2026-09-01", "2026-09-10"],
    ];
    for (const [tz, from, to] of cases) {
      for (const expr of exprs) assert.deepEqual(instanceTimes(expr, tz, from, to), reference(expr, tz, from, to), `${expr} in ${tz} from ${from} to ${to}`);
    }
    // A long span, for schedules that fire seldom (leap days, last days of months).
    for (const expr of ["0 12 29 2 *", "0 0 L * *", "0 9 1,15 * 1-5"]) {
      assert.deepEqual(instanceTimes(expr, "Europe/Berlin", "2020-01-01", "2028-12-31"), reference(expr, "Europe/Berlin", "2020-01-01", "2028-12-31"), expr);
    }
  });

  test("a 3-year hourly backfill of 5 tasks (131,520 task instances) steps cron-parser once per day and reads the zone once per week", (t) => {
    // The two costly things planning does (BENCHMARKS.md has the times): a cron-parser step
    // (tens of µs; hundreds with a zone) and a zone reading (Intl's formatToParts, a few µs).
    // Counted here, so that going back to one step per fire time (26,304) or a reading per
    // day fails on any machine.
    const next = CronExpression.prototype.next;
    const formatToParts = Intl.DateTimeFormat.prototype.formatToParts;
    let steps = 0;
    let readings = 0;
    CronExpression.prototype.next = function (this: CronExpression) {
      steps++;
      return next.call(this);
    };
    Intl.DateTimeFormat.prototype.formatToParts = function (this: Intl.DateTimeFormat, date?: Date | number) {
      readings++;
      return formatToParts.call(this, date);
    };
    try {
      const planned = planRun(THREE_YEARS, hourlyChain(), Date.now());
      const [planSteps, planReadings] = [steps, readings];
      assert.ok(planned.ok);
      assert.equal(planned.draft.instances.length, 26_304);
      assert.deepEqual(planned.draft.instances[0], { bizdate: "2023-01-01", cyctime: "2023-01-02T00:00:00+00:00" });
      assert.deepEqual(planned.draft.instances.at(-1), { bizdate: "2025-12-31", cyctime: "2026-01-01T23:00:00+00:00" });
      const days = 1096;
      t.diagnostic(`planning: ${planSteps} cron-parser steps, ${planReadings} zone readings over ${days} days`);
      // One step per firing day (and per day of the 7-day sample); was one per fire time.
      assert.ok(planSteps <= days + 7 + 10, `planning took ${planSteps} cron-parser steps for ${days} days`);
      // Weekly over the range and its margins (~160); was twice per day.
      assert.ok(planReadings <= 2 * Math.ceil(days / 7), `planning read the zone ${planReadings} times over ${days} days`);

      const engine = new Engine();
      const work = schedulerWork.steps;
      steps = readings = 0;
      const created = engine.createRun(THREE_YEARS, hourlyChain(), Date.now());
      assert.ok(created.ok);
      t.diagnostic(`createRun: ${steps} cron-parser steps, ${readings} zone readings, ${schedulerWork.steps - work} scheduler steps, ${created.records.length} records`);
      // Creation plans once, then starts the first 16 instances (parallelism) and no more:
      // the run.created record, and per started instance its activation and its root task's
      // waiting, attempt.started and running. Nothing is written or scheduled per queued instance.
      assert.deepEqual([steps, readings], [planSteps, planReadings]);
      assert.equal(created.records.length, 1 + 16 * 4);
      assert.ok(schedulerWork.steps - work <= 16 * 5 * 4, `creating the run took ${schedulerWork.steps - work} scheduler steps`);
    } finally {
      CronExpression.prototype.next = next;
      Intl.DateTimeFormat.prototype.formatToParts = formatToParts;
    }
  });

  test("the decision after an attempt exit costs the same in a 100,000-instance run as in a 1,000-instance one", (t) => {
    const wf = { id: "echo", schedule: "0 * * * *", timezone: "UTC", tasks: [{ id: "hello", kind: "shell", command: "echo hi", upstream: [] }] } as unknown as WorkflowModel;
    /** Scheduler steps per onAttemptExit decision over `n` exits, after as many. */
    const perDecision = (days: number, n: number) => {
      const engine = new Engine();
      let now = Date.UTC(2026, 0, 1);
      const spec: RunSpec = { kind: "backfill", file: "/ws/echo.flow.ts", workflow: "echo", from: "2020-01-01", to: addDays("2020-01-01", days - 1), parallelism: 16, downstream: false };
      const created = engine.createRun(spec, wf, now);
      assert.ok(created.ok);
      const live = created.effects.filter((e) => e.type === "start");
      const step = () => {
        const s = live.shift()!;
        const d = engine.onAttemptExit(s.instanceId, s.task, s.attempt, { exitCode: 0 }, ++now);
        assert.ok(d.ok);
        for (const e of d.effects) if (e.type === "start") live.push(e);
      };
      for (let i = 0; i < n; i++) step();
      const before = schedulerWork.steps;
      for (let i = 0; i < n; i++) step();
      return (schedulerWork.steps - before) / n;
    };
    const small = perDecision(42, 400); // 1,008 instances
    const big = perDecision(4166, 400); // 99,984 instances
    t.diagnostic(`per decision: ${small} scheduler steps at 1,008 instances, ${big} at 99,984`);
    // The same work, exactly: the time per decision is in npm run bench (part 1, per-task cost).
    assert.equal(big, small, `a decision took ${big} scheduler steps at 99,984 instances, ${small} at 1,008`);
    assert.ok(small <= 10, `a decision took ${small} scheduler steps`);
  });

  test("a 3-year hourly 5-task backfill holds under 1,900 bytes of engine heap per workflow instance", (t) => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    gc();
    const before = process.memoryUsage().heapUsed;
    const engine = new Engine();
    let created: ReturnType<Engine["createRun"]> | undefined = engine.createRun(THREE_YEARS, hourlyChain(), Date.now());
    assert.ok(created.ok);
    created = undefined; // the decision's records go to the journal and are dropped
    gc();
    const perInstance = (process.memoryUsage().heapUsed - before) / 26_304;
    t.diagnostic(`${perInstance.toFixed(0)} bytes per workflow instance (5 task instances each)`);
    // Was 2,234 with four Maps and a Set per instance; 1,628 with the shared-position tables.
    assert.ok(perInstance < 1_900, `${perInstance.toFixed(0)} bytes per instance`);
    assert.equal(engine.listRuns().length, 1);
  });
});
