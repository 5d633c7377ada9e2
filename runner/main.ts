/**
 * The Tideflow runner process (dist/runner.js): `node dist/runner.js --workspace DIR`.
 * Runs in the foreground and logs to stderr; `tideflow` starts it in the background
 * (logging to .tideflow/runner.log) when a command needs it.
 */
import { parseArgs } from "node:util";
import { Runner, RunnerRunningError } from "./daemon";

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { workspace: { type: "string" }, "kill-grace": { type: "string" } },
  });
  // The grace between SIGTERM and SIGKILL (ms); the environment variable serves tests.
  const graceText = values["kill-grace"] ?? process.env.TIDEFLOW_KILL_GRACE_MS;
  const grace = graceText !== undefined ? Number(graceText) : undefined;
  let runner: Runner;
  try {
    runner = await Runner.start({ root: values.workspace ?? process.cwd(), killGraceMs: grace });
  } catch (e) {
    process.stderr.write(`tideflow runner: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(e instanceof RunnerRunningError ? 3 : 1);
  }
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(signal, () => void runner.stop(0));
  }
  // The runner outlives whoever started it: a closed stderr (a pipe whose reader went
  // away) must not turn every log line into an exception.
  process.stderr.on("error", () => undefined);
  process.stdout.on("error", () => undefined);
  let failing = false;
  process.on("uncaughtException", (e) => {
    if (failing) return;
    failing = true;
    try {
      process.stderr.write(`tideflow runner: uncaught ${e.stack ?? e.message}\n`);
    } catch {
      // nowhere to report it
    }
    void runner.stop(1);
  });
  await runner.stopped;
  process.exit();
}

void main();
