import { Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import {
  createLogger,
  familySize,
  redactLine,
  REDACTED_KEYS,
  setLogLevel,
  stderrIsJournal,
  type LoggerOptions,
} from "../../gateway/src/core/log.ts";

function capture(isTTY = false): { out: string[]; dest: Writable & { isTTY?: boolean } } {
  const out: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk.toString());
      cb();
    },
  }) as Writable & { isTTY?: boolean };
  if (isTTY) dest.isTTY = true;
  return { out, dest };
}

function jsonLines(o: LoggerOptions = {}) {
  const { out, dest } = capture();
  const log = createLogger("debug", { ...o, destination: dest });
  return {
    log,
    lines: () =>
      out
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    raw: out,
  };
}

describe("createLogger", () => {
  it("behavior: JSON lines by default (not a terminal), with app, level, component from the child", () => {
    const { log, lines } = jsonLines();
    log.child({ component: "store" }).info({ pending: 3 }, "flushed");
    log.debug("dbg");
    expect(lines()).toMatchObject([
      { level: 30, app: "vigil", component: "store", pending: 3, msg: "flushed" },
      { level: 20, msg: "dbg" },
    ]);
  });

  it("behavior: to the journal, each JSON line starts with its syslog priority (journald records it, journalctl -p finds it)", () => {
    const { out, dest } = capture();
    const log = createLogger("trace", { destination: dest, journal: true });
    log.fatal("f");
    log.error({ password: "S3cret" }, "e");
    log.warn("w");
    log.info("i");
    log.debug("d");
    log.trace("t");
    const lines = out.join("").split("\n").filter(Boolean);
    expect(lines.map((l) => l.slice(0, 3))).toEqual(["<2>", "<3>", "<4>", "<6>", "<7>", "<7>"]);
    // the rest of the line is the same JSON, redacted
    expect(JSON.parse(lines[1]!.slice(3))).toMatchObject({ level: 50, msg: "e", password: "[redacted]" });
    // without the journal, plain JSON
    const plain = capture();
    createLogger("info", { destination: plain.dest }).info("x");
    expect(plain.out.join("")).toMatch(/^\{"level":30/);
  });

  it("behavior: stderr is the journal only when JOURNAL_STREAM names its device and inode (systemd.exec(5))", () => {
    const st = () => ({ dev: 25, ino: 1234 });
    expect(stderrIsJournal({ JOURNAL_STREAM: "25:1234" }, st)).toBe(true);
    expect(stderrIsJournal({ JOURNAL_STREAM: "25:99" }, st)).toBe(false); // redirected elsewhere
    expect(stderrIsJournal({}, st)).toBe(false);
    expect(
      stderrIsJournal({ JOURNAL_STREAM: "25:1234" }, () => {
        throw new Error("EBADF");
      }),
    ).toBe(false);
  });

  it("behavior: human-readable on a terminal (auto) and with format pretty; JSON when asked on a terminal", () => {
    const tty = capture(true);
    createLogger("info", { destination: tty.dest, colorize: false })
      .child({ component: "anchor" })
      .warn({ seq: 4, tx: "0xabc" }, "batch anchored");
    const text = tty.out.join("");
    expect(text).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: \(anchor\) batch anchored\n/);
    expect(text).toContain('    seq: 4\n    tx: "0xabc"\n');
    expect(text).not.toContain("component:"); // shown once, as the prefix
    const json = capture(true);
    createLogger("info", { destination: json.dest, format: "json" }).info("x");
    expect(JSON.parse(json.out.join(""))).toMatchObject({ msg: "x" });
    const pretty = capture(false);
    createLogger("info", { destination: pretty.dest, format: "pretty", colorize: false }).info("y");
    expect(pretty.out.join("")).toMatch(/INFO: y\n$/);
  });

  it("security: secret fields are redacted at the top level and two objects down, every key in the list", () => {
    const { log, lines } = jsonLines();
    for (const k of REDACTED_KEYS)
      log.info({ [k]: "s3cret", mqtt: { [k]: "s3cret", nested: { [k]: "s3cret" } }, keep: "visible" }, k);
    const all = JSON.stringify(lines());
    expect(all).not.toContain("s3cret");
    expect(lines()[0]).toMatchObject({
      password: "[redacted]",
      mqtt: { password: "[redacted]", nested: { password: "[redacted]" } },
      keep: "visible",
    });
  });

  it("security: URL credentials are removed from messages, fields and error stacks", () => {
    const { log, lines, raw } = jsonLines();
    log.warn(
      {
        url: "mqtts://bob:hunter2@broker.plant:8883/x",
        err: new Error("connect https://alice:pw%40x@rpc.example/v2 failed"),
      },
      "retrying mqtt://carol:tok@10.0.0.2:1883",
    );
    const line = lines()[0]!;
    expect(line.url).toBe("mqtts://***@broker.plant:8883/x");
    expect(line.msg).toBe("retrying mqtt://***@10.0.0.2:1883");
    expect((line.err as { message: string; stack: string }).message).toBe(
      "connect https://***@rpc.example/v2 failed",
    );
    expect((line.err as { stack: string }).stack).toContain("https://***@rpc.example/v2");
    expect(raw.join("")).not.toMatch(/hunter2|alice|carol|tok@/);
  });

  it("behavior: redactLine leaves URLs without credentials and plain addresses alone", () => {
    expect(redactLine('{"url":"mqtt://127.0.0.1:1883","mail":"ops@plant.example"}')).toBe(
      '{"url":"mqtt://127.0.0.1:1883","mail":"ops@plant.example"}',
    );
    expect(redactLine('{"u":"http://user@host/p"}')).toBe('{"u":"http://***@host/p"}');
    expect(redactLine('{"u":"wss://a:b@h","v":"tcp://c:d@h"}')).toBe('{"u":"wss://***@h","v":"tcp://***@h"}');
  });

  it("security: keys in a URL's path, host or query are removed from a finished line, colours kept", () => {
    const key = "0123456789abcdef0123456789abcdef01234567";
    const { log, raw } = jsonLines();
    log.error(
      { err: new Error(`GET https://rpc.example/${key}/ failed`) },
      `retrying https://rpc.example/v2/AbCdEf?access=tok3n`,
    );
    expect(raw.join("")).toContain("https://rpc.example/***/ failed");
    expect(raw.join("")).toContain("https://rpc.example/v2/***?access=***");
    expect(raw.join("")).not.toMatch(/0123456789abcdef|AbCdEf|tok3n/);
    expect(redactLine(`\u001b[36mhttps://${key}.rpc.example/x\u001b[39m`)).toBe(
      "\u001b[36mhttps://***.rpc.example/x\u001b[39m",
    );
  });
});

describe("child loggers", () => {
  it("behavior: children made per event (an RPC failover) and dropped do not pile up in the root's family: pruned as it grows, not only by setLogLevel; a kept child still follows setLogLevel", async () => {
    // A full collection on demand (--expose-gc, turned on at run time), so collected children show.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const { out, dest } = capture();
    const log = createLogger("info", { destination: dest });
    const kept = log.child({ component: "kept" });
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 1000; i++) log.child({ component: "rpc" }).info("RPC failover");
      // A WeakRef holds its target until the current job ends: collectable after this turn.
      await new Promise((r) => setImmediate(r));
      gc();
    }
    // 20 001 refs without pruning; at most about twice what one round keeps alive with it.
    expect(familySize(log)).toBeLessThanOrEqual(2 * 1001);
    setLogLevel(log, "debug");
    kept.debug("a kept child's debug line");
    expect(out.join("")).toContain("a kept child's debug line");
  });
});
