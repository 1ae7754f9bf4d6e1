/**
 * `vigil access …`: the registry's access state changes, from the command line, and the
 * credentials the edge needs (device passwords, reader tokens, Mosquitto files).
 *
 *   vigil access sensor register|suspend|resume|revoke --gateway-id HEX32 --sensor HEX8 [--public-key HEX [--key-type TYPE]]
 *   vigil access reader grant|revoke --reader ADDR (--gateway-id HEX32 | --site NAME|HEX32) [--days N]
 *   vigil access list --gateway-id HEX32 --rpc URL --deployment FILE
 *   vigil access device-password --sensor HEX8 --file FILE
 *   vigil token --reader-key-file FILE --gateway-id HEX32 --deployment FILE [--hours H]
 *   vigil access export-mosquitto --gateway-id HEX32 --rpc URL --deployment FILE --password-file FILE
 *     --out-dir DIR [--site-name NAME] [--gateway-name NAME] [--gateway-user NAME] [--pid PID]
 *
 * Contract errors (custom errors) come back as sentences (chain/errors.ts ContractRevertError).
 */
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { addressFlag, didYouMean, num, oneOf, parse as parseFlags, refuseFlags, rpcFlag } from "./args.ts";
import { reportCommandError } from "./fatal.ts";
import { hashPassword, PasswordFile } from "../access/passwords.ts";
import { MAX_TOKEN_LIFETIME_S, mintReaderToken } from "../access/reader-token.ts";
import { exportMosquitto } from "../access/mosquitto.ts";
import { DEFAULT_CONFIG } from "../config/config.ts";
import { vigilDomain } from "../chain/eip712.ts";
import { RpcRegistryEvents } from "../chain/events.ts";
import { RegistryView } from "../chain/registry-view.ts";
import { RpcPool } from "../chain/rpc.ts";
import { readKeyFile } from "../chain/sender-key.ts";
import { UsageError } from "../core/errors.ts";
import type { Hex } from "../core/hex.ts";
import { siteIdOf } from "../config/gateway-id.ts";
import { common, readDeployment, withClient } from "./chain.ts";
import { releasesOf } from "../chain/deploy.ts";
import { ACCESS_HELP as HELP, TOKEN_HELP } from "./help/access.ts";

const HEX8 = /^[0-9a-f]{8}$/;
const HEX32 = /^0x[0-9a-fA-F]{64}$/;

function need<T extends string>(v: T | undefined, name: string, re?: RegExp, what?: string): T {
  if (v === undefined || v === "") throw new UsageError(`--${name} is required`);
  if (re && !re.test(v)) throw new UsageError(`--${name} must be ${what ?? re.source}, got "${v}"`);
  return v;
}

const opts = {
  ...common,
  "gateway-id": { type: "string" },
  sensor: { type: "string" },
  "public-key": { type: "string" },
  "key-type": { type: "string" },
  reader: { type: "string" },
  site: { type: "string" },
  days: { type: "string" },
  "reader-key-file": { type: "string" },
  hours: { type: "string" },
  file: { type: "string" },
  "password-file": { type: "string" },
  "out-dir": { type: "string" },
  pid: { type: "string" },
  "gateway-user": { type: "string" },
  "site-name": { type: "string" },
  "gateway-name": { type: "string" },
} as const;

type Values = ReturnType<typeof parse>;
/** The shared flag parser (args.ts): a typo'd flag gets a did-you-mean, every error is a UsageError. */
function parse(argv: string[]) {
  return parseFlags(argv, opts).values;
}

/**
 * The flags each command reads. The commands share one option table, so without this a flag
 * another command reads (`access list --key-file FILE`, `token --rpc URL`) was accepted and did
 * nothing; it is now a usage error before any file or the chain is read.
 */
const FLAGS: Record<string, readonly (keyof typeof opts)[]> = {
  sensor: ["deployment", "rpc", "key", "key-file", "gateway-id", "sensor", "public-key", "key-type"],
  reader: ["deployment", "rpc", "key", "key-file", "reader", "gateway-id", "site", "days"],
  list: ["deployment", "rpc", "gateway-id"],
  "device-password": ["sensor", "file"],
  token: ["deployment", "gateway-id", "reader-key-file", "hours"],
  "export-mosquitto": [
    "deployment",
    "rpc",
    "gateway-id",
    "password-file",
    "out-dir",
    "pid",
    "gateway-user",
    "site-name",
    "gateway-name",
  ],
};

const SENSOR_ACTIONS = ["register", "suspend", "resume", "revoke"];
const READER_ACTIONS = ["grant", "revoke"];

/** An action that is not one of `known` is a usage error before any file or the chain is read. */
function checkAction(what: string, action: string | undefined, known: readonly string[]): void {
  if (action === undefined || !known.includes(action))
    throw new UsageError(
      `unknown ${what} action "${action ?? ""}" (${known.join(", ")})${action ? didYouMean(action, known) : ""}`,
    );
}

async function sensor(action: string | undefined, v: Values): Promise<number> {
  checkAction("sensor", action, SENSOR_ACTIONS);
  const gw = need(v["gateway-id"], "gateway-id", HEX32, "32 bytes of hex") as Hex;
  const id = Number.parseInt(need(v.sensor, "sensor", HEX8, "8 lowercase hex digits"), 16);
  // Checked before the chain. The contract stores any key of ≤ 128 bytes as given, but the gateway
  // verifies a sensor's signatures (device tokens) in the registry encoding of chain/keys.ts: a
  // 20-byte address (secp256k1) or a 64-byte x‖y (P-256); another length could never verify.
  if (action !== "register") refuseFlags(v, ["public-key", "key-type"], 'applies only to "sensor register"');
  if (v["public-key"] === undefined) refuseFlags(v, ["key-type"], "goes with --public-key");
  const pk = (v["public-key"] ?? "0x") as Hex;
  const kt =
    pk === "0x" ? "none" : oneOf("key-type", v["key-type"], ["secp256k1", "p256"] as const, "secp256k1");
  const bytes = kt === "secp256k1" ? 20 : 64;
  if (kt !== "none" && !new RegExp(`^0x[0-9a-fA-F]{${2 * bytes}}$`).test(pk))
    throw new UsageError(
      `--public-key for ${kt} must be 0x and ${bytes} bytes of hex (${kt === "secp256k1" ? "the key's address" : "x‖y"}), got "${pk}"`,
    );
  return withClient(v, `vigil access sensor ${action ?? ""}`.trimEnd(), async (c) => {
    let tx: string;
    switch (action) {
      case "register": {
        tx = (await c.registerSensor(gw, id, kt, pk)).txHash;
        break;
      }
      case "suspend":
        tx = (await c.setSensorStatus(gw, id, "suspended")).txHash;
        break;
      case "resume":
        tx = (await c.setSensorStatus(gw, id, "active")).txHash;
        break;
      case "revoke":
        tx = (await c.setSensorStatus(gw, id, "revoked")).txHash;
        break;
      default:
        throw new UsageError(`unknown sensor action "${action}" (register, suspend, resume, revoke)`);
    }
    process.stdout.write(
      `sensor ${v.sensor} ${action === "register" ? "registered" : `${action}${action.endsWith("e") ? "d" : "ed"}`} under gateway ${gw} (tx ${tx})\n`,
    );
  });
}

async function reader(action: string | undefined, v: Values): Promise<number> {
  checkAction("reader", action, READER_ACTIONS);
  const r = addressFlag("reader", need(v.reader, "reader"));
  if (!v["gateway-id"] === !v.site) throw new UsageError("give --gateway-id or --site (one of them)");
  if (v["gateway-id"] !== undefined) need(v["gateway-id"], "gateway-id", HEX32, "32 bytes of hex");
  if (action === "revoke") refuseFlags(v, ["days"], 'applies only to "reader grant"');
  // At most 100 years: the grant's end is a uint64 of seconds on chain, and a bigger number only
  // overflowed into a stack trace.
  const days = num("days", v.days, 30, 0, 36_500);
  if (days === 0) throw new UsageError(`--days must be more than 0, got "${v.days}"`);
  return withClient(v, `vigil access reader ${action ?? ""}`.trimEnd(), async (c) => {
    const until = (await c.now()) + BigInt(Math.round(days * 86_400));
    let tx: string;
    const where = v.site ? `site ${siteIdOf(v.site)}` : `gateway ${v["gateway-id"]}`;
    if (action === "grant")
      tx = v.site
        ? (await c.grantSiteAccess(siteIdOf(v.site), r, until)).txHash
        : (await c.grantGatewayAccess(v["gateway-id"] as Hex, r, until)).txHash;
    else if (action === "revoke")
      tx = v.site
        ? (await c.revokeSiteAccess(siteIdOf(v.site), r)).txHash
        : (await c.revokeGatewayAccess(v["gateway-id"] as Hex, r)).txHash;
    else throw new UsageError(`unknown reader action "${action}" (grant, revoke)`);
    process.stdout.write(
      action === "grant"
        ? `reader ${r} may read ${where} until ${new Date(Number(until) * 1000).toISOString()} (tx ${tx})\n`
        : `reader ${r} no longer reads ${where} (tx ${tx})\n`,
    );
  });
}

/** The registry's view of one gateway, folded from its events (what the gateway's watch sees). */
async function viewOf(v: Values): Promise<RegistryView> {
  const d = readDeployment(v.deployment);
  const gw = need(v["gateway-id"], "gateway-id", HEX32, "32 bytes of hex") as Hex;
  const rpc = new RpcPool({
    urls: [rpcFlag("rpc", need(v.rpc, "rpc"))],
    healthCheckIntervalMs: 0,
    expectedChainId: BigInt(d.chainId),
  });
  try {
    const src = new RpcRegistryEvents({
      rpc,
      registry: d.contracts.VigilRegistry.address,
      releases: releasesOf(d),
    });
    const head = await src.head();
    const view = new RegistryView(gw);
    for (const e of await src.events(d.deployBlock, head.number)) view.apply(e);
    return view;
  } finally {
    rpc.close();
  }
}

async function list(v: Values): Promise<number> {
  const view = await viewOf(v);
  const now = Math.floor(Date.now() / 1000);
  const g = view.gateway;
  const out: string[] = [];
  out.push(
    g
      ? `gateway ${view.gatewayId}: ${g.status}, site ${g.site}, key ${g.keyType} ${g.publicKey} (epoch ${g.keyEpoch})`
      : `gateway ${view.gatewayId}: not registered`,
  );
  out.push(`sensors (${view.sensors.size}):`);
  for (const [id, s] of [...view.sensors].sort((a, b) => a[0] - b[0]))
    out.push(
      `  ${id.toString(16).padStart(8, "0")}  ${s.status}${s.keyType === "none" ? "" : `  ${s.keyType} ${s.publicKey}`}`,
    );
  out.push("readers:");
  const readers = new Set<Hex>([...view.gatewayGrants.keys()]);
  if (g)
    for (const k of view.siteGrants.keys())
      if (k.startsWith(`${g.site}/`)) readers.add(k.slice(g.site.length + 1) as Hex);
  for (const a of view.auditors) readers.add(a);
  for (const r of readers) {
    const st = view.reader(r, now);
    out.push(
      `  ${r}  ${st.auditor ? "auditor" : st.allowed ? `until ${new Date(st.until * 1000).toISOString()}` : "expired"}`,
    );
  }
  process.stdout.write(`${out.join("\n")}\n`);
  return 0;
}

function devicePassword(v: Values): number {
  const id = need(v.sensor, "sensor", HEX8, "8 lowercase hex digits");
  const file = need(v.file, "file");
  const before = existsSync(file) ? readPasswords(file) : { text: "", file: new PasswordFile() };
  if (before.file.has(id))
    throw new UsageError(`${file} already holds a password for ${id}; remove its line first`);
  const secret = randomBytes(18).toString("base64url");
  // A file whose last line has no newline (edited by hand) would glue the new entry onto it.
  const sep = before.text === "" || before.text.endsWith("\n") ? "" : "\n";
  appendFileSync(file, `${sep}${hashPassword(id, secret)}\n`, { mode: 0o600 });
  process.stdout.write(
    `device ${id}: MQTT username "${id}", password "${secret}" (shown once; only its hash is stored in ${file})\n`,
  );
  return 0;
}

async function token(v: Values): Promise<number> {
  const d = readDeployment(v.deployment);
  const gw = need(v["gateway-id"], "gateway-id", HEX32, "32 bytes of hex") as Hex;
  // Mode 0600, first line, checked without ever echoing the key (ethers would print a malformed one).
  const key = readKeyFile(need(v["reader-key-file"], "reader-key-file"), "--reader-key-file");
  // Decimal (args.ts num): Number() took "0x5" as 5 hours.
  const hours = num("hours", v.hours, 12, 0, MAX_TOKEN_LIFETIME_S / 3600);
  if (hours === 0) throw new UsageError(`--hours must be more than 0, got "${v.hours}"`);
  const t = await mintReaderToken(
    key,
    vigilDomain(BigInt(d.chainId), d.contracts.VigilRegistry.address),
    gw,
    Math.floor(Date.now() / 1000 + hours * 3600),
  );
  process.stdout.write(`${JSON.stringify(t)}\n`);
  return 0;
}

/** A topic level as the config's `site` and `attest.gatewayName` take it (no "/", "+", "#", spaces). */
const NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** A process id: Linux's pid_max is at most 2^22. */
const PID = /^[1-9][0-9]{0,6}$/;

async function exportCmd(v: Values): Promise<number> {
  // Everything is checked before the chain is read or a file written: the names go into the ACL
  // file's topic lines, and --pid into kill(2), where 0 or -1 would signal whole process groups.
  const site = need(v["site-name"] ?? "site-1", "site-name", NAME, "1-64 of A-Z a-z 0-9 . _ -");
  // The name a gateway on this machine has by default (attest.gatewayName), as its topics use it.
  const gatewayName = need(
    v["gateway-name"] ?? DEFAULT_CONFIG.attest.gatewayName,
    "gateway-name",
    NAME,
    "1-64 of A-Z a-z 0-9 . _ -",
  );
  const pid = v.pid === undefined ? undefined : Number(need(v.pid, "pid", PID, "a process id"));
  if (pid !== undefined) {
    try {
      process.kill(pid, 0); // exists, and may be signalled by this user
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UsageError(
        code === "EPERM"
          ? `--pid ${pid}: this user may not signal that process; run as the broker's user or root`
          : `--pid ${pid}: no such process; give the running Mosquitto's PID`,
      );
    }
  }
  const passwordFile = need(v["password-file"], "password-file");
  const passwords = readPasswords(passwordFile);
  let gatewayLine: string | undefined;
  if (v["gateway-user"] !== undefined) {
    const user = need(v["gateway-user"], "gateway-user");
    gatewayLine = passwords.file.line(user);
    if (!gatewayLine)
      throw new UsageError(`--gateway-user ${user}: ${passwordFile} has no line for that user`);
  }
  const outDir = need(v["out-dir"], "out-dir");
  const view = await viewOf(v);
  const r = exportMosquitto({
    view,
    passwords: passwords.text,
    outDir,
    site,
    gatewayName,
    ...(gatewayLine ? { gatewayLine } : {}),
    ...(pid !== undefined ? { pid } : {}),
  });
  process.stdout.write(
    `wrote ${r.passwordFile} (${r.devices} devices, ${r.readers} readers${gatewayLine ? ", the gateway's user" : ""}), ${r.aclFile} and ${r.dynsecFile}${r.reloaded ? "; sent SIGHUP" : ""}\n`,
  );
  return 0;
}

/** A password file's text and its parsed entries (mosquitto_passwd `$7$`); problems are usage errors. */
function readPasswords(file: string): { text: string; file: PasswordFile } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    return { text, file: new PasswordFile(text) };
  } catch (e) {
    throw new UsageError(`${file}: ${(e as Error).message}`);
  }
}

/** Entry point of `vigil access`; returns the exit code. */
export async function accessCommand(argv: string[], viaToken = false): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
      process.stdout.write(HELP);
      return cmd === undefined ? 2 : 0;
    }
    const sub = cmd === "sensor" || cmd === "reader" ? rest[0] : undefined;
    const v = parse(cmd === "sensor" || cmd === "reader" ? rest.slice(1) : rest);
    if (v.help || sub === "--help" || sub === "-h") {
      process.stdout.write(HELP);
      return 0;
    }
    const reads = Object.hasOwn(FLAGS, cmd) ? FLAGS[cmd] : undefined;
    if (reads) {
      const name = cmd === "token" && viaToken ? "vigil token" : `vigil access ${cmd}`;
      const given = (Object.keys(v) as (keyof typeof opts)[]).find(
        (f) => f !== "help" && v[f] !== undefined && !reads.includes(f),
      );
      // With the closest flag the command does read (export-mosquitto --site: --site-name).
      if (given !== undefined)
        throw new UsageError(
          `--${given} does nothing for "${name}"${didYouMean(
            `--${given}`,
            reads.map((f) => `--${f}`),
          )}`,
        );
    }
    switch (cmd) {
      case "sensor":
        return await sensor(sub, v);
      case "reader":
        return await reader(sub, v);
      case "list":
        return await list(v);
      case "device-password":
        return devicePassword(v);
      case "token":
        return await token(v);
      case "export-mosquitto":
        return await exportCmd(v);
      default:
        throw new UsageError(
          `unknown access command "${cmd}"${didYouMean(cmd, ["sensor", "reader", "list", "device-password", "token", "export-mosquitto"])}`,
        );
    }
  } catch (e) {
    const name = cmd === "token" && viaToken ? "token" : "access";
    return reportCommandError(name, e, { help: `vigil ${name}`, fixes: true });
  }
}

/** `vigil token …` = `vigil access token …`, with its own help. */
export function tokenCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(TOKEN_HELP);
    return Promise.resolve(0);
  }
  return accessCommand(["token", ...argv], true);
}
