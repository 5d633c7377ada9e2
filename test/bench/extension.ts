/**
 * The extension's figures (`TIDEFLOW_BENCH=extension`), measured in a real VS Code: the
 * packaged extension in code-server 4.100.3 driven by headless Chromium, through the e2e
 * harness (test/e2e/harness.ts). Each figure stands beside a baseline from the same window.
 *
 * 1. `activate()`: the extension's own `activateMs` (its exports), read from the extension
 *    host through the Node inspector (SIGUSR1 on the extension host process; nothing is
 *    added to the product). Baseline: the activation time VS Code shows in
 *    "Developer: Show Running Extensions" (code loading + activate call) for the built-in
 *    vscode.typescript-language-features in the same window, beside Tideflow's own.
 *    (VS Code's log names the activation but not its duration.)
 * 2. First diagnostic after opening a workflow file: quick open's Enter → the first
 *    `.squiggly-error` on a line only Tideflow flags (the invalid task id `"2nd load"`),
 *    both timed in the page. Three kinds of file: broken/broken.flow.ts (and copies) that
 *    the server indexed at start (their diagnostics are published before the open), and
 *    copies in a dot folder that the server's scan skips (so the open goes through
 *    didOpen → analysis → publishDiagnostics). Baseline: the same measure for TypeScript's
 *    first diagnostic on `const x: number = "a";`, with tsserver warmed up first.
 * 3. Instances tree update with 10,000 task instances present (a backfill of 1,000 days ×
 *    10 `true` tasks, parallelism 8, created through the runner API): `task.operate` rerun
 *    of one task instance of the run's first (expanded) instance, from the runner's record
 *    time (the `task.state` record's `at`) to the row's `aria-label` changing in the DOM (a
 *    MutationObserver in the page; both clocks are this machine's `Date.now()`).
 *    Baseline: the same path for a run of 1 day × 10 tasks, before the big run exists.
 * 4. Extension host RSS (/proc/<pid>/status of the `--type=extensionHost` process of this
 *    code-server): with no run, before the big run, and with the big run loaded and
 *    expanded in the view.
 *
 * Set TIDEFLOW_BENCH_PROFILE=1 to also CPU-profile the extension host during extra tree
 * updates on the big run (the top functions are printed, the profile is written to
 * .bench/extension-host.cpuprofile).
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { Page } from "playwright-core";
import WebSocket from "ws";
import type { ApiEvent } from "../../protocol/api";
import type { EngineRecord, Run, TaskStateRecord } from "../../protocol/runner";
import { ensureRunner, type RunnerClient } from "../../common/runner-client";
import { launch, ROOT, type Workbench } from "../e2e/harness";
import { LspClient, uriOf } from "../lsp/harness";
import { WorkflowsRequest } from "../../protocol/lsp";
import type { RunnerBenchHelpers } from "./runner";

type Row = Record<string, unknown>;

const TASKS = 10;
const DAYS = 1000;
const EVENTS = 10;
const ROUNDS = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function r1(x: number | null | undefined): number | null {
  return x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 10) / 10;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

const taskId = (i: number) => `t${String(i).padStart(2, "0")}`;

/** `n` independent `true` shell tasks, unscheduled: a backfill has one instance per day. */
function wideFlow(id: string, n: number): string {
  const out = [`import { workflow, shell } from "tideflow";`, ""];
  for (let i = 1; i <= n; i++) out.push(`export const ${taskId(i)} = shell("${taskId(i)}", "true");`);
  out.push("", `export default workflow("${id}", { tasks: [${Array.from({ length: n }, (_, i) => taskId(i + 1)).join(", ")}] });`, "");
  return out.join("\n");
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false | null> | T | undefined | false | null, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------
// The extension host process: its pid, its memory, and a Node inspector session on it.

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** The `--type=extensionHost` node process whose parent chain leads to code-server `root`. */
function extensionHostPid(root: number): number {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, "utf8").includes("--type=extensionHost")) continue;
      for (let p = Number(name); p > 1; p = parentOf(p)) if (p === root) return Number(name);
    } catch {
      // gone
    }
  }
  throw new Error(`no extension host process under code-server ${root}`);
}

function memory(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

/** TCP ports `pid` listens on (from /proc/<pid>/fd and /proc/net/tcp{,6}). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === "0A" && inodes.has(f[9])) ports.push(parseInt(f[1].split(":")[1], 16));
    }
  }
  return ports;
}

/**
 * A Chrome DevTools Protocol session on the extension host's Node inspector. The inspector
 * is opened with SIGUSR1 on a random port (NODE_OPTIONS=--inspect-port=0 in the
 * environment code-server passes on) and closed again by `close()`.
 */
class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, (m: { result?: unknown; error?: { message: string } }) => void>();
  private constructor(
    private readonly ws: WebSocket,
    readonly pid: number,
  ) {
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
      if (m.id !== undefined) {
        this.pending.get(m.id)?.(m);
        this.pending.delete(m.id);
      }
    });
  }

  static async open(pid: number): Promise<Inspector> {
    const before = new Set(listeningPorts(pid));
    process.kill(pid, "SIGUSR1");
    const port = await until("the extension host's inspector port", () => listeningPorts(pid).find((p) => !before.has(p)), 10_000);
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
    const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const inspector = new Inspector(ws, pid);
    const seen = await inspector.evaluate<number>("process.pid");
    if (seen !== pid) {
      ws.close();
      throw new Error(`the inspector on port ${port} is process ${seen}, not the extension host ${pid}`);
    }
    return inspector;
  }

  send<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result as T)));
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send<{ result: { value?: T; description?: string }; exceptionDetails?: { exception?: { description?: string } } }>("Runtime.evaluate", {
      expression,
      includeCommandLineAPI: true,
      returnByValue: true,
      awaitPromise: true,
    });
    if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.exception?.description ?? "exception"}`);
    return r.result.value as T;
  }

  async heapMb(): Promise<number> {
    const h = await this.send<{ usedSize: number }>("Runtime.getHeapUsage");
    return h.usedSize / 1024 / 1024;
  }

  /** RSS as it is, then the JS heap in use after a full GC (what stays live), then RSS again. */
  async memory(): Promise<{ rss: number; hwm: number; heap: number; liveHeap: number; rssAfterGc: number }> {
    const m = memory(this.pid);
    const heap = await this.heapMb();
    await this.send("HeapProfiler.collectGarbage");
    const liveHeap = await this.heapMb();
    return { ...m, heap, liveHeap, rssAfterGc: memory(this.pid).rss };
  }

  /** Closes the inspector in the extension host (its port goes away) and the session. */
  async close(): Promise<void> {
    await Promise.race([this.evaluate("require('inspector').close()").catch(() => undefined), sleep(2000)]);
    this.ws.close();
  }
}

// ---------------------------------------------------------------------------------------
// In the page.

// Page code, as source text: this project's TypeScript has no DOM types.

/**
 * In the page: after the next Enter, the first time the active editor of tab `name` shows a
 * `.squiggly-error` on the line containing `lineText` (same `top` in .view-overlays as in
 * .view-lines). Times are `performance.timeOrigin + performance.now()` of the page.
 */
const DIAG_PROBE = `({ name, lineText }) => {
  window.__tfDiag?.stop?.();
  const probe = {};
  window.__tfDiag = probe;
  const now = () => performance.timeOrigin + performance.now();
  const problems = () => { const el = document.getElementById("status.problems"); return el ? el.getAttribute("aria-label") : ""; };
  const onKey = (e) => { if (e.key === "Enter" && probe.enterAt === undefined) { probe.enterAt = now(); probe.problemsBefore = problems(); } };
  const check = () => {
    if (probe.enterAt === undefined || probe.seenAt !== undefined) return;
    if (probe.problemsAt === undefined && problems() !== probe.problemsBefore) probe.problemsAt = now();
    if (!document.querySelector('.tabs-container .tab.active[data-resource-name="' + name + '"]')) return;
    for (const editor of document.querySelectorAll(".editor-group-container.active .editor-instance .monaco-editor")) {
      for (const line of editor.querySelectorAll(".view-lines > .view-line")) {
        // Monaco renders spaces as U+00A0.
        if (!line.textContent || !line.textContent.replace(/\u00a0/g, " ").includes(lineText)) continue;
        for (const overlay of editor.querySelectorAll(".view-overlays > div")) {
          if (overlay.style.top === line.style.top && overlay.querySelector(".squiggly-error")) {
            probe.seenAt = now();
            probe.stop();
            return;
          }
        }
      }
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["class", "style"] });
  window.addEventListener("keydown", onKey, true);
  probe.stop = () => { observer.disconnect(); window.removeEventListener("keydown", onKey, true); };
}`;

/**
 * In the page: records every change of the aria-label of the Instances view's rows whose
 * label matches `pattern` (group 1: the row's key, e.g. the task id of `tNN: …`), with
 * `Date.now()`, into `window.__tfRows.changes`.
 */
const ROWS_WATCH = `(paneSelector, pattern) => {
  window.__tfRows?.stop?.();
  const watch = { changes: [] };
  window.__tfRows = watch;
  const pane = document.querySelector(paneSelector);
  if (!pane) throw new Error("no Instances pane");
  const last = new Map();
  const scan = () => {
    const at = Date.now();
    for (const row of pane.querySelectorAll(".monaco-list-row[aria-label]")) {
      const label = row.getAttribute("aria-label") || "";
      const m = new RegExp(pattern).exec(label);
      if (!m) continue;
      if (last.get(m[1]) !== label) {
        if (last.has(m[1])) watch.changes.push({ task: m[1], at, label });
        last.set(m[1], label);
      }
    }
  };
  scan();
  const observer = new MutationObserver(scan);
  observer.observe(pane, { subtree: true, childList: true, attributes: true, attributeFilter: ["aria-label"] });
  watch.stop = () => observer.disconnect();
}`;

/** Quick open of `relPath`: returns when Enter is pressed (the timing runs in the page). */
async function quickOpen(page: Page, relPath: string): Promise<void> {
  const quickInput = page.locator(".quick-input-widget");
  const box = quickInput.locator(".quick-input-box input");
  await page.keyboard.press("Control+P");
  await box.waitFor({ state: "visible" });
  await box.fill(relPath);
  await quickInput.locator(".monaco-list-row", { hasText: basename(relPath) }).first().waitFor({ state: "visible", timeout: 20_000 });
  await page.keyboard.press("Enter");
}

/**
 * Opens `relPath` with quick open and returns the ms from its Enter to the first
 * `.squiggly-error` on the line containing `lineText`, in the active editor of the tab
 * named after the file; both times taken in the page.
 */
async function timeFirstSquiggle(page: Page, relPath: string, lineText: string, timeoutMs = 60_000): Promise<{ ms: number; enterAt: number; seenAt: number; problemsAt?: number }> {
  const name = basename(relPath);
  await page.evaluate(`(${DIAG_PROBE})(${JSON.stringify({ name, lineText })})`);
  await quickOpen(page, relPath);
  const got = await until(
    `a squiggle on "${lineText}" in ${relPath}`,
    () => page.evaluate<{ enterAt: number; seenAt: number; problemsAt?: number } | undefined>(
      "(() => { const p = window.__tfDiag; return p.seenAt !== undefined && p.enterAt !== undefined ? { enterAt: p.enterAt, seenAt: p.seenAt, problemsAt: p.problemsAt } : undefined; })()",
    ),
    timeoutMs,
    25,
  );
  return { ms: got.seenAt - got.enterAt, ...got };
}

/** The Problems item of the status bar: "Errors: 19, Warnings: 1, Infos: 1". */
async function problemCount(page: Page): Promise<number> {
  const label = (await page.locator("#status\\.problems").first().getAttribute("aria-label").catch(() => null)) ?? "";
  return [...label.matchAll(/(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

const INSTANCES_PANE = `.pane:has(.pane-header[aria-label^="Instances"])`;

function treeRow(page: Page, labelStart: string) {
  return page.locator(`${INSTANCES_PANE} .monaco-list-row[aria-label^="${labelStart}"]`).first();
}

/**
 * Records, in the page, every change of a task row's aria-label in the Instances view
 * (rows whose label is `tNN: …`), with `Date.now()`.
 */
async function watchRows(page: Page, pattern: string): Promise<void> {
  await page.evaluate(`(${ROWS_WATCH})(${JSON.stringify(INSTANCES_PANE)}, ${JSON.stringify(pattern)})`);
}

const watchTaskRows = (page: Page) => watchRows(page, "^(t\\d\\d): ");

async function rowChanges(page: Page): Promise<{ task: string; at: number; label: string }[]> {
  return page.evaluate<{ task: string; at: number; label: string }[]>("window.__tfRows.changes");
}

// ---------------------------------------------------------------------------------------
// The runner, from the bench process.

interface Runner {
  client: RunnerClient;
  records: { rec: EngineRecord; arrivedAt: number }[];
}

async function runToEnd(r: Runner, params: { file: string; from: string; to: string }, timeoutMs: number): Promise<Run> {
  const { run } = await r.client.request("runs.create", { kind: "backfill", parallelism: 8, by: "bench", ...params });
  await until(
    `${run.id} to end`,
    () => r.records.some(({ rec }) => rec.type === "run.state" && rec.runId === run.id && rec.from === "running" && rec.to !== "running"),
    timeoutMs,
    200,
  );
  return r.client.request("runs.get", { run: run.id });
}

interface TreeEvent {
  task: string;
  /** Record `at` (runner clock) → the row's aria-label changed (page clock). */
  recordToRowMs: number;
  /** The bench sent `task.operate` → the row changed. */
  requestToRowMs: number;
  /** Record `at` → the records event arrived at the bench's own subscribed client. */
  recordToBenchMs: number;
  firstLabel: string;
}

/**
 * Reruns each task of the run's first (expanded) instance in turn, and times the first
 * aria-label change of its row. Between events, waits for the rerun to end and the row
 * to show it, so that each event starts from a quiet tree.
 */
async function treeEvents(page: Page, r: Runner, run: Run, count: number): Promise<TreeEvent[]> {
  const inst = run.instances[0];
  const out: TreeEvent[] = [];
  await watchTaskRows(page);
  for (let i = 0; i < count; i++) {
    const task = taskId((i % TASKS) + 1);
    const before = (await rowChanges(page)).length;
    // Attempts so far of this task instance: the run as fetched, plus the reruns since (counted here).
    const ti = inst.tasks.find((t) => t.task === task)!;
    const attemptsBefore = ti.attempts.length;
    const sentAt = Date.now();
    const recordsFrom = r.records.length;
    await r.client.request("task.operate", { run: run.id, task, date: inst.id, op: "rerun", by: "bench" });
    const first = await until(
      `the record of the rerun of ${task}`,
      () => r.records.slice(recordsFrom).find(({ rec }) => rec.type === "task.state" && rec.instanceId === inst.id && rec.task === task),
      10_000,
      5,
    );
    const change = await until(`the row of ${task} to change`, async () => (await rowChanges(page)).slice(before).find((c) => c.task === task), 30_000, 10);
    const at = (first.rec as TaskStateRecord).at;
    out.push({ task, recordToRowMs: change.at - at, requestToRowMs: change.at - sentAt, recordToBenchMs: first.arrivedAt - at, firstLabel: change.label });
    // The rerun ends (a `true` task), the run ends, and the row says so.
    await until(
      `the rerun of ${task} and its run to end`,
      () => r.records.slice(recordsFrom).some(({ rec }) => rec.type === "run.state" && rec.runId === run.id && rec.from === "running" && rec.to !== "running"),
      30_000,
      20,
    );
    ti.attempts.push({ ...ti.attempts[ti.attempts.length - 1], n: attemptsBefore + 1 });
    await until(`the row of ${task} to show attempt ${attemptsBefore + 1}`, async () => (await treeRow(page, `${task}: success, attempt ${attemptsBefore + 1}`).count()) > 0, 30_000, 20);
    await sleep(300);
  }
  return out;
}

/** Expands the run's row and its first instance's row; returns when the task rows show. */
async function expandRun(page: Page, run: Run): Promise<void> {
  const runRow = treeRow(page, `${run.id}, `);
  await runRow.waitFor({ state: "visible", timeout: 60_000 });
  if ((await runRow.getAttribute("aria-expanded")) !== "true") await runRow.click();
  const instRow = treeRow(page, `bizdate ${run.instances[0].bizdate}, `);
  await instRow.waitFor({ state: "visible", timeout: 60_000 });
  if ((await instRow.getAttribute("aria-expanded")) !== "true") await instRow.click();
  await treeRow(page, `${taskId(TASKS)}: `).waitFor({ state: "visible", timeout: 60_000 });
}

async function collapseRun(page: Page, run: Run): Promise<void> {
  const runRow = treeRow(page, `${run.id}, `);
  if ((await runRow.getAttribute("aria-expanded")) === "true") await runRow.click();
  await until(`${run.id} to collapse`, async () => (await page.locator(`${INSTANCES_PANE} .monaco-list-row[aria-label^="t01: "]`).count()) === 0, 10_000);
}

// ---------------------------------------------------------------------------------------

/**
 * The server's own part of the not-indexed case, without VS Code: didOpen → the first
 * publishDiagnostics for that file, over stdio, in a copy of examples/ with the same
 * dot-folder copies (so the server has indexed the rest first, as in the window).
 */
async function serverDidOpen(files: { path: string; text?: string }[]): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), "tideflow-bench-open-"));
  const client = await (async () => {
    cpSync(join(ROOT, "examples"), dir, { recursive: true });
    for (const f of files) {
      mkdirSync(join(dir, f.path, ".."), { recursive: true });
      writeFileSync(join(dir, f.path), f.text ?? "");
    }
    return LspClient.start({ root: dir });
  })();
  try {
    await client.connection.sendRequest(WorkflowsRequest.method, {}); // answers once the workspace is indexed
    const out: number[] = [];
    for (const f of files) {
      const uri = uriOf(join(dir, f.path));
      const got = client.waitForDiagnostics(uri, (d) => d.length > 0, 30_000);
      const start = performance.now();
      await client.open(uri, f.text ?? "");
      await got;
      out.push(performance.now() - start);
    }
    return out;
  } finally {
    await client.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// CPU profile of the extension host (TIDEFLOW_BENCH_PROFILE=1).

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

function topFunctions(profile: { nodes: ProfileNode[]; samples?: number[]; timeDeltas?: number[] }, n: number): Row[] {
  const byNode = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) byNode.set(samples[i], (byNode.get(samples[i]) ?? 0) + (deltas[i] ?? 0) / 1000);
  const byFunction = new Map<string, number>();
  for (const node of profile.nodes) {
    const ms = byNode.get(node.id) ?? 0;
    if (ms === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${url.replace(/^.*\/(extensions|out)\//, "$1/")}:${lineNumber + 1}` : "";
    const key = `${functionName || "(anonymous)"} ${where}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
  }
  const total = [...byFunction.values()].reduce((a, b) => a + b, 0);
  return [...byFunction.entries()]
    .filter(([k]) => !/^\((idle|program)\)/.test(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, ms]) => ({ self_ms: r1(ms), share: `${Math.round((ms / total) * 100)}%`, function: fn.slice(0, 140) }));
}

// ---------------------------------------------------------------------------------------

export async function benchExtension(h: RunnerBenchHelpers): Promise<void> {
  const broken = readFileSync(join(ROOT, "examples", "broken", "broken.flow.ts"), "utf8");
  const INVALID_ID = `shell("2nd load",`;
  if (!broken.includes(INVALID_ID)) throw new Error(`examples/broken/broken.flow.ts no longer has ${INVALID_ID}`);
  /** A copy of broken.flow.ts with its own workflow id and its own invalid task id (so its line is unique). */
  const brokenCopy = (tag: string) => broken.replace(`"broken_demo"`, `"broken_${tag}"`).replace(INVALID_ID, `shell("2nd load ${tag}",`);
  const indexed: { path: string; line: string; text?: string }[] = [
    { path: "broken/broken.flow.ts", line: INVALID_ID },
    ...Array.from({ length: ROUNDS - 1 }, (_, i) => ({ path: `broken/broken-${i + 2}.flow.ts`, line: `shell("2nd load i${i + 2}",`, text: brokenCopy(`i${i + 2}`) })),
  ];
  const cold: { path: string; line: string; text?: string }[] = Array.from({ length: ROUNDS }, (_, i) => ({ path: `.cold/cold-${i + 1}.flow.ts`, line: `shell("2nd load c${i + 1}",`, text: brokenCopy(`c${i + 1}`) }));
  const ts: { path: string; line: string; text?: string }[] = Array.from({ length: ROUNDS }, (_, i) => {
    const v = i === 0 ? "x" : `x${i + 1}`;
    return { path: i === 0 ? "ts-error.ts" : `ts-error-${i + 1}.ts`, line: `const ${v}: number = "a";`, text: `const ${v}: number = "a";\n` };
  });
  const workspaceFiles: Record<string, string> = {
    "ts-warm.ts": `export const warm: number = "warm";\n`,
    "bench-wide.flow.ts": wideFlow("bench_wide", TASKS),
  };
  for (const f of [...indexed, ...cold, ...ts]) if (f.text) workspaceFiles[f.path] = f.text;

  process.stdout.write("extension: the server alone, didOpen → publishDiagnostics… ");
  const serverOpenMs = await serverDidOpen(cold);
  console.log(serverOpenMs.map((x) => `${r1(x)} ms`).join(", "));
  const context = { load_avg_1m: r1(loadavg()[0]) };
  console.log(`extension: load average ${context.load_avg_1m}; launching code-server + Chromium…`);
  const wb: Workbench = await launch({
    workspaceFiles,
    viewport: { width: 1600, height: 1200 },
    // SIGUSR1 opens the inspector on a random port, not 9229 (which another process may hold).
    env: { NODE_OPTIONS: [process.env.NODE_OPTIONS, "--inspect-port=127.0.0.1:0"].filter(Boolean).join(" ") },
  });
  let inspector: Inspector | undefined;
  let runner: Runner | undefined;
  try {
    const { page } = wb;
    await wb.waitForActivation();
    const host = extensionHostPid(wb.codeServer.pid);

    // 1. activate(): the extension's own figure, from its exports.
    process.stdout.write("extension: activation… ");
    inspector = await Inspector.open(host);
    const extJs = join(wb.tempDir, "extensions", readdirSync(join(wb.tempDir, "extensions")).find((d) => d.startsWith("tideflow.tideflow-"))!, "dist", "extension.js");
    // The extension host hands `vscode` to a require from inside an extension's folder.
    const activateMs = await inspector.evaluate<number>(
      `require('module').createRequire(${JSON.stringify(extJs)})('vscode').extensions.getExtension('tideflow.tideflow').exports.activateMs`,
    );

    // 2. First diagnostics. The server has indexed the workspace once the Problems count settles.
    process.stdout.write("diagnostics… ");
    let lastCount = -1;
    let stableSince = Date.now();
    await until("the Problems count to settle", async () => {
      const n = await problemCount(page);
      if (n !== lastCount) {
        lastCount = n;
        stableSince = Date.now();
      }
      return n > 0 && Date.now() - stableSince > 1500;
    }, 90_000, 100);
    // In the extension host, for the breakdown: when each document opens there, and when
    // diagnostics for it arrive there (a listener on Tideflow's own API object; read-only).
    await inspector.evaluate(`(() => {
      const vscode = require('module').createRequire(${JSON.stringify(extJs)})('vscode');
      const seen = globalThis.__tfBench = { open: {}, diagnostics: {} };
      const name = (u) => u.path.split('/').pop();
      vscode.workspace.onDidOpenTextDocument((d) => { seen.open[name(d.uri)] ??= Date.now(); });
      vscode.languages.onDidChangeDiagnostics((e) => {
        const at = Date.now();
        for (const u of e.uris) for (const d of vscode.languages.getDiagnostics(u)) (seen.diagnostics[name(u)] ??= {})[d.source ?? ''] ??= at;
      });
      return true;
    })()`);
    // tsserver starts on the first TS file: warm it up first, so TypeScript's figure is a warm one.
    const tsColdMs = (await timeFirstSquiggle(page, "ts-warm.ts", `export const warm: number = "warm";`, 120_000)).ms;
    const diag: { kind: string; file: string; ms: number; enterAt: number; seenAt: number; problemsAt?: number }[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      for (const [kind, f] of [["tideflow, indexed", indexed[i]], ["tideflow, not indexed", cold[i]], ["typescript", ts[i]]] as const) {
        diag.push({ kind, file: f.path, ...(await timeFirstSquiggle(page, f.path, f.line)) });
        await sleep(300);
      }
    }
    const hostSeen = await inspector.evaluate<{ open: Record<string, number>; diagnostics: Record<string, Record<string, number>> }>("globalThis.__tfBench");
    const diagRows: Row[] = diag.map((d) => {
      const name = basename(d.file);
      const open = hostSeen.open[name];
      // Tideflow's diagnostics for workflow files, TypeScript's ("ts") for the others.
      // An indexed file's diagnostics were published before the open (and before the listener).
      const diagnostics = d.kind === "tideflow, indexed" ? undefined : hostSeen.diagnostics[name]?.[d.kind === "typescript" ? "ts" : "tideflow"];
      return {
        kind: d.kind,
        file: d.file,
        enter_to_squiggle: r1(d.ms),
        enter_to_host_open: open !== undefined ? r1(open - d.enterAt) : null,
        host_open_to_host_diagnostics: open !== undefined && diagnostics !== undefined ? r1(diagnostics - open) : null,
        host_diagnostics_to_squiggle: diagnostics !== undefined ? r1(d.seenAt - diagnostics) : null,
        enter_to_problems_count: d.problemsAt !== undefined ? r1(d.problemsAt - d.enterAt) : null,
        sources_in_host: Object.entries(hostSeen.diagnostics[name] ?? {}).map(([src, at]) => `${src || "?"}@${r1(at - d.enterAt)}`).join(" "),
      };
    });

    // VS Code's own activation figures (code loading + activate call), same window.
    await wb.runCommand("Developer: Show Running Extensions");
    const running = await until("the running extensions list", async () => {
      const rows = await page.locator(".runtime-extensions-editor .monaco-list-row").allInnerTexts();
      const find = (name: string) => rows.map((t) => t.split("\n")).find((l) => l[0] === name);
      const time = (l: string[] | undefined) => (l ? Number(/Activation: (\d+)ms/.exec(l.join(" "))?.[1]) : Number.NaN);
      const tideflow = time(find("Tideflow"));
      const typescript = time(find("TypeScript and JavaScript Language Features"));
      return Number.isFinite(tideflow) && Number.isFinite(typescript) ? { tideflow, typescript, rows: rows.map((t) => t.replace(/\n/g, " · ")) } : undefined;
    }, 30_000, 250);
    await page.keyboard.press("Control+W").catch(() => undefined);

    // 3 and 4. The runner, started from here; the extension attaches when runner.json appears.
    process.stdout.write("runner… ");
    const { client } = await ensureRunner(wb.workspaceDir, join(ROOT, "dist", "runner.js"));
    runner = { client, records: [] };
    const rr = runner;
    client.onEvent((e: ApiEvent) => {
      const arrivedAt = Date.now();
      if (e.event === "records") for (const rec of e.records) rr.records.push({ rec, arrivedAt });
    });
    await client.request("subscribe", { records: true });
    await until("the extension to attach to the runner", async () => /Tideflow: idle/.test((await page.locator(`[id="tideflow.tideflow.tideflow.runner"]`).first().getAttribute("aria-label").catch(() => "")) ?? ""), 30_000, 100);
    await wb.openViewContainer("Tideflow");
    await page.locator(INSTANCES_PANE).waitFor({ state: "visible" });
    await sleep(2000);
    const noRun = await inspector.memory();

    const file = join(wb.workspaceDir, "bench-wide.flow.ts");
    const from = "2024-01-01";
    process.stdout.write(`small run (1 day × ${TASKS})… `);
    const small = await runToEnd(runner, { file, from, to: from }, 60_000);
    await expandRun(page, small);
    await sleep(500);
    const smallEvents = await treeEvents(page, runner, small, EVENTS);
    await collapseRun(page, small);
    await sleep(1000);
    const beforeBig = await inspector.memory();

    process.stdout.write(`big run (${DAYS} days × ${TASKS})… `);
    // While it runs: how often does its row in the view change?
    await watchRows(page, "^(run-\\d+), ");
    const bigStart = Date.now();
    const big = await runToEnd(runner, { file, from, to: addDays(from, DAYS - 1) }, 15 * 60_000);
    const bigEnd = Date.now();
    const bigRunS = (bigEnd - bigStart) / 1000;
    await sleep(1000);
    const runRowChanges = (await rowChanges(page)).filter((c) => c.task === big.id && c.at <= bigEnd);
    const gaps = runRowChanges.map((c, i) => c.at - (i === 0 ? bigStart : runRowChanges[i - 1].at));
    const live = { updates: runRowChanges.length, maxGapMs: gaps.length ? Math.max(...gaps, bigEnd - runRowChanges[runRowChanges.length - 1].at) : bigEnd - bigStart };
    const taskInstances = big.instances.reduce((n, i) => n + i.tasks.length, 0);
    await sleep(1000);
    const expandStart = Date.now();
    await expandRun(page, big);
    const expandMs = Date.now() - expandStart;
    await sleep(2000);
    const withBig = await inspector.memory();
    process.stdout.write("tree events… ");
    const bigEvents = await treeEvents(page, runner, big, EVENTS);
    const afterEvents = memory(host);

    let profileRows: Row[] = [];
    let rendererRows: Row[] = [];
    let profiledEvents: TreeEvent[] = [];
    if (process.env.TIDEFLOW_BENCH_PROFILE) {
      process.stdout.write("profile… ");
      const cdp = await page.context().newCDPSession(page);
      await inspector.send("Profiler.enable");
      await inspector.send("Profiler.setSamplingInterval", { interval: 200 });
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
      await inspector.send("Profiler.start");
      await cdp.send("Profiler.start");
      const profiled = await treeEvents(page, runner, big, 5);
      const { profile } = await inspector.send<{ profile: { nodes: ProfileNode[]; samples?: number[]; timeDeltas?: number[] } }>("Profiler.stop");
      const renderer = (await cdp.send("Profiler.stop")).profile as unknown as { nodes: ProfileNode[]; samples?: number[]; timeDeltas?: number[] };
      await cdp.detach();
      mkdirSync(join(ROOT, ".bench"), { recursive: true });
      writeFileSync(join(ROOT, ".bench", "extension-host.cpuprofile"), JSON.stringify(profile));
      writeFileSync(join(ROOT, ".bench", "workbench-renderer.cpuprofile"), JSON.stringify(renderer));
      profileRows = topFunctions(profile, 25);
      rendererRows = topFunctions(renderer, 25);
      profiledEvents = profiled;
    }
    console.log("done");

    // ---------------------------------------------------------------------------------
    const byKind = (kind: string) => diag.filter((d) => d.kind === kind).map((d) => d.ms);
    const indexedMs = byKind("tideflow, indexed");
    const coldMs = byKind("tideflow, not indexed");
    const tsMs = byKind("typescript");
    const stat = (events: TreeEvent[], k: keyof TreeEvent) => ({ median: median(events.map((e) => e[k] as number)), max: Math.max(...events.map((e) => e[k] as number)) });
    const bigRec = stat(bigEvents, "recordToRowMs");
    const smallRec = stat(smallEvents, "recordToRowMs");
    const bigReq = stat(bigEvents, "requestToRowMs");
    const smallReq = stat(smallEvents, "requestToRowMs");

    const rows: Row[] = [
      { figure: "activate() (exports.activateMs)", value: r1(activateMs), unit: "ms", baseline: `VS Code's activation (code loading + activate call): TypeScript ${running.typescript} ms, Tideflow ${running.tideflow} ms`, goal: "≤ 50 ms" },
      ...diag.map((d) => ({ figure: `first diagnostic: ${d.kind}`, value: r1(d.ms), unit: "ms", baseline: d.file, goal: d.kind === "typescript" ? "" : "≤ 500 ms" })),
      { figure: "first diagnostic: typescript, cold tsserver (warm-up file)", value: r1(tsColdMs), unit: "ms", baseline: "ts-warm.ts", goal: "" },
      { figure: "server alone: didOpen → publishDiagnostics, not-indexed copies (stdio, no VS Code)", value: serverOpenMs.map((x) => r1(x)).join(" / "), unit: "ms", baseline: cold.map((f) => f.path).join(", "), goal: "" },
      { figure: `tree update, ${taskInstances} task instances: record → row (median / max)`, value: `${r1(bigRec.median)} / ${r1(bigRec.max)}`, unit: "ms", baseline: `${TASKS} task instances: ${r1(smallRec.median)} / ${r1(smallRec.max)} ms`, goal: "≤ 100 ms" },
      { figure: `tree update, ${taskInstances} task instances: request → row (median / max)`, value: `${r1(bigReq.median)} / ${r1(bigReq.max)}`, unit: "ms", baseline: `${TASKS} task instances: ${r1(smallReq.median)} / ${r1(smallReq.max)} ms`, goal: "" },
      { figure: "extension host RSS with no run", value: r1(noRun.rss), unit: "MB", baseline: memText(noRun), goal: "" },
      { figure: `extension host RSS with a run of ${TASKS} task instances`, value: r1(beforeBig.rss), unit: "MB", baseline: memText(beforeBig), goal: "" },
      { figure: `extension host RSS with ${taskInstances} task instances, expanded`, value: r1(withBig.rss), unit: "MB", baseline: `${memText(withBig)}; after the events ${r1(afterEvents.rss)} MB`, goal: "" },
    ];
    h.printTable("Extension figures in a real VS Code (code-server 4.100.3, headless Chromium)", rows);
    h.printTable(
      "First diagnostic after quick open (ms from Enter; page and extension host clocks are this machine's wall clock; the host sees diagnostics through onDidChangeDiagnostics, which VS Code debounces by 50 ms)",
      diagRows,
    );
    printEvents("Tree updates, run of 10 task instances (ms)", smallEvents, h);
    printEvents(`Tree updates, run of ${taskInstances} task instances (ms)`, bigEvents, h);
    console.log(`\nRunning extensions (VS Code's activation times): ${running.rows.join(" | ")}`);
    console.log(`Big run: ${DAYS} days × ${TASKS} tasks, ${taskInstances} task instances, ${big.state} in ${bigRunS.toFixed(1)} s; expanding it in the view took ${expandMs} ms (click → its last task row visible).`);
    console.log(`While it ran, its row in the Instances view changed ${live.updates} times; the longest time without a change was ${(live.maxGapMs / 1000).toFixed(1)} s.`);
    if (profileRows.length) {
      printEvents("Tree updates under the profilers (big run)", profiledEvents, h);
      h.printTable("Extension host CPU profile during 5 more tree updates on the big run (self time)", profileRows);
      h.printTable("Workbench renderer CPU profile, same 5 updates (self time)", rendererRows);
    }

    console.log("");
    const line = (name: string, value: string, goal: string, baseline: string) => console.log(`${name}: ${value} (goal ${goal}; baseline ${baseline})`);
    line("activate() duration", `${r1(activateMs)} ms`, "≤ 50 ms", `VS Code's activation time (code loading + activate call) of vscode.typescript-language-features ${running.typescript} ms; Tideflow's by the same measure ${running.tideflow} ms`);
    line("first diagnostic after open, indexed workflow file (median)", `${r1(median(indexedMs))} ms [${indexedMs.map(r1).join(", ")}]`, "≤ 500 ms", `TypeScript, warm tsserver ${r1(median(tsMs))} ms [${tsMs.map(r1).join(", ")}]`);
    line("first diagnostic after open, workflow file not indexed (median)", `${r1(median(coldMs))} ms [${coldMs.map(r1).join(", ")}]`, "≤ 500 ms", `TypeScript, warm tsserver ${r1(median(tsMs))} ms; cold tsserver ${r1(tsColdMs)} ms; the server alone, didOpen → publishDiagnostics over stdio: ${serverOpenMs.map((x) => r1(x)).join(", ")} ms`);
    line(`Instances tree update with ${taskInstances} task instances, record → row (median / max)`, `${r1(bigRec.median)} / ${r1(bigRec.max)} ms`, "≤ 100 ms", `${TASKS} task instances ${r1(smallRec.median)} / ${r1(smallRec.max)} ms`);
    line(`extension host RSS with ${taskInstances} task instances`, `${r1(withBig.rss)} MB (before the big run ${r1(beforeBig.rss)} MB; live JS heap ${r1(withBig.liveHeap)} MB)`, "none set", `no run ${r1(noRun.rss)} MB, live JS heap ${r1(noRun.liveHeap)} MB`);

    h.addRow({ bench: "extension context", ...context, extension_host_pid: host });
    for (const r of rows) h.addRow({ bench: "extension", ...r });
    for (const r of diagRows) h.addRow({ bench: "extension first diagnostic", ...r });
    h.addRow({ bench: "extension host memory", no_run: noRun, small_run: beforeBig, big_run_expanded: withBig, after_events: afterEvents });
    for (const e of smallEvents) h.addRow({ bench: "extension tree event", run_task_instances: TASKS, ...e });
    for (const e of bigEvents) h.addRow({ bench: "extension tree event", run_task_instances: taskInstances, ...e });
    h.addRow({ bench: "extension running extensions", rows: running.rows });
    h.addRow({ bench: "extension big run", days: DAYS, tasks: TASKS, task_instances: taskInstances, state: big.state, run_s: r1(bigRunS), expand_ms: expandMs, run_row_updates_while_running: live.updates, run_row_max_gap_ms: live.maxGapMs });
    h.goal("activate() (the extension's activateMs)", activateMs, "ms", 50);
    h.goal("first diagnostic after open, indexed workflow file (median)", median(indexedMs), "ms", 500);
    h.goal("first diagnostic after open, workflow file not indexed (median)", median(coldMs), "ms", 500);
    h.goal(`Instances tree update, ${taskInstances} task instances, record → row (median)`, bigRec.median, "ms", 100);
    h.goal(`Instances tree update, ${taskInstances} task instances, record → row (max)`, bigRec.max, "ms", 100);
  } finally {
    runner?.client.close();
    await inspector?.close().catch(() => undefined);
    await wb.close();
  }
}

function memText(m: { heap: number; liveHeap: number; hwm: number; rssAfterGc: number }): string {
  return `heap ${r1(m.heap)} MB, live after GC ${r1(m.liveHeap)} MB; RSS after GC ${r1(m.rssAfterGc)} MB; peak ${r1(m.hwm)} MB`;
}

function printEvents(title: string, events: TreeEvent[], h: RunnerBenchHelpers): void {
  h.printTable(
    title,
    events.map((e) => ({ task: e.task, record_to_row: r1(e.recordToRowMs), request_to_row: r1(e.requestToRowMs), record_to_bench_client: r1(e.recordToBenchMs), first_label: e.firstLabel })),
  );
}
