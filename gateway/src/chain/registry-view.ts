/**
 * What one gateway needs to know from the registry, folded from its events (events.ts): its own
 * status, site and key; the sensor nodes registered under it with status and key; reader grants
 * (on the gateway, on every site — a site grant may precede the gateway's registration), the
 * auditor role holders; and activated/revoked releases.
 *
 * Every lookup the edge makes per message is a Map/Set lookup (O(1)). The view records which
 * entries changed since {@link RegistryView.takeChanges}, so the watch persists only those
 * (store/registry-cache.ts), in one atomic write with the block it processed.
 */
import type { Hex } from "../core/hex.ts";
import type { DeviceStatus, ReleaseKind } from "./client.ts";
import { AUDITOR_ROLE_ID, type RegistryEventBody } from "./events.ts";
import type { KeyType } from "./keys.ts";

export interface GatewayEntry {
  status: DeviceStatus;
  site: Hex;
  keyType: KeyType | "none";
  /** Registry encoding: 20-byte address (secp256k1) or 64-byte x‖y (P-256). */
  publicKey: Hex;
  keyEpoch: number;
}

export interface SensorEntry {
  status: Exclude<DeviceStatus, "none">;
  keyType: KeyType | "none";
  /** As registered ("0x" when none). */
  publicKey: Hex;
}

export interface ReleaseEntry {
  kind: ReleaseKind;
  target: Hex;
  /** Decimal uint64. */
  version: string;
  status: "active" | "revoked";
}

/** One persisted entry: `kind` names the map, `id` the key within it, `value` is JSON (undefined = deleted). */
export interface ViewEntry {
  kind: ViewKind;
  id: string;
  value: unknown;
}

/**
 * Persisted maps: `g` the gateway (id = gatewayId), `s` sensors (id = 8-hex sensor id), `t` site
 * grants (id = site/reader, value = expiresAt), `w` gateway grants (id = reader), `a` auditors
 * (id = account, value = true), `r` releases (id = decimal release id).
 */
export type ViewKind = "g" | "s" | "t" | "w" | "a" | "r";

/** The reader's standing now: allowed, until when (unix seconds; Infinity for auditors), as auditor. */
export interface ReaderStanding {
  allowed: boolean;
  auditor: boolean;
  /** Unix seconds until which the grant holds (0 when none; Infinity for an auditor). */
  until: number;
}

const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, "0");

export class RegistryView {
  readonly gatewayId: Hex;
  gateway: GatewayEntry | undefined;
  readonly sensors = new Map<number, SensorEntry>();
  /** `${site}/${reader}` → expiresAt. */
  readonly siteGrants = new Map<string, number>();
  /** reader → expiresAt of its grant on this gateway. */
  readonly gatewayGrants = new Map<Hex, number>();
  readonly auditors = new Set<Hex>();
  readonly releases = new Map<string, ReleaseEntry>();
  /** Events applied since construction (changes the view's identity for listeners). */
  version = 0;
  readonly #changes = new Map<string, ViewEntry>();

  constructor(gatewayId: Hex) {
    this.gatewayId = gatewayId.toLowerCase() as Hex;
  }

  /** A deep copy (changes not carried over). */
  clone(): RegistryView {
    const v = new RegistryView(this.gatewayId);
    v.gateway = this.gateway ? { ...this.gateway } : undefined;
    for (const [k, s] of this.sensors) v.sensors.set(k, { ...s });
    for (const [k, e] of this.siteGrants) v.siteGrants.set(k, e);
    for (const [k, e] of this.gatewayGrants) v.gatewayGrants.set(k, e);
    for (const a of this.auditors) v.auditors.add(a);
    for (const [k, r] of this.releases) v.releases.set(k, { ...r });
    v.version = this.version;
    return v;
  }

  #changed(kind: ViewKind, id: string, value: unknown): void {
    this.#changes.set(`${kind}:${id}`, { kind, id, value });
  }

  /** Entries changed since the last call (and forgets them). */
  takeChanges(): ViewEntry[] {
    const out = [...this.#changes.values()];
    this.#changes.clear();
    return out;
  }

  /** Applies one event; returns true when the view changed. Events of other gateways are ignored. */
  apply(e: RegistryEventBody): boolean {
    const changed = this.#apply(e);
    if (changed) this.version++;
    return changed;
  }

  #apply(e: RegistryEventBody): boolean {
    const me = this.gatewayId;
    switch (e.name) {
      case "GatewayRegistered":
        if (e.gatewayId !== me) return false;
        this.gateway = {
          status: "active",
          site: e.site,
          keyType: e.keyType,
          publicKey: e.publicKey,
          keyEpoch: 0,
        };
        this.#changed("g", me, this.gateway);
        return true;
      case "GatewayKeyRotated":
        if (e.gatewayId !== me || !this.gateway) return false;
        this.gateway = { ...this.gateway, keyType: e.keyType, publicKey: e.publicKey, keyEpoch: e.keyEpoch };
        this.#changed("g", me, this.gateway);
        return true;
      case "GatewayStatusChanged":
        if (e.gatewayId !== me || !this.gateway) return false;
        this.gateway = { ...this.gateway, status: e.status };
        this.#changed("g", me, this.gateway);
        return true;
      case "SensorRegistered":
      case "SensorKeyChanged": {
        if (e.gatewayId !== me) return false;
        const prev = this.sensors.get(e.sensorId);
        const s: SensorEntry = {
          status: e.name === "SensorRegistered" ? "active" : (prev?.status ?? "active"),
          keyType: e.keyType,
          publicKey: e.publicKey,
        };
        this.sensors.set(e.sensorId, s);
        this.#changed("s", hex8(e.sensorId), s);
        return true;
      }
      case "SensorStatusChanged": {
        if (e.gatewayId !== me || e.status === "none") return false;
        const prev = this.sensors.get(e.sensorId);
        const s: SensorEntry = { keyType: "none", publicKey: "0x", ...prev, status: e.status };
        this.sensors.set(e.sensorId, s);
        this.#changed("s", hex8(e.sensorId), s);
        return true;
      }
      case "SiteAccessGranted": {
        const k = `${e.site}/${e.reader}`;
        this.siteGrants.set(k, e.expiresAt);
        this.#changed("t", k, e.expiresAt);
        return true;
      }
      case "SiteAccessRevoked": {
        const k = `${e.site}/${e.reader}`;
        if (!this.siteGrants.delete(k)) return false;
        this.#changed("t", k, undefined);
        return true;
      }
      case "GatewayAccessGranted":
        if (e.gatewayId !== me) return false;
        this.gatewayGrants.set(e.reader, e.expiresAt);
        this.#changed("w", e.reader, e.expiresAt);
        return true;
      case "GatewayAccessRevoked":
        if (e.gatewayId !== me || !this.gatewayGrants.delete(e.reader)) return false;
        this.#changed("w", e.reader, undefined);
        return true;
      case "RoleGranted":
        if (e.role !== AUDITOR_ROLE_ID || this.auditors.has(e.account)) return false;
        this.auditors.add(e.account);
        this.#changed("a", e.account, true);
        return true;
      case "RoleRevoked":
        if (e.role !== AUDITOR_ROLE_ID || !this.auditors.delete(e.account)) return false;
        this.#changed("a", e.account, undefined);
        return true;
      case "ReleaseActivated": {
        const r: ReleaseEntry = { kind: e.kind, target: e.target, version: e.version, status: "active" };
        this.releases.set(e.releaseId, r);
        this.#changed("r", e.releaseId, r);
        return true;
      }
      case "ReleaseRevoked": {
        const prev = this.releases.get(e.releaseId);
        if (!prev) return false; // never activated: nothing installable to withdraw
        const r: ReleaseEntry = { ...prev, status: "revoked" };
        this.releases.set(e.releaseId, r);
        this.#changed("r", e.releaseId, r);
        return true;
      }
    }
  }

  /** Registry status of sensor `id` ("none" when not registered under this gateway). */
  sensorStatus(id: number): DeviceStatus {
    return this.sensors.get(id)?.status ?? "none";
  }

  /**
   * Whether `reader` may read this gateway's data at `nowSec` (unix seconds): it holds the auditor
   * role, or an unexpired grant on the gateway or on its site — VigilRegistry.isReaderAllowed.
   */
  reader(reader: Hex, nowSec: number): ReaderStanding {
    const r = reader.toLowerCase() as Hex;
    if (this.auditors.has(r)) return { allowed: true, auditor: true, until: Infinity };
    if (!this.gateway || this.gateway.status === "none") return { allowed: false, auditor: false, until: 0 };
    const until = Math.max(
      this.gatewayGrants.get(r) ?? 0,
      this.siteGrants.get(`${this.gateway.site}/${r}`) ?? 0,
    );
    return { allowed: until > nowSec, auditor: false, until };
  }

  /**
   * The first reader grant of this gateway (or its site) that expires after `nowSec`, unix seconds;
   * Infinity when none does. An export of the allowed readers is out of date from then on.
   */
  nextGrantExpiry(nowSec: number): number {
    let next = Infinity;
    const consider = (until: number): void => {
      if (until > nowSec && until < next) next = until;
    };
    for (const until of this.gatewayGrants.values()) consider(until);
    if (this.gateway) {
      const prefix = `${this.gateway.site}/`;
      for (const [k, until] of this.siteGrants) if (k.startsWith(prefix)) consider(until);
    }
    return next;
  }

  /** Every entry, for a full rewrite of the cache (after a deep reorg). */
  entries(): ViewEntry[] {
    const out: ViewEntry[] = [];
    if (this.gateway) out.push({ kind: "g", id: this.gatewayId, value: this.gateway });
    for (const [k, s] of this.sensors) out.push({ kind: "s", id: hex8(k), value: s });
    for (const [k, e] of this.siteGrants) out.push({ kind: "t", id: k, value: e });
    for (const [k, e] of this.gatewayGrants) out.push({ kind: "w", id: k, value: e });
    for (const a of this.auditors) out.push({ kind: "a", id: a, value: true });
    for (const [k, r] of this.releases) out.push({ kind: "r", id: k, value: r });
    return out;
  }

  /** Rebuilds a view from persisted entries (unknown kinds are ignored: a newer gateway wrote them). */
  static fromEntries(
    gatewayId: Hex,
    entries: Iterable<{ kind: string; id: string; value: unknown }>,
  ): RegistryView {
    const v = new RegistryView(gatewayId);
    for (const { kind, id, value } of entries) {
      switch (kind) {
        case "g":
          if (id === v.gatewayId) v.gateway = value as GatewayEntry;
          break;
        case "s":
          v.sensors.set(Number.parseInt(id, 16), value as SensorEntry);
          break;
        case "t":
          v.siteGrants.set(id, Number(value));
          break;
        case "w":
          v.gatewayGrants.set(id as Hex, Number(value));
          break;
        case "a":
          v.auditors.add(id as Hex);
          break;
        case "r":
          v.releases.set(id, value as ReleaseEntry);
          break;
      }
    }
    return v;
  }
}
