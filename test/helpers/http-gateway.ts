/**
 * A real `vigil start` for the independent HTTP client's tests (test/independent/http-client.test.ts
 * and http-limits.test.ts): the embedded broker on a free loopback port and `http.port` 0, both
 * read from its `gateway started` line, as an operator would read them.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnVigil, until, type VigilChild } from "./vigil-child.ts";

export interface Started {
  gateway: VigilChild;
  /** `http://127.0.0.1:PORT` (`page`). */
  base: string;
  /** `mqtt://127.0.0.1:PORT` (`mqtt`). */
  mqtt: string;
  dataDir: string;
}

/** Starts a gateway with `http` as its `http` config (port 0 unless given); `prepare` fills its dataDir first. */
export async function startGateway(
  children: ChildProcess[],
  http: Record<string, unknown>,
  prepare?: (dataDir: string) => void,
): Promise<Started> {
  const dataDir = mkdtempSync(join(tmpdir(), "http-client-"));
  prepare?.(dataDir);
  const config = join(dataDir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir,
      attest: { enabled: false },
      mqtt: { embedded: { port: 0 } },
      http: { port: 0, ...http },
      log: { level: "info", statsIntervalMs: 0 },
    }),
  );
  const gateway = spawnVigil(children, ["start", "-c", config]);
  const [base, mqtt] = await until(
    "gateway started",
    () => {
      if (gateway.exitCode !== null) throw new Error(gateway.log());
      const page = /"page":"(http:\/\/[^"]+)"/.exec(gateway.log())?.[1];
      const broker = /"mqtt":"(mqtt:\/\/[^"]+)"/.exec(gateway.log())?.[1];
      return page && broker ? [page, broker] : undefined;
    },
    60_000,
  );
  return { gateway, base, mqtt, dataDir };
}
