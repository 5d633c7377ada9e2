#!/usr/bin/env node
/**
 * `npm test`: every tier runs, every time, whatever the ones before it did.
 *
 *   node scripts/test.mjs             typecheck, unit, lsp, runner, cli, e2e
 *   node scripts/test.mjs lsp e2e     only those tiers (in the order above)
 *
 * Each tier is one `node --test` of its folder (e2e one file at a time); a line per tier
 * says how it went, and the exit status is 1 if any tier failed. After each tier, no
 * process it started may still be running: every process of the suite carries
 * TIDEFLOW_TEST_RUN=<id> in its environment (children inherit it: the CLI, runners, spawn
 * helpers, TS workers, code-server, Chromium, tasks), so /proc tells which are left. Left
 * processes fail the tier's "leftovers" check, are listed, and are ended so that the next
 * tier starts clean.
 *
 * Tests assert behaviour, benchmarks measure: timings belong to `npm run bench`.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const NODE_TEST = ["--import", "tsx", "--test", "--test-reporter=spec", "--test-reporter-destination=stdout"];

/** @type {{ name: string, command: string[] }[]} */
const TIERS = [
  { name: "typecheck", command: ["npm", "run", "--silent", "typecheck"] },
  { name: "unit", command: [process.execPath, ...NODE_TEST, ...files("test/unit")] },
  { name: "lsp", command: [process.execPath, ...NODE_TEST, ...files("test/lsp")] },
  { name: "runner", command: [process.execPath, ...NODE_TEST, ...files("test/runner")] },
  { name: "cli", command: [process.execPath, ...NODE_TEST, ...files("test/cli")] },
  { name: "e2e", command: [process.execPath, ...NODE_TEST, "--test-concurrency=1", ...files("test/e2e")] },
];

/** How long processes of a finished tier get to go away on their own (a poll, not a sleep). */
const SETTLE_MS = 15_000;

function files(dir) {
  return readdirSync(join(ROOT, dir))
    .filter((f) => f.endsWith(".test.ts"))
    .sort()
    .map((f) => join(dir, f));
}

/** Pids of live processes (not zombies, not this one) whose environment holds `entry`. */
function processesWith(entry) {
  const found = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`, "latin1").split("\0");
      if (!env.includes(entry)) continue;
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") continue;
      found.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

function describe(pid) {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").join(" ").trim();
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const ppid = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
    return `pid ${pid} (parent ${ppid}): ${cmd.slice(0, 200)}`;
  } catch {
    return `pid ${pid} (gone)`;
  }
}

async function leftovers(entry) {
  const deadline = Date.now() + SETTLE_MS;
  let left = processesWith(entry);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    left = processesWith(entry);
  }
  const described = left.map(describe);
  for (const pid of left) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  return described;
}

function run(command, env) {
  return new Promise((done) => {
    const child = spawn(command[0], command.slice(1), { cwd: ROOT, env, stdio: "inherit" });
    child.on("error", (e) => {
      console.error(`test: cannot start ${command[0]}: ${e.message}`);
      done(127);
    });
    child.on("exit", (code, signal) => done(code ?? (signal ? 128 : 1)));
  });
}

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !TIERS.some((t) => t.name === w));
if (unknown.length > 0) {
  console.error(`test: no tier ${unknown.join(", ")}; tiers: ${TIERS.map((t) => t.name).join(", ")}`);
  process.exit(2);
}
const tiers = wanted.length > 0 ? TIERS.filter((t) => wanted.includes(t.name)) : TIERS;

const id = randomBytes(8).toString("hex");
const entry = `TIDEFLOW_TEST_RUN=${id}`;
const env = { ...process.env, TIDEFLOW_TEST_RUN: id };

const results = [];
for (const tier of tiers) {
  console.log(`\n=== test: ${tier.name} ===`);
  const started = Date.now();
  const code = await run(tier.command, env);
  const seconds = (Date.now() - started) / 1000;
  const left = await leftovers(entry);
  results.push({ name: tier.name, ok: code === 0, code, seconds, left });
  if (left.length > 0) {
    console.error(`test: ${tier.name} left ${left.length} process(es) running (now ended):\n  ${left.join("\n  ")}`);
  }
}

// Nothing of the suite answers any more: a last look across every tier.
const late = processesWith(entry).map(describe);

console.log("\n=== test: summary ===");
for (const r of results) {
  const status = r.ok && r.left.length === 0 ? "pass" : "FAIL";
  const why = [!r.ok ? `exit ${r.code}` : "", r.left.length > 0 ? `${r.left.length} process(es) left running` : ""].filter(Boolean).join(", ");
  console.log(`${status}  ${r.name.padEnd(9)} ${r.seconds.toFixed(1).padStart(7)} s${why ? `  (${why})` : ""}`);
}
if (late.length > 0) console.log(`FAIL  processes of the suite still running at the end:\n  ${late.join("\n  ")}`);
const failed = results.filter((r) => !r.ok || r.left.length > 0);
console.log(failed.length === 0 && late.length === 0 ? "all tiers passed" : `${failed.length} of ${results.length} tier(s) failed`);
process.exit(failed.length === 0 && late.length === 0 ? 0 : 1);
