/**
 * `vigil access` and `vigil token` against the registry on anvil: every state change the issue
 * lists, `list` showing the result, errors from the contract as sentences, --help everywhere.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wallet } from "ethers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { hashPassword, PasswordFile } from "../../gateway/src/access/passwords.ts";
import { verifyReaderToken } from "../../gateway/src/access/reader-token.ts";
import { accessCommand, tokenCommand } from "../../gateway/src/cli/access.ts";
import { generateKey, registrationPublicKey } from "../../gateway/src/chain/keys.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { domainOf } from "../../gateway/src/runtime.ts";
import { localChain, type LocalChain } from "../helpers/chain.ts";

const GW: Hex = `0x${"6b".repeat(32)}`;
let dir: string;
let lc: LocalChain;
let base: string[];

function capture(): { out: () => string; err: () => string; restore: () => void } {
  let out = "";
  let err = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => ((err += String(s)), true));
  return { out: () => out, err: () => err, restore: () => (o.mockRestore(), e.mockRestore()) };
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const cap = capture();
  try {
    const code = await accessCommand(args);
    return { code, out: cap.out(), err: cap.err() };
  } finally {
    cap.restore();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-access-cli-"));
  lc = await localChain({ dataDir: dir, gatewayId: GW });
  base = ["--rpc", lc.anvil.url, "--deployment", join(dir, lc.deploymentFile), "--gateway-id", GW];
}, 120_000);

afterAll(async () => {
  await lc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("vigil access", () => {
  it("sensors: register, suspend, resume, revoke; list shows each state", async () => {
    const reg = await run(["sensor", "register", ...base, "--sensor", "0000000a"]);
    expect(reg.code).toBe(0);
    // The dev-key note names the command that was run (not "vigil chain").
    expect(reg.err).toBe(
      "vigil access sensor register: no --key-file: using anvil's development account #0 (local chain)\n",
    );
    expect((await run(["list", ...base])).out).toMatch(/0000000a {2}active/);
    expect((await run(["sensor", "suspend", ...base, "--sensor", "0000000a"])).out).toMatch(/suspended/);
    expect((await run(["list", ...base])).out).toMatch(/0000000a {2}suspended/);
    expect((await run(["sensor", "resume", ...base, "--sensor", "0000000a"])).code).toBe(0);
    expect((await run(["list", ...base])).out).toMatch(/0000000a {2}active/);
    expect((await run(["sensor", "revoke", ...base, "--sensor", "0000000a"])).code).toBe(0);
    expect((await run(["list", ...base])).out).toMatch(/0000000a {2}revoked/);
  });

  it("sensors: a key in the registry encoding of its type is registered and listed as given", async () => {
    const k1 = registrationPublicKey(generateKey("secp256k1"));
    const k2 = registrationPublicKey(generateKey("p256"));
    expect(
      (await run(["sensor", "register", ...base, "--sensor", "0000000b", "--public-key", k1])).code,
    ).toBe(0);
    const p256 = ["--sensor", "0000000c", "--key-type", "p256", "--public-key", k2];
    expect((await run(["sensor", "register", ...base, ...p256])).code).toBe(0);
    const listed = (await run(["list", ...base])).out;
    expect(listed).toContain(`0000000b  active  secp256k1 ${k1}`);
    expect(listed).toContain(`0000000c  active  p256 ${k2}`);
  });

  it("error: a contract refusal comes back as a sentence with exit 1", async () => {
    const r = await run(["sensor", "resume", ...base, "--sensor", "0000000a"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^vigil access: the status cannot change from revoked to active/m);
    const u = await run(["sensor", "suspend", ...base, "--sensor", "zz"]);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/--sensor must be 8 lowercase hex digits/);
  });

  it("readers: grant on the gateway and on the site, list, revoke; tokens mint and verify", async () => {
    const reader = Wallet.createRandom();
    const siteReader = Wallet.createRandom();
    expect((await run(["reader", "grant", ...base, "--reader", reader.address, "--days", "2"])).code).toBe(0);
    const site = ["--rpc", lc.anvil.url, "--deployment", join(dir, lc.deploymentFile), "--site", "test-site"];
    expect((await run(["reader", "grant", ...site, "--reader", siteReader.address])).code).toBe(0);
    const listed = (await run(["list", ...base])).out;
    expect(listed).toContain(reader.address.toLowerCase());
    expect(listed).toContain(siteReader.address.toLowerCase());
    expect((await run(["reader", "revoke", ...base, "--reader", reader.address])).code).toBe(0);
    expect((await run(["list", ...base])).out).not.toContain(reader.address.toLowerCase());

    const keyFile = join(dir, "reader.key");
    writeFileSync(keyFile, siteReader.privateKey, { mode: 0o600 });
    const tokenArgs = (...more: string[]): string[] => [
      "--deployment",
      join(dir, lc.deploymentFile),
      "--gateway-id",
      GW,
      "--reader-key-file",
      keyFile,
      ...more,
    ];
    const cap = capture();
    let code: number;
    try {
      code = await tokenCommand(tokenArgs("--hours", "1"));
    } finally {
      cap.restore();
    }
    expect(code).toBe(0);
    const t = JSON.parse(cap.out()) as { username: string; password: string };
    const v = verifyReaderToken(
      domainOf(lc.deployment),
      GW,
      t.username,
      t.password,
      Math.floor(Date.now() / 1000),
    );
    expect(v).toMatchObject({ reader: siteReader.address.toLowerCase() });
    const tokenWith = (...more: string[]): Promise<{ code: number; out: string; err: string }> =>
      run(["token", ...tokenArgs(...more)]);
    expect((await tokenWith("--hours", "48")).code).toBe(2);
    // A key file with a one-character typo, or readable by others: one line naming the file, and
    // the key itself is never printed (ethers' error for a malformed key contains it).
    writeFileSync(keyFile, `${siteReader.privateKey.slice(0, -1)}z\n`, { mode: 0o600 });
    const typo = await tokenWith();
    expect(typo).toMatchObject({
      code: 1,
      err: "vigil access: --reader-key-file does not hold a 32-byte hex private key.\n",
    });
    rmSync(keyFile);
    writeFileSync(keyFile, siteReader.privateKey, { mode: 0o644 });
    const open = await tokenWith();
    expect(open.code).toBe(1);
    expect(open.err).toMatch(/is accessible by group or others \(mode 0644\); run: chmod 600 /);
    expect(open.err + open.out).not.toContain(siteReader.privateKey.slice(2, 20));
  });

  it("device-password appends a $7$ hash (0600) and prints the secret once", async () => {
    const file = join(dir, "devices.passwd");
    const r = await run(["device-password", "--sensor", "0000000b", "--file", file]);
    expect(r.code).toBe(0);
    const secret = /password "([^"]+)"/.exec(r.out)![1]!;
    const pf = new PasswordFile(readFileSync(file, "utf8"));
    expect(pf.verify("0000000b", secret)).toBe(true);
    expect(readFileSync(file, "utf8")).not.toContain(secret);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await run(["device-password", "--sensor", "0000000b", "--file", file])).code).toBe(2);
  });

  it("error: device-password refuses a malformed file as a usage error; a last line without a newline is not glued to the new entry", async () => {
    const bad = join(dir, "bad.passwd");
    writeFileSync(bad, "0000000a:$7$0$AAAA$=\n", { mode: 0o600 });
    const r = await run(["device-password", "--sensor", "0000000c", "--file", bad]);
    expect([r.code, r.err]).toEqual([
      2,
      `vigil access: ${bad}: line 1: the hash is 0 bytes, not 64 (see "vigil access --help")\n`,
    ]);
    const file = join(dir, "no-newline.passwd");
    writeFileSync(file, hashPassword("0000000a", "x"), { mode: 0o600 }); // no trailing newline
    expect((await run(["device-password", "--sensor", "0000000c", "--file", file])).code).toBe(0);
    const pf = new PasswordFile(readFileSync(file, "utf8"));
    expect([pf.has("0000000a"), pf.has("0000000c"), pf.size]).toEqual([true, true, 2]);
  });

  it("error: export-mosquitto checks its names, --pid and --gateway-user before it reads the chain or writes a file", async () => {
    const pw = join(dir, "export.passwd");
    writeFileSync(pw, `${hashPassword("gateway", "g")}\n`, { mode: 0o600 });
    const out = join(dir, "mosq-out");
    const args = [...base, "--password-file", pw, "--out-dir", out];
    const refused: Array<[string[], string]> = [
      // A site name with a newline would have written its own ACL lines.
      [
        ["--site-name", "s\nuser evil\ntopic readwrite #"],
        '--site-name must be 1-64 of A-Z a-z 0-9 . _ -, got "s\nuser evil\ntopic readwrite #"',
      ],
      [["--gateway-name", "gw/+"], '--gateway-name must be 1-64 of A-Z a-z 0-9 . _ -, got "gw/+"'],
      // 0 and -1 would signal whole process groups.
      [["--pid", "0"], '--pid must be a process id, got "0"'],
      [["--pid=-1"], '--pid must be a process id, got "-1"'],
      [["--pid", "abc"], '--pid must be a process id, got "abc"'],
      [["--pid", "4194303"], "--pid 4194303: no such process; give the running Mosquitto's PID"],
      [["--gateway-user", "nobody"], `--gateway-user nobody: ${pw} has no line for that user`],
    ];
    for (const [extra, msg] of refused) {
      const r = await run(["export-mosquitto", ...args, ...extra]);
      expect([r.code, r.err], extra.join(" ")).toEqual([
        2,
        `vigil access: ${msg} (see "vigil access --help")\n`,
      ]);
    }
    expect(existsSync(out)).toBe(false);
    // The gateway's own user goes into the files, for a broker's first start with the plugin.
    const ok = await run(["export-mosquitto", ...args, "--gateway-user", "gateway"]);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/\(\d+ devices, \d+ readers, the gateway's user\)/);
    expect(readFileSync(join(out, "vigil.passwd"), "utf8")).toMatch(/^gateway:\$7\$/m);
    expect(readFileSync(join(out, "vigil.acl"), "utf8")).toContain("\nuser gateway\n");
  });

  it("--help on every command", async () => {
    for (const args of [
      ["--help"],
      ["sensor", "--help"],
      ["reader", "--help"],
      ["list", "--help"],
      ["token", "--help"],
      ["export-mosquitto", "--help"],
    ]) {
      const r = await run(args);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^usage: vigil access/);
    }
    // "vigil token" has its own usage, with only the options it takes.
    const cap = capture();
    let code: number;
    try {
      code = await tokenCommand(["--help"]);
    } finally {
      cap.restore();
    }
    expect(code).toBe(0);
    expect(cap.out()).toMatch(
      /^usage: vigil token --deployment FILE --gateway-id HEX32 --reader-key-file FILE/,
    );
  });
});
