/**
 * `vigil update status|check|retry`: asks the running gateway's update agents through its local
 * HTTP endpoint (GET /api/updates, POST /api/updates/check and /api/updates/retry;
 * gateway/src/http/README.md, "Operator actions"). Needs no keys and touches no store.
 */
import { UsageError, VigilError } from "../core/errors.ts";
import type { UpdateStatus, ModelAgentCounters } from "../updates/model-agent.ts";
import type { FirmwareAgentCounters, FirmwareDeviceStatus } from "../updates/firmware-agent.ts";
import { readSecretFile } from "../core/secret-file.ts";
import { num, parse, refuseFlags, runSubcommand } from "./args.ts";
import { UPDATE_HELP } from "./help/update.ts";
import { NEEDS_TOKEN, StatusError, statusEndpoint, unreachable } from "./status.ts";

/** The updates status as GET /api/updates serves it (updates/start.ts UpdatesStatusPayload, as JSON). */
export interface UpdatesView {
  enabled: boolean;
  status: {
    atMs: number;
    model: (UpdateStatus & { counters: ModelAgentCounters }) | null;
    firmware: {
      devices: FirmwareDeviceStatus[];
      counters: FirmwareAgentCounters;
    } | null;
  } | null;
}

/** The gateway refused or failed an operator action (its sentence). */
export class UpdateActionError extends VigilError {
  override name = "UpdateActionError";
  constructor(message: string) {
    super("UPDATE_ACTION", message);
  }
}

/** One request to the gateway's API; a gateway that does not answer is one sentence. */
async function call<T>(method: "GET" | "POST", url: string, headers: Record<string, string>): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { method, headers, signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    throw unreachable(url, e);
  }
  if (res.status === 401) throw new StatusError(NEEDS_TOKEN(url));
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new StatusError(
      `${url} answered HTTP ${res.status} without JSON: is this a Vigil gateway's endpoint (with vigil update support)?`,
    );
  }
  if (!res.ok) {
    const error = (body as { error?: unknown }).error;
    if (typeof error === "string") throw new UpdateActionError(error);
    throw new StatusError(`${url} answered HTTP ${res.status}: is this a Vigil gateway's endpoint?`);
  }
  return body as T;
}

const when = (ms: number | undefined): string => (ms === undefined ? "never" : new Date(ms).toISOString());

/** The status as a few lines. */
export function formatUpdates(v: UpdatesView, url: string): string {
  const s = v.status;
  if (!v.enabled || !s) return `vigil update: updates are not enabled on the gateway at ${url}\n`;
  const out = [`vigil update: the gateway at ${url}`];
  const m = s.model;
  if (m) {
    const c = m.counters;
    out.push(
      `  model     ${m.state}${m.stale ? " (STALE: no check succeeded for updates.staleAfterMs)" : ""}` +
        ` · last check ${when(m.lastCheckMs)}${m.lastCheckError ? ` failed: ${m.lastCheckError}` : ""}`,
    );
    if (m.candidate)
      out.push(
        `  shadow    release ${m.candidate.releaseId} (${m.candidate.version}) runs beside the live model`,
      );
    if (m.lastInstall)
      out.push(
        `  installed release ${m.lastInstall.releaseId} (${m.lastInstall.version}) ` +
          `${m.lastInstall.atMs === null ? "in an earlier run" : `at ${when(m.lastInstall.atMs)}`}` +
          `${m.lastInstall.reported ? ", reported on chain" : ", report pending"}`,
      );
    if (m.lastFailure)
      out.push(
        `  refused   release ${m.lastFailure.releaseId} at ${when(m.lastFailure.atMs)}: ` +
          `${m.lastFailure.code} ${m.lastFailure.reason}`,
      );
    const rejected = Object.entries(c.rejected).map(([k, n]) => `${k} ${n}`);
    out.push(
      `  counters  checks ${c.checks} (failed ${c.checkErrors}) · installs ${c.installs} · ` +
        `reports ${c.reports} (failed ${c.reportErrors})${rejected.length ? ` · refused ${rejected.join(", ")}` : ""}`,
    );
  } else out.push("  model     no live model: nothing to update");
  const f = s.firmware;
  if (f) {
    const rejected = Object.entries(f.counters.rejected).map(([k, n]) => `${k} ${n}`);
    out.push(
      `  firmware  ${f.devices.length} serial device(s) · offers ${f.counters.offers} · installs ` +
        `${f.counters.installs}${rejected.length ? ` · refused ${rejected.join(", ")}` : ""}`,
    );
  }
  return out.join("\n") + "\n";
}

const BUSY = new Set(["checking", "fetching", "shadowing"]);

/**
 * Polls GET /api/updates until both agents ran a check after `before` and none of `devices`
 * (firmware device ids) has a transfer under way (or `waitS` passed).
 */
async function waitForCheck(
  base: string,
  headers: Record<string, string>,
  before: UpdatesView["status"],
  waitS: number,
  devices: readonly number[] = [],
): Promise<{ view: UpdatesView; done: boolean }> {
  const deadline = Date.now() + waitS * 1000;
  for (;;) {
    const view = await call<UpdatesView>("GET", `${base}/api/updates`, headers);
    const s = view.status;
    const modelDone =
      !s?.model ||
      (s.model.counters.checks > (before?.model?.counters.checks ?? 0) && !BUSY.has(s.model.state));
    const fwDone =
      !s?.firmware ||
      (s.firmware.counters.checks > (before?.firmware?.counters.checks ?? 0) &&
        !s.firmware.devices.some((d) => devices.includes(d.id) && d.updating !== undefined));
    if (modelDone && fwDone) return { view, done: true };
    if (Date.now() >= deadline) return { view, done: false };
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Common {
  base: string;
  headers: Record<string, string>;
  operatorTokenPath?: string;
  json: boolean;
  wait: number;
}

function common(argv: string[], extra: Record<string, { type: "string" | "boolean" }> = {}) {
  const { values: v, positionals } = parse(
    argv,
    {
      url: { type: "string" },
      config: { type: "string", short: "c" },
      json: { type: "boolean" },
      wait: { type: "string" },
      help: { type: "boolean", short: "h" },
      ...extra,
    },
    true,
  );
  // Decimal (args.ts num): Number() took "0x10" as 16 s. Not read with --help, which wins over
  // a bad value as in every other command.
  const wait = v.help === true ? 0 : num("wait", v.wait as string | undefined, 30, 0);
  return { v, positionals, help: v.help === true, wait };
}

function opts(c: ReturnType<typeof common>): Common {
  const v = c.v as { url?: string; config?: string; json?: boolean };
  return {
    ...statusEndpoint({ url: v.url, config: v.config }),
    json: v.json === true,
    wait: c.wait,
  };
}

/**
 * The headers of an operator action: the access token's, and with one, the operator token the
 * running gateway wrote to its dataDir at start (gateway/src/http/README.md, "Operator actions").
 */
function actionHeaders(o: Common): Record<string, string> {
  if (o.operatorTokenPath === undefined) return o.headers;
  let token: string;
  try {
    token = readSecretFile(o.operatorTokenPath, "the operator token", 64);
  } catch (e) {
    throw new StatusError(
      `${(e as VigilError).shortMessage}; the gateway writes it at every start: is it running with this config, and may this user read its dataDir?`,
      e,
    );
  }
  return { ...o.headers, "x-vigil-operator": token };
}

function noPositionals(positionals: string[], cmd: string): void {
  if (positionals.length)
    throw new UsageError(`vigil update ${cmd} takes no argument, got "${positionals[0]}"`);
}

async function statusCmd(argv: string[]): Promise<number> {
  const c = common(argv);
  if (c.help) return help();
  noPositionals(c.positionals, "status");
  refuseFlags(c.v, ["wait"], 'applies only to "vigil update check" and "retry" (status does not wait)');
  const o = opts(c);
  const view = await call<UpdatesView>("GET", `${o.base}/api/updates`, o.headers);
  process.stdout.write(o.json ? JSON.stringify(view, null, 2) + "\n" : formatUpdates(view, o.base));
  return view.enabled ? 0 : 1;
}

async function checkCmd(argv: string[]): Promise<number> {
  const c = common(argv);
  if (c.help) return help();
  noPositionals(c.positionals, "check");
  const o = opts(c);
  const asked = await call<{ accepted: boolean; status: UpdatesView["status"] }>(
    "POST",
    `${o.base}/api/updates/check`,
    actionHeaders(o),
  );
  if (!o.json) process.stdout.write(`vigil update: the gateway at ${o.base} checks for releases now\n`);
  return finish(o, asked);
}

async function retryCmd(argv: string[]): Promise<number> {
  const c = common(argv, { device: { type: "string" } });
  if (c.help) return help();
  if (c.positionals.length > 1)
    throw new UsageError(`vigil update retry takes one release id, got ${c.positionals.length}`);
  const device = (c.v as { device?: string }).device;
  if (device !== undefined && !/^\d{1,10}$/.test(device))
    throw new UsageError(`--device must be a device id (decimal), got "${device}"`);
  let id = c.positionals[0];
  if (id !== undefined && !/^\d{1,78}$/.test(id))
    throw new UsageError(`the release id must be a decimal number, got "${id}"`);
  const o = opts(c);
  if (id === undefined) {
    const view = await call<UpdatesView>("GET", `${o.base}/api/updates`, o.headers);
    if (!view.enabled)
      throw new UpdateActionError("updates are not enabled on this gateway (updates.enabled is false)");
    // The last refused model release, unless it was installed since (after an earlier retry).
    const m = view.status?.model;
    const f = m?.lastFailure;
    const installed =
      m?.lastInstall?.releaseId === f?.releaseId && (m?.lastInstall?.atMs ?? 0) >= (f?.atMs ?? 0);
    id = installed ? undefined : f?.releaseId;
    if (id === undefined)
      throw new UsageError(
        "no failed model release to retry on this gateway; name the release: vigil update retry ID",
      );
  }
  const q = `release=${id}${device === undefined ? "" : `&device=${device}`}`;
  const asked = await call<{
    accepted: boolean;
    retried: { model: boolean; firmwareDevices: number[] };
    status: UpdatesView["status"];
  }>("POST", `${o.base}/api/updates/retry?${q}`, actionHeaders(o));
  const r = asked.retried;
  if (!o.json) {
    const where = [
      ...(r.model ? ["model"] : []),
      ...(r.firmwareDevices.length ? [`firmware on device(s) ${r.firmwareDevices.join(", ")}`] : []),
    ];
    process.stdout.write(
      where.length
        ? `vigil update: release ${id}: failure forgotten (${where.join("; ")}); checking again\n`
        : // Never refused here, or refused only transiently (FETCH_FAILED, NO_WINDOWS: not remembered).
          `vigil update: release ${id} is not remembered as refused on this gateway; checking anyway\n`,
    );
  }
  // The firmware devices whose transfer this retry starts: the one named, else those it forgot.
  const devices = device === undefined ? r.firmwareDevices : [Number(device)];
  const code = await finish(o, asked, devices);
  if (code !== 0 || o.wait === 0) return code;
  // Refused again after this retry (the model, or a device): say so and exit 1.
  const view = await call<UpdatesView>("GET", `${o.base}/api/updates`, o.headers);
  const since = asked.status?.atMs ?? 0;
  const again = (f: { releaseId: string; atMs: number } | undefined): boolean =>
    f !== undefined && f.releaseId === id && f.atMs >= since;
  const lines: string[] = [];
  const m = view.status?.model?.lastFailure;
  if (m && again(m)) lines.push(`vigil update: release ${id} was refused again: ${m.code} ${m.reason}`);
  for (const d of view.status?.firmware?.devices ?? []) {
    const f = d.lastFailure;
    if (f && devices.includes(d.id) && again(f))
      lines.push(`vigil update: release ${id} was refused again by device ${d.id}: ${f.code} ${f.reason}`);
  }
  if (lines.length === 0) return 0;
  if (!o.json) process.stdout.write(lines.join("\n") + "\n");
  return 1;
}

/**
 * After a check was asked: wait (unless --wait 0; for `devices`' firmware transfers too), then print
 * the status. With --json and --wait 0, the gateway's answer to the request is printed instead.
 */
async function finish(
  o: Common,
  answer: { status: UpdatesView["status"] },
  devices?: readonly number[],
): Promise<number> {
  if (o.wait === 0) {
    if (o.json) process.stdout.write(JSON.stringify(answer, null, 2) + "\n");
    return 0;
  }
  const { view, done } = await waitForCheck(o.base, o.headers, answer.status, o.wait, devices);
  if (o.json) process.stdout.write(JSON.stringify({ ...view, done }, null, 2) + "\n");
  else {
    if (!done) {
      const fw = view.status?.firmware?.devices.filter((d) => d.updating !== undefined).length;
      process.stdout.write(
        `vigil update: the check is still running after ${o.wait} s (model: ${view.status?.model?.state ?? "–"}` +
          `${fw ? `; firmware transfers: ${fw}` : ""}); follow it with vigil update status\n`,
      );
    }
    process.stdout.write(formatUpdates(view, o.base));
  }
  return 0;
}

function help(): number {
  process.stdout.write(UPDATE_HELP);
  return 0;
}

export function updateCommand(argv: string[]): Promise<number> {
  return runSubcommand("update", UPDATE_HELP, { status: statusCmd, check: checkCmd, retry: retryCmd }, argv);
}
