/**
 * hardware/pi/install.sh and uninstall.sh, run for real (npm ci, tsc, npm prune) but never on the
 * machine's own /opt, /etc or /var/lib:
 *   - `--root DIR`: everything lands under a temporary folder (no user, no systemctl);
 *   - real paths, as root, inside a private mount namespace whose /etc, /opt, /var/lib and
 *     /usr/local are overlays on temporary folders, with stand-ins for systemctl and udevadm
 *     that record their calls: this covers the `vigil` user, ownership and modes, and the
 *     systemctl sequence, which `--root` skips.
 * Needs Linux on x86_64 or aarch64, bash, tar, util-linux `unshare` and root for the second part
 * (.ci/run runs as root).
 */
import { execFile, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { stop } from "../helpers/procs.ts";

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, "../..");
const install = join(repo, "hardware/pi/install.sh");
const uninstall = join(repo, "hardware/pi/uninstall.sh");
const arch = process.arch === "arm64" ? "arm64" : "x64";
// npm ci + build inside the install: minutes on a loaded 2-core runner
const INSTALL_MS = 400_000;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  try {
    const { stdout, stderr } = await run(cmd, args, { env, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === "number" ? x.code : -1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

async function ok(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Result> {
  const r = await sh(cmd, args, env);
  if (r.code !== 0)
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${r.code}\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`,
    );
  return r;
}

/** Relative paths of every file and link under `dir`, sorted (node_modules included). */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

function mode(p: string): string {
  return (statSync(p).mode & 0o7777).toString(8).padStart(4, "0");
}

describe("hardware/pi/install.sh --root (a temporary root, no systemctl)", () => {
  let root: string;
  let prefix: string;
  let firstTree: string[];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "vigil-pi-root-"));
    prefix = join(root, "opt/vigil");
    await ok("bash", [install, "--root", root]);
    firstTree = tree(prefix);
  }, INSTALL_MS);

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("behavior: dist/ is built and the TypeScript sources are not installed", () => {
    expect(existsSync(join(prefix, "dist/gateway/src/cli/main.js"))).toBe(true);
    expect(existsSync(join(prefix, "gateway/src/cli/main.ts"))).toBe(false);
    expect(firstTree.filter((f) => f.endsWith(".ts") && !f.startsWith("node_modules/"))).toEqual([]);
    // Data the compiled code reads through fromRoot(): schemas and model manifests stay.
    for (const f of [
      "hardware/frame-json.schema.json",
      "models/manifest.schema.json",
      "gateway/src/alerts/schemas/alert.schema.json",
    ])
      expect(firstTree).toContain(f);
    expect(firstTree.some((f) => /^models\/.+\.onnx$/.test(f))).toBe(true);
    // Dev dependencies are pruned; tsx and esbuild (for the sources only) are gone.
    for (const d of ["typescript", "vitest", "@foundry-rs", "tsx", "esbuild"])
      expect(existsSync(join(prefix, "node_modules", d))).toBe(false);
    expect(
      readdirSync(join(prefix, "node_modules/.bin")).filter(
        (b) => !existsSync(join(prefix, "node_modules/.bin", b)),
      ),
    ).toEqual([]);
  });

  it("behavior: only this platform's native binaries are left", () => {
    const ort = join(prefix, "node_modules/onnxruntime-node/bin/napi-v6");
    expect(readdirSync(ort)).toEqual(["linux"]);
    expect(readdirSync(join(ort, "linux"))).toEqual([arch]);
    for (const pkg of ["classic-level", "@serialport/bindings-cpp"])
      expect(readdirSync(join(prefix, "node_modules", pkg, "prebuilds"))).toEqual([`linux-${arch}`]);
  });

  it("behavior: the installed CLI runs from dist with VIGIL_DIST=1 and without it", async () => {
    for (const env of [
      { ...process.env, VIGIL_DIST: "1" },
      { ...process.env, VIGIL_DIST: "" },
    ]) {
      const r = await ok("node", [join(prefix, "bin/vigil.js"), "--help"], env);
      expect(r.stdout).toMatch(/^usage: vigil <command>/);
      const keys = await ok("node", [join(prefix, "bin/vigil.js"), "keys", "--help"], env);
      expect(keys.stdout).toMatch(/^usage: vigil keys/);
    }
  });

  it("behavior: the installed gateway starts from dist with its models and stops cleanly", async () => {
    const data = mkdtempSync(join(tmpdir(), "vigil-pi-data-"));
    const p = spawn(
      "node",
      [
        join(prefix, "bin/vigil.js"),
        "start",
        "--data-dir",
        data,
        "--mqtt-port",
        "0",
        "--http-port",
        "0",
        "--stats-ms",
        "600000",
      ],
      {
        env: { ...process.env, VIGIL_DIST: "1", ORT_DISABLE_TELEMETRY: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((res) => p.once("exit", (code) => res(code)));
    try {
      await vi.waitFor(() => expect(out).toContain('"msg":"gateway started"'), {
        timeout: 30_000,
        interval: 50,
      });
      const line = out.split("\n").find((l) => l.includes('"msg":"gateway started"')) ?? "{}";
      // the models it serves, by name (from the installed models/ folder)
      expect((JSON.parse(line) as { models: string[] }).models).toContain("rotating-v1-health");
      p.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(out).toContain('"msg":"stopped"');
    } finally {
      await stop(p, "SIGKILL");
      rmSync(data, { recursive: true, force: true });
    }
  }, 60_000);

  it("behavior: config, passphrase, state dir, unit, udev rules and the link are in place", async () => {
    expect(mode(join(root, "etc/vigil"))).toBe("0750");
    expect(mode(join(root, "etc/vigil/config.json"))).toBe("0640");
    expect(mode(join(root, "etc/vigil/keystore.pass"))).toBe("0600");
    expect(readFileSync(join(root, "etc/vigil/keystore.pass"), "utf8").trim()).toMatch(
      /^[A-Za-z0-9+/]{43}=$/,
    );
    expect(mode(join(root, "var/lib/vigil"))).toBe("0700");
    expect(readFileSync(join(root, "etc/vigil/config.json"), "utf8")).toBe(
      readFileSync(join(repo, "hardware/pi/config.example.json"), "utf8"),
    );
    const unit = readFileSync(join(root, "etc/systemd/system/vigil.service"), "utf8");
    expect(unit).toContain(
      `\nExecStart=${(await ok("sh", ["-c", "command -v node"])).stdout.trim()} /opt/vigil/bin/vigil.js start --config /etc/vigil/config.json\n`,
    );
    expect(readFileSync(join(root, "etc/udev/rules.d/99-vigil-serial.rules"), "utf8")).toBe(
      readFileSync(join(repo, "hardware/pi/99-vigil-serial.rules"), "utf8"),
    );
    expect(readlinkSync(join(root, "usr/local/bin/vigil"))).toBe("/opt/vigil/bin/vigil.js");
  });

  it(
    "behavior: a second run keeps config, passphrase, udev rules and state, and installs the same tree",
    async () => {
      const edited = join(root, "etc/vigil/config.json");
      writeFileSync(edited, readFileSync(edited, "utf8").replace('"site-1"', '"plant-7"'));
      const rules = join(root, "etc/udev/rules.d/99-vigil-serial.rules");
      writeFileSync(rules, `${readFileSync(rules, "utf8")}# edited\n`);
      writeFileSync(join(root, "var/lib/vigil/gateway.key"), "stand-in", { mode: 0o600 });
      const keep = [
        edited,
        rules,
        join(root, "etc/vigil/keystore.pass"),
        join(root, "var/lib/vigil/gateway.key"),
      ];
      const before = keep.map((f) => readFileSync(f, "utf8"));
      await ok("bash", [install, "--root", root]);
      expect(keep.map((f) => readFileSync(f, "utf8"))).toEqual(before);
      expect(tree(prefix)).toEqual(firstTree);
      // No staging folder left beside the prefix; the replaced install is kept, one generation,
      // with the unit it ran under.
      expect(readdirSync(join(root, "opt")).sort()).toEqual(["vigil", "vigil.previous"]);
      expect(tree(`${prefix}.previous`)).toEqual([...firstTree, "vigil.service"].sort());
      expect(readFileSync(`${prefix}.previous/vigil.service`, "utf8")).toBe(
        readFileSync(join(root, "etc/systemd/system/vigil.service"), "utf8"),
      );
    },
    INSTALL_MS,
  );

  it(
    "error: an upgrade whose new version refuses the config stops before the swap: the installed version is unchanged",
    async () => {
      const cfg = join(root, "etc/vigil/config.json");
      const good = readFileSync(cfg, "utf8");
      writeFileSync(cfg, good.replace(/^\{/, '{ "typo": 1,'));
      try {
        const r = await sh("bash", [install, "--root", root]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('unknown setting "typo"');
        expect(r.stderr).toContain(
          `vigil install: this version refuses ${cfg} (above); the installed version is unchanged`,
        );
        expect(tree(prefix)).toEqual(firstTree);
        expect(readdirSync(join(root, "opt")).sort()).toEqual(["vigil", "vigil.previous"]);
      } finally {
        writeFileSync(cfg, good);
      }
    },
    INSTALL_MS,
  );

  it("behavior: --rollback swaps the previous install back in (and again, forth), building nothing", async () => {
    writeFileSync(join(prefix, "marker-current"), "");
    writeFileSync(join(`${prefix}.previous`, "marker-previous"), "");
    const r = await ok("bash", [install, "--root", root, "--rollback"]);
    expect(r.stdout).toContain(`rolled back: ${prefix} is the previous install again`);
    expect(r.stdout).not.toContain("== building");
    expect(existsSync(join(prefix, "marker-previous"))).toBe(true);
    expect(existsSync(join(`${prefix}.previous`, "marker-current"))).toBe(true);
    // A prefix written with a trailing slash is the same install (not <prefix>/.previous inside it).
    await ok("bash", [install, "--root", root, "--prefix", "/opt/vigil/", "--rollback"]);
    expect(existsSync(join(prefix, "marker-current"))).toBe(true);
    expect(readdirSync(join(root, "opt")).sort()).toEqual(["vigil", "vigil.previous"]);
    const none = await sh("bash", [install, "--root", join(root, "elsewhere"), "--rollback"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/there is no previous install at .*\/opt\/vigil\.previous to roll back to/);
  });

  it("error: --rollback to a build that refuses the config (settings of the newer version) changes nothing and names them", async () => {
    const cfg = join(root, "etc/vigil/config.json");
    const good = readFileSync(cfg, "utf8");
    writeFileSync(cfg, good.replace(/^\{/, '{ "newerSetting": 1,'));
    writeFileSync(join(prefix, "marker-running"), "");
    try {
      const r = await sh("bash", [install, "--root", root, "--rollback"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('unknown setting "newerSetting"');
      expect(r.stderr).toContain(
        `vigil install: the previous install refuses ${cfg} (above): it uses settings of this newer version; remove them and run --rollback again (nothing was changed)`,
      );
      expect(existsSync(join(prefix, "marker-running"))).toBe(true);
    } finally {
      writeFileSync(cfg, good);
      rmSync(join(prefix, "marker-running"));
    }
  });

  it("behavior: uninstall keeps config and state; --purge removes them", async () => {
    await ok("bash", [uninstall, "--root", root]);
    expect(existsSync(prefix)).toBe(false);
    expect(existsSync(`${prefix}.previous`)).toBe(false);
    expect(existsSync(join(root, "etc/systemd/system/vigil.service"))).toBe(false);
    expect(existsSync(join(root, "usr/local/bin/vigil"))).toBe(false);
    expect(existsSync(join(root, "etc/vigil/config.json"))).toBe(true);
    expect(existsSync(join(root, "var/lib/vigil/gateway.key"))).toBe(true);
    await ok("bash", [uninstall, "--root", root, "--purge", "--yes"]);
    for (const p of ["etc/vigil", "var/lib/vigil", "etc/udev/rules.d/99-vigil-serial.rules"])
      expect(existsSync(join(root, p))).toBe(false);
  });
});

describe("hardware/pi/install.sh refuses what it cannot install", () => {
  it("error: Node.js older than 20.19 is refused before anything is built", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-pi-node-"));
    try {
      const bin = join(dir, "bin");
      mkdirSync(bin);
      for (const v of ["v20.18.3", "v18.20.4"]) {
        writeFileSync(join(bin, "node"), `#!/bin/sh\necho ${v}\n`);
        chmodSync(join(bin, "node"), 0o755);
        const r = await sh("bash", [install, "--root", join(dir, "root")], {
          ...process.env,
          PATH: `${bin}:${process.env.PATH ?? ""}`,
        });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`Node.js >= 20.19 is required (found ${v})`);
        expect(existsSync(join(dir, "root/opt"))).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("error: a 32-bit Node.js (a 32-bit OS on a 64-bit kernel, where uname -m says aarch64) is refused before anything is built", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-pi-node-"));
    try {
      const bin = join(dir, "bin");
      mkdirSync(bin);
      writeFileSync(
        join(bin, "node"),
        '#!/bin/sh\ncase "$1" in --version) echo v22.11.0 ;; -p) echo arm ;; esac\n',
      );
      chmodSync(join(bin, "node"), 0o755);
      const r = await sh("bash", [install, "--root", join(dir, "root")], {
        ...process.env,
        PATH: `${bin}:${process.env.PATH ?? ""}`,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("this Node.js is built for arm: onnxruntime-node needs a 64-bit one");
      expect(existsSync(join(dir, "root/opt"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("error: too little free space for the build is said before npm ci starts (a real 64 MB tmpfs as the root)", async () => {
    const root = mkdtempSync(join(tmpdir(), "vigil-pi-small-"));
    await ok("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", root]);
    try {
      const r = await sh("bash", [install, "--root", root]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /vigil install: the build needs about 700 MB free in \S+\/opt and \d+ MB are; free some space/,
      );
      expect(readdirSync(join(root, "opt"))).toEqual([]); // no staging folder was made
    } finally {
      await ok("umount", [root]);
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("error: the free-space refusal names a staging folder left by an earlier installer that it could not remove", async () => {
    const root = mkdtempSync(join(tmpdir(), "vigil-pi-small-"));
    await ok("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", root]);
    // A mount point inside a leftover cannot be removed (EBUSY); the other leftover can.
    const stuck = join(root, "opt/.vigil-install.Stuck1");
    const gone = join(root, "opt/.vigil-install.Gone12");
    mkdirSync(join(stuck, "m"), { recursive: true });
    mkdirSync(gone, { recursive: true });
    writeFileSync(join(gone, "blob"), Buffer.alloc(8 * 1024 * 1024));
    await ok("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", join(stuck, "m")]);
    try {
      const r = await sh("bash", [install, "--root", root]);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`removed ${gone}, left by an installer that no longer runs`);
      expect(r.stderr).toMatch(
        new RegExp(
          `vigil install: the build needs about 700 MB free in \\S+/opt and \\d+ MB are; ${stuck}, left by an earlier installer, could not be removed \\(above\\): remove it, free some space`,
        ),
      );
      expect(readdirSync(join(root, "opt"))).toEqual([".vigil-install.Stuck1"]);
    } finally {
      await sh("umount", [join(stuck, "m")]);
      await ok("umount", [root]);
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("error: a prefix that holds something other than Vigil is not replaced", async () => {
    const root = mkdtempSync(join(tmpdir(), "vigil-pi-other-"));
    try {
      mkdirSync(join(root, "usr/lib"), { recursive: true });
      writeFileSync(join(root, "usr/lib/precious"), "x");
      const r = await sh("bash", [install, "--root", root, "--prefix", "/usr"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("is not a Vigil install");
      const u = await sh("bash", [uninstall, "--root", root, "--prefix", "/usr"]);
      expect(u.code).toBe(1);
      expect(existsSync(join(root, "usr/lib/precious"))).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("error: unknown options are refused with the usage", async () => {
    const r = await sh("bash", [install, "--prefx", "/opt/x"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown option --prefx");
    expect(r.stderr).toContain("usage: sudo hardware/pi/install.sh");
  });

  it("error: a prefix the service cannot see (ProtectHome, PrivateTmp) is refused before anything is built", async () => {
    for (const p of ["/home/pi/vigil", "/tmp/vigil"]) {
      const r = await sh("bash", [install, "--root", join(tmpdir(), "vigil-pi-never"), "--prefix", p]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`--prefix ${p} is hidden from the service`);
    }
    expect(existsSync(join(tmpdir(), "vigil-pi-never"))).toBe(false);
  });
});

describe("hardware/pi/install.sh and uninstall.sh keep what is not theirs (no build)", () => {
  let dir: string;
  /** PATH with an `npm` that fails: an install that got as far as the build ends there, fast. */
  let tripwire: NodeJS.ProcessEnv;
  /** PATH with an `npm` that fails only for the subcommand in $VIGIL_TEST_NPM_FAIL. */
  let npmFails: (sub: string) => NodeJS.ProcessEnv;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "vigil-pi-keep-"));
    const trip = join(dir, "trip");
    mkdirSync(trip);
    writeFileSync(join(trip, "npm"), '#!/bin/sh\necho "npm ran: $*" >&2\nexit 99\n');
    chmodSync(join(trip, "npm"), 0o755);
    tripwire = { ...process.env, PATH: `${trip}:${process.env.PATH ?? ""}` };
    const shim = join(dir, "shim");
    mkdirSync(shim);
    writeFileSync(
      join(shim, "npm"),
      '#!/bin/sh\nif [ "$1" = "$VIGIL_TEST_NPM_FAIL" ]; then echo "npm error (simulated)" >&2; exit 7; fi\nexit 0\n',
    );
    chmodSync(join(shim, "npm"), 0o755);
    npmFails = (sub) => ({
      ...process.env,
      PATH: `${shim}:${process.env.PATH ?? ""}`,
      VIGIL_TEST_NPM_FAIL: sub,
    });
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A temporary root holding a stand-in Vigil install at /opt/vigil (a package.json named vigil). */
  function fakeRoot(name: string): string {
    const root = join(dir, name);
    mkdirSync(join(root, "opt/vigil"), { recursive: true });
    writeFileSync(join(root, "opt/vigil/package.json"), '{ "name": "vigil" }\n');
    return root;
  }

  it("error: a prefix that is, is inside or holds /var/lib/vigil or /etc/vigil is refused before anything is built, by both scripts", async () => {
    const root = join(dir, "overlap");
    for (const [p, kept] of [
      ["/var/lib/vigil", "/var/lib/vigil"],
      ["/var/lib/vigil/app", "/var/lib/vigil"],
      ["/var/lib", "/var/lib/vigil"],
      ["/etc/vigil", "/etc/vigil"],
      ["/etc", "/etc/vigil"],
      ["/opt/../var/lib/vigil/", "/var/lib/vigil"],
    ] as const) {
      const r = await sh("bash", [install, "--root", root, "--prefix", p], tripwire);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `^vigil install: --prefix \\S+ is, is inside or holds ${kept} \\(the gateway's state or config`,
        ),
      );
      expect(r.stderr).toContain("choose a folder of its own such as /opt/vigil");
      expect(r.stderr).not.toContain("npm ran");
    }
    expect(existsSync(root)).toBe(false);

    // An install made with such a prefix before: a plain uninstall must not delete the key with
    // "the program", whether the prefix comes from the unit or from --prefix.
    mkdirSync(join(root, "var/lib/vigil"), { recursive: true });
    writeFileSync(join(root, "var/lib/vigil/package.json"), '{ "name": "vigil" }\n');
    writeFileSync(join(root, "var/lib/vigil/gateway.key"), "key");
    mkdirSync(join(root, "etc/systemd/system"), { recursive: true });
    writeFileSync(
      join(root, "etc/systemd/system/vigil.service"),
      "[Service]\nExecStart=/usr/bin/node /var/lib/vigil/bin/vigil.js start --config /etc/vigil/config.json\n",
    );
    for (const args of [[], ["--prefix", "/var/lib/vigil"], ["--prefix", "/var/lib"]]) {
      const u = await sh("bash", [uninstall, "--root", root, ...args]);
      expect(u.code, u.stdout).toBe(1);
      expect(u.stderr).toMatch(
        /^vigil uninstall: the program folder \/var\/lib(\/vigil)? is, is inside or holds \/var\/lib\/vigil/,
      );
      expect(readFileSync(join(root, "var/lib/vigil/gateway.key"), "utf8")).toBe("key");
      expect(existsSync(join(root, "etc/systemd/system/vigil.service"))).toBe(true);
    }
  });

  it("error: a <prefix>.previous that is not a Vigil install is neither replaced by an upgrade nor deleted by uninstall", async () => {
    const root = fakeRoot("previous");
    mkdirSync(join(root, "opt/vigil.previous"));
    writeFileSync(join(root, "opt/vigil.previous/important.txt"), "operator backup");
    const r = await sh("bash", [install, "--root", root], tripwire);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `vigil install: ${root}/opt/vigil.previous is not a Vigil install and an upgrade would replace it with the current one; move it elsewhere and run this again`,
    );
    expect(r.stderr).not.toContain("npm ran"); // refused before the build
    expect(readdirSync(join(root, "opt")).sort()).toEqual(["vigil", "vigil.previous"]);

    const u = await sh("bash", [uninstall, "--root", root, "--purge", "--yes"]);
    expect(u.code, u.stderr).toBe(0);
    expect(u.stdout).toContain(`kept ${root}/opt/vigil.previous: it is not a Vigil install`);
    expect(readFileSync(join(root, "opt/vigil.previous/important.txt"), "utf8")).toBe("operator backup");
    expect(existsSync(join(root, "opt/vigil"))).toBe(false);
  });

  it("error: uninstall --purge without --yes (and without a terminal) deletes nothing and names what would be lost", async () => {
    const root = fakeRoot("purge");
    mkdirSync(join(root, "var/lib/vigil"), { recursive: true });
    for (const f of ["gateway.key", "sender.key"]) writeFileSync(join(root, "var/lib/vigil", f), f);
    const r = await sh("bash", [uninstall, "--root", root, "--purge"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "vigil uninstall: --purge would delete the gateway key (a registered key cannot be recovered), the sender key (a funded account's key) and the store with any batches not yet anchored in /var/lib/vigil; back up what you need and add --yes to confirm (nothing was removed)\n",
    );
    expect(existsSync(join(root, "opt/vigil/package.json"))).toBe(true);
    expect(readdirSync(join(root, "var/lib/vigil")).sort()).toEqual(["gateway.key", "sender.key"]);
    const help = await ok("bash", [uninstall, "--help"]);
    expect(help.stdout).toContain("the sender\n                   key");
    expect(help.stdout).toContain("--yes");
  });

  it("behavior: at a terminal, uninstall --purge asks for the word purge and deletes only after it", async () => {
    const root = fakeRoot("purge-tty");
    mkdirSync(join(root, "var/lib/vigil"), { recursive: true });
    writeFileSync(join(root, "var/lib/vigil/gateway.key"), "key");
    // util-linux `script` gives the uninstaller a terminal as standard input.
    const typed = (answer: string): Promise<Result> =>
      sh("sh", [
        "-c",
        `printf '%s\\n' "$1" | script -qec "bash '${uninstall}' --root '${root}' --purge" /dev/null`,
        "sh",
        answer,
      ]);
    const no = await typed("yes");
    expect(no.code).not.toBe(0);
    expect(no.stdout).toContain("Type purge to delete them:");
    expect(no.stdout).toContain('not confirmed (you typed "yes"); nothing was removed');
    expect(existsSync(join(root, "var/lib/vigil/gateway.key"))).toBe(true);
    expect(existsSync(join(root, "opt/vigil"))).toBe(true);
    const yes = await typed("purge");
    expect(yes.code, yes.stdout).toBe(0);
    expect(yes.stdout).toContain("purged /var/lib/vigil");
    expect(existsSync(join(root, "var/lib/vigil"))).toBe(false);
  });

  it("behavior: uninstall keeps the systemctl edit drop-in and says so; --purge --yes removes it", async () => {
    const root = fakeRoot("dropin");
    const dropin = join(root, "etc/systemd/system/vigil.service.d");
    mkdirSync(dropin, { recursive: true });
    writeFileSync(join(dropin, "override.conf"), "[Service]\nMemoryMax=600M\n");
    const keep = await ok("bash", [uninstall, "--root", root]);
    expect(keep.stdout).toContain(
      "/etc/systemd/system/vigil.service.d (your systemctl edit drop-ins) and the vigil user; --purge --yes deletes them",
    );
    expect(existsSync(join(dropin, "override.conf"))).toBe(true);
    const purge = await ok("bash", [uninstall, "--root", root, "--purge", "--yes"]);
    expect(purge.stdout).toContain("/etc/systemd/system/vigil.service.d");
    expect(existsSync(dropin)).toBe(false);
  });

  it("error: --rollback to a build older than the store format check is refused before anything is swapped", async () => {
    const root = fakeRoot("old-build");
    mkdirSync(join(root, "opt/vigil.previous/dist/gateway/src/config"), { recursive: true });
    writeFileSync(join(root, "opt/vigil.previous/package.json"), '{ "name": "vigil" }\n');
    writeFileSync(join(root, "opt/vigil.previous/dist/gateway/src/config/config.js"), "");
    const r = await sh("bash", [install, "--root", root, "--rollback"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `vigil install: the previous install at ${root}/opt/vigil.previous is older than the store format check and would misread a store written by this version`,
    );
    expect(readdirSync(join(root, "opt/vigil"))).toEqual(["package.json"]);
    expect(readdirSync(join(root, "opt/vigil.previous"))).toEqual(["dist", "package.json"]);
  });

  it("behavior: --rollback puts back the unit kept with the previous install (and again, forth)", async () => {
    const root = fakeRoot("unit");
    mkdirSync(join(root, "opt/vigil.previous"));
    writeFileSync(join(root, "opt/vigil.previous/package.json"), '{ "name": "vigil" }\n');
    writeFileSync(join(root, "opt/vigil.previous/vigil.service"), "the previous install's unit\n");
    const unit = join(root, "etc/systemd/system/vigil.service");
    mkdirSync(join(root, "etc/systemd/system"), { recursive: true });
    writeFileSync(unit, "the new install's unit\n");
    await ok("bash", [install, "--root", root, "--rollback"]);
    expect(readFileSync(unit, "utf8")).toBe("the previous install's unit\n");
    expect(readFileSync(join(root, "opt/vigil.previous/vigil.service"), "utf8")).toBe(
      "the new install's unit\n",
    );
    expect(readdirSync(join(root, "opt/vigil"))).toEqual(["package.json"]);
    await ok("bash", [install, "--root", root, "--rollback"]);
    expect(readFileSync(unit, "utf8")).toBe("the new install's unit\n");
    expect(readFileSync(join(root, "opt/vigil.previous/vigil.service"), "utf8")).toBe(
      "the previous install's unit\n",
    );
  });

  it("error: a failed npm ci, build or prune ends with one sentence naming the fix; the installed version is unchanged", async () => {
    const root = fakeRoot("npm");
    writeFileSync(join(root, "opt/vigil/marker"), "");
    for (const [sub, step] of [
      ["ci", "npm ci"],
      ["run", "npm run build"],
      ["prune", "npm prune"],
    ] as const) {
      const r = await sh("bash", [install, "--root", root], npmFails(sub));
      expect(r.code).toBe(1);
      const last = r.stderr.trim().split("\n").pop() ?? "";
      expect(last).toMatch(
        new RegExp(`^vigil install: ${step} failed \\(above\\); .*; the installed version is unchanged$`),
      );
      if (sub !== "run") expect(last).toContain("it needs the npm registry or a warm npm cache");
      expect(readdirSync(join(root, "opt")).sort()).toEqual(["vigil"]); // no staging folder left
      expect(readdirSync(join(root, "opt/vigil")).sort()).toEqual(["marker", "package.json"]);
    }
  });

  it("behavior: staging folders of an installer that no longer runs are removed by the next install and by uninstall", async () => {
    const root = fakeRoot("stale");
    const stale = join(root, "opt/.vigil-install.Ab12Cd");
    mkdirSync(join(stale, "node_modules"), { recursive: true });
    writeFileSync(join(stale, "node_modules/x"), "left by a power cut");
    const r = await sh("bash", [install, "--root", root], tripwire);
    expect(r.stderr).toContain("npm ran"); // it went on to the build (which the tripwire ends)
    expect(r.stdout).toContain(`removed ${stale}, left by an installer that no longer runs`);
    expect(readdirSync(join(root, "opt")).sort()).toEqual(["vigil"]);
    mkdirSync(stale);
    const u = await ok("bash", [uninstall, "--root", root]);
    expect(u.stdout).toContain(stale);
    expect(readdirSync(join(root, "opt"))).toEqual([]);
  });

  it("error: while an installer runs beside the prefix, another install and uninstall refuse and leave its staging folder alone", async () => {
    const root = fakeRoot("locked");
    const staging = join(root, "opt/.vigil-install.Xy34Zw");
    mkdirSync(staging);
    // Holds the lock install.sh takes on the prefix's parent folder, until its stdin closes.
    const holder = spawn("flock", [join(root, "opt"), "sh", "-c", "echo locked; cat >/dev/null"], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    try {
      let out = "";
      holder.stdout.on("data", (d: Buffer) => (out += d.toString()));
      await vi.waitFor(() => expect(out).toContain("locked"), { timeout: 10_000, interval: 20 });
      const r = await sh("bash", [install, "--root", root], tripwire);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `vigil install: another install.sh or uninstall.sh is working in ${root}/opt (it holds a lock on that folder); wait for it to end and run this again`,
      );
      expect(r.stderr).not.toContain("npm ran");
      const u = await sh("bash", [uninstall, "--root", root]);
      expect(u.code).toBe(1);
      expect(u.stderr).toContain(`vigil uninstall: install.sh is working in ${root}/opt`);
      expect(existsSync(staging)).toBe(true);
      expect(existsSync(join(root, "opt/vigil/package.json"))).toBe(true);
    } finally {
      holder.stdin.end();
      await stop(holder, "SIGKILL");
    }
  });
});

describe("hardware/pi/install.sh on real paths (private mount namespace, overlays)", () => {
  let base: string;
  let calls: string;
  let env: NodeJS.ProcessEnv;

  /** Runs `bash script args…` with /etc, /opt, /var/lib, /usr/local overlaid on folders in `base`. */
  function inNamespace(script: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Result> {
    const mounts = ["etc:/etc", "opt:/opt", "varlib:/var/lib", "usrlocal:/usr/local"]
      .map((m) => {
        const [name, at] = m.split(":") as [string, string];
        const up = join(base, name, "up");
        const work = join(base, name, "work");
        return `mkdir -p ${up} ${work} && mount -t overlay overlay -o lowerdir=${at},upperdir=${up},workdir=${work} ${at}`;
      })
      .join(" && ");
    return sh(
      "unshare",
      [
        "--mount",
        "--propagation",
        "private",
        "bash",
        "-c",
        `${mounts} && exec bash "$@"`,
        "vigil-ns",
        script,
        ...args,
      ],
      { ...env, ...extraEnv },
    );
  }

  /** Owner and octal mode of paths inside the namespace. */
  async function stats(paths: string[]): Promise<Record<string, string>> {
    const r = await inNamespace("-c", [`stat -c '%n %U:%G %a' ${paths.join(" ")}`]);
    if (r.code !== 0) throw new Error(r.stderr);
    return Object.fromEntries(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => {
          const [n, owner, m] = l.split(" ");
          return [n, `${owner} ${m}`];
        }),
    );
  }

  beforeAll(() => {
    if (process.getuid?.() !== 0)
      throw new Error("this suite needs root (mount namespaces and overlays); .ci/run runs as root");
    base = mkdtempSync(join(tmpdir(), "vigil-pi-ns-"));
    const fake = join(base, "fakebin");
    mkdirSync(fake);
    calls = join(base, "calls.log");
    for (const tool of ["systemctl", "udevadm"]) {
      writeFileSync(
        join(fake, tool),
        `#!/bin/sh\necho "${tool} $*" >> ${calls}\n[ "$1" = is-active ] && exit 3\nexit 0\n`,
      );
      chmodSync(join(fake, tool), 0o755);
    }
    env = { ...process.env, PATH: `${fake}:${process.env.PATH ?? ""}` };
  });

  afterAll(() => {
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it(
    "behavior: creates the vigil user, owners and modes, and enables but does not start the unit; an upgrade whose build does not stay running is rolled back; uninstall --purge removes the user",
    async () => {
      const host = async () => ({
        user: (await sh("id", ["vigil"])).code === 0,
        etc: existsSync("/etc/vigil"),
        opt: existsSync("/opt/vigil-ns"),
      });
      const hostBefore = await host();
      // Installed from a copy of the sources owned by another user and writable by its group:
      // the install must be root's and writable by root only all the same.
      const src = join(base, "src");
      mkdirSync(src);
      await ok("sh", [
        "-c",
        `git -C '${repo}' ls-files -z | (cd '${repo}' && tar --null -T - -cf -) | tar -C '${src}' -xf - && chown -R 65534:65534 '${src}' && chmod -R g+w '${src}'`,
      ]);
      const first = await inNamespace(join(src, "hardware/pi/install.sh"), ["--prefix", "/opt/vigil-ns"]);
      expect(first.code, first.stderr).toBe(0);
      expect(readFileSync(calls, "utf8").split("\n").filter(Boolean)).toEqual([
        "udevadm control --reload-rules",
        "udevadm trigger --subsystem-match=tty",
        "systemctl daemon-reload",
        "systemctl enable vigil.service",
        "systemctl is-active --quiet vigil.service",
      ]);
      const id = await inNamespace("-c", ["id vigil"]);
      expect(id.stdout).toMatch(/groups=.*\(dialout\)/);
      expect(
        await stats([
          "/opt/vigil-ns",
          "/etc/vigil",
          "/etc/vigil/config.json",
          "/etc/vigil/keystore.pass",
          "/var/lib/vigil",
        ]),
      ).toEqual({
        "/opt/vigil-ns": "root:root 755",
        "/etc/vigil": "root:vigil 750",
        "/etc/vigil/config.json": "root:vigil 640",
        "/etc/vigil/keystore.pass": "root:root 600",
        "/var/lib/vigil": "vigil:vigil 700",
      });
      const loose = await inNamespace("-c", [
        "find /opt/vigil-ns ! -type l \\( ! -user root -o ! -group root -o -perm /022 \\) -print | head -n 5",
      ]);
      expect(loose.stdout).toBe("");
      const unit = await inNamespace("-c", [
        "cat /etc/systemd/system/vigil.service; readlink /usr/local/bin/vigil",
      ]);
      expect(unit.stdout).toContain("\nExecStart=");
      expect(unit.stdout).toContain(" /opt/vigil-ns/bin/vigil.js start --config /etc/vigil/config.json\n");
      expect(unit.stdout).toMatch(/\n\/opt\/vigil-ns\/bin\/vigil\.js\n$/);
      // It all went to the overlays, nothing to the machine's own folders.
      expect(lstatSync(join(base, "etc/up/vigil")).isDirectory()).toBe(true);
      expect(await host()).toEqual(hostBefore);

      // An upgrade of a running service whose new build does not stay up: the previous install is
      // put back and restarted. This systemctl says "active" until the first restart, then that
      // the unit is not active (crash-looping).
      await inNamespace("-c", ["touch /opt/vigil-ns/marker-first"]);
      const flaky = join(base, "flakybin");
      mkdirSync(flaky);
      const n = join(base, "restarts");
      writeFileSync(
        join(flaky, "systemctl"),
        `#!/bin/sh
echo "systemctl $*" >> ${calls}
` +
          `if [ "$1" = restart ]; then echo x >> ${n}; fi
` +
          `if [ "$1" = is-active ]; then [ "$(cat ${n} 2>/dev/null | wc -l)" = 1 ] && exit 3; exit 0; fi
exit 0
`,
      );
      chmodSync(join(flaky, "systemctl"), 0o755);
      // The new version's unit differs (as a unit change that makes the build fail would).
      const firstUnit = (await inNamespace("-c", ["cat /etc/systemd/system/vigil.service"])).stdout;
      const template = join(src, "hardware/pi/vigil.service");
      writeFileSync(template, `${readFileSync(template, "utf8")}# the new version's unit\n`);
      writeFileSync(calls, "");
      const upgrade = await inNamespace(join(src, "hardware/pi/install.sh"), ["--prefix", "/opt/vigil-ns"], {
        PATH: `${flaky}:${env.PATH ?? ""}`,
        VIGIL_INSTALL_SETTLE_S: "1",
      });
      expect(upgrade.code, upgrade.stdout).toBe(1);
      expect(upgrade.stderr).toContain(
        "vigil install: the new build did not stay running (journalctl -u vigil -n 50 says why); the previous install is back in /opt/vigil-ns and restarted, the new one is in /opt/vigil-ns.previous",
      );
      const sequence = readFileSync(calls, "utf8")
        .split("\n")
        .filter((l) => l.startsWith("systemctl restart") || l.startsWith("systemctl daemon-reload"));
      // the new unit is loaded and restarted; then the first install's unit is put back and
      // loaded before the restart of the first install
      expect(sequence).toEqual([
        "systemctl daemon-reload",
        "systemctl restart vigil.service",
        "systemctl daemon-reload",
        "systemctl restart vigil.service",
      ]);
      expect((await inNamespace("-c", ["test -e /opt/vigil-ns/marker-first"])).code).toBe(0);
      expect((await inNamespace("-c", ["test -e /opt/vigil-ns.previous/marker-first"])).code).not.toBe(0);
      expect((await inNamespace("-c", ["cat /etc/systemd/system/vigil.service"])).stdout).toBe(firstUnit);
      expect((await inNamespace("-c", ["cat /opt/vigil-ns.previous/vigil.service"])).stdout).toContain(
        "# the new version's unit\n",
      );

      // --rollback to that build (now in .previous), which does not stay up either: the running
      // version is swapped back and restarted, and the rollback says so.
      writeFileSync(n, "");
      writeFileSync(calls, "");
      const back = await inNamespace(install, ["--prefix", "/opt/vigil-ns", "--rollback"], {
        PATH: `${flaky}:${env.PATH ?? ""}`,
        VIGIL_INSTALL_SETTLE_S: "1",
      });
      expect(back.code, back.stdout).toBe(1);
      expect(back.stderr).toContain(
        "vigil install: the previous install did not stay running (journalctl -u vigil -n 50 says why); this version is back in /opt/vigil-ns and restarted",
      );
      expect(
        readFileSync(calls, "utf8")
          .split("\n")
          .filter((l) => l.startsWith("systemctl restart")),
      ).toHaveLength(2);
      expect((await inNamespace("-c", ["test -e /opt/vigil-ns/marker-first"])).code).toBe(0);

      writeFileSync(calls, "");
      // Without --prefix: the folder the unit runs is found from the unit.
      const purge = await inNamespace(uninstall, ["--purge", "--yes"]);
      expect(purge.code, purge.stderr).toBe(0);
      expect(purge.stdout).toContain(
        "removed the unit, /usr/local/bin/vigil, /opt/vigil-ns, /opt/vigil-ns.previous,",
      );
      expect((await inNamespace("-c", ["test -e /opt/vigil-ns"])).code).not.toBe(0);
      expect((await inNamespace("-c", ["test -e /opt/vigil-ns.previous"])).code).not.toBe(0);
      expect(readFileSync(calls, "utf8")).toContain("systemctl disable --now vigil.service\n");
      expect((await inNamespace("-c", ["id vigil"])).code).not.toBe(0);
      expect(await host()).toEqual(hostBefore);
    },
    2 * INSTALL_MS, // two installs: the first, then the upgrade that is rolled back
  );
});
