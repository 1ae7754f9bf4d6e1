import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JsonRpcProvider, keccak256 } from "ethers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { VigilRegistryArtifact } from "../../contracts/artifacts/index.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import type { Deployment } from "../../gateway/src/chain/deploy.ts";
import { bytesToHex } from "../../gateway/src/core/hex.ts";
import { chainCommand } from "../../gateway/src/cli/chain.ts";

let anvil: Anvil;
let dir: string;
beforeAll(async () => {
  anvil = await startAnvil();
  dir = mkdtempSync(join(tmpdir(), "vigil-chain-"));
});
afterAll(async () => {
  await anvil?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function capture(): { out: () => string; err: () => string; restore: () => void } {
  let out = "";
  let err = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => ((err += String(s)), true));
  return { out: () => out, err: () => err, restore: () => (o.mockRestore(), e.mockRestore()) };
}

describe("vigil chain", () => {
  it("behavior: deploy writes a verified deployment file; register-gateway and verify work against it", async () => {
    const out = join(dir, "deployment.json");
    const cap = capture();
    try {
      expect(await chainCommand(["deploy", "--rpc", anvil.url, "--out", out, "--admin-delay", "0"])).toBe(0);
      const d = JSON.parse(readFileSync(out, "utf8")) as Deployment;
      expect(d.chainId).toBe("31337");
      expect(d.contracts.VigilRegistry.runtimeCodeHash).toBe(
        keccak256(VigilRegistryArtifact.deployedBytecode),
      );
      expect(d.deployBlock).toBeGreaterThan(0);
      expect(await chainCommand(["verify", "--rpc", anvil.url, "--deployment", out])).toBe(0);
      expect(
        await chainCommand([
          "grant-operator",
          "--rpc",
          anvil.url,
          "--deployment",
          out,
          "--site",
          "plant-1",
          "--account",
          "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        ]),
      ).toBe(0);
      const keyFile = join(dir, "device.key");
      writeFileSync(keyFile, bytesToHex(generateKey("p256").privateKey));
      const gw = `0x${"ab".repeat(32)}`;
      expect(
        await chainCommand([
          "register-gateway",
          "--rpc",
          anvil.url,
          "--deployment",
          out,
          "--site",
          "plant-1",
          "--gateway-id",
          gw,
          "--key-type",
          "p256",
          "--device-key-file",
          keyFile,
        ]),
      ).toBe(0);
      expect(cap.out()).toMatch(/registered gateway 0xabab/);
      // a repeated registration fails with the contract's error, exit code 1
      expect(
        await chainCommand([
          "register-gateway",
          "--rpc",
          anvil.url,
          "--deployment",
          out,
          "--site",
          "plant-1",
          "--gateway-id",
          gw,
          "--key-type",
          "p256",
          "--device-key-file",
          keyFile,
        ]),
      ).toBe(1);
      expect(cap.err()).toMatch(/GatewayAlreadyRegistered/);
    } finally {
      cap.restore();
    }
  });

  it("error: verify detects code that is not the artifact", async () => {
    const out = join(dir, "deployment.json");
    const d = JSON.parse(readFileSync(out, "utf8")) as Deployment;
    const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true });
    await provider.send("anvil_setCode", [d.contracts.VigilRegistry.address, "0x6000"]);
    provider.destroy();
    const cap = capture();
    try {
      expect(await chainCommand(["verify", "--rpc", anvil.url, "--deployment", out])).toBe(1);
      expect(cap.err()).toMatch(/VigilRegistry: code at .* does not match the artifact/);
    } finally {
      cap.restore();
    }
  });

  it("args: usage errors exit 2 and --help prints the commands", async () => {
    const cap = capture();
    try {
      expect(await chainCommand(["deploy"])).toBe(2);
      expect(await chainCommand(["deploy", "--bogus"])).toBe(2);
      expect(await chainCommand(["nope"])).toBe(2);
      expect(await chainCommand(["deploy", "--help"])).toBe(0);
      expect(cap.out()).toMatch(/vigil chain <command>/);
      expect(cap.err()).toMatch(/--rpc URL is required/);
    } finally {
      cap.restore();
    }
  });

  it("error: an unreachable RPC is a ChainNetworkError with the URL redacted", async () => {
    const cap = capture();
    try {
      expect(await chainCommand(["deploy", "--rpc", "http://user:secret@127.0.0.1:1/"])).toBe(1);
      expect(cap.err()).toMatch(/RPC endpoint unreachable/);
      expect(cap.err()).not.toMatch(/secret/);
    } finally {
      cap.restore();
    }
  });
});
