/**
 * The CLI commands that talk to the workspace's runner (SPEC §4): test, backfill, runs,
 * show, logs, the operations, and `runner start|stop|status`.
 *
 * Exit codes: 0 done (a run: every task instance succeeded), 1 the run did not succeed or
 * the runner refused (its reason on stderr), 2 usage, 3 an internal error, 4 a command
 * that only reads (runs, show, logs) found no runner running.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { ApiEvent, CreateRunParams, TaskOperation } from "../protocol/api";
import type { Run, RunState, RunSummary, TaskState } from "../protocol/runner";
import { TASK_STATES, TERMINAL_TASK_STATES } from "../protocol/runner";
import { connectRunning, ensureRunner, RunnerError, type RunnerClient } from "../common/runner-client";
import { processAlive } from "./exec/process-tree";
import { formatOperateResult, formatRunnerStatus, journalDamageWarning, formatPlan, formatRun, formatRunSummary, formatRuns, localTime, runDocument, type StateSection } from "./cli-format";
import { UsageError, workspaceOf } from "../common/cli-usage";
import { didYouMean, type Args } from "./cli/args";
import { OfflineLogMissing, readLogOffline } from "./cli/offline-logs";
import { lastTaskErrorLine } from "../common/log-lines";

/** A refusal or failure to report as `tideflow: <message>` with exit 1. */
export class CommandError extends Error {}

/** A command that only reads found no runner, and does not start one: exit 4. */
export class NoRunnerError extends Error {}

const RUN_STATES: readonly RunState[] = ["running", "success", "failed", "killed", "paused"];
/** What `runs --state` takes: a run state, or a task state (runs having such task instances). */
export const STATE_FILTERS: readonly string[] = [...new Set<string>([...RUN_STATES, ...TASK_STATES])];
const TERMINAL: readonly TaskState[] = TERMINAL_TASK_STATES;
/** A task in these states may still start: a follower waits for its first attempt. */
const NOT_STARTED: readonly TaskState[] = ["not_run", "waiting", "paused"];

/** The running runner of a command that only reads: it never starts one (nor writes .tideflow/). */
async function attach(workspace: string): Promise<RunnerClient> {
  const client = await connectRunning(workspace);
  if (client) return client;
  const recorded = existsSync(join(workspace, ".tideflow", "journal"));
  throw new NoRunnerError(
    `no runner is running for ${workspace}; \`tideflow runner start\` starts it` +
      (recorded ? " with the runs recorded in .tideflow/" : " (no run has been recorded here yet)"),
  );
}

/** The runner of a command that acts, started in the background when none runs. */
async function connect(workspace: string): Promise<RunnerClient> {
  const { client, started } = await ensureRunner(workspace, runnerPath());
  if (started) {
    process.stderr.write(`tideflow: started the runner (pid ${client.info.pid}) for ${workspace}\n`);
    await warnOfDamage(client);
  }
  return client;
}

/** A runner that just started says on stderr when it found its journal damaged. */
async function warnOfDamage(client: RunnerClient): Promise<void> {
  const warning = journalDamageWarning(await client.request("runner.status", {}));
  if (warning) process.stderr.write(`tideflow: ${warning}\n`);
}

/** dist/runner.js, beside this bundle. */
function runnerPath(): string {
  return join(__dirname, "runner.js");
}

/** `tideflow test` / `tideflow backfill`; the table (cli.ts) has checked the values' shapes. */
export async function startRun(kind: "test" | "backfill", a: Args): Promise<number> {
  const tasks = a.list("task");
  if (a.flag("dry-run") && a.flag("detach")) throw new UsageError("--dry-run creates no run, so there is nothing to --detach from");
  if (a.flag("downstream") && !tasks) throw new UsageError("--downstream needs --task: it selects the tasks downstream of those");
  const date = kind === "test" ? a.string("date") : undefined;
  const from = kind === "backfill" ? a.string("from") : undefined;
  const to = kind === "backfill" ? a.string("to") : undefined;
  if (kind === "backfill" && (!from || !to)) throw new UsageError("backfill needs --from YYYY-MM-DD and --to YYYY-MM-DD");
  const parallelism = kind === "backfill" ? a.integer("parallel") : undefined;
  const order = kind === "backfill" ? (a.string("order") as "asc" | "desc" | undefined) : undefined;
  const json = a.flag("json");
  const workspace = workspaceOf(a.string("workspace"));
  const params: CreateRunParams = {
    kind,
    file: resolve(a.positionals[0]),
    by: "cli",
    downstream: a.flag("downstream"),
    ...(tasks ? { tasks } : {}),
    ...(date ? { bizdate: date } : {}),
    ...(from ? { from, to } : {}),
    ...(parallelism !== undefined ? { parallelism } : {}),
    ...(order ? { order } : {}),
  };
  const client = await connect(workspace);
  try {
    if (a.flag("dry-run")) {
      const plan = await client.request("runs.plan", params);
      process.stdout.write(json ? `${JSON.stringify(plan, null, 2)}\n` : formatPlan(plan));
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
    if (a.flag("detach")) {
      process.stdout.write(json ? `${JSON.stringify({ id: run.id }, null, 2)}\n` : `${run.id}\n`);
      return 0;
    }
    const quiet = json;
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
    if (json) process.stdout.write(`${JSON.stringify(runDocument(final), null, 2)}\n`);
    else process.stdout.write(`\n${formatRun(final, { brief: true })}`);
    if (allSucceeded(final)) return 0;
    if (!json) process.stderr.write(await whyNot(client, final));
    return 1;
  } finally {
    client.close();
  }
}

/** Failed or killed task instances named in a run's end report; the rest are counted. */
const WHY_NOT_UP_TO = 5;

/**
 * Why a run that ended did not succeed: each failed or killed task instance (up to
 * WHY_NOT_UP_TO) with its attempt's outcome, its own last error line (stderr), and its log.
 */
async function whyNot(client: RunnerClient, run: Run): Promise<string> {
  const bad = run.instances.flatMap((i) => i.tasks.filter((t) => t.state === "failed" || t.state === "killed").map((t) => ({ i, t })));
  const multi = run.instances.length > 1;
  const out: string[] = [];
  for (const { i, t } of bad.slice(0, WHY_NOT_UP_TO)) {
    const last = t.attempts[t.attempts.length - 1];
    const outcome = !last ? "never started" : (last.error ?? (last.signal ? `ended by ${last.signal}` : `exit code ${last.exitCode}`));
    const when = multi ? ` (${i.bizdate})` : "";
    out.push(`${t.task}${when} ${t.state}: ${outcome}`);
    if (!last) continue;
    try {
      const log = await client.request("logs.read", { run: run.id, task: t.task, date: i.id, attempt: last.n });
      const line = lastTaskErrorLine(log.text);
      if (line !== undefined) out.push(`  ${line}`);
      out.push(`  log: ${log.path} (\`tideflow logs ${run.id} ${t.task}${multi ? ` --date ${i.cyctime}` : ""}\`)`);
    } catch {
      // the log cannot be read: the outcome above is what we know
    }
  }
  if (bad.length > WHY_NOT_UP_TO) out.push(`… and ${bad.length - WHY_NOT_UP_TO} more: \`tideflow show ${run.id}\``);
  if (bad.length === 0) out.push(`${run.id} ended ${run.state} with task instances that did not run: \`tideflow show ${run.id}\``);
  return `${out.join("\n")}\n`;
}


function allSucceeded(run: Run): boolean {
  return run.instances.every((i) => i.tasks.every((t) => t.state === "success"));
}

export async function runs(a: Args): Promise<number> {
  const state = a.string("state") as RunState | TaskState | undefined;
  const client = await attach(workspaceOf(a.string("workspace")));
  try {
    // Newest first, as the editor lists them: `tideflow runs | head` shows the latest.
    let list: RunSummary[] = (await client.request("runs.list", {})).sort((x, y) => y.createdAt - x.createdAt || runNumber(y.id) - runNumber(x.id));
    // A run state filters runs; a task state lists runs having task instances in it.
    const total = list.length;
    if (state !== undefined) list = list.filter((r) => r.state === state || (TASK_STATES.includes(state as TaskState) && r.counts[state as TaskState] > 0));
    if (a.flag("json")) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    else if (list.length === 0 && total > 0) {
      const what = RUN_STATES.includes(state as RunState) ? `${state} runs` : `runs with ${state} task instances`;
      process.stdout.write(`no ${what} (${total} run${total === 1 ? "" : "s"} in all: \`tideflow runs\`)\n`);
    } else process.stdout.write(formatRuns(list));
    return 0;
  } finally {
    client.close();
  }
}

/** 7 for `run-7` (run ids count up). */
function runNumber(id: string): number {
  return Number(/\d+$/.exec(id)?.[0] ?? 0);
}

/** Above this many task instances, `show` summarises unless --all. */
const SHOW_ALL_UP_TO = 200;
/** Task instances listed per state in a summary. */
const SUMMARY_CAP = 20;
const ATTENTION: readonly TaskState[] = ["failed", "killed", "running", "paused"];

export async function show(a: Args): Promise<number> {
  const date = a.string("date");
  const client = await attach(workspaceOf(a.string("workspace")));
  try {
    if (!a.flag("all") && !a.flag("json") && !a.flag("history") && date === undefined) {
      // A big run (a 3-year hourly backfill: 131,000 task instances) is summarised from
      // its counts and a page per state, never fetched whole.
      const head = await client.request("runs.get", { run: a.positionals[0], instances: false });
      const summary = (await client.request("runs.list", {})).find((r) => r.id === head.id);
      if (summary && summary.instances * head.tasks.length > SHOW_ALL_UP_TO) {
        const sections: StateSection[] = [];
        for (const state of ATTENTION) {
          if (summary.counts[state] === 0) continue;
          const page = await client.request("runs.instances", { run: head.id, state, limit: SUMMARY_CAP });
          sections.push({ state, count: summary.counts[state], instances: page.instances });
        }
        process.stdout.write(formatRunSummary(head, summary, sections, SUMMARY_CAP));
        return 0;
      }
    }
    const run = await client.request("runs.get", { run: a.positionals[0] });
    if (date !== undefined) {
      const all = run.instances;
      // As the runner picks instances for kill, logs and the other operations (daemon.ts
      // instancesOf): a YYYY-MM-DD is a bizdate, anything else a cyctime prefix or an id.
      run.instances = /^\d{4}-\d{2}-\d{2}$/.test(date)
        ? all.filter((i) => i.bizdate === date)
        : all.filter((i) => i.id === date || i.cyctime.startsWith(date));
      if (run.instances.length === 0) {
        const dates = [...new Set(all.map((i) => i.bizdate))].sort();
        throw new CommandError(`${run.id} has no workflow instance for ${date}; its bizdates are ${dates.length > 3 ? `${dates[0]} … ${dates[dates.length - 1]}` : dates.join(", ")}`);
      }
    }
    process.stdout.write(a.flag("json") ? `${JSON.stringify(runDocument(run, { history: true }), null, 2)}\n` : formatRun(run, { history: a.flag("history") }));
    return 0;
  } finally {
    client.close();
  }
}

export async function logs(a: Args): Promise<number> {
  const attempt = a.integer("attempt");
  const date = a.string("date");
  const [runRef, task] = a.positionals;
  const workspace = workspaceOf(a.string("workspace"));
  const client = await connectRunning(workspace);
  // No runner: logs are files, read from disk.
  if (!client) return offlineLogs(workspace, runRef, task, date, attempt, a.flag("follow"));
  try {
    const target = { run: runRef, task, ...(date ? { date } : {}) };
    if (!a.flag("follow")) {
      const log = await client.request("logs.read", { ...target, ...(attempt ? { attempt } : {}) });
      process.stdout.write(log.text);
      return 0;
    }
    return await follow(client, target, attempt);
  } finally {
    client.close();
  }
}

/** `tideflow logs` with no runner: the log file as it stands (runner/cli/offline-logs.ts). */
function offlineLogs(workspace: string, runRef: string, task: string, date: string | undefined, attempt: number | undefined, follow: boolean): number {
  let log;
  try {
    log = readLogOffline(join(workspace, ".tideflow"), runRef, task, date, attempt);
  } catch (e) {
    if (!(e instanceof OfflineLogMissing)) throw e;
    throw new NoRunnerError(`no runner is running for ${workspace}; \`tideflow runner start\` starts it (and ${e.message})`);
  }
  process.stdout.write(log.text);
  process.stderr.write(
    `tideflow: no runner is running; read from ${log.path} (attempt ${log.attempt})` +
      (follow ? "; this is the log as it stands: `tideflow runner start`, then `tideflow logs --follow`, to follow it live" : "") +
      "\n",
  );
  return 0;
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

export async function operate(op: TaskOperation, a: Args): Promise<number> {
  const date = a.string("date");
  const client = await connect(workspaceOf(a.string("workspace")));
  try {
    const result = await client.request("task.operate", {
      op,
      run: a.positionals[0],
      by: "cli",
      ...(a.positionals[1] ? { task: a.positionals[1] } : {}),
      ...(date ? { date } : {}),
    });
    process.stdout.write(a.flag("json") ? `${JSON.stringify(result, null, 2)}\n` : formatOperateResult(result));
    return 0;
  } finally {
    client.close();
  }
}

export async function rerunDownstream(a: Args): Promise<number> {
  const only = a.list("only");
  const date = a.string("date");
  const client = await connect(workspaceOf(a.string("workspace")));
  try {
    const result = await client.request("task.rerunDownstream", {
      run: a.positionals[0],
      task: a.positionals[1],
      by: "cli",
      ...(only ? { only } : {}),
      ...(date ? { date } : {}),
    });
    process.stdout.write(a.flag("json") ? `${JSON.stringify(result, null, 2)}\n` : formatOperateResult(result));
    return 0;
  } finally {
    client.close();
  }
}

const RUNNER_SUBCOMMANDS = ["start", "stop", "status"];

export async function runnerCommand(a: Args): Promise<number> {
  const [sub] = a.positionals;
  if (!RUNNER_SUBCOMMANDS.includes(sub)) {
    const guess = didYouMean(sub, RUNNER_SUBCOMMANDS);
    throw new UsageError(`runner takes start, stop or status, got "${sub}"${guess ? `; did you mean ${guess}?` : ""}`);
  }
  const json = a.flag("json");
  const workspace = workspaceOf(a.string("workspace"));
  if (sub === "start") {
    const { client, started } = await ensureRunner(workspace, runnerPath());
    const { pid, port } = client.info;
    if (started) await warnOfDamage(client);
    client.close();
    process.stdout.write(`${started ? "started" : "already running"}: runner pid ${pid} on 127.0.0.1:${port} for ${workspace}\n`);
    return 0;
  }
  const client = await connectRunning(workspace);
  if (!client) {
    process.stdout.write(json ? `${JSON.stringify({ running: false }, null, 2)}\n` : `no runner is running for ${workspace}\n`);
    return sub === "status" ? 1 : 0;
  }
  try {
    if (sub === "status") {
      const s = await client.request("runner.status", {});
      if (json) process.stdout.write(`${JSON.stringify({ running: true, ...s }, null, 2)}\n`);
      else process.stdout.write(formatRunnerStatus(s));
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
