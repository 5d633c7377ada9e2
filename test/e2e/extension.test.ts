/**
 * The extension end to end, in a real VS Code (code-server) in headless Chromium, on a
 * copy of examples/ without its tsconfig.json (so `import ... from "tideflow"` type-checks
 * only through the extension's TypeScript server plugin). Every step is done the way a
 * person does it — palette, code lens, tree context menu, dialogs — and checked on what the
 * screen shows, and on the OS where a process is involved. Screenshots: test/e2e/screenshots/.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test as nodeTest } from "node:test";
import type { Frame, FrameLocator, Locator, Page } from "playwright-core";
import { RunnerClient, readRunnerInfo } from "../../common/runner-client";
import { findMarkedProcesses } from "../../runner/exec/process-tree";
import { launch, processesUsing, ROOT, type Workbench } from "./harness";

/** A task to kill: a shell that starts a grandchild and waits (its whole tree must end). */
const SLOW_FLOW = `import { workflow, shell } from "tideflow";

export const slow_sleep = shell("slow_sleep", { timeout: "10m" },
  "echo starting the long sleep; bash -c 'sleep 301' & sleep 302; wait");

export default workflow("slow_flow", { timezone: "UTC", tasks: [slow_sleep] });
`;

/** A task that fails at once, with an error line on stderr. */
const FAILING_FLOW = `import { workflow, shell } from "tideflow";

export const load_table = shell("load_table", "echo loading; echo 'ERROR: table sales_raw does not exist' >&2; exit 3");

export default workflow("failing_flow", { timezone: "UTC", tasks: [load_table] });
`;

/** Not a workflow file: one TypeScript error (ts(2322), its message below), to know when TypeScript has checked. */
const TS_PROBE = `export const probe: number = "not a number";\n`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The workbench of the suite running now: a step that times out leaves a screenshot of what was on screen. */
let current: Workbench | undefined;

/** A test that saves a screenshot of the page when it fails, whatever failed in it. */
function test(name: string, fn: () => Promise<void>): void {
  nodeTest(name, async () => {
    try {
      await fn();
    } catch (e) {
      await current?.screenshot(`failed-${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 40)}`).catch(() => undefined);
      throw e;
    }
  });
}
let failures = 0;

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > timeoutMs) {
      await current?.screenshot(`failed-${++failures}-${what}`).catch(() => undefined);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await sleep(200);
  }
}

/** Brings a workspace file to the front: its tab when it is open, else quick open. */
async function showFile(wb: Workbench, relPath: string): Promise<void> {
  const name = relPath.split("/").pop()!;
  const tab = wb.tab(name);
  if ((await tab.count()) > 0) {
    await tab.first().click();
    await wb.page.locator(`.tabs-container .tab.active[data-resource-name="${name}"]`).waitFor({ timeout: 10_000 });
    return;
  }
  await wb.openFile(relPath);
}

function quickInput(page: Page): Locator {
  return page.locator(".quick-input-widget");
}

/** Picks the quick-pick row whose label contains `label`. */
async function pick(page: Page, label: string | RegExp): Promise<void> {
  const row = quickInput(page).locator(".monaco-list-row", { hasText: label }).first();
  await row.waitFor({ state: "visible", timeout: 20_000 });
  await row.click();
}

/**
 * Waits for the input box whose prompt holds `prompt`, types `text` into it and presses
 * Enter once the box holds it. One prompt follows another in the same widget: typing
 * before the next prompt is up would land in the one just answered (or be overwritten by
 * the next one's default).
 */
async function answer(page: Page, prompt: string, text: string): Promise<void> {
  await quickInput(page).locator(".quick-input-message", { hasText: prompt }).waitFor({ state: "visible", timeout: 20_000 });
  const box = quickInput(page).locator(".quick-input-box input");
  await box.fill(text);
  await until(`the box for "${prompt}" to hold ${text}`, async () => (await box.inputValue()) === text || (await box.fill(text), false), 10_000);
  await page.keyboard.press("Enter");
}

/** The tree row of a view whose aria-label starts with `label`. */
function treeRow(page: Page, view: string, label: string): Locator {
  return page.locator(`.pane:has(.pane-header[aria-label^="${view}"]) .monaco-list-row[aria-label^="${label}"]`).first();
}

async function rowLabel(page: Page, view: string, label: string): Promise<string> {
  return (await treeRow(page, view, label).getAttribute("aria-label")) ?? "";
}

async function contextMenu(page: Page, row: Locator, item: string): Promise<void> {
  await until(`the row to open "${item}" on`, () => row.isVisible(), 20_000);
  // A hover tooltip left from an earlier step would take the click.
  await page.mouse.move(5, 5);
  await page.keyboard.press("Escape");
  await row.click({ button: "right" });
  const entry = page.locator(".context-view .monaco-menu .action-item", { hasText: new RegExp(`^${item.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`) }).first();
  await entry.waitFor({ state: "visible", timeout: 10_000 });
  await entry.click();
  // A click that lands while the menu is still settling is ignored by VS Code (the menu
  // stays open with the item highlighted): then choose it with the keyboard.
  const menu = page.locator(".context-view .monaco-menu");
  for (let i = 0; i < 3; i++) {
    if (await menu.waitFor({ state: "hidden", timeout: 1000 }).then(() => true, () => false)) return;
    await entry.hover();
    await page.keyboard.press("Enter");
  }
}

/** Clicks the code lens `title` (e.g. "Test task") of the task declared as `export const <task>`. */
async function clickTaskLens(page: Page, task: string, title: string): Promise<void> {
  // Scroll the declaration into view with Find, then take the lens right above its line.
  await page.locator(".editor-instance .monaco-editor textarea").first().focus();
  await page.keyboard.press("Control+F");
  await page.keyboard.type(`export const ${task} =`);
  await page.keyboard.press("Enter");
  await page.keyboard.press("Escape");
  const line = page.locator(".editor-instance .view-line", { hasText: `export const ${task} =` }).first();
  await line.waitFor({ state: "visible", timeout: 20_000 });
  // Lenses render a moment after the scroll: compare positions afresh each time.
  const lens = await until(`the ${title} lens of ${task}`, async () => {
    const lineBox = await line.boundingBox();
    if (!lineBox) return undefined;
    let best: { el: Locator; y: number } | undefined;
    for (const el of await page.locator(".contentWidgets .codelens-decoration a:visible", { hasText: title }).all()) {
      const box = await el.boundingBox();
      if (box && box.y < lineBox.y && (!best || box.y > best.y)) best = { el, y: box.y };
    }
    return best && lineBox.y - best.y < 40 ? best.el : undefined;
  }, 60_000);
  await lens.click();
}

async function runnerClient(dir: string): Promise<RunnerClient> {
  const info = await until("runner.json", () => readRunnerInfo(dir));
  return RunnerClient.connect(info);
}

/** The innermost frame of the webview titled `title`. */
async function webviewFrame(page: Page, titlePart: string): Promise<Frame> {
  return until(`webview ${titlePart}`, async () => {
    for (const f of page.frames()) {
      if (f.name() === "active-frame" || f.url().includes("fake.html")) {
        const t = await f.title().catch(() => "");
        if (t.includes(titlePart) || (await f.locator("[data-task]").count().catch(() => 0)) > 0) return f;
      }
    }
    return undefined;
  }, 30_000);
}

describe("VS Code extension, trusted workspace", { concurrency: false, timeout: 900_000 }, () => {
  let wb: Workbench;
  let page: Page;

  before(async () => {
    wb = await launch({ workspaceFiles: { "slow.flow.ts": SLOW_FLOW, "failing.flow.ts": FAILING_FLOW, "0-ts-probe.ts": TS_PROBE }, env: { TIDEFLOW_KILL_GRACE_MS: "2000" } });
    page = wb.page;
    current = wb;
  }, { timeout: 600_000 });

  after(async () => {
    await wb?.close();
  });

  test("diagnostics: the broken file's in Problems; the good files have no TypeScript error", async () => {
    await showFile(wb, "daily-sales.flow.ts");
    await showFile(wb, "broken/broken.flow.ts");
    // A file with one TypeScript error, opened last: once its error is in Problems, the
    // TypeScript server has checked the open files (VS Code asks for all of them at once).
    // Its name sorts first, so that its row is in the (virtualized) list's first screen.
    await showFile(wb, "0-ts-probe.ts");
    await wb.runCommand("View: Focus Problems (Errors, Warnings, Infos)");
    const problems = page.locator(".markers-panel .monaco-list-row");
    await until("tideflow diagnostics in Problems", async () => (await problems.allInnerTexts()).join("\n").includes("tideflow"), 60_000);
    await until("TypeScript's error in 0-ts-probe.ts", async () => (await problems.allInnerTexts()).join("\n").match(/Type 'string' is not assignable to type 'number'/), 60_000);
    const text = (await problems.allInnerTexts()).join("\n");
    await wb.screenshot("01-problems");
    assert.match(text, /cycle|unknown-upstream|invalid-cron/);
    const fileRows = await page.locator(".markers-panel .monaco-list-row[aria-label*='daily-sales.flow.ts']").count();
    assert.equal(fileRows, 0, `daily-sales.flow.ts has problems:\n${text}`);
    assert.doesNotMatch(text, /Cannot find module 'tideflow'/);
  });

  test("the Workflows view lists the example workflows", async () => {
    await wb.openViewContainer("Tideflow");
    for (const id of ["daily_sales", "weekly_report", "hourly_events", "slow_flow"]) {
      await treeRow(page, "Workflows", id).waitFor({ timeout: 60_000 });
    }
    await wb.screenshot("02-workflows");
  });

  test("the ▶ Test lens on a task runs it; the Instances view shows running, then success", async () => {
    await showFile(wb, "daily-sales.flow.ts");
    await clickTaskLens(page, "extract_orders", "Test task");
    await pick(page, "Only extract_orders");
    await pick(page, "yesterday");
    await treeRow(page, "Instances", "extract_orders").waitFor({ timeout: 60_000 });
    const seen = new Set<string>();
    await until("extract_orders to succeed", async () => {
      const label = await rowLabel(page, "Instances", "extract_orders");
      for (const s of ["waiting", "running", "success", "failed"]) if (label.includes(`: ${s}`)) seen.add(s);
      if (label.includes(": running")) await wb.screenshot("03-test-running");
      return label.includes(": success");
    }, 90_000);
    await wb.screenshot("03-test-success");
    assert.ok(seen.has("running"), `states seen: ${[...seen].join(", ")}`);
    assert.match(await page.locator(".part.statusbar").innerText(), /Tideflow: (idle|\d+ tasks? running)/);
  });

  test("Show Log opens the attempt's log with the task's output", async () => {
    await contextMenu(page, treeRow(page, "Instances", "extract_orders"), "Show Log");
    const tab = page.locator(".tabs-container .tab.active", { hasText: "extract_orders.1.log" });
    await tab.waitFor({ timeout: 30_000 });
    await page.locator(".editor-instance .view-lines", { hasText: "extracting 2000 orders" }).first().waitFor({ timeout: 30_000 });
    await wb.screenshot("04-log");
  });

  test("a long task is killed from the tree and its process tree is gone", async () => {
    await showFile(wb, "slow.flow.ts");
    await wb.runCommand("Tideflow: Test Workflow");
    await pick(page, "yesterday");
    await until("slow_sleep running", async () => (await rowLabel(page, "Instances", "slow_sleep")).includes(": running"), 60_000);
    const client = await runnerClient(wb.workspaceDir);
    try {
      const runs = await client.request("runs.list", {});
      const run = await client.request("runs.get", { run: runs.filter((r) => r.workflow === "slow_flow").sort((a, b) => b.createdAt - a.createdAt)[0].id });
      const inst = run.instances[0];
      const marker = `${inst.id}/slow_sleep/1`;
      await until("the task's processes to exist", () => findMarkedProcesses(marker).length >= 2, 20_000);
      await wb.screenshot("05-kill-before");
      await contextMenu(page, treeRow(page, "Instances", "slow_sleep"), "Kill");
      await until("slow_sleep killed", async () => (await rowLabel(page, "Instances", "slow_sleep")).includes(": killed"), 30_000);
      await until("the task's process tree to be gone", () => findMarkedProcesses(marker).length === 0, 15_000);
      await wb.screenshot("05-kill-after");
    } finally {
      client.close();
    }
  });

  test("rerun from the tree succeeds", async () => {
    const row = treeRow(page, "Instances", "extract_orders");
    await contextMenu(page, row, "Rerun");
    await until("extract_orders attempt 2 to succeed", async () => {
      const l = await rowLabel(page, "Instances", "extract_orders");
      return l.includes(": success") && l.includes("attempt 2");
    }, 90_000);
    await wb.screenshot("06-rerun");
    // A click on the task instance opens its details: attempts and the history with causes.
    await page.mouse.move(5, 5);
    await treeRow(page, "Instances", "extract_orders").click();
    const details = await until("the details webview", async () => {
      for (const f of page.frames()) if ((await f.locator("main#details").count().catch(() => 0)) > 0) return f;
      return undefined;
    });
    await details.locator('main#details[data-state="success"]').waitFor({ timeout: 20_000 });
    assert.equal(await details.locator("table.attempts tr[data-attempt]").count(), 2);
    const causes = await details.locator("table.history tr[data-cause]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-cause")));
    assert.ok(causes.includes("scheduler") && causes.includes("operator"), `history causes: ${causes.join(", ")}`);
    await wb.screenshot("06-details");
  });

  test("a failed task gets a tideflow-run diagnostic with its log's error line", async () => {
    await showFile(wb, "failing.flow.ts");
    await wb.runCommand("Tideflow: Test Workflow");
    await pick(page, "yesterday");
    await until("load_table failed", async () => (await rowLabel(page, "Instances", "load_table")).includes(": failed"), 60_000);
    await wb.runCommand("View: Focus Problems (Errors, Warnings, Infos)");
    // Problems lists broken.flow.ts first; filter to the run diagnostics.
    const filter = page.getByPlaceholder(/^Filter \(e\.g\. text/).first();
    await filter.fill("tideflow-run");
    await until("the run diagnostic in Problems", async () => {
      const text = (await page.locator(".markers-panel .monaco-list-row").allInnerTexts()).join("\n");
      return /load_table failed on .*table sales_raw does not exist/.test(text) && text.includes("tideflow-run");
    }, 30_000);
    await wb.screenshot("06b-run-diagnostic");
    await filter.fill("");
  });

  test("a backfill from the palette shows its plan and runs after confirming", async () => {
    await showFile(wb, "daily-sales.flow.ts");
    await wb.runCommand("Tideflow: Backfill…");
    await answer(page, "First bizdate", "2026-11-01");
    await answer(page, "Last bizdate", "2026-11-03");
    await pick(page, "All tasks");
    await pick(page, "2");
    await pick(page, "Ascending");
    const dialog = page.locator(".monaco-dialog-box");
    await dialog.waitFor({ timeout: 60_000 });
    assert.match(await dialog.innerText(), /3 workflow instances × \d+ tasks = \d+ task instances/);
    await page.locator(".editor-instance .view-lines", { hasText: "2026-11-02" }).first().waitFor({ timeout: 10_000 });
    await wb.screenshot("07-backfill-plan");
    await dialog.locator(".monaco-button", { hasText: "Start Backfill" }).click();
    const client = await runnerClient(wb.workspaceDir);
    try {
      const run = await until("the backfill run", async () => (await client.request("runs.list", {})).find((r) => r.kind === "backfill"));
      assert.equal(run.instances, 3);
      await treeRow(page, "Instances", run.id).waitFor({ timeout: 30_000 });
      await until("the backfill to end", async () => (await client.request("runs.get", { run: run.id })).state !== "running", 180_000);
      await until("the tree to show it ended", async () => !(await rowLabel(page, "Instances", run.id)).includes("running"), 10_000);
      await wb.screenshot("07-backfill-done");
    } finally {
      client.close();
    }
  });

  test("the runner stopped and started from a terminal: the editor follows it", async () => {
    const statusBar = page.locator(".part.statusbar");
    const cli = (args: string[]) => execFileSync(process.execPath, [join(ROOT, "dist", "cli.js"), ...args], { cwd: wb.workspaceDir, encoding: "utf8" });
    cli(["runner", "stop"]);
    await until("the status bar to say stopped", async () => (await statusBar.innerText()).includes("Tideflow: stopped"), 30_000);
    cli(["runner", "start"]);
    await until("the status bar to say idle (attached to the CLI's runner)", async () => (await statusBar.innerText()).includes("Tideflow: idle"), 30_000);
    await treeRow(page, "Instances", "run-1").waitFor({ timeout: 30_000 });
    assert.ok(!(await wb.notifications()).some((n) => n.includes("stopped unexpectedly")), "a stop from a terminal is no crash");
    await wb.screenshot("08a-reattached");
  });

  test("kill -9 of the runner: the editor says so, running rows say no runner, Start Runner adopts the task", async () => {
    await showFile(wb, "slow.flow.ts");
    await wb.runCommand("Tideflow: Test Workflow");
    await pick(page, "yesterday");
    await until("slow_sleep running", async () => (await rowLabel(page, "Instances", "slow_sleep")).includes(": running"), 60_000);
    const progress = () => wb.notifications().then((ns) => ns.some((n) => n.includes("test of slow_flow")));
    await until("the run's progress notification", progress, 20_000);
    // The line is in the attempt's log file (what a runner had written before it died is
    // what the editor can read from disk afterwards).
    const client = await runnerClient(wb.workspaceDir);
    let logFile: string;
    try {
      const runs = (await client.request("runs.list", {})).filter((r) => r.workflow === "slow_flow").sort((a, b) => b.createdAt - a.createdAt);
      const run = await client.request("runs.get", { run: runs[0].id });
      logFile = join(wb.workspaceDir, ".tideflow", "logs", run.instances[0].id, "slow_sleep.1.log");
    } finally {
      client.close();
    }
    await until("the log file to hold the task's first line", () => existsSync(logFile) && readFileSync(logFile, "utf8").includes("starting the long sleep"), 30_000);
    const info = readRunnerInfo(wb.workspaceDir)!;
    process.kill(info.pid, "SIGKILL");
    await until("the crash notification", async () => (await wb.notifications()).some((n) => n.includes(`the runner (pid ${info.pid}) stopped unexpectedly`)), 30_000);
    assert.equal((await wb.notifications()).filter((n) => n.includes("stopped unexpectedly")).length, 1, "one crash, one notification");
    await until("the running row to say there is no runner", async () => (await rowLabel(page, "Instances", "slow_sleep")).includes("no runner"), 30_000);
    // No progress notification (with its Cancel) is left for a run no runner follows.
    await until("the run's progress notification to go", async () => !(await progress()), 15_000);
    await wb.screenshot("08b-runner-crashed");
    // Logs are files: Show Log with no runner reads it from .tideflow/logs.
    await contextMenu(page, treeRow(page, "Instances", "slow_sleep"), "Show Log");
    await page.locator(".tabs-container .tab.active", { hasText: "slow_sleep.1.log" }).waitFor({ timeout: 30_000 });
    await page.locator(".editor-instance .view-lines", { hasText: "starting the long sleep" }).first().waitFor({ timeout: 30_000 });
    assert.equal(await page.locator(".editor-instance .view-lines", { hasText: "not running" }).count(), 0, "the log, not a 'runner is not running' page");
    // The warning's own button; VS Code may have moved the toast to the notification center meanwhile.
    const toastButton = page.locator(".notifications-toasts .notification-toast", { hasText: "stopped unexpectedly" }).first().locator(".monaco-button", { hasText: "Start Runner" });
    if (!(await toastButton.isVisible())) await wb.runCommand("Notifications: Show Notifications");
    const button = (await toastButton.isVisible())
      ? toastButton
      : page.locator(".notifications-center .notification-list-item", { hasText: "stopped unexpectedly" }).first().locator(".monaco-button", { hasText: "Start Runner" });
    await button.click({ timeout: 20_000 });
    await until("slow_sleep running again, adopted by the new runner", async () => {
      const label = await rowLabel(page, "Instances", "slow_sleep");
      return label.includes(": running") && !label.includes("no runner");
    }, 60_000);
    const now = readRunnerInfo(wb.workspaceDir)!;
    assert.notEqual(now.pid, info.pid, "a new runner");
    await wb.screenshot("08c-runner-adopted");
    // Leave nothing running for the next test.
    execFileSync(process.execPath, [join(ROOT, "dist", "cli.js"), "kill", "last"], { cwd: wb.workspaceDir, encoding: "utf8" });
    await until("slow_sleep killed", async () => (await rowLabel(page, "Instances", "slow_sleep")).includes(": killed"), 60_000);
  });

  test("the DAG preview shows every node with its state color", async () => {
    await showFile(wb, "daily-sales.flow.ts");
    await wb.runCommand("Tideflow: Show DAG");
    const frame = await webviewFrame(page, "daily_sales");
    await frame.locator("[data-task]").first().waitFor({ timeout: 30_000 });
    const nodes = await frame.locator("[data-task]").evaluateAll((els) => els.map((e) => [e.getAttribute("data-task"), e.getAttribute("data-state")]));
    const tasks = nodes.map(([t]) => t);
    for (const t of ["extract_orders", "sales_by_region", "quality_check", "report", "publish"]) assert.ok(tasks.includes(t), `no node ${t} in ${tasks.join(", ")}`);
    assert.ok(nodes.every(([, s]) => s && s !== ""), `every node has a state: ${JSON.stringify(nodes)}`);
    await wb.screenshot("08-dag");
  });
});

describe("VS Code extension, Restricted Mode", { concurrency: false, timeout: 600_000 }, () => {
  let wb: Workbench;

  before(async () => {
    wb = await launch({ trust: false });
    current = wb;
  }, { timeout: 600_000 });

  after(async () => {
    await wb?.close();
  });

  test("diagnostics and trees work; a run is refused and no runner starts", async () => {
    const page = wb.page;
    await showFile(wb, "daily-sales.flow.ts");
    await wb.openViewContainer("Tideflow");
    await treeRow(page, "Workflows", "daily_sales").waitFor({ timeout: 60_000 });
    await wb.runCommand("Tideflow: Test Workflow");
    await until("the refusal", async () => (await wb.notifications()).some((n) => n.includes("Restricted Mode")), 20_000);
    await wb.screenshot("09-restricted");
    await sleep(2000);
    assert.equal(existsSync(join(wb.workspaceDir, ".tideflow", "runner.json")), false, "no runner.json");
    const runners = processesUsing(wb.workspaceDir).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("runner.js");
      } catch {
        return false;
      }
    });
    assert.deepEqual(runners, [], "no runner process");
  });
});
