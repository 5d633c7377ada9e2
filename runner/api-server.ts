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
 * Requests: a frame that is not a JSON request, or params that do not fit the method
 * (api-params.ts), get `invalid-params` before any handler runs; a handler refuses by
 * throwing `ApiFailure` (its code goes to the client); any other exception is a bug and
 * goes out as `internal`.
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
import type { ApiError, ApiErrorCode, ApiEvent, ApiMethod, ApiMethods, ApiResponse } from "../protocol/api";
import { API_METHODS, isApiMethod, paramsProblem, shown } from "./api-params";

/** Events are dropped for a client whose unsent data passes this. */
const SOFT_LIMIT = 4 * 1024 * 1024;
/** A client this far behind (responses included) is disconnected. */
const HARD_LIMIT = 64 * 1024 * 1024;
/** Largest request accepted. */
const MAX_PAYLOAD = 1024 * 1024;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

export type Handler = {
  [M in ApiMethod]: (params: ApiMethods[M]["params"], client: ApiClient) => Promise<ApiMethods[M]["result"]> | ApiMethods[M]["result"];
};

/** A request refused with a code: what a handler throws. */
export class ApiFailure extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly extra: Omit<ApiError, "code" | "message"> = {},
  ) {
    super(message);
  }

  toApiError(): ApiError {
    return { code: this.code, message: this.message, ...this.extra };
  }
}

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
  // UTF-8 is checked here rather than by `ws`, which would close the connection over one
  // bad frame: a client gets an answer to every frame it sends.
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD, skipUTF8Validation: true });
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
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) {
        return client.reply({ id: -1, error: { code: "invalid-params", message: `requests are JSON text frames; got a binary frame of ${bytes.length} byte(s)` } });
      }
      let text: string;
      try {
        text = UTF8.decode(bytes);
      } catch {
        return client.reply({ id: -1, error: { code: "invalid-params", message: `a text frame must be UTF-8; got ${bytes.length} byte(s) that are not` } });
      }
      void dispatch(client, text);
    });
    ws.on("close", () => {
      clients.delete(client);
      client.dispose();
    });
    ws.on("error", () => ws.terminate());
  }

  async function dispatch(client: ApiClient, text: string): Promise<void> {
    let req: unknown;
    try {
      req = JSON.parse(text);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      return client.reply({ id: -1, error: { code: "invalid-params", message: `a request is a JSON object { id, method, params }; got text that is not JSON (${why})` } });
    }
    if (typeof req !== "object" || req === null || Array.isArray(req)) {
      return client.reply({ id: -1, error: { code: "invalid-params", message: `a request is a JSON object { id, method, params }; got ${shown(req)}` } });
    }
    const { id, method, params } = req as Record<string, unknown>;
    if (!Number.isSafeInteger(id)) {
      return client.reply({ id: -1, error: { code: "invalid-params", message: `a request's \`id\` is an integer its answer carries back; got ${shown(id)}` } });
    }
    const rid = id as number;
    if (!isApiMethod(method)) {
      const message =
        method === undefined ? "the request has no `method`" : typeof method === "string" ? `unknown method ${JSON.stringify(method)}` : `\`method\` is a method name; got ${shown(method)}`;
      return client.reply({ id: rid, error: { code: "unknown-method", message: `${message}; the methods are ${API_METHODS.join(", ")}` } });
    }
    const p = params === undefined ? {} : params;
    const problem = paramsProblem(method, p);
    if (problem) return client.reply({ id: rid, error: { code: "invalid-params", message: problem } });
    try {
      const result = await (handler[method] as (p: unknown, c: ApiClient) => unknown)(p, client);
      client.reply({ id: rid, result } as ApiResponse);
    } catch (e) {
      if (e instanceof ApiFailure) return client.reply({ id: rid, error: e.toApiError() });
      log(`internal error in ${method}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      client.reply({ id: rid, error: { code: "internal", message: `${method} failed: ${e instanceof Error ? e.message : String(e)}` } });
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
