/**
 * The running gateway governing an external Mosquitto 2.0 (registry.mosquittoExport with the
 * dynamic-security plugin), registry on anvil: at start the gateway syncs the plugin over its own
 * MQTT connection and writes the password file; a registered device then sends frames through
 * Mosquitto, cannot subscribe to `#` (SUBACK 0x80), and is disconnected and refused once the sensor
 * is revoked on chain (one refresh interval).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { exportMosquitto } from "../../gateway/src/access/mosquitto.ts";
import { hashPassword } from "../../gateway/src/access/passwords.ts";
import { ANVIL_DEV_KEYS } from "../../gateway/src/chain/anvil.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { RegistryView } from "../../gateway/src/chain/registry-view.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { connackCode, dataFrame, hex8, SECRET, subackCodes } from "../access/rig.ts";
import { localChain, type LocalChain } from "../helpers/chain.ts";
import { accessMosquitto, type AccessMosquitto } from "../helpers/mosquitto-access.ts";

const GW: Hex = `0x${"6b".repeat(32)}`;
const DEV = 0x0a;
const GATEWAY_USER = "vigil-gateway";
const GATEWAY_SECRET = "gateway secret";

let dir: string;
let lc: LocalChain;
let admin: EthersRegistryClient;
let broker: AccessMosquitto;
let rt: Runtime;
const clients: MqttClient[] = [];
const accepted: number[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-mosq-runtime-"));
  lc = await localChain({ dataDir: dir, gatewayId: GW });
  admin = await EthersRegistryClient.connect({
    rpcUrl: lc.anvil.url,
    privateKey: ANVIL_DEV_KEYS[0]!,
    registry: lc.deployment.contracts.VigilRegistry.address,
    releases: lc.deployment.contracts.VigilReleases.address,
    pollingIntervalMs: 50,
  });
  await admin.registerSensor(GW, DEV, "none", "0x");
  writeFileSync(join(dir, "devices.passwd"), hashPassword(hex8(DEV), SECRET));
  // The broker's first start: only the gateway's own user (what `vigil access export-mosquitto`
  // writes before the registry is read); the running gateway fills in the rest.
  const gatewayUserLine = hashPassword(GATEWAY_USER, GATEWAY_SECRET);
  const mosqDir = join(dir, "mosquitto");
  mkdirSync(mosqDir);
  exportMosquitto({
    view: new RegistryView(GW),
    passwords: "",
    outDir: mosqDir,
    site: "site-1",
    gatewayName: "gw-1",
    gatewayLine: gatewayUserLine,
  });
  broker = await accessMosquitto(mosqDir);
  writeFileSync(join(dir, "mosquitto.pid"), String(broker.proc.pid));
  const config = resolveConfig({
    dataDir: dir,
    mqtt: {
      embedded: { enabled: false, passwordFile: "devices.passwd" },
      url: broker.url,
      clientId: "vigil-gw",
      username: GATEWAY_USER,
      password: GATEWAY_SECRET,
    },
    registry: {
      enabled: true,
      schedule: "* * * * * *",
      reorgDepth: 2,
      mosquittoExport: { dir: "mosquitto", pidFile: "mosquitto.pid", gatewayUserLine, dynsec: true },
    },
    models: { enabled: false },
    attest: { gatewayId: GW, gatewayName: "gw-1", batchIntervalMs: 200 },
    chain: { rpcUrl: lc.anvil.url, deployment: lc.deploymentFile, confirmations: 1, anchorIntervalMs: 200 },
    store: { minFreeBytes: 0, reserveBytes: 1024 * 1024 },
    http: { port: 0 }, // the default 9479 may be taken on a shared machine
  });
  rt = new Runtime({ config, passphrase: lc.passphrase, senderKey: lc.senderKey });
  rt.ingest.onStored((f) => {
    if (f.deviceId === DEV) accepted.push(f.seq);
  });
  await rt.start();
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await rt?.stop();
  await broker?.stop();
  await admin?.close();
  await lc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the running gateway governs an external Mosquitto (dynamic-security plugin)", () => {
  it("a registered device is let in once the gateway has synced the broker; its frames are stored; # gets SUBACK 0x80", async () => {
    const c = await vi.waitFor(
      () =>
        mqtt.connectAsync(broker.url, {
          clientId: "dev-a",
          username: hex8(DEV),
          password: SECRET,
          reconnectPeriod: 0,
        }),
      { timeout: 15_000, interval: 100 },
    );
    clients.push(c);
    await c.publishAsync(`vigil/v1/ingest/${hex8(DEV)}`, dataFrame(DEV, 1), { qos: 1 });
    await vi.waitFor(() => expect(accepted).toEqual([1]), { timeout: 10_000 });
    expect(await subackCodes(c, ["#", `vigil/v1/ingest/${hex8(DEV)}/nack`])).toEqual([128, 1]);
  });

  it("error: the sensor revoked on chain is disconnected from Mosquitto within a refresh and refused after", async () => {
    const c = clients[0]!;
    const gone = new Promise<void>((res) => c.once("close", () => res()));
    await admin.setSensorStatus(GW, DEV, "revoked");
    await gone;
    // The plugin's deleteClient closed the session (a login before Mosquitto has processed the
    // SIGHUP that follows passes the old password file but is denied everything); from the
    // reload on, the login itself is refused.
    await vi.waitFor(
      async () => expect(await connackCode(broker.url, { username: hex8(DEV), password: SECRET })).toBe(5),
      { timeout: 5000, interval: 50 },
    );
    expect(accepted).toEqual([1]);
  });
});
