/**
 * No process outlives its attempt (issue 8 §1): a shell task that starts `setsid sleep &`
 * and ends normally, and TS tasks that leave a detached or an unref'd child, all have those
 * processes ended when they end (the attempt's marker finds them), and the attempt's log
 * says so. Asked of the OS: /proc. Real CLI, real runner.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import type { RunDocument } from "../../runner/cli-format";
import { type Workspace, sleep, workspace } from "./fixture";

// Unique sleep durations, so that this test finds only its own processes.
const tag = String(process.pid).padStart(7, "0");
const SHELL_SLEEP = `301.${tag}`;
const TS_SETSID_SLEEP = `302.${tag}`;
const TS_CHILD_SLEEP = `303.${tag}`;

const FLOW = `import { workflow, shell, task } from "tideflow";
import { spawn } from "node:child_process";

export const sh = shell("sh", "setsid sleep ${SHELL_SLEEP} & echo started");
export const detached = task("detached", { upstream: [sh] }, async () => {
  spawn("sleep", ["${TS_SETSID_SLEEP}"], { detached: true, stdio: "ignore" }).unref(); // a session of its own
  console.log("started");
});
export const unrefd = task("unrefd", { upstream: [detached] }, async () => {
  spawn("sleep", ["${TS_CHILD_SLEEP}"], { stdio: "ignore" }).unref();
  console.log("started");
});
export default workflow("orphans", { tasks: [sh, detached, unrefd] });
`;

/** Pids of live (non-zombie) processes whose command line holds `needle`. */
function processesWith(needle: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "latin1");
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmdline.includes(needle) && state !== "Z") found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function goneWithin(needle: string, ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = processesWith(needle);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = processesWith(needle);
  }
  return left;
}

let ws: Workspace;

before(() => {
  ws = workspace({ "orphans.flow.ts": FLOW });
});
after(async () => {
  for (const needle of [SHELL_SLEEP, TS_SETSID_SLEEP, TS_CHILD_SLEEP]) {
    for (const pid of processesWith(needle)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  await ws.dispose();
});

test("processes a task leaves running (setsid from a shell task; a detached or an unref'd child of a TS task) end with the attempt", { timeout: 120_000 }, async () => {
  const r = await ws.cli(["test", "orphans.flow.ts", "--date", "2024-06-01", "--json"], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = JSON.parse(r.stdout) as RunDocument;
  assert.deepEqual(doc.instances[0].tasks.map((t) => [t.task, t.state]), [["sh", "success"], ["detached", "success"], ["unrefd", "success"]]);
  // The run has ended, and an attempt ends only once its processes are gone: they must be
  // gone now. The deadline is a hang guard for reaping on a loaded machine, far below the
  // 301 s they would otherwise live.
  for (const needle of [SHELL_SLEEP, TS_SETSID_SLEEP, TS_CHILD_SLEEP]) {
    assert.deepEqual(await goneWithin(needle, 30_000), [], `sleep ${needle} outlived its attempt`);
  }
  const shLog = (await ws.cli(["logs", doc.id, "sh"])).stdout;
  // Whether bash exits before its child has called setsid is a race, and the runner takes
  // either path: the child still in the attempt's group, or escaped and found by marker.
  // Either way the log says the processes were ended.
  const inGroup = /system WARN the main process exited but left processes in group \d+: ending them/;
  const escaped = /system WARN the main process exited but left 1 process\(es\) outside its group .*: ending them/;
  assert.ok(inGroup.test(shLog) !== escaped.test(shLog), `one of the two "ending them" lines, not ${inGroup.test(shLog) ? "both" : "neither"}:\n${shLog}`);
  assert.match(shLog, /system INFO attempt 1 finished: exit code 0/);
  for (const task of ["detached", "unrefd"]) {
    const log = (await ws.cli(["logs", doc.id, task])).stdout;
    assert.match(log, /stderr WARN tideflow: the task left 1 process\(es\) running .*: ending them/, `${task}:\n${log}`);
  }
});
