/**
 * The gateway's HTTP endpoint (node:http): `/metrics` (Prometheus), `/healthz`, `/readyz`,
 * `/api/summary`, `/api/alerts`, `/api/updates`, the live page `/` and its updates `/events` (SSE),
 * and the operator actions `POST /api/updates/check|retry`. See README.md here.
 *
 * node:http rather than a framework: eight GET routes, two body-less operator POSTs, and an SSE stream
 * that needs the raw response (its back-pressure is the point) — a framework would add
 * dependencies to the Pi install and be bypassed for the one route that matters.
 *
 * Security: without an access token the endpoint binds to loopback only, and answers only
 * requests whose `Host` names a loopback address, so a web page cannot read it through DNS
 * rebinding. `allowRemote` (a non-loopback bind, or a reverse proxy's public name) needs
 * `authToken`: every request but `/healthz` must then carry it, as `Authorization: Bearer` or as
 * the password of HTTP Basic (RFC 7617, which browsers ask for and send with every request of
 * the page, `/events` included). The comparison is of sha256 digests in constant time.
 * With an access token, the operator actions also need the operator token (`operatorTokenFile`):
 * a reverse proxy's clients hold the access token, not a file of the gateway's `dataDir`.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  createServer,
  STATUS_CODES,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { isIP } from "node:net";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { writeFileAtomic } from "../core/atomic-file.ts";
import { ConfigError, VigilError, fileError } from "../core/errors.ts";
import { silentLogger, type Logger } from "../core/log.ts";
import { fromRoot } from "../core/paths.ts";
import type { EventOutput } from "../alerts/service.ts";
import { LiveFeed } from "./live.ts";
import { GatewayMetrics } from "./metrics.ts";
import { PageModel } from "./page-model.ts";
import { readiness } from "./readiness.ts";
import type { MetricsSource } from "./source.ts";
import { SseHub, type SseOptions } from "./sse.ts";

/** The endpoint could not start (address in use, no permission). */
export class HttpEndpointError extends VigilError {
  override name = "HttpEndpointError";
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super("HTTP_ENDPOINT", message, opts);
  }
}

export interface HttpServerOptions {
  source: MetricsSource;
  /** Default 127.0.0.1. A non-loopback address needs `allowRemote`. */
  host?: string;
  /** Default 9479; 0 picks a free port (see `port` after start). */
  port?: number;
  /** Allow a non-loopback `host` or `Host` header; needs `authToken`. Default false. */
  allowRemote?: boolean;
  /** Access token every request but `/healthz` must carry (Bearer, or Basic password). Default none. */
  authToken?: string | undefined;
  /**
   * Where {@link HttpServer.start} writes a fresh operator token (64 hex digits, mode 0600; a new
   * one at every start), which the operator actions then need in `X-Vigil-Operator` besides the
   * access token: a reverse proxy on this machine connects from loopback and passes its clients'
   * access token, but they cannot read this file. Only with `authToken`. Default none.
   */
  operatorTokenFile?: string | undefined;
  /** Time a client has to send its request headers, ms. Default 10 000. */
  headersTimeoutMs?: number;
  /** Open connections at most. Default {@link MAX_CONNECTIONS}. */
  maxConnections?: number;
  log?: Logger;
  /** Software version for `vigil_build_info`. Default: package.json's. */
  version?: string;
  sse?: Partial<SseOptions>;
}

export const HTTP_DEFAULTS = { host: "127.0.0.1", port: 9479 } as const;

/** The operator token's file in the gateway's `dataDir` (written at start when an access token is set). */
export const OPERATOR_TOKEN_FILE = "operator-token";

/** Open connections at most (live pages, scrapers, CLI calls); more are closed at accept. */
export const MAX_CONNECTIONS = 128;

/** True for 127.0.0.0/8, ::1 and "localhost". */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (h.startsWith("::ffff:")) return h.slice(7).startsWith("127.");
  return false;
}

/** The hostname part of a Host header (`[::1]:9479` → `::1`, `localhost:9479` → `localhost`). */
function hostOf(header: string): string {
  if (header.startsWith("[")) return header.slice(1, header.indexOf("]"));
  const i = header.lastIndexOf(":");
  return i < 0 ? header : header.slice(0, i);
}

interface Asset {
  type: string;
  body: Buffer;
}

/** The page's files: read once at construction (a missing file is an installation error). */
function loadAssets(): Map<string, Asset> {
  const page = (f: string) => fromRoot("gateway", "src", "http", "page", f);
  const require = createRequire(import.meta.url);
  const files: Array<[string, string, string]> = [
    ["/", page("index.html"), "text/html; charset=utf-8"],
    ["/app.js", page("app.js"), "text/javascript; charset=utf-8"],
    ["/app.css", page("app.css"), "text/css; charset=utf-8"],
    ["/favicon.svg", page("favicon.svg"), "image/svg+xml"],
    [
      "/vendor/uPlot.iife.min.js",
      require.resolve("uplot/dist/uPlot.iife.min.js"),
      "text/javascript; charset=utf-8",
    ],
    ["/vendor/uPlot.min.css", require.resolve("uplot/dist/uPlot.min.css"), "text/css; charset=utf-8"],
  ];
  const out = new Map<string, Asset>();
  for (const [path, file, type] of files) {
    try {
      out.set(path, { type, body: readFileSync(file) });
    } catch (e) {
      throw new HttpEndpointError(`the live page's file ${file} is missing; reinstall the package`, {
        cause: e,
      });
    }
  }
  return out;
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(fromRoot("package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

export class HttpServer {
  /** The live view fed by the alert stage's events; wrap the alert output with {@link tap}. */
  readonly feed = new LiveFeed();
  readonly metrics: GatewayMetrics;
  readonly page: PageModel;
  readonly #hub: SseHub;
  readonly #o: HttpServerOptions;
  readonly #host: string;
  readonly #log: Logger;
  readonly #assets: Map<string, Asset>;
  /** sha256 of the access token, when one is set. */
  readonly #token: Buffer | undefined;
  /** sha256 of the operator token written at start, when `operatorTokenFile` is set. */
  #operatorToken: Buffer | undefined;
  readonly #requests = new Map<string, number>();
  /** Connections closed at accept past maxConnections. */
  #dropped = 0;
  /** Requests Node's HTTP parser refused, by the status answered. */
  readonly #clientErrors = new Map<string, number>();
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #port = 0;

  /** Validates the address (ConfigError naming `http.host`) and loads the page's files. */
  constructor(o: HttpServerOptions) {
    this.#o = o;
    this.#host = o.host ?? HTTP_DEFAULTS.host;
    this.#log = o.log ?? silentLogger;
    if (!o.allowRemote && !isLoopback(this.#host))
      throw new ConfigError(
        "http.host",
        `${this.#host} is not a loopback address; use 127.0.0.1, or set http.allowRemote to true with an access token (http.authTokenFile)`,
      );
    if (o.allowRemote && !o.authToken)
      throw new ConfigError(
        "http.authTokenFile",
        "http.allowRemote needs an access token: nothing listens beyond loopback without authentication",
      );
    if (o.authToken !== undefined && o.authToken.length < 32)
      throw new ConfigError("http.authTokenFile", "the access token must have at least 32 characters");
    this.#token = o.authToken === undefined ? undefined : sha256(o.authToken);
    if (o.operatorTokenFile !== undefined && o.authToken === undefined)
      throw new RangeError("HttpServer: operatorTokenFile needs authToken");
    const port = o.port ?? HTTP_DEFAULTS.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new ConfigError("http.port", `must be an integer in 0..65535, got ${port}`);
    this.#assets = loadAssets();
    this.page = new PageModel(o.source, this.feed);
    this.#hub = new SseHub(this.page, this.feed, o.sse, undefined, this.#log);
    this.metrics = new GatewayMetrics({
      source: o.source,
      feed: this.feed,
      version: o.version ?? packageVersion(),
      http: () => ({
        sseClients: this.#hub.clients,
        sseSkipped: this.#hub.skipped,
        sseEvicted: this.#hub.evicted,
        requests: this.#requests,
        connectionsDropped: this.#dropped,
        clientErrors: this.#clientErrors,
      }),
    });
  }

  /** An EventOutput that shows every alert-stage event to the live view, then passes it on. */
  tap(inner: EventOutput): EventOutput {
    return this.feed.tap(inner);
  }

  /** The bound port (after start). */
  get port(): number {
    return this.#port;
  }

  /** `http://host:port` (after start). */
  get url(): string {
    const h = isIP(this.#host) === 6 ? `[${this.#host}]` : this.#host;
    return `http://${h}:${this.#port}`;
  }

  async start(): Promise<void> {
    if (this.#o.operatorTokenFile !== undefined) {
      const token = randomBytes(32).toString("hex");
      try {
        await writeFileAtomic(this.#o.operatorTokenFile, `${token}\n`, { mode: 0o600 });
      } catch (e) {
        throw fileError(e, "write the operator token") ?? e;
      }
      this.#operatorToken = sha256(token);
    }
    // A client gets 10 s for its headers and 30 s for its request, body included (Node's defaults
    // are 60 s and 300 s; no route reads a body, so one still arriving then is cut off), a
    // connection idle after an answer 5 s, and at most MAX_CONNECTIONS are open at once: the
    // endpoint shares the process's file descriptors with the broker and the store, so slow or
    // idle clients must not use them up (README.md "Limits").
    const headersTimeout = this.#o.headersTimeoutMs ?? 10_000;
    const server = createServer(
      {
        keepAliveTimeout: 5000,
        headersTimeout,
        requestTimeout: Math.max(30_000, headersTimeout),
        connectionsCheckingInterval: Math.min(1000, headersTimeout),
      },
      (req, res) => this.#handle(req, res),
    );
    server.maxConnections = this.#o.maxConnections ?? MAX_CONNECTIONS;
    // Closed at accept past maxConnections (net.Server 'drop'): counted, or a client holding the
    // places would go unseen.
    server.on("drop", () => this.#dropped++);
    // Requests Node's parser refuses before a handler sees them: answered as Node's default
    // handler does (lib/_http_server.js socketOnError: 400, 408 on a timeout, 413 for chunk
    // extensions, 431 for headers too large, unless an answer in flight has sent its header;
    // nothing to a peer that reset), and counted by that status.
    server.on("clientError", (e: NodeJS.ErrnoException, socket: Duplex) => {
      if (e.code === "ECONNRESET" || !socket.writable) return void socket.destroy();
      const status =
        e.code === "HPE_HEADER_OVERFLOW"
          ? 431
          : e.code === "HPE_CHUNK_EXTENSIONS_OVERFLOW"
            ? 413
            : e.code === "ERR_HTTP_REQUEST_TIMEOUT"
              ? 408
              : 400;
      this.#clientErrors.set(String(status), (this.#clientErrors.get(String(status)) ?? 0) + 1);
      // (Node's own field: the response on this socket, if one is in flight.)
      const inFlight = (socket as Duplex & { _httpMessage?: { _headerSent?: boolean } | null })._httpMessage;
      if (!inFlight?._headerSent)
        socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`);
      socket.destroy();
    });
    server.on("connection", (s) => {
      this.#sockets.add(s);
      s.once("close", () => this.#sockets.delete(s));
    });
    const port = this.#o.port ?? HTTP_DEFAULTS.port;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) => {
        const where = `${this.#host}:${port}`;
        reject(
          new HttpEndpointError(
            e.code === "EADDRINUSE"
              ? `${where} is already in use; stop the other process or set http.port (--http-port; 0 picks a free port)`
              : e.code === "EACCES"
                ? `no permission to listen on ${where}; set http.port (--http-port) above 1023`
                : e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND" || e.code === "EAI_AGAIN"
                  ? `cannot listen on ${where} (${e.code}): set http.host to an address of this machine (127.0.0.1 for loopback)`
                  : `cannot listen on ${where}: ${e.message}`,
            { cause: e },
          ),
        );
      });
      server.listen(port, this.#host, () => resolve());
    });
    server.on("error", (e) => this.#log.warn({ err: e.message }, "http server error"));
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    this.#hub.start();
    this.#log.info({ url: this.url }, "http endpoint listening");
  }

  /** Ends the live streams and closes every connection. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    this.#hub.stop();
    const closed = new Promise<void>((res) => server.close(() => res()));
    server.closeAllConnections();
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  #count(path: string, code: number): void {
    const k = `${path} ${code}`;
    this.#requests.set(k, (this.#requests.get(k) ?? 0) + 1);
  }

  /** Whether the request carries the access token (Bearer, or the password of Basic credentials). */
  #authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? "";
    let given: string | undefined;
    const sp = h.indexOf(" ");
    const scheme = sp < 0 ? "" : h.slice(0, sp).toLowerCase();
    const value = sp < 0 ? "" : h.slice(sp + 1).trim();
    if (scheme === "bearer") given = value;
    else if (scheme === "basic") {
      const text = Buffer.from(value, "base64").toString("utf8");
      const colon = text.indexOf(":");
      if (colon >= 0) given = text.slice(colon + 1);
    }
    return given !== undefined && timingSafeEqual(sha256(given), this.#token!);
  }

  /** Whether the request carries this start's operator token in `X-Vigil-Operator`. */
  #operatorAuthorized(req: IncomingMessage): boolean {
    const given = req.headers["x-vigil-operator"];
    return typeof given === "string" && timingSafeEqual(sha256(given.trim()), this.#operatorToken!);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const known = path === "/" || this.#assets.has(path) || ROUTES.has(path);
    const label = known ? path : "other";
    const send = (code: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
      this.#count(label, code);
      res.writeHead(code, {
        "content-type": type,
        "cache-control": "no-cache",
        ...SECURITY_HEADERS,
        ...extra,
      });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (!this.#o.allowRemote && !isLoopback(hostOf(req.headers.host ?? ""))) {
      // DNS rebinding guard: a loopback-only endpoint serves loopback names only.
      send(421, "text/plain; charset=utf-8", "this endpoint answers only requests to a loopback address\n");
      return;
    }
    if (this.#token && path !== "/healthz" && !this.#authorized(req)) {
      req.resume();
      send(
        401,
        "text/plain; charset=utf-8",
        "an access token is needed (Authorization: Bearer, or Basic)\n",
        {
          "www-authenticate": 'Basic realm="vigil", charset="UTF-8"',
        },
      );
      return;
    }
    if (OPERATOR_ROUTES.has(path)) {
      this.#operator(req, path, url.slice(q < 0 ? url.length : q + 1), send);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(405, "text/plain; charset=utf-8", "only GET and HEAD\n", { allow: "GET, HEAD" });
      return;
    }
    const asset = this.#assets.get(path);
    if (asset) {
      send(200, asset.type, asset.body);
      return;
    }
    switch (path) {
      case "/healthz":
        send(200, "application/json", '{"status":"alive"}\n');
        return;
      case "/readyz": {
        const r = readiness(this.#o.source);
        send(r.ready ? 200 : 503, "application/json", JSON.stringify(r, null, 2) + "\n");
        return;
      }
      case "/metrics":
        this.metrics.render().then(
          (text) => send(200, this.metrics.contentType, text),
          (e: unknown) => {
            this.#log.warn({ err: (e as Error).message }, "metrics collection failed");
            send(500, "text/plain; charset=utf-8", "metrics collection failed\n");
          },
        );
        return;
      case "/api/summary":
        this.page.stats().then(
          (s) => send(200, "application/json", JSON.stringify(s) + "\n"),
          (e: unknown) => {
            this.#log.warn({ err: (e as Error).message }, "summary failed");
            send(500, "text/plain; charset=utf-8", "summary failed\n");
          },
        );
        return;
      case "/api/alerts":
        // Active alerts (each with its receipt leaf) and the last transitions, oldest first.
        send(
          200,
          "application/json",
          JSON.stringify({ active: [...this.feed.active.values()], recent: [...this.feed.recent] }) + "\n",
        );
        return;
      case "/api/updates": {
        const u = this.#o.source.updates;
        send(200, "application/json", toJson({ enabled: u !== undefined, status: u?.status() ?? null }));
        return;
      }
      case "/events":
        // HEAD: the headers of the stream, no stream (a HEAD that attached would hold a place).
        if (req.method === "HEAD") send(200, "text/event-stream; charset=utf-8", "");
        else this.#count(label, this.#hub.attach(req, res));
        return;
      default:
        send(404, "text/plain; charset=utf-8", "not found\n");
    }
  }

  /**
   * Operator actions (README.md, "Operator actions"): `POST /api/updates/check` and
   * `POST /api/updates/retry?release=ID[&device=N]`. Only from a loopback peer — also when
   * `allowRemote` exposes the read-only routes — and never from a web page: a browser sends
   * `Origin` (and `Sec-Fetch-Site`) with every POST, so a page cannot forge one (CSRF). With an
   * operator token, only with it (a reverse proxy's clients cannot read it). No body.
   */
  #operator(
    req: IncomingMessage,
    path: string,
    query: string,
    send: (code: number, type: string, body: string, extra?: Record<string, string>) => void,
  ): void {
    req.resume();
    const fail = (code: number, error: string) => send(code, "application/json", toJson({ error }));
    if (req.method !== "POST") {
      send(405, "application/json", toJson({ error: "only POST" }), { allow: "POST" }); // RFC 9110 §15.5.6
      return;
    }
    if (!isLoopback(req.socket.remoteAddress ?? "")) {
      fail(403, "operator actions are accepted only from this machine (a loopback address)");
      return;
    }
    if (req.headers.origin !== undefined || req.headers["sec-fetch-site"] !== undefined) {
      fail(403, "operator actions are not accepted from web pages; use vigil update");
      return;
    }
    if (this.#operatorToken && !this.#operatorAuthorized(req)) {
      fail(
        403,
        "operator actions need the operator token the gateway writes to its dataDir at start (X-Vigil-Operator); use vigil update -c with the gateway's config",
      );
      return;
    }
    const updates = this.#o.source.updates;
    if (!updates) {
      fail(409, "updates are not enabled on this gateway (updates.enabled is false)");
      return;
    }
    const check = (): void =>
      void updates
        .check()
        .catch((e: unknown) =>
          this.#log.warn({ err: (e as Error).message }, "update check asked by an operator failed"),
        );
    if (path === "/api/updates/check") {
      this.#log.info("update check asked by an operator");
      check();
      send(202, "application/json", toJson({ accepted: true, status: updates.status() }));
      return;
    }
    const params = new URLSearchParams(query);
    const release = params.get("release") ?? "";
    const device = params.get("device");
    if (!/^\d{1,78}$/.test(release) || BigInt(release) >= 1n << 256n) {
      fail(400, `release must be a release id (a decimal uint256), got "${release}"`);
      return;
    }
    if (device !== null && (!/^\d{1,10}$/.test(device) || Number(device) > 0xffffffff)) {
      fail(400, `device must be a device id (0..4294967295), got "${device}"`);
      return;
    }
    const id = BigInt(release);
    updates.retry(id, device === null ? undefined : Number(device)).then(
      (retried) => {
        this.#log.info({ releaseId: release, ...retried }, "release retry asked by an operator");
        check();
        send(202, "application/json", toJson({ accepted: true, retried, status: updates.status() }));
      },
      (e: unknown) => {
        this.#log.warn({ err: (e as Error).message }, "release retry failed");
        fail(500, `the retry could not be recorded: ${(e as Error).message}`);
      },
    );
  }
}

/** JSON of an API answer (bigints as decimal strings), with a final newline. */
function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x)) + "\n";
}

const OPERATOR_ROUTES = new Set(["/api/updates/check", "/api/updates/retry"]);
const ROUTES = new Set([
  "/healthz",
  "/readyz",
  "/metrics",
  "/api/summary",
  "/api/alerts",
  "/api/updates",
  "/events",
  ...OPERATOR_ROUTES,
]);

function sha256(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}
