import { chmodSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_CONFIG,
  loadConfigFile,
  resolveConfig,
  unreadableConfig,
} from "../../gateway/src/config/config.ts";
import { fatalLine } from "../../gateway/src/cli/fatal.ts";
import { ConfigError } from "../../gateway/src/core/errors.ts";
import { readSecretFile } from "../../gateway/src/core/secret-file.ts";
import { startConfig } from "../../gateway/src/cli/start.ts";

describe("config", () => {
  it("behavior: the schema's defaults fill what a partial config leaves out, at every depth", () => {
    const partial = { mqtt: { embedded: { port: 0 } }, serial: [{ path: "/dev/ttyUSB0" }] };
    const before = structuredClone(partial);
    const cfg = resolveConfig(partial);
    expect(partial).toEqual(before); // the input is not modified
    expect(cfg.mqtt.embedded).toMatchObject({ enabled: true, host: "127.0.0.1", port: 0, auth: "none" });
    expect(cfg.mqtt.embedded.limits.maxPacketBytes).toBe(16_384);
    expect(cfg.mqtt.clientId).toBe("vigil-gateway");
    expect(cfg.serial).toEqual([{ path: "/dev/ttyUSB0", baudRate: 115200 }]);
    expect(cfg.chain.maxSpendPerDayEth).toBe(0.1);
    expect(resolveConfig({ chain: { maxSpendPerDayEth: null } }).chain.maxSpendPerDayEth).toBeNull();
    // every leaf of the schema has a default (except serial[].path): the empty config is complete
    expect(DEFAULT_CONFIG.store.minFreeBytes).toBe(64 * 1024 * 1024);
    expect(JSON.stringify(resolveConfig({}))).toBe(JSON.stringify(DEFAULT_CONFIG));
  });

  it("behavior: the Pi example config is valid", () => {
    const cfg = loadConfigFile("hardware/pi/config.example.json");
    expect(cfg.serial).toEqual([{ path: "/dev/ttyUSB0", baudRate: 115200 }]);
    // No fixed name: every box installed from it gets its own (derived from /etc/machine-id).
    expect(cfg.attest.gatewayName).toBe(DEFAULT_CONFIG.attest.gatewayName);
    expect(cfg.attest.gatewayName).toMatch(/^gw-[0-9a-f]{12}$/);
  });

  it("error: messages name the full path of the bad setting", () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ mqtt: { embedded: { port: 70000 } } }, /^mqtt\.embedded\.port: must be <= 65535/],
      [{ serial: [{ baudRate: 9600 }] }, /^serial\.0: must have required property 'path'/],
      [{ ingest: { allow: ["xyz"] } }, /^ingest\.allow\.0: must match pattern/],
      [{ mqtt: { url: "http://x" } }, /^mqtt\.url: must match pattern/],
      [{ typo: 1 }, /^\(root\): unknown setting "typo"/],
      [{ chain: { confirmation: 3 } }, /^chain: unknown setting "confirmation"/],
      [
        { log: { level: "loud" } },
        /^log\.level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"$/,
      ],
      [{ chain: { finality: "safe" } }, /^chain\.finality: must be one of depth, finalized, got "safe"$/],
      [{ chain: { maxPriorityFeePerGasGwei: 60 } }, /must not exceed chain\.maxFeePerGasGwei/],
      // The export runs from the registry watch's refreshes, so it needs the chain like the watch.
      [
        { registry: { mosquittoExport: { dir: "mosquitto", dynsec: false } } },
        /^registry\.mosquittoExport: the registry is read from the chain/,
      ],
      // As --stats-ms: a counter line every millisecond would flood the log.
      [{ log: { statsIntervalMs: 99 } }, /^log\.statsIntervalMs: must be 0 \(never\) or at least 100/],
      // Nothing listens beyond loopback without authentication.
      [{ http: { allowRemote: true } }, /^http\.authTokenFile: http\.allowRemote needs an access token/],
      // Checked here, not when the agents' cron starts (which threw a plain Error at start-up).
      [
        { updates: { schedule: "every 5 minutes" } },
        /^updates\.schedule: "every 5 minutes" is not a node-cron expression$/,
      ],
      // An IPFS gateway is fetched over HTTP(S); Basic auth only over https://.
      [
        { updates: { ipfsGateway: "ftp://ipfs.example" } },
        /^updates\.ipfsGateway: must be an http\(s\):\/\/ URL/,
      ],
      [
        { updates: { ipfsGateway: "user:S3cret@ipfs.example" } },
        /^updates\.ipfsGateway: must be an http\(s\):\/\/ URL, got (?!.*S3cret)/,
      ],
      [
        { updates: { ipfsGateway: "http://user:S3cret@ipfs.example" } },
        /^updates\.ipfsGateway: carries credentials over http:\/\/: use https:\/\/$/,
      ],
    ];
    for (const [c, re] of bad) {
      expect(() => resolveConfig(c)).toThrowError(ConfigError);
      expect(() => resolveConfig(c)).toThrowError(re);
    }
  });

  it("error: unreadable and non-JSON files are ConfigErrors naming the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-cfg-"));
    const p = join(dir, "c.json");
    writeFileSync(p, "{ nope");
    expect(() => loadConfigFile(p)).toThrowError(/c\.json: not valid JSON/);
    expect(() => loadConfigFile(join(dir, "missing.json"))).toThrowError(
      /missing\.json: cannot read config file: it does not exist; create it with "vigil init"$/,
    );
    expect(() => loadConfigFile(dir)).toThrowError(/: is a folder, not a config file; give the file's path$/);
    // one sentence each, with a fix that fits (not "correct that setting")
    const fixOf = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        return fatalLine(e as ConfigError);
      }
      return "";
    };
    expect(fixOf(() => loadConfigFile(dir))).toMatch(/give the file's path\.$/);
    expect(fixOf(() => loadConfigFile(p))).toMatch(
      /not valid JSON \(.*\); fix the JSON at that place in the file/,
    );
    // a byte-order mark (Windows editors) is not a syntax error
    writeFileSync(p, "\uFEFF" + JSON.stringify({ site: "bom-site" }));
    expect(loadConfigFile(p).site).toBe("bom-site");
    // A file the service's user may not read (not reproducible here: the tests may run as root).
    expect(unreadableConfig("/etc/vigil/config.json", "EACCES")).toBe(
      "cannot read config file (EACCES: permission denied); run: ls -l /etc/vigil/config.json, then let the user the gateway runs as read it (the Pi install makes it root:vigil, mode 0640: run vigil commands on it with sudo)",
    );
    // One line on stderr, and no second fix after the one it names.
    expect(fatalLine(new ConfigError("c.json", unreadableConfig("c.json", "EACCES")))).toMatch(
      /^c\.json: cannot read config file \(EACCES: permission denied\); run: .*mode 0640: run vigil commands on it with sudo\)\.$/,
    );
  });

  it("error: a JSON mistake next to a password names the line and column, never the text around it", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-cfg-"));
    const p = join(dir, "c.json");
    // Single quotes: V8's message would quote the whole stretch, password included.
    writeFileSync(p, `{\n  // broker login\n  "mqtt": { "password": 'Pw9x!k2Z' }\n}\n`);
    expect(() => loadConfigFile(p)).toThrowError(/c\.json: not valid JSON \(Unexpected token '''\)$/);
    expect(() => loadConfigFile(p)).not.toThrowError(/Pw9x/);
    // A missing comma after the password: the position, as a line and column of the file.
    writeFileSync(p, `{\n  // broker login\n  "mqtt": { "password": "Pw9x!k2Z" "url": "mqtt://x" }\n}\n`);
    expect(() => loadConfigFile(p)).toThrowError(
      /not valid JSON \(Expected ',' or '}' after property value in JSON at line 3, column 36\)$/,
    );
    expect(() => loadConfigFile(p)).not.toThrowError(/Pw9x/);
  });

  it("args: flags override the file and get the same validation", () => {
    const cfg = startConfig([
      "--serial",
      "/dev/ttyUSB1",
      "--mqtt-port",
      "0",
      "--no-embedded",
      "--log-level",
      "debug",
    ])!;
    expect(cfg.serial).toEqual([{ path: "/dev/ttyUSB1", baudRate: 115200 }]);
    expect(cfg.mqtt.embedded).toMatchObject({ enabled: false, port: 0 });
    expect(cfg.log.level).toBe("debug");
    expect(() => startConfig(["--log-level", "loud"])).toThrowError(
      /^--log-level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"/,
    );
    expect(() => startConfig(["--mqtt-port", "x"])).toThrowError(/--mqtt-port must be a number/);
    expect(() => startConfig(["--what"])).toThrowError(/^unknown option --what$/);
    expect(() => startConfig(["--mqtt-prot", "1"])).toThrowError(
      /unknown option --mqtt-prot; did you mean --mqtt-port\?/,
    );
    expect(startConfig(["--help"])).toBeUndefined();
    // --stats-ms takes what log.statsIntervalMs takes: 0 = never, else at least 100.
    expect(startConfig(["--stats-ms", "0"])!.log.statsIntervalMs).toBe(0);
    expect(startConfig(["--stats-ms", "250"])!.log.statsIntervalMs).toBe(250);
    expect(() => startConfig(["--stats-ms", "5"])).toThrowError(
      /--stats-ms must be 0 \(never\) or at least 100/,
    );
  });

  it("args: --deployment and --mqtt-password-file are relative to the current folder, not to dataDir (as the same keys in a file are)", () => {
    const cfg = startConfig([
      "--data-dir",
      "/var/lib/vigil",
      "--deployment",
      "deployment.json",
      "--mqtt-password-file",
      "devices.passwd",
      // the password file is read with broker auth "registry" only, which reads the chain
      "--mqtt-auth",
      "registry",
      "--rpc",
      "http://127.0.0.1:8545",
    ])!;
    expect(cfg.chain.deployment).toBe(resolve(process.cwd(), "deployment.json"));
    expect(cfg.mqtt.embedded.passwordFile).toBe(resolve(process.cwd(), "devices.passwd"));
    expect(startConfig(["--deployment", "/etc/vigil/deployment.json"])!.chain.deployment).toBe(
      "/etc/vigil/deployment.json",
    );
  });
});

describe("readSecretFile (http.authTokenFile)", () => {
  it("error: a token file readable by others, unreadable or too short is a ConfigError naming the setting, never the token", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-secret-"));
    const f = join(dir, "token");
    const token = "s3cret-".repeat(6);
    writeFileSync(f, `${token}\nignored\n`, { mode: 0o600 });
    expect(readSecretFile(f, "http.authTokenFile")).toBe(token);
    chmodSync(f, 0o644);
    expect(() => readSecretFile(f, "http.authTokenFile")).toThrowError(
      /^http\.authTokenFile: .* is accessible by group or others \(mode 0644\); run: chmod 600 /,
    );
    writeFileSync(join(dir, "short"), "abc\n", { mode: 0o600 });
    expect(() => readSecretFile(join(dir, "short"), "http.authTokenFile")).toThrowError(
      /at least 32 characters/,
    );
    expect(() => readSecretFile(join(dir, "missing"), "http.authTokenFile")).toThrowError(
      /cannot be read \(ENOENT\)/,
    );
    for (const e of [() => readSecretFile(f, "x")])
      expect(() => e()).toThrowError(
        expect.objectContaining({ message: expect.not.stringContaining("s3cret") }),
      );
  });
});

describe("gatewayIdOf", () => {
  it("behavior: keccak256 of 'vigil-gateway:' + name, or the configured id lowercased", async () => {
    const { keccak256, toUtf8Bytes } = await import("ethers");
    const { gatewayIdOf } = await import("../../gateway/src/config/gateway-id.ts");
    expect(gatewayIdOf(resolveConfig({ attest: { gatewayName: "plant-7" } }))).toBe(
      keccak256(toUtf8Bytes("vigil-gateway:plant-7")),
    );
    const id = "0x" + "AB".repeat(32);
    expect(gatewayIdOf(resolveConfig({ attest: { gatewayId: id } }))).toBe(id.toLowerCase());
  });
});

describe("siteIdOf", () => {
  it("behavior: keccak256 of 'site:' + name (UTF-8), or a 0x bytes32 lowercased", async () => {
    const { keccak256, toUtf8Bytes } = await import("ethers");
    const { siteIdOf } = await import("../../gateway/src/config/gateway-id.ts");
    expect(siteIdOf("site-1")).toBe(keccak256(toUtf8Bytes("site:site-1")));
    expect(siteIdOf("Halle Süd")).toBe(keccak256(toUtf8Bytes("site:Halle Süd")));
    const id = "0x" + "CD".repeat(32);
    expect(siteIdOf(id)).toBe(id.toLowerCase());
    // 31 bytes of hex is a name, not an id.
    expect(siteIdOf("0x" + "cd".repeat(31))).toBe(keccak256(toUtf8Bytes("site:0x" + "cd".repeat(31))));
  });
});
