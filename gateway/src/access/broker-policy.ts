/**
 * The embedded broker's access rules (ingest/mqtt/policy.ts) from the registry and the device
 * password file (`mqtt.embedded.auth: "registry"`):
 *
 * | client | authenticates with | may publish | may subscribe |
 * |---|---|---|---|
 * | sensor node | username = its 8-hex device id, password = a device token signed by its registered key (device-token.ts), else its provisioned secret (password file, `$7$`) | `vigil/v1/ingest/<own id>` and `…/json`, never retained | `vigil/v1/ingest/<own id>/nack` |
 * | reader | username = its address, password = a reader token (reader-token.ts) for this chain, registry and gateway; the registry must allow it (isReaderAllowed: grant on the gateway or its site, unexpired, or the auditor role) | nothing | under `vigil/v1/<site>/<gateway>/`; auditors also `vigil/v1/ingest/…` and `$SYS/…` |
 * | anyone else | — refused (CONNACK 4 bad credentials, 5 not authorised) | | |
 *
 * Nobody but the gateway publishes on its alert, health, status and NACK topics, nobody but the
 * gateway retains, and nothing is accepted outside `vigil/v1/ingest/`. A reader whose grant is
 * revoked or whose token expires is disconnected by the broker's sweep (runtime.ts runs it after
 * every registry refresh and every 10 s).
 *
 * Failed logins stay cheap for the gateway: a credential is checked with a costly operation (a
 * PBKDF2 hash, ~0.2 ms; a signature recovery, ~1.4 ms, both on the event loop) only for a username
 * that could pass (a device in the password file or with a registered key, a reader the registry
 * allows), and after such a check fails, the same username from the same address is refused
 * unchecked (CONNACK 4, counted `throttled`) for {@link FAILED_LOGIN_BACKOFF_MS}. Brute force then
 * costs at most one check per username, address and second (bench/access.ts).
 */
import type { VigilDomain } from "../chain/eip712.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import { isAddress, type Hex } from "../core/hex.ts";
import type { AuthRefusal, BrokerIdentity, BrokerPolicy } from "../ingest/mqtt/policy.ts";
import { isDeviceToken, verifyDeviceToken } from "./device-token.ts";
import type { PasswordFile } from "./passwords.ts";
import { verifyReaderToken } from "./reader-token.ts";
import type { RegistryState, StalePolicy } from "./registry-state.ts";

export interface RegistryBrokerPolicyOptions {
  state: RegistryState;
  /** Device credentials; replaced with setPasswords() when the file changes. */
  passwords: PasswordFile;
  domain: VigilDomain;
  gatewayId: Hex;
  /** Topic levels of this gateway's alert/health/status topics. */
  site: string;
  gatewayName: string;
  stalePolicy?: StalePolicy;
  clock?: Clock;
  /** Backoff after a failed costly credential check (default {@link FAILED_LOGIN_BACKOFF_MS}; 0: none). */
  failedLoginBackoffMs?: number;
}

const DEVICE_USER = /^[0-9a-f]{8}$/;

/** How long a username from one address is refused unchecked after a failed costly check. */
export const FAILED_LOGIN_BACKOFF_MS = 1000;
/** Most (address, username) pairs remembered in backoff (~100 bytes each); the oldest go first. */
const MAX_BACKOFF_ENTRIES = 10_000;

/** Whether `filter` (an MQTT topic filter) can only match topics under `prefix` (ending in "/"). */
function under(filter: string, prefix: string): boolean {
  return filter.startsWith(prefix) && !filter.slice(0, prefix.length).includes("+");
}

export class RegistryBrokerPolicy implements BrokerPolicy {
  readonly #o: RegistryBrokerPolicyOptions;
  readonly #clock: Clock;
  readonly #ownPrefix: string;
  #passwords: PasswordFile;
  /** Failed logins, by reason (bounded: a fixed set of keys). */
  readonly refusals: Record<string, number> = {};
  /** `${address}|${username}` → until when it is refused unchecked (ms); bounded, see above. */
  readonly #backoff = new Map<string, number>();

  constructor(o: RegistryBrokerPolicyOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#passwords = o.passwords;
    this.#ownPrefix = `vigil/v1/${o.site}/${o.gatewayName}/`;
  }

  setPasswords(p: PasswordFile): void {
    this.#passwords = p;
  }

  #refuse(reason: string, r: AuthRefusal): AuthRefusal {
    this.refusals[reason] = (this.refusals[reason] ?? 0) + 1;
    return r;
  }

  /** Registered under this gateway and suspended or revoked (an unregistered id is admission's call). */
  #suspended(deviceId: number): boolean {
    const status = this.#o.state.view.sensors.get(deviceId)?.status;
    return status !== undefined && status !== "active";
  }

  #nowSec(): number {
    return Math.floor(this.#clock.nowMs() / 1000);
  }

  /** Whether `key` is in backoff at `nowMs` (forgets an expired entry). */
  #throttled(key: string, nowMs: number): boolean {
    const until = this.#backoff.get(key);
    if (until === undefined) return false;
    if (until > nowMs) return true;
    this.#backoff.delete(key);
    return false;
  }

  /** Puts `key` in backoff after a failed costly check; keeps the map bounded. */
  #failed(key: string, nowMs: number): void {
    if (this.#backoff.size >= MAX_BACKOFF_ENTRIES)
      for (const [k, until] of this.#backoff) if (until <= nowMs) this.#backoff.delete(k);
    // Still full of live entries: drop the oldest (Map keeps insertion order).
    if (this.#backoff.size >= MAX_BACKOFF_ENTRIES) this.#backoff.delete(this.#backoff.keys().next().value!);
    this.#backoff.delete(key);
    this.#backoff.set(key, nowMs + (this.#o.failedLoginBackoffMs ?? FAILED_LOGIN_BACKOFF_MS));
  }

  authenticate(
    _clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
    remote = "?",
  ): BrokerIdentity | AuthRefusal {
    if (username === undefined || password === undefined) return this.#refuse("anonymous", "not_authorized");
    if (this.#o.stalePolicy === "refuse-new" && this.#o.state.stale)
      return this.#refuse("stale", "not_authorized");
    const nowMs = this.#clock.nowMs();
    const now = Math.floor(nowMs / 1000);
    const key = `${remote}|${username}`;
    if (DEVICE_USER.test(username)) {
      const deviceId = Number.parseInt(username, 16);
      // A suspended or revoked sensor's new session is refused before any key or password check.
      if (this.#suspended(deviceId)) return this.#refuse("device_revoked", "not_authorized");
      const pw = password.toString("utf8");
      if (isDeviceToken(pw)) {
        const sensor = this.#o.state.view.sensors.get(deviceId);
        const costly = sensor !== undefined && sensor.keyType !== "none";
        if (costly && this.#throttled(key, nowMs)) return this.#refuse("throttled", "bad_credentials");
        const v = verifyDeviceToken(this.#o.domain, this.#o.gatewayId, deviceId, pw, sensor, now);
        if (v !== true) {
          if (v === "wrong_signer") this.#failed(key, nowMs);
          return this.#refuse(`device_token_${v}`, "bad_credentials");
        }
        this.#backoff.delete(key);
        return {
          kind: "device",
          deviceId,
          expiresAt: Number(pw.split(".")[1]),
          key: sensor!.publicKey.toLowerCase() as Hex,
        };
      }
      // A sensor with a registered key proves it with the key: a password-file secret (left from
      // before the key, or copied off another box) would outlive a key rotation or removal.
      if (this.#keyed(deviceId)) return this.#refuse("device_key_required", "bad_credentials");
      // An unknown username is refused without hashing (PasswordFile.verify).
      const costly = this.#passwords.has(username);
      if (costly && this.#throttled(key, nowMs)) return this.#refuse("throttled", "bad_credentials");
      if (!this.#passwords.verify(username, password)) {
        if (costly) this.#failed(key, nowMs);
        return this.#refuse("device_password", "bad_credentials");
      }
      this.#backoff.delete(key);
      return { kind: "device", deviceId };
    }
    // Whom the registry does not allow is refused before any signature is recovered.
    if (isAddress(username) && !this.#o.state.view.reader(username.toLowerCase() as Hex, now).allowed)
      return this.#refuse("reader_not_allowed", "not_authorized");
    if (this.#throttled(key, nowMs)) return this.#refuse("throttled", "bad_credentials");
    const t = verifyReaderToken(this.#o.domain, this.#o.gatewayId, username, password.toString("utf8"), now);
    if (typeof t === "string") {
      if (t === "wrong_signer" || t === "malformed") this.#failed(key, nowMs);
      return this.#refuse(`token_${t}`, "bad_credentials");
    }
    this.#backoff.delete(key);
    return { kind: "reader", address: t.reader, expiresAt: t.expiresAt };
  }

  publish(who: BrokerIdentity, topic: string, retain: boolean): string | null {
    if (retain) return "retain";
    if (who.kind !== "device") return "not_a_device";
    const own = `vigil/v1/ingest/${who.deviceId.toString(16).padStart(8, "0")}`;
    return topic === own || topic === `${own}/json` ? null : "not_own_topic";
  }

  subscribe(who: BrokerIdentity, filter: string): string | null {
    if (who.kind === "device") {
      const own = `vigil/v1/ingest/${who.deviceId.toString(16).padStart(8, "0")}/nack`;
      return filter === own ? null : "device_topic";
    }
    if (who.kind !== "reader") return "anonymous";
    const st = this.#o.state.view.reader(who.address, this.#nowSec());
    if (!st.allowed) return "not_allowed";
    if (under(filter, this.#ownPrefix)) return null;
    if (st.auditor && (under(filter, "vigil/v1/ingest/") || under(filter, "$SYS/"))) return null;
    return "outside_grant";
  }

  /** The registry holds a key for this sensor (it must log in with a device token). */
  #keyed(deviceId: number): boolean {
    const s = this.#o.state.view.sensors.get(deviceId);
    return s !== undefined && s.keyType !== "none";
  }

  stillAllowed(who: BrokerIdentity): boolean {
    const expiresAt = who.kind === "reader" || who.kind === "device" ? who.expiresAt : undefined;
    return (expiresAt === undefined || expiresAt > this.#nowSec()) && this.identityAllowed(who);
  }

  identityAllowed(who: BrokerIdentity): boolean {
    if (who.kind === "device") {
      // A suspended or revoked sensor stays connected: ingest admission NACKs its frames
      // REVOKED_DEVICE, which tells it to stop (PROTOCOL.md); only a new CONNECT is refused.
      // A token holder stays while its token is valid (stillAllowed) and the registry still holds
      // the key the token was checked against (a rotated key ends the session of the old key's holder).
      if (who.expiresAt !== undefined) {
        const s = this.#o.state.view.sensors.get(who.deviceId);
        return s !== undefined && s.keyType !== "none" && s.publicKey.toLowerCase() === who.key;
      }
      // A password session ends when its line leaves the file or a key is registered for it.
      return this.#passwords.has(who.deviceId.toString(16).padStart(8, "0")) && !this.#keyed(who.deviceId);
    }
    if (who.kind !== "reader") return false;
    return this.#o.state.view.reader(who.address, this.#nowSec()).allowed;
  }
}
