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
 */
import type { VigilDomain } from "../chain/eip712.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import type { Hex } from "../core/hex.ts";
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
}

const DEVICE_USER = /^[0-9a-f]{8}$/;

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

  #nowSec(): number {
    return Math.floor(this.#clock.nowMs() / 1000);
  }

  authenticate(
    _clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
  ): BrokerIdentity | AuthRefusal {
    if (username === undefined || password === undefined) return this.#refuse("anonymous", "not_authorized");
    if (this.#o.stalePolicy === "refuse-new" && this.#o.state.stale)
      return this.#refuse("stale", "not_authorized");
    const now = this.#nowSec();
    if (DEVICE_USER.test(username)) {
      const deviceId = Number.parseInt(username, 16);
      const pw = password.toString("utf8");
      if (isDeviceToken(pw)) {
        const sensor = this.#o.state.view.sensors.get(deviceId);
        const v = verifyDeviceToken(this.#o.domain, this.#o.gatewayId, deviceId, pw, sensor, now);
        if (v !== true) return this.#refuse(`device_token_${v}`, "bad_credentials");
        return { kind: "device", deviceId, expiresAt: Number(pw.split(".")[1]) };
      }
      if (!this.#passwords.verify(username, password))
        return this.#refuse("device_password", "bad_credentials");
      return { kind: "device", deviceId };
    }
    const t = verifyReaderToken(this.#o.domain, this.#o.gatewayId, username, password.toString("utf8"), now);
    if (typeof t === "string") return this.#refuse(`token_${t}`, "bad_credentials");
    if (!this.#o.state.view.reader(t.reader, now).allowed)
      return this.#refuse("reader_not_allowed", "not_authorized");
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

  stillAllowed(who: BrokerIdentity): boolean {
    if (who.kind === "device") {
      // A token holder stays while its token is valid and the registry still holds a key for it.
      if (who.expiresAt !== undefined)
        return (
          who.expiresAt > this.#nowSec() &&
          (this.#o.state.view.sensors.get(who.deviceId)?.keyType ?? "none") !== "none"
        );
      return this.#passwords.has(who.deviceId.toString(16).padStart(8, "0"));
    }
    if (who.kind !== "reader") return false;
    const now = this.#nowSec();
    return who.expiresAt > now && this.#o.state.view.reader(who.address, now).allowed;
  }
}
