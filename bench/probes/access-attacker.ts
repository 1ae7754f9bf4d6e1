/**
 * The hostile clients of `npm run bench -- access`, in their own process so the benchmark measures
 * the gateway's event loop, not the attacker's: `node --import tsx bench/probes/access-attacker.ts
 * '<json>'` with {url, kinds, device, stolen: {username, password}, loops}. Prints "ready" once
 * every loop has made its first attempt, attacks until a line arrives on stdin, then prints one
 * JSON object with the attempts per kind and exits.
 */
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { createInterface } from "node:readline";
import { Wallet } from "ethers";
import mqtt from "mqtt";

export type AttackKind = "login" | "token" | "oversized" | "anonymous" | "flood";

interface Plan {
  url: string;
  kinds: AttackKind[];
  /** The username of a real device whose password the attacker guesses. */
  device: string;
  /** Credentials of a registered sensor the attacker stole (it sends oversized PUBLISHes). */
  stolen: { username: string; password: string };
  /** Parallel connections of the "flood" kind (default 256). */
  floodLoops?: number;
  /** Concurrent loops per kind except "flood" (default 2). */
  loops?: number;
}

const plan = JSON.parse(process.argv[2] ?? "{}") as Plan;
/** Parallel loops of the connect flood (default 256: more than the default per-address cap of 64). */
const FLOOD_LOOPS = plan.floodLoops ?? 256;
let attacking = true;
const attempts: Record<string, number> = {};
let started = 0;
/** Concurrent loops of one kind: FLOOD_LOOPS for the flood, `loops` (default 2) for the others. */
const loopsOf = (k: AttackKind): number => (k === "flood" ? FLOOD_LOOPS : (plan.loops ?? 2));
const total = plan.kinds.reduce((n, k) => n + loopsOf(k), 0);
const first = (): void => {
  if (++started === total) process.stdout.write("ready\n");
};

/** One connect attempt; resolves when the broker has answered (or closed). */
async function attempt(
  opts: mqtt.IClientOptions,
  then?: (c: mqtt.MqttClient) => Promise<void>,
): Promise<void> {
  // Not connectAsync: it never settles when the broker closes the socket before CONNACK (a
  // connect-rate refusal), and a refused attacker retries at once.
  const c = mqtt.connect(plan.url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  const ok = await new Promise<boolean>((res) => {
    c.once("connect", () => res(true));
    c.once("error", () => res(false));
    c.once("close", () => res(false));
  });
  if (ok && then) await then(c);
  c.end(true);
}

// A reader key of nobody's: a well-formed token (EIP-712 signature, 24 h) that the registry does not allow.
const stranger = Wallet.createRandom();
const forged = `vrt1.${Math.floor(Date.now() / 1000) + 3600}.0x${randomBytes(64).toString("hex")}1b`;
const big = Buffer.alloc(1024 * 1024); // 64 × the default maxPacketBytes

const kinds: Record<AttackKind, (n: number) => Promise<void>> = {
  // Guessing a real device's password: each attempt makes the gateway hash the guess.
  login: (n) => attempt({ clientId: `brute-${n}`, username: plan.device, password: `guess-${n}` }),
  // A forged reader token for an address without a grant.
  token: (n) => attempt({ clientId: `forge-${n}`, username: stranger.address, password: forged }),
  oversized: (n) =>
    attempt(
      { clientId: `big-${n}`, ...plan.stolen },
      (c) =>
        new Promise<void>((res) => {
          c.once("close", () => res());
          c.publish(`vigil/v1/ingest/${plan.stolen.username}`, big, { qos: 1 });
        }),
    ),
  anonymous: (n) => attempt({ clientId: `anon-${n}` }),
  // A connect flood: raw TCP connections that send an anonymous CONNECT and reconnect as soon as
  // the broker closes them, FLOOD_LOOPS at a time (more than the per-address cap).
  flood: () =>
    new Promise<void>((res) => {
      const u = new URL(plan.url);
      const s = connect(Number(u.port), u.hostname, () => s.write(CONNECT));
      s.on("error", () => undefined);
      s.once("close", () => res());
      s.resume();
    }),
};
/** An MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, client id "f" [MQTT-3.1]. */
const CONNECT = Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 60, 0, 1, 0x66]);

async function loop(kind: AttackKind): Promise<void> {
  let once = false;
  while (attacking) {
    const n = (attempts[kind] = (attempts[kind] ?? 0) + 1);
    await kinds[kind](n);
    if (!once) {
      once = true;
      first();
    }
  }
}

const loops = plan.kinds.flatMap((k) => Array.from({ length: loopsOf(k) }, () => loop(k)));
createInterface({ input: process.stdin }).once("line", () => {
  attacking = false;
});
await Promise.all(loops);
process.stdout.write(`${JSON.stringify(attempts)}\n`);
process.exit(0);
