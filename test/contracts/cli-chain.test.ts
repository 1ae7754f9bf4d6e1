import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JsonRpcProvider, keccak256 } from "ethers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { VigilRegistryArtifact } from "../../contracts/artifacts/index.ts";
import { generateKey, secp256k1Address } from "../../gateway/src/chain/keys.ts";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
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
      // A second deploy to the same file is refused before anything is deployed (or paid for);
      // so is a threshold of 0, which the contract would refuse after the gas is spent.
      const p = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true });
      const block = await p.getBlockNumber();
      expect(await chainCommand(["deploy", "--rpc", anvil.url, "--out", out])).toBe(1);
      expect(cap.err()).toContain(`${out} exists`);
      expect(
        await chainCommand(["deploy", "--rpc", anvil.url, "--out", join(dir, "t0.json"), "--threshold", "0"]),
      ).toBe(2);
      expect(cap.err()).toContain('--threshold must be a number in [1, 65535], got "0"');
      expect(await p.getBlockNumber()).toBe(block);
      p.destroy();
      expect(JSON.parse(readFileSync(out, "utf8"))).toEqual(d);
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
      writeFileSync(keyFile, bytesToHex(generateKey("p256").privateKey), { mode: 0o600 });
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
      // at a site the account does not operate: the contract's reason and who can fix it
      const args = ["register-gateway", "--rpc", anvil.url, "--deployment", out, "--site", "plant-2"];
      expect(
        await chainCommand([
          ...args,
          "--gateway-id",
          `0x${"cd".repeat(32)}`,
          "--key-type",
          "p256",
          "--device-key-file",
          keyFile,
        ]),
      ).toBe(1);
      expect(cap.err()).toMatch(
        /vigil chain: account 0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266 is not an operator of site 0x[0-9a-f]{64} \(NotSiteOperator\(.*\)\); the registry's default admin grants that role with "vigil chain grant-operator"\.\n/,
      );
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

  it("args: a deploy value the constructors cannot take is a usage error before anything is deployed", async () => {
    // uint48 admin delay, uint16 threshold, decimal numbers, an address: a threshold of 70000 used
    // to deploy (and pay for) the registry, then fail in ethers' words on VigilReleases.
    const p = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true });
    const block = await p.getBlockNumber();
    const cases: [string[], string][] = [
      [["--threshold", "70000"], '--threshold must be a number in [1, 65535], got "70000"'],
      [["--threshold", "0x2"], '--threshold must be a number in [1, 65535], got "0x2"'],
      [["--admin-delay", "1e30"], '--admin-delay must be a number in [0, 281474976710655], got "1e30"'],
      [["--admin-delay", "2.5"], '--admin-delay must be a whole number, got "2.5"'],
      [["--max-release-size", "0"], '--max-release-size must be a number in [1, 9007199254740991], got "0"'],
      [["--admin", "foo"], '--admin must be an address (0x + 40 hex digits), got "foo"'],
    ];
    const cap = capture();
    try {
      for (const [args, msg] of cases) {
        const code = await chainCommand([
          "deploy",
          "--rpc",
          anvil.url,
          "--out",
          join(dir, "x.json"),
          ...args,
        ]);
        expect({ args, code }).toEqual({ args, code: 2 });
        expect(cap.err()).toContain(`vigil chain: ${msg}`);
      }
      expect(await p.getBlockNumber()).toBe(block);
      expect(existsSync(join(dir, "x.json"))).toBe(false);
    } finally {
      cap.restore();
      p.destroy();
    }
  });

  it("args: a malformed --account or --public-key is a usage error naming the flag, not ethers' words after the chain", async () => {
    const conn = ["--rpc", anvil.url, "--deployment", join(dir, "deployment.json"), "--site", "plant-1"];
    const gw = `0x${"ef".repeat(32)}`;
    const cases: [string[], string][] = [
      // "foo" went to ethers as an ENS name: "network does not support ENS"
      [
        ["grant-operator", ...conn, "--account", "foo"],
        '--account must be an address (0x + 40 hex digits), got "foo"',
      ],
      [
        ["register-gateway", ...conn, "--gateway-id", gw, "--public-key", "zz"],
        '--public-key for secp256k1 must be 0x and 20 bytes of hex (the key\'s address), got "zz"',
      ],
      [
        [
          "register-gateway",
          ...conn,
          "--gateway-id",
          gw,
          "--key-type",
          "p256",
          "--public-key",
          `0x${"11".repeat(20)}`,
        ],
        `--public-key for p256 must be 0x and 64 bytes of hex (x‖y), got "0x${"11".repeat(20)}"`,
      ],
    ];
    const cap = capture();
    try {
      for (const [args, msg] of cases) {
        expect({ args, code: await chainCommand(args) }).toEqual({ args, code: 2 });
        expect(cap.err()).toContain(`vigil chain: ${msg}`);
      }
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
      expect(await chainCommand(["--help"])).toBe(0);
      expect(cap.out()).toMatch(/vigil chain <command>/);
      expect(cap.err()).toMatch(/--rpc URL is required/);
    } finally {
      cap.restore();
    }
  });

  it.each([
    ["deploy", /usage: vigil chain deploy --rpc URL/, /--admin-delay SECONDS/],
    ["verify", /usage: vigil chain verify --deployment FILE --rpc URL/, /immutables masked/],
    ["register-gateway", /usage: vigil chain register-gateway/, /--device-key-file FILE/],
    ["grant-operator", /usage: vigil chain grant-operator/, /--account ADDR/],
  ])("args: vigil chain %s --help (and -h) documents that subcommand only", async (cmd, usage, option) => {
    for (const flag of ["--help", "-h"]) {
      const cap = capture();
      try {
        expect(await chainCommand([cmd, flag])).toBe(0);
        expect(cap.out()).toMatch(usage);
        expect(cap.out()).toMatch(option);
        for (const other of ["deploy", "verify", "register-gateway", "grant-operator"].filter(
          (c) => c !== cmd,
        ))
          expect(cap.out()).not.toContain(`usage: vigil chain ${other}`);
      } finally {
        cap.restore();
      }
    }
  });

  it("error: a sending account without funds: the chain's reason and the fix, nothing written", async () => {
    const cap = capture();
    try {
      const poor = join(dir, "poor.key");
      writeFileSync(poor, bytesToHex(generateKey("secp256k1").privateKey), { mode: 0o600 });
      const out = join(dir, "poor.json");
      expect(await chainCommand(["deploy", "--rpc", anvil.url, "--key-file", poor, "--out", out])).toBe(1);
      expect(cap.err()).toMatch(
        /^vigil chain: sender has insufficient funds for gas; send the sending account enough of the chain's native token for gas\.\n$/m,
      );
      expect(existsSync(out)).toBe(false);
    } finally {
      cap.restore();
    }
  });

  it("error: keys never come from the command line; key files must be 0600", async () => {
    const cap = capture();
    try {
      const hex = bytesToHex(generateKey("secp256k1").privateKey);
      expect(await chainCommand(["deploy", "--rpc", anvil.url, "--key", hex])).toBe(2);
      expect(cap.err()).toMatch(
        /not accepted on the command line.*--key-file FILE \(mode 0600\) or VIGIL_CHAIN_KEY/,
      );
      expect(cap.err()).not.toContain(hex.slice(2));
      const open = join(dir, "open.key");
      writeFileSync(open, hex, { mode: 0o644 });
      chmodSync(open, 0o644);
      expect(
        await chainCommand(["deploy", "--rpc", anvil.url, "--key-file", open, "--out", join(dir, "x.json")]),
      ).toBe(1);
      expect(cap.err()).toMatch(/accessible by group or others \(mode 0644\); run: chmod 600/);
      const dev = join(dir, "dev.key");
      writeFileSync(dev, bytesToHex(generateKey("p256").privateKey), { mode: 0o644 });
      chmodSync(dev, 0o644);
      expect(
        await chainCommand([
          "register-gateway",
          "--rpc",
          anvil.url,
          "--deployment",
          join(dir, "deployment.json"),
          "--site",
          "plant-1",
          "--gateway-id",
          `0x${"cd".repeat(32)}`,
          "--key-type",
          "p256",
          "--device-key-file",
          dev,
        ]),
      ).toBe(1);
      expect(cap.err()).toMatch(/--device-key-file .* is accessible by group or others/);
    } finally {
      cap.restore();
    }
  });

  it("error: on a chain that is not a local development chain (chain id 10), deploy never uses a well-known development key", async () => {
    const op = await startAnvil({ chainId: 10 });
    const cap = capture();
    try {
      const out = join(dir, "op.json");
      // No key given: no fallback to anvil's account #0.
      expect(await chainCommand(["deploy", "--rpc", op.url, "--out", out])).toBe(2);
      expect(cap.err()).toMatch(/no sending key.*chain 10 .* is not one/);
      // The development key given explicitly: refused too.
      const devFile = join(dir, "dev0.key");
      writeFileSync(devFile, ANVIL_DEV_KEYS[0], { mode: 0o600 });
      expect(await chainCommand(["deploy", "--rpc", op.url, "--key-file", devFile, "--out", out])).toBe(1);
      expect(cap.err()).toMatch(/well-known development key .*refusing to use it on chain 10/);
      process.env.VIGIL_CHAIN_KEY = ANVIL_DEV_KEYS[3];
      try {
        expect(await chainCommand(["deploy", "--rpc", op.url, "--out", out])).toBe(1);
      } finally {
        delete process.env.VIGIL_CHAIN_KEY;
      }
      expect(existsSync(out)).toBe(false);
      // A key of one's own (funded on this test chain) deploys.
      const own = generateKey("secp256k1");
      const ownFile = join(dir, "own.key");
      writeFileSync(ownFile, bytesToHex(own.privateKey), { mode: 0o600 });
      const provider = new JsonRpcProvider(op.url, undefined, { staticNetwork: true });
      await provider.send("anvil_setBalance", [secp256k1Address(own.privateKey), "0x56bc75e2d63100000"]);
      provider.destroy();
      expect(
        await chainCommand([
          "deploy",
          "--rpc",
          op.url,
          "--key-file",
          ownFile,
          "--out",
          out,
          "--admin-delay",
          "0",
        ]),
      ).toBe(0);
      const d = JSON.parse(readFileSync(out, "utf8")) as Deployment;
      expect(d.chainId).toBe("10");
      expect(d.admin.toLowerCase()).toBe(secp256k1Address(own.privateKey).toLowerCase());
    } finally {
      cap.restore();
      await op.stop();
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
