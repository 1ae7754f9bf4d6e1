/**
 * Fatal start-up errors as one sentence naming the problem and the fix (README "When the gateway
 * refuses to start"). `vigil start` prints it on stderr and exits 1, so systemd's
 * `Restart=always` restarts the unit and the journal says what to do. Every command's error line
 * is printed here too (reportCommandError).
 */
import { ConfigError, fileError, FileAccessError, UsageError, VigilError } from "../core/errors.ts";

/** Code of a start-up refusal raised by the CLI itself (not by a stage). */
export class StartupError extends VigilError {
  override name = "StartupError";
}

/**
 * The embedded broker listener an error names (embedded-broker.ts puts its setting in the message),
 * with the flag that sets it; the plain MQTT port when none is named.
 */
function listenerSetting(e: VigilError): string {
  const s = /\((mqtt\.embedded\.(?:tls\.|websocket\.)?port)\)/.exec(e.shortMessage)?.[1];
  return s === undefined || s === "mqtt.embedded.port" ? "mqtt.embedded.port (--mqtt-port)" : s;
}

/** Fixes by error code, for messages that do not already say what to do. */
const FIX: Array<[test: (e: VigilError) => boolean, fix: string | ((e: VigilError) => string)]> = [
  [
    (e) => e.code === "MQTT_IO" && /EADDRINUSE/.test(e.shortMessage),
    (e) =>
      `another program is listening there (a second gateway or Mosquitto?): stop it, or set ${listenerSetting(e)} to a free port`,
  ],
  [
    (e) => e.code === "MQTT_IO" && /EACCES/.test(e.shortMessage),
    (e) => `ports below 1024 need privileges: use a port ≥ 1024 for ${listenerSetting(e)}`,
  ],
  [
    (e) => e.code === "MQTT_IO" && /EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN/.test(e.shortMessage),
    "set mqtt.embedded.host (--mqtt-host) to an address of this machine (127.0.0.1 for loopback)",
  ],
  [
    (e) => e.code === "MQTT_IO" && /CONNACK/.test(e.shortMessage),
    "check mqtt.url (--mqtt-url), its credentials, and that the broker is running and reachable",
  ],
  [
    (e) => e.code === "MODEL_HASH_MISMATCH",
    "the model file was changed or damaged: restore it from the release, or export it again with its manifest (models/README.md)",
  ],
  [
    // Not DATA_FILE: the replayed datasets (vigil sim, evaluation) are no model of models.dir.
    (e) => e.code.startsWith("MODEL_") || e.code === "FEATURE_SPEC_INVALID",
    "fix or remove that model in models.dir, or set models.enabled to false",
  ],
  [
    (e) => e.code === "STORE_UNAVAILABLE" && /locked/.test(e.shortMessage),
    "stop the other process (systemctl stop vigil), or give this one its own dataDir (--data-dir)",
  ],
  [
    (e) => e.code === "STORE_UNAVAILABLE" && /corruption/.test(e.shortMessage),
    'run "vigil store check --data-dir DIR" (DIR: the gateway\'s dataDir), then "vigil store salvage --data-dir DIR --to NEW_DIR"; when that exits 0, move DIR/store aside and NEW_DIR/store in its place (vigil store --help)',
  ],
  [
    (e) => e.code === "STORE_UNAVAILABLE" && /disk full/.test(e.shortMessage),
    "free disk space on the dataDir's file system",
  ],
  [
    (e) => e.code === "STORE_UNAVAILABLE",
    'check the dataDir\'s file system and permissions, then "vigil store check --data-dir DIR"',
  ],
  [
    (e) => e instanceof FileAccessError && (e.errno === "EACCES" || e.errno === "EPERM"),
    "run the command as the user that owns it (the Pi service runs as vigil: sudo -u vigil vigil …), or fix its permissions",
  ],
  [(e) => e instanceof FileAccessError && e.errno === "ENOSPC", "free disk space on that file system"],
  [(e) => e instanceof FileAccessError && e.errno === "EROFS", "choose a path on a writable file system"],
  [
    (e) => e instanceof FileAccessError && (e.errno === "ENOENT" || e.errno === "ENOTDIR"),
    "check the path (the folder it names must exist)",
  ],
  [
    (e) => e.code === "KEYSTORE_DECRYPT",
    "set VIGIL_KEYSTORE_PASSPHRASE(_FILE) to the passphrase the key was created with",
  ],
  [
    // There, but not this user's to read: a new key would be the wrong fix (storage audit D8).
    (e) => e.code === "KEYSTORE_MISSING" && /cannot be read \((EACCES|EPERM)\)/.test(e.shortMessage),
    "run the command as the user that owns it (the Pi service runs as vigil: sudo -u vigil vigil …), or give it to that user, keeping mode 0600",
  ],
  [(e) => e.code === "KEYSTORE_MISSING", 'check attest.keystore, or create the key with "vigil keys init"'],
  [
    // Only the registered key signs a rotation ("vigil keys rotate"); without it, the registry's
    // site operator moves the registration (hardware/pi/README.md).
    (e) => e.code === "KEYSTORE_FORMAT",
    'restore the keystore from a backup; without one, create a new key with "vigil keys init --force" and have the site operator move the registration to it (VigilRegistry.rotateGatewayKey)',
  ],
  [
    (e) => e.code === "CHAIN_NETWORK" || e.code === "CHAIN_TIMEOUT",
    "check the RPC URL (--rpc, chain.rpcUrl) and that the node is running and reachable",
  ],
  [(e) => e.code === "CHAIN_FUNDS", "send the sending account enough of the chain's native token for gas"],
  [
    // By code, not instanceof: chain/errors.ts imports ethers, which every command's start-up
    // (this module is loaded by main.ts) would then pay for (README, `cli` benchmark).
    (e) =>
      e.code === "CHAIN_REVERT" &&
      (e as VigilError & { errorName?: unknown }).errorName === "NotSiteOperator",
    'the registry\'s default admin grants that role with "vigil chain grant-operator"',
  ],
  [
    (e) => e.code === "BAD_DEPLOYMENT" || (e instanceof ConfigError && e.path === "chain.deployment"),
    'point chain.deployment (--deployment) at the file written by "vigil chain deploy"',
  ],
  [
    (e) => e instanceof ConfigError && /: not valid JSON \(/.test(e.shortMessage),
    "fix the JSON at that place in the file (vigil init writes a valid one)",
  ],
  [
    // An environment variable (VIGIL_CHAIN_SENDER_KEY), not a setting of the file or a flag.
    (e) => e instanceof ConfigError && /^[A-Z][A-Z0-9_]+$/.test(e.path),
    (e) =>
      `correct the environment variable ${(e as ConfigError).path} (or use the config file's setting instead)`,
  ],
  [
    // A message with a clause after "; " already says what to do (config.ts words them so).
    (e) =>
      e instanceof ConfigError && !/create it|"vigil |run: |give the file's path|; /.test(e.shortMessage),
    "correct that setting in the config file (--config) or its flag",
  ],
];

/** One line for stderr: the error's message and, when it does not carry one, the fix. */
export function fatalLine(e: VigilError): string {
  const msg = e.shortMessage.replace(/\s+/g, " ").replace(/[.\s]+$/, "");
  const found = FIX.find(([t]) => t(e))?.[1];
  const fix = typeof found === "function" ? found(e) : found;
  return fix ? `${msg}; ${fix}.` : /[?!]$/.test(msg) ? msg : `${msg}.`;
}

/**
 * Reports the error a command ended with: one line on stderr, `vigil <name>: <line>`, and the exit
 * code, 2 for a usage error and 1 otherwise. A Node file error is translated first (fileError).
 * @param name The command as the line names it ("start", "chain", "token").
 * @param o.help The command whose `--help` a usage error points at, e.g. "vigil chain deploy" for
 *   `… (see "vigil chain deploy --help")`. Default: no pointer.
 * @param o.fixes Every other error as {@link fatalLine} (its message and fix). Default false: only
 *   file errors; the others print their message as it is.
 * @throws `err` itself when it is not a VigilError: a bug, whose stack trace is the report.
 */
export function reportCommandError(
  name: string,
  err: unknown,
  o: { help?: string; fixes?: boolean } = {},
): number {
  const e = fileError(err) ?? err;
  if (!(e instanceof VigilError)) throw e;
  const usage = e instanceof UsageError;
  const line = usage
    ? `${e.shortMessage}${o.help ? ` (see "${o.help} --help")` : ""}`
    : o.fixes || e instanceof FileAccessError
      ? fatalLine(e)
      : e.shortMessage;
  process.stderr.write(`vigil ${name}: ${line}\n`);
  return usage ? 2 : 1;
}
