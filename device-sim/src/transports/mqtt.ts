/**
 * MQTT transport: each device publishes its binary frames on vigil/v1/ingest/{id} at QoS 1
 * and treats the PUBACK as the acknowledgement (the gateway's embedded broker answers only
 * once the frame is durable). NACKs arrive on vigil/v1/ingest/{id}/nack; the gateway PUBACKs a
 * refused frame too and then NACKs it, so the device (SimDevice.onNack) takes such a PUBACK back.
 *
 * It resends only as MQTT allows: a PUBLISH awaiting its PUBACK is never published again on the
 * same connection. The sessions are clean (CleanSession = 1), so nothing survives a lost
 * connection ([MQTT-3.1.2-6]): when the connection drops, the transport ends that client, every
 * frame it owned is the device's again (republished by the device's resend timer, duplicates are
 * the gateway's to drop), and a new client connects every 500 ms until the broker answers; then
 * `onReconnected` lets the devices say HELLO again, as after any reconnect. (mqtt.js
 * would otherwise replay its outgoing store one PUBLISH per round trip after a reconnect, and it
 * stalls for good when a packet id of that store was handed out again meanwhile.) Packet ids are
 * allocated uniquely (mqtt.js's default provider reuses ids still in flight after 65,535
 * publications, and a PUBACK then acknowledged the wrong frame: the mismatch seen at 19k
 * frames/s); at most `maxInflight` PUBLISHes are outstanding per connection.
 *
 * A connection that fails keeps its cause ({@link connectFailure}): a refused connection is
 * retried until `connectTimeoutMs` (the gateway may be starting; `onConnectRetry` hears why), a
 * host that does not resolve, a server that does not speak MQTT and a broker that refuses the
 * CONNECT end the attempt at once. Every connection also subscribes to the gateways' retained
 * status (`vigil/v1/+/+/status`, gateway/src/alerts/README.md): a plain broker with no gateway
 * behind it PUBACKs every frame, and {@link MqttTransport.gatewayStatus} tells the two apart.
 * With a device's credentials (user name = its 8 hex digits; registry access control) it
 * subscribes to that device's NACKs only, and the status subscription may be refused.
 */
import mqtt, { UniqueMessageIdProvider, type MqttClient } from "mqtt";
import { redactUrl } from "../../../gateway/src/core/errors.ts";
import { decodeFrame, deviceIdHex, type Frame } from "../../../gateway/src/protocol/frame.ts";
import { INGEST_TOPIC_PREFIX, TOPIC_ROOT } from "../../../gateway/src/protocol/topics.ts";
import type { Transport } from "./types.ts";
import { SimError } from "../errors.ts";

export interface MqttTransportOptions {
  url: string;
  clientId?: string;
  username?: string;
  password?: string;
  /** Give up connecting after this long. Default 30 000 ms. */
  connectTimeoutMs?: number;
  /** PUBLISHes awaiting their PUBACK on the connection, at most. Default 30,000 (ids are 1..65,535). */
  maxInflight?: number;
  /**
   * Called when a connection attempt fails and the transport will try again (every 500 ms until
   * `connectTimeoutMs`), with the cause and its fix, e.g. "connection refused (nothing listens on
   * 127.0.0.1:1883); …": once per distinct cause.
   */
  onConnectRetry?: (cause: string) => void;
}

/** The gateways' retained status topics (gateway/src/alerts/README.md): `vigil/v1/{site}/{gateway}/status`. */
export const GATEWAY_STATUS_SUBSCRIPTION = `${TOPIC_ROOT}/+/+/status`;
const GATEWAY_STATUS_TOPIC = new RegExp(`^${TOPIC_ROOT}/[^/]+/[^/]+/status$`);

/** The port a URL without one connects to, by scheme. */
const DEFAULT_PORTS: Record<string, number> = {
  "mqtt:": 1883,
  "tcp:": 1883,
  "mqtts:": 8883,
  "ws:": 80,
  "wss:": 443,
};

/** Where `vigil start` names its broker. */
const BROKER_HINT = 'is "vigil start" running? It logs its broker as mqtt in "gateway started"';

/**
 * Why a connection attempt failed, in words, and whether trying again can help: a refused
 * connection (the gateway may be starting) or a lost one can; an unknown host, a server that
 * answers but not in MQTT, and a broker that refuses the CONNECT cannot.
 */
export function connectFailure(e: unknown, url: string): { cause: string; retry: boolean } {
  const err = e as Error & { code?: string | number };
  const msg = String(err?.message ?? e);
  let where: string;
  try {
    const u = new URL(url);
    where = `${u.hostname}:${u.port || DEFAULT_PORTS[u.protocol] || 1883}`;
  } catch {
    where = redactUrl(url);
  }
  if (err instanceof SimError && err.code === "SIM_SUBSCRIBE") return { cause: msg, retry: false };
  if (err?.code === "ECONNREFUSED")
    return { cause: `connection refused (nothing listens on ${where}); ${BROKER_HINT}`, retry: true };
  if (err?.code === "ENOTFOUND")
    return { cause: `host not found (${where}); check the host name in --mqtt`, retry: false };
  if (err?.code === "EAI_AGAIN")
    return { cause: `host name lookup failed for now (${where}); check the network and DNS`, retry: true };
  // mqtt.js: a CONNACK with a refusal code (4 bad user name or password, 5 not authorized, …).
  if (/^Connection refused: /.test(msg))
    return {
      cause: `the broker refused the connection (${msg.replace(/^Connection refused: /, "")}); a broker with access control (vigil start --mqtt-auth registry) needs credentials in the URL, mqtt://USER:PASSWORD@HOST:PORT`,
      retry: false,
    };
  // Bytes that do not parse as MQTT (an HTTP or SSH port answers something else).
  if (
    /Invalid header flag bits|Invalid (packet|length|protocol)|not supported|Malformed|Unknown packet/i.test(
      msg,
    )
  )
    return {
      cause: `not an MQTT broker: ${where} answered, but not in MQTT; --mqtt must name the broker's port (${BROKER_HINT}), not e.g. its HTTP port`,
      retry: false,
    };
  if (/connack timeout/i.test(msg))
    return {
      cause: `no MQTT answer (CONNACK) from ${where} within 5 s: not an MQTT broker, or one that does not answer; ${BROKER_HINT}`,
      retry: true,
    };
  if (/connection closed before CONNACK/.test(msg))
    return { cause: `${where} closed the connection before answering in MQTT; ${BROKER_HINT}`, retry: true };
  const code = typeof err?.code === "string" ? ` (${err.code})` : "";
  return { cause: `${msg.replace(/^Error: /, "")}${code}`, retry: true };
}

/** The user name in a broker URL, decoded ("" when it has none or does not parse). */
export function urlUsername(url: string): string {
  try {
    return decodeURIComponent(new URL(url).username);
  } catch {
    return "";
  }
}

/**
 * The device id a user name names, when it is one: 8 hex digits, as the gateway's registry
 * access control expects of a sensor (gateway/src/access/README.md). Undefined otherwise.
 */
export function deviceOfUsername(username: string): number | undefined {
  return /^[0-9a-f]{8}$/i.test(username) ? Number.parseInt(username, 16) : undefined;
}

/**
 * The NACK subscription: every device's (`vigil/v1/ingest/+/nack`), or only its own when the
 * user name is a device's (registry access control lets a device read nothing else).
 */
export function nackSubscription(username: string): string {
  const dev = deviceOfUsername(username);
  return `${INGEST_TOPIC_PREFIX}${dev === undefined ? "+" : deviceIdHex(dev)}/nack`;
}

/** Why the NACK subscription was refused, and the fix. */
function nackRefused(filter: string, e: unknown): string {
  // mqtt.js names a 3.1.1 refusal (return code 0x80) "Unspecified error"; its SUBACK says what came.
  const granted = (e as { packet?: { granted?: unknown } })?.packet?.granted;
  const code = Array.isArray(granted) ? granted.find((g) => typeof g === "number" && g >= 0x80) : undefined;
  const why =
    typeof code === "number" ? `SUBACK 0x${code.toString(16)}` : ((e as Error)?.message ?? String(e));
  return `the broker refused the subscription to ${filter} (${why}): a broker with access control lets a device read only its own NACKs and publish only its own frames; give one device's credentials in the URL, mqtt://DEVICE_ID:SECRET@HOST:PORT (DEVICE_ID its 8 hex digits), and run one vigil sim per device`;
}

export class MqttTransport implements Transport {
  readonly name = "mqtt";
  #client: MqttClient | undefined;
  #onControl: ((f: Frame) => void) | undefined;
  #connected = false;
  /** (device, seq) of DATA frames whose PUBLISH awaits its PUBACK on the current connection. */
  readonly #inflight = new Set<string>();
  /** Connection generation: a callback of an ended client must not touch the next one's state. */
  #generation = 0;
  #closing = false;
  #retry: NodeJS.Timeout | undefined;
  /** PUBLISH → PUBACK times (ms) since the last takeAckLatencies(), grown as needed. */
  #lat = new Float64Array(4096);
  #latN = 0;
  /** Sends refused because the in-flight window was full (the device keeps the frame). */
  windowFull = 0;
  onDelivered?: (deviceId: number, seq: number) => void;
  onReconnected?: () => void;
  /**
   * The gateways whose retained status (`vigil/v1/{site}/{gateway}/status`) this broker delivered
   * since the transport opened: topic → `state` (`online`, `offline`). Empty: no gateway has
   * published here (a plain broker: its PUBACKs say nothing about storage), or its status has
   * not arrived yet (it comes right after the subscription).
   */
  readonly gatewayStatus = new Map<string, string>();
  /**
   * False when the broker refused the subscription to the gateways' status (a device's
   * credentials): `gatewayStatus` then says nothing either way.
   */
  statusReadable = true;

  constructor(private readonly opts: MqttTransportOptions) {}

  get connected(): boolean {
    return this.#connected;
  }

  async open(onControl: (f: Frame) => void): Promise<void> {
    this.#onControl = onControl;
    await this.reconnect();
  }

  async reconnect(): Promise<void> {
    this.#drop();
    this.#closing = false;
    const deadline = Date.now() + (this.opts.connectTimeoutMs ?? 30_000);
    let told = "";
    // Like a device, keep trying while the broker is down; give up only after connectTimeoutMs.
    // A failure that no retry can mend (unknown host, not MQTT, CONNECT refused) ends it at once.
    for (;;) {
      try {
        await this.#connect();
        return;
      } catch (e) {
        const why = connectFailure(e, this.opts.url);
        if (!why.retry)
          throw new SimError(
            "SIM_CONNECT",
            `no MQTT connection to ${redactUrl(this.opts.url)}: ${why.cause}`,
            {
              cause: e,
            },
          );
        if (why.cause !== told) {
          told = why.cause;
          this.opts.onConnectRetry?.(why.cause);
        }
        if (Date.now() >= deadline)
          throw new SimError(
            "SIM_CONNECT",
            `no MQTT connection to ${redactUrl(this.opts.url)} within ${this.opts.connectTimeoutMs ?? 30_000} ms`,
            { cause: e },
          );
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** One connection attempt: a new client, a clean session, the NACK subscription. */
  async #connect(): Promise<void> {
    const client = mqtt.connect(this.opts.url, {
      clientId: this.opts.clientId ?? `vigil-sim-${process.pid}`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      messageIdProvider: new UniqueMessageIdProvider(),
      ...(this.opts.username ? { username: this.opts.username } : {}),
      ...(this.opts.password ? { password: this.opts.password } : {}),
    });
    // Before the subscription: a retained status may arrive in the same read as the SUBACK.
    client.on("message", (topic, payload) => {
      if (GATEWAY_STATUS_TOPIC.test(topic)) {
        this.#noteGatewayStatus(topic, payload);
        return;
      }
      try {
        this.#onControl?.(decodeFrame(payload));
      } catch {
        // A malformed control frame is ignored; the resend timer covers what it would have said.
      }
    });
    try {
      await new Promise<void>((res, rej) => {
        client.once("connect", () => res());
        client.once("error", rej);
        client.once("close", () => rej(new SimError("SIM_CONNECT", "connection closed before CONNACK")));
      });
      const nack = nackSubscription(this.#username());
      await client.subscribeAsync({ [nack]: { qos: 1 } }).catch((e: unknown) => {
        throw new SimError("SIM_SUBSCRIBE", nackRefused(nack, e), { cause: e });
      });
      // A device's credentials may read only its own NACKs (gateway/src/access/README.md): the
      // status subscription is refused (SUBACK 0x80), and then nothing is known about the gateway.
      this.statusReadable = await client.subscribeAsync({ [GATEWAY_STATUS_SUBSCRIPTION]: { qos: 0 } }).then(
        () => true,
        () => false,
      );
    } catch (e) {
      client.end(true);
      throw e;
    }
    client.on("error", () => undefined); // followed by "close", handled there
    client.once("close", () => {
      if (this.#client !== client || this.#closing) return;
      this.#drop();
      const retry = (): void => {
        this.#retry = undefined;
        if (this.#closing) return;
        this.#connect().then(
          () => {
            if (!this.#closing) this.onReconnected?.();
          },
          () => {
            if (!this.#closing) this.#retry = setTimeout(retry, 500);
          },
        );
      };
      this.#retry = setTimeout(retry, 500);
    });
    this.#generation++;
    this.#client = client;
    this.#connected = true;
  }

  /** The user name the broker sees: the option, else the URL's. */
  #username(): string {
    return this.opts.username || urlUsername(this.opts.url);
  }

  /** A gateway's retained status: its `state` (an empty payload clears a retained message). */
  #noteGatewayStatus(topic: string, payload: Buffer): void {
    if (payload.length === 0) {
      this.gatewayStatus.delete(topic);
      return;
    }
    try {
      const state = (JSON.parse(payload.toString("utf8")) as { state?: unknown }).state;
      this.gatewayStatus.set(topic, typeof state === "string" ? state : "unknown");
    } catch {
      this.gatewayStatus.set(topic, "unknown");
    }
  }

  /** Ends the current client (if any); what it owned is the devices' to resend. */
  #drop(): void {
    const c = this.#client;
    this.#client = undefined;
    this.#connected = false;
    this.#generation++;
    this.#inflight.clear();
    c?.end(true);
  }

  /** True while the PUBLISH of (device, seq) awaits its PUBACK: the session owns it. */
  inFlight(deviceId: number, seq: number): boolean {
    return this.#inflight.has(`${deviceId}:${seq}`);
  }

  send(deviceId: number, raw: Uint8Array, seq?: number, opts: { force?: boolean } = {}): boolean {
    const client = this.#client;
    if (!client || !this.#connected) return false;
    const key = seq === undefined ? undefined : `${deviceId}:${seq}`;
    if (key !== undefined && !opts.force) {
      if (this.#inflight.has(key)) return false; // the session still owns it and will deliver it
      if (this.#inflight.size >= (this.opts.maxInflight ?? 30_000)) {
        this.windowFull++;
        return false;
      }
    }
    if (key !== undefined) this.#inflight.add(key);
    const gen = this.#generation;
    const t0 = performance.now();
    client.publish(`${INGEST_TOPIC_PREFIX}${deviceIdHex(deviceId)}`, Buffer.from(raw), { qos: 1 }, (err) => {
      if (gen !== this.#generation) return; // an ended connection's callback
      if (key !== undefined) this.#inflight.delete(key);
      if (!err && seq !== undefined) {
        this.#noteLatency(performance.now() - t0);
        this.onDelivered?.(deviceId, seq);
      }
    });
    return true;
  }

  takeAckLatencies(): Float64Array {
    const out = this.#lat.slice(0, this.#latN);
    this.#latN = 0;
    return out;
  }

  #noteLatency(ms: number): void {
    if (this.#latN === this.#lat.length) {
      const grown = new Float64Array(this.#lat.length * 2);
      grown.set(this.#lat);
      this.#lat = grown;
    }
    this.#lat[this.#latN++] = ms;
  }

  sendNoise(deviceId: number, bytes: Uint8Array): void {
    this.#client?.publish(`${INGEST_TOPIC_PREFIX}${deviceIdHex(deviceId)}`, Buffer.from(bytes), { qos: 1 });
  }

  async drain(): Promise<void> {
    // mqtt.js keeps its own outgoing queue; nothing to flush at this layer.
  }

  async disconnect(): Promise<void> {
    // A new connection is a new (clean) session: what the old one owned must be resent.
    this.#closing = true;
    clearTimeout(this.#retry);
    this.#drop();
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#retry);
    // Forced: by now every frame is acknowledged or given up.
    this.#drop();
  }
}
