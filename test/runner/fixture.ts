/**
 * Real workspaces for runner tests: a temp directory with workflow files, the real
 * `tideflow` CLI and the real runner process (dist/), and a client on the real socket.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { RunnerClient, readRunnerInfo } from "../../common/runner-client";
import { processAlive } from "../../runner/exec/process-tree";

export const ROOT = resolve(__dirname, "../..");
export const CLI = join(ROOT, "dist/cli.js");
export const RUNNER = join(ROOT, "dist/runner.js");

export interface Workspace {
  dir: string;
  write(path: string, text: string): string;
  /** `env` adds to (or overrides) the process's environment and the short kill grace. */
  cli(args: string[], options?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<{ code: number | null; stdout: string; stderr: string }>;
  client(): Promise<RunnerClient>;
  /** Stops the runner (if any) and deletes the directory. */
  dispose(): Promise<void>;
}

export function workspace(files: Record<string, string> = {}): Workspace {
  const dir = mkdtempSync(join(tmpdir(), "tideflow-ws-"));
  const ws: Workspace = {
    dir,
    write(path, text) {
      const full = join(dir, path);
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, text);
      return full;
    },
    cli(args, options = {}) {
      return new Promise((resolvePromise) => {
        // --kill-grace is not a CLI flag; a short grace comes from the runner's env instead.
        const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: { ...process.env, TIDEFLOW_KILL_GRACE_MS: "1000", ...options.env } });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
        child.on("close", (code) => {
          clearTimeout(timer);
          resolvePromise({ code, stdout, stderr });
        });
      });
    },
    async client() {
      const info = readRunnerInfo(dir);
      if (!info) throw new Error("no runner.json");
      return RunnerClient.connect(info);
    },
    async dispose() {
      const info = readRunnerInfo(dir);
      if (info && processAlive(info.pid)) {
        process.kill(info.pid, "SIGTERM");
        const deadline = Date.now() + 10_000;
        while (processAlive(info.pid) && Date.now() < deadline) await sleep(20);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  for (const [path, text] of Object.entries(files)) ws.write(path, text);
  return ws;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `fn` returns a truthy value, or fails after `timeoutMs`. */
export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 20_000): Promise<Exclude<T, false | null | undefined | 0 | "">> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as Exclude<T, false | null | undefined | 0 | "">;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
