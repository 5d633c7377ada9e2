/**
 * The CLI's output arrives whole whatever stdout is: a pipe, a slow reader, a file, or a
 * reader that goes away early (EPIPE ends the command quietly). Real shells, real pipes.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { CLI, workspace, type Workspace } from "../runner/fixture";

const LINES = 200_002;
let ws: Workspace;

before(async () => {
  ws = workspace({
    "loud.flow.ts": `import { workflow, shell } from "tideflow";
export const loud = shell("loud", "seq 1 ${LINES}");
export default workflow("loud", { tasks: [loud] });
`,
    "hourly.flow.ts": `import { workflow, shell } from "tideflow";
export const a = shell("a", "true");
export default workflow("hourly", { schedule: "0 * * * *", timezone: "UTC", tasks: [a] });
`,
  });
  const r = await ws.cli(["test", "loud.flow.ts", "--date", "2026-11-01"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

after(async () => {
  await ws.dispose();
});

/** Runs a shell pipeline in the workspace; `$TF` is the CLI. */
function sh(script: string) {
  const r = spawnSync("bash", ["-c", `set -o pipefail; ${script}`], {
    cwd: ws.dir,
    encoding: "utf8",
    env: { ...process.env, TF: `${process.execPath} ${CLI}` },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("logs of a 200,002-line attempt arrive whole through a pipe, a slow reader and a file", () => {
  // The log has the task's lines plus the runner's "started" and "exited" lines.
  const piped = sh("$TF logs run-1 loud | wc -l");
  assert.equal(piped.code, 0, piped.stderr);
  const lines = Number(piped.stdout.trim());
  assert.ok(lines >= LINES, `${lines} lines through a pipe, expected at least ${LINES}`);
  const slow = sh("$TF logs run-1 loud | (sleep 1; wc -l)");
  assert.equal(Number(slow.stdout.trim()), lines, "a reader that starts late gets the same lines");
  const file = sh("$TF logs run-1 loud > out.log && wc -l < out.log");
  assert.equal(Number(file.stdout.trim()), lines, "a file gets the same lines");
  const last = sh("$TF logs run-1 loud | grep -c '^.* stdout INFO 200002$'");
  assert.equal(last.stdout.trim(), "1", "the last line of the task's output is there");
});

test("show --json and --dry-run --json over 64 KiB arrive whole through a pipe and parse", () => {
  const dry = sh("$TF backfill hourly.flow.ts --from 2026-09-01 --to 2026-10-20 --dry-run --json | (sleep 0.5; cat)");
  assert.equal(dry.code, 0, dry.stderr);
  assert.ok(dry.stdout.length > 65_536, `${dry.stdout.length} characters`);
  const plan = JSON.parse(dry.stdout) as { instances: unknown[] };
  assert.equal(plan.instances.length, 50 * 24);

  const created = sh("$TF backfill hourly.flow.ts --from 2026-10-01 --to 2026-10-10 --detach");
  assert.equal(created.code, 0, created.stderr);
  const id = created.stdout.trim();
  const shown = sh(`$TF show ${id} --json | (sleep 0.5; cat)`);
  assert.equal(shown.code, 0, shown.stderr);
  assert.ok(shown.stdout.length > 65_536, `${shown.stdout.length} characters`);
  const run = JSON.parse(shown.stdout) as { id: string; instances: unknown[] };
  assert.equal(run.id, id);
  assert.equal(run.instances.length, 10 * 24);
  sh(`$TF kill ${id}`);
});

test("a reader that closes early (head) ends the command quietly", () => {
  for (const cmd of ["$TF logs run-1 loud", "$TF backfill hourly.flow.ts --from 2026-09-01 --to 2026-10-20 --dry-run --json"]) {
    const r = spawnSync("bash", ["-c", `${cmd} | head -1 >/dev/null; echo "\${PIPESTATUS[0]}"`], {
      cwd: ws.dir,
      encoding: "utf8",
      env: { ...process.env, TF: `${process.execPath} ${CLI}` },
      timeout: 60_000,
    });
    assert.equal(r.stderr, "", `${cmd}: nothing on stderr (no EPIPE stack trace)`);
    assert.equal(r.stdout.trim(), "0", `${cmd}: exit code`);
  }
});
