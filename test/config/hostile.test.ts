/**
 * Hostile and mistaken configurations: each is refused with a ConfigError naming the setting, at
 * load, instead of breaking the gateway later (a stack trace, a timer firing every millisecond, a
 * listener blamed on "another program", a setting silently lost).
 */
import { existsSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  duplicateKey,
  ethToWei,
  gweiToWei,
  isLoopbackHost,
  loadConfigFile,
  MAX_CONFIG_BYTES,
  resolveConfig,
} from "../../gateway/src/config/config.ts";
import { ConfigSchema, MAX_TIMER_MS } from "../../gateway/src/config/schema.ts";
import { fatalLine } from "../../gateway/src/cli/fatal.ts";
import { ConfigError } from "../../gateway/src/core/errors.ts";
import { runVigil } from "../helpers/procs.ts";

const dir = mkdtempSync(join(tmpdir(), "vigil-hostile-"));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const errorOf = (f: () => unknown): ConfigError => {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("no error");
};

describe("config: hostile values", () => {
  it("error: an interval or timeout beyond a Node timer's range (2^31-1 ms) is refused", () => {
    // Node fires such a timer after 1 ms: log.statsIntervalMs 3e9 logged the counters flat out.
    for (const c of [
      { log: { statsIntervalMs: 3_000_000_000 } },
      { attest: { batchIntervalMs: 1e308 } },
      { chain: { anchorIntervalMs: 2 ** 31 } },
      { chain: { healthCheckIntervalMs: 2 ** 31 } },
      { mqtt: { readingsIntervalMs: 2 ** 31 } },
      { registry: { maxStaleMs: 2 ** 31 } },
      { updates: { shadowMaxMs: 2 ** 31 } },
      { updates: { staleAfterMs: 2 ** 31 } },
    ])
      expect(() => resolveConfig(c)).toThrowError(/: must be <= 2147483647$/);
    expect(resolveConfig({ log: { statsIntervalMs: MAX_TIMER_MS } }).log.statsIntervalMs).toBe(MAX_TIMER_MS);
    // Every ms setting has a bound that fits a timer (ingest.maxSkewMs is a comparison, no timer).
    const unbounded: string[] = [];
    const walk = (n: { properties?: Record<string, unknown>; maximum?: number }, p: string): void => {
      for (const [k, v] of Object.entries(n.properties ?? {})) {
        const node = v as typeof n;
        if (node.properties) walk(node, `${p}${k}.`);
        else if (/Ms$/.test(k) && !(node.maximum! <= MAX_TIMER_MS)) unbounded.push(`${p}${k}`);
      }
    };
    walk(ConfigSchema as never, "");
    expect(unbounded).toEqual(["ingest.maxSkewMs"]);
  });

  it("error: amounts: a spend cap written with an exponent is exact, and caps that round to 0 wei are refused", () => {
    // 1e21 made BigInt("1e+21") throw a SyntaxError when anchoring started.
    expect(ethToWei(1e21)).toBe(10n ** 39n);
    expect(gweiToWei(1e21)).toBe(10n ** 30n);
    expect(() => resolveConfig({ chain: { maxSpendPerDayEth: 1e21 } })).toThrowError(
      /^chain\.maxSpendPerDayEth: must be <= 1000000$/,
    );
    expect(() =>
      resolveConfig({ chain: { maxFeePerGasGwei: 1e-10, maxPriorityFeePerGasGwei: 0 } }),
    ).toThrowError(/^chain\.maxFeePerGasGwei: must be at least 0\.000000001 \(1 wei\)$/);
    expect(() => resolveConfig({ chain: { maxSpendPerDayEth: 1e-19 } })).toThrowError(
      /^chain\.maxSpendPerDayEth: must be at least 1e-18/,
    );
  });

  it("error: strings with a control character or white space at an end are refused, credentials aside, unquoted", () => {
    // A NUL in dataDir made Node's fs throw a TypeError: a stack trace instead of one line.
    expect(() => resolveConfig({ dataDir: "/var/lib/a\u0000b" })).toThrowError(
      /^dataDir: contains a control character \(NUL, tab, newline, …\); remove it$/,
    );
    // " " as dataDir made a folder named by a space in the current folder.
    expect(() => resolveConfig({ dataDir: " " })).toThrowError(
      /^dataDir: begins or ends with white space; remove it$/,
    );
    expect(() => resolveConfig({ serial: [{ path: "/dev/ttyUSB0\n" }] })).toThrowError(/^serial\.0\.path: /);
    const e = errorOf(() => resolveConfig({ chain: { rpcUrl: "https://rpc.example/v2/Key123 " } }));
    expect(e.path).toBe("chain.rpcUrl");
    expect(e.message).not.toContain("Key123");
    // A password is the broker's business: kept as written.
    expect(resolveConfig({ mqtt: { password: " pass\tword " } }).mqtt.password).toBe(" pass\tword ");
  });

  it("error: hosts: an address of digits and dots that is no IPv4 address is refused, and 127.0.0.256 is no loopback", () => {
    // It passed as loopback, then failed at listen with "getaddrinfo ENOTFOUND", naming no setting.
    expect(isLoopbackHost("127.0.0.256")).toBe(false);
    expect(isLoopbackHost("127.1.2.3")).toBe(true);
    expect(() => resolveConfig({ mqtt: { embedded: { host: "127.0.0.256" } } })).toThrowError(
      /^mqtt\.embedded\.host: "127\.0\.0\.256" is not an IPv4 address/,
    );
    expect(() => resolveConfig({ http: { host: "127.1" } })).toThrowError(
      /^http\.host: "127\.1" is not an IPv4/,
    );
  });

  it("error: two listeners of the gateway on one port are refused, naming both settings", () => {
    // Before: EADDRINUSE at start, blamed on "another program (a second gateway or Mosquitto?)".
    expect(() => resolveConfig({ mqtt: { embedded: { port: 38111 } }, http: { port: 38111 } })).toThrowError(
      /^http\.port: 38111 is also mqtt\.embedded\.port: two listeners of the gateway cannot share a port/,
    );
    expect(() =>
      resolveConfig({ mqtt: { embedded: { port: 38112, websocket: { port: 38112 } } } }),
    ).toThrowError(/^mqtt\.embedded\.websocket\.port: 38112 is also mqtt\.embedded\.port/);
    expect(() =>
      resolveConfig({
        mqtt: { embedded: { port: 0, tls: { port: 9479, certFile: "c", keyFile: "k" } } },
      }),
    ).toThrowError(/^http\.port: 9479 is also mqtt\.embedded\.tls\.port/);
    // Port 0 (any free port), distinct addresses, or a listener turned off: no clash.
    expect(() => resolveConfig({ mqtt: { embedded: { port: 0 } }, http: { port: 0 } })).not.toThrow();
    expect(() =>
      resolveConfig({ mqtt: { embedded: { host: "127.0.0.2", port: 9479 } }, http: { port: 9479 } }),
    ).not.toThrow();
    expect(() =>
      resolveConfig({ mqtt: { embedded: { port: 9479 } }, http: { enabled: false } }),
    ).not.toThrow();
  });

  it("error: one serial port listed twice is refused", () => {
    expect(() =>
      resolveConfig({ serial: [{ path: "/dev/ttyUSB0" }, { path: "/dev/ttyUSB0" }] }),
    ).toThrowError(/^serial\.1\.path: "\/dev\/ttyUSB0" is also serial\.0\.path/);
  });

  it("error: a password file the broker would ignore (auth none) is refused", () => {
    // Ignored in silence before: the operator believed devices needed a password.
    expect(() => resolveConfig({ mqtt: { embedded: { passwordFile: "devices.passwd" } } })).toThrowError(
      /^mqtt\.embedded\.passwordFile: is read only with mqtt\.embedded\.auth "registry"/,
    );
  });

  it("error: an unknown setting names the one it is closest to", () => {
    expect(() => resolveConfig({ mqt: {} })).toThrowError(
      /^\(root\): unknown setting "mqt" \(did you mean "mqtt"\?\)$/,
    );
    expect(() => resolveConfig({ mqtt: { embeded: {} } })).toThrowError(
      /^mqtt: unknown setting "embeded" \(did you mean "embedded"\?\)$/,
    );
    expect(() => resolveConfig({ zzzzzz: 1 })).toThrowError(
      /^\(root\): unknown setting "zzzzzz" \(not one of this version's: misspelt, or a newer Vigil's\)$/,
    );
  });
});

describe("config: hostile files", () => {
  it("error: a key set twice in one object is refused with its path, not silently replaced", () => {
    // JSON.parse keeps the last: the first "mqtt" block (its port) was lost.
    const p = file(
      "dup.json",
      `{\n  "mqtt": { "embedded": { "port": 0 } },\n  "http": { "port": 0 },\n  "mqtt": { "clientId": "x" }\n}\n`,
    );
    expect(() => loadConfigFile(p)).toThrowError(
      /^mqtt: is set twice in one object of .*dup\.json; keep one$/,
    );
    expect(duplicateKey('{"serial":[{"path":"a","baudRate":1,"path":"b"}]}')).toBe("serial.0.path");
    // Equal strings as values, in arrays, in other objects, in comments: no duplicate.
    expect(duplicateKey('{"a":"a","b":["a","a"],"c":{"a":"b:"},"d\\"":{"a":1}}')).toBeUndefined();
    expect(loadConfigFile(file("c.json", '// "site": "x"\n{ "site": "y" /* "site" */ }')).site).toBe("y");
    // A key quoted with its colon in a comment inside the object (as `vigil init` writes them).
    const commented = '{\n  // the old "site": "x" was here\n  "site": "y" /* "site": "z" */\n}';
    expect(loadConfigFile(file("c2.json", commented)).site).toBe("y");
    // Deep nesting (valid JSON) does not overflow the scan's stack.
    expect(duplicateKey("[".repeat(100_000) + "]".repeat(100_000))).toBeUndefined();
  });

  it("error: a device, an oversized file and a symlink loop are refused at once with one sentence", () => {
    // /dev/zero was read until memory ran out; a 60 MB file took a minute to start.
    const t0 = Date.now();
    expect(() => loadConfigFile("/dev/zero")).toThrowError(
      /^\/dev\/zero: is a device or socket, not a config file/,
    );
    const big = file("big.json", `{"site":"s"}${" ".repeat(MAX_CONFIG_BYTES)}`);
    expect(() => loadConfigFile(big)).toThrowError(/big\.json: is larger than 8 MiB/);
    expect(Date.now() - t0).toBeLessThan(5000);
    const loop = join(dir, "loop-a.json");
    symlinkSync(join(dir, "loop-b.json"), loop);
    symlinkSync(loop, join(dir, "loop-b.json"));
    const e = errorOf(() => loadConfigFile(loop));
    // Its own fix, not "correct that setting in the config file".
    expect(fatalLine(e)).toMatch(
      /loop-a\.json: cannot read config file \(ELOOP: a loop of symbolic links\); run: ls -l .*\.$/,
    );
    expect(fatalLine(e)).not.toMatch(/correct that setting/);
  });
});

describe("vigil start: hostile configs end with one line", () => {
  it("error: a NUL in dataDir exits 1 with one sentence, no stack trace", async () => {
    const p = file("nul.json", JSON.stringify({ dataDir: join(dir, "a\u0000b"), http: { port: 0 } }));
    const r = await runVigil(["start", "-c", p, "--mqtt-port", "0"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "vigil start: dataDir: contains a control character (NUL, tab, newline, …); remove it.\n",
    );
  });

  it("error: the broker and the HTTP endpoint on one port exit 1 before anything listens", async () => {
    const data = join(dir, "same-port");
    const p = file(
      "same.json",
      JSON.stringify({ dataDir: data, mqtt: { embedded: { port: 38111 } }, http: { port: 38111 } }),
    );
    const r = await runVigil(["start", "-c", p]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vigil start: http\.port: 38111 is also mqtt\.embedded\.port: [^\n]*\.\n$/);
    expect(existsSync(data)).toBe(false); // refused before the store was opened
  });
});

describe("config: fixes and MQTT client ids", () => {
  it("error: a message that already says what to do gets no second fix; one that does not gets the generic one", () => {
    const line = (partial: unknown): string => {
      try {
        resolveConfig(partial);
      } catch (e) {
        return fatalLine(e as ConfigError);
      }
      throw new Error("accepted");
    };
    const dup = line({ dataDir: " x" });
    expect(dup).toBe("dataDir: begins or ends with white space; remove it.");
    expect(line({ log: { statsIntervalMs: 3e9 } })).toMatch(
      /must be <= 2147483647; correct that setting in the config file \(--config\) or its flag\.$/,
    );
  });

  it("error: mqtt.clientId is at most 16 characters, so {clientId}-alerts stays within MQTT 3.1.1's 23", () => {
    expect(resolveConfig({ mqtt: { clientId: "a".repeat(16) } }).mqtt.clientId).toHaveLength(16);
    expect(() => resolveConfig({ mqtt: { clientId: "a".repeat(17) } })).toThrowError(
      /^mqtt\.clientId: must NOT have more than 16 characters/,
    );
  });
});
