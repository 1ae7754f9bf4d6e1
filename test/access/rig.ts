/**
 * An access-control rig: Ingest (registry admission) over a MemorySink, the embedded broker with
 * the registry policy, a registry view built from events (the registry watch's job in the
 * product), a device password file and reader keys.
 */
import { Wallet } from "ethers";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { RegistryAdmission } from "../../gateway/src/access/admission.ts";
import { RegistryBrokerPolicy } from "../../gateway/src/access/broker-policy.ts";
import { hashPassword, PasswordFile } from "../../gateway/src/access/passwords.ts";
import { mintReaderToken } from "../../gateway/src/access/reader-token.ts";
import type { StalePolicy } from "../../gateway/src/access/registry-state.ts";
import { vigilDomain, type VigilDomain } from "../../gateway/src/chain/eip712.ts";
import type { RegistryEventBody } from "../../gateway/src/chain/events.ts";
import { RegistryView } from "../../gateway/src/chain/registry-view.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { generateKey, registrationPublicKey } from "../../gateway/src/chain/keys.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { EmbeddedBroker, type EmbeddedBrokerOptions } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import type { BrokerLimits } from "../../gateway/src/ingest/mqtt/policy.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";

export const GW: Hex = `0x${"11".repeat(32)}`;
export const OTHER_GW: Hex = `0x${"22".repeat(32)}`;
export const SITE: Hex = `0x${"33".repeat(32)}`;
export const REGISTRY = "0x00000000000000000000000000000000000f1a4e";
export const DOMAIN: VigilDomain = vigilDomain(31337, REGISTRY);
export const SITE_NAME = "site-1";
export const GW_NAME = "gw-1";
/** Sensors 0x0a and 0x0b are registered and active; 0x0c has credentials but is not registered. */
export const DEV_A = 0x0a;
export const DEV_B = 0x0b;
export const DEV_UNREG = 0x0c;
export const SECRET = "correct horse";
/** Sensors with keys registered in the registry (device tokens instead of passwords). */
export const DEV_K1 = 0x0d;
export const DEV_P256 = 0x0f;
export const KEY_K1 = generateKey("secp256k1");
export const KEY_P256 = generateKey("p256");

export const hex8 = (n: number): string => n.toString(16).padStart(8, "0");

export function dataFrame(deviceId: number, seq: number): Buffer {
  return encodeFrame({
    type: FrameType.Data,
    deviceId,
    seq,
    timestampUs: 0,
    flags: 0,
    values: Float32Array.of(seq),
  });
}

export function helloFrame(deviceId: number): Buffer {
  return encodeFrame({
    type: FrameType.Hello,
    deviceId,
    bootId: 7,
    firmware: { major: 1, minor: 0, patch: 0 },
    profile: "forged",
    channels: [{ name: "x", unit: 0 }],
  });
}

/** A reader's key pair. */
export interface Key {
  address: string;
  privateKey: string;
}

export interface AccessRig {
  sink: MemorySink;
  ingest: Ingest;
  broker: EmbeddedBroker;
  policy: RegistryBrokerPolicy;
  state: { view: RegistryView; stale: boolean };
  url: string;
  reader: Key;
  auditor: Key;
  stranger: Key;
  /** Applies registry events to a copy of the view and swaps it in (what a refresh does). */
  chain(...events: RegistryEventBody[]): void;
  device(id: number, opts?: IClientOptions): Promise<MqttClient>;
  /** A token for `w`, valid `ttl` seconds, for `domain`/`gateway` (defaults: this gateway). */
  token(
    w: Key,
    ttl?: number,
    domain?: VigilDomain,
    gateway?: Hex,
  ): Promise<{ username: string; password: string }>;
  connect(opts: IClientOptions): Promise<MqttClient>;
  stop(): Promise<void>;
}

export async function accessRig(
  o: {
    limits?: Partial<BrokerLimits>;
    /** EmbeddedBroker maxRefusedHeld (default 1024). */
    maxRefusedHeld?: number;
    stalePolicy?: StalePolicy;
    nowSec?: () => number;
    tls?: EmbeddedBrokerOptions["tls"];
    websocket?: EmbeddedBrokerOptions["websocket"];
    failedLoginBackoffMs?: number;
  } = {},
): Promise<AccessRig> {
  const reader = Wallet.createRandom();
  const auditor = Wallet.createRandom();
  const stranger = Wallet.createRandom();
  const view = new RegistryView(GW);
  const expires = Math.floor(Date.now() / 1000) + 30 * 86_400;
  const initial: RegistryEventBody[] = [
    {
      name: "GatewayRegistered",
      gatewayId: GW,
      site: SITE,
      keyType: "secp256k1",
      publicKey: `0x${"ab".repeat(20)}`,
    },
    { name: "SensorRegistered", gatewayId: GW, sensorId: DEV_A, keyType: "none", publicKey: "0x" },
    { name: "SensorRegistered", gatewayId: GW, sensorId: DEV_B, keyType: "none", publicKey: "0x" },
    {
      name: "SensorRegistered",
      gatewayId: GW,
      sensorId: DEV_K1,
      keyType: "secp256k1",
      publicKey: registrationPublicKey(KEY_K1),
    },
    {
      name: "SensorRegistered",
      gatewayId: GW,
      sensorId: DEV_P256,
      keyType: "p256",
      publicKey: registrationPublicKey(KEY_P256),
    },
    {
      name: "GatewayAccessGranted",
      gatewayId: GW,
      reader: reader.address.toLowerCase() as Hex,
      expiresAt: expires,
    },
    {
      name: "RoleGranted",
      role: (await import("../../gateway/src/chain/events.ts")).AUDITOR_ROLE_ID,
      account: auditor.address.toLowerCase() as Hex,
    },
  ];
  for (const e of initial) view.apply(e);
  const state = { view, stale: false };
  const passwords = new PasswordFile(
    [DEV_A, DEV_B, DEV_UNREG].map((d) => hashPassword(hex8(d), SECRET)).join("\n"),
  );
  const clock = o.nowSec ? { nowMs: () => o.nowSec!() * 1000, nowUs: () => o.nowSec!() * 1e6 } : undefined;
  const policy = new RegistryBrokerPolicy({
    state,
    passwords,
    domain: DOMAIN,
    gatewayId: GW,
    site: SITE_NAME,
    gatewayName: GW_NAME,
    ...(o.stalePolicy ? { stalePolicy: o.stalePolicy } : {}),
    ...(clock ? { clock } : {}),
    ...(o.failedLoginBackoffMs !== undefined ? { failedLoginBackoffMs: o.failedLoginBackoffMs } : {}),
  });
  const sink = new MemorySink();
  const ingest = new Ingest({ sink, admission: new RegistryAdmission(state, o.stalePolicy) });
  const broker = new EmbeddedBroker(ingest, {
    port: 0,
    policy,
    limitLoopback: true,
    ...(o.maxRefusedHeld ? { maxRefusedHeld: o.maxRefusedHeld } : {}),
    // The attack tests open hundreds of connections a second from 127.0.0.1; the connect-rate
    // limit has its own test.
    limits: { maxConnectsPerSecondPerAddress: 1_000_000, ...o.limits },
    ...(o.tls ? { tls: o.tls } : {}),
    ...(o.websocket ? { websocket: o.websocket } : {}),
  });
  await broker.start();
  const url = broker.url;
  const clients: MqttClient[] = [];
  let n = 0;
  const connect = async (opts: IClientOptions): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: `c${n++}`, ...opts });
    clients.push(c);
    return c;
  };
  return {
    sink,
    ingest,
    broker,
    policy,
    state,
    url,
    reader,
    auditor,
    stranger,
    chain(...events) {
      const v = state.view.clone();
      for (const e of events) v.apply(e);
      state.view = v;
    },
    device: (id, opts) => connect({ username: hex8(id), password: SECRET, ...opts }),
    token: (w, ttl = 3600, domain = DOMAIN, gateway = GW) =>
      mintReaderToken(w.privateKey, domain, gateway, Math.floor((o.nowSec?.() ?? Date.now() / 1000) + ttl)),
    connect,
    async stop() {
      for (const c of clients) c.end(true);
      await broker.stop();
    },
  };
}

/** The CONNACK return code of a refused connection (mqtt.js rejects connectAsync with it). */
export async function connackCode(url: string, opts: IClientOptions): Promise<number> {
  try {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...opts });
    c.end(true);
    return 0;
  } catch (e) {
    return (e as { code?: number }).code ?? -1;
  }
}

/** Resolves when the client's connection closes. */
export function closed(c: MqttClient): Promise<void> {
  return new Promise((res) => {
    if (!c.connected) return res();
    c.once("close", () => res());
  });
}

/** The SUBACK return codes for `filters` (mqtt.js rejects when one is 0x80; the packet carries them all). */
export async function subackCodes(c: MqttClient, filters: string[], qos: 0 | 1 = 1): Promise<number[]> {
  try {
    return (await c.subscribeAsync(filters, { qos })).map((g) => g.qos);
  } catch (e) {
    const granted = (e as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw e;
    return granted;
  }
}
