/**
 * A client that stops reading must not slow the runner: its events are dropped once its
 * buffer is full, the task and the other clients go on, and the stuck client is told to
 * resync when it reads again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import type { ApiServerMessage } from "../../protocol/api";
import { readRunnerInfo } from "../../common/runner-client";
import { type Workspace, until, workspace } from "./fixture";

let ws: Workspace;

const LINES = 300_000;

before(async () => {
  ws = workspace({
    "loud.flow.ts": `import { workflow, shell } from "tideflow";
export const gate = shell("gate", "while [ ! -f go ]; do sleep 0.05; done");
export const loud = shell("loud", { upstream: [gate] }, "seq -f 'line %g of the loud task, padded to look like a real log line' 1 ${LINES}");
export default workflow("loud", { tasks: [gate, loud] });
`,
  });
  const r = await ws.cli(["runner", "start"]);
  assert.equal(r.code, 0, r.stderr);
});
after(() => ws.dispose());

test("a stuck subscriber is dropped and told to resync; the task and other clients are not held up", async () => {
  const info = readRunnerInfo(ws.dir)!;
  const client = await ws.client();
  const { run } = await client.request("runs.create", { kind: "test", file: join(ws.dir, "loud.flow.ts"), by: "test" });
  const instanceId = run.instances[0].id;

  // The stuck client: subscribes to every record and to loud's log lines, then stops reading.
  const stuck = new WebSocket(`ws://127.0.0.1:${info.port}/`, { headers: { authorization: `Bearer ${info.token}` }, perMessageDeflate: false });
  await new Promise((resolve, reject) => stuck.once("open", resolve).once("error", reject));
  const received: ApiServerMessage[] = [];
  stuck.on("message", (d) => received.push(JSON.parse(d.toString()) as ApiServerMessage));
  stuck.send(JSON.stringify({ id: 1, method: "subscribe", params: { records: true, logs: { instanceId, task: "loud" } } }));
  await until("the subscription", () => received.some((m) => "id" in m && m.id === 1));
  const raw = (stuck as unknown as { _socket: import("node:net").Socket })._socket;
  raw.pause();

  ws.write("go", "");
  // A runner that waited on the stuck client would never end the run: the deadline is a
  // hang guard, not a speed test.
  const ended = await until(
    "the run to end while a client is stuck",
    async () => {
      const r = await client.request("runs.get", { run: run.id });
      return r.state !== "running" && r;
    },
    120_000,
  );
  assert.equal(ended.state, "success");
  const log = await client.request("logs.read", { run: run.id, task: "loud" });
  assert.equal(log.text.split("\n").filter((l) => / stdout INFO line \d+ of the loud task/.test(l)).length, LINES);

  // Reading again: the client gets what was buffered, then a resync instead of the rest.
  raw.resume();
  const resync = await until("a resync event", () => received.find((m) => "event" in m && m.event === "resync"), 20_000);
  assert.match((resync as { reason: string }).reason, /dropped/);
  const lines = received.filter((m) => "event" in m && m.event === "log").reduce((n, m) => n + (m as { text: string }).text.split("\n").length - 1, 0);
  assert.ok(lines < LINES, `the stuck client got ${lines} of ${LINES} lines: some were dropped`);
  // After the resync the connection is usable: a request gets its answer.
  stuck.send(JSON.stringify({ id: 2, method: "runs.get", params: { run: run.id } }));
  await until("an answer after the resync", () => received.some((m) => "id" in m && m.id === 2));
  stuck.close();
  client.close();
});
