/**
 * The task instance details page as plain data, and its markup: what `DetailsPanel`
 * shows. Pure (no `vscode`, no clock: `now` is a parameter), so unit tests build pages
 * from hand-made runs.
 *
 * Times are shown in the local zone of the extension host, with its offset
 * (`2026-11-19 02:30:05 +08:00`); the cyctime is shown as the run recorded it (the
 * workflow's zone, with its offset).
 */
import { elapsed } from "../common/time-format";
import { setSuccessBy } from "../common/task-words";
import type { Attempt, HistoryCause, Run, TaskInstance, TaskState, WorkflowInstance } from "../protocol/runner";
import { stateAttribute, stateClass, stateWord } from "./state-style";
import { html, type SafeHtml } from "./webview-html";

export interface DetailsTarget {
  runId: string;
  instanceId: string;
  task: string;
}

export interface Fact {
  label: string;
  value: string;
}

export interface AttemptRow {
  n: number;
  /** `scheduler`, `retry 2`, `rerun by vscode`, `recovery`. */
  cause: string;
  started: string;
  ended: string;
  duration: string;
  /** `exit 0`, `exit 1`, `signal SIGTERM · timed out after 5s`, `running`. */
  outcome: string;
  /** Whether the attempt ended well (exit 0, no signal, no error); undefined while it runs. */
  ok: boolean | undefined;
  pid: string;
}

export interface HistoryRow {
  time: string;
  from: TaskState;
  to: TaskState;
  cause: HistoryCause;
  by: string;
  attempt: string;
}

export type DetailsModel =
  | {
      kind: "found";
      /** The panel's title: `load · 2026-11-19`. */
      title: string;
      task: string;
      state: TaskState;
      facts: Fact[];
      attempts: AttemptRow[];
      history: HistoryRow[];
    }
  | { kind: "missing"; title: string; message: string };

const NONE = "—";

/** `2026-11-19 02:30:05 +08:00` in the local zone. */
export function formatLocalTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  const offset = -d.getTimezoneOffset();
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ` +
    `${sign}${p(Math.floor(abs / 60))}:${p(abs % 60)}`
  );
}

function time(ms: number | undefined): string {
  return ms === undefined ? NONE : formatLocalTime(ms);
}

/** A measured duration: the one format of the tree, the CLI and the logs (common/time-format.ts). */
function span(from: number, to: number): string {
  return elapsed(Math.max(0, Math.round(to - from)));
}

export function detailsModel(target: DetailsTarget, run: Run | undefined, instance: WorkflowInstance | undefined): DetailsModel {
  const title = target.task;
  if (run === undefined) {
    return { kind: "missing", title, message: `The runner does not know run ${target.runId} (any more).` };
  }
  if (instance === undefined || instance.runId !== run.id) {
    return { kind: "missing", title, message: `Run ${run.id} has no workflow instance ${target.instanceId}.` };
  }
  const ti = instance.tasks.find((t) => t.task === target.task);
  if (ti === undefined) {
    return {
      kind: "missing",
      title,
      message: `Task ${target.task} is not part of workflow instance ${instance.id} of run ${run.id}.`,
    };
  }

  const first = ti.attempts[0];
  const last = ti.attempts[ti.attempts.length - 1];
  // The task's wall-clock span, across retries and reruns; open while the last attempt runs.
  const lastEnd = last?.endedAt;
  const duration =
    first === undefined ? NONE : lastEnd === undefined ? ti.state === "running" ? "running" : NONE : span(first.startedAt, lastEnd);

  const facts: Fact[] = [
    { label: "Run", value: run.id },
    { label: "Kind", value: run.kind },
    { label: "Workflow", value: run.workflow },
    { label: "Bizdate", value: instance.bizdate },
    { label: "Cyctime", value: instance.cyctime },
    { label: "Workflow instance", value: `${instance.id} (${instance.state})` },
    { label: "First start", value: time(first?.startedAt) },
    { label: "Last end", value: time(lastEnd) },
    { label: "Duration", value: duration },
    { label: "Attempts", value: String(ti.attempts.length) },
  ];
  const by = setSuccessBy(ti);
  if (by !== undefined) {
    const change = ti.history[ti.history.length - 1];
    facts.unshift({ label: "Set success", value: `by ${by || "hand"} at ${formatLocalTime(change.at)}, from ${change.from}` });
  }
  if (ti.retryAt !== undefined) facts.push({ label: "Retry at", value: formatLocalTime(ti.retryAt) });
  if (ti.after !== undefined && ti.after.length > 0) facts.push({ label: "Also waits for", value: ti.after.join(", ") });

  return {
    kind: "found",
    title: `${ti.task} · ${instance.bizdate}`,
    task: ti.task,
    state: ti.state,
    facts,
    attempts: ti.attempts.map((a) => attemptRow(ti, a)),
    history: historyRows(ti),
  };
}

function attemptRow(ti: TaskInstance, a: Attempt): AttemptRow {
  const ended = a.endedAt !== undefined;
  return {
    n: a.n,
    cause: attemptCause(ti, a),
    started: formatLocalTime(a.startedAt),
    ended: time(a.endedAt),
    duration: ended ? span(a.startedAt, a.endedAt!) : NONE,
    outcome: attemptOutcome(ti, a),
    ok: ended ? a.exitCode === 0 && a.signal === undefined && a.error === undefined : undefined,
    pid: a.pid === undefined ? NONE : String(a.pid),
  };
}

/**
 * Why the attempt started. `Attempt.cause` says scheduler or retry; what put the task back
 * to run before that (an operator's rerun, a runner recovery) is in the history: the last
 * move to `waiting` before the attempt's own move to `running`.
 */
function attemptCause(ti: TaskInstance, a: Attempt): string {
  const base = a.cause === "retry" ? `retry ${a.retry}` : "scheduler";
  const start = ti.history.findIndex((h) => h.to === "running" && h.attempt === a.n);
  for (let i = (start === -1 ? ti.history.length : start) - 1; i >= 0; i--) {
    const h = ti.history[i];
    if (h.to === "running") break; // an earlier attempt's start: nothing in between
    if (h.to !== "waiting") continue;
    if (h.cause === "operator") return h.by === undefined ? "rerun" : `rerun by ${h.by}`;
    if (h.cause === "recovery") return "recovery";
    break;
  }
  return base;
}

function attemptOutcome(ti: TaskInstance, a: Attempt): string {
  if (a.endedAt === undefined) {
    if (a.killRequestedAt !== undefined) return `kill requested${a.killRequestedBy ? ` by ${a.killRequestedBy}` : ""}; being killed`;
    if (a.timedOutAt !== undefined) return "timed out; being killed";
    if (ti.state === "killed") return "being killed";
    return a.pid === undefined ? "starting" : "running";
  }
  const parts: string[] = [];
  if (a.exitCode !== undefined) parts.push(`exit ${a.exitCode}`);
  if (a.signal !== undefined) parts.push(`signal ${a.signal}`);
  if (a.error !== undefined) parts.push(a.error);
  return parts.length === 0 ? "ended" : parts.join(" · ");
}

/** In the order the changes happened (the recorded order; a stable sort keeps ties so). */
function historyRows(ti: TaskInstance): HistoryRow[] {
  return [...ti.history]
    .sort((a, b) => a.at - b.at)
    .map((h) => ({
      time: formatLocalTime(h.at),
      from: h.from,
      to: h.to,
      cause: h.cause,
      by: h.by ?? NONE,
      attempt: h.attempt === undefined ? NONE : String(h.attempt),
    }));
}

// ---------------------------------------------------------------------------------------
// Markup. Hooks for tests and the script: #details[data-task][data-state],
// table.attempts tr[data-attempt], button.show-log[data-attempt], table.history tr[data-cause].
// ---------------------------------------------------------------------------------------

function stateBadge(state: TaskState): SafeHtml {
  return html`<span class="state-badge ${stateClass(state)}" data-state="${stateAttribute(state)}"><span class="swatch"></span>${stateWord(state)}</span>`;
}

export function renderDetailsBody(model: DetailsModel): SafeHtml {
  if (model.kind === "missing") {
    return html`<main id="details" class="missing"><p class="message">${model.message}</p></main>`;
  }
  const facts = model.facts.map((f) => html`<dt>${f.label}</dt><dd>${f.value}</dd>`);
  const attempts =
    model.attempts.length === 0
      ? html`<p class="empty">No attempt yet.</p>`
      : html`<table class="attempts">
<thead><tr><th>#</th><th>Cause</th><th>Started</th><th>Ended</th><th>Duration</th><th>Result</th><th>PID</th><th></th></tr></thead>
<tbody>
${model.attempts.map(
  (a) => html`<tr data-attempt="${a.n}" class="${a.ok === undefined ? "open" : a.ok ? "ok" : "not-ok"}">\
<td class="num">${a.n}</td><td>${a.cause}</td><td class="time">${a.started}</td><td class="time">${a.ended}</td>\
<td class="num">${a.duration}</td><td class="outcome">${a.outcome}</td><td class="num">${a.pid}</td>\
<td><button type="button" class="show-log link" data-attempt="${a.n}">Show log</button></td></tr>
`,
)}</tbody>
</table>`;
  const history =
    model.history.length === 0
      ? html`<p class="empty">No state change yet.</p>`
      : html`<table class="history">
<thead><tr><th>Time</th><th>From</th><th></th><th>To</th><th>Cause</th><th>By</th><th>Attempt</th></tr></thead>
<tbody>
${model.history.map(
  (h) => html`<tr data-cause="${h.cause}" data-from="${h.from}" data-to="${h.to}">\
<td class="time">${h.time}</td><td>${stateBadge(h.from)}</td><td class="arrow">→</td><td>${stateBadge(h.to)}</td>\
<td class="cause">${h.cause}</td><td>${h.by}</td><td class="num">${h.attempt}</td></tr>
`,
)}</tbody>
</table>`;

  return html`<main id="details" data-task="${model.task}" data-state="${stateAttribute(model.state)}">
<header class="head">
<h1><span class="task-name">${model.task}</span> ${stateBadge(model.state)}</h1>
</header>
<section class="facts-section"><dl class="facts">${facts}</dl></section>
<section><h2>Attempts</h2>
${attempts}
</section>
<section><h2>History</h2>
${history}
</section>
</main>`;
}
