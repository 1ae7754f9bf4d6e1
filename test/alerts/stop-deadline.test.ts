/**
 * AlertService.stop waits for the broker at most once: one deadline of ackTimeoutMs
 * (`mqtt.connectTimeoutMs`) shared by the publications in flight, the offline status and the
 * close, and no wait at all when the output is not connected (README `mqtt.connectTimeoutMs`).
 */
import { describe, expect, it } from "vitest";
import { MqttClientPublisher } from "../../gateway/src/alerts/mqtt-publisher.ts";
import { EncodedOutput } from "../../gateway/src/alerts/output.ts";
import { AlertService, type EventOutput } from "../../gateway/src/alerts/service.ts";
import { VigilJsonEncoder } from "../../gateway/src/alerts/vigil-json.ts";
import type { GatewayEvent } from "../../gateway/src/alerts/events.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { ManualTimers, realTimers, type Timers } from "../../gateway/src/core/timers.ts";
import { freePort } from "../helpers/procs.ts";

const ACK_MS = 5000;

/** ManualTimers that count the waits of `ms` set on them. */
class CountingTimers extends ManualTimers {
  waits = 0;
  override setTimeout(fn: () => void, ms: number): unknown {
    if (ms === ACK_MS) this.waits++;
    return super.setTimeout(fn, ms);
  }
}

/** An output whose emissions settle only when the test says so. */
function heldOutput(up: boolean) {
  const pending: Array<{ e: GatewayEvent; ack: () => void }> = [];
  let closed = 0;
  let closeHangs = false;
  const output: EventOutput = {
    open: () => Promise.resolve(),
    connected: () => up,
    emit: (e) => new Promise<void>((ack) => pending.push({ e, ack })),
    close: () => {
      closed++;
      return closeHangs ? new Promise<void>(() => undefined) : Promise.resolve();
    },
  };
  return {
    output,
    pending,
    closed: () => closed,
    hangClose: () => (closeHangs = true),
  };
}

function service(output: EventOutput, timers: Timers) {
  const errors: string[] = [];
  const svc = new AlertService({
    output,
    models: () => [],
    clock: new FakeClock(),
    timers,
    ackTimeoutMs: ACK_MS,
    onError: (e) => errors.push((e as Error).message),
  });
  return { svc, errors };
}

const tick = () => new Promise((r) => setImmediate(r));

/** Starts a service on a connected held output and acknowledges its online status. */
async function started(timers: CountingTimers) {
  const o = heldOutput(true);
  const s = service(o.output, timers);
  const start = s.svc.start();
  await tick();
  o.pending.shift()!.ack(); // online
  await start;
  return { ...o, ...s };
}

describe("AlertService.stop: one deadline for the broker", () => {
  it("behavior: connected: publications in flight get their chance, and the offline status only what is left of the same deadline", async () => {
    const timers = new CountingTimers();
    const t = await started(timers);
    void t.svc.gatewayAlert("update-check-stale", true, { severity: "warning", message: "m", detail: {} });
    await tick();
    timers.waits = 0;
    let done = false;
    const stopped = t.svc.stop().then(() => (done = true));
    await tick();
    // The publication in flight is acknowledged after 3 s; the offline status never is.
    timers.advance(3000);
    t.pending.shift()!.ack();
    await tick();
    expect(t.pending.map((p) => p.e.kind)).toEqual(["status"]);
    timers.advance(ACK_MS - 3000 - 1);
    await tick();
    expect(done).toBe(false);
    timers.advance(1);
    await stopped;
    expect(timers.waits).toBe(1);
    expect(t.closed()).toBe(1);
    expect(t.errors).toEqual([
      expect.stringMatching(/did not acknowledge the offline status within 5000 ms; closing anyway/),
    ]);
    expect(timers.pending).toBe(0);
  });

  it("behavior: connected and acknowledged at once: the offline status is awaited and nothing is reported", async () => {
    const timers = new CountingTimers();
    const t = await started(timers);
    const stopped = t.svc.stop();
    await tick();
    t.pending.shift()!.ack(); // offline
    await stopped;
    expect(t.errors).toEqual([]);
    expect(t.closed()).toBe(1);
    expect(timers.pending).toBe(0);
  });

  it("behavior: a close that hangs gets only what is left of the deadline", async () => {
    const timers = new CountingTimers();
    const t = await started(timers);
    t.hangClose();
    timers.waits = 0;
    let done = false;
    const stopped = t.svc.stop().then(() => (done = true));
    await tick();
    t.pending.shift()!.ack(); // offline
    await tick();
    timers.advance(ACK_MS - 1);
    await tick();
    expect(done).toBe(false);
    timers.advance(1);
    await stopped;
    expect(timers.waits).toBe(1);
    expect(t.errors).toEqual([]);
  });

  it("behavior: not connected: no wait at all, and one line says what was dropped", async () => {
    const timers = new CountingTimers();
    const o = heldOutput(false);
    const { svc, errors } = service(o.output, timers);
    await svc.start(); // the online status is queued (the start does not wait for it either)
    void svc.gatewayAlert("update-check-stale", true, { severity: "warning", message: "m", detail: {} });
    await svc.stop(); // no timer is advanced
    expect(o.closed()).toBe(1);
    expect(errors).toEqual([
      "status: the broker is not connected: 2 publications in flight and the offline status dropped; closing without waiting",
    ]);
    expect(timers.pending).toBe(0);
  });
});

describe("MqttClientPublisher behind AlertService, broker down", () => {
  it("behavior: the stop does not wait for a broker that never answered (was two connectTimeoutMs)", async () => {
    const port = await freePort(); // nothing listens there
    const connectTimeoutMs = 1000;
    const pub = new MqttClientPublisher({
      url: `mqtt://127.0.0.1:${port}`,
      clientId: "stop-deadline",
      connectTimeoutMs,
      connectWaitMs: () => 0, // the ingest source already waited (runtime.ts)
    });
    let ranOut = 0; // deadlines that were waited for to the end
    const timers: Timers = {
      setTimeout: (fn, ms) =>
        realTimers.setTimeout(() => {
          ranOut++;
          fn();
        }, ms),
      clearTimeout: realTimers.clearTimeout,
    };
    const errors: string[] = [];
    const svc = new AlertService({
      output: new EncodedOutput(new VigilJsonEncoder("s", "g"), pub),
      models: () => [],
      timers,
      ackTimeoutMs: connectTimeoutMs,
      onError: (e) => errors.push((e as Error).message),
    });
    await svc.start();
    const client = pub.client!;
    expect(client.connected).toBe(false);
    const t0 = performance.now();
    await svc.stop();
    // Loose bound: the old code waited connectTimeoutMs twice (≥ 2000 ms) here.
    expect(performance.now() - t0).toBeLessThan(connectTimeoutMs);
    expect(ranOut).toBe(0);
    expect(errors).toEqual([
      expect.stringMatching(/not connected: 1 publication in flight and the offline status dropped/),
    ]);
    expect(client.disconnecting).toBe(true); // ended: no reconnect keeps the process alive
  });
});

describe("AlertService.start: a stop asked during start-up", () => {
  it("behavior: the wait for the online status's acknowledgement ends when startSignal aborts, with no error", async () => {
    const timers = new CountingTimers();
    const o = heldOutput(true);
    const hurry = new AbortController();
    const errors: string[] = [];
    const svc = new AlertService({
      output: o.output,
      models: () => [],
      clock: new FakeClock(),
      timers,
      ackTimeoutMs: ACK_MS,
      startSignal: hurry.signal,
      onError: (e) => errors.push((e as Error).message),
    });
    let done = false;
    const start = svc.start().then(() => (done = true));
    await tick();
    expect(o.pending.map((p) => p.e.kind)).toEqual(["status"]); // online, not acknowledged
    expect(timers.waits).toBe(1);
    await tick();
    expect(done).toBe(false); // waiting: the ManualTimers never run out by themselves
    hurry.abort();
    await start;
    expect(errors).toEqual([]);
  });

  it("behavior: already aborted: start() publishes online and does not wait at all", async () => {
    const timers = new CountingTimers();
    const o = heldOutput(true);
    const hurry = new AbortController();
    hurry.abort();
    const svc = new AlertService({
      output: o.output,
      models: () => [],
      clock: new FakeClock(),
      timers,
      ackTimeoutMs: ACK_MS,
      startSignal: hurry.signal,
    });
    await svc.start();
    expect(o.pending.map((p) => p.e.kind)).toEqual(["status"]);
    expect(timers.waits).toBe(0);
  });
});
