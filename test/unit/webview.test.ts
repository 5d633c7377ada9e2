/**
 * The webviews' pure parts: HTML escaping and the page shell (CSP, nonce), the state
 * styles, the details model (causes, durations, history order) and its markup, and the
 * guards on messages from a webview.
 *
 * Run: `node --import tsx --test test/unit/webview.test.ts`.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { detailsModel, formatLocalTime, renderDetailsBody, type DetailsModel } from "../../client/details-model";
import { stateAttribute, stateClass, stateWord } from "../../client/state-style";
import { contentSecurityPolicy, escapeHtml, html, makeNonce, SafeHtml, webviewPage } from "../../client/webview-html";
import { TASK_STATES, type HistoryEntry, type Run, type TaskInstance, type WorkflowInstance } from "../../protocol/runner";
import { isDagWebviewMessage, isDetailsWebviewMessage } from "../../protocol/webview";

const EVIL = "<img src=x onerror=alert(1)>";
const T0 = Date.UTC(2026, 10, 19, 18, 30, 0);

function page(title: string, body: SafeHtml, nonce = "bm9uY2Vub25jZW5vbmNl"): string {
  return webviewPage({
    cspSource: "https://file+.vscode-resource.vscode-cdn.net",
    nonce,
    title,
    styles: ["https://file+.vscode-resource.vscode-cdn.net/ext/media/dag.css"],
    scripts: ["https://file+.vscode-resource.vscode-cdn.net/ext/media/dag.js"],
    body,
  });
}

/** One task instance that ran, failed, was retried, failed, and was rerun by an operator. */
function fixture(task: string): { run: Run; instance: WorkflowInstance } {
  const history: HistoryEntry[] = [
    { at: T0, from: "not_run", to: "waiting", cause: "upstream" },
    { at: T0 + 1_000, from: "waiting", to: "running", cause: "scheduler", attempt: 1 },
    { at: T0 + 3_000, from: "running", to: "waiting", cause: "retry", attempt: 1 },
    { at: T0 + 8_000, from: "waiting", to: "running", cause: "retry", attempt: 2 },
    { at: T0 + 68_000, from: "running", to: "failed", cause: "timeout", attempt: 2 },
    { at: T0 + 90_000, from: "failed", to: "waiting", cause: "operator", by: EVIL },
    { at: T0 + 90_000, from: "waiting", to: "running", cause: "scheduler", attempt: 3 },
    { at: T0 + 95_000, from: "running", to: "success", cause: "scheduler", attempt: 3 },
  ];
  const ti: TaskInstance = {
    task,
    state: "success",
    attempts: [
      { n: 1, startedAt: T0 + 1_000, cause: "scheduler", retry: 0, pid: 4242, endedAt: T0 + 3_000, exitCode: 1 },
      {
        n: 2,
        startedAt: T0 + 8_000,
        cause: "retry",
        retry: 1,
        pid: 4243,
        timedOutAt: T0 + 68_000,
        endedAt: T0 + 68_000,
        signal: "SIGTERM",
        error: `timed out after 1m ${EVIL}`,
      },
      { n: 3, startedAt: T0 + 90_000, cause: "scheduler", retry: 0, pid: 4250, endedAt: T0 + 95_000, exitCode: 0 },
    ],
    history,
  };
  const instance: WorkflowInstance = {
    id: "run-7@20261120T023000+0800",
    runId: "run-7",
    bizdate: "2026-11-19",
    cyctime: "2026-11-20T02:30:00+08:00",
    state: "finished",
    tasks: [ti],
  };
  const run = {
    id: "run-7",
    kind: "test",
    file: "file:///ws/daily-sales.flow.ts",
    workflow: "daily_sales",
    spec: { kind: "test", file: "file:///ws/daily-sales.flow.ts", workflow: "daily_sales", downstream: false },
    createdAt: T0,
    parallelism: 1,
    order: "asc",
    concurrency: 4,
    tasks: [],
    state: "success",
    instances: [instance],
  } satisfies Run;
  return { run, instance };
}

function found(model: DetailsModel): Extract<DetailsModel, { kind: "found" }> {
  assert.equal(model.kind, "found", model.kind === "missing" ? model.message : "");
  return model as Extract<DetailsModel, { kind: "found" }>;
}

describe("escaping", () => {
  test("escapeHtml escapes the five markup characters", () => {
    assert.equal(escapeHtml(`<a href="x" title='y'>&</a>`), "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
  });

  test("the html tag escapes every interpolated string, joins arrays, passes SafeHtml through", () => {
    const names = [EVIL, "load"];
    const out = html`<ul>${names.map((n) => html`<li data-task="${n}">${n}</li>`)}</ul>${null}${undefined}${false}${3}`;
    assert.equal(
      out.value,
      `<ul><li data-task="&lt;img src=x onerror=alert(1)&gt;">&lt;img src=x onerror=alert(1)&gt;</li><li data-task="load">load</li></ul>3`,
    );
    assert.ok(!out.value.includes("<img"));
  });

  test("a string that looks like markup is escaped, even when it is the SafeHtml's text", () => {
    assert.equal(html`${String(SafeHtml.trusted("<b>"))}`.value, "&lt;b&gt;");
  });
});

describe("page shell", () => {
  test("the CSP allows nothing by default, styles and images from the webview origin, scripts by nonce", () => {
    assert.equal(
      contentSecurityPolicy("https://origin", "abc"),
      "default-src 'none'; img-src https://origin; style-src https://origin; script-src 'nonce-abc';",
    );
  });

  test("the page carries the CSP with its nonce, and every script has the nonce and a src", () => {
    const nonce = makeNonce();
    const text = page("DAG: daily_sales", html`<main></main>`, nonce);
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(text);
    assert.ok(csp, "a CSP meta element");
    assert.match(csp[1], /^default-src 'none';/, "the policy is written literally, its quotes unescaped");
    assert.ok(csp[1].includes(`script-src 'nonce-${nonce}'`), csp[1]);
    // The CSP comes before anything it governs.
    assert.ok(text.indexOf("Content-Security-Policy") < text.indexOf("<link"));
    const scripts = [...text.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.equal(scripts.length, 1);
    for (const [, attributes, content] of scripts) {
      assert.ok(attributes.includes(`nonce="${nonce}"`), attributes);
      assert.match(attributes, /src="https:\/\/[^"]+\/media\/dag\.js"/);
      assert.equal(content, "", "no inline script");
    }
    assert.ok(!/\sstyle=/.test(text), "no inline style attributes (the CSP would block them)");
    assert.ok(!/<style/.test(text), "no inline style element");
  });

  test("a CSP part that could end the policy or the attribute is refused", () => {
    assert.throws(() => contentSecurityPolicy("https://origin; script-src *", "abc"), /Expected webview.cspSource/);
    // code-server's cspSource: the 'self' keyword and a host source.
    assert.match(contentSecurityPolicy("'self' https://*.vscode-cdn.net", "abc"), /img-src 'self' https:\/\/\*\.vscode-cdn\.net;/);
    assert.throws(() => contentSecurityPolicy("'unsafe-inline'", "abc"), /Expected webview.cspSource/);
    assert.throws(() => contentSecurityPolicy(`https://origin"><script>`, "abc"), /Expected webview.cspSource/);
    assert.throws(() => contentSecurityPolicy("https://origin", "abc' 'unsafe-inline"), /Expected a base64 nonce/);
  });

  test("a hostile title is escaped in the page", () => {
    const text = page(EVIL, html`<p>${EVIL}</p>`);
    assert.ok(!text.includes("<img"), text);
    assert.ok(text.includes("<title>&lt;img src=x onerror=alert(1)&gt;</title>"));
  });

  test("nonces are fresh and carry 128 bits", () => {
    const nonces = new Set(Array.from({ length: 50 }, () => makeNonce()));
    assert.equal(nonces.size, 50);
    for (const n of nonces) assert.equal(Buffer.from(n, "base64").length, 16);
  });
});

describe("state style", () => {
  test("every task state has a word, a class and a color rule in media/states.css", () => {
    const css = readFileSync(join(__dirname, "../../media/states.css"), "utf8");
    for (const state of TASK_STATES) {
      assert.equal(stateClass(state), `state-${state}`);
      assert.equal(stateAttribute(state), state);
      assert.ok(stateWord(state).length > 0);
      assert.match(css, new RegExp(`\\.state-${state}\\s*\\{\\s*--state-color:\\s*var\\(--vscode-`), `a rule for ${state}`);
    }
    assert.equal(stateWord("not_run"), "not run");
    assert.equal(stateWord(undefined), "no state");
    assert.equal(stateAttribute(undefined), "none");
    assert.match(css, /\.state-none\s*\{/);
  });

  test("the theme colors the brief names are the ones used", () => {
    const css = readFileSync(join(__dirname, "../../media/states.css"), "utf8");
    assert.match(css, /\.state-success \{ --state-color: var\(--vscode-testing-iconPassed/);
    assert.match(css, /\.state-failed \{ --state-color: var\(--vscode-testing-iconFailed/);
    assert.match(css, /\.state-waiting \{ --state-color: var\(--vscode-charts-yellow/);
    assert.match(css, /\.state-killed \{ --state-color: var\(--vscode-charts-orange/);
  });
});

describe("details model", () => {
  const target = { runId: "run-7", instanceId: "run-7@20261120T023000+0800", task: "load" };

  test("facts: run, kind, workflow, dates and the task's span across attempts", () => {
    const { run, instance } = fixture("load");
    const model = found(detailsModel(target, run, instance));
    const facts = new Map(model.facts.map((f) => [f.label, f.value]));
    assert.equal(facts.get("Run"), "run-7");
    assert.equal(facts.get("Kind"), "test");
    assert.equal(facts.get("Workflow"), "daily_sales");
    assert.equal(facts.get("Bizdate"), "2026-11-19");
    assert.equal(facts.get("Cyctime"), "2026-11-20T02:30:00+08:00");
    assert.equal(facts.get("First start"), formatLocalTime(T0 + 1_000));
    assert.equal(facts.get("Last end"), formatLocalTime(T0 + 95_000));
    assert.equal(facts.get("Duration"), "1 m 34 s", "the tree's and the CLI's format");
    assert.equal(facts.get("Attempts"), "3");
    assert.equal(model.title, "load · 2026-11-19");
  });

  test("attempts: causes from the history, durations, results and pids", () => {
    const { run, instance } = fixture("load");
    const model = found(detailsModel(target, run, instance));
    assert.deepEqual(
      model.attempts.map((a) => [a.n, a.cause, a.duration, a.outcome, a.ok, a.pid]),
      [
        [1, "scheduler", "2.0 s", "exit 1", false, "4242"],
        [2, "retry 1", "1 m 00 s", `signal SIGTERM · timed out after 1m ${EVIL}`, false, "4243"],
        [3, `rerun by ${EVIL}`, "5.0 s", "exit 0", true, "4250"],
      ],
    );
  });

  test("a running attempt has no end, no duration, and says it runs", () => {
    const { run, instance } = fixture("load");
    const ti = instance.tasks[0];
    ti.state = "running";
    ti.attempts = [{ n: 1, startedAt: T0, cause: "scheduler", retry: 0, pid: 7 }];
    const model = found(detailsModel(target, run, instance));
    assert.deepEqual(
      model.attempts.map((a) => [a.ended, a.duration, a.outcome, a.ok]),
      [["—", "—", "running", undefined]],
    );
    assert.equal(model.facts.find((f) => f.label === "Duration")?.value, "running");
  });

  test("history rows are in the order of the changes, with their causes", () => {
    const { run, instance } = fixture("load");
    // Recorded out of order (two entries share a time): sorted by time, ties kept.
    instance.tasks[0].history = [...instance.tasks[0].history.slice(4), ...instance.tasks[0].history.slice(0, 4)];
    const model = found(detailsModel(target, run, instance));
    assert.deepEqual(
      model.history.map((h) => `${h.from}→${h.to} ${h.cause} ${h.attempt}`),
      [
        "not_run→waiting upstream —",
        "waiting→running scheduler 1",
        "running→waiting retry 1",
        "waiting→running retry 2",
        "running→failed timeout 2",
        "failed→waiting operator —",
        "waiting→running scheduler 3",
        "running→success scheduler 3",
      ],
    );
    assert.equal(model.history[5].by, EVIL);
    assert.equal(model.history[0].time, formatLocalTime(T0));
  });

  test("the rendered page escapes a hostile task name and keeps rows in order", () => {
    const { run, instance } = fixture(EVIL);
    const model = detailsModel({ ...target, task: EVIL }, run, instance);
    const body = renderDetailsBody(model).value;
    const text = page(found(model).title, renderDetailsBody(model));
    for (const out of [body, text]) {
      assert.ok(!out.includes("<img"), "no element made from a task name, a `by` or an error");
      assert.ok(out.includes("&lt;img src=x onerror=alert(1)&gt;"));
    }
    assert.match(body, /<main id="details" data-task="&lt;img src=x onerror=alert\(1\)&gt;" data-state="success">/);
    assert.deepEqual(
      [...body.matchAll(/<tr data-cause="([a-z]+)"/g)].map((m) => m[1]),
      ["upstream", "scheduler", "retry", "retry", "timeout", "operator", "scheduler", "scheduler"],
    );
    assert.deepEqual(
      [...body.matchAll(/<button type="button" class="show-log link" data-attempt="(\d+)">Show log<\/button>/g)].map((m) => m[1]),
      ["1", "2", "3"],
    );
    assert.match(body, /class="state-badge state-success" data-state="success"><span class="swatch"><\/span>success</);
  });

  test("an unknown run, instance or task says so", () => {
    const { run, instance } = fixture("load");
    const missing = (m: DetailsModel) => (m.kind === "missing" ? m.message : "found");
    assert.match(missing(detailsModel(target, undefined, undefined)), /does not know run run-7/);
    assert.match(missing(detailsModel(target, run, undefined)), /has no workflow instance run-7@20261120T023000\+0800/);
    assert.match(missing(detailsModel({ ...target, task: "nope" }, run, instance)), /Task nope is not part of/);
    const body = renderDetailsBody(detailsModel({ ...target, task: EVIL }, run, instance)).value;
    assert.ok(!body.includes("<img"), body);
  });

  test("local times carry their offset and read back as the same instant", () => {
    for (const ms of [T0, Date.UTC(2026, 2, 29, 1, 30, 5), Date.UTC(2026, 9, 25, 0, 59, 59)]) {
      const text = formatLocalTime(ms);
      const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) ([+-]\d\d:\d\d)$/.exec(text);
      assert.ok(m, text);
      assert.equal(Date.parse(`${m[1]}T${m[2]}${m[3]}`), ms);
    }
  });
});

describe("messages from webviews", () => {
  test("DAG messages are checked by shape", () => {
    assert.ok(isDagWebviewMessage({ type: "ready", pinned: null }));
    assert.ok(isDagWebviewMessage({ type: "select", instanceId: "run-7@x" }));
    assert.ok(isDagWebviewMessage({ type: "reveal", task: "load" }));
    for (const bad of [null, "reveal", {}, { type: "reveal" }, { type: "reveal", task: 3 }, { type: "ready" }, { type: "select", instanceId: null }, { type: "eval", code: "" }]) {
      assert.equal(isDagWebviewMessage(bad), false, JSON.stringify(bad));
    }
  });

  test("details messages are checked by shape", () => {
    assert.ok(isDetailsWebviewMessage({ type: "showLog", attempt: 2 }));
    for (const bad of [{ type: "showLog" }, { type: "showLog", attempt: 0 }, { type: "showLog", attempt: 1.5 }, { type: "showLog", attempt: "1" }]) {
      assert.equal(isDetailsWebviewMessage(bad), false, JSON.stringify(bad));
    }
  });
});
