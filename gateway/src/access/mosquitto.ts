/**
 * The registry's view as Mosquitto configuration (mosquitto 2.x), regenerated after every registry
 * change: a password file (authentication; Mosquitto re-reads `password_file` on SIGHUP and
 * disconnects users no longer in it), the dynamic-security plugin's state (authorisation with the
 * same allow/deny table as the embedded broker, broker-policy.ts; mosquitto-dynsec.ts), and, for a
 * broker without the plugin, an ACL file with the same table.
 *
 * - Devices: a sensor appears only while it is registered and active under this gateway and has a
 *   line in the device password file; it may write `vigil/v1/ingest/<id>` and `…/json` and read
 *   `…/<id>/nack`.
 * - Readers: Mosquitto cannot check EIP-712 reader tokens without a plugin, so on an external
 *   broker a reader authenticates with a provisioned secret (a password-file line whose username is
 *   its lower-case address, `vigil access device-password --sensor` style); it appears only while
 *   the registry allows it, reading `vigil/v1/<site>/<gateway>/#` (auditors also the ingest topics).
 * - The gateway: its own user (mqtt.username) reads the ingest topics and writes NACKs, alerts,
 *   health and status (and administers the dynamic-security plugin).
 *
 * The files are written 0600 by the exporting user: Mosquitto started as root drops to its
 * `user` (default "mosquitto"), so run the export as that user or give it the files.
 *
 * Differences from the embedded broker (documented, tested in test/interop/mosquitto-access.test.ts):
 * Mosquitto drops a denied PUBLISH (it still PUBACKs under MQTT 3.1.1, PUBACK 0x87 under MQTT 5)
 * instead of disconnecting; it cannot restrict the retain flag per user. With the ACL file alone
 * (no plugin) Mosquitto 2.0 grants every SUBSCRIBE and filters at delivery; with the plugin a
 * denied SUBSCRIBE gets 0x80 / 0x87 like on the embedded broker.
 */
import { join } from "node:path";
import type { RegistryView } from "../chain/registry-view.ts";
import { writeFileAtomicSync } from "../core/atomic-file.ts";
import type { Hex } from "../core/hex.ts";
import { dynsecConfig, dynsecState, type DynsecState, type ExportUser } from "./mosquitto-dynsec.ts";
import { makeDirSync } from "../core/make-dir.ts";

export type { ExportUser };

export interface MosquittoExportOptions {
  view: RegistryView;
  /** Password-file text holding device (and reader) credentials, `$7$` lines. */
  passwords: string;
  outDir: string;
  site: string;
  gatewayName: string;
  /** The gateway's own password-file line (mqtt.username), kept as is. */
  gatewayLine?: string;
  /** Unix seconds (default now): readers whose grant has expired are left out. */
  nowSec?: number;
  /** A running Mosquitto to SIGHUP after writing. */
  pid?: number;
}

export interface MosquittoExport {
  passwordFile: string;
  aclFile: string;
  /** The dynamic-security plugin's initial state (mosquitto-dynsec.ts). */
  dynsecFile: string;
  /** The plugin's state the registry wants now, for syncDynsec on a running broker. */
  dynsec: DynsecState;
  devices: number;
  readers: number;
  reloaded: boolean;
}

/** The users the registry allows now, in a stable order (gateway, devices by id, readers). */
export function exportUsers(o: Omit<MosquittoExportOptions, "outDir" | "pid">): ExportUser[] {
  const now = o.nowSec ?? Math.floor(Date.now() / 1000);
  const own = `vigil/v1/${o.site}/${o.gatewayName}`;
  const lines = new Map<string, string>();
  for (const raw of o.passwords.split("\n")) {
    const l = raw.trim();
    if (l === "" || l.startsWith("#")) continue;
    lines.set(l.slice(0, l.indexOf(":")), l);
  }
  const users: ExportUser[] = [];
  if (o.gatewayLine) {
    users.push({
      username: o.gatewayLine.slice(0, o.gatewayLine.indexOf(":")),
      line: o.gatewayLine,
      kind: "gateway",
      publish: ["vigil/v1/ingest/+/nack", `${own}/#`],
      read: ["vigil/v1/ingest/#", `${own}/#`],
    });
  }
  for (const [id, s] of [...o.view.sensors].sort((a, b) => a[0] - b[0])) {
    const u = id.toString(16).padStart(8, "0");
    const line = lines.get(u);
    if (s.status !== "active" || !line) continue;
    users.push({
      username: u,
      line,
      kind: "device",
      publish: [`vigil/v1/ingest/${u}`, `vigil/v1/ingest/${u}/json`],
      read: [`vigil/v1/ingest/${u}/nack`],
    });
  }
  for (const [u, line] of lines) {
    if (!/^0x[0-9a-f]{40}$/.test(u)) continue;
    const st = o.view.reader(u as Hex, now);
    if (!st.allowed) continue;
    users.push({
      username: u,
      line,
      kind: st.auditor ? "auditor" : "reader",
      publish: [],
      read: st.auditor ? [`${own}/#`, "vigil/v1/ingest/#", "$SYS/#"] : [`${own}/#`],
    });
  }
  return users;
}

/** The ACL text and the filtered password-file text for `o` (pure; export writes them). */
export function mosquittoFiles(o: Omit<MosquittoExportOptions, "outDir" | "pid">): {
  passwd: string;
  acl: string;
  devices: number;
  readers: number;
} {
  const users = exportUsers(o);
  const acl: string[] = [`# generated by vigil from the registry; do not edit (regenerated on every change)`];
  for (const u of users) {
    acl.push("", `user ${u.username}`);
    // The gateway's own topics are both written and read: one readwrite line.
    for (const t of u.publish) acl.push(`topic ${u.read.includes(t) ? "readwrite" : "write"} ${t}`);
    for (const t of u.read) if (!u.publish.includes(t)) acl.push(`topic read ${t}`);
  }
  return {
    passwd: `${users.map((u) => u.line).join("\n")}\n`,
    acl: `${acl.join("\n")}\n`,
    devices: users.filter((u) => u.kind === "device").length,
    readers: users.filter((u) => u.kind === "reader" || u.kind === "auditor").length,
  };
}

/**
 * Writes `vigil.passwd`, `vigil.acl` and `vigil.dynsec.json` (0600, atomically) into outDir and
 * SIGHUPs `pid`. A broker using the dynamic-security plugin also needs `syncDynsec(…dynsec)`.
 */
export function exportMosquitto(o: MosquittoExportOptions): MosquittoExport {
  const f = mosquittoFiles(o);
  const dynsec = dynsecState(exportUsers(o));
  makeDirSync(o.outDir, 0o700);
  const passwordFile = join(o.outDir, "vigil.passwd");
  const aclFile = join(o.outDir, "vigil.acl");
  const dynsecFile = join(o.outDir, "vigil.dynsec.json");
  for (const [path, text] of [
    [passwordFile, f.passwd],
    [aclFile, f.acl],
    [dynsecFile, dynsecConfig(dynsec)],
  ] as const) {
    // Its temporary file has a fresh name, created exclusively (O_EXCL does not follow a symlink):
    // a file or link planted at a predictable name cannot receive the credentials or set the mode.
    writeFileAtomicSync(path, text, { mode: 0o600 });
  }
  let reloaded = false;
  if (o.pid !== undefined) {
    process.kill(o.pid, "SIGHUP");
    reloaded = true;
  }
  return { passwordFile, aclFile, dynsecFile, dynsec, devices: f.devices, readers: f.readers, reloaded };
}
