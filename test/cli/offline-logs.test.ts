/**
 * Logs are files: `tideflow logs` with no runner reads them from .tideflow/logs, finding
 * the run, the workflow instance (--date as the runner reads it) and the attempt from the
 * file names, and starts no runner (issue 20). Real CLI; the runner that wrote the logs
 * is stopped first.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { readRunnerInfo } from "../../common/runner-client";
import { type Workspace, workspace } from "../runner/fixture";

const FLOW = `import { workflow, shell } from "tideflow";
export const talk = shell("talk", { retries: 1, retryDelay: "0s" }, 'echo "said on $BIZDATE"; echo "complaint" >&2; [ -f ok ] || exit 2');
export default workflow("talky", { timezone: "UTC", tasks: [talk] });
`;

let ws: Workspace;
before(async () => {
  ws = workspace({ "talky.flow.ts": FLOW });
  const test = await ws.cli(["test", "talky.flow.ts", "--date", "2026-03-01"]);
  assert.equal(test.code, 1, test.stderr);
  ws.write("ok", "");
  const backfill = await ws.cli(["backfill", "talky.flow.ts", "--from", "2026-03-01", "--to", "2026-03-03"]);
  assert.equal(backfill.code, 0, backfill.stderr);
  const stop = await ws.cli(["runner", "stop"]);
  assert.equal(stop.code, 0, stop.stderr);
});
after(async () => {
  await ws.dispose();
});

test("a test's log is read from disk: the latest attempt, or the one asked for", async () => {
  const r = await ws.cli(["logs", "run-1", "talk"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /stdout INFO said on 20260301\n/);
  assert.match(r.stdout, /system ERROR attempt 2 failed: exit code 2/);
  assert.match(r.stderr, /^tideflow: no runner is running; read from \S+\/\.tideflow\/logs\/run-1@20260302T000000\+0000\/talk\.2\.log \(attempt 2\)$/m);
  const first = await ws.cli(["logs", "1", "talk", "--attempt", "1"]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /system ERROR attempt 1 failed: exit code 2/);
  assert.equal(readRunnerInfo(ws.dir), undefined, "no runner was started");
});

test("a backfill's instance is picked by --date as the runner reads it", async () => {
  const ambiguous = await ws.cli(["logs", "last", "talk"]);
  assert.equal(ambiguous.code, 4);
  assert.match(ambiguous.stderr, /logs in 3 workflow instances; pick one with --date \(2026-03-01, 2026-03-02, 2026-03-03\)/);
  const bizdate = await ws.cli(["logs", "last", "talk", "--date", "2026-03-02"]);
  assert.equal(bizdate.code, 0, bizdate.stderr);
  assert.match(bizdate.stdout, /said on 20260302\n/);
  const cyctime = await ws.cli(["logs", "2", "talk", "--date", "2026-03-02T00"]);
  assert.equal(cyctime.code, 0, cyctime.stderr);
  assert.match(cyctime.stdout, /said on 20260301\n/, "the cyctime of bizdate 2026-03-01 is 2026-03-02T00:00");
});

test("what is not on disk is said, with the runner's advice; --follow says it cannot follow", async () => {
  for (const [args, why] of [
    [["logs", "9", "talk"], /\.tideflow\/logs has no log of run-9/],
    [["logs", "1", "nope"], /has no log of `nope` in run-1/],
    [["logs", "1", "talk", "--attempt", "5"], /has no attempt 5 on disk; it has 1, 2/],
    [["logs", "2", "talk", "--date", "2027-01-01"], /run-2 has no log of `talk` for 2027-01-01/],
  ] as const) {
    const r = await ws.cli([...args]);
    assert.equal(r.code, 4, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^tideflow: no runner is running for .*; `tideflow runner start` starts it/m);
    assert.match(r.stderr, why);
  }
  const follow = await ws.cli(["logs", "1", "talk", "--follow"]);
  assert.equal(follow.code, 0, follow.stderr);
  assert.match(follow.stdout, /attempt 2 failed/);
  assert.match(follow.stderr, /this is the log as it stands/);
  assert.equal(readRunnerInfo(ws.dir), undefined, "no runner was started");
});
