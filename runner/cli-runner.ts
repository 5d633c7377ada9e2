/**
 * The CLI commands that talk to the workspace's runner (SPEC §4): test, backfill, runs,
 * show, logs, the operations, and `runner start|stop|status`.
 *
 * Exit codes: 0 done (a run: every task instance succeeded), 1 the run did not succeed or
 * the runner refused (its reason on stderr), 2 usage, 3 an internal error.
 */
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { ApiEvent, CreateRunParams, TaskOperation } from "../protocol/api";
import type { Run, RunState, RunSummary, TaskState } from "../protocol/runner";
import { TASK_STATES, TERMINAL_TASK_STATES } from "../protocol/runner";
import { connectRunning, ensureRunner, RunnerError, type RunnerClient } from "../common/runner-client";
import { processAlive } from "./exec/process-tree";
import { formatPlan, formatRun, formatRuns, localTime, runDocument } from "./cli-format";

export class UsageError extends Error {}

/** A refusal or failure to report as `tideflow: <message>` with exit 1. */
export class CommandError extends Error {}

const RUN_STATES: readonly RunState[] = ["running", "success", "failed", "killed", "paused"];
const TERMINAL: readonly TaskState[] = TERMINAL_TASK_STATES;
/** A task in these states may still start: a follower waits for its first attempt. */
const NOT_STARTED: readonly TaskState[] = ["not_run", "waiting", "paused"];

function workspaceOf(flag: string | undefined): string {
  return resolve(flag ?? process.cwd());
}

async function connect(workspace: string): Promise<RunnerClient> {
  const { client, started } = await ensureRunner(workspace, join(__dirname, "runner.js"));
  if (started) process.stderr.write(`tideflow: started the runner (pid ${client.info.pid}) for ${workspace}\n`);
  return client;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function checkDate(flag: string, value: string | undefined): void {
  if (value !== undefined && !DATE.test(value)) throw new UsageError(`--${flag} expects a date as YYYY-MM-DD, got "${value}"`);
}

/** `tideflow test` / `tideflow backfill`. */
export async function startRun(kind: "test" | "backfill", args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      task: { type: "string", multiple: true },
      downstream: { type: "boolean", default: false },
      date: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      parallel: { type: "string" },
      order: { type: "string" },
      json: { type: "boolean", default: false },
      detach: { type: "boolean", default: false },
      "dry-run": { type: "boolean", default: false },
      workspace: { type: "string" },
    },
  });
  if (positionals.length !== 1) throw new UsageError(`${kind} takes one workflow file`);
  if (values["dry-run"] && values.detach) throw new UsageError("--dry-run creates no run, so there is nothing to --detach from");
  if (values.downstream && !values.task) throw new UsageError("--downstream needs --task: it selects the tasks downstream of those");
  let parallelism: number | undefined;
  if (kind === "test") {
    for (const f of ["from", "to", "parallel", "order"] as const) {
      if (values[f] !== undefined) throw new UsageError(`--${f} is for backfill; a test runs one bizdate (--date)`);
    }
    checkDate("date", values.date);
  } else {
    if (values.date !== undefined) throw new UsageError("backfill takes --from and --to, not --date");
    if (!values.from || !values.to) throw new UsageError("backfill needs --from YYYY-MM-DD and --to YYYY-MM-DD");
    checkDate("from", values.from);
    checkDate("to", values.to);
    if (values.parallel !== undefined) {
      parallelism = Number(values.parallel);
      if (!Number.isInteger(parallelism) || parallelism < 1) throw new UsageError(`--parallel expects an integer of 1 or more, got "${values.parallel}"`);
    }
    if (values.order !== undefined && values.order !== "asc" && values.order !== "desc") {
      throw new UsageError(`--order expects asc or desc, got "${values.order}"`);
    }
  }
  const workspace = workspaceOf(values.workspace);
  const params: CreateRunParams = {
    kind,
    file: resolve(positionals[0]),
    by: "cli",
    downstream: values.downstream,
    ...(values.task ? { tasks: values.task } : {}),
    ...(values.date ? { bizdate: values.date } : {}),
    ...(values.from ? { from: values.from, to: values.to } : {}),
    ...(parallelism !== undefined ? { parallelism } : {}),
    ...(values.order ? { order: values.order as "asc" | "desc" } : {}),
  };
  const client = await connect(workspace);
  try {
    if (values["dry-run"]) {
      const plan = await client.request("runs.plan", params);
      process.stdout.write(values.json ? `${JSON.stringify(plan, null, 2)}\n` : formatPlan(plan));
      return 0;
    }
    // Subscribe before creating, so that no record of the new run is missed.
    const events: ApiEvent[] = [];
    let wake: (() => void) | undefined;
    client.onEvent((e) => {
      events.push(e);
      wake?.();
    });
    await client.request("subscribe", { records: true });
    const { run } = await client.request("runs.create", params);
    if (values.detach) {
      process.stdout.write(values.json ? `${JSON.stringify({ id: run.id }, null, 2)}\n` : `${run.id}\n`);
      return 0;
    }
    const quiet = values.json;
    if (!quiet) {
      const n = run.instances.length;
      process.stdout.write(
        `${run.id}: ${kind} of ${run.workflow}, ${n} workflow instance${n === 1 ? "" : "s"} × ${run.tasks.length} task${run.tasks.length === 1 ? "" : "s"}` +
          `${kind === "test" ? ` (bizdate ${run.instances[0]?.bizdate})` : ""}\n`,
      );
    }
    const bizdateOf = new Map(run.instances.map((i) => [i.id, i.bizdate]));
    const multi = run.instances.length > 1;
    // Ctrl-C leaves the run running in the runner.
    process.once("SIGINT", () => {
      process.stderr.write(`\n${run.id} goes on in the runner: \`tideflow show ${run.id}\`, \`tideflow kill ${run.id}\`\n`);
      process.exit(130);
    });
    let ended = run.state !== "running";
    while (!ended) {
      if (events.length === 0) await new Promise<void>((r) => (wake = r));
      wake = undefined;
      for (const e of events.splice(0)) {
        if (e.event === "stopping") throw new CommandError(`the runner stopped while ${run.id} ran; it carries on when the runner starts again`);
        if (e.event === "resync") {
          ended = (await client.request("runs.get", { run: run.id })).state !== "running";
          continue;
        }
        if (e.event !== "records") continue;
        for (const r of e.records) {
          if (r.type === "run.state" && r.runId === run.id && r.to !== "running") ended = true;
          if (quiet || r.type !== "task.state" || r.runId !== run.id) continue;
          if (r.to === "running" || TERMINAL.includes(r.to) || r.to === "paused" || (r.cause === "retry" && r.to === "waiting")) {
            const when = multi ? `${bizdateOf.get(r.instanceId)} ` : "";
            const extra = r.to === "running" && r.attempt ? ` (attempt ${r.attempt})` : r.cause === "timeout" ? " (timed out)" : r.cause === "retry" ? " (retry pending)" : "";
            process.stdout.write(`${localTime(r.at).slice(11)}  ${when}${r.task} ${r.to}${extra}\n`);
          }
        }
      }
    }
    const final = await client.request("runs.get", { run: run.id });
    if (values.json) process.stdout.write(`${JSON.stringify(runDocument(final), null, 2)}\n`);
    else process.stdout.write(`\n${formatRun(final, { brief: true })}`);
    return allSucceeded(final) ? 0 : 1;
  } finally {
    client.close();
  }
}

function allSucceeded(run: Run): boolean {
  return run.instances.every((i) => i.tasks.every((t) => t.state === "success"));
}

export async function runs(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { state: { type: "string" }, json: { type: "boolean", default: false }, workspace: { type: "string" } },
  });
  if (positionals.length > 0) throw new UsageError("runs takes no arguments (did you mean `tideflow show <run>`?)");
  const state = values.state as RunState | TaskState | undefined;
  if (state !== undefined && !RUN_STATES.includes(state as RunState) && !TASK_STATES.includes(state as TaskState)) {
    throw new UsageError(`--state expects one of ${[...new Set([...RUN_STATES, ...TASK_STATES])].join(", ")}; got "${state}"`);
  }
  const client = await connect(workspaceOf(values.workspace));
  try {
    let list: RunSummary[] = await client.request("runs.list", {});
    // A run state filters runs; a task state lists runs having task instances in it.
    if (state !== undefined) list = list.filter((r) => r.state === state || (TASK_STATES.includes(state as TaskState) && r.counts[state as TaskState] > 0));
    process.stdout.write(values.json ? `${JSON.stringify(list, null, 2)}\n` : formatRuns(list));
    return 0;
  } finally {
    client.close();
  }
}

export async function show(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false }, history: { type: "boolean", default: false }, date: { type: "string" }, workspace: { type: "string" } },
  });
  if (positionals.length !== 1) throw new UsageError("show takes one run id (see `tideflow runs`)");
  const client = await connect(workspaceOf(values.workspace));
  try {
    const run = await client.request("runs.get", { run: positionals[0] });
    if (values.date !== undefined) {
      run.instances = run.instances.filter((i) => i.bizdate === values.date || i.id === values.date || i.cyctime.startsWith(values.date!));
    }
    process.stdout.write(values.json ? `${JSON.stringify(runDocument(run, { history: true }), null, 2)}\n` : formatRun(run, { history: values.history }));
    return 0;
  } finally {
    client.close();
  }
}

export async function logs(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { date: { type: "string" }, attempt: { type: "string" }, follow: { type: "boolean", short: "f", default: false }, workspace: { type: "string" } },
  });
  if (positionals.length !== 2) throw new UsageError("logs takes a run and a task: tideflow logs <run> <task>");
  let attempt: number | undefined;
  if (values.attempt !== undefined) {
    attempt = Number(values.attempt);
    if (!Number.isInteger(attempt) || attempt < 1) throw new UsageError(`--attempt expects a number from 1, got "${values.attempt}"`);
  }
  const [runRef, task] = positionals;
  const client = await connect(workspaceOf(values.workspace));
  try {
    const target = { run: runRef, task, ...(values.date ? { date: values.date } : {}) };
    if (!values.follow) {
      const log = await client.request("logs.read", { ...target, ...(attempt ? { attempt } : {}) });
      process.stdout.write(log.text);
      return 0;
    }
    return await follow(client, target, attempt);
  } finally {
    client.close();
  }
}

/**
 * Prints the log, then its new lines as they are written, until the task instance ends
 * (across retries when no attempt is named).
 */
async function follow(client: RunnerClient, target: { run: string; task: string; date?: string }, attempt: number | undefined): Promise<number> {
  const first = await firstRead(client, target, attempt);
  const events: ApiEvent[] = [];
  let wake: (() => void) | undefined;
  client.onEvent((e) => {
    events.push(e);
    wake?.();
  });
  // Subscribe, then read again from where the first read stopped: lines written between
  // the two arrive twice, and are printed once thanks to the byte offsets.
  await client.request("subscribe", { records: true, logs: { instanceId: first.instanceId, task: first.task, ...(attempt ? { attempt } : {}) } });
  const printed = new Map<number, number>([[first.attempt, 0]]);
  const print = (n: number, text: string, end: number) => {
    if (!printed.has(n)) {
      printed.set(n, 0);
      if (!attempt) process.stdout.write(`── attempt ${n} ──\n`);
    }
    const done = printed.get(n)!;
    if (end <= done) return;
    const buf = Buffer.from(text);
    process.stdout.write(buf.subarray(Math.max(0, buf.length - (end - done))));
    printed.set(n, end);
  };
  print(first.attempt, first.text, first.size);
  const again = await client.request("logs.read", { ...target, attempt: first.attempt, offset: first.size });
  print(first.attempt, again.text, again.size);
  let state = again.state;
  const done = () => TERMINAL.includes(state) || (attempt !== undefined && (printed.get(attempt) ?? 0) > 0 && state !== "running");
  while (!done()) {
    if (events.length === 0) await new Promise<void>((r) => (wake = r));
    wake = undefined;
    for (const e of events.splice(0)) {
      if (e.event === "stopping") throw new CommandError("the runner stopped");
      if (e.event === "log") print(e.attempt, e.text, e.end);
      if (e.event === "records") {
        for (const r of e.records) {
          if (r.type === "task.state" && r.instanceId === first.instanceId && r.task === first.task) state = r.to;
        }
      }
      if (e.event === "resync") {
        const n = Math.max(...printed.keys());
        const r = await client.request("logs.read", { ...target, attempt: n, offset: printed.get(n) });
        print(n, r.text, r.size);
        state = r.state;
      }
    }
  }
  return 0;
}

/** The log's first read; a task that has not started yet is waited for (as `tail -F` would). */
async function firstRead(client: RunnerClient, target: { run: string; task: string; date?: string }, attempt: number | undefined) {
  let told = false;
  for (;;) {
    try {
      return await client.request("logs.read", { ...target, ...(attempt ? { attempt } : {}) });
    } catch (e) {
      const state = e instanceof RunnerError && e.code === "no-log" ? e.detail.state : undefined;
      if (state === undefined || !NOT_STARTED.includes(state)) throw e;
      if (!told) process.stderr.write(`tideflow: waiting for \`${target.task}\` to start (it is ${state})…\n`);
      told = true;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function operate(op: TaskOperation, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { date: { type: "string" }, json: { type: "boolean", default: false }, workspace: { type: "string" } },
  });
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError(`${op} takes a run and optionally a task: tideflow ${op} <run> [<task>] [--date D]`);
  const client = await connect(workspaceOf(values.workspace));
  try {
    const result = await client.request("task.operate", {
      op,
      run: positionals[0],
      by: "cli",
      ...(positionals[1] ? { task: positionals[1] } : {}),
      ...(values.date ? { date: values.date } : {}),
    });
    process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${result.changed.map((c) => `${result.runId}: ${c}`).join("\n")}\n`);
    return 0;
  } finally {
    client.close();
  }
}

export async function rerunDownstream(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { only: { type: "string", multiple: true }, date: { type: "string" }, json: { type: "boolean", default: false }, workspace: { type: "string" } },
  });
  if (positionals.length !== 2) throw new UsageError("rerun-downstream takes a run and a task: tideflow rerun-downstream <run> <task> [--only ID]...");
  const client = await connect(workspaceOf(values.workspace));
  try {
    const result = await client.request("task.rerunDownstream", {
      run: positionals[0],
      task: positionals[1],
      by: "cli",
      ...(values.only ? { only: values.only } : {}),
      ...(values.date ? { date: values.date } : {}),
    });
    process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${result.changed.map((c) => `${result.runId}: ${c}`).join("\n")}\n`);
    return 0;
  } finally {
    client.close();
  }
}

export async function runnerCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false }, workspace: { type: "string" } },
  });
  const [sub] = positionals;
  if (positionals.length !== 1 || !["start", "stop", "status"].includes(sub)) throw new UsageError("runner takes start, stop or status");
  const workspace = workspaceOf(values.workspace);
  if (sub === "start") {
    const { client, started } = await ensureRunner(workspace, join(__dirname, "runner.js"));
    const { pid, port } = client.info;
    client.close();
    process.stdout.write(`${started ? "started" : "already running"}: runner pid ${pid} on 127.0.0.1:${port} for ${workspace}\n`);
    return 0;
  }
  const client = await connectRunning(workspace);
  if (!client) {
    process.stdout.write(values.json ? `${JSON.stringify({ running: false }, null, 2)}\n` : `no runner is running for ${workspace}\n`);
    return sub === "status" ? 1 : 0;
  }
  try {
    if (sub === "status") {
      const s = await client.request("runner.status", {});
      if (values.json) process.stdout.write(`${JSON.stringify({ running: true, ...s }, null, 2)}\n`);
      else {
        process.stdout.write(
          `runner pid ${s.pid} on 127.0.0.1:${s.port} for ${s.workspace}, up ${Math.round((Date.now() - s.startedAt) / 1000)} s\n` +
            `${s.runs} run(s), ${s.runningRuns} running, ${s.activeAttempts} attempt(s) running; journal ${s.journal.records} records, ${(s.journal.bytes / 1024).toFixed(0)} KiB\n`,
        );
      }
      return 0;
    }
    const pid = client.info.pid;
    await client.request("runner.stop", {});
    const deadline = Date.now() + 30_000;
    while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (processAlive(pid)) throw new CommandError(`the runner (pid ${pid}) is still stopping after 30 s`);
    process.stdout.write(`stopped the runner (pid ${pid})\n`);
    return 0;
  } finally {
    client.close();
  }
}
