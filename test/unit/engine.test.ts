/**
 * The runner engine (runner/engine/) driven with fake time and no processes: instance
 * dates, selection, scheduling limits, retries, timeouts, every operation and its
 * refusals, stale exit reports, recovery after a crash. After every scenario the
 * records it produced are replayed (through JSON, as a journal stores them) into a fresh
 * engine, whose state must deep-equal the live one.
 *
 * Run: `node --import tsx --test test/unit/engine.test.ts`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CronExpressionParser } from "cron-parser";
import type { TaskModel, UpstreamRef, WorkflowModel } from "../../protocol/model";
import type {
  CreateRunResult,
  Decision,
  Effect,
  EngineRecord,
  HistoryCause,
  KillEffect,
  OperationResult,
  Refusal,
  RefusalCode,
  Run,
  RunSpec,
  StartEffect,
  TaskState,
} from "../../protocol/runner";
import { instanceTimes, MAX_INSTANCES, testInstanceTime } from "../../common/engine/dates";
import { addDays, previousDay, startOfDay, ZoneSpan, zonedIso } from "../../common/zone";
import { Runner } from "../../runner/daemon";
import { DEFAULT_CONCURRENCY, Engine, OPERATION_FROM, planRun, RECOVERY_ERROR, RECOVERY_KILLED_ERROR, schedulerWork } from "../../common/engine/engine";
import { TaskTable } from "../../common/engine/tables";

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

const T0 = Date.parse("2026-11-20T08:00:00Z");
const FILE = "file:///w/daily_sales.flow.ts";
const NO_RANGE = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };

interface TaskOptions {
  upstream?: string[];
  retries?: number;
  retryDelayMs?: number;
  timeoutMs?: number;
  params?: Record<string, string>;
  command?: string;
}

/** A workflow model as the analyzer would give it; upstream `"wf.task"` names another workflow's task. */
function workflow(
  id: string,
  tasks: Record<string, TaskOptions>,
  options: { schedule?: string; timezone?: string; concurrency?: number; params?: Record<string, string> } = { timezone: "UTC" },
): WorkflowModel {
  const models: TaskModel[] = Object.entries(tasks).map(([taskId, o]) => ({
    id: taskId,
    kind: o.command !== undefined ? "shell" : "task",
    idRange: NO_RANGE,
    range: NO_RANGE,
    calleeRange: NO_RANGE,
    upstream: (o.upstream ?? []).map((u): UpstreamRef => {
      const dot = u.indexOf(".");
      const ref = dot < 0 ? { task: u } : { workflow: u.slice(0, dot), task: u.slice(dot + 1) };
      return { ...ref, form: "string", range: NO_RANGE, taskRange: NO_RANGE };
    }),
    ...(o.retries !== undefined ? { retries: o.retries } : {}),
    ...(o.retryDelayMs !== undefined ? { retryDelayMs: o.retryDelayMs } : {}),
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    ...(o.params !== undefined ? { params: o.params } : {}),
    ...(o.command !== undefined ? { command: o.command } : {}),
    listed: true,
  }));
  return { id, idRange: NO_RANGE, range: NO_RANGE, calleeRange: NO_RANGE, ...options, tasks: models };
}

/** extract → load → report, the SPEC's example. */
function salesFlow(overrides: Record<string, TaskOptions> = {}, options?: Parameters<typeof workflow>[2]): WorkflowModel {
  return workflow(
    "daily_sales",
    {
      extract: { ...overrides.extract },
      load: { upstream: ["extract"], ...overrides.load },
      report: { upstream: ["load"], ...overrides.report },
    },
    options,
  );
}

function testSpec(extra: Partial<RunSpec> = {}): RunSpec {
  return { kind: "test", file: FILE, workflow: "daily_sales", downstream: false, bizdate: "2026-11-19", ...extra };
}

function backfillSpec(from: string, to: string, extra: Partial<RunSpec> = {}): RunSpec {
  return { kind: "backfill", file: FILE, workflow: "daily_sales", downstream: false, from, to, ...extra };
}

type Refused = Refusal;

/**
 * Drives one engine the way the runner will: keeps every record (the journal), the
 * processes it was told to start and not yet reported, and fake time.
 */
class Driver {
  /** `verify`: check the engine's derived indexes after every decision (O(state) each; off for scale tests). */
  constructor(private readonly verify = true) {}
  readonly engine = new Engine();
  readonly records: EngineRecord[] = [];
  now = T0;
  /** Started attempts whose exit is not reported yet, by `instance|task|attempt`. */
  readonly live = new Map<string, StartEffect>();
  readonly started: StartEffect[] = [];
  /** Record counts at the end of each decision: where a runner can answer `runs.get`. */
  readonly boundaries: number[] = [];

  take<T extends Decision>(result: T | Refused): T {
    if ("ok" in result && result.ok === false) assert.fail(`refused: ${result.reason}`);
    const decision = result as T;
    this.records.push(...decision.records);
    this.boundaries.push(this.records.length);
    if (this.verify) assert.deepEqual(this.engine.verifyIndexes(), []);
    for (const e of decision.effects) {
      if (e.type === "start") {
        this.live.set(key(e.instanceId, e.task, e.attempt), e);
        this.started.push(e);
      }
    }
    return decision;
  }

  create(spec: RunSpec, wf: WorkflowModel, by?: string): { runId: string; decision: Decision } {
    const result = this.engine.createRun(spec, wf, this.now, by);
    if (!result.ok) assert.fail(`refused: ${result.reason}`);
    this.take(result);
    return { runId: result.runId, decision: result };
  }

  /** Reports the exit of a live attempt (the only one of `task` when not given). */
  exit(task: string, exit: { exitCode?: number; signal?: string; error?: string } = { exitCode: 0 }, instanceId?: string, attempt?: number): Decision {
    const e = this.find(task, instanceId, attempt);
    this.live.delete(key(e.instanceId, e.task, e.attempt));
    return this.take(this.engine.onAttemptExit(e.instanceId, e.task, e.attempt, exit, this.now));
  }

  find(task: string, instanceId?: string, attempt?: number): StartEffect {
    const matches = [...this.live.values()].filter(
      (e) => e.task === task && (instanceId === undefined || e.instanceId === instanceId) && (attempt === undefined || e.attempt === attempt),
    );
    assert.equal(matches.length, 1, `expected one live attempt of ${task}, got ${matches.length}`);
    return matches[0];
  }

  tick(at: number): Decision {
    this.now = at;
    return this.take(this.engine.tick(at));
  }

  op(result: OperationResult): Decision {
    return this.take(result);
  }

  run(runId = "run-1"): Run {
    const run = this.engine.getRun(runId);
    assert.ok(run, `no run ${runId}`);
    return run;
  }

  /** Task states of the run's first (or given) instance: `{ extract: "success", ... }`. */
  states(runId = "run-1", instance = 0): Record<string, TaskState> {
    return Object.fromEntries(this.run(runId).instances[instance].tasks.map((t) => [t.task, t.state]));
  }

  task(name: string, runId = "run-1", instance = 0) {
    const t = this.run(runId).instances[instance].tasks.find((x) => x.task === name);
    assert.ok(t, `no task ${name}`);
    return t;
  }

  instanceId(runId = "run-1", instance = 0): string {
    return this.run(runId).instances[instance].id;
  }

  /** Completes live attempts with exit 0, oldest first, until none is left. */
  drain(onStep?: () => void): void {
    while (this.live.size > 0) {
      const [first] = this.live.values();
      this.live.delete(key(first.instanceId, first.task, first.attempt));
      this.take(this.engine.onAttemptExit(first.instanceId, first.task, first.attempt, { exitCode: 0 }, this.now));
      onStep?.();
    }
  }

  /** The journal property: replaying the records (through JSON) rebuilds the same state. */
  checkReplay(): void {
    const journal = JSON.parse(JSON.stringify(this.records)) as EngineRecord[];
    assert.deepEqual(journal, this.records, "records must be plain JSON (no undefined members)");
    const replayed = Engine.replay(journal);
    assert.deepEqual(replayed.snapshot(), this.engine.snapshot());
    assert.deepEqual(this.engine.verifyIndexes(), []);
    assert.deepEqual(replayed.verifyIndexes(), []);
    this.checkLoadThenApply(journal);
  }

  /**
   * The extension's way: load the runs as a runner reports them mid-way (through JSON),
   * then apply the records that follow; the state must be the live engine's.
   */
  private checkLoadThenApply(journal: EngineRecord[]): void {
    const b = this.boundaries;
    for (const cut of new Set([b[0], b[Math.floor(b.length / 3)], b[Math.floor((2 * b.length) / 3)]])) {
      if (cut === undefined || cut < 1 || cut > journal.length) continue;
      const before = Engine.replay(journal.slice(0, cut)).snapshot();
      const client = new Engine();
      for (const run of JSON.parse(JSON.stringify(before.runs)) as Run[]) client.load(run);
      assert.deepEqual(client.verifyIndexes(), [], `indexes after load at record ${cut}`);
      for (const r of journal.slice(cut)) client.apply(r);
      assert.deepEqual(client.snapshot(), this.engine.snapshot(), `load at record ${cut}, then apply the rest`);
      assert.deepEqual(client.verifyIndexes(), []);
    }
  }
}

function key(instanceId: string, task: string, attempt: number): string {
  return `${instanceId}|${task}|${attempt}`;
}

function starts(d: Decision): StartEffect[] {
  return d.effects.filter((e): e is StartEffect => e.type === "start");
}

function kills(d: Decision): KillEffect[] {
  return d.effects.filter((e): e is KillEffect => e.type === "kill");
}

function wake(d: Decision): number | undefined {
  return d.effects.find((e): e is Extract<Effect, { type: "wake" }> => e.type === "wake")?.at;
}

/** The refusal's reason, after checking its code (and, for wrong-state, the states it carries). */
function refusal(result: OperationResult | CreateRunResult | ReturnType<typeof planRun>, code: RefusalCode, states?: { state: TaskState; allowed: TaskState[] }): string {
  assert.equal(result.ok, false, "expected the operation to be refused");
  const refused = result as Refusal;
  assert.equal(refused.code, code, refused.reason);
  if (code === "wrong-state") assert.ok(refused.state !== undefined && refused.allowed !== undefined, "wrong-state carries state and allowed");
  if (states) assert.deepEqual({ state: refused.state, allowed: refused.allowed }, states);
  return refused.reason;
}

function historyOf(d: Driver, task: string, instance = 0): [TaskState, TaskState, HistoryCause, string?][] {
  return d.task(task, "run-1", instance).history.map((h) => (h.by === undefined ? [h.from, h.to, h.cause] : [h.from, h.to, h.cause, h.by]));
}

// ---------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------

describe("instance dates", () => {
  test("daily: one instance per bizdate, cyctime the fire time on bizdate + 1", () => {
    assert.deepEqual(instanceTimes("30 2 * * *", "Asia/Shanghai", "2026-11-18", "2026-11-20"), [
      { bizdate: "2026-11-18", cyctime: "2026-11-19T02:30:00+08:00" },
      { bizdate: "2026-11-19", cyctime: "2026-11-20T02:30:00+08:00" },
      { bizdate: "2026-11-20", cyctime: "2026-11-21T02:30:00+08:00" },
    ]);
  });

  test("hourly: 24 instances per bizdate, all with that bizdate", () => {
    const one = instanceTimes("0 * * * *", "Asia/Shanghai", "2026-11-19", "2026-11-19");
    assert.equal(one.length, 24);
    assert.ok(one.every((i) => i.bizdate === "2026-11-19"));
    assert.equal(one[0].cyctime, "2026-11-20T00:00:00+08:00");
    assert.equal(one[23].cyctime, "2026-11-20T23:00:00+08:00");
    assert.equal(instanceTimes("0 * * * *", "Asia/Shanghai", "2026-11-19", "2026-11-20").length, 48);
  });

  test("weekly over two weeks gives two instances", () => {
    assert.deepEqual(instanceTimes("0 3 * * 1", "Asia/Shanghai", "2026-11-02", "2026-11-15"), [
      { bizdate: "2026-11-08", cyctime: "2026-11-09T03:00:00+08:00" },
      { bizdate: "2026-11-15", cyctime: "2026-11-16T03:00:00+08:00" },
    ]);
  });

  test("unscheduled: one per calendar day at 00:00 of bizdate + 1 in the zone", () => {
    assert.deepEqual(instanceTimes(undefined, "America/New_York", "2026-11-18", "2026-11-19"), [
      { bizdate: "2026-11-18", cyctime: "2026-11-19T00:00:00-05:00" },
      { bizdate: "2026-11-19", cyctime: "2026-11-20T00:00:00-05:00" },
    ]);
  });

  test("Europe/Berlin DST: spring-forward and fall-back days", () => {
    // 02:30 does not exist on 2026-03-29; cron-parser fires at 03:30 (CEST).
    assert.deepEqual(instanceTimes("30 2 * * *", "Europe/Berlin", "2026-03-27", "2026-03-29").map((i) => i.cyctime), [
      "2026-03-28T02:30:00+01:00",
      "2026-03-29T03:30:00+02:00",
      "2026-03-30T02:30:00+02:00",
    ]);
    // 02:30 exists twice on 2026-10-25; a fixed-time schedule fires once.
    assert.deepEqual(instanceTimes("30 2 * * *", "Europe/Berlin", "2026-10-24", "2026-10-25").map((i) => i.cyctime), [
      "2026-10-25T02:30:00+02:00",
      "2026-10-26T02:30:00+01:00",
    ]);
    const spring = instanceTimes("0 * * * *", "Europe/Berlin", "2026-03-28", "2026-03-28");
    assert.equal(spring.length, 23);
    const fall = instanceTimes("0 * * * *", "Europe/Berlin", "2026-10-24", "2026-10-24");
    assert.equal(fall.length, 25);
    assert.deepEqual(fall.slice(2, 5).map((i) => i.cyctime), ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]);
    assert.deepEqual(instanceTimes(undefined, "Europe/Berlin", "2026-03-28", "2026-03-29").map((i) => i.cyctime), [
      "2026-03-29T00:00:00+01:00",
      "2026-03-30T00:00:00+02:00",
    ]);
  });

  test("a day whose midnight does not exist starts at the end of the gap", () => {
    // America/Santiago skips 00:00–01:00 on 2026-09-06.
    assert.equal(instanceTimes(undefined, "America/Santiago", "2026-09-05", "2026-09-05")[0].cyctime, "2026-09-06T01:00:00-03:00");
  });

  test("same instances as cron-parser's own zone handling, across DST changes in several zones", () => {
    // Around the 2026 transitions: Berlin Mar 29 / Oct 25, New York Mar 8 / Nov 1, Santiago Apr 5 / Sep 6.
    const ranges = [["2026-03-06", "2026-04-06"], ["2026-09-03", "2026-09-07"], ["2026-10-22", "2026-11-02"]];
    for (const tz of ["Europe/Berlin", "America/New_York", "America/Santiago"]) {
      for (const expr of ["15 * * * *", "30 2 * * *", "0 0 * * *", "0 3 * * 1", "45 23 1 * *"]) {
        for (const [from, to] of ranges) {
          const start = startOfDay(addDays(from, 1), tz);
          const end = startOfDay(addDays(to, 2), tz);
          const it = CronExpressionParser.parse(expr, { tz, currentDate: new Date(start - 1000), endDate: new Date(end) });
          const expected: { bizdate: string; cyctime: string }[] = [];
          while (it.hasNext()) {
            const fire = it.next().toDate();
            if (fire.getTime() >= end) break; // endDate is inclusive
            const cyctime = zonedIso(fire, tz);
            expected.push({ bizdate: previousDay(cyctime.slice(0, 10)), cyctime });
          }
          assert.deepEqual(instanceTimes(expr, tz, from, to), expected, `${expr} in ${tz} from ${from} to ${to}`);
        }
      }
    }
  });

  test("test instance: first fire time on bizdate + 1, or the schedule's time of day on it", () => {
    assert.deepEqual(testInstanceTime("30 2 * * *", "Asia/Shanghai", "2026-11-19"), { bizdate: "2026-11-19", cyctime: "2026-11-20T02:30:00+08:00" });
    assert.deepEqual(testInstanceTime("*/15 * * * *", "UTC", "2026-11-19"), { bizdate: "2026-11-19", cyctime: "2026-11-20T00:00:00+00:00" });
    assert.deepEqual(testInstanceTime(undefined, "Asia/Shanghai", "2026-11-19"), { bizdate: "2026-11-19", cyctime: "2026-11-20T00:00:00+08:00" });
    // Mondays only; 2026-11-20 is a Friday: the bizdate chosen still holds.
    assert.deepEqual(testInstanceTime("0 3 * * 1", "Asia/Shanghai", "2026-11-19"), { bizdate: "2026-11-19", cyctime: "2026-11-20T03:00:00+08:00" });
    assert.deepEqual(testInstanceTime("30 2 * * *", "Europe/Berlin", "2026-03-28"), { bizdate: "2026-03-28", cyctime: "2026-03-29T03:30:00+02:00" });
  });

  test("invalid input is refused with the reason", () => {
    assert.throws(() => instanceTimes(undefined, "UTC", "2026-11-31", "2026-12-02"), { message: "from 2026-11-31 is not a date" });
    assert.throws(() => instanceTimes(undefined, "UTC", "2026-11-01", "2026-02-29"), { message: "to 2026-02-29 is not a date" });
    assert.throws(() => instanceTimes(undefined, "UTC", "2026-11-20", "2026-11-19"), { message: "from is after to: from 2026-11-20, to 2026-11-19" });
    assert.throws(() => instanceTimes(undefined, "UTC", "20261119", "2026-11-19"), { message: "from must be a date written YYYY-MM-DD, got `20261119`" });
    assert.throws(() => testInstanceTime(undefined, "UTC", "2026-13-01"), { message: "bizdate 2026-13-01 is not a date" });
    assert.throws(() => instanceTimes("0 2 * * *", "Mars/Olympus", "2026-11-01", "2026-11-02"), /timezone `Mars\/Olympus` is not an IANA time zone/);
    assert.throws(() => instanceTimes("0 25 * * *", "UTC", "2026-11-01", "2026-11-02"), /schedule `0 25 \* \* \*` is not a valid cron expression/);
    assert.throws(() => instanceTimes(undefined, "UTC", "2026-01-01", "2226-01-01"), /spans 73049 days; a backfill spans at most 36600/);
  });

  test("more than the cap is refused from a week's sample, before iterating the range", () => {
    // Each candidate fire time is turned into an instant with two offset look-ups: counting
    // them counts the fire times looked at. A week of every-minute fires is 10,080; going
    // on to the cap would look at 100,001 more.
    const offsetAt = ZoneSpan.prototype.offsetAt;
    let lookups = 0;
    ZoneSpan.prototype.offsetAt = function (this: ZoneSpan, t: number) {
      lookups++;
      return offsetAt.call(this, t);
    };
    try {
      assert.throws(() => instanceTimes("* * * * *", "UTC", "2026-01-01", "2026-12-31"), (e: Error) => {
        assert.match(e.message, new RegExp(`would create about \\d+, more than ${MAX_INSTANCES} workflow instances with schedule \`\\* \\* \\* \\* \\*\`; choose a shorter range`));
        return true;
      });
    } finally {
      ZoneSpan.prototype.offsetAt = offsetAt;
    }
    assert.ok(lookups <= 3 * 7 * 1440, `the estimate looked at ${lookups / 2} fire times, more than a week's`);
  });
});

// ---------------------------------------------------------------------------------------
// Creating runs
// ---------------------------------------------------------------------------------------

describe("createRun", () => {
  test("a test run starts the roots with everything the executor needs", () => {
    const d = new Driver();
    const wf = workflow(
      "daily_sales",
      {
        extract: { params: { env: "dev" }, timeoutMs: 600_000 },
        load: { upstream: ["extract"], command: "psql -f load.sql" },
      },
      { timezone: "Asia/Shanghai", schedule: "30 2 * * *", params: { region: "cn", env: "prod" } },
    );
    const { runId, decision } = d.create(testSpec(), wf, "cli");
    assert.equal(runId, "run-1");
    assert.deepEqual(starts(decision), [
      {
        type: "start",
        runId: "run-1",
        instanceId: "run-1@20261120T023000+0800",
        task: "extract",
        workflow: "daily_sales",
        file: FILE,
        kind: "task",
        attempt: 1,
        bizdate: "2026-11-19",
        cyctime: "2026-11-20T02:30:00+08:00",
        params: { region: "cn", env: "dev" },
        timeoutMs: 600_000,
        deadline: T0 + 600_000,
      },
    ]);
    assert.equal(wake(decision), T0 + 600_000);
    d.now += 5_000;
    const next = starts(d.exit("extract"));
    assert.equal(next.length, 1);
    assert.equal(next[0].kind, "shell");
    assert.equal(next[0].command, "psql -f load.sql");
    assert.deepEqual(next[0].params, { region: "cn", env: "prod" });
    const run = d.run();
    assert.equal(run.by, "cli");
    assert.equal(run.concurrency, DEFAULT_CONCURRENCY);
    assert.equal(run.state, "running");
    d.exit("load");
    assert.equal(d.run().state, "success");
    assert.equal(d.run().endedAt, d.now);
    assert.equal(d.engine.listRuns()[0].counts.success, 2);
    d.checkReplay();
  });

  test("a test run without a bizdate uses yesterday in the workflow's zone", () => {
    const d = new Driver();
    d.now = Date.parse("2026-11-19T20:00:00Z"); // 2026-11-20 04:00 in Shanghai
    d.create(testSpec({ bizdate: undefined }), salesFlow({}, { timezone: "Asia/Shanghai" }));
    assert.equal(d.run().instances[0].bizdate, "2026-11-19");
    d.checkReplay();
  });

  test("selection: some tasks, with and without downstream; upstreams outside count as satisfied", () => {
    const wf = workflow("daily_sales", {
      extract: {},
      load: { upstream: ["extract"] },
      report: { upstream: ["load", "crm.sync_accounts"] },
      audit: { upstream: ["crm.sync_accounts"] },
    });
    const only = new Driver();
    const a = only.create(testSpec({ tasks: ["load"] }), wf);
    assert.deepEqual(only.run().tasks.map((t) => [t.id, t.upstream]), [["load", []]]);
    assert.deepEqual(starts(a.decision).map((s) => s.task), ["load"], "extract is not selected: load starts at once");
    only.checkReplay();

    const down = new Driver();
    const b = down.create(testSpec({ tasks: ["load"], downstream: true }), wf);
    assert.deepEqual(down.run().tasks.map((t) => [t.id, t.upstream]), [["load", []], ["report", ["load"]]]);
    assert.deepEqual(starts(b.decision).map((s) => s.task), ["load"]);
    down.exit("load");
    assert.deepEqual(down.states(), { load: "success", report: "running" }, "crm.sync_accounts (another workflow) counts as satisfied");
    down.checkReplay();

    const all = new Driver();
    const c = all.create(testSpec(), wf);
    assert.deepEqual(starts(c.decision).map((s) => s.task), ["extract", "audit"]);
    all.checkReplay();
  });

  test("refusals name what is wrong", () => {
    const engine = new Engine();
    const wf = salesFlow();
    const reason = (spec: RunSpec, model: WorkflowModel = wf) => refusal(engine.createRun(spec, model, T0), "invalid-spec");
    assert.equal(reason(testSpec({ tasks: ["nope", "zip"] })), "workflow `daily_sales` has no tasks `nope`, `zip`; it has `extract`, `load`, `report`");
    assert.equal(reason(testSpec({ tasks: [] })), "the run selects no task; workflow `daily_sales` has 3 tasks");
    assert.equal(reason(testSpec({ parallelism: 0 })), "Expected `parallelism` to be an integer from 1 and up, got `0`");
    assert.equal(reason(testSpec({ workflow: "other" })), `the run asks for workflow \`other\`, but ${FILE} defines \`daily_sales\``);
    assert.equal(reason(backfillSpec("2026-11-31", "2026-12-02")), "from 2026-11-31 is not a date");
    assert.equal(reason(backfillSpec("2026-11-20", "2026-11-19")), "from is after to: from 2026-11-20, to 2026-11-19");
    assert.equal(reason({ ...backfillSpec("2026-11-01", "2026-11-02"), to: undefined }), "a backfill needs both `from` and `to`, got from 2026-11-01 and no to");
    assert.equal(reason(testSpec({ from: "2026-11-01" })), "a test run takes `bizdate`, not `from`/`to`");
    assert.equal(
      reason(backfillSpec("2026-11-02", "2026-11-03"), salesFlow({}, { schedule: "0 0 1 1 *", timezone: "UTC" })),
      "schedule `0 0 1 1 *` fires for no bizdate from 2026-11-02 to 2026-11-03",
    );
    const cyclic = workflow("daily_sales", { a: { upstream: ["b"] }, b: { upstream: ["a"] }, c: { upstream: ["b"] } });
    assert.equal(reason(testSpec(), cyclic), "tasks `a`, `b`, `c` are in or behind a dependency cycle; fix the cycle error first");
    assert.equal(engine.listRuns().length, 0, "refused runs leave no trace");
  });

  test("planRun: what createRun would create, from the same selection and dates, with its refusals", () => {
    const wf = salesFlow();
    const spec = backfillSpec("2026-11-01", "2026-11-03", { tasks: ["load"], downstream: true, order: "desc", parallelism: 2 });
    const planned = planRun(spec, wf, T0);
    assert.ok(planned.ok);
    assert.deepEqual(planned.draft.tasks.map((t) => [t.id, t.upstream]), [["load", []], ["report", ["load"]]]);
    assert.deepEqual(planned.draft.instances.map((i) => i.bizdate), ["2026-11-03", "2026-11-02", "2026-11-01"]);
    assert.deepEqual([planned.draft.parallelism, planned.draft.order, planned.draft.concurrency], [2, "desc", DEFAULT_CONCURRENCY]);

    const d = new Driver();
    d.create(spec, wf);
    const run = d.run();
    assert.deepEqual(run.tasks, planned.draft.tasks);
    assert.deepEqual(run.instances.map((i) => ({ bizdate: i.bizdate, cyctime: i.cyctime })), planned.draft.instances);

    const bad = testSpec({ tasks: ["nope"] });
    const refusedPlan = planRun(bad, wf, T0);
    assert.equal(refusal(refusedPlan, "invalid-spec"), refusal(new Engine().createRun(bad, wf, T0), "invalid-spec"));
    assert.equal(refusal(planRun(backfillSpec("2026-11-20", "2026-11-19"), wf, T0), "invalid-spec"), "from is after to: from 2026-11-20, to 2026-11-19");
  });
});

// ---------------------------------------------------------------------------------------
// Scheduling limits
// ---------------------------------------------------------------------------------------

describe("scheduling", () => {
  for (const order of ["asc", "desc"] as const) {
    test(`parallelism bounds active instances; instances start in ${order} bizdate order`, () => {
      const d = new Driver();
      const wf = workflow("daily_sales", { t: {} });
      const { decision } = d.create(backfillSpec("2026-11-01", "2026-11-06", { parallelism: 2, order }), wf);
      assert.equal(starts(decision).length, 2);
      let maxLive = 0;
      let maxActive = 0;
      d.drain(() => {
        maxLive = Math.max(maxLive, d.live.size);
        maxActive = Math.max(maxActive, d.run().instances.filter((i) => i.state === "active").length);
      });
      assert.equal(maxLive, 2);
      assert.equal(maxActive, 2);
      const dates = d.started.map((s) => s.bizdate);
      const asc = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"];
      assert.deepEqual(dates, order === "asc" ? asc : [...asc].reverse());
      assert.ok(d.run().instances.every((i) => i.state === "finished"));
      assert.equal(d.run().state, "success");
      d.checkReplay();
    });
  }

  test("workflow concurrency bounds running tasks within an instance", () => {
    const d = new Driver();
    const wf = workflow("daily_sales", { a: {}, b: {}, c: {}, d: {}, e: {} }, { concurrency: 2, timezone: "UTC" });
    const { decision } = d.create(testSpec(), wf);
    assert.deepEqual(starts(decision).map((s) => s.task), ["a", "b"]);
    assert.deepEqual(d.states(), { a: "running", b: "running", c: "waiting", d: "waiting", e: "waiting" });
    assert.deepEqual(starts(d.exit("b")).map((s) => s.task), ["c"]);
    let max = 0;
    d.drain(() => (max = Math.max(max, d.live.size)));
    assert.equal(max, 2);
    assert.equal(d.run().state, "success");
    d.checkReplay();
  });

  test(`default concurrency is ${DEFAULT_CONCURRENCY}`, () => {
    const d = new Driver();
    const tasks = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`t${i}`, {}]));
    const { decision } = d.create(testSpec(), workflow("daily_sales", tasks));
    assert.equal(starts(decision).length, DEFAULT_CONCURRENCY);
    d.checkReplay();
  });

  test("a task starts when all its upstreams succeed, not before", () => {
    const d = new Driver();
    const wf = workflow("daily_sales", { a: {}, b: {}, c: { upstream: ["a", "b"] } });
    d.create(testSpec(), wf);
    assert.deepEqual(starts(d.exit("a")), []);
    assert.equal(d.states().c, "not_run");
    assert.deepEqual(starts(d.exit("b")).map((s) => s.task), ["c"]);
    assert.deepEqual(historyOf(d, "c"), [
      ["not_run", "waiting", "upstream"],
      ["waiting", "running", "scheduler"],
    ]);
    d.checkReplay();
  });

  test("a failed task's downstream stays not_run; the instance finishes and the next one starts", () => {
    const d = new Driver();
    d.create(backfillSpec("2026-11-01", "2026-11-02"), salesFlow());
    const first = d.instanceId("run-1", 0);
    const next = starts(d.exit("extract", { exitCode: 2 }, first));
    assert.deepEqual(d.states("run-1", 0), { extract: "failed", load: "not_run", report: "not_run" });
    assert.equal(d.run().instances[0].state, "finished");
    assert.deepEqual(next.map((s) => [s.task, s.bizdate]), [["extract", "2026-11-02"]]);
    d.drain();
    assert.equal(d.run().state, "failed");
    assert.equal(d.task("extract").attempts[0].exitCode, 2);
    d.checkReplay();
  });
});

// ---------------------------------------------------------------------------------------
// Retries and timeouts
// ---------------------------------------------------------------------------------------

describe("retries and timeouts", () => {
  test("a failed attempt waits retryDelay (wake), then tick starts the retry; then failed", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow({ extract: { retries: 2, retryDelayMs: 30_000 } }));
    d.now = T0 + 1_000;
    const failed = d.exit("extract", { exitCode: 1 });
    assert.deepEqual(starts(failed), []);
    assert.equal(wake(failed), T0 + 31_000);
    assert.equal(d.task("extract").state, "waiting");
    assert.equal(d.task("extract").retryAt, T0 + 31_000);
    assert.deepEqual(failed.records.map((r) => r.type), ["attempt.ended", "task.state", "task.retry-scheduled"]);

    const early = d.tick(T0 + 30_999);
    assert.deepEqual(starts(early), []);
    assert.equal(wake(early), T0 + 31_000);
    const due = d.tick(T0 + 31_000);
    assert.deepEqual(starts(due).map((s) => [s.task, s.attempt]), [["extract", 2]]);
    assert.equal(d.task("extract").attempts[1].cause, "retry");
    assert.equal(d.task("extract").attempts[1].retry, 1);
    assert.equal(wake(due), undefined, "nothing timed is pending");

    d.exit("extract", { exitCode: 1 });
    d.tick(d.now + 30_000);
    d.exit("extract", { exitCode: 1 });
    assert.equal(d.task("extract").state, "failed");
    assert.equal(d.task("extract").attempts.length, 3);
    assert.deepEqual(historyOf(d, "extract"), [
      ["not_run", "waiting", "scheduler"],
      ["waiting", "running", "scheduler"],
      ["running", "waiting", "retry"],
      ["waiting", "running", "retry"],
      ["running", "waiting", "retry"],
      ["waiting", "running", "retry"],
      ["running", "failed", "scheduler"],
    ]);
    assert.equal(d.run().state, "failed");
    d.checkReplay();
  });

  test("timeout: tick past the deadline kills; the exit fails the attempt and retries apply", () => {
    const d = new Driver();
    const { decision } = d.create(testSpec(), salesFlow({ extract: { timeoutMs: 600_000, retries: 1 } }));
    assert.equal(wake(decision), T0 + 600_000);
    assert.deepEqual(kills(d.tick(T0 + 599_999)), []);
    const late = d.tick(T0 + 600_000);
    assert.deepEqual(kills(late), [
      { type: "kill", runId: "run-1", instanceId: d.instanceId(), task: "extract", attempt: 1, reason: "timeout" },
    ]);
    assert.equal(wake(late), undefined);
    assert.deepEqual(kills(d.tick(T0 + 700_000)), [], "the kill is asked for once");
    assert.equal(d.task("extract").state, "running", "running until the process is gone");

    d.now = T0 + 700_500;
    const ended = d.exit("extract", { signal: "SIGTERM" });
    const a1 = d.task("extract").attempts[0];
    assert.equal(a1.error, "timed out after 10m");
    assert.equal(a1.signal, "SIGTERM");
    assert.equal(a1.timedOutAt, T0 + 600_000);
    assert.deepEqual(starts(ended).map((s) => s.attempt), [2], "retryDelay 0: the retry starts at once");
    assert.deepEqual(historyOf(d, "extract").slice(2), [
      ["running", "waiting", "timeout"],
      ["waiting", "running", "retry"],
    ]);
    d.exit("extract");
    assert.equal(d.task("extract").state, "success");
    d.checkReplay();
  });

  test("an attempt that timed out fails even if it then exits 0", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow({ extract: { timeoutMs: 30_000 } }));
    d.tick(T0 + 30_000);
    d.exit("extract", { exitCode: 0 });
    assert.equal(d.task("extract").state, "failed");
    assert.equal(d.task("extract").attempts[0].error, "timed out after 30s");
    assert.deepEqual(historyOf(d, "extract").at(-1), ["running", "failed", "timeout"]);
    d.checkReplay();
  });

  test("executor errors fail the attempt with their message", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    d.exit("extract", { error: "bundle failed: Could not resolve \"./x\"" });
    assert.equal(d.task("extract").state, "failed");
    assert.equal(d.task("extract").attempts[0].error, "bundle failed: Could not resolve \"./x\"");
    d.checkReplay();
  });
});

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

describe("operations", () => {
  test("kill a running task: kill effect; running (being killed) until its exit, then killed; nothing needing it ended starts before", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    const inst = d.instanceId();
    const k = d.op(d.engine.kill({ instanceId: inst, task: "extract" }, T0 + 10, "cli"));
    assert.deepEqual(kills(k), [{ type: "kill", runId: "run-1", instanceId: inst, task: "extract", attempt: 1, reason: "operator" }]);
    assert.deepEqual(k.records.map((r) => r.type), ["attempt.kill-requested"]);
    assert.deepEqual(d.states(), { extract: "running", load: "not_run", report: "not_run" }, "the process may still run");
    assert.equal(d.task("extract").attempts[0].killRequestedAt, T0 + 10);
    assert.equal(d.run().state, "running");
    // Until the processes are gone: no rerun, no set success, no second kill.
    assert.match(refusal(d.engine.rerun({ instanceId: inst, task: "extract" }, T0 + 11), "wrong-state"), /is running$/);
    assert.match(refusal(d.engine.setSuccess({ instanceId: inst, task: "extract" }, T0 + 11), "wrong-state"), /is running$/);
    assert.match(refusal(d.engine.kill({ instanceId: inst, task: "extract" }, T0 + 11), "kill-pending"), /^`extract` on 2026-11-19 is being killed already/);
    d.now = T0 + 20;
    const report = d.exit("extract", { signal: "SIGTERM" });
    assert.deepEqual(report.records.map((r) => r.type), ["attempt.ended", "task.state", "instance.state", "run.state"]);
    assert.equal(d.task("extract").state, "killed");
    assert.equal(d.task("extract").attempts[0].signal, "SIGTERM");
    assert.equal(d.task("extract").attempts[0].endedAt, T0 + 20);
    assert.deepEqual(historyOf(d, "extract").at(-1), ["running", "killed", "operator", "cli"]);
    assert.equal(d.run().state, "killed");
    assert.equal(
      refusal(d.engine.kill({ instanceId: inst, task: "extract" }, d.now), "wrong-state", { state: "killed", allowed: ["waiting", "running"] }),
      "kill needs state waiting or running; `extract` on 2026-11-19 is killed",
    );
    assert.equal(refusal(d.engine.kill({ instanceId: inst, task: "load" }, d.now), "wrong-state", { state: "not_run", allowed: ["waiting", "running"] }), "kill needs state waiting or running; `load` on 2026-11-19 is not_run");
    d.checkReplay();
  });

  test("a kill requested at a timeout's deadline: the attempt ends killed, not timed out, and no second kill is sent", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow({ extract: { timeoutMs: 1000 } }));
    const inst = d.instanceId();
    d.op(d.engine.kill({ instanceId: inst, task: "extract" }, T0 + 10, "cli"));
    assert.deepEqual(kills(d.tick(T0 + 5000)), [], "the deadline of an attempt being killed sends no kill");
    d.exit("extract", { signal: "SIGKILL" });
    assert.equal(d.task("extract").state, "killed");
    d.checkReplay();
  });

  test("kill a waiting task: no process to kill; the slot goes on to others", () => {
    const d = new Driver();
    d.create(testSpec(), workflow("daily_sales", { a: {}, b: {}, c: {} }, { concurrency: 1, timezone: "UTC" }));
    const inst = d.instanceId();
    const k = d.op(d.engine.kill({ instanceId: inst, task: "b" }, T0, "vscode"));
    assert.deepEqual(k.effects.filter((e) => e.type !== "wake"), []);
    assert.deepEqual(starts(d.exit("a")).map((s) => s.task), ["c"]);
    d.exit("c");
    assert.deepEqual(d.states(), { a: "success", b: "killed", c: "success" });
    assert.equal(d.run().state, "killed");
    d.checkReplay();
  });

  test("rerun: a new attempt; on success the not_run downstream proceeds", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    const inst = d.instanceId();
    d.exit("extract", { exitCode: 1 });
    assert.equal(d.run().state, "failed");
    const r = d.op(d.engine.rerun({ instanceId: inst, task: "extract" }, T0 + 100, "vscode"));
    assert.deepEqual(starts(r).map((s) => [s.task, s.attempt]), [["extract", 2]]);
    assert.equal(d.run().state, "running");
    assert.equal(d.run().endedAt, undefined);
    assert.equal(
      refusal(d.engine.rerun({ instanceId: inst, task: "extract" }, T0 + 100), "wrong-state", { state: "running", allowed: ["not_run", "success", "failed", "killed"] }),
      "rerun needs state not_run, success, failed or killed; `extract` on 2026-11-19 is running",
    );
    assert.deepEqual(starts(d.exit("extract")).map((s) => s.task), ["load"]);
    d.drain();
    assert.equal(d.run().state, "success");
    assert.deepEqual(historyOf(d, "extract"), [
      ["not_run", "waiting", "scheduler"],
      ["waiting", "running", "scheduler"],
      ["running", "failed", "scheduler"],
      ["failed", "waiting", "operator", "vscode"],
      ["waiting", "running", "scheduler"],
      ["running", "success", "scheduler"],
    ]);
    // A success reruns alone: its downstream keeps its success.
    const again = d.op(d.engine.rerun({ instanceId: inst, task: "load" }, d.now, "cli"));
    assert.deepEqual(starts(again).map((s) => [s.task, s.attempt]), [["load", 2]]);
    d.drain();
    assert.deepEqual(d.task("report").attempts.length, 1);
    d.checkReplay();
  });

  test("rerun of a not_run task runs it now, whatever its upstreams", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    const r = d.op(d.engine.rerun({ instanceId: d.instanceId(), task: "report" }, T0, "cli"));
    assert.deepEqual(starts(r).map((s) => s.task), ["report"]);
    d.checkReplay();
  });

  test("the `load` on 2026-11-19 refusal reads as the SPEC shows it", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    d.exit("extract");
    assert.equal(
      refusal(d.engine.rerun({ instanceId: d.instanceId(), task: "load" }, d.now), "wrong-state"),
      "rerun needs state not_run, success, failed or killed; `load` on 2026-11-19 is running",
    );
    d.checkReplay();
  });

  test("set success: failed or killed → success; downstream proceeds", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    const inst = d.instanceId();
    assert.equal(
      refusal(d.engine.setSuccess({ instanceId: inst, task: "extract" }, T0), "wrong-state", { state: "running", allowed: ["failed", "killed"] }),
      "set success needs state failed or killed; `extract` on 2026-11-19 is running",
    );
    d.exit("extract", { exitCode: 1 });
    const s = d.op(d.engine.setSuccess({ instanceId: inst, task: "extract" }, T0 + 5, "cli"));
    assert.deepEqual(starts(s).map((x) => x.task), ["load"]);
    assert.deepEqual(historyOf(d, "extract").at(-1), ["failed", "success", "operator", "cli"]);
    assert.deepEqual(historyOf(d, "load")[0], ["not_run", "waiting", "upstream"]);
    d.drain();
    assert.equal(d.run().state, "success");
    d.checkReplay();
  });

  test("rerun downstream (all): each task reruns after its upstream, in dependency order", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    d.drain();
    const inst = d.instanceId();
    const r = d.op(d.engine.rerunDownstream({ instanceId: inst, task: "extract" }, "all", T0 + 1, "vscode"));
    assert.deepEqual(starts(r).map((s) => [s.task, s.attempt]), [["extract", 2]]);
    assert.deepEqual(d.states(), { extract: "running", load: "not_run", report: "not_run" });
    assert.deepEqual(starts(d.exit("extract")).map((s) => [s.task, s.attempt]), [["load", 2]]);
    assert.deepEqual(starts(d.exit("load")).map((s) => [s.task, s.attempt]), [["report", 2]]);
    d.exit("report");
    assert.equal(d.run().state, "success");
    assert.deepEqual(historyOf(d, "load")[3], ["success", "not_run", "operator", "vscode"]);
    d.checkReplay();
  });

  test("rerun downstream (chosen): a chosen task waits for the rerun through tasks not rerun", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    d.drain();
    const inst = d.instanceId();
    const r = d.op(d.engine.rerunDownstream({ instanceId: inst, task: "extract" }, ["report"], T0 + 1, "cli"));
    assert.deepEqual(starts(r).map((s) => s.task), ["extract"]);
    assert.deepEqual(d.states(), { extract: "running", load: "success", report: "not_run" });
    assert.deepEqual(d.task("report").after, ["extract"]);
    assert.deepEqual(starts(d.exit("extract")).map((s) => [s.task, s.attempt]), [["report", 2]]);
    d.exit("report");
    assert.equal(d.task("load").attempts.length, 1, "load was not chosen");
    assert.equal(d.task("report").after, undefined);
    d.checkReplay();
  });

  test("rerun downstream refusals", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    const inst = d.instanceId();
    d.exit("extract");
    assert.equal(
      refusal(d.engine.rerunDownstream({ instanceId: inst, task: "extract" }, "all", d.now), "wrong-state", { state: "running", allowed: ["not_run", "success", "failed", "killed"] }),
      "rerun downstream needs every chosen task in state not_run, success, failed or killed; on 2026-11-19 `load` is running",
    );
    assert.equal(
      refusal(d.engine.rerunDownstream({ instanceId: inst, task: "load" }, ["extract", "ghost"], d.now), "no-task"),
      "rerun downstream: `extract` is not downstream of `load`; `ghost` is not a task of run run-1",
    );
    assert.equal(
      refusal(d.engine.rerunDownstream({ instanceId: inst, task: "load" }, ["extract"], d.now), "invalid-spec"),
      "rerun downstream: `extract` is not downstream of `load`",
    );
    assert.equal(refusal(d.engine.rerunDownstream({ instanceId: "nope", task: "load" }, "all", d.now), "no-instance"), "no workflow instance `nope`");
    assert.equal(
      refusal(d.engine.rerunDownstream({ instanceId: inst, task: "ghost" }, "all", d.now), "no-task"),
      "run run-1 did not select task `ghost`; it has `extract`, `load`, `report`",
    );
    d.checkReplay();
  });

  test("pause / resume: a paused task does not start, its downstream waits; resume carries on", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    const inst = d.instanceId();
    d.op(d.engine.pause({ instanceId: inst, task: "load" }, T0, "cli"));
    assert.equal(
      refusal(d.engine.pause({ instanceId: inst, task: "extract" }, T0), "wrong-state", { state: "running", allowed: ["not_run", "waiting"] }),
      "pause needs state not_run or waiting; `extract` on 2026-11-19 is running",
    );
    assert.equal(refusal(d.engine.resume({ instanceId: inst, task: "report" }, T0), "wrong-state", { state: "not_run", allowed: ["paused"] }), "resume needs state paused; `report` on 2026-11-19 is not_run");
    assert.deepEqual(starts(d.exit("extract")), []);
    assert.deepEqual(d.states(), { extract: "success", load: "paused", report: "not_run" });
    assert.equal(d.run().instances[0].state, "finished");
    assert.equal(d.run().state, "paused");
    const r = d.op(d.engine.resume({ instanceId: inst, task: "load" }, T0 + 50, "cli"));
    assert.deepEqual(starts(r).map((s) => s.task), ["load"]);
    assert.equal(d.run().state, "running");
    d.drain();
    assert.equal(d.run().state, "success");
    assert.deepEqual(historyOf(d, "load").slice(0, 3), [
      ["not_run", "paused", "operator", "cli"],
      ["paused", "waiting", "operator", "cli"],
      ["waiting", "running", "scheduler"],
    ]);
    d.checkReplay();
  });

  test("pause a waiting task; resume before its upstream succeeded goes back to not_run", () => {
    const d = new Driver();
    d.create(testSpec(), workflow("daily_sales", { a: {}, b: {}, c: { upstream: ["a"] } }, { concurrency: 1, timezone: "UTC" }));
    const inst = d.instanceId();
    d.op(d.engine.pause({ instanceId: inst, task: "b" }, T0, "cli"));
    d.op(d.engine.pause({ instanceId: inst, task: "c" }, T0, "cli"));
    d.op(d.engine.resume({ instanceId: inst, task: "c" }, T0, "cli"));
    assert.deepEqual(d.states(), { a: "running", b: "paused", c: "not_run" });
    assert.deepEqual(starts(d.exit("a")).map((s) => s.task), ["c"], "b is paused; c takes the slot");
    d.exit("c");
    assert.equal(d.run().state, "paused");
    d.checkReplay();
  });

  test("a pending retry survives pause and resume", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow({ extract: { retries: 1, retryDelayMs: 60_000 } }));
    const inst = d.instanceId();
    d.exit("extract", { exitCode: 1 });
    d.op(d.engine.pause({ instanceId: inst, task: "extract" }, T0 + 1, "cli"));
    assert.deepEqual(starts(d.tick(T0 + 60_000)), [], "paused: the due retry does not start");
    const r = d.op(d.engine.resume({ instanceId: inst, task: "extract" }, T0 + 70_000, "cli"));
    assert.deepEqual(starts(r).map((s) => s.attempt), [2]);
    assert.equal(d.task("extract").attempts[1].cause, "retry");
    d.exit("extract", { exitCode: 1 });
    assert.equal(d.task("extract").state, "failed", "the retry budget was spent");
    d.checkReplay();
  });

  test("kill run kills running and waiting tasks and cancels queued instances; rerun failed brings it back in order", () => {
    const d = new Driver();
    d.create(backfillSpec("2026-11-01", "2026-11-03"), salesFlow());
    const k = d.op(d.engine.killRun({ runId: "run-1" }, T0 + 5, "cli"));
    assert.deepEqual(kills(k).map((e) => [e.task, e.instanceId]), [["extract", d.instanceId("run-1", 0)]]);
    assert.deepEqual(starts(k), []);
    assert.deepEqual(d.states("run-1", 0), { extract: "running", load: "not_run", report: "not_run" }, "being killed");
    for (let i = 1; i < 3; i++) assert.deepEqual(d.states("run-1", i), { extract: "not_run", load: "not_run", report: "not_run" });
    assert.deepEqual(d.run().instances.map((i) => i.state), ["active", "finished", "finished"], "queued instances are cancelled");
    assert.equal(d.run().state, "running");
    assert.match(refusal(d.engine.killRun({ runId: "run-1" }, T0 + 6), "nothing-to-do"), /^kill run needs a waiting or running task, or a workflow instance not started yet; run run-1 has none/);
    d.now = T0 + 7;
    const gone = d.exit("extract", { signal: "SIGTERM" }, d.instanceId("run-1", 0), 1);
    assert.deepEqual(starts(gone), [], "nothing starts after a kill run");
    assert.equal(d.states("run-1", 0).extract, "killed");
    assert.equal(d.run().state, "killed");

    const r = d.op(d.engine.rerunFailed({ runId: "run-1" }, T0 + 10, "vscode"));
    assert.deepEqual(starts(r).map((s) => [s.task, s.bizdate, s.attempt]), [["extract", "2026-11-01", 2]]);
    assert.deepEqual(d.states("run-1", 0), { extract: "running", load: "not_run", report: "not_run" });
    assert.deepEqual(d.run().instances.map((i) => i.state), ["active", "queued", "queued"]);
    d.drain();
    assert.equal(d.run().state, "success");
    assert.deepEqual(d.started.map((s) => s.bizdate), [
      "2026-11-01",
      "2026-11-01",
      "2026-11-01",
      "2026-11-01",
      "2026-11-02",
      "2026-11-02",
      "2026-11-02",
      "2026-11-03",
      "2026-11-03",
      "2026-11-03",
    ]);
    assert.equal(
      refusal(d.engine.rerunFailed({ runId: "run-1" }, d.now), "nothing-to-do"),
      "rerun failed needs a failed or killed task or a cancelled workflow instance; run run-1 has none (run state success)",
    );
    assert.equal(refusal(d.engine.killRun({ runId: "run-9" }, d.now), "no-run"), "no run `run-9`");
    d.checkReplay();
  });

  test("kill run and rerun failed on one workflow instance", () => {
    const d = new Driver();
    d.create(backfillSpec("2026-11-01", "2026-11-02", { parallelism: 2 }), salesFlow());
    const [i0, i1] = [d.instanceId("run-1", 0), d.instanceId("run-1", 1)];
    d.op(d.engine.killRun({ runId: "run-1", instanceId: i1 }, T0, "cli"));
    assert.deepEqual(d.states("run-1", 1), { extract: "running", load: "not_run", report: "not_run" });
    d.exit("extract", { signal: "SIGTERM" }, i1, 1);
    assert.deepEqual(d.states("run-1", 1), { extract: "killed", load: "not_run", report: "not_run" });
    assert.equal(d.states("run-1", 0).extract, "running");
    d.drain();
    assert.deepEqual(d.states("run-1", 0), { extract: "success", load: "success", report: "success" });
    assert.equal(d.run().state, "killed");
    assert.equal(
      refusal(d.engine.rerunFailed({ runId: "run-1", instanceId: i0 }, d.now), "nothing-to-do"),
      "rerun failed needs a failed or killed task or a cancelled workflow instance; the instance on 2026-11-01 has none (run state killed)",
    );
    assert.equal(refusal(d.engine.killRun({ runId: "run-1", instanceId: "run-1@x" }, d.now), "no-instance"), "run run-1 has no workflow instance `run-1@x`");
    d.op(d.engine.rerunFailed({ runId: "run-1", instanceId: i1 }, d.now, "cli"));
    d.drain();
    assert.equal(d.run().state, "success");
    d.checkReplay();
  });

  test("rerun failed waits for a rerun upstream reached through a task kept as success", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    const inst = d.instanceId();
    d.exit("extract");
    d.exit("load");
    d.exit("report", { exitCode: 1 });
    // extract is rerun and killed: now extract and report are "failed or killed", load stays success.
    d.op(d.engine.rerun({ instanceId: inst, task: "extract" }, d.now, "cli"));
    d.op(d.engine.kill({ instanceId: inst, task: "extract" }, d.now, "cli"));
    d.exit("extract", { signal: "SIGTERM" });
    const r = d.op(d.engine.rerunFailed({ runId: "run-1" }, d.now, "cli"));
    assert.deepEqual(starts(r).map((s) => s.task), ["extract"]);
    assert.deepEqual(d.task("report").after, ["extract"]);
    assert.deepEqual(starts(d.exit("extract")).map((s) => s.task), ["report"]);
    d.checkReplay();
  });

  test("operations in a finished instance queue it behind the run's parallelism", () => {
    const d = new Driver();
    d.create(backfillSpec("2026-11-01", "2026-11-03"), workflow("daily_sales", { t: {} }));
    const first = d.instanceId("run-1", 0);
    d.exit("t", { exitCode: 1 }, first);
    assert.equal(d.run().instances[1].state, "active");
    const r = d.op(d.engine.rerun({ instanceId: first, task: "t" }, d.now, "cli"));
    assert.deepEqual(starts(r), [], "2026-11-02 holds the only slot");
    assert.equal(d.run().instances[0].state, "queued");
    assert.deepEqual(starts(d.exit("t")).map((s) => s.bizdate), ["2026-11-01"], "asc order: 2026-11-01 before 2026-11-03");
    d.drain();
    assert.equal(d.run().state, "success");
    d.checkReplay();
  });

  test("refusals for unknown instances and tasks", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    assert.equal(refusal(d.engine.kill({ instanceId: "nope", task: "extract" }, T0), "no-instance"), "no workflow instance `nope`");
    assert.equal(
      refusal(d.engine.pause({ instanceId: d.instanceId(), task: "ghost" }, T0), "no-task"),
      "run run-1 did not select task `ghost`; it has `extract`, `load`, `report`",
    );
  });

  test("hourly instances are named with their cyctime in refusals", () => {
    const d = new Driver();
    d.create(backfillSpec("2026-11-19", "2026-11-19"), salesFlow({}, { schedule: "0 * * * *", timezone: "UTC" }));
    assert.equal(d.run().instances.length, 24);
    assert.equal(
      refusal(d.engine.setSuccess({ instanceId: d.instanceId("run-1", 0), task: "extract" }, T0), "wrong-state"),
      "set success needs state failed or killed; `extract` on 2026-11-19 (cyctime 2026-11-20T00:00:00+00:00) is running",
    );
  });
});

// ---------------------------------------------------------------------------------------
// Batch operations: one decision each
// ---------------------------------------------------------------------------------------

/** Counts the engine's method calls (every one, queries included). */
function counted(engine: Engine): { engine: Engine; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(engine, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.push(String(key));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { engine: proxy, calls };
}

/**
 * What the runner did before batch operations were one decision: the single-task
 * operation on every task instance in an allowed state (states read before the first
 * call), refusals skipped, the decisions merged.
 */
function oneByOne(engine: Engine, op: "setSuccess" | "pause" | "resume", runId: string, now: number, by: string): Decision {
  const decisions: Decision[] = [];
  for (const inst of engine.getRun(runId)!.instances) {
    for (const ti of inst.tasks.filter((t) => OPERATION_FROM[op].includes(t.state))) {
      const r = engine[op]({ instanceId: inst.id, task: ti.task }, now, by);
      if (r.ok) decisions.push(r);
    }
  }
  return { records: decisions.flatMap((d) => d.records), effects: decisions.flatMap((d) => d.effects) };
}

/** A decision without its run-state records and wake: what one decision states once, at its end. */
function steps(d: Decision) {
  return { records: d.records.filter((r) => r.type !== "run.state"), effects: d.effects.filter((e) => e.type !== "wake") };
}

describe("batch operations", () => {
  test("set success on a run with N failed instances: one call, one decision whose records cover all N", () => {
    const N = 5;
    const d = new Driver();
    d.create(backfillSpec("2026-11-01", "2026-11-05"), salesFlow());
    for (let i = 0; i < N; i++) d.exit("extract", { exitCode: 1 }, d.instanceId("run-1", i));
    assert.deepEqual(d.run().instances.map((_, i) => d.states("run-1", i).extract), Array(N).fill("failed"));
    assert.equal(d.run().state, "failed");

    const { engine, calls } = counted(d.engine);
    const decided = engine.operateRun("setSuccess", { runId: "run-1" }, d.now, "cli");
    assert.deepEqual(calls, ["operateRun"], "the engine is called once");
    const r = d.op(decided);
    const operator = r.records.filter((x) => x.type === "task.state" && x.cause === "operator");
    assert.deepEqual(
      operator.map((x) => x.type === "task.state" && [x.instanceId, x.task, x.from, x.to, x.by]),
      d.run().instances.map((i) => [i.id, "extract", "failed", "success", "cli"]),
      "one record per failed instance, all in this decision",
    );
    assert.deepEqual(
      r.records.filter((x) => x.type === "run.state").map((x) => x.type === "run.state" && [x.from, x.to]),
      [["failed", "running"]],
      "the run state changes once, at the end",
    );
    assert.ok(r.effects.filter((e) => e.type === "wake").length <= 1);
    assert.deepEqual(starts(r).map((s) => [s.task, s.bizdate]), [["load", "2026-11-01"]], "parallelism 1: the first instance goes on");
    d.drain();
    assert.equal(d.run().state, "success");
    d.checkReplay();
  });

  test("set success, pause and resume of a run make the records the single operations made one after the other", () => {
    const d = new Driver();
    d.create(backfillSpec("2026-11-01", "2026-11-04", { parallelism: 2 }), salesFlow({ load: { retries: 1, retryDelayMs: 60_000 } }));
    const compare = (op: "setSuccess" | "pause" | "resume") => {
      const twin = Engine.replay(JSON.parse(JSON.stringify(d.records)) as EngineRecord[]);
      const batch = d.op(d.engine.operateRun(op, { runId: "run-1" }, d.now, "cli"));
      assert.deepEqual(steps(batch), steps(oneByOne(twin, op, "run-1", d.now, "cli")), op);
      assert.deepEqual(d.engine.snapshot(), twin.snapshot(), op);
      return batch;
    };
    // Two instances active with extract running, two queued: every not_run task is paused.
    const paused = compare("pause");
    assert.equal(paused.records.filter((r) => r.type === "task.state" && r.to === "paused").length, 2 * 2 + 2 * 3);
    const resumed = compare("resume");
    assert.deepEqual(starts(resumed), []);
    d.exit("extract", { exitCode: 1 }, d.instanceId("run-1", 0));
    d.exit("extract", { exitCode: 0 }, d.instanceId("run-1", 1));
    d.exit("load", { exitCode: 1 }, d.instanceId("run-1", 1));
    d.exit("extract", { exitCode: 1 }, d.instanceId("run-1", 2));
    // One failed extract per finished instance, a load waiting for its retry on another.
    compare("pause");
    compare("resume");
    const succeeded = compare("setSuccess");
    assert.deepEqual(starts(succeeded), [], "a load waiting for its retry and a running extract hold both slots");
    assert.deepEqual(d.run().instances.map((i) => i.state), ["queued", "active", "queued", "active"]);
    d.drain();
    d.tick(d.now + 60_000);
    d.drain();
    assert.equal(d.run().state, "success");
    d.checkReplay();
  });

  test("kill and rerun of several instances (the hours of a bizdate): one decision, each instance in turn", () => {
    const d = new Driver();
    d.create(backfillSpec("2026-11-19", "2026-11-20", { parallelism: 2 }), salesFlow({}, { schedule: "0 */6 * * *", timezone: "UTC" }));
    const day = d.engine.findInstances("run-1", "2026-11-19");
    assert.equal(day.length, 4);
    const twin = Engine.replay(JSON.parse(JSON.stringify(d.records)) as EngineRecord[]);
    const killed = d.op(d.engine.operateRun("kill", { runId: "run-1", instanceIds: day }, d.now, "cli"));
    const singly = day.map((instanceId) => twin.killRun({ runId: "run-1", instanceId }, d.now, "cli")).filter((r): r is Extract<OperationResult, { ok: true }> => r.ok);
    assert.deepEqual(steps(killed), steps({ records: singly.flatMap((r) => r.records), effects: singly.flatMap((r) => r.effects) }));
    assert.deepEqual(kills(killed).map((k) => k.instanceId), day.slice(0, 2), "the two running extracts are being killed");
    assert.deepEqual(d.run().instances.map((i) => i.state), ["active", "active", "finished", "finished", "queued", "queued", "queued", "queued"]);
    for (const id of day.slice(0, 2)) d.exit("extract", { signal: "SIGTERM" }, id, 1);
    d.drain();
    const rerun = d.op(d.engine.operateRun("rerun", { runId: "run-1", instanceIds: day }, d.now, "cli"));
    assert.equal(rerun.records.filter((r) => r.type === "task.state" && r.cause === "operator").length, 2, "the two killed extracts");
    assert.equal(rerun.records.filter((r) => r.type === "instance.state" && r.from === "finished" && r.to === "queued").length, 4);
    d.drain();
    assert.equal(d.run().state, "success");
    d.checkReplay();
  });

  test("the runner's batch set-success is one engine decision and one journal batch; its answer counts every instance", async () => {
    const N = 5;
    const d = new Driver();
    d.create(backfillSpec("2026-11-01", "2026-11-05"), salesFlow());
    for (let i = 0; i < N; i++) d.exit("extract", { exitCode: 1 }, d.instanceId("run-1", i));
    const { engine, calls } = counted(d.engine);
    // The runner without its journal, processes or socket: what `task.operate` calls.
    const committed: Decision[] = [];
    const runner = Object.create(Runner.prototype) as Runner;
    Object.assign(runner, { engine, commit: async (decision: Decision) => void committed.push(decision) });
    const answer = await runner.operate({ run: "run-1", op: "set-success", by: "cli" });
    const queries = new Set(["hasRun", "listRuns", "getRun", "viewRun", "viewInstance", "findInstances"]);
    assert.deepEqual(calls.filter((c) => !queries.has(c)), ["operateRun"], "one engine decision");
    assert.equal(committed.length, 1, "one journal batch");
    assert.equal(committed[0].records.filter((r) => r.type === "task.state" && r.cause === "operator").length, N);
    assert.deepEqual(answer, {
      runId: "run-1",
      changed: d.run().instances.map((i) => `extract on ${i.bizdate}: failed → success`),
      total: N,
      counts: { "failed → success": N },
    });
    await assert.rejects(runner.operate({ run: "run-1", op: "resume", date: "2026-11-02" }), { code: "nothing-to-do", message: "nothing to resume in run-1 on 2026-11-02: no task instance is paused" });
    await assert.rejects(runner.operate({ run: "run-1", op: "rerun", date: "2026-11-02" }), {
      code: "nothing-to-do",
      message: "rerun failed needs a failed or killed task or a cancelled workflow instance; the instance on 2026-11-02 has none (run state running)",
    });
    d.take(committed[0]);
    d.drain();
    assert.equal(d.run().state, "success");
    d.checkReplay();
  });

  test("refusals: nothing to do, or a scope that names nothing; nothing changes", () => {
    const d = new Driver();
    d.create(backfillSpec("2026-11-01", "2026-11-02"), salesFlow());
    const [i0, i1] = [d.instanceId("run-1", 0), d.instanceId("run-1", 1)];
    const before = d.engine.snapshot();
    assert.equal(
      refusal(d.engine.operateRun("resume", { runId: "run-1" }, d.now), "nothing-to-do"),
      "resume needs a task instance in state paused; run run-1 has none (run state running)",
    );
    assert.equal(
      refusal(d.engine.operateRun("setSuccess", { runId: "run-1", instanceIds: [i0] }, d.now), "nothing-to-do"),
      "set success needs a task instance in state failed or killed; the instance on 2026-11-01 has none (run state running)",
    );
    assert.equal(
      refusal(d.engine.operateRun("setSuccess", { runId: "run-1", instanceIds: [i0, i1] }, d.now), "nothing-to-do"),
      "set success needs a task instance in state failed or killed; the 2 workflow instances asked for have none (run state running)",
    );
    assert.equal(
      refusal(d.engine.operateRun("rerun", { runId: "run-1", instanceIds: [i1, i0] }, d.now), "nothing-to-do"),
      "rerun failed needs a failed or killed task or a cancelled workflow instance; the instance on 2026-11-02 has none (run state running)",
      "every instance refused: the first one's refusal",
    );
    assert.equal(refusal(d.engine.operateRun("pause", { runId: "run-9" }, d.now), "no-run"), "no run `run-9`");
    assert.equal(refusal(d.engine.operateRun("kill", { runId: "run-1", instanceIds: [i0, "run-1@x"] }, d.now), "no-instance"), "run run-1 has no workflow instance `run-1@x`");
    assert.deepEqual(d.engine.snapshot(), before);
  });
});

// ---------------------------------------------------------------------------------------
// Stale reports, recovery, replay
// ---------------------------------------------------------------------------------------

describe("exit reports, recovery and replay", () => {
  test("reports for ended or unknown attempts change nothing", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    const inst = d.instanceId();
    d.exit("extract");
    const dup = d.engine.onAttemptExit(inst, "extract", 1, { exitCode: 1 }, d.now);
    assert.deepEqual(dup, { ok: true, records: [], effects: [] });
    assert.equal(d.task("extract").state, "success");
    assert.equal(refusal(d.engine.onAttemptExit(inst, "extract", 5, { exitCode: 0 }, d.now), "no-log"), "`extract` on 2026-11-19 has no attempt 5; it has 1");
    assert.equal(refusal(d.engine.onAttemptExit("nope", "extract", 1, { exitCode: 0 }, d.now), "no-instance"), "no workflow instance `nope`");
    d.checkReplay();
  });

  test("the exit of an old attempt does not touch the current one", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    const inst = d.instanceId();
    d.op(d.engine.kill({ instanceId: inst, task: "extract" }, T0, "cli"));
    d.exit("extract", { signal: "SIGTERM" }, inst, 1);
    d.op(d.engine.rerun({ instanceId: inst, task: "extract" }, T0 + 1, "cli"));
    assert.equal(d.live.size, 1);
    d.now = T0 + 2;
    // A duplicate report of attempt 1 (ended already) changes nothing.
    assert.deepEqual(d.engine.onAttemptExit(inst, "extract", 1, { exitCode: 0 }, d.now), { ok: true, records: [], effects: [] });
    assert.equal(d.task("extract").state, "running");
    assert.equal(d.task("extract").attempts[1].endedAt, undefined);
    assert.equal(d.states().load, "not_run");
    d.exit("extract", { exitCode: 0 }, inst, 2);
    assert.equal(d.states().load, "running");
    d.checkReplay();
  });

  test("recover after a crash: lost attempts run again as failover attempts that keep their retry count; killed ones are closed; adopted ones are left alone", () => {
    const d = new Driver();
    const wf = workflow("daily_sales", { a: { retries: 1 }, b: {}, c: {}, e: {} });
    d.create(testSpec(), wf);
    const inst = d.instanceId();
    d.op(d.engine.kill({ instanceId: inst, task: "c" }, T0 + 1, "cli"));
    // The runner dies here (kill -9); a new one replays the journal.
    const restarted = Engine.replay(JSON.parse(JSON.stringify(d.records)) as EngineRecord[]);
    assert.deepEqual(restarted.snapshot(), d.engine.snapshot());
    const later = T0 + 60_000;
    const rec = restarted.recover(later, new Set([`${inst}/e/1`]));
    const after = restarted.getInstance(inst)!;
    const byTask = Object.fromEntries(after.tasks.map((t) => [t.task, t]));
    assert.equal(byTask.a.attempts[0].error, RECOVERY_ERROR);
    assert.equal(byTask.b.attempts[0].error, RECOVERY_ERROR);
    assert.equal(byTask.c.attempts[0].error, RECOVERY_KILLED_ERROR);
    assert.equal(byTask.e.attempts[0].endedAt, undefined, "adopted: its exit comes later");
    assert.equal(byTask.e.state, "running");
    assert.deepEqual(starts(rec).map((s) => [s.task, s.attempt]), [["a", 2], ["b", 2]], "both run again, no retry needed");
    assert.deepEqual(byTask.a.attempts.map((x) => [x.cause, x.retry]), [["scheduler", 0], ["recovery", 0]], "a keeps its retry");
    assert.equal(byTask.c.state, "killed");
    assert.deepEqual(byTask.b.history.slice(2).map((h) => [h.from, h.to, h.cause]), [
      ["running", "waiting", "recovery"],
      ["waiting", "running", "recovery"],
    ]);
    // The old runner's child reports late: the attempt is closed already.
    assert.deepEqual(restarted.onAttemptExit(inst, "b", 1, { exitCode: 0 }, later + 1), { ok: true, records: [], effects: [] });
    // a's failover attempt fails: its one retry is still there.
    const failed = restarted.onAttemptExit(inst, "a", 2, { exitCode: 1 }, later + 2);
    assert.ok(failed.ok);
    assert.deepEqual(restarted.getInstance(inst)!.tasks.find((t) => t.task === "a")!.attempts.map((x) => [x.cause, x.retry]), [["scheduler", 0], ["recovery", 0], ["retry", 1]]);
    const journal = [...d.records, ...rec.records, ...failed.records];
    assert.deepEqual(Engine.replay(JSON.parse(JSON.stringify(journal)) as EngineRecord[]).snapshot(), restarted.snapshot());
  });

  test("recover: an attempt being killed when the runner died ends killed, one past its timeout fails as timed out", () => {
    const d = new Driver();
    d.create(testSpec(), workflow("daily_sales", { a: { retries: 2 }, b: { timeoutMs: 1000, retries: 0 } }));
    const inst = d.instanceId();
    d.op(d.engine.kill({ instanceId: inst, task: "a" }, T0 + 1, "cli"));
    d.tick(T0 + 2000);
    const restarted = Engine.replay(JSON.parse(JSON.stringify(d.records)) as EngineRecord[]);
    const rec = restarted.recover(T0 + 9000);
    assert.deepEqual(starts(rec), []);
    const byTask = Object.fromEntries(restarted.getInstance(inst)!.tasks.map((t) => [t.task, t]));
    assert.equal(byTask.a.state, "killed");
    assert.deepEqual(byTask.a.history.at(-1), { at: T0 + 9000, from: "running", to: "killed", cause: "operator", by: "cli", attempt: 1 });
    assert.equal(byTask.b.state, "failed");
    assert.equal(byTask.b.history.at(-1)!.cause, "timeout");
  });

  test("an attempt interrupted by runner stop goes back to waiting, starts nothing while halted, and runs again as a failover attempt", () => {
    const d = new Driver();
    d.create(testSpec(), workflow("daily_sales", { a: { retries: 1 } }));
    const inst = d.instanceId();
    d.engine.halt();
    const r = d.exit("a", { signal: "SIGTERM", interrupted: true } as never);
    assert.deepEqual(starts(r), [], "halted: no retry, no failover now");
    assert.equal(d.task("a").state, "waiting");
    assert.match(d.task("a").attempts[0].error ?? "", /runner stop/);
    assert.deepEqual(r.records.filter((x) => x.type === "attempt.started"), [], "nothing journaled that did not happen");
    const next = Engine.replay(JSON.parse(JSON.stringify(d.records)) as EngineRecord[]);
    const rec = next.recover(d.now + 1);
    assert.deepEqual(starts(rec).map((s) => s.attempt), [2]);
    assert.deepEqual(next.getInstance(inst)!.tasks[0].attempts.map((x) => [x.cause, x.retry]), [["scheduler", 0], ["recovery", 0]]);
  });

  test("a replayed engine makes the same next decisions as the live one", () => {
    const d = new Driver();
    d.create(backfillSpec("2026-11-01", "2026-11-04", { parallelism: 2 }), salesFlow({ load: { retries: 1, retryDelayMs: 1000, timeoutMs: 5000 } }));
    d.drain();
    d.op(d.engine.rerunDownstream({ instanceId: d.instanceId("run-1", 1), task: "extract" }, "all", d.now, "cli"));
    const twin = Engine.replay(JSON.parse(JSON.stringify(d.records)) as EngineRecord[]);
    const inst = d.instanceId("run-1", 1);
    const live = d.engine.onAttemptExit(inst, "extract", 2, { exitCode: 0 }, d.now + 10);
    const replayed = twin.onAttemptExit(inst, "extract", 2, { exitCode: 0 }, d.now + 10);
    assert.deepEqual(replayed, live);
    assert.deepEqual(twin.tick(d.now + 5010), d.engine.tick(d.now + 5010));
    assert.deepEqual(twin.snapshot(), d.engine.snapshot());
  });

  test("apply refuses a record that does not fit the state", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    d.exit("extract");
    const start = d.records.findIndex((r) => r.type === "task.state" && r.to === "success");
    const broken = [...d.records.slice(0, start + 1), d.records[start]];
    assert.throws(() => Engine.replay(broken), /journal out of order: expected task extract of run-1@20261120T000000\+0000 in state running, got success/);
  });

  test("queries return copies", () => {
    const d = new Driver();
    d.create(testSpec(), salesFlow());
    d.run().instances[0].tasks[0].state = "success";
    assert.equal(d.states().extract, "running");
    assert.deepEqual(d.engine.findInstances("run-1", "2026-11-19"), [d.instanceId()]);
    assert.equal(d.engine.getRun("nope"), undefined);
  });
});

// ---------------------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------------------

describe("scale", () => {
  // Complexity is asserted on counts of work (`schedulerWork.steps`: instances, queued
  // positions, tasks and timers the scheduler looked at), which do not depend on the
  // machine; how fast it is, is in `npm run bench` / BENCHMARKS.md.

  test("a 1,000-instance backfill runs to completion through the engine, each decision costing what it touches", (t) => {
    const d = new Driver(false);
    d.create(backfillSpec("2024-01-01", "2026-09-26", { parallelism: 4 }), workflow("daily_sales", { t: {} }, { schedule: "30 2 * * *", timezone: "Europe/Berlin" }));
    assert.equal(d.run().instances.length, 1000);
    const before = schedulerWork.steps;
    d.drain();
    const steps = schedulerWork.steps - before;
    assert.equal(d.run().state, "success");
    assert.equal(d.started.length, 1000);
    t.diagnostic(`1,000 instances driven to completion in ${steps} scheduler steps, ${d.records.length} records`);
    // 7 per exit (the instance, its slot, its waiting task, a queued position, the next instance's task, ...):
    // a decision that looked at every instance would take ~1,000 per exit.
    assert.ok(steps <= 10 * 1000, `driving 1,000 instances took ${steps} scheduler steps`);
    assert.deepEqual(Engine.replay(d.records).snapshot(), d.engine.snapshot());
  });

  test("10,000 task instances (100 instances × 100 tasks) with dependencies", (t) => {
    const d = new Driver(false);
    const tasks: Record<string, TaskOptions> = {};
    for (let i = 0; i < 100; i++) tasks[`t${i}`] = { upstream: i === 0 ? [] : [`t${Math.floor((i - 1) / 3)}`] };
    const before = schedulerWork.steps;
    d.create(backfillSpec("2026-01-01", "2026-04-10", { parallelism: 4 }), workflow("daily_sales", tasks, { concurrency: 4, timezone: "UTC" }));
    assert.equal(d.run().instances.length, 100);
    let maxLive = 0;
    d.drain(() => (maxLive = Math.max(maxLive, d.live.size)));
    const steps = schedulerWork.steps - before;
    t.diagnostic(`10,000 task instances driven to completion in ${steps} scheduler steps (${d.records.length} records)`);
    assert.equal(d.run().state, "success");
    assert.ok(maxLive <= 16, `at most parallelism × concurrency = 16 running, got ${maxLive}`);
    // About 5 per task instance; scanning the instance's 100 tasks, or the run's 100
    // instances, at each exit would be 100 or more per task instance.
    assert.ok(steps <= 10 * 10_000, `10,000 task instances took ${steps} scheduler steps`);
    d.checkReplay();
  });

  test("one instance of 10,000 tasks, all upstream of one (fan-in): readiness is O(1)", (t) => {
    const d = new Driver(false);
    const tasks: Record<string, TaskOptions> = {};
    for (let i = 0; i < 10_000; i++) tasks[`t${i}`] = {};
    tasks.sink = { upstream: Object.keys(tasks) };
    // Every look-up of a task instance by id goes through the instance's TaskTable: a readiness
    // check that read the sink's upstreams would make 10,000 of them at each of 10,000 exits.
    const get = TaskTable.prototype.get;
    let lookups = 0;
    TaskTable.prototype.get = function (this: TaskTable, task: string) {
      lookups++;
      return get.call(this, task);
    };
    const before = schedulerWork.steps;
    try {
      d.create(testSpec(), workflow("daily_sales", tasks, { concurrency: 8, timezone: "UTC" }));
      d.drain();
    } finally {
      TaskTable.prototype.get = get;
    }
    const steps = schedulerWork.steps - before;
    t.diagnostic(`10,001 tasks in one instance driven to completion: ${steps} scheduler steps, ${lookups} task look-ups`);
    assert.equal(d.run().state, "success");
    assert.equal(d.started.at(-1)?.task, "sink");
    // About 8 look-ups and 5 steps per task (its start, its exit, the sink's count): not 10,000.
    assert.ok(lookups <= 16 * 10_001, `${lookups} task look-ups for 10,001 tasks`);
    assert.ok(steps <= 10 * 10_001, `${steps} scheduler steps for 10,001 tasks`);
    assert.deepEqual(d.engine.verifyIndexes(), []);
  });
});
