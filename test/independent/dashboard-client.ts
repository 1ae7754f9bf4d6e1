/**
 * An independent maintenance-dashboard consumer, written from gateway/src/alerts/README.md and
 * its JSON Schemas (gateway/src/alerts/schemas/) ALONE, as a check that the document is exact:
 * no gateway code is imported. It subscribes the way the README tells a dashboard to ("Dashboard
 * subscriptions", plus `reading` at QoS 0) and turns every rule the README states into a check;
 * `checkDashboard` returns the violations as sentences (empty = the traffic matches the README).
 */
import { readFileSync } from "node:fs";
import { Ajv, type ValidateFunction } from "ajv";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

export interface Seen {
  /** Local arrival time, ms. */
  at: number;
  topic: string;
  qos: number;
  retain: boolean;
  body: Record<string, unknown>;
  raw: string;
}

/** README "Dashboard subscriptions" (QoS 1), and readings at QoS 0 ("Watching the topics"). */
export const DASHBOARD_FILTERS: Record<string, 0 | 1> = {
  "vigil/v1/+/+/+/alert": 1,
  "vigil/v1/+/+/+/health": 1,
  "vigil/v1/+/+/+/sensor-fault": 1,
  "vigil/v1/+/+/+/status": 1,
  "vigil/v1/+/+/status": 1,
  "vigil/v1/+/+/alert": 1,
  "vigil/v1/+/+/+/reading": 0,
};

export interface Dashboard {
  seen: Seen[];
  /** SUBACK: granted QoS per filter (0x80 = refused). */
  granted: Record<string, number>;
  client: MqttClient;
  close(): Promise<void>;
}

export async function connectDashboard(
  url: string,
  options: IClientOptions = {},
  filters: Record<string, 0 | 1> = DASHBOARD_FILTERS,
): Promise<Dashboard> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, clean: true, ...options });
  const seen: Seen[] = [];
  client.on("message", (topic, payload, packet) => {
    const raw = payload.toString("utf8");
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      body = { unparsable: raw };
    }
    seen.push({ at: Date.now(), topic, qos: packet.qos, retain: packet.retain, body, raw });
  });
  const subs = await client.subscribeAsync(
    Object.fromEntries(Object.entries(filters).map(([f, qos]) => [f, { qos }])),
  );
  const granted = Object.fromEntries(subs.map((s) => [s.topic, s.qos]));
  return { seen, granted, client, close: () => client.endAsync() };
}

// ---- the README's rules -------------------------------------------------------------------

const SCHEMA_DIR = new URL("../../gateway/src/alerts/schemas/", import.meta.url);
type Kind = "alert" | "health" | "sensor-fault" | "device-status" | "status" | "gateway-alert" | "reading";

function validators(): Record<Kind, ValidateFunction> {
  const ajv = new Ajv({ strict: false, allErrors: true });
  const load = (f: string) => ajv.compile(JSON.parse(readFileSync(new URL(f, SCHEMA_DIR), "utf8")) as object);
  return {
    alert: load("alert.schema.json"),
    health: load("health.schema.json"),
    "sensor-fault": load("sensor-fault.schema.json"),
    "device-status": load("device-status.schema.json"),
    status: load("status.schema.json"),
    "gateway-alert": load("gateway-alert.schema.json"),
    reading: load("reading.schema.json"),
  };
}

/** Topic table: kind, QoS and retained flag of each topic shape. */
function topicKind(topic: string): { kind: Kind; qos: 0 | 1; retained: boolean; device?: string } | string {
  const l = topic.split("/");
  if (l[0] !== "vigil" || l[1] !== "v1") return `topic ${topic} is not under vigil/v1/`;
  const level = /^[A-Za-z0-9._-]{1,64}$/;
  if (!level.test(l[2]!) || !level.test(l[3]!) || /^_+$/.test(l[2]!) || l[2] === "ingest")
    return `topic ${topic}: site/gateway levels are not sanitised topic levels`;
  if (l.length === 5) {
    if (l[4] === "status") return { kind: "status", qos: 1, retained: true };
    if (l[4] === "alert") return { kind: "gateway-alert", qos: 1, retained: false };
  }
  if (l.length === 6) {
    if (!/^[0-9a-f]{8}$/.test(l[4]!)) return `topic ${topic}: device level is not 8 lowercase hex`;
    const device = l[4]!;
    const k = {
      alert: { kind: "alert", qos: 1, retained: false },
      health: { kind: "health", qos: 1, retained: true },
      "sensor-fault": { kind: "sensor-fault", qos: 1, retained: false },
      status: { kind: "device-status", qos: 1, retained: true },
      reading: { kind: "reading", qos: 0, retained: false },
    }[l[5]!] as { kind: Kind; qos: 0 | 1; retained: boolean } | undefined;
    if (k) return { ...k, device };
  }
  return `topic ${topic} is not in the README's topic table`;
}

const iso = (us: number) => new Date(Math.floor(us / 1000)).toISOString();
/** The shortest decimal that reads back as the float32 nearest to x. */
function shortestF32(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p < 9; p++)
    if (Math.fround(Number(f.toPrecision(p))) === f) return Number(f.toPrecision(p));
  return Number(f.toPrecision(9));
}
const is4dp = (v: unknown) => v === null || (typeof v === "number" && Math.round(v * 1e4) / 1e4 === v);

type Obj = Record<string, unknown>;
interface Episode {
  raised?: Obj;
  cleared?: Obj;
}

export interface CheckOptions {
  /** The site and gateway levels the config names (already valid topic levels). */
  site: string;
  gateway: string;
  /** mqtt.readingsIntervalMs of the gateway. */
  readingsIntervalMs: number;
  /** The traffic ended with a clean stop of the gateway (offline/stop last). */
  stopped: boolean;
}

/** Every README rule, applied to what one dashboard received from subscription to the end. */
export function checkDashboard(seen: Seen[], o: CheckOptions): string[] {
  const bad: string[] = [];
  const v = validators();
  const alerts = new Map<string, Episode>();
  const faults = new Map<string, Episode>();
  const openByDeviceRule = new Map<string, string>();
  const lastHealth = new Map<string, Obj>();
  const lastStatus = new Map<string, Obj>();
  const devicesSeen = new Set<string>();
  const lastReading = new Map<string, Obj>();
  const lastReadingAt = new Map<string, number>();
  const modelsUsed: Array<[string, Obj, string | undefined]> = [];
  const gatewayStatus: Obj[] = [];

  seen.forEach((m, i) => {
    const where = `#${i} ${m.topic}`;
    const t = topicKind(m.topic);
    if (typeof t === "string") return void bad.push(t);
    const b = m.body;
    if (m.qos !== t.qos) bad.push(`${where}: delivered at QoS ${m.qos}, README says ${t.qos}`);
    // A live (not retained-at-subscribe) delivery never has the retain flag [MQTT-3.3.1-9];
    // non-retained topics must never come with it.
    if (m.retain && !t.retained) bad.push(`${where}: retained, README says not retained`);
    if (!v[t.kind](b)) {
      bad.push(
        `${where}: ${t.kind} schema: ${JSON.stringify(v[t.kind].errors?.slice(0, 3))} in ${m.raw.slice(0, 300)}`,
      );
      return;
    }
    const [, , site, gateway] = m.topic.split("/");
    if (b.v !== 1 || b.type !== t.kind) bad.push(`${where}: v/type ${String(b.v)}/${String(b.type)}`);
    if (b.site !== site || b.gateway !== gateway)
      bad.push(`${where}: site/gateway fields differ from the topic`);
    if (site !== o.site || gateway !== o.gateway)
      bad.push(`${where}: site/gateway levels are not the configured ones`);
    if (t.device !== undefined && b.device !== t.device)
      bad.push(`${where}: device field differs from the topic`);
    for (const [a, us] of [
      ["time", "timeUs"],
      ["since", "sinceUs"],
    ] as const)
      if (typeof b[us] === "number" && b[a] !== iso(b[us]))
        bad.push(`${where}: ${a} ${String(b[a])} is not ${us}`);
    const device = t.device ?? "";
    if (b.model) modelsUsed.push([where, b.model as Obj, b.profile as string | undefined]);
    if (device && !m.retain) devicesSeen.add(device);

    if (t.kind === "alert") {
      const rule = b.rule as Obj;
      const value = b.value as number;
      if (!is4dp(value)) bad.push(`${where}: value ${value} not rounded to 4 decimals`);
      if (b.id !== `${device}-${String(rule.id)}-${String(b.sinceUs)}`)
        bad.push(`${where}: id is not {device}-{rule}-{raisedAtUs}`);
      if ((b.receipt as Obj).batchSeq !== null) bad.push(`${where}: receipt.batchSeq not null`);
      const w = b.window as Obj;
      if ((w.firstSeq as number) > (w.lastSeq as number)) bad.push(`${where}: window.firstSeq > lastSeq`);
      if ((w.firstTimestampUs as number) > (w.lastTimestampUs as number))
        bad.push(`${where}: window first timestamp after last`);
      const ge = rule.op === ">=";
      const key = `${device}/${String(rule.id)}`;
      const ep = alerts.get(b.id as string) ?? {};
      if (b.state === "raised") {
        if (b.sinceUs !== b.timeUs) bad.push(`${where}: raised but since != time`);
        if (ge ? value < (rule.threshold as number) : value > (rule.threshold as number))
          bad.push(
            `${where}: raised with ${value}, threshold ${String(rule.op)} ${String(rule.threshold)} does not hold`,
          );
        if (ep.raised) bad.push(`${where}: episode ${String(b.id)} raised twice`);
        if (openByDeviceRule.has(key)) bad.push(`${where}: ${key} raised again before it cleared`);
        openByDeviceRule.set(key, b.id as string);
        ep.raised = b;
      } else {
        // Cleared past the clear level; or (README) the model no longer has the rule.
        if (ge ? value >= (rule.clear as number) : value <= (rule.clear as number))
          bad.push(
            `${where}: cleared with ${value}, not past clear ${String(rule.clear)} (model still has the rule?)`,
          );
        if (!ep.raised) bad.push(`${where}: cleared ${String(b.id)} without its raised`);
        else if (ep.raised.severity !== b.severity || JSON.stringify(ep.raised.rule) !== JSON.stringify(rule))
          bad.push(`${where}: cleared differs from its raised in severity/rule`);
        if (ep.cleared) bad.push(`${where}: episode ${String(b.id)} cleared twice`);
        openByDeviceRule.delete(key);
        ep.cleared = b;
        if ((b.sinceUs as number) > (b.timeUs as number)) bad.push(`${where}: cleared before raised`);
      }
      alerts.set(b.id as string, ep);
      // "health … at once on an alert transition": the device's next health reflects it.
      const next = seen.slice(i + 1).find((n) => n.topic === m.topic.replace(/alert$/, "health"));
      const active = ((next?.body.active as Obj[] | undefined) ?? []).map((a) => a.id);
      if (!next) bad.push(`${where}: no health after the ${String(b.state)} transition of ${String(b.id)}`);
      else if (active.includes(b.id) !== (b.state === "raised") && next.body.timeUs === b.timeUs)
        bad.push(`${where}: health at the transition does not show ${String(b.id)} ${String(b.state)}`);
      else if (next.body.timeUs !== b.timeUs)
        bad.push(
          `${where}: health not published at once on the transition (next health ${String(next.body.timeUs)}, alert ${String(b.timeUs)})`,
        );
    }

    if (t.kind === "health") {
      for (const [k, x] of Object.entries(b.outputs as Obj))
        if (!is4dp(x)) bad.push(`${where}: output ${k} not 4 decimals`);
      const prev = lastHealth.get(device);
      if (prev && !m.retain) {
        if ((b.windows as number) < (prev.windows as number)) bad.push(`${where}: windows went down`);
        const gap = (b.timeUs as number) - (prev.timeUs as number);
        const atTransition = seen.some(
          (a) => a.topic === m.topic.replace(/health$/, "alert") && a.body.timeUs === b.timeUs,
        );
        const atStop = seen.slice(i + 1).every((n) => !n.topic.endsWith(`/${device}/health`));
        if (gap < 1_000_000 && !atTransition && !atStop)
          bad.push(
            `${where}: health ${gap} µs after the previous one, no alert transition (at most once a second)`,
          );
      }
      for (const a of b.active as Obj[]) {
        if (openByDeviceRule.get(`${device}/${String(a.rule)}`) !== a.id && !m.retain)
          bad.push(`${where}: active ${String(a.id)} is not a raised, uncleared alert`);
        if (a.sinceUs !== Number(String(a.id).split("-").pop()))
          bad.push(`${where}: active sinceUs is not in its id`);
      }
      lastHealth.set(device, b);
    }

    if (t.kind === "sensor-fault") {
      if (b.id !== `${device}-${String(b.channel)}-${String(b.sinceUs)}`)
        bad.push(`${where}: id is not {device}-{channel}-{sinceUs}`);
      if (!is4dp(b.value)) bad.push(`${where}: value not 4 decimals`);
      if ((b.receipt as Obj).batchSeq !== null) bad.push(`${where}: receipt.batchSeq not null`);
      const ep = faults.get(b.id as string) ?? {};
      const frame = b.frame as Obj;
      if (b.state === "raised") {
        if (frame.receivedUs !== b.sinceUs)
          bad.push(`${where}: raised, but sinceUs is not its frame's receivedUs`);
        if (b.reason === "missing" && b.value !== null) bad.push(`${where}: missing (NaN/±Inf) with a value`);
        if (ep.raised) bad.push(`${where}: ${String(b.id)} raised twice`);
        ep.raised = b;
      } else {
        if (!ep.raised) bad.push(`${where}: cleared ${String(b.id)} without its raised`);
        else
          for (const f of ["reason", "channel", "channelIndex", "profile", "severity"])
            if (ep.raised[f] !== b[f]) bad.push(`${where}: cleared ${f} differs from its raised`);
        if (ep.cleared) bad.push(`${where}: ${String(b.id)} cleared twice`);
        ep.cleared = b;
      }
      faults.set(b.id as string, ep);
      // device status: "whenever … a sensor fault is raised or cleared" (retained status follows).
      const next = seen.slice(i + 1).find((n) => n.topic === m.topic.replace(/sensor-fault$/, "status"));
      const has = (next?.body.faults as Obj[] | undefined)?.some(
        (f) => f.channel === b.channel && f.reason === b.reason,
      );
      if (!next) bad.push(`${where}: no device status after the fault was ${String(b.state)}`);
      else if (has !== (b.state === "raised"))
        bad.push(
          `${where}: next device status faults ${JSON.stringify(next.body.faults)} do not show ${String(b.channel)} ${String(b.state)}`,
        );
    }

    if (t.kind === "device-status") {
      if ((b.state === "ok") !== (b.reason === "ok")) bad.push(`${where}: state/reason mismatch`);
      const prev = lastStatus.get(device);
      if (prev && (b.withheld as number) < (prev.withheld as number))
        bad.push(`${where}: withheld went down`);
      lastStatus.set(device, b);
    }

    if (t.kind === "status") {
      const off = b.reason === "stop" || b.reason === "will";
      if (off !== (b.state === "offline"))
        bad.push(`${where}: state ${String(b.state)} with reason ${String(b.reason)}`);
      gatewayStatus.push(b); // the first may be the retained `online` of the start
    }

    if (t.kind === "gateway-alert") {
      if (b.id !== `${String(b.kind)}-${String(b.sinceUs)}`)
        bad.push(`${where}: id is not {kind}-{raisedAtUs}`);
      if ("receipt" in b) bad.push(`${where}: gateway alerts carry no receipt`);
    }

    if (t.kind === "reading") {
      const ch = b.channels as string[] | null;
      const values = b.values as (number | null)[];
      if (ch !== null && ch.length !== values.length)
        bad.push(`${where}: channels and values differ in length`);
      if (b.time !== iso(b.timestampUs as number)) bad.push(`${where}: time is not timestampUs`);
      // "the shortest decimal that reads back as the same float32"
      for (const x of values)
        if (x !== null && x !== shortestF32(x))
          bad.push(`${where}: ${x} is not the shortest float32 decimal`);
      const prev = lastReading.get(device);
      if (prev && (b.receivedUs as number) <= (prev.receivedUs as number))
        bad.push(`${where}: readings not in arrival order`);
      // At most one per device per readingsIntervalMs (generous slack for delivery jitter).
      const prevAt = lastReadingAt.get(device);
      if (prevAt !== undefined && m.at - prevAt < o.readingsIntervalMs / 2)
        bad.push(`${where}: readings ${m.at - prevAt} ms apart, interval ${o.readingsIntervalMs} ms`);
      lastReadingAt.set(device, m.at);
      lastReading.set(device, b);
    }
  });

  // "when the gateway first sees the device": every device with traffic has a device status.
  for (const d of devicesSeen)
    if (!lastStatus.has(d)) bad.push(`device ${d}: traffic but no device status (published when first seen)`);
  for (const [id, ep] of faults) if (!ep.raised) bad.push(`sensor fault ${id}: never raised`);
  if (gatewayStatus.length > 0 && gatewayStatus[0]!.reason !== "start")
    bad.push(`first gateway status is ${String(gatewayStatus[0]!.reason)}, not start`);
  // Every model named by a device message is a live model of the gateway status, serving the profile.
  const live = (gatewayStatus.at(-1)?.models ?? []) as Obj[];
  for (const [where, mdl, profile] of modelsUsed) {
    const s = live.find((x) => x.name === mdl.name && x.version === mdl.version && x.sha256 === mdl.sha256);
    if (!s)
      bad.push(
        `${where}: model ${String(mdl.name)} ${String(mdl.version)} is not in the gateway status models`,
      );
    else if (profile !== undefined && !(s.profiles as string[]).includes(profile))
      bad.push(`${where}: profile ${profile} is not among the profiles of model ${String(mdl.name)}`);
  }
  // Held readings and health go out when their interval ends: the last of each is the last frame.
  for (const [d, r] of lastReading) {
    const h = lastHealth.get(d);
    if (h && (h.lastFrame as Obj).seq !== r.seq)
      bad.push(
        `device ${d}: last reading seq ${String(r.seq)}, last health frame ${String((h.lastFrame as Obj).seq)}`,
      );
  }
  if (o.stopped) {
    const last = gatewayStatus.at(-1);
    if (last?.state !== "offline" || last.reason !== "stop")
      bad.push(`clean stop did not end with offline/stop`);
  }
  return bad;
}

/**
 * Retained topics: a dashboard that connects later receives, with the retain flag, the latest
 * health and status of each device and the gateway status — the same payloads the live
 * dashboard saw last; non-retained kinds never arrive at subscription.
 */
export function checkRetained(live: Seen[], late: Seen[]): string[] {
  const bad: string[] = [];
  const latest = new Map<string, string>();
  for (const m of live) {
    const t = topicKind(m.topic);
    if (typeof t !== "string" && t.retained) latest.set(m.topic, m.raw);
  }
  for (const m of late) {
    const t = topicKind(m.topic);
    if (typeof t === "string") continue;
    if (!t.retained) bad.push(`late dashboard received ${m.topic}, which is not retained`);
    else if (!m.retain) bad.push(`late dashboard: ${m.topic} without the retain flag`);
    else if (latest.get(m.topic) !== m.raw)
      bad.push(`late dashboard: retained ${m.topic} is not the latest live payload`);
  }
  for (const topic of latest.keys())
    if (!late.some((m) => m.topic === topic)) bad.push(`late dashboard: no retained ${topic}`);
  return bad;
}

/**
 * Device status (retained) as the README promises it: one when the gateway first sees the
 * device, and one at every sensor fault raised or cleared (at that fault's frame, showing it).
 * `statuses` from a subscription to device status alone; `faults` from the dashboard.
 */
export function checkDeviceStatusStream(faults: Seen[], statuses: Seen[]): string[] {
  const bad: string[] = [];
  const live = statuses.filter((m) => !m.retain && m.body.type === "device-status");
  const devices = new Set(faults.flatMap((m) => (typeof m.body.device === "string" ? [m.body.device] : [])));
  for (const d of devices)
    if (!live.some((m) => m.body.device === d)) bad.push(`device ${d}: no device status at all`);
  for (const f of faults.filter((m) => m.body.type === "sensor-fault")) {
    const b = f.body;
    const at = live.find(
      (m) => m.body.device === b.device && (m.body.lastFrame as Obj).seq === (b.frame as Obj).seq,
    );
    const shows = (at?.body.faults as Obj[] | undefined)?.some(
      (x) => x.channel === b.channel && x.reason === b.reason,
    );
    if (!at)
      bad.push(
        `${String(b.id)} ${String(b.state)}: no device status at frame ${String((b.frame as Obj).seq)}`,
      );
    else if (shows !== (b.state === "raised"))
      bad.push(`${String(b.id)} ${String(b.state)}: its device status does not show it`);
  }
  return bad;
}
