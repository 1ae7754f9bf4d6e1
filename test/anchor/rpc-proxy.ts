/**
 * A loopback JSON-RPC proxy in front of anvil that behaves like a hosted provider on a bad day:
 * it refuses eth_getLogs ranges above a limit (as Alchemy, Infura and QuickNode do), and injects
 * faults on demand — a request that is never answered (timeout), HTTP 429, a body that is not
 * JSON, a truncated body, a dropped connection. It records every request it saw.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

/**
 * timeout: never answered; 429: HTTP 429 with Retry-After; html: an HTML error page with status
 * 200; truncated: half a JSON body; not-jsonrpc: JSON that is not a JSON-RPC response; drop: the
 * connection closed before forwarding; lost-answer: forwarded to the node, then the connection
 * closed (the node did the work, the client never hears of it); rpc-error: a JSON-RPC error
 * (`message`) without forwarding (the node refused it); rpc-error-after-forward: forwarded to the
 * node, then answered with that error (a load-balanced provider answering with another backend's
 * error: the node has the request after all).
 */
export type Fault =
  | "timeout"
  | "429"
  | "html"
  | "truncated"
  | "drop"
  | "not-jsonrpc"
  | "lost-answer"
  | "rpc-error"
  | "rpc-error-after-forward";

export interface SeenRequest {
  method: string;
  params: unknown[];
  /** For eth_getLogs: the block range asked for (inclusive), latest resolved. */
  range?: [number, number];
  /** What the proxy answered: "forwarded", "range-refused" or the fault injected. */
  outcome: string;
}

export interface RpcProxy {
  url: string;
  /** Where requests go (change it to point at another node). */
  target: string;
  /** Refuse eth_getLogs ranges larger than this (undefined = any). */
  maxLogRange: number | undefined;
  /**
   * Faults for the next requests (of `method`, or any), consumed in order; `message` is the
   * JSON-RPC error's text for rpc-error and rpc-error-after-forward (default "injected error").
   */
  inject(fault: Fault, opts?: { method?: string; count?: number; message?: string }): void;
  /**
   * Rewrites the node's `result` for a method before it is answered (a provider that lies): set
   * and cleared by the test; undefined forwards the answer unchanged.
   */
  rewrite: ((method: string, result: unknown) => unknown) | undefined;
  /** Every request so far. */
  seen: SeenRequest[];
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function startRpcProxy(target: string, o: { maxLogRange?: number } = {}): Promise<RpcProxy> {
  const faults: { fault: Fault; method: string | undefined; message: string }[] = [];
  const sockets = new Set<Socket>();
  const held: ServerResponse[] = [];
  const proxy: RpcProxy = {
    url: "",
    target,
    maxLogRange: o.maxLogRange,
    rewrite: undefined,
    seen: [],
    inject(fault, opts = {}) {
      for (let i = 0; i < (opts.count ?? 1); i++)
        faults.push({ fault, method: opts.method, message: opts.message ?? "injected error" });
    },
    close: async () => {
      for (const r of held) r.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
  const forward = async (text: string): Promise<{ status: number; text: string }> => {
    const r = await fetch(proxy.target, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: text,
    });
    return { status: r.status, text: await r.text() };
  };
  const blockOf = async (tag: unknown): Promise<number> => {
    if (typeof tag === "string" && tag.startsWith("0x")) return Number(BigInt(tag));
    const r = await forward(JSON.stringify({ jsonrpc: "2.0", id: 0, method: "eth_blockNumber", params: [] }));
    return Number(BigInt((JSON.parse(r.text) as { result: string }).result));
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const text = await body(req);
      let msg: { id?: unknown; method?: string; params?: unknown[] };
      try {
        msg = JSON.parse(text) as typeof msg;
      } catch {
        res.writeHead(400).end("bad request");
        return;
      }
      const method = msg.method ?? "?";
      const seen: SeenRequest = { method, params: msg.params ?? [], outcome: "forwarded" };
      proxy.seen.push(seen);
      if (method === "eth_getLogs") {
        const f = (msg.params?.[0] ?? {}) as { fromBlock?: unknown; toBlock?: unknown };
        seen.range = [await blockOf(f.fromBlock ?? "latest"), await blockOf(f.toBlock ?? "latest")];
      }
      const k = faults.findIndex((x) => x.method === undefined || x.method === method);
      if (k >= 0) {
        const { fault, message } = faults.splice(k, 1)[0]!;
        const rpcError = (): void => {
          res
            .writeHead(200, { "content-type": "application/json" })
            .end(JSON.stringify({ jsonrpc: "2.0", id: msg.id, error: { code: -32000, message } }));
        };
        seen.outcome = fault;
        switch (fault) {
          case "timeout":
            held.push(res); // never answered
            return;
          case "429":
            res
              .writeHead(429, { "content-type": "application/json", "retry-after": "1" })
              .end('{"error":"too many requests"}');
            return;
          case "html":
            res
              .writeHead(200, { "content-type": "text/html" })
              .end("<html><body>502 Bad Gateway</body></html>");
            return;
          case "truncated":
            res
              .writeHead(200, { "content-type": "application/json" })
              .end(`{"jsonrpc":"2.0","id":${JSON.stringify(msg.id)},"resu`);
            return;
          case "not-jsonrpc":
            res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
            return;
          case "drop":
            req.socket.destroy();
            return;
          case "lost-answer":
            await forward(text).catch(() => undefined);
            req.socket.destroy();
            return;
          case "rpc-error":
            rpcError();
            return;
          case "rpc-error-after-forward":
            await forward(text).catch(() => undefined);
            rpcError();
            return;
        }
      }
      if (
        seen.range &&
        proxy.maxLogRange !== undefined &&
        seen.range[1] - seen.range[0] + 1 > proxy.maxLogRange
      ) {
        seen.outcome = "range-refused";
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({
            jsonrpc: "2.0",
            id: msg.id,
            error: { code: -32600, message: `eth_getLogs is limited to a ${proxy.maxLogRange} block range` },
          }),
        );
        return;
      }
      try {
        const r = await forward(text);
        let answer = r.text;
        const rewrite = proxy.rewrite;
        if (rewrite) {
          const j = JSON.parse(answer) as { result?: unknown };
          if (j.result !== undefined && j.result !== null) {
            j.result = rewrite(method, j.result);
            seen.outcome = "rewritten";
          }
          answer = JSON.stringify(j);
        }
        res.writeHead(r.status, { "content-type": "application/json" }).end(answer);
      } catch {
        seen.outcome = "target-down";
        req.socket.destroy();
      }
    })();
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
  const a = server.address();
  proxy.url = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}/`;
  return proxy;
}
