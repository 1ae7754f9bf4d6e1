/**
 * firstConnack: the start's one wait for an external broker (README "When the gateway refuses to
 * start"): connected, timed out (degraded), refused for good (fatal), or cut short by a stop.
 */
import { EventEmitter } from "node:events";
import type { MqttClient } from "mqtt";
import { describe, expect, it } from "vitest";
import { firstConnack } from "../../gateway/src/protocol/mqtt-connack.ts";

/** Just what firstConnack uses of an mqtt.js client: its events and end(). */
class FakeClient extends EventEmitter {
  ended = false;
  end(): void {
    this.ended = true;
  }
}
const fake = () => new FakeClient();
const asClient = (c: FakeClient) => c as unknown as MqttClient;
const refusal = (code: number) => Object.assign(new Error(`Connection refused: ${code}`), { code });

describe("firstConnack", () => {
  it("behavior: the first CONNACK → connected, and its listeners are removed", async () => {
    const c = fake();
    const p = firstConnack(asClient(c), 60_000);
    c.emit("connect", {});
    await expect(p).resolves.toBe("connected");
    expect(c.listenerCount("connect") + c.listenerCount("error")).toBe(0);
  });

  it("behavior: no answer within the wait → timeout (the client goes on reconnecting)", async () => {
    const c = fake();
    await expect(firstConnack(asClient(c), 5)).resolves.toBe("timeout");
    expect(c.ended).toBe(false);
  });

  it("behavior: a refusal no retry can change (CONNACK 5) ends the client and rejects; 3 (server unavailable) does not", async () => {
    const c = fake();
    const p = firstConnack(asClient(c), 60_000);
    c.emit("error", refusal(3));
    c.emit("error", refusal(5));
    await expect(p).rejects.toMatchObject({ code: 5 });
    expect(c.ended).toBe(true);
  });

  it("behavior: the start signal aborting → aborted at once, listeners removed, client not ended", async () => {
    const c = fake();
    const hurry = new AbortController();
    const p = firstConnack(asClient(c), 60_000, hurry.signal);
    hurry.abort();
    await expect(p).resolves.toBe("aborted");
    expect(c.listenerCount("connect") + c.listenerCount("error")).toBe(0);
    expect(c.ended).toBe(false);
    const already = new AbortController();
    already.abort();
    await expect(firstConnack(asClient(fake()), 60_000, already.signal)).resolves.toBe("aborted");
  });
});
