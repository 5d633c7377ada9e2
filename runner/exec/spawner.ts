/**
 * The spawn helper: a small process that starts shell attempts for the runner
 * (protocol/spawner.ts says why and what it speaks). It must stay small — its memory is
 * what each fork copies — so it imports nothing but Node's own modules and keeps no state
 * beyond the children it waits for.
 *
 * When the runner goes away (its end of stdin closes, even after `kill -9`), the helper
 * exits and leaves its children running: they are in process groups of their own, write
 * to capture files and record their exit in an exit file, so the next runner adopts them.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import type { SpawnerEvent, SpawnerRequest, SpawnerSpawnRequest } from "../../protocol/spawner";

let baseEnv: Record<string, string> = {};
let out = "";
let scheduled = false;

/** Events of one turn go out in one write. */
function emit(event: SpawnerEvent): void {
  out += `${JSON.stringify(event)}\n`;
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    const text = out;
    out = "";
    process.stdout.write(text);
  });
}

function start(req: SpawnerSpawnRequest): void {
  let outFd: number | undefined;
  let errFd: number | undefined;
  try {
    outFd = openSync(req.stdout, "a", 0o600);
    errFd = openSync(req.stderr, "a", 0o600);
    const child = spawn(req.file, req.args, {
      cwd: req.cwd,
      env: { ...baseEnv, ...req.env },
      stdio: ["ignore", outFd, errFd],
      detached: true,
    });
    if (child.pid === undefined) {
      child.once("error", (e) => emit({ t: "failed", id: req.id, error: e.message }));
      return;
    }
    child.on("error", () => {});
    emit({ t: "spawned", id: req.id, pid: child.pid });
    child.once("exit", (code, signal) => emit({ t: "exit", id: req.id, code, signal }));
  } catch (e) {
    emit({ t: "failed", id: req.id, error: (e as Error).message });
  } finally {
    if (outFd !== undefined) closeSync(outFd);
    if (errFd !== undefined) closeSync(errFd);
  }
}

function handle(line: string): void {
  if (line.length === 0) return;
  const req = JSON.parse(line) as SpawnerRequest;
  if (req.t === "env") baseEnv = req.env;
  else if (req.t === "spawn") start(req);
}

let rest = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk: string) => {
  const text = rest + chunk;
  let from = 0;
  for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", from)) {
    handle(text.slice(from, nl));
    from = nl + 1;
  }
  rest = text.slice(from);
});
// The runner is gone: exit now, leaving the children to the next runner.
process.stdin.on("end", () => process.exit(0));
process.stdout.on("error", () => process.exit(0));
