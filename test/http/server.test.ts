import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as netConnect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../../gateway/src/core/errors.ts";
import {
  HttpEndpointError,
  HttpServer,
  isLoopback,
  OPERATOR_TOKEN_FILE,
} from "../../gateway/src/http/server.ts";
import { health } from "./events.ts";
import { FakeSource, storeStats } from "./fake-source.ts";
import { parseExposition, sample } from "./exposition.ts";

const TOKEN = "t0ken-of-at-least-32-characters-0123456789";
const servers: HttpServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

async function started(src = new FakeSource(), o: Partial<ConstructorParameters<typeof HttpServer>[0]> = {}) {
  const s = new HttpServer({ source: src, port: 0, ...o });
  servers.push(s);
  await s.start();
  return s;
}

/** A raw request (fetch does not let a test set Host). */
function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("HttpServer", () => {
  it("args: refuses a non-loopback address unless allowRemote, and a bad port, naming the setting", () => {
    expect(() => new HttpServer({ source: new FakeSource(), host: "0.0.0.0" })).toThrowError(ConfigError);
    expect(() => new HttpServer({ source: new FakeSource(), host: "192.168.1.5" })).toThrowError(
      /^http\.host: 192\.168\.1\.5 is not a loopback address; use 127\.0\.0\.1, or set http\.allowRemote to true with an access token/,
    );
    // Nothing listens beyond loopback without authentication: allowRemote needs a token.
    expect(
      () => new HttpServer({ source: new FakeSource(), host: "0.0.0.0", allowRemote: true }),
    ).toThrowError(/^http\.authTokenFile: http\.allowRemote needs an access token/);
    expect(
      () =>
        new HttpServer({ source: new FakeSource(), host: "0.0.0.0", allowRemote: true, authToken: TOKEN }),
    ).not.toThrow();
    expect(() => new HttpServer({ source: new FakeSource(), authToken: "" })).toThrowError(
      /at least 32 characters/,
    );
    expect(() => new HttpServer({ source: new FakeSource(), port: 70000 })).toThrowError(/^http\.port: /);
    expect(
      ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"].every(isLoopback),
    ).toBe(true);
    expect(["0.0.0.0", "::", "10.0.0.1", "example.com", "127.example.com", ""].some(isLoopback)).toBe(false);
  });

  it("behavior: serves the page, its assets (uPlot from node_modules) and JSON endpoints with security headers", async () => {
    const s = await started();
    const page = await get(s.port, "/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.body).toContain('<script src="/vendor/uPlot.iife.min.js" defer></script>');
    expect(page.headers["content-security-policy"]).toMatch(/default-src 'none'; script-src 'self'/);
    expect(page.headers["x-frame-options"]).toBe("DENY");
    const uplot = await get(s.port, "/vendor/uPlot.iife.min.js");
    expect(uplot.status).toBe(200);
    expect(uplot.body).toMatch(/uPlot/);
    expect((await get(s.port, "/app.js")).body).toContain('new EventSource("/events")');
    expect(JSON.parse((await get(s.port, "/healthz")).body)).toEqual({ status: "alive" });
    const sum = JSON.parse((await get(s.port, "/api/summary")).body) as { gateway: { name: string } };
    expect(sum.gateway.name).toBe("gw-test");
    expect(JSON.parse((await get(s.port, "/api/alerts")).body)).toEqual({ active: [], recent: [] });
    expect((await get(s.port, "/nope")).status).toBe(404);
    const post = await get(s.port, "/metrics", {}, "POST");
    expect([post.status, post.headers.allow]).toEqual([405, "GET, HEAD"]);
    const head = await get(s.port, "/readyz", {}, "HEAD");
    expect([head.status, head.body]).toEqual([200, ""]);
    expect(s.url).toBe(`http://127.0.0.1:${s.port}`);
  });

  it("security: a loopback-only endpoint answers only loopback Host names (DNS rebinding), 421 otherwise", async () => {
    const s = await started();
    expect((await get(s.port, "/api/summary", { host: "evil.example:80" })).status).toBe(421);
    expect((await get(s.port, "/metrics", { host: `localhost:${s.port}` })).status).toBe(200);
    expect((await get(s.port, "/metrics", { host: `[::1]:${s.port}` })).status).toBe(200);
    const remote = await started(new FakeSource(), {
      host: "127.0.0.1",
      allowRemote: true,
      authToken: TOKEN,
    });
    expect((await get(remote.port, "/healthz", { host: "gateway.plant.example" })).status).toBe(200);
  });

  it("security: with an access token every request but /healthz needs it (Bearer, or Basic with any user), loopback peers and operator actions included", async () => {
    const calls: string[] = [];
    const updates = {
      status: () => ({ type: "updates", atMs: 1, model: null, firmware: null }),
      check: async () => void calls.push("check"),
      retry: async () => ({ model: false, firmwareDevices: [] }),
    };
    const s = await started(Object.assign(new FakeSource(), { updates }), {
      allowRemote: true,
      authToken: TOKEN,
    });
    const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`;
    for (const path of [
      "/",
      "/metrics",
      "/api/summary",
      "/api/alerts",
      "/api/updates",
      "/readyz",
      "/events",
    ]) {
      for (const authorization of [
        undefined,
        `Bearer ${TOKEN}x`,
        "Bearer ",
        basic("vigil", "wrong"),
        `Token ${TOKEN}`,
      ]) {
        const r = await get(s.port, path, authorization ? { authorization } : {});
        expect(r.status, `${path} ${authorization}`).toBe(401);
        expect(r.headers["www-authenticate"]).toBe('Basic realm="vigil", charset="UTF-8"');
        expect(r.body).not.toContain(TOKEN);
      }
    }
    expect((await get(s.port, "/healthz")).status).toBe(200);
    expect((await get(s.port, "/api/summary", { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await get(s.port, "/metrics", { authorization: basic("anyone", TOKEN) })).status).toBe(200);
    // A reverse proxy on this machine connects from loopback: the token still guards operator actions.
    expect((await get(s.port, "/api/updates/check", {}, "POST")).status).toBe(401);
    expect(calls).toEqual([]);
    const ok = await get(s.port, "/api/updates/check", { authorization: `Bearer ${TOKEN}` }, "POST");
    expect(ok.status).toBe(202);
    expect(calls).toEqual(["check"]);
    const wrongMethod = await get(
      s.port,
      "/api/updates/check",
      { authorization: `Bearer ${TOKEN}` },
      "OPTIONS",
    );
    expect([wrongMethod.status, wrongMethod.headers.allow]).toEqual([405, "POST"]);
  });

  it("security: with an operator token file, operator actions need this start's token besides the access token (a reverse proxy's clients hold only the latter)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-http-operator-"));
    const file = join(dir, OPERATOR_TOKEN_FILE);
    const calls: string[] = [];
    const updates = {
      status: () => ({ type: "updates", atMs: 1, model: null, firmware: null }),
      check: async () => void calls.push("check"),
      retry: async () => ({ model: false, firmwareDevices: [] }),
    };
    const source = Object.assign(new FakeSource(), { updates });
    const bearer = { authorization: `Bearer ${TOKEN}` };
    const s = await started(source, { allowRemote: true, authToken: TOKEN, operatorTokenFile: file });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const op = readFileSync(file, "utf8").trim();
    expect(op).toMatch(/^[0-9a-f]{64}$/);
    // The near miss differs in its last digit whatever that digit is (a fixed "0" matched one token in 16).
    const nearMiss = `${op.slice(0, 63)}${op.endsWith("0") ? "1" : "0"}`;
    for (const h of [{}, { "x-vigil-operator": nearMiss }, { "x-vigil-operator": TOKEN }]) {
      const r = await get(s.port, "/api/updates/check", { ...bearer, ...h }, "POST");
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body).error).toMatch(/^operator actions need the operator token/);
    }
    // The access token stays required: the operator token alone is not enough.
    expect((await get(s.port, "/api/updates/check", { "x-vigil-operator": op }, "POST")).status).toBe(401);
    // README order (loopback, web page, operator token): a web page is refused as one, whatever
    // operator token it carries, so its answer says nothing about the token.
    for (const h of [{ "x-vigil-operator": nearMiss }, { "x-vigil-operator": op }]) {
      const r = await get(
        s.port,
        "/api/updates/check",
        { ...bearer, ...h, origin: "http://evil.example" },
        "POST",
      );
      expect([r.status, JSON.parse(r.body).error]).toEqual([
        403,
        expect.stringMatching(/not accepted from web pages/),
      ]);
    }
    expect(calls).toEqual([]);
    const ok = await get(s.port, "/api/updates/check", { ...bearer, "x-vigil-operator": op }, "POST");
    expect(ok.status).toBe(202);
    expect(calls).toEqual(["check"]);
    // Read-only routes need only the access token.
    expect((await get(s.port, "/api/updates", bearer)).status).toBe(200);

    // Every start writes a new token: the previous one opens nothing.
    await s.stop();
    const again = await started(source, { allowRemote: true, authToken: TOKEN, operatorTokenFile: file });
    const op2 = readFileSync(file, "utf8").trim();
    expect(op2).not.toBe(op);
    const old = await get(again.port, "/api/updates/check", { ...bearer, "x-vigil-operator": op }, "POST");
    expect(old.status).toBe(403);
    expect(calls).toEqual(["check"]);

    // A token that cannot be written is a start-up error naming the file.
    const blocked = new HttpServer({
      source,
      port: 0,
      authToken: TOKEN,
      operatorTokenFile: join(dir, "missing", OPERATOR_TOKEN_FILE),
    });
    await expect(blocked.start()).rejects.toThrowError(
      `cannot write the operator token ${join(dir, "missing", OPERATOR_TOKEN_FILE)}: no such file or folder (ENOENT)`,
    );
    expect(() => new HttpServer({ source, operatorTokenFile: file })).toThrowError(RangeError);
  });

  it("behavior: operator actions — POST /api/updates/check and /retry reach the update agents; GET /api/updates shows them", async () => {
    const off = await started();
    expect(JSON.parse((await get(off.port, "/api/updates")).body)).toEqual({ enabled: false, status: null });
    const refused = await get(off.port, "/api/updates/check", {}, "POST");
    expect(refused.status).toBe(409);
    expect(JSON.parse(refused.body)).toEqual({
      error: "updates are not enabled on this gateway (updates.enabled is false)",
    });

    const calls: unknown[][] = [];
    const updates = {
      status: () => ({ type: "updates", atMs: 1, model: { lastInstall: { releaseId: 7n } } }),
      check: async () => void calls.push(["check"]),
      retry: async (id: bigint, device?: number) => {
        calls.push(["retry", id, device]);
        return { model: true, firmwareDevices: device === undefined ? [] : [device] };
      },
    };
    const s = await started(Object.assign(new FakeSource(), { updates }));
    expect(JSON.parse((await get(s.port, "/api/updates")).body)).toEqual({
      enabled: true,
      status: { type: "updates", atMs: 1, model: { lastInstall: { releaseId: "7" } } },
    });
    const check = await get(s.port, "/api/updates/check", {}, "POST");
    expect(check.status).toBe(202);
    expect(JSON.parse(check.body)).toMatchObject({ accepted: true, status: { atMs: 1 } });
    const retry = await get(s.port, "/api/updates/retry?release=7&device=3", {}, "POST");
    expect(retry.status).toBe(202);
    expect(JSON.parse(retry.body)).toMatchObject({ retried: { model: true, firmwareDevices: [3] } });
    expect(calls).toEqual([["check"], ["retry", 7n, 3], ["check"]]);

    // Bad ids are refused with a sentence; nothing reaches the agents.
    for (const q of ["", "?release=abc", "?release=-1", "?release=7&device=x", `?release=${2n ** 256n}`]) {
      const r = await get(s.port, `/api/updates/retry${q}`, {}, "POST");
      expect(r.status, q).toBe(400);
      expect(JSON.parse(r.body).error, q).toMatch(/^(release|device) must be/);
    }
    // Only POST changes anything; a web page cannot (Origin / Sec-Fetch-Site: CSRF).
    expect((await get(s.port, "/api/updates/check")).status).toBe(405);
    for (const h of [{ origin: "http://evil.example" }, { "sec-fetch-site": "cross-site" }]) {
      const r = await get(s.port, "/api/updates/check", h, "POST");
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body).error).toMatch(/not accepted from web pages/);
    }
    expect(calls).toHaveLength(3);
  });

  it("attack: HEAD /events takes no live-page place; a client slow to send its headers is cut off; connections beyond the limit are closed at accept", async () => {
    const s = await started(new FakeSource(), {
      headersTimeoutMs: 300,
      maxConnections: 3,
      sse: { maxClients: 1 },
    });
    const head = await get(s.port, "/events", {}, "HEAD");
    expect([head.status, head.headers["content-type"], head.body]).toEqual([
      200,
      "text/event-stream; charset=utf-8",
      "",
    ]);
    const clients = async () =>
      sample(parseExposition((await get(s.port, "/metrics")).body), "vigil_http_sse_clients");
    expect(await clients()).toBe(0);
    // Slowloris: half a request, then nothing. The server answers 408 and closes after headersTimeoutMs.
    const slow = netConnect(s.port, "127.0.0.1");
    slow.on("error", () => undefined);
    slow.write("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    let answer = "";
    slow.on("data", (d: Buffer) => (answer += d.toString()));
    await new Promise((r) => slow.once("close", r));
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    // Three idle connections fill the limit; a fourth is closed without an answer.
    const idle = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<Socket>((r) => {
            const c = netConnect(s.port, "127.0.0.1", () => r(c));
            c.on("error", () => undefined);
          }),
      ),
    );
    const extra = netConnect(s.port, "127.0.0.1");
    extra.on("error", () => undefined);
    let got = "";
    extra.on("data", (d: Buffer) => (got += d.toString()));
    extra.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await new Promise((r) => extra.once("close", r));
    expect(got).toBe("");
    // (The server may have closed them already: they sent nothing for headersTimeoutMs, 408.)
    await Promise.all(
      idle.map((c) => new Promise((r) => (c.closed ? r(null) : c.once("close", r).destroy()))),
    );
    // Counted: the connection closed at accept, the slow client's 408, and what the parser refuses.
    const raw = (bytes: string): Promise<string> =>
      new Promise((res) => {
        const c = netConnect(s.port, "127.0.0.1", () => c.write(bytes));
        let out = "";
        c.on("data", (d: Buffer) => (out += d.toString()));
        c.on("error", () => undefined);
        c.once("close", () => res(out));
      });
    expect(await raw("NOT HTTP AT ALL\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    expect(await raw(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX: ${"a".repeat(20_000)}\r\n\r\n`)).toMatch(
      /^HTTP\/1\.1 431 Request Header Fields Too Large/,
    );
    // The server may still count the idle connections as open for a moment: retried until one answers.
    let m = await get(s.port, "/metrics").catch(() => undefined);
    for (let i = 0; m === undefined && i < 100; i++) m = await get(s.port, "/metrics").catch(() => undefined);
    const f = parseExposition(m!.body);
    expect(sample(f, "vigil_http_connections_dropped_total")).toBeGreaterThanOrEqual(1);
    expect(sample(f, "vigil_http_client_errors_total", { code: "408" })).toBeGreaterThanOrEqual(1);
    expect(sample(f, "vigil_http_client_errors_total", { code: "400" })).toBe(1);
    expect(sample(f, "vigil_http_client_errors_total", { code: "431" })).toBe(1);
  });

  it("behavior: a request cut off after an answer on the same connection gets 408 after that answer (as Node's own handler), counted", async () => {
    const s = await started(new FakeSource(), { headersTimeoutMs: 300 });
    const got = await new Promise<string>((res) => {
      const c = netConnect(s.port, "127.0.0.1", () =>
        c.write(
          "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        ),
      );
      let out = "";
      c.on("data", (d: Buffer) => (out += d.toString()));
      c.on("error", () => undefined);
      c.once("close", () => res(out));
    });
    expect(got).toMatch(
      /^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 408 Request Timeout\r\nConnection: close\r\n\r\n$/,
    );
    const f = parseExposition((await get(s.port, "/metrics")).body);
    expect(sample(f, "vigil_http_client_errors_total", { code: "408" })).toBe(1);
  });

  it("behavior: /readyz is 503 with what is failing, 200 when ready", async () => {
    const src = new FakeSource();
    const s = await started(src);
    expect((await get(s.port, "/readyz")).status).toBe(200);
    src.stats = storeStats({ state: "corrupt", lastError: "watermark says 12, store has 9" });
    src.currentPhase = "stopping";
    const r = await get(s.port, "/readyz");
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toMatchObject({
      ready: false,
      phase: "stopping",
      failing: [
        { check: "phase", reason: "stopping", detail: "the gateway is stopping" },
        { check: "store", reason: "corrupt", detail: "watermark says 12, store has 9" },
      ],
    });
    const m = parseExposition((await get(s.port, "/metrics")).body);
    expect(sample(m, "vigil_ready")).toBe(0);
    expect(sample(m, "vigil_http_requests_total", { path: "/readyz", code: "503" })).toBe(1);
  });

  it("error: /metrics and /api/summary answer 500 when collecting fails; a retry that cannot be recorded is 500 with why (README)", async () => {
    const src = new FakeSource();
    const s = await started(src);
    src.store.stats = () => {
      throw new Error("the store is gone");
    };
    for (const path of ["/metrics", "/api/summary"]) {
      const r = await get(s.port, path);
      expect(r.status, path).toBe(500);
      expect(r.headers["content-type"], path).toBe("text/plain; charset=utf-8");
    }
    const updates = {
      status: () => ({ type: "updates", atMs: 1 }),
      check: async () => {},
      retry: async () => {
        throw new Error("the store refused the write");
      },
    };
    const u = await started(Object.assign(new FakeSource(), { updates }));
    const r = await get(u.port, "/api/updates/retry?release=7", {}, "POST");
    expect(r.status).toBe(500);
    expect(JSON.parse(r.body)).toEqual({
      error: "the retry could not be recorded: the store refused the write",
    });
  });

  it("error: a port in use is one sentence naming the setting and the fix", async () => {
    const a = await started();
    const b = new HttpServer({ source: new FakeSource(), port: a.port });
    const e = await b.start().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HttpEndpointError);
    expect((e as HttpEndpointError).shortMessage).toBe(
      `127.0.0.1:${a.port} is already in use; stop the other process or set http.port (--http-port; 0 picks a free port)`,
    );
    // A host that is no address of this machine (TEST-NET-1, RFC 5737) names http.host.
    const c = new HttpServer({
      source: new FakeSource(),
      port: 0,
      host: "192.0.2.1",
      allowRemote: true,
      authToken: "x".repeat(32),
    });
    const f = await c.start().catch((x: unknown) => x);
    expect((f as HttpEndpointError).shortMessage).toMatch(
      /^cannot listen on 192\.0\.2\.1:0 \(EADDRNOTAVAIL\): set http\.host to an address of this machine/,
    );
  });

  it("behavior: /events streams init then live deltas from the tapped event output; stop ends the stream", async () => {
    const s = await started(new FakeSource(), { sse: { deltaMs: 20, statsMs: 1000 } });
    const res = await fetch(`${s.url}/events`);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let text = "";
    const until = async (re: RegExp) => {
      while (!re.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${re}: ${text}`);
        text += dec.decode(value, { stream: true });
      }
    };
    await until(/event: init\n/);
    const out = s.tap({ open: async () => {}, emit: async () => {}, close: async () => {} });
    await out.emit(health(0x42, 0.9));
    await until(/event: delta\ndata: .*"d":"00000042"/);
    await s.stop();
    servers.length = 0;
    const end = await reader.read();
    expect(end.done).toBe(true);
  });
});
