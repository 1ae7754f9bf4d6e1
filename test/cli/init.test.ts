import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { defaultGatewayName, loadConfigFile, resolveConfig } from "../../gateway/src/config/config.ts";
import { gatewayIdOf } from "../../gateway/src/config/gateway-id.ts";

const run = promisify(execFile);
const vigil = (args: string[]) =>
  run(process.execPath, ["bin/vigil.js", ...args]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

describe("default gateway name", () => {
  it("behavior: distinct per machine id, stable, valid; the host name when there is no machine id", () => {
    const a = defaultGatewayName(() => "0123456789abcdef0123456789abcdef\n", "pi");
    const b = defaultGatewayName(() => "fedcba9876543210fedcba9876543210\n", "pi");
    expect(a).toMatch(/^gw-[0-9a-f]{12}$/);
    expect(a).not.toBe(b);
    expect(defaultGatewayName(() => "0123456789abcdef0123456789abcdef", "other")).toBe(a);
    // The raw machine id never appears (machine-id(5)).
    expect(a).not.toContain("0123456789ab");
    const noId = () => {
      throw new Error("ENOENT");
    };
    expect(defaultGatewayName(noId, "line 3/pi")).toBe("gw-line-3-pi");
    // Two boxes on default configs register different gateway ids.
    const idA = gatewayIdOf(resolveConfig({ attest: { gatewayName: a } }));
    const idB = gatewayIdOf(resolveConfig({ attest: { gatewayName: b } }));
    expect(idA).not.toBe(idB);
    expect(resolveConfig({}).attest.gatewayName).toBe(defaultGatewayName());
  }, 90_000);
});

describe("vigil init", () => {
  it("behavior: writes a commented config (mode 0600) that loads back, with this box's name; never overwrites without --force", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-init-"));
    const out = join(dir, "etc", "config.json");
    const r = await vigil(["init", "-o", out, "--serial", "/dev/serial/by-id/usb-x", "--site", "plant-7"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`vigil doctor -c ${out}`);
    const text = readFileSync(out, "utf8");
    expect(text).toMatch(/^\/\/ Vigil gateway configuration/);
    expect(text.match(/^\s*\/\/ /gm)!.length).toBeGreaterThan(10);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const cfg = loadConfigFile(out);
    expect(cfg.attest.gatewayName).toBe(defaultGatewayName());
    expect(cfg.site).toBe("plant-7");
    expect(cfg.serial).toEqual([{ path: "/dev/serial/by-id/usb-x", baudRate: 115200 }]);

    const again = await vigil(["init", "-o", out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists; use --force/);
    const bad = await vigil(["init", "-o", join(dir, "bad.json"), "--name", "bad name"]);
    expect(bad.code).toBe(2);
    // The flag typed comes first, then the setting it fills (the line named only the setting).
    expect(bad.stderr).toMatch(/^vigil init: --name \(attest\.gatewayName\): must match pattern/);
    expect(existsSync(join(dir, "bad.json"))).toBe(false);
    const rpc = await vigil(["init", "-o", join(dir, "bad.json"), "--rpc", "ws://127.0.0.1:8546"]);
    expect([rpc.code, rpc.stderr]).toEqual([
      2,
      'vigil init: --rpc (chain.rpcUrl): must match pattern "^https?://" (see "vigil init --help")\n',
    ]);
  }, 90_000);
});
