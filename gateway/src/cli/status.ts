/**
 * `vigil status`: a one-screen summary of a running gateway, read from its local HTTP API
 * (`/api/summary` and `/api/alerts`, gateway/src/http/README.md). Read-only; needs no keys and
 * does not touch the store, so it is safe beside a running gateway.
 */
import { DEFAULT_CONFIG, loadConfigFile, type GatewayConfig } from "../config/config.ts";
import { redactUrl, UsageError, VigilError } from "../core/errors.ts";
import { resolvePath } from "../core/paths.ts";
import { readSecretFile } from "../core/secret-file.ts";
import type { AlertView } from "../http/live.ts";
import type { PageStats } from "../http/page-model.ts";
import { OPERATOR_TOKEN_FILE } from "../http/server.ts";
import { parse } from "./args.ts";
import { STATUS_HELP } from "./help/status.ts";

/** A device is silent when its last frame is older than this. */
export const SILENT_AFTER_MS = 60_000;
const MAX_ALERT_LINES = 5;
const MAX_REASONS = 6;

/** The gateway's endpoint could not be reached or answered something else than its API. */
export class StatusError extends VigilError {
  override name = "StatusError";
  constructor(message: string, cause?: unknown) {
    super("STATUS_UNAVAILABLE", message, cause === undefined ? {} : { cause });
  }
}

export interface AlertsView {
  active: AlertView[];
  recent: AlertView[];
}

const nf = new Intl.NumberFormat("en");
const int = (n: number) => nf.format(n);
const short = (h: string | null | undefined) =>
  h && h.length > 14 ? `${h.slice(0, 10)}…${h.slice(-4)}` : (h ?? "–");
const rate = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const num = (v: number) =>
  Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2);

function bytes(n: number): string {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function age(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 120) return `${s.toFixed(0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(0)} min`;
  return `${(s / 3600).toFixed(0)} h`;
}

/** Exit code for a summary: 0 when the gateway is ready, 1 when not. */
export function statusExitCode(s: PageStats): number {
  return s.readiness.ready ? 0 : 1;
}

/**
 * The one-screen text for a summary and its alerts (at most about 24 lines, whatever the number
 * of devices or alerts).
 * @param url The endpoint it was read from (shown so the operator knows which gateway this is).
 */
export function formatStatus(s: PageStats, alerts: AlertsView, url: string): string {
  const out: string[] = [];
  const row = (k: string, v: string) => out.push(`  ${k.padEnd(10)} ${v}`);
  const g = s.gateway;
  out.push(`vigil status: ${g.name} (site ${g.site}, gateway ${short(g.id)}) at ${url}`);
  const r = s.readiness;
  row(
    "state",
    r.ready
      ? `ready (${r.phase})`
      : `NOT READY: ${r.failing.map((f) => `${f.check} ${f.reason} (${f.detail})`).join("; ")}`,
  );
  for (const w of r.warnings) row("warning", `${w.check} ${w.reason}: ${w.detail}`);

  const silent = s.devices.filter((d) => s.t - d.lastMs > SILENT_AFTER_MS).length;
  const gaps = s.devices.reduce((a, d) => a + d.gaps, 0);
  row(
    "devices",
    `${int(s.devices.length)}${silent ? ` (${silent} silent for more than ${SILENT_AFTER_MS / 1000} s)` : ""}` +
      ` · ${rate(s.rates.accepted)} frames/s accepted, ${rate(s.rates.rejected)}/s rejected, ` +
      `${rate(s.rates.windows)} windows/s inferred`,
  );
  const t = s.totals;
  row(
    "frames",
    `accepted ${int(t.accepted)} · duplicates ${int(t.duplicates)} · rejected ${int(t.rejected)} · ` +
      `gaps ${int(gaps)} · device ERROR frames ${int(t.deviceErrors)}`,
  );
  const faulty = s.devices.filter((d) => d.quality && d.quality.faults > 0);
  const withheld = s.devices.reduce((a, d) => a + (d.quality?.withheld ?? 0), 0);
  if (faulty.length || withheld)
    row(
      "data",
      `${faulty.length} device(s) with sensor faults` +
        (faulty.length
          ? ` (${faulty
              .slice(0, 4)
              .map((d) => `${d.d}: ${d.quality!.faults} channel${d.quality!.faults > 1 ? "s" : ""}`)
              .join(", ")}${faulty.length > 4 ? ", …" : ""})`
          : "") +
        ` · ${int(withheld)} windows withheld for data quality`,
    );
  if (s.rejections.length) {
    const top = [...s.rejections].sort((a, b) => b.total - a.total);
    const shown = top.slice(0, MAX_REASONS).map((x) => `${x.reason} ${int(x.total)}`);
    if (top.length > MAX_REASONS) shown.push(`+${top.length - MAX_REASONS} more`);
    row("rejected", shown.join(", "));
  }
  row(
    "inference",
    (s.inference
      ? `windows ${int(t.windowsRun)} (skipped ${int(t.windowsSkipped)}); frame → result p50 ` +
        `${s.inference.frameToResultP50Ms.toFixed(1)} ms, p99 ${s.inference.frameToResultP99Ms.toFixed(1)} ms`
      : `no models loaded: frames are stored${s.sealing ? " and sealed" : ""}, not inferred`) +
      (s.models.length
        ? `; models ${s.models.map((m) => `${m.name}@${m.version}${m.role === "live" ? "" : ` (${m.role})`}`).join(", ")}`
        : ""),
  );
  row(
    "alerts",
    `${int(t.alertsActive)} active · raised ${int(t.alertsRaised)}, cleared ${int(t.alertsCleared)} since start`,
  );
  const rank = { critical: 3, warning: 2, info: 1 } as Record<string, number>;
  const active = [...alerts.active].sort(
    (a, b) => (rank[b.severity] ?? 0) - (rank[a.severity] ?? 0) || a.sinceMs - b.sinceMs,
  );
  for (const a of active.slice(0, MAX_ALERT_LINES))
    out.push(
      `    ${a.severity.padEnd(8)} device ${a.device}: ${a.output} ${num(a.value)} ${a.op} ${a.threshold} ` +
        `(${a.ruleId}) for ${age(s.t - a.sinceMs)}, leaf ${short(a.leaf)}`,
    );
  if (active.length > MAX_ALERT_LINES)
    out.push(`    … ${active.length - MAX_ALERT_LINES} more (vigil status --json, or the live page)`);
  const last = s.batches[0];
  row(
    "batches",
    !s.sealing
      ? "off (no chain.deployment, or attest.enabled false): frames are stored, not sealed"
      : `sealed ${int(t.batchesSealed)}, anchored ${int(t.batchesAnchored)}` +
          (last
            ? `; latest #${last.seq} (${int(last.leaves)} leaves) ${last.anchored ? `anchored in ${short(last.tx)}${last.block !== null ? ` block ${last.block}` : ""}` : "waiting"}`
            : ""),
  );
  row(
    "anchor",
    !s.anchor.enabled
      ? `off (no chain.rpcUrl)${s.sealing ? ": sealed batches wait in the outbox" : ""}`
      : s.anchor.lastError
        ? `retrying after ${s.anchor.failures} failures: ${s.anchor.lastError}; outbox ${s.anchor.backlog}`
        : `ok; outbox ${s.anchor.backlog}`,
  );
  row(
    "store",
    `${s.store.state} · ${bytes(s.store.liveBytes)} · ${int(s.store.pending)} frames waiting to be synced`,
  );
  if (s.registry) row("registry", `copy ${age(s.registry.cacheAgeSeconds * 1000)} old`);
  row("page", `${url}/  (metrics ${url}/metrics)`);
  return out.join("\n") + "\n";
}

/** The sentence for an HTTP 401: the gateway has an access token (http.authTokenFile). */
export const NEEDS_TOKEN = (url: string): string =>
  `${new URL(url).origin} needs its access token (http.authTokenFile): pass -c with the config the gateway runs with`;

/**
 * The endpoint to read and the headers to send, from one read of the config file: the URL is
 * `--url`, else the config's http settings, else the defaults; the headers carry `Authorization:
 * Bearer` with the token of the config's `http.authTokenFile` (relative to its dataDir), if any.
 * With an access token, `operatorTokenPath` is where the gateway writes its operator token
 * (`OPERATOR_TOKEN_FILE` in its dataDir), which operator actions also need.
 */
export function statusEndpoint(o: { url?: string | undefined; config?: string | undefined }): {
  base: string;
  headers: Record<string, string>;
  operatorTokenPath?: string;
} {
  const cfg = o.config ? loadConfigFile(o.config) : undefined;
  const file = cfg?.http.authTokenFile;
  if (!file) return { base: urlOf(o, cfg), headers: {} };
  return {
    base: urlOf(o, cfg),
    headers: {
      authorization: `Bearer ${readSecretFile(resolvePath(cfg.dataDir, file), "http.authTokenFile")}`,
    },
    operatorTokenPath: resolvePath(cfg.dataDir, OPERATOR_TOKEN_FILE),
  };
}

/** The endpoint to read: --url, else the config file's http settings, else the defaults. */
export function statusUrl(o: { url?: string | undefined; config?: string | undefined }): string {
  return statusEndpoint(o).base;
}

function urlOf(
  o: { url?: string | undefined; config?: string | undefined },
  cfg: GatewayConfig | undefined,
): string {
  if (o.url) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new UsageError(`--url must be an http:// URL, got "${redactUrl(o.url)}"`);
    }
    if (u.protocol !== "http:")
      throw new UsageError(`--url must be an http:// URL, got "${redactUrl(o.url)}"`);
    return u.origin;
  }
  const http = cfg?.http ?? DEFAULT_CONFIG.http;
  const from = o.config ? `in ${o.config}` : "by default";
  if (!http.enabled)
    throw new StatusError(
      `the HTTP endpoint is switched off ${from} (http.enabled false); vigil status reads it, so enable it or pass --url`,
    );
  if (http.port === 0)
    throw new StatusError(
      `http.port is 0 ${from} (any free port): pass --url with the address the gateway logged ("http endpoint listening")`,
    );
  const host = http.host.includes(":") ? `[${http.host}]` : http.host;
  return `http://${host}:${http.port}`;
}

/** The sentence for a request to the gateway's endpoint `url` that `fetch` could not make. */
export function unreachable(url: string, e: unknown): StatusError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  // fetch refuses the ports the Fetch standard blocks (1, 22, 25, …) before connecting.
  if (cause?.message === "bad port")
    return new StatusError(
      `${new URL(url).origin} uses a port that HTTP clients refuse (the Fetch standard's blocked ports): give the gateway another http.port`,
      e,
    );
  const c = cause?.code ?? (e as Error).name;
  return new StatusError(
    `no gateway answers at ${new URL(url).origin} (${c}): is it running (vigil start)? ` +
      `Otherwise pass --url, or -c with the config it runs with`,
    e,
  );
}

async function getJson<T>(url: string, headers: Record<string, string>): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  } catch (e) {
    throw unreachable(url, e);
  }
  if (res.status === 401) throw new StatusError(NEEDS_TOKEN(url));
  if (!res.ok)
    throw new StatusError(
      `${url} answered HTTP ${res.status}: is this a Vigil gateway's endpoint (version 0.1 or later)?`,
    );
  try {
    return (await res.json()) as T;
  } catch (e) {
    throw new StatusError(`${url} did not answer JSON: is this a Vigil gateway's endpoint?`, e);
  }
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    url: { type: "string" },
    config: { type: "string", short: "c" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const { base, headers } = statusEndpoint({ url: v.url, config: v.config });
  const [summary, alerts] = await Promise.all([
    getJson<PageStats>(`${base}/api/summary`, headers),
    getJson<AlertsView>(`${base}/api/alerts`, headers),
  ]);
  process.stdout.write(
    v.json
      ? JSON.stringify({ url: base, summary, alerts }, null, 2) + "\n"
      : formatStatus(summary, alerts, base),
  );
  return statusExitCode(summary);
}
