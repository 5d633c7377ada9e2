/**
 * Restarting never depends on luck: a `kill -9`ed runner left as a zombie, or a stale
 * `runner.lock` / `runner.json` whose pid now belongs to another process, must not make a
 * command wait and fail; a lock held by a live process that is not answering gets a
 * message that says what to do, not a stack trace.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { processAlive, processStartTime } from "../../common/process-alive";
import { type Workspace, until, workspace } from "./fixture";

const spaces: Workspace[] = [];
const children: number[] = [];
after(async () => {
  for (const pid of children) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const ws of spaces) await ws.dispose();
});

function stateOf(pid: number): string {
  const text = readFileSync(`/proc/${pid}/stat`, "latin1");
  return text.slice(text.lastIndexOf(")") + 2).split(" ")[0];
}

/** A zombie: bash starts a short child, then execs a sleep that never reaps it. */
async function zombie(): Promise<number> {
  const parent = spawn("bash", ["-c", "sleep 0.05 & echo $!; exec sleep 60"], { stdio: ["ignore", "pipe", "ignore"] });
  children.push(parent.pid!);
  const pid = await new Promise<number>((resolve) => parent.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim()))));
  await until("the child to be a zombie", () => stateOf(pid) === "Z");
  return pid;
}

function plant(ws: Workspace, pid: number, lock: string): void {
  const dir = join(ws.dir, ".tideflow");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "runner.lock"), lock, { mode: 0o600 });
  writeFileSync(
    join(dir, "runner.json"),
    JSON.stringify({ pid, port: 9, token: "0".repeat(64), workspace: ws.dir, startedAt: Date.now() - 60_000, version: "0.1.0" }),
    { mode: 0o600 },
  );
}

test("a zombie runner counts as dead: the next command starts a new runner at once", async () => {
  const z = await zombie();
  assert.equal(processAlive(z), false, "a zombie is not alive");
  const ws = workspace();
  spaces.push(ws);
  plant(ws, z, String(z));
  // A zombie counted as alive would make the new runner exit 3 (lock held) and the
  // command fail with the lock holder's message: success is what tells them apart.
  const r = await ws.cli(["runner", "start"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^started: runner pid \d+/);
  assert.match(readFileSync(join(ws.dir, ".tideflow", "runner.log"), "utf8"), new RegExp(`runner.lock of pid ${z} is stale \\(its process is gone\\)`));
});

test("a stale lock whose pid belongs to another process now is taken over", async () => {
  const other = spawn("sleep", ["60"], { stdio: "ignore" });
  children.push(other.pid!);
  await until("sleep to start", () => processStartTime(other.pid!) !== undefined);
  const ws = workspace();
  spaces.push(ws);
  // Written by a runner that had this pid before: another start time.
  plant(ws, other.pid!, JSON.stringify({ pid: other.pid, start: "1" }));
  const r = await ws.cli(["runner", "start"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(processAlive(other.pid!), "the other process is left alone");
  assert.match(readFileSync(join(ws.dir, ".tideflow", "runner.log"), "utf8"), /is stale \(its pid now belongs to another process\)/);
  const lock = JSON.parse(readFileSync(join(ws.dir, ".tideflow", "runner.lock"), "utf8")) as { pid: number; start: string };
  assert.notEqual(lock.pid, other.pid);
  assert.equal(lock.start, processStartTime(lock.pid));
});

test("a lock held by a live process that does not answer: a clear message with what to do, no stack trace, not the start timeout", async () => {
  const other = spawn("sleep", ["60"], { stdio: "ignore" });
  children.push(other.pid!);
  await until("sleep to start", () => processStartTime(other.pid!) !== undefined);
  const ws = workspace();
  spaces.push(ws);
  plant(ws, other.pid!, JSON.stringify({ pid: other.pid, start: processStartTime(other.pid!) }));
  const r = await ws.cli(["runner", "start"]);
  assert.equal(r.code, 1, r.stderr);
  // The lock holder's message comes once the new runner has exited 3 (lock held) and the
  // holder has not answered for a while; the 15 s start timeout says "did not come up".
  assert.doesNotMatch(r.stderr, /did not come up/);
  assert.match(r.stderr, new RegExp(`runner.lock is held by pid ${other.pid} \\(sleep 60\\), which does not answer as this workspace's runner; .*delete`));
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
});
