/** `vigil start`: run the gateway (options here; the running part is start-run.ts, loaded on start). */
import { resolve } from "node:path";
import {
  loadConfigFile,
  resolveConfig,
  MIN_STATS_INTERVAL_MS,
  type GatewayConfig,
} from "../config/config.ts";
import { int, oneOf, parse, rpcFlag } from "./args.ts";
import { redactUrl, UsageError } from "../core/errors.ts";
import { StartupError } from "./fatal.ts";
import { START_HELP } from "./help/start.ts";

export function startConfig(argv: string[]): GatewayConfig | undefined {
  const { values: v } = parse(argv, {
    config: { type: "string", short: "c" },
    "data-dir": { type: "string" },
    rpc: { type: "string" },
    deployment: { type: "string" },
    serial: { type: "string", multiple: true },
    baud: { type: "string" },
    "mqtt-port": { type: "string" },
    "mqtt-host": { type: "string" },
    "no-embedded": { type: "boolean" },
    "mqtt-auth": { type: "string" },
    "mqtt-password-file": { type: "string" },
    "mqtt-insecure": { type: "boolean" },
    admission: { type: "string" },
    "mqtt-url": { type: "string" },
    "stats-ms": { type: "string" },
    "log-level": { type: "string" },
    "log-format": { type: "string" },
    "http-port": { type: "string" },
    "no-http": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) return undefined;
  const base = v.config ? loadConfigFile(v.config) : resolveConfig({});
  const cfg: GatewayConfig = structuredClone(base);
  if (v["data-dir"]) cfg.dataDir = v["data-dir"];
  // A flag's bad value is a usage error naming the flag (exit 2), as for the other flags below;
  // the config's own values are checked (exit 1, naming the setting) by resolveConfig.
  if (v.rpc) cfg.chain.rpcUrl = rpcFlag("rpc", v.rpc);
  // A flag's path is where the command was typed (the config file's relative paths are dataDir's).
  if (v.deployment) cfg.chain.deployment = resolve(v.deployment);
  if (v.baud !== undefined && !(v.serial ?? []).length)
    throw new UsageError("--baud goes with --serial PATH (a port in the config file has its own baudRate)");
  const baud = int("baud", v.baud, 115200, 300, 4_000_000);
  for (const path of v.serial ?? []) cfg.serial.push({ path, baudRate: baud });
  if (v["mqtt-port"] !== undefined) cfg.mqtt.embedded.port = int("mqtt-port", v["mqtt-port"], 1883, 0, 65535);
  if (v["mqtt-host"]) cfg.mqtt.embedded.host = v["mqtt-host"];
  if (v["no-embedded"]) cfg.mqtt.embedded.enabled = false;
  if (v["mqtt-auth"] !== undefined)
    cfg.mqtt.embedded.auth = oneOf("mqtt-auth", v["mqtt-auth"], ["none", "registry"] as const, "none");
  if (v["mqtt-password-file"]) cfg.mqtt.embedded.passwordFile = resolve(v["mqtt-password-file"]);
  if (v["mqtt-insecure"]) cfg.mqtt.embedded.insecure = true;
  if (v.admission !== undefined)
    cfg.ingest.admission = oneOf("admission", v.admission, ["open", "registry"] as const, "open");
  if (v["mqtt-url"]) {
    if (!/^(mqtts?|wss?|tcp):\/\//.test(v["mqtt-url"]))
      throw new UsageError(
        `--mqtt-url must be an MQTT broker URL (mqtt://, mqtts://, ws://, wss:// or tcp://), got "${redactUrl(v["mqtt-url"])}"`,
      );
    cfg.mqtt.url = v["mqtt-url"];
  }
  if (v["http-port"] !== undefined) cfg.http.port = int("http-port", v["http-port"], 9479, 0, 65535);
  if (v["no-http"]) cfg.http.enabled = false;
  if (v["stats-ms"] !== undefined) {
    // 0 = never; otherwise at least 100 ms, as log.statsIntervalMs (named here by its flag).
    const ms = int("stats-ms", v["stats-ms"], 5000, 0, 2_147_483_647);
    if (ms > 0 && ms < MIN_STATS_INTERVAL_MS)
      throw new UsageError(
        `--stats-ms must be 0 (never) or at least ${MIN_STATS_INTERVAL_MS}, got "${v["stats-ms"]}"`,
      );
    cfg.log.statsIntervalMs = ms;
  }
  // Re-validate so flag values get the same checks as file values.
  return resolveConfig({
    ...cfg,
    log: {
      ...cfg.log,
      ...(v["log-level"] !== undefined
        ? { level: oneOf("log-level", v["log-level"], LOG_LEVELS, "info") }
        : {}),
      ...(v["log-format"] !== undefined
        ? { format: oneOf("log-format", v["log-format"], ["auto", "json", "pretty"] as const, "auto") }
        : {}),
    },
  });
}

export async function startCommand(argv: string[]): Promise<number> {
  const cfg = startConfig(argv);
  if (!cfg) {
    process.stdout.write(START_HELP);
    return 0;
  }
  if (cfg.serial.length === 0 && !cfg.mqtt.embedded.enabled && !cfg.mqtt.url)
    throw new StartupError(
      "NO_SOURCE",
      "no ingest source is enabled (no serial port, no external broker, embedded broker off); add --serial PATH or --mqtt-url URL, or drop --no-embedded",
    );
  // Imported here, not at the top: `vigil start --help` must not load the whole gateway.
  const { runGateway } = await import("./start-run.ts");
  return runGateway(cfg, () => startConfig(argv)!);
}
/** log.level's values (the schema's), for the --log-level flag. */
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
