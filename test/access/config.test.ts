import { describe, expect, it } from "vitest";
import { gatewayStanding } from "../../gateway/src/access/gateway-standing.ts";
import { RegistryView } from "../../gateway/src/chain/registry-view.ts";
import { isLoopbackHost, resolveConfig } from "../../gateway/src/config/config.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { Runtime } from "../../gateway/src/runtime.ts";

describe("access configuration", () => {
  it("defaults: open admission, no broker auth, loopback, bounded broker, registry watch off", () => {
    const c = resolveConfig({});
    expect(c.ingest.admission).toBe("open");
    expect(c.mqtt.embedded).toMatchObject({
      host: "127.0.0.1",
      auth: "none",
      insecure: false,
      passwordFile: null,
    });
    expect(c.mqtt.embedded.limits.maxPacketBytes).toBe(16_384);
    expect(c.registry).toMatchObject({
      enabled: false,
      schedule: "*/15 * * * * *",
      reorgDepth: 12,
      stalePolicy: "keep",
    });
  });

  it("error: a broker beyond loopback without authentication refuses to start, naming the fix", () => {
    expect(() => resolveConfig({ mqtt: { embedded: { host: "0.0.0.0" } } })).toThrow(
      /mqtt\.embedded\.host.*beyond loopback.*mqtt\.embedded\.auth/,
    );
    // Also when the host comes from the command line after the file was read (runtime checks again).
    const c = resolveConfig({ models: { enabled: false } });
    c.mqtt.embedded.host = "192.168.1.10";
    expect(() => new Runtime({ config: c })).toThrow(/beyond loopback/);
    expect(
      resolveConfig({ mqtt: { embedded: { host: "0.0.0.0", insecure: true } } }).mqtt.embedded.host,
    ).toBe("0.0.0.0");
  });

  it("error: registry admission or broker auth without a deployment and RPC URL is refused", () => {
    expect(() => resolveConfig({ ingest: { admission: "registry" } })).toThrow(
      /ingest\.admission.*chain\.deployment/,
    );
    expect(() => resolveConfig({ mqtt: { embedded: { auth: "registry" } } })).toThrow(/mqtt\.embedded\.auth/);
    expect(() => resolveConfig({ registry: { schedule: "every minute" } })).toThrow(/registry\.schedule/);
  });

  it("loopback hosts", () => {
    expect(["127.0.0.1", "127.1.2.3", "::1", "localhost"].map(isLoopbackHost)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(["0.0.0.0", "::", "10.0.0.1", "gateway.local"].map(isLoopbackHost)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });
});

describe("the gateway's standing", () => {
  const GW: Hex = `0x${"11".repeat(32)}`;
  const KEY: Hex = `0x${"ab".repeat(20)}`;
  const view = (status?: "active" | "suspended" | "revoked"): RegistryView => {
    const v = new RegistryView(GW);
    if (status) {
      v.apply({ name: "GatewayRegistered", gatewayId: GW, site: GW, keyType: "secp256k1", publicKey: KEY });
      if (status !== "active") v.apply({ name: "GatewayStatusChanged", gatewayId: GW, status });
    }
    return v;
  };
  it("active only when registered, active and holding the local key", () => {
    expect(gatewayStanding(view("active"), KEY)).toBe("active");
    expect(gatewayStanding(view(), KEY)).toBe("unregistered");
    expect(gatewayStanding(view("suspended"), KEY)).toBe("suspended");
    expect(gatewayStanding(view("revoked"), KEY)).toBe("revoked");
    expect(gatewayStanding(view("active"), `0x${"cd".repeat(20)}`)).toBe("key_mismatch");
    const rotated = view("active");
    rotated.apply({
      name: "GatewayKeyRotated",
      gatewayId: GW,
      keyEpoch: 1,
      keyType: "secp256k1",
      publicKey: `0x${"cd".repeat(20)}`,
    });
    expect(gatewayStanding(rotated, KEY)).toBe("key_mismatch");
  });
});
