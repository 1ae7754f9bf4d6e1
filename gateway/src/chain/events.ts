/**
 * Registry events as the gateway's registry watch (watch.ts) reads them: the VigilRegistry and
 * VigilReleases events that change who may send, who may read, the gateway's own status and key,
 * and which releases are installable, decoded into plain JSON-safe objects.
 *
 * A {@link RegistryEventSource} serves them by block range. {@link RpcRegistryEvents} reads them
 * with `eth_getLogs` in bounded windows (logs.ts: never from block 0, the watch starts at the
 * deployment file's `deployBlock`); the fake (fake-events.ts) reads the events {@link FakeChain}
 * records. Both sort by (block, log index).
 */
import { Interface, id as keccakId, type LogDescription } from "ethers";
import { VigilRegistryArtifact, VigilReleasesArtifact } from "../../../contracts/artifacts/index.ts";
import type { Hex } from "../core/hex.ts";
import { DEVICE_STATUS, KEY_TYPES, RELEASE_KINDS, type DeviceStatus, type ReleaseKind } from "./client.ts";
import type { KeyType } from "./keys.ts";
import { scanLogs, type ChainLog } from "./logs.ts";
import type { RpcClient } from "./rpc.ts";

/** Where an event sits on chain. */
export interface EventPosition {
  block: number;
  /** Lowercase 0x block hash. */
  blockHash: string;
  /** Log index within the block. */
  index: number;
}

/** The registry/releases events the watch needs, decoded (addresses and bytes lowercase). */
export type RegistryEventBody =
  | { name: "GatewayRegistered"; gatewayId: Hex; site: Hex; keyType: KeyType | "none"; publicKey: Hex }
  | { name: "GatewayKeyRotated"; gatewayId: Hex; keyEpoch: number; keyType: KeyType | "none"; publicKey: Hex }
  | { name: "GatewayStatusChanged"; gatewayId: Hex; status: DeviceStatus }
  | { name: "SensorRegistered"; gatewayId: Hex; sensorId: number; keyType: KeyType | "none"; publicKey: Hex }
  | { name: "SensorKeyChanged"; gatewayId: Hex; sensorId: number; keyType: KeyType | "none"; publicKey: Hex }
  | { name: "SensorStatusChanged"; gatewayId: Hex; sensorId: number; status: DeviceStatus }
  | { name: "SiteAccessGranted"; site: Hex; reader: Hex; expiresAt: number }
  | { name: "SiteAccessRevoked"; site: Hex; reader: Hex }
  | { name: "GatewayAccessGranted"; gatewayId: Hex; reader: Hex; expiresAt: number }
  | { name: "GatewayAccessRevoked"; gatewayId: Hex; reader: Hex }
  | { name: "RoleGranted"; role: Hex; account: Hex }
  | { name: "RoleRevoked"; role: Hex; account: Hex }
  /** `releaseId` and `version` are decimal strings (uint256 / uint64). */
  | { name: "ReleaseActivated"; releaseId: string; kind: ReleaseKind; target: Hex; version: string }
  | { name: "ReleaseRevoked"; releaseId: string };

export type RegistryEvent = EventPosition & RegistryEventBody;
export type RegistryEventName = RegistryEventBody["name"];

/** Names of the VigilRegistry events the watch reads. */
export const REGISTRY_EVENT_NAMES = [
  "GatewayRegistered",
  "GatewayKeyRotated",
  "GatewayStatusChanged",
  "SensorRegistered",
  "SensorKeyChanged",
  "SensorStatusChanged",
  "SiteAccessGranted",
  "SiteAccessRevoked",
  "GatewayAccessGranted",
  "GatewayAccessRevoked",
  "RoleGranted",
  "RoleRevoked",
] as const satisfies readonly RegistryEventName[];

/** Names of the VigilReleases events the watch reads. */
export const RELEASE_EVENT_NAMES = [
  "ReleaseActivated",
  "ReleaseRevoked",
] as const satisfies readonly RegistryEventName[];

/** The latest block as the source sees it. */
export interface ChainHead {
  number: number;
  hash: string;
}

/** Registry events by block range: the chain (RPC) or the fake. */
export interface RegistryEventSource {
  /** The latest block. Rejects with a ChainError when the chain cannot be reached. */
  head(): Promise<ChainHead>;
  /** Hash of block `n` (lowercase), or undefined when the chain has no such block. */
  blockHash(n: number): Promise<string | undefined>;
  /** Every watched event with `from ≤ block ≤ to`, sorted by (block, index). */
  events(from: number, to: number): Promise<RegistryEvent[]>;
  close(): void;
}

const registryIface = new Interface(VigilRegistryArtifact.abi as never);
const releasesIface = new Interface(VigilReleasesArtifact.abi as never);

function topicsOf(iface: Interface, names: readonly string[]): string[] {
  return names.map((n) => {
    const ev = iface.getEvent(n);
    if (!ev) throw new Error(`the ABI has no event ${n}`);
    return ev.topicHash.toLowerCase();
  });
}

const lower = (v: unknown): Hex => String(v).toLowerCase() as Hex;
const keyType = (v: unknown): KeyType | "none" => KEY_TYPES[Number(v)] ?? "none";
const status = (v: unknown): DeviceStatus => DEVICE_STATUS[Number(v)] ?? "none";

/** Decodes one parsed log into an event body (undefined for an event the watch does not read). */
export function decodeRegistryLog(d: LogDescription): RegistryEventBody | undefined {
  const a = d.args;
  switch (d.name) {
    case "GatewayRegistered":
      return {
        name: d.name,
        gatewayId: lower(a[0]),
        site: lower(a[1]),
        keyType: keyType(a[2]),
        publicKey: lower(a[3]),
      };
    case "GatewayKeyRotated":
      return {
        name: d.name,
        gatewayId: lower(a[0]),
        keyEpoch: Number(a[1]),
        keyType: keyType(a[2]),
        publicKey: lower(a[3]),
      };
    case "GatewayStatusChanged":
      return { name: d.name, gatewayId: lower(a[0]), status: status(a[1]) };
    case "SensorRegistered":
    case "SensorKeyChanged":
      return {
        name: d.name,
        gatewayId: lower(a[0]),
        sensorId: Number(a[1]),
        keyType: keyType(a[2]),
        publicKey: lower(a[3]),
      };
    case "SensorStatusChanged":
      return { name: d.name, gatewayId: lower(a[0]), sensorId: Number(a[1]), status: status(a[2]) };
    case "SiteAccessGranted":
      return { name: d.name, site: lower(a[0]), reader: lower(a[1]), expiresAt: Number(a[2]) };
    case "SiteAccessRevoked":
      return { name: d.name, site: lower(a[0]), reader: lower(a[1]) };
    case "GatewayAccessGranted":
      return { name: d.name, gatewayId: lower(a[0]), reader: lower(a[1]), expiresAt: Number(a[2]) };
    case "GatewayAccessRevoked":
      return { name: d.name, gatewayId: lower(a[0]), reader: lower(a[1]) };
    case "RoleGranted":
    case "RoleRevoked":
      return { name: d.name, role: lower(a[0]), account: lower(a[1]) };
    case "ReleaseActivated":
      return {
        name: d.name,
        releaseId: String(a[0]),
        kind: RELEASE_KINDS[Number(a[1])] ?? "model",
        target: lower(a[2]),
        version: String(a[3]),
      };
    case "ReleaseRevoked":
      return { name: d.name, releaseId: String(a[0]) };
    default:
      return undefined;
  }
}

function decode(iface: Interface, l: ChainLog): RegistryEvent | undefined {
  let parsed: LogDescription | null;
  try {
    parsed = iface.parseLog({ topics: l.topics, data: l.data });
  } catch {
    return undefined; // not one of ours (or malformed): ignored, as the filter already excludes it
  }
  const body = parsed ? decodeRegistryLog(parsed) : undefined;
  return body ? { block: l.blockNumber, blockHash: l.blockHash, index: l.index, ...body } : undefined;
}

export interface RpcRegistryEventsOptions {
  rpc: RpcClient;
  registry: string;
  releases: string;
  /** Largest block range per eth_getLogs (chain.logBlockRange). Default 10 000. */
  maxRange?: number;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Registry events over JSON-RPC: two bounded eth_getLogs walks (registry, releases) per range. */
export class RpcRegistryEvents implements RegistryEventSource {
  readonly #o: RpcRegistryEventsOptions;
  readonly #registryTopics = topicsOf(registryIface, REGISTRY_EVENT_NAMES);
  readonly #releaseTopics = topicsOf(releasesIface, RELEASE_EVENT_NAMES);

  constructor(o: RpcRegistryEventsOptions) {
    this.#o = o;
  }

  async head(): Promise<ChainHead> {
    const b = await this.#o.rpc.request<{ number: string; hash: string } | null>("eth_getBlockByNumber", [
      "latest",
      false,
    ]);
    if (!b) throw new Error("eth_getBlockByNumber(latest) returned null");
    return { number: Number(BigInt(b.number)), hash: b.hash.toLowerCase() };
  }

  async blockHash(n: number): Promise<string | undefined> {
    const b = await this.#o.rpc.request<{ hash: string } | null>("eth_getBlockByNumber", [hex(n), false]);
    return b?.hash.toLowerCase();
  }

  async events(from: number, to: number): Promise<RegistryEvent[]> {
    if (to < from) return [];
    const range = {
      fromBlock: from,
      toBlock: to,
      ...(this.#o.maxRange ? { maxRange: this.#o.maxRange } : {}),
    };
    const [reg, rel] = await Promise.all([
      scanLogs(this.#o.rpc, { address: this.#o.registry, topics: [this.#registryTopics] }, range),
      scanLogs(this.#o.rpc, { address: this.#o.releases, topics: [this.#releaseTopics] }, range),
    ]);
    const out: RegistryEvent[] = [];
    for (const l of reg) {
      const e = decode(registryIface, l);
      if (e) out.push(e);
    }
    for (const l of rel) {
      const e = decode(releasesIface, l);
      if (e) out.push(e);
    }
    return out.sort((a, b) => a.block - b.block || a.index - b.index);
  }

  close(): void {
    // The RPC pool belongs to the caller.
  }
}

/** keccak256("VIGIL_AUDITOR"): the auditor role id (RoleGranted/RoleRevoked `role`). */
export const AUDITOR_ROLE_ID = keccakId("VIGIL_AUDITOR").toLowerCase() as Hex;
