/**
 * vigil doctor's `http` check: the endpoint's port is free, or a gateway's endpoint answers there;
 * a port another program holds fails (vigil start would refuse it), as the broker check does.
 */
import { createServer, type Server, type Socket } from "node:net";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runChecks } from "../../gateway/src/cli/doctor.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { HttpServer } from "../../gateway/src/http/server.ts";
import { freePort } from "../helpers/procs.ts";
import { FakeSource } from "../http/fake-source.ts";

const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of closers) await c();
});

async function httpCheck(port: number) {
  const cfg = resolveConfig({
    dataDir: mkdtempSync(join(tmpdir(), "vigil-doctor-http-")),
    mqtt: { embedded: { port: 0 } },
    models: { enabled: false },
    http: { port },
  });
  return (await runChecks(cfg, {})).find((r) => r.name === "http");
}

describe("vigil doctor: http", () => {
  it("behavior: a free port is ok; a gateway's endpoint answering there is ok; another program there fails", async () => {
    const free = await freePort();
    expect(await httpCheck(free)).toMatchObject({ status: "ok", detail: expect.stringMatching(/is free/) });

    const gw = new HttpServer({ source: new FakeSource(), port: 0 });
    await gw.start();
    closers.push(() => gw.stop());
    expect(await httpCheck(gw.port)).toMatchObject({
      status: "ok",
      detail: expect.stringMatching(/a gateway's endpoint answers/),
    });

    // Another program: answers anything with a plain 200 and closes. Its sockets are destroyed at
    // the end (close() alone waits for every connection, which a pooled client may hold open).
    const sockets = new Set<Socket>();
    const other: Server = createServer((s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
      s.end("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi");
    });
    await new Promise<void>((res) => other.listen(0, "127.0.0.1", res));
    closers.push(
      () =>
        new Promise((res) => {
          for (const s of sockets) s.destroy();
          other.close(() => res());
        }),
    );
    const port = (other.address() as { port: number }).port;
    expect(await httpCheck(port)).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/is taken by another program; stop it or set http\.port/),
    });
    expect(await httpCheck(0)).toMatchObject({ status: "skip" });
  }, 60_000);
});
