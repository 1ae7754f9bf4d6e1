/**
 * `npm run bench -- firmware [--runs N] [--quick]`: firmware transfer over a serial line and
 * the RAM of the C update code.
 *
 * Throughput. A pty moves ~16 MB/s and ignores the baud rate, so the line is made honest by a
 * pacing relay between two socat pty pairs (test/helpers/serial-relay.ts): each direction
 * delivers at most baud / 10 bytes per second (8N1: 10 bit times per byte), in order, in
 * slices of ≤ 1 ms, and accrues no credit while idle. The gateway's FirmwareSession is on one
 * end, the simulated MCU bootloader (device-sim/src/firmware) on the other, so every round
 * trip the chunk acknowledgements imply crosses the paced line twice. A second device, the C
 * reference's update agent (hardware/firmware-ref/tool/vigil_fwdev.c: real SHA-256, flash
 * writes and read-back CRC on a RAM flash), runs the same transfer. The figure is image
 * bytes / (time from the offer to the device's READY × baud / 10). Baselines measured in the
 * same run: a raw byte stream through the same relay (what the pacing itself allows) and the
 * protocol's ceiling, 224 data bytes per 250 wire bytes (chunk header 16, frame header 4, CRC 4,
 * COBS 1, delimiter 1) = 0.896.
 *
 * RAM. `make ram` compiles the library freestanding at -Os with -fstack-usage and
 * -fcallgraph-info=su (host gcc, and arm-none-eabi-gcc for Cortex-M4 when installed): static
 * .data + .bss from `size`, each RAM structure's sizeof from `nm -S`, and the worst-case stack
 * of each entry point as the deepest path through the call graph (flash driver callbacks,
 * which are the firmware's own code, count 0).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SerialPort } from "serialport";
import { factoryFirmware } from "../device-sim/src/firmware/index.ts";
import { FirmwareSerialDevice } from "../device-sim/src/firmware/serial-device.ts";
import { buildFirmwareImage } from "../gateway/src/protocol/firmware-image.ts";
import { FirmwareSession } from "../gateway/src/updates/firmware/session.ts";
import { GatewayFirmwarePort } from "../test/helpers/firmware-link.ts";
import { stop, which } from "../test/helpers/procs.ts";
import { SerialRelay } from "../test/helpers/serial-relay.ts";
import { benchOptions, int } from "./lib/options.ts";

const args = benchOptions(import.meta.url, { runs: { type: "string" }, quick: { type: "boolean" } }, (a) => ({
  quick: a.quick === true,
  runs: int("runs", a.runs, a.quick ? 1 : 3, 1),
}));
const RUNS = args.runs;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const REF = join(ROOT, "hardware", "firmware-ref");
const CEILING = 224 / 250;

// ---- RAM -------------------------------------------------------------------------------

interface RamReport {
  target: string;
  compiler: string;
  /** .data + .bss of every library object (the library keeps no static state). */
  staticBytes: Record<string, number>;
  sizeof: Record<string, number>;
  /** Worst-case stack of each entry point, bytes. */
  stack: Record<string, number>;
  /** The bootloader: vigil_fwu_t + the deeper of vigil_fwu_open / vigil_boot. */
  bootloaderBytes: number;
  /** The update agent in the application: vigil_fwu_t + the deepest of handle / status / confirm. */
  updateAgentBytes: number;
}

function ram(target: string, make: string[]): RamReport {
  const dir = `build/ram-${target}`;
  const out = execFileSync("make", ["-s", "-C", REF, "ram", `RAM_DIR=${dir}`, ...make], { encoding: "utf8" });
  const staticBytes: Record<string, number> = {};
  for (const m of out.matchAll(/^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+[0-9a-f]+\s+\S*\/(\w+)\.o$/gm))
    staticBytes[m[4]!] = Number(m[2]) + Number(m[3]);
  const sizeof: Record<string, number> = {};
  for (const m of out.matchAll(/^[0-9a-f]+ ([0-9a-f]+) [BbCc] vigil_sizeof_(\w+)$/gm))
    sizeof[m[2]!] = parseInt(m[1]!, 16);
  // Call graph: nodes "title" with "N bytes", edges source -> target (VCG from -fcallgraph-info=su).
  const frame = new Map<string, number>();
  const calls = new Map<string, Set<string>>();
  const short = (t: string) => t.replace(/^.*:/, "");
  for (const f of readdirSync(join(REF, dir)).filter((x) => x.endsWith(".ci"))) {
    const text = readFileSync(join(REF, dir, f), "utf8");
    for (const m of text.matchAll(/node: \{ title: "([^"]+)" label: "[^"]*?\\n[^"]*?\\n(\d+) bytes/g))
      frame.set(short(m[1]!), Number(m[2]));
    for (const m of text.matchAll(/edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"/g)) {
      const s = short(m[1]!);
      if (!calls.has(s)) calls.set(s, new Set());
      calls.get(s)!.add(short(m[2]!));
    }
  }
  const memo = new Map<string, number>();
  const depth = (fn: string, seen: Set<string>): number => {
    if (memo.has(fn)) return memo.get(fn)!;
    if (seen.has(fn)) throw new Error(`recursion through ${fn}: no static stack bound`);
    seen.add(fn);
    let deepest = 0;
    for (const c of calls.get(fn) ?? []) deepest = Math.max(deepest, depth(c, seen));
    seen.delete(fn);
    const d = (frame.get(fn) ?? 0) + deepest; // memset/memcpy/indirect calls: 0 (libc, flash driver)
    memo.set(fn, d);
    return d;
  };
  const entries = [
    "vigil_fwu_open",
    "vigil_boot",
    "vigil_fwu_handle",
    "vigil_fwu_status",
    "vigil_fwu_confirm",
    "vigil_rx_push_byte",
    "vigil_encode_wire",
    "vigil_txq_poll",
  ];
  const stack = Object.fromEntries(entries.map((e) => [e, depth(e, new Set())]));
  const fwu = sizeof.fwu_t ?? 0;
  return {
    target,
    compiler: make.find((m) => m.startsWith("CC="))?.slice(3) ?? "cc",
    staticBytes,
    sizeof,
    stack,
    bootloaderBytes: fwu + Math.max(stack.vigil_fwu_open!, stack.vigil_boot!),
    updateAgentBytes:
      fwu + Math.max(stack.vigil_fwu_handle!, stack.vigil_fwu_status!, stack.vigil_fwu_confirm!),
  };
}

const rams: RamReport[] = [ram("host-x86_64", [])];
const arm = which("arm-none-eabi-gcc");
if (arm)
  rams.push(
    ram("cortex-m4", [
      "CC=arm-none-eabi-gcc",
      "SIZE=arm-none-eabi-size",
      "NM=arm-none-eabi-nm",
      "MCU_FLAGS=-mcpu=cortex-m4 -mthumb",
    ]),
  );

// ---- throughput ------------------------------------------------------------------------

function image(bytes: number): Buffer {
  const body = new Uint8Array(bytes - 32);
  let x = 0x12345678;
  for (let i = 0; i < body.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    body[i] = x & 0xff;
  }
  return buildFirmwareImage({ version: { major: 1, minor: 1, patch: 0 }, securityCounter: 2, body });
}

/** Raw bytes through the paced relay, one direction: what the pacing itself delivers. */
async function rawFraction(baud: number, bytes: number): Promise<number> {
  const relay = await SerialRelay.start({ baud });
  const open = async (path: string) => {
    const p = new SerialPort({ path, baudRate: baud, autoOpen: false });
    await new Promise<void>((res, rej) => p.open((e) => (e ? rej(e) : res())));
    return p;
  };
  const tx = await open(relay.gatewayPath);
  const rx = await open(relay.devicePath);
  try {
    let got = 0;
    const t0 = performance.now();
    const done = new Promise<number>((res) =>
      rx.on("data", (b: Buffer) => {
        got += b.length;
        if (got >= bytes) res(performance.now());
      }),
    );
    tx.write(Buffer.alloc(bytes, 0x55));
    const t1 = await done;
    return bytes / (((t1 - t0) / 1000) * (baud / 10));
  } finally {
    for (const p of [tx, rx]) await new Promise<void>((res) => p.close(() => res()));
    await relay.stop();
  }
}

interface Run {
  fraction: number;
  seconds: number;
  rewinds: number;
  retransmitted: number;
}

async function transfer(baud: number, img: Buffer, window: number): Promise<Run> {
  const relay = await SerialRelay.start({ baud });
  const fw = factoryFirmware({ deviceId: 0x2a, slotSize: 512 * 1024, window });
  const dev = new FirmwareSerialDevice({ path: relay.devicePath, firmware: fw, baudRate: baud });
  const gw = new GatewayFirmwarePort(relay.gatewayPath);
  try {
    await gw.open();
    await dev.open();
    const s = new FirmwareSession({ deviceId: 0x2a, releaseId: 1, image: img, send: gw.send });
    gw.session = s;
    const r = await s.start();
    const seconds = r.transferMs / 1000;
    return {
      fraction: img.length / (seconds * (baud / 10)),
      seconds,
      rewinds: r.rewinds,
      retransmitted: r.retransmittedBytes,
    };
  } finally {
    await dev.close();
    await gw.close();
    await relay.stop();
  }
}

/** The same transfer with the C reference's update agent (hardware/firmware-ref, vigil_fwdev) as the device. */
async function transferC(baud: number, img: Buffer): Promise<Run> {
  const relay = await SerialRelay.start({ baud });
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-fw-"));
  const factory = join(dir, "factory.bin");
  writeFileSync(
    factory,
    buildFirmwareImage({
      version: { major: 1, minor: 0, patch: 0 },
      securityCounter: 1,
      body: new Uint8Array(8192),
    }),
  );
  const gw = new GatewayFirmwarePort(relay.gatewayPath);
  await gw.open();
  const dev = spawn(join(REF, "build", "vigil_fwdev"), [relay.devicePath, "2a", factory], {
    stdio: ["pipe", "ignore", "ignore"],
  });
  try {
    for (const t0 = Date.now(); gw.hellos.length === 0; await new Promise((r) => setTimeout(r, 10)))
      if (Date.now() - t0 > 5000) throw new Error("vigil_fwdev sent no HELLO within 5 s");
    const s = new FirmwareSession({ deviceId: 0x2a, releaseId: 1, image: img, send: gw.send });
    gw.session = s;
    const r = await s.start();
    const seconds = r.transferMs / 1000;
    return {
      fraction: img.length / (seconds * (baud / 10)),
      seconds,
      rewinds: r.rewinds,
      retransmitted: r.retransmittedBytes,
    };
  } finally {
    dev.stdin?.end();
    await stop(dev);
    await gw.close();
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cases = [
  { baud: 115_200, bytes: args.quick ? 32 * 1024 : 64 * 1024 },
  { baud: 921_600, bytes: args.quick ? 128 * 1024 : 256 * 1024 },
];
execFileSync("make", ["-s", "-C", REF, "tool"], { stdio: "pipe" });
const rows: Array<{
  device: "sim" | "C";
  baud: number;
  imageBytes: number;
  window: number;
  fraction: number;
  rawFraction: number;
  seconds: number;
  rewinds: number;
}> = [];
for (const c of cases) {
  const img = image(c.bytes);
  const raw = median(await Promise.all([rawFraction(c.baud, Math.min(c.bytes, 64 * 1024))]));
  for (const window of [4, 8]) {
    const runs: Run[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await transfer(c.baud, img, window));
    const m = median(runs.map((r) => r.fraction));
    const at = runs.find((r) => r.fraction === m)!;
    rows.push({
      device: "sim",
      baud: c.baud,
      imageBytes: img.length,
      window,
      fraction: m,
      rawFraction: raw,
      seconds: at.seconds,
      rewinds: at.rewinds,
    });
  }
  {
    // The C reference device (window 4, real SHA-256 and flash read-back, 256 KiB slot).
    const cImg = image(Math.min(c.bytes, 200 * 1024));
    const runs: Run[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await transferC(c.baud, cImg));
    const m = median(runs.map((r) => r.fraction));
    const at = runs.find((r) => r.fraction === m)!;
    rows.push({
      device: "C",
      baud: c.baud,
      imageBytes: cImg.length,
      window: 4,
      fraction: m,
      rawFraction: raw,
      seconds: at.seconds,
      rewinds: at.rewinds,
    });
  }
}

// ---- report ----------------------------------------------------------------------------

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
console.log(
  "Firmware transfer, FirmwareSession ⇄ simulated MCU (TypeScript) or the C reference (vigil_fwdev)",
);
console.log("over two socat pty pairs and a pacing relay");
console.log(
  "(each direction ≤ baud/10 bytes/s, in order, ≤ 1 ms slices, no idle credit); fraction = image bytes /",
);
console.log(
  `(offer → READY time × baud/10); median of ${RUNS} run(s); protocol ceiling 224/250 = ${pct(CEILING)}\n`,
);
console.log(
  "  device  baud     image     window  fraction of line rate  of ceiling  raw relay  time     rewinds",
);
for (const r of rows)
  console.log(
    `  ${(r.device === "C" ? "C ref" : "sim").padEnd(7)} ${String(r.baud).padEnd(8)} ${String(r.imageBytes).padEnd(9)} ${String(r.window).padEnd(7)} ${pct(r.fraction).padEnd(22)} ${pct(r.fraction / CEILING).padEnd(11)} ${pct(r.rawFraction).padEnd(10)} ${r.seconds.toFixed(2).padEnd(6)} s ${r.rewinds}`,
  );
console.log(
  "\nRAM of the C update code (freestanding -Os; stack = deepest call path, flash callbacks excluded)\n",
);
for (const r of rams) {
  console.log(`  ${r.target} (${r.compiler}):`);
  console.log(
    `    static .data+.bss: ${Object.entries(r.staticBytes)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  console.log(
    `    sizeof: ${Object.entries(r.sizeof)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  console.log(
    `    stack:  ${Object.entries(r.stack)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  console.log(
    `    bootloader: ${r.bootloaderBytes} B (vigil_fwu_t + deepest of open/boot); update agent: ${r.updateAgentBytes} B`,
  );
}
if (!arm)
  console.log(
    "  (arm-none-eabi-gcc not installed: Cortex-M4 figures skipped; apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)",
  );

const best = (baud: number) => Math.max(...rows.filter((r) => r.baud === baud).map((r) => r.fraction));
console.log(
  JSON.stringify({
    bench: "firmware",
    runs: RUNS,
    ceiling: Number(CEILING.toFixed(4)),
    throughput: rows.map((r) => ({
      device: r.device,
      baud: r.baud,
      imageBytes: r.imageBytes,
      window: r.window,
      fractionOfLineRate: Number(r.fraction.toFixed(4)),
      ratioToCeiling: Number((r.fraction / CEILING).toFixed(4)),
      rawRelayFraction: Number(r.rawFraction.toFixed(4)),
      seconds: Number(r.seconds.toFixed(3)),
      rewinds: r.rewinds,
    })),
    fraction115200: Number(best(115_200).toFixed(4)),
    fraction921600: Number(best(921_600).toFixed(4)),
    goal: 0.8,
    ram: rams.map((r) => ({
      target: r.target,
      staticBytes: Object.values(r.staticBytes).reduce((a, b) => a + b, 0),
      fwuStateBytes: r.sizeof.fwu_t,
      stack: r.stack,
      bootloaderBytes: r.bootloaderBytes,
      updateAgentBytes: r.updateAgentBytes,
    })),
  }),
);
