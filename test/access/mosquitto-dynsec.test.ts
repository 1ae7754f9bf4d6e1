/**
 * The dynamic-security export (access/mosquitto-dynsec.ts) as pure functions: the plugin state the
 * registry wants, its configuration file, and the commands that turn one state into another; and
 * the files exportMosquitto writes. The
 * same state on a real Mosquitto 2.0.11: test/interop/mosquitto-access.test.ts.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Aedes } from "aedes";
import { describe, expect, it } from "vitest";
import { exportMosquitto, exportUsers } from "../../gateway/src/access/mosquitto.ts";
import {
  dynsecCommands,
  dynsecConfig,
  dynsecState,
  syncDynsec,
  type DynsecState,
} from "../../gateway/src/access/mosquitto-dynsec.ts";
import { hashPassword } from "../../gateway/src/access/passwords.ts";
import { RegistryView } from "../../gateway/src/chain/registry-view.ts";
import { registryWatched, resolveConfig } from "../../gateway/src/config/config.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { freePort } from "../helpers/procs.ts";
import { DEV_A, DEV_B, DEV_UNREG, GW, GW_NAME, hex8, SECRET, SITE, SITE_NAME } from "./rig.ts";

const READER = `0x${"12".repeat(20)}` as Hex;

function view(): RegistryView {
  const v = new RegistryView(GW);
  v.apply({
    name: "GatewayRegistered",
    gatewayId: GW,
    site: SITE,
    keyType: "secp256k1",
    publicKey: `0x${"ab".repeat(20)}`,
  });
  v.apply({ name: "SensorRegistered", gatewayId: GW, sensorId: DEV_A, keyType: "none", publicKey: "0x" });
  v.apply({ name: "SensorRegistered", gatewayId: GW, sensorId: DEV_B, keyType: "none", publicKey: "0x" });
  v.apply({ name: "SensorStatusChanged", gatewayId: GW, sensorId: DEV_B, status: "suspended" });
  v.apply({ name: "GatewayAccessGranted", gatewayId: GW, reader: READER, expiresAt: 2_000_000_000 });
  return v;
}

const passwords = [DEV_A, DEV_B, DEV_UNREG]
  .map((d) => hashPassword(hex8(d), SECRET))
  .concat(hashPassword(READER, "r"));

function state(v = view()): DynsecState {
  return dynsecState(
    exportUsers({
      view: v,
      passwords: passwords.join("\n"),
      site: SITE_NAME,
      gatewayName: GW_NAME,
      gatewayLine: hashPassword("vigil-gateway", "g"),
      nowSec: 1_900_000_000,
    }),
  );
}

describe("Mosquitto dynamic-security export", () => {
  it("one role per allowed user: the gateway (also the plugin's admin), active devices, allowed readers; nobody else", () => {
    const s = state();
    expect(s.clients).toEqual([
      { username: "vigil-gateway", roles: ["vigil:vigil-gateway"] },
      { username: hex8(DEV_A), roles: [`vigil:${hex8(DEV_A)}`] },
      { username: READER, roles: [`vigil:${READER}`] },
    ]);
    const dev = s.roles.find((r) => r.rolename === `vigil:${hex8(DEV_A)}`)!;
    expect(dev.acls).toEqual([
      { acltype: "publishClientSend", topic: `vigil/v1/ingest/${hex8(DEV_A)}`, allow: true },
      { acltype: "publishClientSend", topic: `vigil/v1/ingest/${hex8(DEV_A)}/json`, allow: true },
      { acltype: "subscribePattern", topic: `vigil/v1/ingest/${hex8(DEV_A)}/nack`, allow: true },
      { acltype: "publishClientReceive", topic: `vigil/v1/ingest/${hex8(DEV_A)}/nack`, allow: true },
    ]);
    const reader = s.roles.find((r) => r.rolename === `vigil:${READER}`)!;
    expect(reader.acls.map((a) => `${a.acltype} ${a.topic}`)).toEqual([
      `subscribePattern vigil/v1/${SITE_NAME}/${GW_NAME}/#`,
      `publishClientReceive vigil/v1/${SITE_NAME}/${GW_NAME}/#`,
    ]);
    const gw = s.roles.find((r) => r.rolename === "vigil:vigil-gateway")!;
    expect(gw.acls.filter((a) => a.topic.startsWith("$CONTROL/"))).toHaveLength(3);
  });

  it("the plugin's configuration denies everything not granted (no password: the password file authenticates)", () => {
    const cfg = JSON.parse(dynsecConfig(state())) as {
      defaultACLAccess: Record<string, boolean>;
      clients: Array<Record<string, unknown>>;
    };
    expect(cfg.defaultACLAccess).toEqual({
      publishClientSend: false,
      publishClientReceive: false,
      subscribe: false,
      unsubscribe: true,
    });
    for (const c of cfg.clients) expect(c).not.toHaveProperty("password");
  });

  it("commands: nothing when equal; a revoked sensor is deleted with its role; a new grant creates role then client; a changed ACL is patched", () => {
    const s = state();
    expect(dynsecCommands(s, s)).toEqual([]);
    const revoked = view();
    revoked.apply({ name: "SensorStatusChanged", gatewayId: GW, sensorId: DEV_A, status: "revoked" });
    expect(dynsecCommands(s, state(revoked))).toEqual([
      { command: "deleteClient", username: hex8(DEV_A) },
      { command: "deleteRole", rolename: `vigil:${hex8(DEV_A)}` },
    ]);
    const cmds = dynsecCommands(state(revoked), s);
    expect(cmds.map((c) => c.command)).toEqual(["createRole", "createClient"]);
    const patched: DynsecState = {
      ...s,
      roles: s.roles.map((r) =>
        r.rolename === `vigil:${READER}`
          ? { ...r, acls: [{ acltype: "subscribePattern", topic: "#", allow: true }] }
          : r,
      ),
    };
    expect(
      dynsecCommands(patched, s).map((c) => `${c.command} ${String(c.acltype)} ${String(c.topic)}`),
    ).toEqual([
      "removeRoleACL subscribePattern #",
      `addRoleACL subscribePattern vigil/v1/${SITE_NAME}/${GW_NAME}/#`,
      `addRoleACL publishClientReceive vigil/v1/${SITE_NAME}/${GW_NAME}/#`,
    ]);
  });

  it("commands: clients and roles the export does not manage are left alone", () => {
    const s = state();
    const current: DynsecState = {
      roles: [...s.roles, { rolename: "admin", acls: [] }],
      clients: [...s.clients, { username: "operator", roles: ["admin"] }],
    };
    expect(dynsecCommands(current, s)).toEqual([]);
  });

  it("error: an unreachable broker is a DynsecError naming the URL without its password", async () => {
    const port = await freePort();
    const err = (await syncDynsec({
      url: `mqtt://u:s3cr3t-pw@127.0.0.1:${port}`,
      username: "u",
      password: "s3cr3t-pw",
      desired: state(),
      timeoutMs: 2000,
    }).catch((e: unknown) => e)) as Error & { code?: string };
    expect(err).toMatchObject({ name: "DynsecError", code: "DYNSEC_UNREACHABLE" });
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).not.toContain("s3cr3t-pw");
  });

  it("error: a broker that withholds the PUBACK of the command: DYNSEC_TIMEOUT at the deadline, not an unhandled rejection", async () => {
    const broker = await Aedes.createBroker();
    // The $CONTROL publish is acknowledged only after 1.5 s (a busy broker, a lossy link).
    broker.authorizePublish = (_c, _p, cb) => setTimeout(() => cb(null), 1500);
    const server = createServer((s) => broker.handle(s));
    await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
    try {
      const t0 = performance.now();
      const err = (await syncDynsec({
        url: `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`,
        username: "u",
        password: "p",
        desired: state(),
        timeoutMs: 300,
      }).catch((e: unknown) => e)) as Error & { code?: string };
      expect(err).toMatchObject({ name: "DynsecError", code: "DYNSEC_TIMEOUT" });
      expect(performance.now() - t0).toBeLessThan(1500);
    } finally {
      await new Promise<void>((res) => broker.close(() => res()));
      await new Promise((res) => server.close(res));
    }
  });

  it("error: exportMosquitto never writes through a planted link: a symlink at the old temporary name is left alone, the files are 0600", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-mosq-export-"));
    const victim = join(dir, "victim.txt");
    writeFileSync(victim, "untouched\n");
    symlinkSync(victim, join(dir, "vigil.passwd.tmp"));
    const out = exportMosquitto({
      view: view(),
      passwords: passwords.join("\n"),
      outDir: dir,
      site: SITE_NAME,
      gatewayName: GW_NAME,
      nowSec: 1_900_000_000,
    });
    expect(readFileSync(victim, "utf8")).toBe("untouched\n");
    for (const f of [out.passwordFile, out.aclFile, out.dynsecFile])
      expect(statSync(f).mode & 0o777, f).toBe(0o600);
    expect(readFileSync(out.passwordFile, "utf8")).toContain(`${hex8(DEV_A)}:$7$`);
    expect(readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual(["vigil.passwd.tmp"]);
  });

  it("error: the dynamic-security export without the gateway's broker credentials is refused at start, naming the fix", () => {
    // The export runs from the registry watch, which reads the chain.
    const chain = { deployment: "deployment.json", rpcUrl: "http://127.0.0.1:8545" };
    expect(() => resolveConfig({ chain, registry: { mosquittoExport: { dir: "m" } } })).toThrow(
      /registry\.mosquittoExport\.dynsec.*mqtt\.url.*dynsec: false/,
    );
    const c = resolveConfig({ chain, registry: { mosquittoExport: { dir: "m", dynsec: false } } });
    expect(c.registry.mosquittoExport).toMatchObject({ dynsec: false });
    expect(registryWatched(c)).toBe(true);
  });
});
