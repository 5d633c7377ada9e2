/**
 * The runner's WebSocket endpoint (SPEC §4): loopback only, a secret token, no browsers.
 *
 * The runner executes code, so every upgrade request is checked before `ws` sees it, and
 * refused with a plain HTTP status (never a 101):
 * - 403 when it carries an `Origin` header: browsers always send one on a WebSocket
 *   upgrade (`null` from sandboxed frames and files, `vscode-webview://…` from webviews),
 *   our clients never do. This closes cross-site WebSocket hijacking.
 * - 403 when `Host` is not `127.0.0.1:<port>`, `localhost:<port>` or `[::1]:<port>`: a DNS
 *   rebinding page reaches us with its own host name.
 * - 401 without `Authorization: Bearer <token>` matching the runner's token (compared in
 *   constant time).
 * Plain HTTP requests get 426.
 *
 * Slow clients: events go out only while the client's send buffer is below a bound;
 * past it they are dropped, and once the buffer drains the client gets a `resync` event.
 * Responses to requests are always sent (a client that stops reading entirely is closed
 * when its buffer passes a hard limit).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import type { ApiEvent, ApiMethod, ApiMethods, ApiRequest, ApiResponse } from "../protocol/api";

/** Events are dropped for a client whose unsent data passes this. */
const SOFT_LIMIT = 4 * 1024 * 1024;
/** A client this far behind (responses included) is disconnected. */
const HARD_LIMIT = 64 * 1024 * 1024;
/** Largest request accepted. */
const MAX_PAYLOAD = 1024 * 1024;

export type Handler = {
  [M in ApiMethod]: (params: ApiMethods[M]["params"], client: ApiClient) => Promise<ApiMethods[M]["result"]> | ApiMethods[M]["result"];
};

export class ApiClient {
  /** Subscriptions' cleanups, by subscription id. */
  readonly subscriptions = new Map<number, () => void>();
  private lagging = false;
  private drainTimer: NodeJS.Timeout | undefined;
  dropped = 0;

  constructor(readonly socket: WebSocket) {}

  /** Sends an event unless the client is behind; then drops it and schedules a resync. */
  push(event: ApiEvent, text?: string): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    if (this.lagging || this.socket.bufferedAmount > SOFT_LIMIT) {
      this.dropped++;
      this.startLagging();
      return;
    }
    this.socket.send(text ?? JSON.stringify(event));
  }

  reply(response: ApiResponse): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    if (this.socket.bufferedAmount > HARD_LIMIT) {
      this.socket.terminate();
      return;
    }
    this.socket.send(JSON.stringify(response));
  }

  private startLagging(): void {
    if (this.lagging) return;
    this.lagging = true;
    const check = () => {
      if (this.socket.readyState !== this.socket.OPEN) return;
      if (this.socket.bufferedAmount > SOFT_LIMIT / 4) {
        this.drainTimer = setTimeout(check, 50);
        return;
      }
      this.lagging = false;
      this.drainTimer = undefined;
      const dropped = this.dropped;
      this.dropped = 0;
      this.socket.send(JSON.stringify({ event: "resync", reason: `${dropped} event(s) dropped: the client read too slowly` } satisfies ApiEvent));
    };
    this.drainTimer = setTimeout(check, 50);
  }

  dispose(): void {
    if (this.drainTimer) clearTimeout(this.drainTimer);
    for (const off of this.subscriptions.values()) off();
    this.subscriptions.clear();
  }
}

export interface ApiServer {
  port: number;
  clients: Set<ApiClient>;
  broadcast(event: ApiEvent, filter?: (c: ApiClient) => boolean): void;
  close(): Promise<void>;
}

/** Why an upgrade request is refused, or undefined when it may proceed. */
export function checkUpgrade(req: IncomingMessage, port: number, tokenHash: Buffer): { status: 401 | 403; reason: string } | undefined {
  if (req.headers.origin !== undefined) return { status: 403, reason: "browser origins are not allowed" };
  const host = req.headers.host ?? "";
  if (![`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(host.toLowerCase())) {
    return { status: 403, reason: "Host must be a loopback address with the runner's port" };
  }
  const auth = req.headers.authorization ?? "";
  const m = /^Bearer ([^\s]+)$/i.exec(auth);
  if (!m) return { status: 401, reason: "missing token" };
  // Hash both sides so that the comparison is constant-time whatever the lengths.
  if (!timingSafeEqual(sha256(m[1]), tokenHash)) return { status: 401, reason: "wrong token" };
  return undefined;
}

export async function startApiServer(token: string, handler: Handler, log: (msg: string) => void): Promise<ApiServer> {
  const tokenHash = sha256(token);
  const clients = new Set<ApiClient>();
  const http: Server = createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain", connection: "close" }).end("WebSocket only\n");
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD });
  let port = 0;

  http.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const refused = checkUpgrade(req, port, tokenHash);
    if (refused) {
      const text = `${refused.reason}\n`;
      socket.end(
        `HTTP/1.1 ${refused.status} ${refused.status === 401 ? "Unauthorized" : "Forbidden"}\r\n` +
          `Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
      log(`refused a connection (${refused.status}: ${refused.reason})`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws));
  });

  function accept(ws: WebSocket): void {
    const client = new ApiClient(ws);
    clients.add(client);
    ws.on("message", (data, isBinary) => {
      if (isBinary) return client.reply({ id: -1, error: { message: "binary frames are not supported" } });
      void dispatch(client, data.toString());
    });
    ws.on("close", () => {
      clients.delete(client);
      client.dispose();
    });
    ws.on("error", () => ws.terminate());
  }

  async function dispatch(client: ApiClient, text: string): Promise<void> {
    let req: ApiRequest;
    try {
      req = JSON.parse(text) as ApiRequest;
    } catch {
      return client.reply({ id: -1, error: { message: "invalid JSON" } });
    }
    const id = typeof req?.id === "number" ? req.id : -1;
    const fn = Object.hasOwn(handler, req?.method ?? "") ? (handler[req.method] as (p: unknown, c: ApiClient) => unknown) : undefined;
    if (!fn) return client.reply({ id, error: { message: `unknown method ${JSON.stringify(req?.method)}` } });
    try {
      const result = await fn(req.params ?? {}, client);
      client.reply({ id, result } as ApiResponse);
    } catch (e) {
      client.reply({ id, error: { message: e instanceof Error ? e.message : String(e) } });
    }
  }

  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(0, "127.0.0.1", () => resolve());
  });
  port = (http.address() as AddressInfo).port;

  return {
    port,
    clients,
    broadcast(event, filter) {
      let text: string | undefined;
      for (const c of clients) if (!filter || filter(c)) c.push(event, (text ??= JSON.stringify(event)));
    },
    async close() {
      for (const c of clients) c.socket.close(1001, "runner stopping");
      await new Promise<void>((resolve) => {
        wss.close();
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}
