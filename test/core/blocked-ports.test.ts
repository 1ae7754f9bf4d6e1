/** The Fetch standard's blocked ports, held to what Node's fetch refuses (and refused as http.port). */
import { describe, expect, it } from "vitest";
import { FETCH_BLOCKED_PORTS } from "../../gateway/src/core/blocked-ports.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";

/** Whether Node's fetch refuses `port` before connecting ("bad port"). */
async function refused(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    return false;
  } catch (e) {
    return (e as { cause?: { message?: string } }).cause?.message === "bad port";
  }
}

describe("FETCH_BLOCKED_PORTS", () => {
  it("doc: every listed port, and none of its neighbours, is refused by Node's fetch", async () => {
    const ports = [...FETCH_BLOCKED_PORTS];
    const neighbours = ports
      .flatMap((p) => [p - 1, p + 1])
      .filter((p) => p > 0 && !FETCH_BLOCKED_PORTS.has(p));
    expect(await Promise.all(ports.map(refused))).toEqual(ports.map(() => true));
    expect(await Promise.all(neighbours.map(refused))).toEqual(neighbours.map(() => false));
  });

  it("error: a blocked http.port is a config error naming the setting; the ports around it are fine", () => {
    expect(() => resolveConfig({ http: { port: 6666 } })).toThrow(
      expect.objectContaining({
        code: "BAD_CONFIG",
        message: expect.stringMatching(/^http\.port: 6666 is a port browsers and fetch refuse/),
      }),
    );
    expect(resolveConfig({ http: { port: 6664 } }).http.port).toBe(6664);
  });
});
