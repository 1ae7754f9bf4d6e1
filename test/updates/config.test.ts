// The `updates` configuration, the runtime's refusal to start updates it cannot run, and the
// store-backed firmware progress.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { registryWatched, resolveConfig } from "../../gateway/src/config/config.ts";
import { ConfigError } from "../../gateway/src/core/errors.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { StoreFirmwareProgressStore } from "../../gateway/src/updates/firmware-agent.ts";
import { updatesTopic } from "../../gateway/src/updates/start.ts";

describe("updates configuration", () => {
  it("behavior: defaults are off, every key can be set, bad values name the setting", () => {
    expect(resolveConfig({}).updates).toEqual({
      enabled: false,
      schedule: "*/5 * * * *",
      ipfsGateway: null,
      shadowWindows: 100,
      shadowMaxMs: 600_000,
      maxCostFactor: 3,
      maxModelBytes: 33_554_432,
      maxFirmwareBytes: 16_777_216,
      fetchTimeoutMs: 120_000,
      staleAfterMs: 3_600_000,
      firmware: true,
      firmwareTarget: null,
    });
    expect(
      resolveConfig({
        chain: { rpcUrl: "http://127.0.0.1:8545", deployment: "deployment.json" },
        updates: { enabled: true, ipfsGateway: "http://127.0.0.1:8080", shadowWindows: 5 },
      }).updates,
    ).toMatchObject({ enabled: true, ipfsGateway: "http://127.0.0.1:8080", shadowWindows: 5 });
    expect(() => resolveConfig({ updates: { shadowWindows: 0 } })).toThrow(/updates\.shadowWindows/);
    expect(() => resolveConfig({ updates: { maxCostFactor: 0 } })).toThrow(/updates\.maxCostFactor/);
    expect(() => resolveConfig({ updates: { maxModelBytes: 0 } })).toThrow(/updates\.maxModelBytes/);
    expect(() => resolveConfig({ updates: { fetchTimeoutMs: 10 } })).toThrow(/updates\.fetchTimeoutMs/);
    expect(() => resolveConfig({ updates: { ipfsGateway: "not a url" } })).toThrow(
      /updates\.ipfsGateway: is not a valid URL/,
    );
    expect(() => resolveConfig({ updates: { color: "red" } })).toThrow(/updates.*"color"/);
  });

  it("error: updates enabled without a chain are a config error naming the fix (they need the registry watch)", () => {
    expect(() => resolveConfig({ updates: { enabled: true } })).toThrow(
      /^updates\.enabled: updates need chain\.rpcUrl or chain\.rpcUrls, chain\.deployment and the gateway key/,
    );
    const c = resolveConfig({
      chain: { rpcUrl: "http://127.0.0.1:8545", deployment: "deployment.json" },
      updates: { enabled: true },
    });
    expect(registryWatched(c)).toBe(true);
    expect(registryWatched(resolveConfig({}))).toBe(false);
    // chain.rpcUrls alone: the update agents use the RPC pool, as anchoring and the watch do.
    expect(
      resolveConfig({
        chain: { rpcUrls: ["http://127.0.0.1:8545"], deployment: "deployment.json" },
        updates: { enabled: true },
      }).updates.enabled,
    ).toBe(true);
  });

  it("error: updates enabled without the gateway key fail at start with one sentence naming the fix", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "vigil-upd-cfg-"));
    writeFileSync(
      join(dataDir, "deployment.json"),
      JSON.stringify({
        format: "vigil-deployment/1",
        chainId: 31337,
        contracts: { VigilRegistry: { address: "0x5FbDB2315678afecb367f032d93F642f64180aa3" } },
      }),
    );
    const rt = new Runtime({
      config: resolveConfig({
        http: { port: 0 }, // never the default 9479: another gateway may hold it
        dataDir,
        mqtt: { embedded: { enabled: false } },
        models: { enabled: false },
        attest: { enabled: false }, // no gateway key: updates cannot sign install reports
        chain: { rpcUrl: "http://127.0.0.1:9", deployment: "deployment.json" },
        updates: { enabled: true },
      }),
      store: new MemoryFrameStore(),
    });
    const err = await rt.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).shortMessage).toMatch(
      /^updates\.enabled: updates need chain\.rpcUrl or chain\.rpcUrls, chain\.deployment and the gateway key/,
    );
    await rt.stop();
  });

  it("behavior: the retained status topic sits beside the gateway status", () => {
    expect(updatesTopic("plant 7", "gw-1")).toBe("vigil/v1/plant_7/gw-1/updates");
  });
});

describe("StoreFirmwareProgressStore", () => {
  it("behavior: save, load, list and delete through the store's update records", async () => {
    const store = new MemoryFrameStore();
    await store.open();
    const p = new StoreFirmwareProgressStore(store);
    const rec = {
      deviceId: 7,
      releaseId: 3,
      sha256: "ab".repeat(32),
      imageSize: 4096,
      phase: "transferring" as const,
      ackedOffset: 1024,
      updatedMs: 1,
    };
    await p.save(rec);
    await p.save({ ...rec, deviceId: 8 });
    expect(await p.load(7, 3)).toEqual(rec);
    expect((await p.list()).map((r) => r.deviceId)).toEqual([7, 8]);
    await p.delete(7, 3);
    expect(await p.load(7, 3)).toBeUndefined();
    expect((await p.list()).map((r) => r.deviceId)).toEqual([8]);
    await store.close();
  });
});
