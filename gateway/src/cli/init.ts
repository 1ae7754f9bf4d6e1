/** `vigil init`: writes a commented starting config with a gateway name distinct per box. */
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import stripJsonComments from "strip-json-comments";
import { DEFAULT_CONFIG, defaultGatewayName, resolveConfig } from "../config/config.ts";
import { writeFileAtomic } from "../core/atomic-file.ts";
import { ConfigError, UsageError, VigilError } from "../core/errors.ts";
import { parse } from "./args.ts";
import { makeDir } from "../core/make-dir.ts";
import { INIT_HELP } from "./help/init.ts";

const q = (v: unknown) => JSON.stringify(v);

/** The setting each flag fills (a serial port's settings are serial.N.*). */
const FLAG_OF: Record<string, string> = {
  dataDir: "--data-dir",
  site: "--site",
  "attest.gatewayName": "--name",
  serial: "--serial",
  "chain.rpcUrl": "--rpc",
  "chain.deployment": "--deployment",
};

/** The commented file, as `loadConfigFile` reads it (checked before it is written). */
export function initConfigText(o: {
  name: string;
  site: string;
  dataDir: string;
  serial: string[];
  rpc: string | null;
  deployment: string | null;
}): string {
  const d = DEFAULT_CONFIG;
  return `// Vigil gateway configuration (written by "vigil init"). JSON with comments; every key is
// optional and falls back to its default (README "Configuration"). Command-line flags override it.
{
  // Store, keystore and deployment file live here (relative paths below resolve against it).
  "dataDir": ${q(o.dataDir)},
  // Site and gateway names: MQTT topic levels, and the gateway's on-chain id is
  // keccak256("vigil-gateway:" + gatewayName) unless attest.gatewayId is set. Keep the name
  // unique per gateway: a second registration of the same id is refused.
  "site": ${q(o.site)},
  "attest": {
    "gatewayName": ${q(o.name)},
    // Encrypted signing key ("vigil keys init"); its passphrase comes from
    // VIGIL_KEYSTORE_PASSPHRASE or the file named by VIGIL_KEYSTORE_PASSPHRASE_FILE.
    "keystore": ${q(d.attest.keystore)},
    // Seal a signed batch every T ms or K frames, whichever comes first.
    "batchIntervalMs": ${d.attest.batchIntervalMs},
    "batchMaxLeaves": ${d.attest.batchMaxLeaves}
  },
  // Microcontrollers on USB serial; udev's /dev/serial/by-id/ names survive re-plugging.
  "serial": ${q(o.serial.map((path) => ({ path, baudRate: 115200 })))},
  "mqtt": {
    // The embedded broker listens on loopback only; anything wider needs authentication.
    "embedded": { "enabled": ${d.mqtt.embedded.enabled}, "host": ${q(d.mqtt.embedded.host)}, "port": ${d.mqtt.embedded.port} },
    // An external broker to subscribe to instead or as well (mqtts://host:8883); its user and
    // password here, not in the URL (this file is 0600; a --mqtt-url flag shows in ps).
    "url": null,
    "username": null,
    "password": null
  },
  "ingest": {
    // null accepts any device id (development); list 8-hex-digit ids to accept only those.
    "allow": null,
    "revoked": []
  },
  "chain": {
    // Anchoring: an L2 JSON-RPC endpoint, the deployment file, and a funded account paying gas
    // (chain.senderKeyFile, mode 0600, or VIGIL_CHAIN_SENDER_KEY). Without rpcUrl batches wait.
    "rpcUrl": ${q(o.rpc)},
    "deployment": ${q(o.deployment)},
    "senderKeyFile": null
  },
  "log": { "level": ${q(d.log.level)}, "statsIntervalMs": ${d.log.statsIntervalMs} }
}
`;
}

export async function initCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    out: { type: "string", short: "o" },
    name: { type: "string" },
    site: { type: "string" },
    "data-dir": { type: "string" },
    serial: { type: "string", multiple: true },
    rpc: { type: "string" },
    deployment: { type: "string" },
    force: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) {
    process.stdout.write(INIT_HELP);
    return 0;
  }
  const out = v.out ?? "vigil.config.json";
  if (existsSync(out) && !v.force)
    throw new VigilError("CONFIG_EXISTS", `${out} exists; use --force to replace it`);
  const text = initConfigText({
    name: v.name ?? defaultGatewayName(),
    site: v.site ?? DEFAULT_CONFIG.site,
    dataDir: v["data-dir"] ?? DEFAULT_CONFIG.dataDir,
    serial: v.serial ?? [],
    rpc: v.rpc ?? null,
    deployment: v.deployment ?? null,
  });
  // Validate before writing, so a bad --name or --rpc is refused naming the flag typed and the
  // setting it fills ("--rpc (chain.rpcUrl): must match …").
  try {
    resolveConfig(JSON.parse(stripJsonComments(text)));
  } catch (e) {
    if (e instanceof ConfigError) {
      const flag = Object.entries(FLAG_OF).find(
        ([setting]) => e.path === setting || e.path.startsWith(`${setting}.`),
      )?.[1];
      throw new UsageError(flag ? `${flag} (${e.shortMessage.replace(": ", "): ")}` : e.shortMessage);
    }
    if (e instanceof VigilError) throw new UsageError(e.shortMessage);
    throw e;
  }
  await makeDir(dirname(out));
  await writeFileAtomic(out, text, { mode: 0o600 });
  process.stdout.write(
    `wrote ${out}\nnext:\n` +
      `  vigil keys init -c ${out}   # the gateway's signing key
` +
      `  vigil chain register-gateway …   # see README "Going to production"
` +
      `  vigil doctor -c ${out}   # check everything before starting
` +
      `  vigil start -c ${out}\n`,
  );
  return 0;
}
