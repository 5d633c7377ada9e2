/**
 * The executor (runner/exec/) with real processes: shell tasks (environment, exit codes,
 * logs, killing whole trees, SIGKILL after the grace) and TS tasks in the worker pool
 * (ctx, ctx.log and console lines, failures, workspace packages, kills, worker reuse).
 * "Nothing is left" is checked with the OS: marked processes in /proc and the process group.
 *
 * Needs `npm run build` first (dist/worker.js, dist/sdk.js).
 * Run: `node --import tsx --test test/runner/executor.test.ts`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import type { AttemptExit, AttemptHandle, StartEffect } from "../../protocol/runner";
import { bundlePath, bundleWorkflow } from "../../runner/exec/bundle";
import { Executor, type ExecutorOptions } from "../../runner/exec/executor";
import type { KindFactory } from "../../runner/exec/kinds";
import { WorkerPool } from "../../runner/exec/pool";
import { findMarkedProcesses, processGroupAlive } from "../../runner/exec/process-tree";
import { attemptMarker } from "../../runner/exec/shell";
import { LogStore } from "../../runner/logs";
import { until } from "./fixture";

const REPO = resolve(__dirname, "../..");
const WORKER = join(REPO, "dist/worker.js");
const SDK = join(REPO, "dist/sdk.js");
const GRACE_MS = 300;
const LINE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2} (stdout|stderr|system) (DEBUG|INFO|WARN|ERROR) (.*)$/;

interface Outcome {
  exit: AttemptExit;
  /** From onSpawn; undefined when nothing was spawned. */
  pid: number | undefined;
  /** `stream LEVEL message` per log line. */
  entries: string[];
  marker: string;
  ms: number;
}

/** An executor over a temp workspace, with each start's outcome as a promise. */
class Harness {
  readonly logs: LogStore;
  readonly executor: Executor;
  private readonly waiting = new Map<string, (o: Outcome) => void>();
  private readonly pids = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();
  private readonly violations: string[] = [];

  constructor(
    readonly root: string,
    opts: Partial<ExecutorOptions> = {},
    stateDir = join(root, ".tideflow"),
  ) {
    this.logs = new LogStore(stateDir);
    this.executor = new Executor({
      root,
      stateDir,
      logs: this.logs,
      workerPath: WORKER,
      killGraceMs: GRACE_MS,
      maxWorkers: 4,
      ...opts,
      onSpawn: (effect, { pid }) => {
        const id = attemptMarker(effect);
        if (this.pids.has(id)) this.violations.push(`onSpawn twice for ${id}`);
        this.pids.set(id, pid);
      },
      onExit: (effect, exit) => {
        const id = attemptMarker(effect);
        const done = this.waiting.get(id);
        if (!done) {
          this.violations.push(`onExit without a pending start (or twice) for ${id}`);
          return;
        }
        this.waiting.delete(id);
        // onExit comes after the log is closed: the end line must already be in the file.
        const path = this.logs.pathFor(effect);
        const entries = existsSync(path)
          ? readFileSync(path, "utf8")
              .split("\n")
              .filter(Boolean)
              .map((line) => {
                const m = LINE.exec(line);
                assert.ok(m, `not a log line: ${JSON.stringify(line)}`);
                return `${m[1]} ${m[2]} ${m[3]}`;
              })
          : [];
        done({ exit, pid: this.pids.get(id), entries, marker: id, ms: Date.now() - this.startedAt.get(id)! });
      },
    });
  }

  start(effect: StartEffect): Promise<Outcome> {
    const id = attemptMarker(effect);
    const outcome = new Promise<Outcome>((resolveOutcome) => this.waiting.set(id, resolveOutcome));
    this.startedAt.set(id, Date.now());
    this.executor.start(effect);
    return outcome;
  }

  /** Resolves with the first log line of the attempt whose message matches. */
  line(effect: StartEffect, pattern: RegExp): Promise<string> {
    return new Promise((resolveLine) => {
      const off = this.logs.subscribe(effect, (_key, text) => {
        const hit = text.split("\n").find((l) => pattern.test(LINE.exec(l)?.[3] ?? ""));
        if (hit) {
          off();
          resolveLine(hit);
        }
      });
    });
  }

  kill(effect: StartEffect, reason: "operator" | "timeout" = "operator"): void {
    this.executor.kill({ type: "kill", runId: effect.runId, instanceId: effect.instanceId, task: effect.task, attempt: effect.attempt, reason });
  }

  async close(): Promise<void> {
    await this.executor.close();
    assert.deepEqual(this.violations, []);
    assert.equal(this.waiting.size, 0, "starts without onExit");
  }
}

// Markers are global to the machine (/proc): a test process running this file beside
// another one must not see the other's processes.
const INSTANCE = `run-1@${process.pid}`;
let serial = 0;
function effect(over: Partial<StartEffect> = {}): StartEffect {
  serial++;
  return {
    type: "start",
    runId: "run-1",
    instanceId: INSTANCE,
    workflow: "daily_sales",
    file: "daily-sales.flow.ts",
    task: `task_${serial}`,
    kind: "shell",
    command: "true",
    attempt: 1,
    bizdate: "2026-11-19",
    cyctime: "2026-11-20T02:30:00+08:00",
    params: {},
    ...over,
  };
}

/** Nothing of the attempt runs any more, by the OS's account. */
function assertNothingLeft(o: Outcome): void {
  assert.deepEqual(findMarkedProcesses(o.marker), [], `processes marked ${o.marker} still alive`);
  assert.ok(o.pid !== undefined);
  assert.equal(processGroupAlive(o.pid), false, `process group ${o.pid} still alive`);
}

let root: string;
let h: Harness;

before(async () => {
  root = realpathSync(await mkdtemp(join(tmpdir(), "tideflow-exec-")));
  h = new Harness(root);
});

after(async () => {
  try {
    await h.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

describe("shell tasks", () => {
  test("environment: dates, workflow, task, attempt, params, marker; cwd is the workspace root", async () => {
    const e = effect({
      attempt: 3,
      params: { region: "east", "page-size": "500", QUOTE: "it's \"quoted\"" },
      command: 'echo "$BIZDATE|$BIZDATE_ISO|$CYCTIME|$TIDEFLOW_WORKFLOW|$TIDEFLOW_TASK|$TIDEFLOW_ATTEMPT"; echo "$PARAM_REGION|$PARAM_PAGE_SIZE|$PARAM_QUOTE"; echo "$TIDEFLOW_ATTEMPT_ID"; pwd -P',
    });
    const o = await h.start(e);
    assert.deepEqual(o.exit, { exitCode: 0 });
    const out = o.entries.filter((l) => l.startsWith("stdout "));
    assert.deepEqual(out, [
      `stdout INFO 20261119|2026-11-19|2026-11-20T02:30:00+08:00|daily_sales|${e.task}|3`,
      `stdout INFO east|500|it's "quoted"`,
      `stdout INFO ${INSTANCE}/${e.task}/3`,
      `stdout INFO ${root}`,
    ]);
  });

  test("exit codes", async () => {
    const [ok, three, term] = await Promise.all([
      h.start(effect({ command: "exit 0" })),
      h.start(effect({ command: "echo failing >&2; exit 3" })),
      h.start(effect({ command: "kill -TERM $$" })),
    ]);
    assert.deepEqual(ok.exit, { exitCode: 0 });
    assert.deepEqual(three.exit, { exitCode: 3 });
    assert.match(three.entries.at(-1)!, /^system ERROR attempt 1 failed: exit code 3 after (\d+ ms|[\d.]+ s)$/);
    assert.deepEqual(term.exit, { signal: "SIGTERM" });
  });

  test("log: stdout INFO, stderr WARN, partial last line, system lines for start and end", async () => {
    const e = effect({ command: "echo out; echo err >&2; printf 'a\\r\\nb'" });
    const o = await h.start(e);
    assert.ok(o.pid !== undefined);
    assert.equal(o.entries[0], `system INFO attempt 1 started (pid ${o.pid}): bash -c ${e.command}`);
    assert.deepEqual(o.entries.slice(1, -1).sort(), ["stderr WARN err", "stdout INFO a", "stdout INFO b", "stdout INFO out"]);
    assert.match(o.entries.at(-1)!, /^system INFO attempt 1 finished: exit code 0 after (\d+ ms|[\d.]+ s)$/);
  });

  test("kill ends the whole tree: a backgrounded child and a grandchild", async () => {
    const e = effect({ command: "sleep 300 & bash -c 'sleep 300; true'; wait" });
    const running = h.start(e);
    const marker = attemptMarker(e);
    // bash, the background sleep, the inner bash and its sleep.
    await until("the attempt's 4 processes to start", () => findMarkedProcesses(marker).length >= 4, 30_000);
    assert.equal(findMarkedProcesses(marker).length, 4);
    h.kill(e);
    const o = await running;
    assert.deepEqual(o.exit, { signal: "SIGTERM" });
    assert.ok(o.entries.includes(`system WARN kill requested (operator): SIGTERM to process group ${o.pid}, SIGKILL after ${GRACE_MS}ms`), o.entries.join("\n"));
    assert.match(o.entries.at(-1)!, /^system WARN attempt 1 ended: killed by SIGTERM after (\d+ ms|[\d.]+ s)$/);
    assertNothingLeft(o);
    // A kill for an attempt that has ended is a no-op.
    h.kill(e);
  });

  test("a child that ignores SIGTERM is SIGKILLed after the grace period", async () => {
    const e = effect({ command: "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done" });
    const running = h.start(e);
    await h.line(e, /^ready$/);
    const killedAt = Date.now();
    h.kill(e, "timeout");
    const o = await running;
    assert.deepEqual(o.exit, { signal: "SIGKILL" });
    // A lower bound, which a slow machine only makes easier to meet: the executor reads
    // the same clock after this line to set its SIGKILL time, kill + grace. The 20 ms are
    // for the coarse clock, not for load.
    assert.ok(Date.now() - killedAt >= GRACE_MS - 20, "SIGKILL before the grace period ended");
    assert.ok(o.entries.includes("stdout INFO got TERM"), o.entries.join("\n"));
    assert.ok(o.entries.some((l) => l.startsWith("system WARN kill requested (timeout)")));
    assert.ok(o.entries.includes(`system WARN still running ${GRACE_MS}ms after SIGTERM: SIGKILL to process group ${o.pid}`));
    assertNothingLeft(o);
  });

  test("processes left behind by a task that exited are ended, and its exit code kept", async () => {
    const o = await h.start(effect({ command: "sleep 300 & echo leaving" }));
    assert.deepEqual(o.exit, { exitCode: 0 });
    assert.ok(o.entries.includes(`system WARN the main process exited but left processes in group ${o.pid}: ending them`));
    assertNothingLeft(o);
  });

  test("kill also ends processes that left the group (setsid) but carry the attempt's marker", async () => {
    const e = effect({ command: "setsid sleep 300 & sleep 300" });
    const running = h.start(e);
    const marker = attemptMarker(e);
    // Wait for the sleep that made a session of its own (pgid == its pid, not the attempt's).
    const escaped = (): number[] =>
      findMarkedProcesses(marker).filter((pid) => {
        const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
        return stat.includes("(sleep)") && Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pid;
      });
    await until("the setsid sleep to start", () => escaped().length > 0, 30_000);
    assert.equal(escaped().length, 1);
    h.kill(e);
    const o = await running;
    assert.deepEqual(o.exit, { signal: "SIGTERM" });
    assertNothingLeft(o);
  });

  test("an attempt ends when its process exits; a process that escaped its group (setsid) is ended too", async () => {
    // bash waits until the background child has left its group (its process group, field
    // 5 of /proc/<pid>/stat, is no longer bash's) before it exits: otherwise the child may
    // still be in the group, a leftover (the test above), which is a race, not this case.
    const e = effect({ command: 'setsid sleep 300 & c=$!; while [ "$(cut -d" " -f5 /proc/$c/stat)" = "$(cut -d" " -f5 /proc/$$/stat)" ]; do sleep 0.01; done; echo bye' });
    try {
      const o = await h.start(e);
      assert.deepEqual(o.exit, { exitCode: 0 });
      assert.ok(o.entries.includes("stdout INFO bye"));
      // Hang guard, not a speed test: the escaped sleep lives 300 s unless it is ended.
      const HANG_GUARD_MS = 120_000;
      assert.ok(o.ms < HANG_GUARD_MS, `took ${o.ms} ms: the attempt waited for the escaped sleep instead of ending it`);
      // Ended on a normal exit too: it carries the attempt's marker.
      assert.equal(findMarkedProcesses(o.marker).length, 0);
      assert.ok(o.entries.some((l) => /left 1 process\(es\) outside its group/.test(l)), o.entries.join("\n"));
    } finally {
      for (const pid of findMarkedProcesses(attemptMarker(e))) process.kill(pid, "SIGKILL");
    }
  });

  test("a spawn failure comes back through onExit with an error and a log line", async () => {
    // The state lives elsewhere: the working directory alone is missing.
    const missing = new Harness(join(root, "no-such-dir"), {}, join(root, ".tideflow-of-missing"));
    try {
      const o = await missing.start(effect());
      assert.equal(o.pid, undefined);
      assert.equal(o.exit.exitCode, undefined);
      assert.match(o.exit.error ?? "", /^could not start bash: .*ENOENT/);
      assert.match(o.entries.at(-1)!, /^system ERROR attempt 1 failed to start: could not start bash/);
    } finally {
      await missing.close();
    }
  });
});

const WORKFLOW = `
import { workflow, task } from "tideflow";
import { spawn } from "node:child_process";
import { shout } from "fakepkg";
import { twice } from "./lib/helpers";

export const info = task("info", async (ctx) => {
  ctx.log.info("ctx %s", JSON.stringify({ bizdate: ctx.bizdate, cyctime: ctx.cyctime, params: ctx.params, attempt: ctx.attempt, workflow: ctx.workflow, task: ctx.task }));
  ctx.log.debug("debug line");
  ctx.log.warn("warn line");
  ctx.log.error("error", 42, { k: "v" });
  console.log("console line");
  console.error("console err");
  process.stdout.write("partial ");
  process.stdout.write("line\\n");
  console.log("env", process.env.BIZDATE, process.env.PARAM_REGION, process.env.TIDEFLOW_ATTEMPT_ID);
  console.log(shout("pkg"), twice(21));
});
export const noop = task("noop", () => {});
export const boom = task("boom", async () => {
  throw new Error("boom: bad input");
});
export const asyncCrash = task("async_crash", () => {
  setTimeout(() => { throw new Error("thrown from a timer"); }, 1);
  return new Promise(() => {});
});
export const exits = task("exits", () => process.exit(7));
export const sleeper = task("sleeper", async (ctx) => {
  const child = spawn("sleep", ["300"], { stdio: "ignore" });
  console.log("spawned", child.pid, "aborted:", ctx.signal.aborted);
  await new Promise((r) => child.on("exit", r));
  console.log("sleep ended; aborted:", ctx.signal.aborted);
});
export const stubborn = task("stubborn", async () => {
  console.log("ignoring the signal");
  await new Promise(() => setInterval(() => {}, 1000));
});
export default workflow("tsflow", { tasks: [info, noop, boom, asyncCrash, exits, sleeper, stubborn] });
`;

describe("TS tasks", () => {
  const runId = "run-ts";
  // A fresh workflow instance per attempt, so that every attempt (marker) is unique.
  const ts = (task: string, over: Partial<StartEffect> = {}): StartEffect =>
    effect({ runId, instanceId: `${runId}@${process.pid}.${serial}`, workflow: "tsflow", kind: "task", command: undefined, task, ...over });

  before(async () => {
    await mkdir(join(root, "node_modules/fakepkg"), { recursive: true });
    await writeFile(join(root, "node_modules/fakepkg/package.json"), JSON.stringify({ name: "fakepkg", version: "1.0.0", main: "index.js" }));
    await writeFile(join(root, "node_modules/fakepkg/index.js"), 'exports.shout = (s) => s.toUpperCase() + "!";\n');
    await mkdir(join(root, "lib"), { recursive: true });
    await writeFile(join(root, "lib/helpers.ts"), "export const twice = (n: number): number => n * 2;\n");
    await writeFile(join(root, "tsflow.flow.ts"), WORKFLOW);
    const r = await bundleWorkflow("tsflow.flow.ts", bundlePath(join(root, ".tideflow"), runId), { root, sdkPath: SDK });
    assert.deepEqual(r, { ok: true });
  });

  test("bundling errors are one readable message with file:line:column", async () => {
    await writeFile(join(root, "bad.flow.ts"), 'import { workflow } from "tideflow";\nexport default workflow("bad", { tasks: [ });\n');
    const r = await bundleWorkflow(join(root, "bad.flow.ts"), join(root, ".tideflow/bundles/bad.cjs"), { root, sdkPath: SDK });
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.error : "", /^bad\.flow\.ts:2:\d+: /);
    assert.ok(!existsSync(join(root, ".tideflow/bundles/bad.cjs")));
    const missing = await bundleWorkflow("nope.flow.ts", join(root, ".tideflow/bundles/nope.cjs"), { root, sdkPath: SDK });
    assert.equal(missing.ok, false);
  });

  test("ctx fields, ctx.log levels, console output, env, workspace packages and relative imports", async () => {
    const e = ts("info", { attempt: 2, params: { region: "east" } });
    const o = await h.start(e);
    assert.deepEqual(o.exit, { exitCode: 0 }, o.entries.join("\n"));
    const ctx = { bizdate: "2026-11-19", cyctime: "2026-11-20T02:30:00+08:00", params: { region: "east" }, attempt: 2, workflow: "tsflow", task: "info" };
    assert.match(o.entries[0], new RegExp(`^system INFO attempt 2 started \\(pid ${o.pid}\\): task info of workflow tsflow in a task worker`));
    assert.deepEqual(o.entries.slice(1, -1), [
      `stdout INFO ctx ${JSON.stringify(ctx)}`,
      "stdout DEBUG debug line",
      "stderr WARN warn line",
      "stderr ERROR error 42 { k: 'v' }",
      "stdout INFO console line",
      "stderr WARN console err",
      "stdout INFO partial line",
      `stdout INFO env 20261119 east ${e.instanceId}/info/2`,
      "stdout INFO PKG! 42",
    ]);
    assert.match(o.entries.at(-1)!, /^system INFO attempt 2 finished: exit code 0 after (\d+ ms|[\d.]+ s)$/);
  });

  test("a worker is reused for the next task, and its environment is restored", async () => {
    const first = await h.start(ts("noop"));
    const e = ts("info", { params: {} });
    const second = await h.start(e);
    assert.deepEqual(first.exit, { exitCode: 0 });
    assert.deepEqual(second.exit, { exitCode: 0 });
    assert.equal(second.pid, first.pid);
    // PARAM_REGION of the earlier info run is gone.
    assert.ok(second.entries.includes(`stdout INFO env 20261119 undefined ${e.instanceId}/info/1`), second.entries.join("\n"));
  });

  test("a task that throws fails with its message; the stack is in the log", async () => {
    const o = await h.start(ts("boom"));
    assert.deepEqual(o.exit, { exitCode: 1, error: "boom: bad input" });
    assert.ok(o.entries.includes("stderr ERROR Error: boom: bad input"), o.entries.join("\n"));
    // Source maps: the stack points into the workflow file, and stops at the worker's own frames.
    assert.ok(o.entries.some((l) => /^stderr ERROR +at .*tsflow\.flow\.ts:\d+:\d+/.test(l)), o.entries.join("\n"));
    assert.ok(!o.entries.some((l) => l.includes("worker.js")), o.entries.join("\n"));
    assert.match(o.entries.at(-1)!, /^system ERROR attempt 1 failed: exit code 1 after (\d+ ms|[\d.]+ s): boom: bad input$/);
  });

  test("an uncaught exception fails the task, and its worker is not reused", async () => {
    const o = await h.start(ts("async_crash"));
    assert.deepEqual(o.exit, { exitCode: 1, error: "thrown from a timer" });
    const next = await h.start(ts("noop"));
    assert.deepEqual(next.exit, { exitCode: 0 });
    assert.notEqual(next.pid, o.pid);
  });

  test("a worker that exits mid-task reports its exit code", async () => {
    const o = await h.start(ts("exits"));
    assert.deepEqual(o.exit, { exitCode: 7 });
    assertNothingLeft(o);
  });

  test("kill ends the worker and the task's children; ctx.signal is aborted", async () => {
    const e = ts("sleeper");
    const running = h.start(e);
    await h.line(e, /^spawned \d+ aborted: false$/);
    assert.equal(findMarkedProcesses(attemptMarker(e)).length, 1, "the sleep child carries the marker");
    h.kill(e);
    const o = await running;
    assert.deepEqual(o.exit, { signal: "SIGTERM" });
    assertNothingLeft(o);
    const next = await h.start(ts("noop"));
    assert.notEqual(next.pid, o.pid, "a killed worker was reused");
  });

  test("a task that ignores the abort is SIGKILLed after the grace period", async () => {
    const e = ts("stubborn");
    const running = h.start(e);
    await h.line(e, /^ignoring the signal$/);
    h.kill(e, "timeout");
    const o = await running;
    assert.deepEqual(o.exit, { signal: "SIGKILL" });
    assert.ok(o.entries.some((l) => l.startsWith("system WARN still running")), o.entries.join("\n"));
    assertNothingLeft(o);
  });

  test("a task whose run has no bundle fails with an error, without an exit code", async () => {
    const o = await h.start(ts("noop", { runId: "run-without-bundle" }));
    assert.equal(o.exit.exitCode, undefined);
    assert.match(o.exit.error ?? "", /run-without-bundle\.cjs does not exist/);
    const unknown = await h.start(ts("no_such_task"));
    assert.match(unknown.exit.error ?? "", /workflow tsflow has no task no_such_task/);
  });
});

const RUNNER_STUB = `
import { join } from "node:path";
import { Executor } from ${JSON.stringify(join(REPO, "runner/exec/executor"))};
import { LogStore } from ${JSON.stringify(join(REPO, "runner/logs"))};
const [root, workerPath, effectJson] = process.argv.slice(2);
const effect = JSON.parse(effectJson);
const logs = new LogStore(join(root, ".tideflow"));
const executor = new Executor({
  root, stateDir: join(root, ".tideflow"), logs, workerPath, killGraceMs: 300,
  onSpawn: (_e, handle) => process.stdout.write("worker " + handle.pid + "\\n"),
  onExit: () => {},
});
logs.subscribe(effect, (_k, text) => {
  if (text.includes("spawned")) process.stdout.write("ready\\n");
});
executor.start(effect);
`;

describe("worker pool", () => {
  /** Runs jobs on `pool` one after another; their worker pids and exits. */
  async function runJobs(pool: WorkerPool, tasks: string[]): Promise<{ pid?: number; exit: AttemptExit }[]> {
    const out: { pid?: number; exit: AttemptExit }[] = [];
    for (const task of tasks) {
      out.push(
        await new Promise((resolveJob) => {
          let pid: number | undefined;
          pool.run(
            { bundle: bundlePath(join(root, ".tideflow"), "run-ts"), workflow: "tsflow", task, ctx: { bizdate: "2026-11-19", cyctime: "", params: {}, attempt: 1, workflow: "tsflow", task }, env: {} },
            { started: (p) => (pid = p), output: () => true, log: () => true, drained: async () => {}, ended: (exit) => resolveJob({ pid, exit }) },
          );
        }),
      );
    }
    return out;
  }

  test("a worker is recycled after maxTasksPerWorker tasks; idle workers shut down and are not replaced", async () => {
    const pool = new WorkerPool({ workerPath: WORKER, cwd: root, maxWorkers: 2, killGraceMs: GRACE_MS, maxTasksPerWorker: 2, idleTimeoutMs: 300 });
    try {
      const [a, b, c] = await runJobs(pool, ["noop", "noop", "noop"]);
      assert.deepEqual([a.exit, b.exit, c.exit], [{ exitCode: 0 }, { exitCode: 0 }, { exitCode: 0 }]);
      assert.equal(a.pid, b.pid);
      assert.notEqual(c.pid, a.pid);
      await until("idle workers to shut down", () => pool.size() === 0, 30_000);
      // Nothing should happen now: a wait that a slow machine can only make pass, never fail.
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(pool.size(), 0, "an idled-out worker was started again");
      assert.equal(processGroupAlive(c.pid!), false);
    } finally {
      await pool.close();
    }
  });

  test("a worker that cannot start fails the job with its reason", async () => {
    const pool = new WorkerPool({ workerPath: join(root, "no-such-worker.js"), cwd: root, maxWorkers: 1, killGraceMs: GRACE_MS });
    try {
      const [r] = await runJobs(pool, ["noop"]);
      assert.equal(r.pid, undefined);
      assert.match(r.exit.error ?? "", /^the task worker exited \(exit code 1\) before it was ready: .*Cannot find module/s);
    } finally {
      await pool.close();
    }
  });
});

describe("runner death", () => {
  test("a worker whose runner died (kill -9) ends its task's whole process group", { timeout: 120_000 }, async () => {
    const stub = join(root, "runner-stub.ts");
    await writeFile(stub, RUNNER_STUB);
    const e = effect({ runId: "run-ts", instanceId: `run-ts@${process.pid}.orphaned`, workflow: "tsflow", kind: "task", task: "sleeper", command: undefined });
    const runner = spawn(process.execPath, ["--import", "tsx", stub, root, WORKER, JSON.stringify(e)], { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    await new Promise<void>((resolveReady, reject) => {
      runner.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("ready\n")) resolveReady();
      });
      runner.on("exit", (code) => reject(new Error(`runner stub exited (${code}) before the task ran: ${out}`)));
    });
    const workerPid = Number(/worker (\d+)/.exec(out)![1]);
    const marker = attemptMarker(e);
    assert.equal(findMarkedProcesses(marker).length, 1);
    assert.ok(processGroupAlive(workerPid));
    runner.kill("SIGKILL");
    await until("the worker's group and the task's processes to end", () => !processGroupAlive(workerPid) && findMarkedProcesses(marker).length === 0, 60_000).catch(() => undefined);
    assert.deepEqual(findMarkedProcesses(marker), []);
    assert.equal(processGroupAlive(workerPid), false);
  });
});

describe("executor kinds", () => {
  /** A kind that runs nothing: what a remote kind does through the seam, recorded. */
  function fakeKind(calls: string[]): KindFactory {
    return () => ({
      name: "fake-remote",
      start(ctx) {
        calls.push(`start ${ctx.effect.task}`);
        setTimeout(() => {
          ctx.spawned({ executor: "fake-remote", pid: 4242, host: "worker-7", ref: "job-1" }, "on a fake worker");
          ctx.log.chunk("stdout", "hello from elsewhere\n");
          ctx.ended({ exitCode: 0 });
        }, 5);
        return { kill: () => calls.push("kill") };
      },
      adopt(ctx, handle) {
        calls.push(`adopt ${handle.executor} ${handle.ref}`);
        queueMicrotask(() => ctx.ended({ exitCode: 3 }));
        return { kill: () => calls.push("kill") };
      },
      async close() {
        calls.push("close");
      },
    });
  }

  test("a kind added through the table runs attempts the route sends it, with its handle journaled through onSpawn, and adopts by handle", async () => {
    const calls: string[] = [];
    const handles: AttemptHandle[] = [];
    const own = new Harness(root, { kinds: { "fake-remote": fakeKind(calls) }, route: (e) => (e.task.startsWith("remote_") ? "fake-remote" : "shell") });
    const spy = own.executor as unknown as { opts: ExecutorOptions };
    const onSpawn = spy.opts.onSpawn;
    spy.opts.onSpawn = (e, h) => {
      handles.push(h);
      onSpawn(e, h);
    };
    const remote = effect({ task: "remote_load", command: "exit 9" });
    const local = effect({ command: "echo local" });
    const [r, l] = await Promise.all([own.start(remote), own.start(local)]);
    assert.deepEqual(r.exit, { exitCode: 0 }, "the fake kind ran it, not bash (exit 9)");
    assert.ok(r.entries.includes("system INFO attempt 1 started (pid 4242 on worker-7): on a fake worker"), r.entries.join("\n"));
    assert.ok(r.entries.includes("stdout INFO hello from elsewhere"));
    assert.deepEqual(l.exit, { exitCode: 0 });
    assert.ok(l.entries.includes("stdout INFO local"));
    assert.deepEqual(handles.map((h) => h.executor).sort(), ["fake-remote", "shell"]);
    assert.deepEqual(handles.find((h) => h.executor === "fake-remote"), { executor: "fake-remote", pid: 4242, host: "worker-7", ref: "job-1" });

    const again = effect({ task: "remote_again" });
    const adopted = new Promise<AttemptExit>((resolveExit) => {
      const onExit = spy.opts.onExit;
      spy.opts.onExit = (e, exit) => {
        onExit(e, exit);
        if (e.task === again.task) resolveExit(exit);
      };
    });
    (own as unknown as { waiting: Map<string, (o: unknown) => void> }).waiting.set(attemptMarker(again), () => {});
    assert.equal(own.executor.adopt(again, { executor: "fake-remote", pid: 4243, ref: "job-2" }), true);
    assert.deepEqual(await adopted, { exitCode: 3 });
    assert.equal(own.executor.adopt(effect(), { executor: "no-such-kind", pid: 1 }), false, "an unknown kind cannot adopt");
    await own.close();
    assert.deepEqual(calls, ["start remote_load", "adopt fake-remote job-2", "close"]);
  });

  test("a start routed to a kind that does not exist fails with a clear error", async () => {
    const own = new Harness(root, { route: () => "nowhere" });
    const o = await own.start(effect());
    assert.equal(o.exit.exitCode, undefined);
    assert.match(o.exit.error ?? "", /no executor kind "nowhere"/);
    await own.close();
  });

  test("shell attempts survive the spawn helper dying: their end comes from the exit file, their output from the capture files", async () => {
    const own = new Harness(root);
    const others = new Set(findMarkedHelpers()); // other executors' in this process
    const e = effect({ command: "echo before; sleep 0.6; echo after; exit 4" });
    const running = own.start(e);
    await own.line(e, /^before$/);
    const helpers = findMarkedHelpers().filter((pid) => !others.has(pid));
    assert.equal(helpers.length, 1, "one spawn helper for this executor, a child of this process");
    process.kill(helpers[0], "SIGKILL");
    const o = await running;
    // Read from the exit file: the status, and when it was written (the attempt's end).
    const { endedAt, ...status } = o.exit;
    assert.deepEqual(status, { exitCode: 4 });
    assert.ok(endedAt !== undefined && endedAt <= Date.now(), `endedAt ${endedAt}`);
    assert.ok(o.entries.includes("stdout INFO before") && o.entries.includes("stdout INFO after"), o.entries.join("\n"));
    // The next shell attempt gets a new helper.
    const next = await own.start(effect({ command: "echo next" }));
    assert.deepEqual(next.exit, { exitCode: 0 });
    assert.ok(next.entries.includes("stdout INFO next"));
    await own.close();
    assertNothingLeft(o);
  });

  test("a kill that comes before the helper reported the process still ends it", async () => {
    const own = new Harness(root);
    const e = effect({ command: "sleep 30" });
    const running = own.start(e);
    own.kill(e); // same turn as the start: the spawn request is still on its way
    const o = await running;
    assert.deepEqual(o.exit, { signal: "SIGTERM" });
    assert.ok(o.entries.some((l) => l.startsWith("system WARN kill requested (operator) before the attempt's process existed")), o.entries.join("\n"));
    await own.close();
    assertNothingLeft(o);
  });
});

describe("capture files", () => {
  test("a shell attempt writes to spare capture files made ahead, named in its handle, deleted once its log is complete", async () => {
    const handles: AttemptHandle[] = [];
    // A state folder of its own: `recovered` below sweeps what this executor does not own.
    const stateDir = join(root, ".tideflow-capture-test");
    const own = new Harness(root, {}, stateDir);
    const spy = own.executor as unknown as { opts: ExecutorOptions };
    const onSpawn = spy.opts.onSpawn;
    spy.opts.onSpawn = (e, h) => {
      handles.push(h);
      onSpawn(e, h);
    };
    const dir = join(stateDir, "capture");
    const first = await own.start(effect({ command: "echo one; echo two >&2" }));
    assert.ok(first.entries.includes("stdout INFO one") && first.entries.includes("stderr WARN two"), first.entries.join("\n"));
    const spareNames = () => (existsSync(dir) ? readdirSync(dir) : []).filter((f) => f.endsWith(".out")).map((f) => f.slice(0, -4));
    // Spares are made in the background.
    const spares = await until("spares made ahead", () => (spareNames().length >= 1 ? spareNames() : undefined), 30_000);
    const second = await own.start(effect({ command: "echo three" }));
    assert.ok(second.entries.includes("stdout INFO three"));
    const [h1, h2] = handles;
    assert.equal(h1.executor, "shell");
    assert.ok(h1.ref && h2.ref && h1.ref !== h2.ref);
    assert.ok(spares.includes(h2.ref!), `the second attempt took a spare (${h2.ref} of ${spares.join(", ")})`);
    const attemptFiles = [h1, h2].flatMap((h) => ["out", "err", "exit"].map((ext) => join(dir, `${h.ref}.${ext}`)));
    await until("both attempts' capture files to be deleted", () => attemptFiles.every((f) => !existsSync(f)), 30_000).catch(() => undefined);
    for (const f of attemptFiles) assert.equal(existsSync(f), false, `${f} deleted`);
    // Files no attempt owns (a dead runner's spares) go once adoption is over; this executor's spares stay.
    const mine = readdirSync(dir);
    await writeFile(join(dir, "dead-1.out"), "");
    await writeFile(join(dir, "dead-1.exit"), "0 someone/else/1");
    own.executor.recovered();
    const same = () => JSON.stringify(readdirSync(dir).sort()) === JSON.stringify([...mine].sort());
    await until("the dead runner's files to go", same, 30_000).catch(() => undefined);
    assert.deepEqual(readdirSync(dir).sort(), mine.sort());
    await own.close();
  });
});

test("an attempt's capture files stay until its end is durable (onExit's promise), so a runner dying in between loses nothing", async () => {
  const stateDir = join(root, ".tideflow-durable-test");
  let release!: () => void;
  const journaled = new Promise<void>((r) => (release = r));
  let handle: AttemptHandle | undefined;
  let ended!: () => void;
  const seen = new Promise<void>((r) => (ended = r));
  const logs = new LogStore(stateDir);
  const executor = new Executor({
    root,
    stateDir,
    logs,
    workerPath: WORKER,
    killGraceMs: GRACE_MS,
    onSpawn: (_e, h) => (handle = h),
    onExit: () => {
      ended();
      return journaled;
    },
  });
  executor.start(effect({ command: "echo kept; exit 5" }));
  await seen;
  const exitFile = join(stateDir, "capture", `${handle!.ref}.exit`);
  // Nothing should happen now: a wait that a slow machine can only make pass, never fail.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(existsSync(exitFile), true, "kept while the end is not journaled");
  assert.match(readFileSync(exitFile, "utf8"), /^5 /);
  release();
  await until("the exit file to be deleted once the end is journaled", () => !existsSync(exitFile), 30_000).catch(() => undefined);
  assert.equal(existsSync(exitFile), false, "deleted once it is");
  await executor.close();
});

/** Spawn helpers (dist/spawner.js) whose parent is this process. */
function findMarkedHelpers(): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && readFileSync(`/proc/${name}/cmdline`, "latin1").includes("spawner.js")) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

describe("close", () => {
  test("kills every attempt's tree and every worker; each start still gets its onExit", async () => {
    const own = new Harness(root);
    const shell = effect({ command: "sleep 300 & sleep 300" });
    const task = effect({ runId: "run-ts", instanceId: `run-ts@${process.pid}.close`, workflow: "tsflow", kind: "task", task: "sleeper", command: undefined });
    const outcomes = [own.start(shell), own.start(task)];
    await own.line(task, /^spawned/);
    assert.equal(own.executor.active(), 2);
    await own.close();
    const [s, t] = await Promise.all(outcomes);
    assert.deepEqual(s.exit, { signal: "SIGTERM", interrupted: true });
    assert.deepEqual(t.exit, { signal: "SIGTERM", interrupted: true });
    assert.ok(s.entries.some((l) => l.startsWith("system WARN kill requested (the runner is stopping)")));
    assertNothingLeft(s);
    assertNothingLeft(t);
    assert.equal(own.executor.active(), 0);
    const late = await own.start(effect());
    assert.deepEqual(late.exit, { error: "not started: the runner is stopping", interrupted: true });
  });
});
