/**
 * How the CLI shows runs: the `--json` document of SPEC §4, the human tables, and the
 * plan of a `--dry-run`.
 */
import { relative } from "node:path";
import type { OperateResult, RunnerStatus, RunPlan } from "../protocol/api";
import type { Attempt, Run, RunSummary, TaskInstance, TaskState, WorkflowInstance } from "../protocol/runner";

/** SPEC §4's `--json` shape: the run, its workflow instances and their task instances. */
export interface RunDocument {
  id: string;
  kind: Run["kind"];
  workflow: string;
  file: string;
  state: Run["state"];
  createdAt: string;
  endedAt?: string;
  parallelism: number;
  order: Run["order"];
  instances: {
    id: string;
    bizdate: string;
    cyctime: string;
    state: string;
    tasks: {
      task: string;
      state: TaskState;
      /** How many attempts ran. */
      attempts: number;
      /** Of the last attempt. */
      exitCode: number | null;
      signal?: string;
      error?: string;
      startedAt: string | null;
      endedAt: string | null;
      history?: { at: string; from: TaskState; to: TaskState; cause: string; by?: string; attempt?: number }[];
    }[];
  }[];
}

const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());

export function runDocument(run: Run, options: { history?: boolean } = {}): RunDocument {
  return {
    id: run.id,
    kind: run.kind,
    workflow: run.workflow,
    file: run.file,
    state: run.state,
    createdAt: new Date(run.createdAt).toISOString(),
    ...(run.endedAt !== undefined ? { endedAt: new Date(run.endedAt).toISOString() } : {}),
    parallelism: run.parallelism,
    order: run.order,
    instances: run.instances.map((i) => ({
      id: i.id,
      bizdate: i.bizdate,
      cyctime: i.cyctime,
      state: i.state,
      tasks: i.tasks.map((t) => {
        const last: Attempt | undefined = t.attempts[t.attempts.length - 1];
        return {
          task: t.task,
          state: t.state,
          attempts: t.attempts.length,
          exitCode: last?.exitCode ?? null,
          ...(last?.signal ? { signal: last.signal } : {}),
          ...(last?.error ? { error: last.error } : {}),
          startedAt: iso(last?.startedAt),
          endedAt: iso(last?.endedAt),
          ...(options.history
            ? { history: t.history.map((h) => ({ ...h, at: new Date(h.at).toISOString() })) }
            : {}),
        };
      }),
    })),
  };
}

const STATE_MARK: Record<TaskState, string> = {
  not_run: "·",
  waiting: "…",
  running: "▶",
  success: "✓",
  failed: "✗",
  killed: "■",
  paused: "‖",
};

import { elapsed, localTime } from "../common/time-format";
import { setSuccessBy } from "../common/task-words";

export { elapsed, localTime };

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join("  ").trimEnd()).join("\n") + "\n";
}

export function formatRuns(runs: RunSummary[]): string {
  if (runs.length === 0) return "no runs yet: start one with `tideflow test <file>` or `tideflow backfill <file> --from D --to D`\n";
  const rows = [["RUN", "KIND", "WORKFLOW", "STATE", "INSTANCES", "TASKS", "CREATED"]];
  for (const r of runs) {
    const counts = (Object.entries(r.counts) as [TaskState, number][]).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`);
    rows.push([r.id, r.kind, r.workflow, r.state, String(r.instances), counts.join(", ") || "-", localTime(r.createdAt)]);
  }
  return table(rows);
}

function taskLine(t: TaskInstance, now: number): string[] {
  const last = t.attempts[t.attempts.length - 1];
  const took = last ? elapsed((last.endedAt ?? now) - last.startedAt) : "";
  const outcome = !last
    ? ""
    : last.endedAt === undefined
      ? last.killRequestedAt !== undefined
        ? "being killed"
        : last.timedOutAt !== undefined
          ? "timed out, being killed"
          : "running"
      : last.error ?? (last.signal ? `signal ${last.signal}` : `exit ${last.exitCode}`);
  const by = setSuccessBy(t);
  const retry = by !== undefined ? `set success${by ? ` by ${by}` : ""}` : t.retryAt !== undefined ? `retry at ${localTime(t.retryAt).slice(11)}` : "";
  return [`${STATE_MARK[t.state]} ${t.task}`, t.state, last ? `attempt ${last.n}` : "", took, [outcome, retry].filter(Boolean).join(", ")];
}

/**
 * A paused task instance holds its run open: the run's `endedAt` says it stopped moving,
 * not that it ended, so it is shown as waiting for a resume.
 */
function pausedNote(run: Run): string | undefined {
  const paused = run.instances.flatMap((i) => i.tasks.filter((t) => t.state === "paused"));
  if (paused.length === 0) return undefined;
  const tasks = [...new Set(paused.map((t) => t.task))];
  const how = tasks.length === 1 ? `\`tideflow resume ${run.id} ${tasks[0]}\`` : `\`tideflow resume ${run.id} <task>\` (${tasks.join(", ")})`;
  return `${paused.length} task instance${paused.length === 1 ? "" : "s"} paused: ${how}`;
}

/** A workflow instance with nothing left to do but paused task instances is paused, not finished. */
function instanceState(inst: Run["instances"][number]): string {
  return inst.state === "finished" && inst.tasks.some((t) => t.state === "paused") ? "paused" : inst.state;
}

/** The run's two header lines of `show`. */
function runHeader(run: Run, paused: string | undefined): string {
  const file = relative(process.cwd(), run.file) || run.file;
  const ended = run.endedAt !== undefined && !paused ? run.endedAt : undefined;
  return (
    `${run.id}  ${run.kind} of ${run.workflow} (${file})  ${run.state}\n` +
    `  created ${localTime(run.createdAt)}${run.by ? ` by ${run.by}` : ""}` +
    `${ended !== undefined ? `, ended ${localTime(ended)} (${elapsed(ended - run.createdAt)})` : ""}` +
    `${paused ? `, ${paused}` : ""}; ` +
    `parallelism ${run.parallelism}, order ${run.order}, concurrency ${run.concurrency}\n`
  );
}

export function formatRun(run: Run, options: { brief?: boolean; history?: boolean } = {}): string {
  const now = Date.now();
  const paused = pausedNote(run);
  const ended = run.endedAt !== undefined && !paused ? run.endedAt : undefined;
  let out = options.brief
    ? `${run.id} ${run.state}${ended !== undefined ? ` after ${elapsed(ended - run.createdAt)}` : ""}${paused ? `; ${paused}` : ""}\n`
    : runHeader(run, paused);
  if (options.brief && run.instances.length > 3) {
    // A long backfill: one line per instance, the tasks as state marks; the ones that did
    // not succeed by name.
    out += "\n";
    for (const inst of run.instances) {
      const marks = inst.tasks.map((t) => STATE_MARK[t.state]).join("");
      const others = inst.tasks.filter((t) => t.state !== "success").map((t) => `${t.task} ${t.state}`);
      out += `  ${inst.bizdate}  ${inst.cyctime.slice(11, 16)}  ${marks}  ${others.join(", ") || "success"}\n`;
    }
    return out;
  }
  for (const inst of run.instances) {
    out += `\n  ${inst.bizdate}  cyctime ${inst.cyctime}  ${instanceState(inst)}\n`;
    const rows = inst.tasks.map((t) => ["   ", ...taskLine(t, now)]);
    out += table(rows);
    if (options.history) {
      for (const t of inst.tasks) {
        out += `    ${t.task}:\n`;
        for (const h of t.history) {
          out += `      ${localTime(h.at)}  ${h.from} → ${h.to}  ${h.cause}${h.by ? ` by ${h.by}` : ""}${h.attempt ? ` (attempt ${h.attempt})` : ""}\n`;
        }
      }
    }
  }
  return out;
}

/** `--dry-run`: the instances in start order, the tasks with their upstreams, the total. */
export function formatPlan(plan: RunPlan): string {
  const n = plan.instances.length;
  const m = plan.tasks.length;
  const file = relative(process.cwd(), plan.file) || plan.file;
  let out =
    `dry run, nothing created: ${plan.kind} of ${plan.workflow} (${file})` +
    `${plan.kind === "backfill" ? `; parallelism ${plan.parallelism}, order ${plan.order}` : ""}\n` +
    `tasks, in dependency order: ${plan.tasks.map((t) => (t.upstream.length > 0 ? `${t.id} (after ${t.upstream.join(", ")})` : t.id)).join(", ")}\n\n`;
  for (const i of plan.instances) out += `  ${i.bizdate}  cyctime ${i.cyctime}\n`;
  out += `\nwould run ${n} workflow instance${n === 1 ? "" : "s"} × ${m} task${m === 1 ? "" : "s"} = ${plan.total} task instance${plan.total === 1 ? "" : "s"}\n`;
  return out;
}

/** The task instances of one state that a summary lists: the first pages' worth, and how many in all. */
export interface StateSection {
  state: TaskState;
  /** Task instances in this state, in all. */
  count: number;
  /** Workflow instances having task instances in this state (the first ones, in run order). */
  instances: WorkflowInstance[];
}

const fmt = (n: number) => n.toLocaleString("en-US");

/**
 * `show` of a big run: counts per state, then the task instances that want attention
 * (failed, killed, running, paused), at most `cap` lines each.
 */
export function formatRunSummary(run: Run, summary: RunSummary, sections: StateSection[], cap: number): string {
  const now = Date.now();
  const pausedCount = summary.counts.paused;
  const paused = pausedCount > 0 ? `${fmt(pausedCount)} task instance${pausedCount === 1 ? "" : "s"} paused: \`tideflow resume ${run.id} <task> --date D\`` : undefined;
  const counts = (Object.entries(summary.counts) as [TaskState, number][]).filter(([, n]) => n > 0).map(([s, n]) => `${fmt(n)} ${s}`);
  let out = runHeader(run, paused);
  out += `\n  ${fmt(summary.instances)} workflow instances × ${run.tasks.length} task${run.tasks.length === 1 ? "" : "s"}: ${counts.join(", ") || "none"}\n`;
  for (const section of sections) {
    out += `\n  ${section.state} (${fmt(section.count)}):\n`;
    const rows: string[][] = [];
    for (const inst of section.instances) {
      for (const t of inst.tasks) {
        if (t.state === section.state && rows.length < cap) rows.push(["   ", inst.bizdate, inst.cyctime.slice(11, 16), ...taskLine(t, now)]);
      }
    }
    if (rows.length > 0) out += table(rows);
    if (section.count > rows.length) out += `    … and ${fmt(section.count - rows.length)} more\n`;
  }
  out += `\nevery instance: \`tideflow show ${run.id} --all\`; one: \`tideflow show ${run.id} --date D\`\n`;
  return out;
}

/** `tideflow runner status`: the runner, its runs and its journal, and any damage found in it. */
export function formatRunnerStatus(s: RunnerStatus, now = Date.now()): string {
  const warning = journalDamageWarning(s);
  return (
    `runner pid ${s.pid} on 127.0.0.1:${s.port} for ${s.workspace}, up ${Math.round((now - s.startedAt) / 1000)} s\n` +
    `${s.runs} run(s), ${s.runningRuns} running, ${s.activeAttempts} attempt(s) running; journal ${s.journal.records} records, ${(s.journal.bytes / 1024).toFixed(0)} KiB\n` +
    (warning ? `${warning}\n` : "")
  );
}

/**
 * The one line a command prints on stderr when the runner found its journal damaged at
 * start, or undefined: what was lost and where the original file is.
 */
export function journalDamageWarning(s: RunnerStatus): string | undefined {
  const d = s.journal.damage;
  if (!d) return undefined;
  const lost = `${d.records} record${d.records === 1 ? "" : "s"} (${d.bytes} bytes)`;
  const skipped = d.notApplied > 0 ? `, ${d.notApplied} later record${d.notApplied === 1 ? "" : "s"} no longer applied` : "";
  return (
    `warning: the runner's journal was damaged (found ${localTime(d.at)}): ${lost} unreadable and dropped${skipped}; ` +
    `the runs may miss those changes${d.keptAs ? `; the original is kept as ${d.keptAs}` : ""}`
  );
}

/** The most changes `formatOperateResult` lists one per line; more are summarised by kind. */
const OPERATE_LINES_SHOWN = 20;

/**
 * An operation's answer: a line per change, or, for a batch on a big run, the counts by
 * kind and the first few lines.
 */
export function formatOperateResult(r: OperateResult): string {
  if (r.total <= OPERATE_LINES_SHOWN) return `${r.changed.map((c) => `${r.runId}: ${c}`).join("\n")}\n`;
  const kinds = Object.entries(r.counts).map(([kind, n]) => `  ${n.toLocaleString("en-US")}  ${kind}`);
  const first = r.changed.slice(0, 5).map((c) => `  ${c}`);
  return `${r.runId}: ${r.total.toLocaleString("en-US")} changes\n${kinds.join("\n")}\nfirst ${first.length}:\n${first.join("\n")}\n`;
}
