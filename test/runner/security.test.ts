/**
 * The runner's API is reachable only from our own clients: loopback, the secret token,
 * no browser origin. Each refused case must get a plain HTTP status, never a 101.
 */
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import type { RunnerInfo } from "../../protocol/api";
import { readRunnerInfo } from "../../common/runner-client";
import { type Workspace, workspace } from "./fixture";

let ws: Workspace;
let info: RunnerInfo;

before(async () => {
  ws = workspace();
  const r = await ws.cli(["runner", "start"]);
  assert.equal(r.code, 0, r.stderr);
  info = readRunnerInfo(ws.dir)!;
});
after(() => ws.dispose());

/** Sends an upgrade request with exactly these headers; resolves with the status line's code. */
function upgrade(headers: Record<string, string>, path = "/"): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port: info.port,
      path,
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        ...headers,
      },
      setHost: false,
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve(res.statusCode!);
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on("error", reject);
    req.end();
  });
}

const good = () => ({ host: `127.0.0.1:${info.port}`, authorization: `Bearer ${info.token}` });

test("runner.json is private (0600) and holds a 256-bit token, a pid and a loopback port", () => {
  const mode = statSync(join(ws.dir, ".tideflow", "runner.json")).mode & 0o777;
  assert.equal(mode, 0o600);
  assert.match(info.token, /^[0-9a-f]{64}$/);
  assert.ok(info.port > 0 && info.pid > 0);
});

test("the right token on a loopback host upgrades (101)", async () => {
  assert.equal(await upgrade(good()), 101);
  assert.equal(await upgrade({ ...good(), host: `localhost:${info.port}` }), 101);
});

test("no token, a wrong token, or a token in the wrong scheme: 401", async () => {
  assert.equal(await upgrade({ host: good().host }), 401);
  assert.equal(await upgrade({ ...good(), authorization: `Bearer ${"0".repeat(64)}` }), 401);
  assert.equal(await upgrade({ ...good(), authorization: `Bearer ${info.token.slice(0, 63)}` }), 401);
  assert.equal(await upgrade({ ...good(), authorization: `Basic ${info.token}` }), 401);
  // A token in the query string is not accepted (it would end up in logs and histories).
  assert.equal(await upgrade({ host: good().host }, `/?token=${info.token}`), 401);
});

test("any browser Origin is refused with 403, even with the right token", async () => {
  for (const origin of ["http://evil.example", "null", "vscode-webview://1234abcd", `http://127.0.0.1:${info.port}`, "file://"]) {
    assert.equal(await upgrade({ ...good(), origin }), 403, origin);
  }
});

test("a Host that is not loopback:port is refused with 403 (DNS rebinding)", async () => {
  for (const host of ["evil.example", `evil.example:${info.port}`, `127.0.0.1:${info.port + 1}`, "127.0.0.1", `192.168.1.2:${info.port}`]) {
    assert.equal(await upgrade({ ...good(), host }), 403, host);
  }
});

test("plain HTTP gets 426, and the runner listens on loopback only", async () => {
  const status = await new Promise<number>((resolve, reject) => {
    request({ host: "127.0.0.1", port: info.port, path: "/" }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    })
      .on("error", reject)
      .end();
  });
  assert.equal(status, 426);
  const { networkInterfaces } = await import("node:os");
  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal);
  if (external) {
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = new WebSocket(`ws://${external.address}:${info.port}/`, { headers: { authorization: `Bearer ${info.token}` } });
        socket.on("open", resolve);
        socket.on("error", reject);
      }),
      /ECONNREFUSED/,
    );
  }
});

test("a connected client gets typed answers, and errors for bad requests instead of a dropped socket", async () => {
  const client = await ws.client();
  try {
    const status = await client.request("runner.status", {});
    assert.equal(status.pid, info.pid);
    await assert.rejects(client.request("runs.get", { run: "run-999" }), /no run run-999/);
    await assert.rejects(client.request("nope" as "runner.status", {}), /unknown method "nope"/);
  } finally {
    client.close();
  }
});
