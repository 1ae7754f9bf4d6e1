import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG, loadConfigFile, resolveConfig } from "../../gateway/src/config/config.ts";
import { ConfigError } from "../../gateway/src/core/errors.ts";
import { startConfig } from "../../gateway/src/cli/start.ts";

describe("config", () => {
  it("behavior: an empty config gives the documented defaults", () => {
    expect(resolveConfig({})).toEqual(DEFAULT_CONFIG);
  });

  it("behavior: the Pi example config is valid", () => {
    const cfg = loadConfigFile("hardware/pi/config.example.json");
    expect(cfg.serial).toEqual([{ path: "/dev/ttyUSB0", baudRate: 115200 }]);
  });

  it("error: messages name the full path of the bad setting", () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ mqtt: { embedded: { port: 70000 } } }, /^mqtt\.embedded\.port: must be <= 65535/],
      [{ serial: [{ baudRate: 9600 }] }, /^serial\.0: must have required property 'path'/],
      [{ ingest: { allow: ["xyz"] } }, /^ingest\.allow\.0: must match pattern/],
      [{ mqtt: { url: "http://x" } }, /^mqtt\.url: must match pattern/],
      [{ typo: 1 }, /^\(root\): must NOT have additional properties "typo"/],
      [
        { log: { level: "loud" } },
        /^log\.level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"$/,
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
      /missing\.json: cannot read config file/,
    );
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
      /log\.level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"/,
    );
    expect(() => startConfig(["--mqtt-port", "x"])).toThrowError(/--mqtt-port must be a number/);
    expect(() => startConfig(["--what"])).toThrowError(/^unknown option --what$/);
    expect(() => startConfig(["--mqtt-prot", "1"])).toThrowError(
      /unknown option --mqtt-prot; did you mean --mqtt-port\?/,
    );
    expect(startConfig(["--help"])).toBeUndefined();
  });
});
