/**
 * An independent operator / monitoring client of the gateway's HTTP endpoint, written from
 * gateway/src/http/README.md ALONE (plus the root README for `vigil start`), as a check that the
 * document is exact: no gateway code is imported. Each rule the README states is a check; every
 * `check*` function returns the violations as sentences (empty = the endpoint matches the README).
 */
import { request, type IncomingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";
import { readFileSync, statSync } from "node:fs";

export interface Target {
  /** `http://127.0.0.1:PORT`, as `vigil start` logs it (`page` in `gateway started`). */
  base: string;
  /** The access token (`http.authTokenFile`); sent as Bearer on every request unless overridden. */
  token?: string;
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Ask {
  method?: string;
  headers?: Record<string, string>;
  /** false: send no Authorization header even with a token. */
  auth?: boolean;
  /** Connect from this local address (a peer that is not loopback). */
  localAddress?: string;
}

/** One request on its own connection (no keep-alive: the connection limit test counts them). */
export function ask(t: Target, path: string, o: Ask = {}): Promise<Answer> {
  const u = new URL(t.base);
  const headers: Record<string, string> = { connection: "close", ...o.headers };
  if (t.token && o.auth !== false && !Object.keys(headers).some((h) => h.toLowerCase() === "authorization"))
    headers.authorization = `Bearer ${t.token}`;
  return new Promise((res, rej) => {
    const r = request(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: o.method ?? "GET",
        headers,
        agent: false,
        ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      },
      (m) => {
        let body = "";
        m.setEncoding("utf8");
        m.on("data", (d: string) => (body += d));
        m.on("end", () => res({ status: m.statusCode ?? 0, headers: m.headers, body }));
        m.on("error", rej);
      },
    );
    r.on("error", rej);
    r.end();
  });
}

function json(a: Answer): unknown {
  try {
    return JSON.parse(a.body) as unknown;
  } catch {
    return undefined;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// The paths table, the method rules and the page headers.

/** The README's table: `/` with its files, and the JSON / text routes, answered to GET and HEAD. */
export const PAGE_FILES: Record<string, RegExp> = {
  "/": /^text\/html\b/,
  "/app.js": /^(text|application)\/javascript\b/,
  "/app.css": /^text\/css\b/,
  "/favicon.svg": /^image\/svg\+xml\b/,
  "/vendor/uPlot.iife.min.js": /^(text|application)\/javascript\b/,
  "/vendor/uPlot.min.css": /^text\/css\b/,
};
export const GET_ROUTES = [
  ...Object.keys(PAGE_FILES),
  "/events",
  "/metrics",
  "/healthz",
  "/readyz",
  "/api/summary",
  "/api/alerts",
  "/api/updates",
];
export const POST_ROUTES = ["/api/updates/check", "/api/updates/retry?release=1"];
export const METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8";
export const WWW_AUTHENTICATE = 'Basic realm="vigil", charset="UTF-8"';

function allowSays(a: Answer, methods: string[]): boolean {
  const allow = String(a.headers.allow ?? "")
    .split(",")
    .map((m) => m.trim().toUpperCase())
    .filter(Boolean)
    .sort();
  return JSON.stringify(allow) === JSON.stringify([...methods].sort());
}

/** "Page responses carry a strict Content-Security-Policy …, X-Frame-Options: DENY, nosniff, no-referrer." */
export function pageHeaderProblems(path: string, h: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  const csp = String(h["content-security-policy"] ?? "");
  const dirs = new Map(
    csp
      .split(";")
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map((d) => [d[0]!.toLowerCase(), d.slice(1)]),
  );
  if (dirs.get("default-src")?.join(" ") !== "'none'")
    out.push(`${path}: CSP without default-src 'none': ${csp}`);
  for (const d of ["script-src", "style-src"]) {
    const v = dirs.get(d);
    if (!v || v.length === 0 || v.some((s) => s !== "'self'"))
      out.push(`${path}: CSP ${d} is not 'self' only: ${csp}`);
  }
  if (String(h["x-frame-options"]).toUpperCase() !== "DENY") out.push(`${path}: X-Frame-Options is not DENY`);
  if (h["x-content-type-options"] !== "nosniff") out.push(`${path}: X-Content-Type-Options is not nosniff`);
  if (h["referrer-policy"] !== "no-referrer") out.push(`${path}: Referrer-Policy is not no-referrer`);
  return out;
}

/** Every path of the table with GET and HEAD, the method rules, 404, 421 and the page headers. */
export async function checkRoutes(t: Target): Promise<string[]> {
  const out: string[] = [];
  for (const [path, type] of Object.entries(PAGE_FILES)) {
    const a = await ask(t, path);
    if (a.status !== 200) out.push(`GET ${path}: ${a.status}, README says 200`);
    if (!type.test(String(a.headers["content-type"])))
      out.push(`GET ${path}: content-type ${a.headers["content-type"]}`);
    if (a.body.length === 0) out.push(`GET ${path}: empty body`);
    out.push(...pageHeaderProblems(path, a.headers));
  }
  const page = await ask(t, "/");
  for (const f of Object.keys(PAGE_FILES).filter((p) => p !== "/"))
    if (!page.body.includes(f)) out.push(`GET /: the page does not load ${f}`);

  // HEAD: the same status and headers as GET, no body (RFC 9110 9.3.2).
  for (const path of GET_ROUTES) {
    const h = await ask(t, path, { method: "HEAD" });
    if (h.body !== "") out.push(`HEAD ${path}: has a body`);
    if (path === "/readyz" ? ![200, 503].includes(h.status) : h.status !== 200)
      out.push(`HEAD ${path}: ${h.status}`);
    if (path === "/events" && !String(h.headers["content-type"]).startsWith("text/event-stream"))
      out.push(`HEAD /events: content-type ${h.headers["content-type"]}, README says text/event-stream`);
    if (path === "/metrics" && h.headers["content-type"] !== METRICS_TYPE)
      out.push(`HEAD /metrics: content-type ${h.headers["content-type"]}`);
  }

  // Other methods: 405 with Allow, on known and unknown paths alike.
  for (const path of GET_ROUTES)
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
      const a = await ask(t, path, { method });
      if (a.status !== 405) out.push(`${method} ${path}: ${a.status}, README says 405`);
      else if (!allowSays(a, ["GET", "HEAD"]))
        out.push(`${method} ${path}: Allow "${a.headers.allow}", expected GET, HEAD`);
    }
  for (const path of ["/api/updates/check", "/api/updates/retry"])
    for (const method of ["GET", "HEAD", "PUT", "DELETE"]) {
      const a = await ask(t, path, { method });
      if (a.status !== 405) out.push(`${method} ${path}: ${a.status}, README says 405 (POST only)`);
      else if (!allowSays(a, ["POST"]))
        out.push(`${method} ${path}: Allow "${a.headers.allow}", expected POST`);
    }
  for (const path of ["/nope", "/api", "/metrics/x", "/api/summary/", "/vendor/uPlot.js", "/../README.md"]) {
    for (const method of ["GET", "HEAD"]) {
      const a = await ask(t, path, { method });
      if (a.status !== 404) out.push(`${method} ${path}: ${a.status}, README says 404`);
    }
    for (const method of ["POST", "PUT", "DELETE"]) {
      const a = await ask(t, path, { method });
      if (a.status !== 405) out.push(`${method} ${path}: ${a.status}, README says 405 first`);
      else if (!a.headers.allow) out.push(`${method} ${path}: 405 without an Allow header`);
    }
  }
  // A query string does not change the route.
  const q = await ask(t, "/healthz?x=1");
  if (q.status !== 200) out.push(`GET /healthz?x=1: ${q.status}`);

  // Loopback names in Host are served; any other name is 421 while loopback-only.
  const port = new URL(t.base).port;
  for (const host of [
    `127.0.0.1:${port}`,
    `localhost:${port}`,
    `[::1]:${port}`,
    "127.0.0.1",
    "localhost",
    `127.1.2.3:${port}`,
  ]) {
    const a = await ask(t, "/healthz", { headers: { host } });
    if (a.status !== 200) out.push(`Host ${host}: ${a.status}, a loopback name is served`);
  }
  return out;
}

/** While loopback-only: a non-loopback Host is 421 (DNS rebinding), on every path. */
export async function checkHostRule(t: Target, loopbackOnly: boolean): Promise<string[]> {
  const out: string[] = [];
  const port = new URL(t.base).port;
  for (const host of [
    `evil.example:${port}`,
    "evil.example",
    `192.0.2.7:${port}`,
    `localhost.evil.example:${port}`,
  ])
    for (const path of ["/", "/metrics", "/api/summary", "/events", "/healthz"]) {
      // HEAD for /events: a stream served to GET would not end.
      const a = await ask(t, path, { headers: { host }, method: path === "/events" ? "HEAD" : "GET" });
      const want = loopbackOnly ? 421 : 200;
      if (a.status !== want) out.push(`GET ${path} Host ${host}: ${a.status}, README says ${want}`);
    }
  // "judged in this order: its Host (421), …, the method (405), the path (404)".
  if (loopbackOnly)
    for (const [method, path] of [
      ["POST", "/nope"],
      ["PUT", "/metrics"],
      ["POST", "/api/updates/check"],
    ]) {
      const a = await ask(t, path!, { method: method!, headers: { host: `evil.example:${port}` } });
      if (a.status !== 421)
        out.push(`${method} ${path} Host evil.example: ${a.status}, README says 421 first`);
    }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON routes.

const READY_FAILING: Record<string, string[]> = {
  phase: ["created", "starting", "stopping", "stopped"],
  store: ["low-space", "unavailable", "corrupt", "closed"],
  sources: ["none-configured"],
};
const READY_WARNINGS: Record<string, string[] | null> = {
  anchor: null, // `reason` is the anchor service's error code, or stalled-fee-cap / stalled-no-blocks
  models: ["none-loaded"],
  alerts: ["publish-errors"],
  clock: ["unverified"],
  sources: ["disconnected"],
};
const STORE_STATES = ["ok", "low-space", "unavailable", "corrupt", "closed"];

export function readyProblems(a: Answer): string[] {
  const out: string[] = [];
  const b = json(a);
  if (!String(a.headers["content-type"]).startsWith("application/json"))
    out.push(`/readyz: content-type ${a.headers["content-type"]}`);
  if (!isObj(b)) return [...out, `/readyz: not a JSON object: ${a.body}`];
  for (const k of ["ready", "phase", "failing", "warnings", "store", "sources"])
    if (!(k in b)) out.push(`/readyz: no ${k}`);
  if (typeof b.ready !== "boolean") out.push(`/readyz: ready is not a boolean`);
  if (a.status !== (b.ready === true ? 200 : 503))
    out.push(`/readyz: status ${a.status} with ready ${String(b.ready)}`);
  if (!["created", "starting", "running", "stopping", "stopped"].includes(String(b.phase)))
    out.push(`/readyz: phase ${String(b.phase)}`);
  const failing = Array.isArray(b.failing) ? b.failing : [];
  if (b.ready === true && failing.length > 0) out.push(`/readyz: ready with failing checks`);
  if (b.ready === false && failing.length === 0) out.push(`/readyz: not ready without a failing check`);
  for (const f of failing) {
    if (!isObj(f) || typeof f.detail !== "string") out.push(`/readyz: failing entry ${JSON.stringify(f)}`);
    else if (!READY_FAILING[String(f.check)]?.includes(String(f.reason)))
      out.push(`/readyz: failing ${String(f.check)}/${String(f.reason)} not in the README`);
  }
  for (const w of Array.isArray(b.warnings) ? b.warnings : [b.warnings]) {
    if (!isObj(w) || !(String(w.check) in READY_WARNINGS) || typeof w.reason !== "string") {
      out.push(`/readyz: warning ${JSON.stringify(w)}`);
      continue;
    }
    const reasons = READY_WARNINGS[String(w.check)];
    if (reasons && !reasons.includes(w.reason))
      out.push(`/readyz: warning ${String(w.check)}/${w.reason} not in the README`);
  }
  const store = b.store;
  if (!isObj(store) || !STORE_STATES.includes(String(store.state)) || !("lastError" in store))
    out.push(`/readyz: store ${JSON.stringify(store)}`);
  if (!Array.isArray(b.sources)) out.push(`/readyz: sources is not an array`);
  else
    for (const s of b.sources as unknown[])
      if (
        !isObj(s) ||
        typeof s.name !== "string" ||
        !isObj(s.stats) ||
        !Object.values(s.stats).every((v) => typeof v === "number")
      )
        out.push(`/readyz: source ${JSON.stringify(s)}`);
  return out;
}

export function alertsProblems(body: unknown, where = "/api/alerts"): string[] {
  const out: string[] = [];
  if (!isObj(body) || !Array.isArray(body.active) || !Array.isArray(body.recent))
    return [`${where}: not {active, recent}: ${JSON.stringify(body)}`];
  if (body.recent.length > 50)
    out.push(`${where}: ${body.recent.length} recent transitions, README says the last 50`);
  for (const a of [...(body.active as unknown[]), ...(body.recent as unknown[])]) {
    if (!isObj(a)) {
      out.push(`${where}: entry ${JSON.stringify(a)}`);
      continue;
    }
    out.push(...shapeProblems(a, ALERT, `${where} alert`));
    if (!["raised", "cleared"].includes(String(a.state))) out.push(`${where}: state ${String(a.state)}`);
    if ("leaf" in a && !/^0x[0-9a-f]{64}$/.test(String(a.leaf)))
      out.push(`${where}: leaf ${String(a.leaf)} is not a hash`);
  }
  return out;
}

/** README "`/api/summary`": field names, every field present, `null` only where stated. */
type Shape =
  | "any"
  | "number"
  | "string"
  | "boolean"
  | "string|null"
  | "number|null"
  | [Shape]
  | { nullable: Shape }
  | { [k: string]: Shape };
const num = "number" as const;
const str = "string" as const;
const SUMMARY: Record<string, Shape> = {
  t: num,
  gateway: { id: str, name: str, site: str },
  totals: Object.fromEntries(
    "accepted duplicates rejected deviceErrors windowsRun windowsSkipped alertsRaised alertsCleared alertsActive batchesSealed batchesAnchored sealerBacklog"
      .split(" ")
      .map((k) => [k, num]),
  ),
  rates: { accepted: num, rejected: num, duplicates: num, windows: num },
  rejections: [{ reason: str, total: num, rate: num }],
  sealing: "boolean",
  devices: [
    {
      d: str,
      profile: "string|null",
      fw: "string|null",
      rate: num,
      accepted: num,
      rejected: num,
      gaps: num,
      errors: num,
      lastMs: num,
      quality: { nullable: { faults: num, withheld: num, mode: str } },
    },
  ],
  models: [
    {
      name: str,
      version: str,
      sha256: str,
      role: str,
      profiles: [str],
      outputs: [{ name: str, unit: str, "min?": num, "max?": num }],
      windowsRun: num,
      usPerWindow: num,
      shadow: { nullable: { compared: num, meanAbsDiff: num, maxAbsDiff: num } },
    },
  ],
  batches: [
    { seq: num, leaves: num, sealedMs: num, tx: "string|null", block: "number|null", anchored: "boolean" },
  ],
  anchor: { enabled: "boolean", backlog: num, failures: num, lastError: "string|null" },
  store: { state: str, liveBytes: num, pending: num },
  inference: { nullable: { frameToResultP50Ms: num, frameToResultP99Ms: num, runP99Ms: num } },
  registry: { nullable: { cacheAgeSeconds: num, "block?": num } },
  access: { nullable: { standing: "string|null", sealing: "boolean", registry: str } },
};
/** README: `init` adds these to the `stats` fields. */
export const INIT_EXTRA: Record<string, Shape> = {
  history: { t: [num], accepted: [num], rejected: [num], duplicates: [num], windows: [num] },
  health: [{ d: str, profile: str, model: str, t: num, outputs: "any", a: num, p: [num] }],
  alerts: { active: [{}], recent: [{}] },
  sparkPoints: num,
};
/** README: an alert in /api/alerts and /events. */
const ALERT: Record<string, Shape> = Object.fromEntries([
  ...["alertId", "state", "device", "profile", "severity", "ruleId", "output", "op", "model", "leaf"].map(
    (k) => [k, str],
  ),
  ...["threshold", "value", "sinceMs", "atMs"].map((k) => [k, num]),
]);

/** Violations of `shape` by `v`, named by `where`. An empty object shape accepts any object. */
export function shapeProblems(v: unknown, shape: Shape, where: string): string[] {
  if (shape === "any") return [];
  if (typeof shape === "string") {
    const ok = shape
      .split("|")
      .some((t) => (t === "null" ? v === null : typeof v === t && (t !== "number" || Number.isFinite(v))));
    return ok ? [] : [`${where}: ${String(JSON.stringify(v)).slice(0, 80)} is not ${shape}`];
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(v)) return [`${where}: not a list`];
    return v.flatMap((x, i) => shapeProblems(x, shape[0], `${where}[${i}]`));
  }
  if ("nullable" in shape && Object.keys(shape).length === 1)
    return v === null ? [] : shapeProblems(v, shape.nullable as Shape, where);
  if (!isObj(v)) return [`${where}: not an object`];
  const fields = shape as Record<string, Shape>;
  if (Object.keys(fields).length === 0) return [];
  const out: string[] = [];
  for (const [k0, sh] of Object.entries(fields)) {
    const k = k0.replace(/\?$/, "");
    if (!(k in v)) {
      if (!k0.endsWith("?")) out.push(`${where}: no ${k}`);
      continue;
    }
    out.push(...shapeProblems(v[k], sh, `${where}.${k}`));
  }
  for (const k of Object.keys(v))
    if (!(k in fields) && !(`${k}?` in fields)) out.push(`${where}: ${k} is not in the README`);
  return out;
}

/** `/api/summary` (and `stats`, and `init` with `extra`) against the README. */
export function summaryProblems(v: unknown, where: string, extra: Record<string, Shape> = {}): string[] {
  if (!isObj(v)) return [`${where}: not an object`];
  const { readiness, ...rest } = v;
  const out = shapeProblems(rest, { ...SUMMARY, ...extra }, where);
  const r = {
    status: isObj(readiness) && readiness.ready === true ? 200 : 503,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(readiness),
  };
  out.push(...readyProblems(r).map((p) => p.replace("/readyz", `${where}.readiness`)));
  for (const d of Array.isArray(v.devices) ? (v.devices as unknown[]) : [])
    if (isObj(d) && !/^[0-9a-f]{8}$/.test(String(d.d)))
      out.push(`${where}: device ${String(d.d)} is not 8 hex digits`);
  if (Array.isArray(v.batches) && v.batches.length > 10)
    out.push(`${where}: ${v.batches.length} batches, README says the last ten`);
  if (isObj(v.access)) {
    const { standing, registry } = v.access;
    if (
      standing !== null &&
      !["active", "unregistered", "suspended", "revoked", "key_mismatch"].includes(String(standing))
    )
      out.push(`${where}: access.standing ${String(standing)} is not one the README lists`);
    if (!["fresh", "stale", "unsynced"].includes(String(registry)))
      out.push(`${where}: access.registry ${String(registry)} is not one the README lists`);
  }
  return out;
}

/** /healthz, /readyz, /api/summary, /api/alerts, /api/updates. */
export async function checkJson(t: Target, o: { updatesEnabled: boolean }): Promise<string[]> {
  const out: string[] = [];
  const h = await ask(t, "/healthz");
  if (h.status !== 200 || JSON.stringify(json(h)) !== '{"status":"alive"}')
    out.push(`/healthz: ${h.status} ${h.body}`);
  if (!String(h.headers["content-type"]).startsWith("application/json"))
    out.push(`/healthz: content-type ${h.headers["content-type"]}`);
  out.push(...readyProblems(await ask(t, "/readyz")));
  const s = await ask(t, "/api/summary");
  if (s.status !== 200 || !isObj(json(s))) out.push(`/api/summary: ${s.status} ${s.body.slice(0, 200)}`);
  out.push(...summaryProblems(json(s), "/api/summary"));
  if (!String(s.headers["content-type"]).startsWith("application/json"))
    out.push(`/api/summary: content-type ${s.headers["content-type"]}`);
  const al = await ask(t, "/api/alerts");
  if (al.status !== 200) out.push(`/api/alerts: ${al.status}`);
  out.push(...alertsProblems(json(al)));
  const u = await ask(t, "/api/updates");
  const ub = json(u);
  if (u.status !== 200 || !isObj(ub) || ub.enabled !== o.updatesEnabled)
    out.push(`/api/updates: ${u.status} ${u.body}`);
  else if (!o.updatesEnabled && ub.status !== null)
    out.push(`/api/updates: status is not null with updates off`);
  else if (Object.keys(ub).sort().join() !== "enabled,status")
    out.push(`/api/updates: keys ${Object.keys(ub).join()}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// /metrics: the Prometheus text format 0.0.4, parsed here.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface Family {
  name: string;
  help?: string;
  type?: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(v: string): number {
  if (v === "+Inf") return Infinity;
  if (v === "-Inf") return -Infinity;
  if (v === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) throw new Error(`bad value ${v}`);
  return Number(v);
}

/** The exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats). */
export function parseExposition(text: string): { families: Map<string, Family>; problems: string[] } {
  const families = new Map<string, Family>();
  const problems: string[] = [];
  if (!text.endsWith("\n")) problems.push("the exposition does not end with a line feed");
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, samples: [] }));
    return f;
  };
  const ownerOf = (sample: string): Family | undefined => {
    if (families.has(sample)) return families.get(sample);
    for (const suf of ["_bucket", "_sum", "_count"])
      if (sample.endsWith(suf)) {
        const f = families.get(sample.slice(0, -suf.length));
        if (f && (f.type === "histogram" || f.type === "summary")) return f;
      }
    return undefined;
  };
  const seen = new Set<string>();
  let last = "";
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!NAME.test(name)) problems.push(`bad metric name ${name}`);
      const f = family(name);
      if (f.samples.length > 0) problems.push(`${kind} of ${name} after its samples`);
      if (kind === "HELP") {
        if (f.help !== undefined) problems.push(`two HELP lines for ${name}`);
        f.help = rest;
        if (/\\(?![\\n])/.test(rest)) problems.push(`HELP of ${name}: bad escape`);
      } else {
        if (f.type !== undefined) problems.push(`two TYPE lines for ${name}`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest))
          problems.push(`TYPE ${rest} of ${name}`);
        f.type = rest;
      }
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) {
      problems.push(`unparsable line: ${line}`);
      continue;
    }
    const [, name, , body, value] = m as unknown as [
      string,
      string,
      string | undefined,
      string | undefined,
      string,
    ];
    const labels: Record<string, string> = {};
    let rest = body ?? "";
    while (rest.length > 0) {
      const l = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
      if (!l) {
        problems.push(`bad labels in: ${line}`);
        break;
      }
      const [all, k, v] = l as unknown as [string, string, string];
      if (!LABEL.test(k) || k.startsWith("__")) problems.push(`bad label name ${k}`);
      if (k in labels) problems.push(`label ${k} twice in: ${line}`);
      labels[k] = v.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
      rest = rest.slice(all.length);
    }
    let v = NaN;
    try {
      v = parseValue(value);
    } catch {
      problems.push(`bad value in: ${line}`);
    }
    const f = ownerOf(name);
    if (!f) {
      problems.push(`sample ${name} without a TYPE line before it`);
      continue;
    }
    if (last !== f.name && f.samples.length > 0) problems.push(`samples of ${f.name} are not grouped`);
    last = f.name;
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) problems.push(`duplicate series ${key}`);
    seen.add(key);
    f.samples.push({ name, labels, value: v });
  }
  for (const f of families.values()) if (f.type === undefined) problems.push(`${f.name}: no TYPE line`);
  return { families, problems };
}

export interface DocMetric {
  name: string;
  type: string;
  labels: string[];
  /** The meaning says it may be absent ("absent until", "absent when", "absent without"). */
  mayBeAbsent: boolean;
}

/** The README's metrics table, read from the document itself. */
export function documentedMetrics(readme: string): DocMetric[] {
  const out: DocMetric[] = [];
  for (const line of readme.split("\n")) {
    const m = /^\| `(vigil_[a-z0-9_]+)` \| (counter|gauge|histogram) \| ([^|]*) \| (.*)\|$/.exec(line);
    if (!m) continue;
    const [, name, type, labels, meaning] = m as unknown as [string, string, string, string, string];
    out.push({
      name,
      type,
      labels: [...labels.matchAll(/`([a-z0-9_]+)`/g)].map((l) => l[1]!),
      mayBeAbsent: /absent/.test(meaning),
    });
  }
  return out;
}

export const PROCESS_METRICS = [
  "process_cpu_seconds_total",
  "process_resident_memory_bytes",
  "nodejs_eventloop_lag_seconds",
  "nodejs_heap_size_used_bytes",
  "nodejs_gc_duration_seconds",
];
export const ABSENT_METRICS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];
/** "every power of two from 16 µs to 16.8 s (`le` in seconds)": 2^4 … 2^24 µs, then +Inf. */
export const BUCKETS = [...Array.from({ length: 21 }, (_, i) => 2 ** (i + 4) / 1e6), Infinity];

/** Prometheus family name: counters are exposed as `<name>` with `_total` in the samples. */
function familyOf(fams: Map<string, Family>, name: string): Family | undefined {
  return fams.get(name);
}

export function metricsProblems(
  text: string,
  doc: DocMetric[],
  o: { ready?: boolean | undefined } = {},
): string[] {
  const { families, problems } = parseExposition(text);
  const out = [...problems];
  const documented = new Set(doc.map((d) => d.name));
  for (const d of doc) {
    const f = familyOf(families, d.name);
    if (!f) {
      out.push(`${d.name}: no HELP/TYPE (README lists it)`);
      continue;
    }
    if (f.type !== d.type) out.push(`${d.name}: TYPE ${f.type}, README says ${d.type}`);
    if (!f.help) out.push(`${d.name}: no HELP`);
    if (f.samples.length === 0 && d.labels.length === 0 && !d.mayBeAbsent) out.push(`${d.name}: no sample`);
    for (const s of f.samples) {
      const names = Object.keys(s.labels).filter(
        (l) => !(d.type === "histogram" && l === "le" && s.name.endsWith("_bucket")),
      );
      if (names.sort().join() !== [...d.labels].sort().join())
        out.push(`${s.name}: labels {${names.join()}}, README says {${d.labels.join()}}`);
      if ("device" in s.labels && !/^[0-9a-f]{8}$/.test(s.labels.device!))
        out.push(`${s.name}: device ${s.labels.device} is not 8 hex digits`);
      if (d.type === "counter" && !(s.value >= 0)) out.push(`${s.name}: counter value ${s.value}`);
    }
    if (d.type === "counter" && !f.samples.every((s) => s.name === d.name))
      out.push(`${d.name}: samples not named ${d.name}`);
    if (d.type === "histogram") out.push(...histogramProblems(f));
  }
  for (const f of families.values())
    if (f.name.startsWith("vigil_") && !documented.has(f.name) && !documented.has(`${f.name}_total`))
      out.push(`${f.name}: exposed but not in the README's table`);
  for (const p of PROCESS_METRICS)
    if (!families.has(p) && !familyOf(families, p)) out.push(`${p}: missing (README: included)`);
  for (const p of ABSENT_METRICS) if (familyOf(families, p)) out.push(`${p}: exposed (README: without it)`);
  const one = (name: string) => familyOf(families, name)?.samples ?? [];
  for (const n of ["vigil_build_info", "vigil_gateway_info"])
    if (one(n).length !== 1 || one(n)[0]!.value !== 1) out.push(`${n}: not one sample of value 1`);
  const ready = one("vigil_ready");
  if (o.ready !== undefined && ready[0]?.value !== (o.ready ? 1 : 0))
    out.push(`vigil_ready ${ready[0]?.value} but /readyz ready ${o.ready}`);
  const st = one("vigil_store_state");
  if (
    st
      .map((s) => s.labels.state)
      .sort()
      .join() !== [...STORE_STATES].sort().join() ||
    st.filter((s) => s.value === 1).length !== 1 ||
    st.some((s) => s.value !== 0 && s.value !== 1)
  )
    out.push(`vigil_store_state: not one 1 among ${STORE_STATES.join()}: ${JSON.stringify(st)}`);
  const labelIn = (name: string, label: string, values: string[]) => {
    for (const s of one(name))
      if (!values.includes(s.labels[label]!))
        out.push(`${name}: ${label}="${s.labels[label]}" not in the README (${values.join(", ")})`);
  };
  labelIn("vigil_ingest_frames_received_total", "source", ["serial", "mqtt"]);
  labelIn("vigil_ingest_source_frames_rejected_total", "source", ["serial", "mqtt"]);
  labelIn("vigil_ingest_frames_shed_total", "reason", ["BUSY", "mqttHeld"]);
  labelIn("vigil_ingest_replies_sent_total", "kind", ["ack", "nack"]);
  labelIn("vigil_inference_frames_not_run_total", "reason", ["no_model", "schema_mismatch"]);
  labelIn("vigil_inference_windows_skipped_total", "reason", ["superseded", "run_failed"]);
  labelIn("vigil_inference_windows_withheld_total", "reason", [
    "window-imputed",
    "row-imputed",
    "features-lost",
  ]);
  labelIn("vigil_inference_values_flagged_total", "reason", ["missing", "out-of-range", "stuck", "spike"]);
  labelIn("vigil_inference_errors_total", "kind", ["run", "callback", "warmup", "history_damaged"]);
  labelIn("vigil_model_info", "role", ["live", "shadow", "retired"]);
  labelIn("vigil_model_shadow_output_difference", "stat", ["mean", "max"]);
  labelIn("vigil_alerts_total", "state", ["raised", "cleared"]);
  labelIn("vigil_events_published_total", "kind", ["alert", "health", "device-status"]);
  labelIn("vigil_sensor_faults_total", "state", ["raised", "cleared"]);
  labelIn("vigil_anchor_stalled", "reason", ["fee-cap", "no-blocks"]);
  labelIn("vigil_anchor_fee_wei_total", "layer", ["l2", "l1"]);
  labelIn("vigil_http_client_errors_total", "code", ["400", "408", "413", "431"]);
  for (const s of one("vigil_device_error_frames_total"))
    if (!/^(sensor_fault|buffer_overflow|protocol_error|other|code_\d+)$/.test(s.labels.code!))
      out.push(`vigil_device_error_frames_total: code ${s.labels.code}`);
  for (const s of one("vigil_source_events_total"))
    if (!/^(serial:.+|mqtt:embedded|mqtt:.+)$/.test(s.labels.source!))
      out.push(`vigil_source_events_total: source ${s.labels.source}`);
  // The events the README lists per kind of source.
  const EMBEDDED_EVENTS = (
    "connects disconnects retries clientErrors connectionErrors held listenerErrors brokerErrors authRefused " +
    "publishRefused subscribeRefused packetTooLarge tooManyConnections connectRateLimited acceptShed slowClient " +
    "revokedDisconnects revokedSessionsDropped unsupportedProtocol clientIdTaken storedSessionsFull authErrors storedDropped storedInboundRefused"
  ).split(" ");
  for (const s of one("vigil_source_events_total")) {
    const e = s.labels.event!;
    const ok =
      s.labels.source === "mqtt:embedded"
        ? EMBEDDED_EVENTS.includes(e) || /^(publishRefused|subscribeRefused|forwardRefused)_.+$/.test(e)
        : s.labels.source!.startsWith("serial:")
          ? ["opens", "reopens", "ioErrors", "handlerErrors"].includes(e)
          : ["connects", "offline", "retries", "handlerErrors"].includes(e);
    if (!ok) out.push(`vigil_source_events_total: event "${e}" of ${s.labels.source} is not in the README`);
  }
  const paths = new Set([...GET_ROUTES, "/api/updates/check", "/api/updates/retry", "other"]);
  for (const s of one("vigil_http_requests_total")) {
    if (!paths.has(s.labels.path!))
      out.push(`vigil_http_requests_total: path "${s.labels.path}" is not a route or other`);
    if (!/^[1-5]\d\d$/.test(s.labels.code!)) out.push(`vigil_http_requests_total: code "${s.labels.code}"`);
  }
  for (const s of one("vigil_source_connected"))
    if (s.labels.source === "mqtt:embedded")
      out.push(`vigil_source_connected: present for the embedded broker (README: absent)`);
  for (const s of one("vigil_model_info"))
    if (!/^[0-9a-f]{64}$/.test(s.labels.sha256!.replace(/^0x/, "")))
      out.push(`vigil_model_info: sha256 ${s.labels.sha256}`);
  return out;
}

function histogramProblems(f: Family): string[] {
  const out: string[] = [];
  const series = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const { le: _le, ...rest } = s.labels;
    const k = JSON.stringify(rest);
    series.set(k, [...(series.get(k) ?? []), s]);
  }
  if (series.size === 0) out.push(`${f.name}: no samples`);
  for (const [k, ss] of series) {
    const buckets = ss.filter((s) => s.name === `${f.name}_bucket`);
    const les = buckets.map((b) => parseValue(b.labels.le ?? "x"));
    if (
      les.length !== BUCKETS.length ||
      les.some((v, i) => Math.abs(v - BUCKETS[i]!) > 1e-12 * Math.max(1, BUCKETS[i]!))
    )
      out.push(
        `${f.name}${k}: le ${buckets.map((b) => b.labels.le).join(",")}, README says powers of two 16 µs … 16.8 s`,
      );
    for (let i = 1; i < buckets.length; i++)
      if (buckets[i]!.value < buckets[i - 1]!.value) out.push(`${f.name}${k}: buckets not cumulative`);
    const count = ss.find((s) => s.name === `${f.name}_count`);
    const sum = ss.find((s) => s.name === `${f.name}_sum`);
    if (!count || !sum) out.push(`${f.name}${k}: no _count or _sum`);
    else if (buckets.at(-1)?.value !== count.value)
      out.push(`${f.name}${k}: +Inf bucket ${buckets.at(-1)?.value} ≠ _count ${count.value}`);
  }
  return out;
}

export async function checkMetrics(
  t: Target,
  readmePath: string,
): Promise<{ problems: string[]; families: Map<string, Family> }> {
  const ready = json(await ask(t, "/readyz"));
  const a = await ask(t, "/metrics");
  const out: string[] = [];
  if (a.status !== 200) out.push(`/metrics: ${a.status}`);
  if (a.headers["content-type"] !== METRICS_TYPE)
    out.push(`/metrics: content-type "${a.headers["content-type"]}", README says "${METRICS_TYPE}"`);
  const doc = documentedMetrics(readFileSync(readmePath, "utf8"));
  if (doc.length < 60) out.push(`only ${doc.length} metrics read from the README's table`);
  out.push(...metricsProblems(a.body, doc, { ready: isObj(ready) ? ready.ready === true : undefined }));
  return { problems: out, families: parseExposition(a.body).families };
}

/** The value of one series, 0 when absent. */
export function valueOf(
  fams: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const f = familyOf(fams, name);
  return (
    f?.samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((a, s) => a + s.value, 0) ?? 0
  );
}

// ---------------------------------------------------------------------------------------------
// /events: server-sent events (WHATWG HTML 9.2), each message one `event:` and one `data:` line.

export interface SseMessage {
  at: number;
  event: string;
  data: unknown;
}

export interface SseStream {
  status: number;
  headers: IncomingHttpHeaders;
  messages: SseMessage[];
  problems: string[];
  /** The `retry:` field the stream sent, ms. */
  retry(): number | undefined;
  /** Stop reading: the endpoint's writes stop draining once the socket buffers are full. */
  pause(): void;
  resume(): void;
  close(): void;
  closed: Promise<void>;
}

/** `/events`; `paused`: stop reading as soon as the answer's headers arrive (a stalled page). */
export function openEvents(t: Target, o: Ask & { paused?: boolean } = {}): Promise<SseStream> {
  const u = new URL(t.base);
  const headers: Record<string, string> = { accept: "text/event-stream", ...o.headers };
  if (t.token && o.auth !== false && !("authorization" in headers))
    headers.authorization = `Bearer ${t.token}`;
  return new Promise((res, rej) => {
    const r = request({ host: u.hostname, port: u.port, path: "/events", headers, agent: false }, (m) => {
      const messages: SseMessage[] = [];
      const problems: string[] = [];
      let buf = "";
      let retry: number | undefined;
      m.setEncoding("utf8");
      m.on("data", (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const lines = block.split("\n").filter((l) => !l.startsWith(":"));
          if (lines.length === 0) continue; // a comment (keep-alive)
          // README: the stream opens with `retry: 2000` (the reconnection time, ms) on its own.
          if (lines.length === 1 && /^retry: ?\d+$/.test(lines[0]!)) {
            if (messages.length > 0) problems.push(`/events: retry after the first message`);
            retry = Number(lines[0]!.replace(/^retry: ?/, ""));
            continue;
          }
          const ev = /^event: ?(.*)$/.exec(lines[0] ?? "");
          const data = /^data: ?(.*)$/.exec(lines[1] ?? "");
          if (lines.length !== 2 || !ev || !data) {
            problems.push(`/events: a message is not one event: and one data: line: ${block.slice(0, 200)}`);
            continue;
          }
          let parsed: unknown;
          try {
            parsed = JSON.parse(data[1]!);
          } catch {
            problems.push(`/events: data is not JSON: ${data[1]!.slice(0, 200)}`);
          }
          messages.push({ at: Date.now(), event: ev[1]!, data: parsed });
        }
      });
      if (o.paused) m.pause();
      const closed = new Promise<void>((c) => {
        m.on("close", () => c());
        m.on("error", () => c());
      });
      res({
        status: m.statusCode ?? 0,
        headers: m.headers,
        messages,
        problems,
        retry: () => retry,
        pause: () => m.pause(),
        resume: () => m.resume(),
        close: () => r.destroy(),
        closed,
      });
    });
    r.on("error", rej);
    r.end();
  });
}

/** Waits for `cond` on the stream's messages (polls, no fixed sleep), at most `ms`. */
export async function waitEvents(
  s: SseStream,
  cond: (m: SseMessage[]) => boolean,
  ms: number,
): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond(s.messages)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

const DELTA_HEALTH_KEYS = ["a", "d", "m", "o", "p", "pr", "t"];

/** The README's event table, checked on a stream read until it holds init, 2 stats and a delta. */
export async function checkEvents(t: Target, o: { expectDelta: boolean }): Promise<string[]> {
  const out: string[] = [];
  const s = await openEvents(t);
  try {
    if (s.status !== 200) return [`/events: ${s.status}`];
    if (!String(s.headers["content-type"]).startsWith("text/event-stream"))
      out.push(`/events: content-type ${s.headers["content-type"]}`);
    const got = await waitEvents(
      s,
      (m) =>
        m.filter((x) => x.event === "stats").length >= 2 &&
        (!o.expectDelta || m.some((x) => x.event === "delta")),
      8000,
    );
    if (!got)
      out.push(
        `/events: in 8 s not 2 stats${o.expectDelta ? " and a delta" : ""}: ${s.messages.map((m) => m.event).join()}`,
      );
    out.push(...s.problems);
    if (s.retry() !== 2000) out.push(`/events: retry ${s.retry()}, README says retry: 2000`);
    const [first] = s.messages;
    if (first?.event !== "init") out.push(`/events: the first message is ${first?.event}, README says init`);
    for (const m of s.messages)
      if (!["init", "delta", "stats"].includes(m.event))
        out.push(`/events: event ${m.event} not in the README`);
    const summary = json(await ask(t, "/api/summary"));
    const stats = s.messages.filter((m) => m.event === "stats");
    const keys = (v: unknown) => (isObj(v) ? Object.keys(v).sort().join() : String(v));
    for (const m of stats) out.push(...summaryProblems(m.data, "/events stats"));
    for (const m of stats)
      if (keys(m.data) !== keys(summary))
        out.push(`/events: stats keys ${keys(m.data)} differ from /api/summary's ${keys(summary)}`);
    for (let i = 1; i < stats.length; i++) {
      const gap = stats[i]!.at - stats[i - 1]!.at;
      if (gap < 500 || gap > 2000) out.push(`/events: stats ${gap} ms apart, README says every second`);
    }
    if (isObj(first?.data)) {
      const init = first.data;
      for (const k of [
        "history",
        "health",
        "alerts",
        "sparkPoints",
        ...(isObj(summary) ? Object.keys(summary) : []),
      ])
        if (!(k in init)) out.push(`/events: init without ${k}`);
      out.push(...summaryProblems(init, "/events init", INIT_EXTRA));
      const outputs = Array.isArray(init.health) ? (init.health as unknown[]) : [];
      for (const h of outputs)
        for (const o of isObj(h) && Array.isArray(h.outputs) ? (h.outputs as unknown[]) : [])
          if (!Array.isArray(o) || o.length !== 2 || typeof o[0] !== "string" || typeof o[1] !== "number")
            out.push(`/events init: health output ${JSON.stringify(o)} is not [name, value]`);
      if ("alerts" in init) out.push(...alertsProblems(init.alerts, "/events init alerts"));
    }
    const deltas = s.messages.filter((m) => m.event === "delta");
    for (let i = 1; i < deltas.length; i++)
      if (deltas[i]!.at - deltas[i - 1]!.at < 150)
        out.push(`/events: deltas ${deltas[i]!.at - deltas[i - 1]!.at} ms apart, README says every 250 ms`);
    for (const d of deltas) {
      if (!isObj(d.data)) {
        out.push(`/events: delta ${JSON.stringify(d.data)}`);
        continue;
      }
      const extra = Object.keys(d.data).filter((k) => !["health", "alerts", "droppedAlerts"].includes(k));
      if (extra.length)
        out.push(`/events: delta has ${extra.join()}, README lists health, alerts, droppedAlerts`);
      const health = d.data.health;
      const rows = Array.isArray(health) ? (health as unknown[]) : undefined;
      if (typeof d.data.droppedAlerts !== "number")
        out.push(`/events: delta droppedAlerts ${String(d.data.droppedAlerts)}`);
      if (health !== undefined && !rows)
        out.push(`/events: delta health ${JSON.stringify(health).slice(0, 200)}`);
      const devices = new Set<unknown>();
      for (const r of rows ?? []) {
        if (!isObj(r) || Object.keys(r).sort().join() !== DELTA_HEALTH_KEYS.join()) {
          out.push(
            `/events: delta health entry ${JSON.stringify(r).slice(0, 200)}, README says {d, pr, m, t, o, a, p}`,
          );
          continue;
        }
        if (devices.has(r.d))
          out.push(`/events: device ${String(r.d)} twice in one delta (README: once, coalesced)`);
        devices.add(r.d);
        if (typeof r.t !== "number" || !Array.isArray(r.o))
          out.push(`/events: delta health t/o ${JSON.stringify(r).slice(0, 200)}`);
      }
      if (d.data.alerts !== undefined) {
        if (!Array.isArray(d.data.alerts)) out.push(`/events: delta alerts is not a list`);
        else out.push(...alertsProblems({ active: [], recent: d.data.alerts }, "/events delta alerts"));
      }
    }
    if (o.expectDelta && deltas.length === 0) out.push(`/events: no delta while devices send`);
  } finally {
    s.close();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The access token.

export async function checkToken(t: Target & { token: string }): Promise<string[]> {
  const out: string[] = [];
  const basic = (user: string, pass: string) =>
    `Basic ${Buffer.from(`${user}:${pass}`, "utf8").toString("base64")}`;
  const good = [
    `Bearer ${t.token}`,
    `bearer ${t.token}`, // auth-scheme is case-insensitive (RFC 9110 11.1)
    basic("operator", t.token),
    basic("", t.token),
    basic("ü", t.token), // charset="UTF-8" (RFC 7617 2.1)
    `BASIC ${Buffer.from(`x:${t.token}`).toString("base64")}`,
  ];
  const bad = [
    "",
    `Bearer ${t.token.slice(0, -1)}`,
    `Bearer ${t.token}x`,
    `Bearer`,
    `Token ${t.token}`,
    basic(t.token, ""),
    basic("x", `${t.token}x`),
    `Basic ${t.token}`,
    `Basic !!!`,
  ];
  for (const path of [
    "/",
    "/metrics",
    "/readyz",
    "/api/summary",
    "/api/alerts",
    "/api/updates",
    "/app.js",
    "/nope",
  ]) {
    for (const a of good) {
      const r = await ask(t, path, { headers: { authorization: a } });
      if (r.status === 401) out.push(`GET ${path} with "${a.split(" ")[0]} …": 401, README says accepted`);
    }
    for (const a of bad) {
      const r = await ask(t, path, a ? { headers: { authorization: a } } : { auth: false });
      if (r.status !== 401) out.push(`GET ${path} with "${a.slice(0, 12)}…": ${r.status}, README says 401`);
      else if (r.headers["www-authenticate"] !== WWW_AUTHENTICATE)
        out.push(
          `GET ${path}: WWW-Authenticate "${r.headers["www-authenticate"]}", README says ${WWW_AUTHENTICATE}`,
        );
    }
    const h = await ask(t, path, { method: "HEAD", auth: false });
    if (h.status !== 401) out.push(`HEAD ${path} without the token: ${h.status}`);
  }
  // "judged in this order: …, the access token (401), the method (405), the path (404)".
  for (const [method, path] of [
    ["POST", "/metrics"],
    ["PUT", "/nope"],
    ["GET", "/nope"],
    ["GET", "/api/updates/check"],
  ]) {
    const a = await ask(t, path!, { method: method!, auth: false });
    if (a.status !== 401) out.push(`${method} ${path} without the token: ${a.status}, README says 401 first`);
  }
  const hz = await ask(t, "/healthz", { auth: false });
  if (hz.status !== 200) out.push(`/healthz without the token: ${hz.status}, README says exempt`);
  const hz2 = await ask(t, "/healthz", { headers: { authorization: "Bearer wrong" } });
  if (hz2.status !== 200) out.push(`/healthz with a wrong token: ${hz2.status}, README says exempt`);
  const ev = await openEvents(t, { auth: false });
  ev.close();
  if (ev.status !== 401) out.push(`/events without the token: ${ev.status}`);
  const evb = await openEvents(t, { headers: { authorization: basic("me", t.token) } });
  evb.close();
  if (evb.status !== 200) out.push(`/events with Basic: ${evb.status}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Operator actions.

export const OP_ERRORS = {
  remote: "operator actions are accepted only from this machine (a loopback address)",
  token:
    "operator actions need the operator token the gateway writes to its dataDir at start (X-Vigil-Operator); use vigil update -c with the gateway's config",
  page: "operator actions are not accepted from web pages; use vigil update",
  off: "updates are not enabled on this gateway (updates.enabled is false)",
};

/** The operator token file (with an access token set): 64 hex digits and a newline, mode 0600, in dataDir. */
export function operatorToken(dataDir: string): { token?: string; problems: string[] } {
  const path = `${dataDir}/operator-token`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    return { problems: [`${path}: ${(e as Error).message} (README: written at every start)`] };
  }
  const problems: string[] = [];
  if (!/^[0-9a-f]{64}\n$/.test(text)) problems.push(`${path}: not 64 hex digits and a newline`);
  if ((statSync(path).mode & 0o777) !== 0o600)
    problems.push(`${path}: mode ${(statSync(path).mode & 0o777).toString(8)}`);
  return { token: text.trim(), problems };
}

function errorIs(a: Answer, status: number, error: string | RegExp, what: string): string[] {
  const b = json(a);
  const msg = isObj(b) ? String(b.error) : undefined;
  const ok =
    a.status === status && msg !== undefined && (typeof error === "string" ? msg === error : error.test(msg));
  return ok ? [] : [`${what}: ${a.status} ${a.body}, README says ${status} {"error":"${String(error)}"}`];
}

/**
 * With updates off: the gates in the README's order, then 409 "before the query is read" (so the
 * 400 answers for a bad `release` or `device` cannot be reached here).
 */
export async function checkOperatorActions(
  t: Target,
  o: { dataDir: string; updatesEnabled: false },
): Promise<string[]> {
  const out: string[] = [];
  const op = t.token ? operatorToken(o.dataDir) : { problems: [] };
  out.push(...op.problems);
  const withOp: Record<string, string> = t.token && op.token ? { "x-vigil-operator": op.token } : {};
  for (const path of POST_ROUTES) {
    for (const h of [{ origin: "http://127.0.0.1" }, { "sec-fetch-site": "same-origin" }, { origin: "null" }])
      out.push(
        ...errorIs(
          await ask(t, path, { method: "POST", headers: { ...withOp, ...h } }),
          403,
          OP_ERRORS.page,
          `POST ${path} ${Object.keys(h)[0]}`,
        ),
      );
    if (t.token) {
      out.push(
        ...errorIs(
          await ask(t, path, { method: "POST" }),
          403,
          OP_ERRORS.token,
          `POST ${path} without X-Vigil-Operator`,
        ),
      );
      out.push(
        ...errorIs(
          await ask(t, path, { method: "POST", headers: { "x-vigil-operator": "0".repeat(64) } }),
          403,
          OP_ERRORS.token,
          `POST ${path} with a wrong operator token`,
        ),
      );
      const noAccess = await ask(t, path, { method: "POST", headers: withOp, auth: false });
      if (noAccess.status !== 401)
        out.push(
          `POST ${path} with the operator token, without the access token: ${noAccess.status}, README says 401`,
        );
    }
    out.push(
      ...errorIs(await ask(t, path, { method: "POST", headers: withOp }), 409, OP_ERRORS.off, `POST ${path}`),
    );
  }
  for (const q of ["release=abc", "", `release=${2n ** 256n}`, "release=1&device=-1"])
    out.push(
      ...errorIs(
        await ask(t, `/api/updates/retry?${q}`, { method: "POST", headers: withOp }),
        409,
        OP_ERRORS.off,
        `retry?${q}`,
      ),
    );
  return out;
}

// ---------------------------------------------------------------------------------------------
// Limits.

function rawSocket(t: Target): Promise<Socket> {
  const u = new URL(t.base);
  return new Promise((res, rej) => {
    const s = connect(Number(u.port), u.hostname, () => res(s));
    s.once("error", rej);
  });
}

/** "10 s to send its request headers (then 408 and the connection is closed)": measured. */
export async function headerTimeout(t: Target): Promise<{ ms: number; answer: string; closed: boolean }> {
  const s = await rawSocket(t);
  const start = Date.now();
  s.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `);
  let answer = "";
  s.on("data", (d: Buffer) => (answer += d.toString()));
  await new Promise<void>((r) => {
    s.once("close", () => r());
    s.once("error", () => r());
    setTimeout(() => r(), 40_000);
  });
  s.destroy();
  return { ms: Date.now() - start, answer, closed: s.destroyed };
}

/** At most 16 pages: the 17th `/events` is 503 with Retry-After: 10; HEAD is not limited. */
export async function checkSseLimit(t: Target): Promise<string[]> {
  const out: string[] = [];
  const pages: SseStream[] = [];
  try {
    for (let i = 0; i < 16; i++) {
      const p = await openEvents(t);
      pages.push(p);
      if (p.status !== 200) out.push(`/events page ${i + 1}: ${p.status}, README allows 16`);
    }
    const extra = await openEvents(t);
    pages.push(extra);
    if (extra.status !== 503 || extra.headers["retry-after"] !== "10")
      out.push(
        `/events page 17: ${extra.status} Retry-After ${extra.headers["retry-after"]}, README says 503 Retry-After: 10`,
      );
    const head = await ask(t, "/events", { method: "HEAD" });
    if (head.status !== 200) out.push(`HEAD /events at the limit: ${head.status}, README says 200`);
  } finally {
    for (const p of pages) p.close();
  }
  // A page that went away frees its place.
  const end = Date.now() + 5000;
  for (;;) {
    const p = await openEvents(t);
    p.close();
    if (p.status === 200) break;
    if (Date.now() > end) {
      out.push(`/events: still ${p.status} after the pages closed`);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return out;
}

/** "at most 128 connections are open at once (more are closed at accept)". */
export async function checkConnectionLimit(t: Target, limit = 128): Promise<string[]> {
  const out: string[] = [];
  const held: Socket[] = [];
  const once = (s: Socket) =>
    new Promise<string>((res) => {
      let got = "";
      s.on("data", (d: Buffer) => {
        got += d.toString();
        if (got.includes("\r\n\r\n")) res(got);
      });
      s.once("close", () => res(got));
      s.once("error", () => res(got));
    });
  const req = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  try {
    for (let i = 0; i < limit; i++) {
      const s = await rawSocket(t);
      held.push(s);
      const answer = once(s);
      s.write(req);
      const a = await answer;
      if (!a.startsWith("HTTP/1.1 200")) {
        out.push(`connection ${i + 1} of ${limit}: ${a.split("\r\n")[0] || "closed without an answer"}`);
        break;
      }
      s.removeAllListeners("data");
    }
    const over = await rawSocket(t).catch(() => undefined);
    if (over) {
      const a = once(over);
      over.write(req);
      const got = await a;
      over.destroy();
      if (got !== "")
        out.push(`connection ${limit + 1}: answered ${got.split("\r\n")[0]}, README says closed at accept`);
    }
  } finally {
    for (const s of held) s.destroy();
  }
  const end = Date.now() + 5000;
  for (;;) {
    const a = await ask(t, "/healthz").catch(() => undefined);
    if (a?.status === 200) break;
    if (Date.now() > end) {
      out.push(`/healthz still refused after the connections closed`);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return out;
}

/**
 * "only a peer on a loopback address may send them, also when `http.allowRemote` exposes the
 * read-only routes": from `localAddress`, an address of this machine that is not loopback
 * (connecting to the loopback listener), the read-only routes answer and the actions are 403.
 */
export async function checkRemotePeer(t: Target, localAddress: string, operator?: string): Promise<string[]> {
  const out: string[] = [];
  const ro = await ask(t, "/api/summary", { localAddress });
  if (ro.status !== 200) out.push(`GET /api/summary from ${localAddress}: ${ro.status}, README says 200`);
  const headers: Record<string, string> = operator ? { "x-vigil-operator": operator } : {};
  for (const path of POST_ROUTES)
    out.push(
      ...errorIs(
        await ask(t, path, { method: "POST", headers, localAddress }),
        403,
        OP_ERRORS.remote,
        `POST ${path} from ${localAddress}`,
      ),
    );
  return out;
}

/** What one raw connection received: each status line with its time, and when it was closed. */
export interface RawExchange {
  /** Status lines (`HTTP/1.1 409 Conflict`), each with ms since the request's headers were sent. */
  answers: Array<{ line: string; ms: number }>;
  /** ms since the headers until the endpoint closed the connection; undefined: not within `waitMs`. */
  closedMs: number | undefined;
}

/**
 * "30 s for its whole request" and "a connection idle for 5 s after an answer is closed": one
 * request on a raw connection (keep-alive) whose headers are complete; `body` announces a body
 * (Content-Length) that never completes, sent a byte every `trickleMs` (none: it stops at once).
 * Reads until the endpoint closes the connection, at most `waitMs`.
 */
export async function rawExchange(
  t: Target,
  o: { method: string; path: string; body?: { length: number; trickleMs?: number }; waitMs: number },
): Promise<RawExchange> {
  const s = await rawSocket(t);
  const auth = t.token ? `Authorization: Bearer ${t.token}\r\n` : "";
  const length = o.body ? `Content-Length: ${o.body.length}\r\n` : "";
  const start = Date.now();
  s.write(`${o.method} ${o.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}${length}\r\n`);
  const answers: RawExchange["answers"] = [];
  // Scanned as it arrives (a stream is large): what follows the last status line, its last 64 characters.
  let rest = "";
  s.on("data", (d: Buffer) => {
    const text = rest + d.toString("latin1");
    let end = 0;
    for (const m of text.matchAll(/HTTP\/1\.1 \d{3}[^\r\n]*\r\n/g)) {
      answers.push({ line: m[0].trimEnd(), ms: Date.now() - start });
      end = m.index + m[0].length;
    }
    rest = text.slice(end).slice(-64);
  });
  s.on("error", () => undefined); // a reset is a close too ("close" follows)
  const trickle =
    o.body?.trickleMs === undefined
      ? undefined
      : setInterval(() => s.writable && s.write("x"), o.body.trickleMs);
  const closedMs = await new Promise<number | undefined>((r) => {
    const timer = setTimeout(() => r(undefined), o.waitMs);
    s.once("close", () => {
      clearTimeout(timer);
      r(Date.now() - start);
    });
  });
  clearInterval(trickle);
  s.destroy();
  return { answers, closedMs };
}

/** The live-page figures of /metrics (only their lines are parsed: with many devices it is large). */
export async function sseCounters(t: Target): Promise<{ clients: number; skipped: number; evicted: number }> {
  const text = (await ask(t, "/metrics")).body.split("\n").filter((l) => l.includes("vigil_http_sse_"));
  const { families } = parseExposition(`${text.join("\n")}\n`);
  return {
    clients: valueOf(families, "vigil_http_sse_clients"),
    skipped: valueOf(families, "vigil_http_sse_updates_skipped_total"),
    evicted: valueOf(families, "vigil_http_sse_evicted_total"),
  };
}

/**
 * "skipped … until its socket drains, then sent a fresh `init`": what a page read after it
 * resumed reading at `resumedAt` (ms since the epoch; the gateway's `t` is this machine's clock)
 * holds a second `init`, made after the resume, and the update before it is at least `gapMs`
 * older (the updates between were skipped, not queued).
 */
export function freshInitProblems(messages: SseMessage[], resumedAt: number, gapMs = 3000): string[] {
  const tOf = (m: SseMessage | undefined) => (m && isObj(m.data) ? Number(m.data.t) : NaN);
  const inits = messages.flatMap((m, i) => (m.event === "init" ? [i] : []));
  if (inits.length < 2)
    return [`/events: ${inits.length} init, README says a fresh init when a slow page catches up`];
  const i = inits[1]!;
  const out: string[] = [];
  if (!(tOf(messages[i]) >= resumedAt - 1000))
    out.push(
      `/events: the init after catching up is from ${tOf(messages[i])}, before the page read again (${resumedAt})`,
    );
  const before = messages.slice(0, i).findLast((m) => m.event === "stats" || m.event === "init");
  const gap = tOf(messages[i]) - tOf(before);
  if (!(gap >= gapMs))
    out.push(
      `/events: the update before the fresh init is ${gap} ms older, README says the updates between are skipped`,
    );
  return out;
}

export interface SlowPages {
  problems: string[];
  /** ms from the first skipped update to page A's eviction; undefined: not within the wait. */
  evictedAfterMs: number | undefined;
  /** Updates counted as skipped meanwhile, and pages counted as evicted. */
  skipped: number;
  evicted: number;
}

/**
 * The `/events` bounds for slow pages: pages A and B stop reading at once. When updates are being
 * skipped (counted in `vigil_http_sse_updates_skipped_total`), B reads again, long before 30 s: it
 * gets its backlog, then a fresh `init` (freshInitProblems), and stays connected. A never reads:
 * it is disconnected about 30 s after its updates began to be skipped (the caller judges
 * `evictedAfterMs`), counted in `vigil_http_sse_evicted_total`, and its stream ends when it reads
 * again. The gateway must send enough (many devices) to fill the sockets' buffers.
 */
export async function checkSlowPages(t: Target, o: { waitMs: number }): Promise<SlowPages> {
  const out: string[] = [];
  const c0 = await sseCounters(t);
  const a = await openEvents(t, { paused: true });
  const b = await openEvents(t, { paused: true });
  let firstSkip: number | undefined;
  let resumedAt: number | undefined;
  let evictedAt: number | undefined;
  let c = c0;
  try {
    if (a.status !== 200 || b.status !== 200)
      return {
        problems: [`/events: ${a.status}, ${b.status}`],
        evictedAfterMs: undefined,
        skipped: 0,
        evicted: 0,
      };
    const end = Date.now() + o.waitMs;
    while (evictedAt === undefined && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 1000));
      c = await sseCounters(t);
      if (firstSkip === undefined && c.skipped > c0.skipped) firstSkip = Date.now();
      if (resumedAt === undefined && c.skipped - c0.skipped >= 10) {
        resumedAt = Date.now();
        b.resume();
      }
      if (c.evicted > c0.evicted) evictedAt = Date.now();
    }
    if (firstSkip === undefined)
      out.push(
        `/events: no update counted as skipped (vigil_http_sse_updates_skipped_total) for two pages that do not read`,
      );
    if (evictedAt === undefined)
      out.push(
        `/events: no page counted as disconnected (vigil_http_sse_evicted_total) for a page that does not read`,
      );
    if (resumedAt !== undefined) {
      const caughtUp = await waitEvents(b, (m) => m.filter((x) => x.event === "init").length >= 2, 20_000);
      const more = caughtUp && (await waitEvents(b, (m) => m.at(-1)?.event === "stats", 5000));
      out.push(...freshInitProblems(b.messages, resumedAt));
      if (caughtUp && !more) out.push(`/events: no stats after the fresh init (B is still connected)`);
      out.push(...b.problems);
    }
    const after = await sseCounters(t);
    if (after.evicted - c0.evicted !== 1)
      out.push(`/events: ${after.evicted - c0.evicted} pages evicted, expected page A only`);
    a.resume();
    const ended = await Promise.race([
      a.closed.then(() => true),
      new Promise((r) => setTimeout(r, 20_000, false)),
    ]);
    if (!ended) out.push(`/events: the evicted page's stream did not end when it read again`);
  } finally {
    a.close();
    b.close();
  }
  return {
    problems: out,
    evictedAfterMs: firstSkip !== undefined && evictedAt !== undefined ? evictedAt - firstSkip : undefined,
    skipped: c.skipped - c0.skipped,
    evicted: c.evicted - c0.evicted,
  };
}
