/**
 * `vigil demo` (`npm run demo`): the whole product on embedded defaults, on one machine.
 * 1. starts anvil from node_modules (its own PID, stopped at the end) and deploys the registry;
 * 2. creates the gateway key in an encrypted keystore and registers it on chain;
 * 3. runs the gateway (embedded broker, LevelDB store, inference, sealing, anchoring);
 * 4. feeds it simulated rotating machines and replayed C-MAPSS engines with faults injected;
 * 5. prints live counters and alerts, then reconciles, seals the rest, waits for the anchors
 *    and verifies one receipt the way an auditor would.
 */
import { InternalError, UsageError } from "../core/errors.ts";
import { randomBytes } from "node:crypto";
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { parseFaultRates } from "../../../device-sim/src/faults.ts";
import { Simulator, type SimReport } from "../../../device-sim/src/simulator.ts";
import { MqttTransport } from "../../../device-sim/src/transports/mqtt.ts";
import { SerialTransport } from "../../../device-sim/src/transports/serial.ts";
import { factoryFirmware } from "../../../device-sim/src/firmware/index.ts";
import { buildFirmwareImage } from "../protocol/firmware-image.ts";
import { generateKey, registrationPublicKey } from "../chain/keys.ts";
import { writeKeystore } from "../attest/keystore.ts";
import { ReceiptBuilder } from "../attest/receipt.ts";
import { verifyReceipt } from "../attest/verify.ts";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../chain/anvil.ts";
import { deployVigil } from "../chain/deploy.ts";
import { EthersRegistryClient } from "../chain/ethers-client.ts";
import { resolveConfig } from "../config/config.ts";
import { siteIdOf } from "../config/gateway-id.ts";
import { Runtime } from "../runtime.ts";
import { int, num, parse } from "./args.ts";
import {
  alertLine,
  LEGEND,
  liveLines,
  LiveView,
  nextSteps,
  reconciliationLines,
  type AlertMessage,
  type GatewayFigures,
} from "./demo-view.ts";
import { planRelease } from "./release.ts";
import { fromRoot } from "../core/paths.ts";
import type { Deployment } from "../chain/deploy.ts";
import type { ModelManifest } from "../infer/features/manifest.ts";
import { isStoredLeaf } from "../store/types.ts";
import { variantManifest } from "../updates/model-check.ts";
import { DEMO_HELP } from "./help/demo.ts";
import { makeDirSync } from "../core/make-dir.ts";

export { DEMO_HELP } from "./help/demo.ts";

const SITE = "demo-site";
const CMAPSS_FIRST_ID = 0x1000;
const MCU_ID = 0x2000;
const GATEWAY_NAME = "demo-gw";

/** Seconds of generation below which the demo skips the update part (no time to shadow and swap). */
const UPDATE_MIN_S = 15;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    duration: { type: "string" },
    devices: { type: "string" },
    rate: { type: "string" },
    faults: { type: "string" },
    seed: { type: "string" },
    keep: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  const durationS = num("duration", v.duration, 30, 1);
  const devices = int("devices", v.devices, 6, 1, 10_000);
  const rate = num("rate", v.rate, 20, 1);
  // As sim's --seed: the simulators' Rng takes it `>>> 0`, so 1.5 and -1 would alias 1 and 2^32-1.
  const seed = int("seed", v.seed, 7, 0, 0xffffffff);
  let faults: ReturnType<typeof parseFaultRates>;
  try {
    faults = parseFaultRates(
      v.faults ?? "corrupt=0.01,truncate=0.005,duplicate=0.01,reorder=0.01,garbage=0.01,nan=0.002",
    );
  } catch (e) {
    // A flag's value: a usage error naming the flag (exit 2), as for sim --faults.
    throw new UsageError(`--faults: ${(e as Error).message}`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-demo-"));
  let anvil: Anvil | undefined;
  let rt: Runtime | undefined;
  let kept: ReturnType<typeof keep> | undefined;
  let pty: DemoPty | undefined;
  // SIGINT/SIGTERM (Ctrl-C, kill PID) ended the process at once, skipping the finally below: anvil
  // and socat lived on as orphans, and the data folder stayed. Stopped here by their PIDs instead.
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const pid of [anvil?.pid, pty?.pid])
      if (pid !== undefined)
        try {
          process.kill(pid, "SIGTERM");
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e; // already gone
        }
    // anvil's HOME is removed on its exit event, which this process no longer waits for.
    if (anvil) rmSync(anvil.home, { recursive: true, force: true });
    if (v.keep) console.log(`\nvigil demo: stopped by ${signal}; data kept in ${dataDir}`);
    else {
      rmSync(dataDir, { recursive: true, force: true });
      console.log(`\nvigil demo: stopped by ${signal}; removed ${dataDir}`);
    }
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    // 1. Local chain and registry.
    anvil = await startAnvil({ network: "optimism" });
    console.log(`vigil demo: anvil (pid ${anvil.pid}) at ${anvil.url}`);
    const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true });
    provider.pollingInterval = 50;
    const deployment = await deployVigil(new NonceManager(new Wallet(ANVIL_DEV_KEYS[0]!, provider)), {
      adminDelaySeconds: 0,
    });
    provider.destroy();
    writeFileSync(join(dataDir, "deployment.json"), JSON.stringify(deployment, null, 2));
    console.log(
      `  registry ${deployment.contracts.VigilRegistry.address} deployed (chain ${deployment.chainId})`,
    );

    // 2. Gateway key (encrypted keystore, 0600) and its registration.
    const passphrase = randomBytes(16).toString("hex");
    const key = generateKey("secp256k1");
    await writeKeystore(join(dataDir, "gateway.key"), key, passphrase, { N: 1 << 14 });
    // A simulated MCU on a serial line (a socat pty pair) receives a firmware update.
    pty = await demoPty(dataDir);
    if (!pty) console.log("  (socat not found: the firmware update part is skipped; apt-get install socat)");
    const config = resolveConfig({
      dataDir,
      ...(pty ? { serial: [{ path: pty.gateway }] } : {}),
      site: SITE,
      mqtt: { embedded: { port: 0 } },
      http: { port: 0 },
      attest: { gatewayName: GATEWAY_NAME, batchIntervalMs: 3000 },
      chain: { rpcUrl: anvil.url, deployment: "deployment.json", confirmations: 1, anchorIntervalMs: 1000 },
      store: { minFreeBytes: 0, reserveBytes: 1024 * 1024 },
      log: { statsIntervalMs: 100_000 },
      // Updates: checked on demand below (as on a registry event); a short shadow for the demo. The
      // int8 model's per-window cost in shadow measured 1–4× the float one's on x64 (QDQ), hence 10×.
      updates: {
        enabled: true,
        schedule: "0 0 1 1 *",
        shadowWindows: 30,
        maxCostFactor: 10,
        firmware: true,
        firmwareTarget: "sim-mcu",
      },
    });
    rt = new Runtime({ config, passphrase, senderKey: ANVIL_DEV_KEYS[1]! });
    const admin = await EthersRegistryClient.connect({
      rpcUrl: anvil.url,
      privateKey: ANVIL_DEV_KEYS[0]!,
      registry: deployment.contracts.VigilRegistry.address,
      releases: deployment.contracts.VigilReleases.address,
      pollingIntervalMs: 50,
    });
    const site = siteIdOf(SITE);
    await admin.grantOperator(site, admin.account);
    await admin.registerGateway({
      gatewayId: rt.gatewayId,
      site,
      keyType: "secp256k1",
      publicKey: registrationPublicKey(key),
      metadataURI: "",
    });
    await admin.close();
    console.log(`  gateway ${rt.gatewayId} registered with key ${registrationPublicKey(key)}`);

    // 3. The gateway.
    await rt.start();
    const url = rt.embedded!.url;
    const models = rt.loop?.models.map((m) => m.manifest.name).join(", ") ?? "none";
    console.log(`  gateway up: embedded MQTT ${url}, models: ${models}`);
    if (rt.http) {
      console.log(`\n  live page ${rt.http.url}/   ← open it in a browser while the demo runs`);
      console.log(`  metrics   ${rt.http.url}/metrics · summary: npx vigil status --url ${rt.http.url}`);
    }
    console.log(`\n${LEGEND.join("\n")}\n`);
    const view = new LiveView(process.stdout, process.stdout.isTTY === true, process.stdout.columns);

    // A dashboard's view: every alert and sensor fault on the documented topics.
    const dash = await mqtt.connectAsync(url, { clientId: "demo-dashboard" });
    await dash.subscribeAsync(
      [`vigil/v1/${SITE}/${GATEWAY_NAME}/+/alert`, `vigil/v1/${SITE}/${GATEWAY_NAME}/+/sensor-fault`],
      { qos: 1 },
    );
    // The retained update status (vigil/v1/{site}/{gateway}/updates).
    const updatesTopic = `vigil/v1/${SITE}/${GATEWAY_NAME}/updates`;
    await dash.subscribeAsync(updatesTopic, { qos: 1 });
    let lastUpdateStatus: { model: { lastInstall?: { releaseId: string } } | null } | undefined;
    let alerts = 0;
    let sensorFaults = 0;
    let firstAlertLeaf: string | undefined;
    /** The model update: the new model's sha256 once swapped, and the first alert it raised. */
    const update: { to?: string; alertLeaf?: string } = {};
    dash.on("message", (topic, payload) => {
      if (topic === updatesTopic) {
        lastUpdateStatus = JSON.parse(payload.toString()) as typeof lastUpdateStatus;
        return;
      }
      if (topic.endsWith("/sensor-fault")) {
        const f = JSON.parse(payload.toString()) as {
          device: string;
          state: string;
          channel: string;
          reason: string;
        };
        sensorFaults++;
        view.log(
          `  SENSOR FAULT ${f.state} device ${f.device}: ${f.channel} ${f.reason} (not a machine alert)`,
        );
        return;
      }
      const a = JSON.parse(payload.toString()) as AlertMessage & {
        receipt: { leaf: string };
        model: { sha256: string };
      };
      alerts++;
      firstAlertLeaf ??= a.receipt.leaf;
      if (update.to && a.model.sha256 === update.to) update.alertLeaf ??= a.receipt.leaf;
      view.log(alertLine(a));
    });

    // 4. Simulated devices, paced like real ones. Every frame a device sees acknowledged is
    // remembered, to check frame by frame that the store holds it exactly once.
    const ackedFrames = new Set<string>();
    const onAcked = (_id: number, raw: Buffer): void => void ackedFrames.add(raw.toString("base64"));
    const sims = [
      new Simulator({
        transport: new MqttTransport({ url, clientId: "demo-rotating" }),
        devices,
        rate,
        durationS,
        seed,
        faults,
        meanLife: Math.round(rate * durationS * 0.8),
        onAcked,
      }),
      new Simulator({
        transport: new MqttTransport({ url, clientId: "demo-cmapss" }),
        devices: Math.max(1, Math.floor(devices / 2)),
        profile: "cmapss",
        rate,
        durationS,
        seed: seed + 1,
        faults,
        // The first engine's s9 sensor sticks for 100 cycles: a sensor-fault, not an alert.
        sensorFaults: [{ kind: "stuck", channel: "s9", from: 30, frames: 100, devices: [CMAPSS_FIRST_ID] }],
        firstDeviceId: CMAPSS_FIRST_ID,
        onAcked,
      }),
    ];
    if (pty)
      sims.push(
        new Simulator({
          transport: new SerialTransport({ path: pty.device }),
          devices: 1,
          rate,
          durationS,
          seed: seed + 2,
          firstDeviceId: MCU_ID,
          drainMs: 3000,
          firmware: { for: (id) => factoryFirmware({ deviceId: id }) },
          onAcked,
        }),
      );
    const runtime = rt;
    const started = Date.now();
    const refresh = () =>
      view.render(
        liveLines(
          (Date.now() - started) / 1000,
          durationS,
          gatewayFigures(runtime),
          sims.map((s, i) => ({ label: ["rotating", "c-mapss", "mcu"][i] ?? "sim", s: s.snapshot() })),
          view.tty,
        ),
      );
    // A terminal gets a block redrawn in place; logs and pipes a plain block every 3 s.
    const timer = setInterval(refresh, view.tty ? 250 : 3000);
    const running = Promise.all(sims.map((s) => s.run()));
    // A model update while frames flow: int8 FD001 published, approved 2-of-3, shadowed, swapped.
    // It needs a shadow phase and frames after the swap: shown from UPDATE_MIN_S of generation on.
    let upd: { sha256: string; swapIndex: number } | undefined;
    let fw: Awaited<ReturnType<typeof demoFirmwareUpdate>> | undefined;
    if (durationS >= UPDATE_MIN_S) {
      await new Promise((r) => setTimeout(r, Math.min(5000, durationS * 200)));
      upd = await demoModelUpdate(rt, anvil.url, deployment, dataDir, (l) => view.log(l));
      update.to = upd.sha256;
      if (pty) fw = await demoFirmwareUpdate(rt, anvil.url, deployment, dataDir, (l) => view.log(l));
    } else view.log(`  (the model and firmware updates are shown from --duration ${UPDATE_MIN_S} on)`);
    const reports: SimReport[] = await running;
    clearInterval(timer);
    refresh();
    view.close();

    // 5. Seal what is left, wait for the anchors, reconcile, verify one receipt.
    while (await rt.sealer?.sealNow());
    rt.anchor?.trigger();
    const until = Date.now() + 30_000;
    while (rt.store.anchoredThrough() < rt.store.lastBatchSeq() && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100));
    await dash.endAsync();

    const snap = rt.ingest.counters.snapshot();
    const acked = reports.reduce((a, r) => a + r.acked, 0);
    const expected: Record<string, number> = {};
    for (const r of reports)
      for (const [k, n] of Object.entries(r.expectedRejects)) expected[k] = (expected[k] ?? 0) + n;
    console.log("\nreconciliation (simulator → gateway)");
    const st = rt.store.stats();
    // The log also holds inference and alert leaves (sealed with the frames).
    const framesStored = st.lastIndex - st.leavesStored;
    const total = (k: "generated" | "abandoned" | "pending" | "overflowed" | "lostAtReboot") =>
      reports.reduce((a, r) => a + r[k], 0);
    for (const line of reconciliationLines({
      generated: total("generated"),
      acked,
      abandoned: total("abandoned"),
      pending: total("pending"),
      overflowed: total("overflowed"),
      lostAtReboot: total("lostAtReboot"),
      accepted: snap.accepted,
      duplicates: snap.duplicates,
      framesStored,
      modelLeaves: st.leavesStored,
    }))
      console.log(line);
    console.log(`  rejections expected ${JSON.stringify(expected)}`);
    console.log(`  rejections counted  ${JSON.stringify(snap.rejected)}`);
    console.log(`  alerts published ${alerts}, sensor faults published ${sensorFaults}`);
    console.log(`  batches sealed ${rt.store.lastBatchSeq()}, anchored ${rt.store.anchoredThrough()}`);
    // Frame by frame: every acknowledged frame is stored, and no frame is stored twice. Frames
    // stored but not yet acknowledged when the run ended are still held (and resent) by devices.
    const storedCount = new Map<string, number>();
    for await (const chunk of rt.store.frameChunks(1, st.lastIndex))
      for (const f of chunk) {
        const k = f.raw.toString("base64");
        storedCount.set(k, (storedCount.get(k) ?? 0) + 1);
      }
    const twice = [...storedCount.values()].filter((n) => n > 1).length;
    const missing = [...ackedFrames].filter((k) => !storedCount.has(k)).length;
    const held = reports.reduce((a, r) => a + r.pending, 0);
    console.log(
      `  acknowledged but not stored ${missing}, stored twice ${twice}; still held by devices at the end ${held}`,
    );
    let ok = missing === 0 && twice === 0 && ackedFrames.size === acked && snap.accepted === framesStored;

    const receipt = await new ReceiptBuilder(rt.store).forIndex(1);
    // The auditor pins what they trust: this deployment's registry and chain, and this gateway.
    const trust = {
      chainId: BigInt(deployment.chainId),
      registry: deployment.contracts.VigilRegistry.address,
      fromBlock: deployment.deployBlock,
      gatewayId: rt.gatewayId,
    };
    const result = await verifyReceipt(receipt, { rpcUrl: anvil.url, trust });
    console.log(
      `\nauditor: receipt for frame #1 (device ${receipt.frame.deviceId}, seq ${receipt.frame.seq})`,
    );
    for (const s of result.steps) console.log(`  ${s.ok ? "✔" : "✘"} ${s.step}: ${s.detail}`);
    ok &&= result.ok;
    if (firstAlertLeaf) {
      // The same for an alert: it traces to the model (hash), the input window (hash) and the gateway key.
      const ar = await new ReceiptBuilder(rt.store).forLeafHash(firstAlertLeaf);
      const av = await verifyReceipt(ar, { rpcUrl: anvil.url, trust });
      console.log(`\nauditor: receipt for the first alert (leaf ${firstAlertLeaf.slice(0, 18)}…)`);
      for (const s of av.steps) console.log(`  ${s.ok ? "✔" : "✘"} ${s.step}: ${s.detail}`);
      ok &&= av.ok;
    }
    const swappedTo = update.to;
    if (swappedTo && upd) {
      // A receipt of a leaf produced after the swap names the new model hash.
      let leafHash = update.alertLeaf;
      if (!leafHash)
        for await (const chunk of rt.store.entryChunks(upd.swapIndex + 1, rt.store.stats().lastIndex))
          for (const e of chunk)
            if (
              !leafHash &&
              isStoredLeaf(e) &&
              e.kind === "inference" &&
              e.deviceId >= CMAPSS_FIRST_ID &&
              e.deviceId < MCU_ID
            )
              leafHash = `0x${Buffer.from(e.hash).toString("hex")}`;
      if (leafHash) {
        const ur = await new ReceiptBuilder(rt.store).forLeafHash(leafHash);
        const mh =
          ur.kind === "alert" ? ur.alert.modelHash : ur.kind === "inference" ? ur.inference.modelHash : "";
        if (leafHash === firstAlertLeaf) {
          // The first alert came after the swap: its receipt was verified just above.
          console.log(
            `\nauditor: the first alert came after the model update; its receipt names model ${mh}`,
          );
        } else {
          const uv = await verifyReceipt(ur, { rpcUrl: anvil.url, trust });
          console.log(
            `\nauditor: receipt of ${ur.kind === "alert" ? "an alert" : "an inference"} after the model update names model ${mh}`,
          );
          for (const s of uv.steps) console.log(`  ${s.ok ? "✔" : "✘"} ${s.step}: ${s.detail}`);
          ok &&= uv.ok;
        }
        ok &&= mh === `0x${swappedTo}`;
        if (mh !== `0x${swappedTo}`) console.log(`  ✘ expected the new model 0x${swappedTo}`);
      } else {
        console.log("\n✘ no leaf after the model update");
        ok = false;
      }
    }
    if (update.to) {
      const inst = lastUpdateStatus?.model?.lastInstall;
      console.log(`\nretained ${updatesTopic}: last install release ${inst?.releaseId ?? "none"}`);
      ok &&= inst?.releaseId === "1";
    }
    if (fw) {
      const hello = rt.ingest.counters.device(MCU_ID).firmware;
      const installs = rt.updates?.firmware?.counters.installsByDevice[MCU_ID] ?? 0;
      console.log(
        `\nfirmware: device ${MCU_ID.toString(16).padStart(8, "0")} announces ${hello} in its HELLO (release ${fw.releaseId}: ${fw.version}); installs ${installs}; reported on chain: ${fw.reported}`,
      );
      ok &&= hello === fw.version && installs === 1;
    }
    console.log(ok ? "\n✔ demo passed" : "\n✘ demo found a mismatch");
    kept = v.keep ? keep(dataDir, passphrase) : undefined;
    for (const line of nextSteps({ kept, firstAlertLeaf })) console.log(line);
    return ok ? 0 : 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await rt?.stop();
    await pty?.stop();
    await anvil?.stop();
    if (v.keep) {
      if (!kept) console.log(`data kept in ${dataDir}`);
    } else rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * --keep: the keystore's passphrase in a 0600 file beside it (the demo made the passphrase up;
 * without the file the kept keystore could never be opened), and a config naming the folder,
 * so `vigil keys show -c` and `vigil receipt --store` work on what the demo left.
 */
function keep(
  dataDir: string,
  passphrase: string,
): { dataDir: string; passphraseFile: string; config: string } {
  const passphraseFile = join(dataDir, "keystore-passphrase");
  writeFileSync(passphraseFile, passphrase + "\n", { mode: 0o600 });
  const config = join(dataDir, "config.json");
  writeFileSync(
    config,
    JSON.stringify(
      {
        dataDir,
        site: SITE,
        attest: { gatewayName: GATEWAY_NAME },
        chain: { deployment: "deployment.json" },
      },
      null,
      2,
    ) + "\n",
  );
  return { dataDir, passphraseFile, config };
}

/** The gateway's side of the live block. */
function gatewayFigures(rt: Runtime): GatewayFigures {
  const s = rt.ingest.counters.snapshot();
  const st = rt.store.stats();
  const f = rt.statsFields() as {
    batches: { sealed: number; anchored: number; anchorError: string | null };
    infer?: { windowsRun: number; windowsSkipped: number };
    alerts: { raised: number; cleared: number };
  };
  return {
    devices: s.devices.length,
    accepted: s.accepted,
    duplicates: s.duplicates,
    outOfOrder: s.outOfOrder,
    gaps: s.gaps,
    rejected: s.rejected,
    stored: st.lastIndex,
    batchesSealed: f.batches.sealed,
    batchesAnchored: f.batches.anchored,
    anchorError: f.batches.anchorError,
    windowsRun: f.infer?.windowsRun ?? 0,
    windowsSkipped: f.infer?.windowsSkipped ?? 0,
    alertsRaised: f.alerts.raised,
    alertsCleared: f.alerts.cleared,
  };
}

/**
 * Registry clients sending from anvil's development accounts `accounts` (the demo's admin, release
 * manager and approvers), in that order. When one cannot connect, the others are closed before
 * its error is thrown.
 */
async function devClients(
  rpcUrl: string,
  deployment: Deployment,
  accounts: readonly number[],
): Promise<EthersRegistryClient[]> {
  const settled = await Promise.allSettled(
    accounts.map((i) =>
      EthersRegistryClient.connect({
        rpcUrl,
        privateKey: ANVIL_DEV_KEYS[i]!,
        registry: deployment.contracts.VigilRegistry.address,
        releases: deployment.contracts.VigilReleases.address,
        pollingIntervalMs: 50,
      }),
    ),
  );
  const clients = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) {
    await Promise.all(clients.map((c) => c.close()));
    throw failed.reason;
  }
  return clients;
}

/**
 * The demo's model update: FD001's int8 model (its test RMSE within 0.3 of the float one, see
 * its manifest) as release 3.1.0 for profile cmapss-fd001, proposed by a release manager and
 * approved by 2 of 3 approvers; then the gateway's agent checks at once (as on a registry event),
 * shadows it on live windows and swaps it in while frames keep flowing.
 */
async function demoModelUpdate(
  rt: Runtime,
  rpcUrl: string,
  deployment: Deployment,
  dataDir: string,
  say: (line: string) => void = console.log,
): Promise<{ sha256: string; swapIndex: number }> {
  const agent = rt.updates?.model;
  if (!agent) throw new InternalError("the demo's runtime has no model update agent");
  const dir = join(dataDir, "releases", "fd001-int8");
  makeDirSync(dir);
  const base = JSON.parse(
    readFileSync(fromRoot("models", "cmapss", "fd001.manifest.json"), "utf8"),
  ) as ModelManifest;
  const m = variantManifest(base, "int8");
  m.version = "3.1.0";
  const file = join(dir, m.model.file);
  copyFileSync(fromRoot("models", "cmapss", m.model.file), file);
  const manifest = join(dir, "fd001.int8.manifest.json");
  writeFileSync(manifest, JSON.stringify(m, null, 2));
  const [admin, manager, a1, a2, a3] = await devClients(rpcUrl, deployment, [0, 2, 3, 4, 5]);
  try {
    await admin!.grantRole("releaseManager", manager!.account);
    for (const a of [a1!, a2!, a3!]) await admin!.grantRole("releaseApprover", a.account);
    const plan = await planRelease({ kind: "model", target: "cmapss-fd001", file, manifest });
    const { releaseId } = await manager!.proposeRelease(plan.input);
    say(
      `\n  release ${releaseId}: int8 FD001 ${m.version} (sha256 ${m.model.sha256.slice(0, 12)}…, ${plan.cid}) proposed by ${manager!.account}`,
    );
    await a1!.approveRelease(releaseId);
    await a2!.approveRelease(releaseId);
    const t0 = Date.now();
    say(`  release ${releaseId} approved 2 of 3 → ${(await a3!.getRelease(releaseId))?.status}`);
    await agent.check();
    const st = agent.status();
    if (!st.lastInstall) throw new InternalError(`model update failed: ${JSON.stringify(st.lastFailure)}`);
    const sh = st.lastInstall.shadow;
    if (!sh)
      throw new InternalError(
        `model release ${st.lastInstall.releaseId} is live without a shadow phase in this run`,
      );
    say(
      `  swapped in ${Date.now() - t0} ms after the approval: shadow ${sh.windows} windows, mean |Δ| ${sh.meanAbsDiff.toFixed(3)} max |Δ| ${sh.maxAbsDiff.toFixed(3)} cycles vs the float model, cost ${sh.costRatio.toFixed(2)}×; reported on chain: ${st.lastInstall.reported}\n`,
    );
    return { sha256: st.lastInstall.sha256, swapIndex: rt.store.stats().lastIndex };
  } finally {
    for (const c of [admin, manager, a1, a2, a3]) await c?.close();
  }
}

interface DemoPty {
  /** The simulator's end. */
  device: string;
  /** The gateway's end (serial config). */
  gateway: string;
  /** socat's PID. */
  pid: number;
  stop(): Promise<void>;
}

/** A socat pty pair in `dir`, or undefined when socat is not installed. */
async function demoPty(dir: string): Promise<DemoPty | undefined> {
  if (spawnSync("socat", ["-V"], { stdio: "ignore" }).status !== 0) return undefined;
  const device = join(dir, "tty-mcu");
  const gateway = join(dir, "tty-gw");
  const proc = spawn("socat", [`pty,raw,echo=0,link=${device}`, `pty,raw,echo=0,link=${gateway}`], {
    stdio: "ignore",
  });
  const until = Date.now() + 5000;
  while (!(existsSync(device) && existsSync(gateway))) {
    if (Date.now() > until || proc.exitCode !== null) {
      proc.kill();
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    device,
    gateway,
    pid: proc.pid!,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const done = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await done;
    },
  };
}

/**
 * The demo's firmware update: image 1.1.0 (security counter 2) for target "sim-mcu", proposed and
 * approved 2 of 3; the gateway offers it to the simulated MCU over the serial line, which
 * installs it, reboots and comes back with 1.1.0 in its HELLO.
 */
async function demoFirmwareUpdate(
  rt: Runtime,
  rpcUrl: string,
  deployment: Deployment,
  dataDir: string,
  say: (line: string) => void = console.log,
): Promise<{ releaseId: bigint; version: string; reported: boolean }> {
  const agent = rt.updates?.firmware;
  if (!agent) throw new InternalError("the demo's runtime has no firmware update agent");
  const file = join(dataDir, "releases", "sim-mcu-1.1.0.vgfw");
  const body = new Uint8Array(16_384).map((_, i) => (i * 7 + 3) & 0xff);
  writeFileSync(
    file,
    buildFirmwareImage({ version: { major: 1, minor: 1, patch: 0 }, securityCounter: 2, body }),
  );
  const [manager, a1, a2] = await devClients(rpcUrl, deployment, [2, 4, 5]);
  try {
    const plan = await planRelease({ kind: "firmware", target: "sim-mcu", file });
    const { releaseId } = await manager!.proposeRelease(plan.input);
    await a1!.approveRelease(releaseId);
    await a2!.approveRelease(releaseId);
    say(
      `\n  release ${releaseId}: firmware 1.1.0 for sim-mcu (${plan.input.size} B) approved 2 of 3; offering it`,
    );
    const t0 = Date.now();
    await agent.check();
    await agent.idle();
    const reported = agent.counters.reports > 0;
    say(`  firmware installed in ${Date.now() - t0} ms; reported on chain: ${reported}\n`);
    return { releaseId, version: "1.1.0", reported };
  } finally {
    for (const c of [manager, a1, a2]) await c?.close();
  }
}
