/**
 * End-to-end harness: the packaged extension (out/*.vsix) in a real VS Code (code-server
 * 4.100.3, VS Code 1.100) driven by Debian's Chromium through playwright-core.
 *
 *   const wb = await launch();                 // examples/ copied to a temp workspace
 *   await wb.openFile("daily-sales.flow.ts");
 *   await wb.runCommand("Tideflow: Show DAG");
 *   await wb.screenshot("dag");                // test/e2e/screenshots/dag.png
 *   await wb.close();                          // Chromium, code-server, the runner, the temp dir
 *
 * The vsix is packaged (scripts/package.mjs) when it is missing or older than any source,
 * build output or package.json; set TIDEFLOW_VSIX to test a given vsix instead.
 * code-server comes from the cache of scripts/code-server.mjs (installed on first use).
 * Run with `node --import tsx --test --test-concurrency=1 test/e2e/*.test.ts`.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { chromium, type BrowserContext, type Locator, type Page } from "playwright-core";
import type { CodeServer } from "../../scripts/code-server.mjs" with { "resolution-mode": "import" };

export const ROOT = resolve(__dirname, "../..");
export const EXAMPLES = join(ROOT, "examples");
export const SCREENSHOTS = join(ROOT, "test", "e2e", "screenshots");
export const CHROMIUM = process.env.TIDEFLOW_CHROMIUM ?? "/usr/bin/chromium";
/** Flags that work on these machines (see ../shared/notes/vscode-e2e.md). */
export const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
];

export interface LaunchOptions {
  /** true (default): the workspace is trusted. false: workspace trust is on and the folder opens in restricted mode. */
  trust?: boolean;
  /** Copy examples/ into the workspace (default true; without tsconfig.json, out/ and .tideflow/). */
  examples?: boolean;
  /**
   * Files to write into the workspace before VS Code starts, by path relative to it
   * (folders are created). `null` deletes a file or folder copied from examples/.
   */
  workspaceFiles?: Record<string, string | Buffer | null>;
  /** Extra VS Code user settings (merged over the quiet defaults of scripts/code-server.mjs). */
  settings?: Record<string, unknown>;
  /** Extra environment of code-server, and so of the extension host, the server and the runner. */
  env?: Record<string, string>;
  /** Browser viewport; default 1600×1000. */
  viewport?: { width: number; height: number };
  /** How long to wait for code-server and the workbench, each; default 120 s. */
  timeoutMs?: number;
}

export interface Workbench {
  page: Page;
  context: BrowserContext;
  codeServer: CodeServer;
  /** The temp copy of the workspace (absolute path). */
  workspaceDir: string;
  /** The temp root that holds workspace/, user-data/, extensions/ and chromium/. */
  tempDir: string;
  userDataDir: string;
  /** Saves test/e2e/screenshots/<name>.png (the whole page) and returns its path. */
  screenshot(name: string): Promise<string>;
  /** Command palette (F1), types `title`, waits for a matching entry and runs it with Enter. */
  runCommand(title: string): Promise<void>;
  /** Quick open (Ctrl+P) of a workspace file by relative path; waits for its editor tab to be active. */
  openFile(relPath: string): Promise<void>;
  /** The editor tab labelled `name` (e.g. "daily-sales.flow.ts"). */
  tab(name: string): Locator;
  /** Clicks the activity-bar entry whose title starts with `title` (e.g. "Tideflow") and returns it. */
  openViewContainer(title: string): Promise<Locator>;
  /** Texts of the notification toasts now shown. */
  notifications(): Promise<string[]>;
  /** Text of the extension host logs and the extensions' log/output channels (for failure messages). */
  logs(): string;
  /** Waits until logs() matches `pattern` (polling); returns the match. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Waits until the extension host has activated extension `id` (default "tideflow.tideflow"); throws if activation failed. */
  waitForActivation(id?: string, timeoutMs?: number): Promise<void>;
  /** Ends Chromium, the runner of the workspace, code-server's process group and anything left in the temp dir; removes it. */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/** pids (not ours) whose command line mentions `dir` or whose cwd is inside it. */
export function processesUsing(dir: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      let cwd = "";
      try { cwd = readlinkSync(`/proc/${name}/cwd`); } catch {}
      if (cmd.includes(dir) || cwd === dir || cwd.startsWith(dir + "/")) {
        if (alive(Number(name))) out.push(Number(name));
      }
    } catch {}
  }
  return out;
}

async function killAndWait(pids: number[], graceMs: number): Promise<number[]> {
  const signal = (sig: NodeJS.Signals) => { for (const p of pids) { try { process.kill(p, sig); } catch {} } };
  signal("SIGTERM");
  for (const t0 = Date.now(); pids.some(alive) && Date.now() - t0 < graceMs;) await sleep(100);
  if (pids.some(alive)) {
    signal("SIGKILL");
    for (const t0 = Date.now(); pids.some(alive) && Date.now() - t0 < 3000;) await sleep(100);
  }
  return pids.filter(alive);
}

/** A lock folder, so that two test processes do not package at once. */
async function withLock<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let holder = NaN;
      try { holder = Number(readFileSync(join(lock, "pid"), "utf8")); } catch {}
      if (Number.isFinite(holder) && !alive(holder)) rmSync(lock, { recursive: true, force: true });
      else await sleep(300);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

let vsixPromise: Promise<string> | undefined;

/**
 * The vsix to test: TIDEFLOW_VSIX, or out/tideflow-<version>-<target>.vsix, packaged (with a
 * fresh, unminified build) when it is missing or older than its inputs. Once per process.
 */
export function ensureVsix(): Promise<string> {
  vsixPromise ??= (async () => {
    if (process.env.TIDEFLOW_VSIX) return resolve(process.env.TIDEFLOW_VSIX);
    const pkg = await import("../../scripts/package.mjs");
    const vsix = pkg.defaultVsixPath();
    return withLock(join(ROOT, "out", ".package.lock"), async () => {
      if (pkg.isStale(vsix)) await pkg.packageExtension({ build: true, minify: false, quiet: true });
      return vsix;
    });
  })();
  return vsixPromise;
}

function prepareWorkspace(dir: string, opts: LaunchOptions): void {
  mkdirSync(dir, { recursive: true });
  if (opts.examples !== false) {
    cpSync(EXAMPLES, dir, {
      recursive: true,
      filter: (src) => {
        const rel = relative(EXAMPLES, src);
        return !["tsconfig.json", "out", ".tideflow", "node_modules"].includes(rel.split("/")[0]!) || rel === "";
      },
    });
  }
  for (const [rel, content] of Object.entries(opts.workspaceFiles ?? {})) {
    const p = join(dir, rel);
    if (content === null) rmSync(p, { recursive: true, force: true });
    else {
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, content);
    }
  }
}

function readLogs(userDataDir: string): string {
  const parts: string[] = [];
  const walk = (d: string) => {
    let entries;
    try { entries = readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/exthost|output_|tideflow/i.test(relative(userDataDir, p)) && p.endsWith(".log")) {
        try { parts.push(`==> ${relative(userDataDir, p)}\n${readFileSync(p, "utf8")}`); } catch {}
      }
    }
  };
  walk(join(userDataDir, "logs"));
  return parts.join("\n");
}

const cleanups = new Set<() => void>();
const runCleanups = () => { for (const c of cleanups) { try { c(); } catch {} } };
process.once("exit", runCleanups);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    runCleanups();
    process.kill(process.pid, sig); // the default action, now that our listener is gone
  });
}

/**
 * Ends what a test process that died without close() (SIGKILL, crash) left behind: every
 * `tideflow-e2e-*` temp dir whose owner pid is gone, and the processes still using it.
 */
export function sweepStaleTempDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith("tideflow-e2e-")) continue;
    const dir = join(tmpdir(), name);
    let owner = NaN;
    try { owner = Number(readFileSync(join(dir, "owner.pid"), "utf8")); } catch { continue; }
    if (!Number.isFinite(owner) || alive(owner)) continue;
    for (const p of processesUsing(dir)) { try { process.kill(p, "SIGKILL"); } catch {} }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts code-server with the packaged extension on a temp copy of the workspace, and Chromium on its workbench. */
export async function launch(opts: LaunchOptions = {}): Promise<Workbench> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const cs = await import("../../scripts/code-server.mjs");
  const [vsix] = await Promise.all([ensureVsix(), cs.ensureCodeServer()]);

  sweepStaleTempDirs();
  const tempDir = mkdtempSync(join(tmpdir(), "tideflow-e2e-"));
  writeFileSync(join(tempDir, "owner.pid"), String(process.pid));
  const workspaceDir = join(tempDir, "workspace");
  const userDataDir = join(tempDir, "user-data");
  prepareWorkspace(workspaceDir, opts);

  let codeServer: CodeServer | undefined;
  let context: BrowserContext | undefined;
  let closed = false;
  const emergency = () => {
    if (codeServer) { try { process.kill(-codeServer.pid, "SIGKILL"); } catch {} }
    for (const p of processesUsing(tempDir)) { try { process.kill(p, "SIGKILL"); } catch {} }
  };
  cleanups.add(emergency);

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    const problems: string[] = [];
    if (context) await Promise.race([context.close().catch(() => {}), sleep(10_000)]);
    // The runner the extension started for the workspace (it may have left code-server's group).
    try {
      const info = JSON.parse(readFileSync(join(workspaceDir, ".tideflow", "runner.json"), "utf8")) as { pid?: number };
      if (typeof info.pid === "number" && alive(info.pid)) {
        const left = await killAndWait([info.pid], 5000);
        if (left.length) problems.push(`runner ${info.pid} survived SIGKILL`);
      }
    } catch {}
    if (codeServer) await codeServer.stop().catch((e: Error) => problems.push(e.message));
    // Anything else still using the temp dir: Chromium helpers, workers, shell tasks.
    const rest = processesUsing(tempDir);
    if (rest.length) {
      const left = await killAndWait(rest, 2000);
      if (left.length) problems.push(`processes still alive in ${tempDir}: ${left.join(", ")}`);
    }
    cleanups.delete(emergency);
    if (process.env.TIDEFLOW_E2E_KEEP) console.error(`[e2e] kept ${tempDir}`);
    else rmSync(tempDir, { recursive: true, force: true, maxRetries: 3 });
    if (problems.length) throw new Error(problems.join("; "));
  };

  try {
    codeServer = await cs.startCodeServer({
      workspace: workspaceDir, userDataDir, extensionsDir: join(tempDir, "extensions"),
      trust: opts.trust ?? true, vsix, settings: opts.settings, env: opts.env, timeoutMs,
    });
    context = await chromium.launchPersistentContext(join(tempDir, "chromium"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: opts.viewport ?? { width: 1600, height: 1000 },
      timeout: timeoutMs,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(30_000);
    await page.goto(codeServer.workbenchUrl, { timeout: timeoutMs });
    await page.locator(".monaco-workbench").waitFor({ timeout: timeoutMs });
    await page.locator(".part.statusbar").waitFor({ timeout: timeoutMs });
    // The explorer shows the workspace once the file service answers.
    if (opts.examples !== false) await page.locator(".explorer-folders-view .monaco-list-row").first().waitFor({ timeout: timeoutMs });

    const quickInput = page.locator(".quick-input-widget");
    const quickInputBox = quickInput.locator(".quick-input-box input");

    const wb: Workbench = {
      page, context, codeServer, workspaceDir, tempDir, userDataDir,
      async screenshot(name) {
        mkdirSync(SCREENSHOTS, { recursive: true });
        const file = join(SCREENSHOTS, `${name.replace(/[^\w.-]+/g, "_")}.png`);
        await page.screenshot({ path: file });
        return file;
      },
      async runCommand(title) {
        await page.keyboard.press("F1");
        await quickInputBox.waitFor({ state: "visible" });
        await quickInputBox.fill(`>${title}`);
        const row = quickInput.locator(".monaco-list-row", { hasText: title }).first();
        try {
          await row.waitFor({ state: "visible", timeout: 15_000 });
        } catch {
          const shown = await quickInput.locator(".monaco-list-row").allInnerTexts().catch(() => []);
          await page.keyboard.press("Escape");
          throw new Error(`no command matching "${title}" in the palette; it shows: ${JSON.stringify(shown.slice(0, 10))}`);
        }
        await row.click();
        await quickInput.waitFor({ state: "hidden" }).catch(() => {});
      },
      async openFile(relPath) {
        const name = basename(relPath);
        await page.keyboard.press("Control+P");
        await quickInputBox.waitFor({ state: "visible" });
        await quickInputBox.fill(relPath);
        const row = quickInput.locator(".monaco-list-row", { hasText: name }).first();
        await row.waitFor({ state: "visible", timeout: 20_000 });
        await page.keyboard.press("Enter");
        await quickInput.waitFor({ state: "hidden" }).catch(() => {});
        await page.locator(`.tabs-container .tab.active[data-resource-name="${name}"]`).waitFor({ timeout: 20_000 });
        await page.locator(".editor-instance .monaco-editor .view-lines").first().waitFor();
      },
      tab(name) {
        return page.locator(`.tabs-container .tab[data-resource-name="${name}"]`);
      },
      async openViewContainer(title) {
        const item = page.locator(`.activitybar a.action-label[aria-label^="${title}"]`).first();
        await item.click();
        return item;
      },
      async notifications() {
        return page.locator(".notifications-toasts .notification-toast .notification-list-item-message").allInnerTexts();
      },
      logs() {
        return readLogs(userDataDir);
      },
      async waitForLog(pattern, timeoutMs = 60_000) {
        for (const t0 = Date.now(); ;) {
          const m = readLogs(userDataDir).match(pattern);
          if (m) return m;
          if (Date.now() - t0 > timeoutMs) throw new Error(`no log line matched ${pattern} within ${timeoutMs} ms`);
          await sleep(250);
        }
      },
      async waitForActivation(id = "tideflow.tideflow", timeoutMs = 90_000) {
        const esc = id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
        await wb.waitForLog(new RegExp(`_doActivateExtension ${esc}[,\\s]`), timeoutMs);
        // Activation runs after that line: give a failure the time to be logged.
        for (const t0 = Date.now(); Date.now() - t0 < 3000;) {
          const failed = readLogs(userDataDir).match(new RegExp(`Activating extension '?${esc}'? failed[^\\n]*`, "i"));
          if (failed) throw new Error(`${failed[0]}\n${readLogs(userDataDir).slice(-4000)}`);
          await sleep(250);
        }
      },
      close,
    };
    return wb;
  } catch (e) {
    const logs = readLogs(userDataDir);
    await close().catch(() => {});
    (e as Error).message += logs ? `\n--- extension host logs ---\n${logs.slice(-4000)}` : "";
    throw e;
  }
}

/** Runs `fn` with a launched workbench and always closes it (for one-shot tests). */
export async function withWorkbench<T>(opts: LaunchOptions, fn: (wb: Workbench) => Promise<T>): Promise<T> {
  const wb = await launch(opts);
  try {
    return await fn(wb);
  } finally {
    await wb.close();
  }
}

/** `ps`-style check used by tests: no code-server or Chromium of this harness left running. */
export function leftoverProcesses(): string[] {
  const r = spawnSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return r.stdout.split("\n").filter((l) => /tideflow-e2e-/.test(l) && !/\bps -eo\b/.test(l));
}
