/**
 * SerialSource on serialport's mock binding (no device, no pty): frames in, ACKs out, garbage
 * counted, and a pulled cable reopened with backoff. The same source runs on a real socat pty in
 * test/interop/serial-pty.test.ts.
 */
import { MockBinding } from "@serialport/binding-mock";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { SerialSource, type SerialBinding } from "../../gateway/src/ingest/serial/serial-source.ts";
import { StreamDecoder } from "../../gateway/src/protocol/stream-decoder.ts";
import { cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import { encodeFrame, FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";

const PATH = "/dev/ttyMOCK0";
const clock = new FakeClock();

/** The mock binding with a cable that can be pulled: reads fail (not canceled) and opens fail. */
function pluggableBinding() {
  let unplugged = false;
  let pull: ((e: Error) => void) | undefined;
  const ports: Array<{ recording: Buffer; emitData(d: Buffer): void }> = [];
  const binding = {
    ...MockBinding,
    list: () => MockBinding.list(),
    async open(options: Parameters<typeof MockBinding.open>[0]) {
      if (unplugged) throw new Error(`Error: No such file or directory, cannot open ${options.path}`);
      const port = await MockBinding.open(options);
      const read = port.read.bind(port);
      const unplug = new Promise<never>((_, rej) => (pull = rej));
      unplug.catch(() => undefined);
      port.read = (buf: Buffer, off: number, len: number) => Promise.race([read(buf, off, len), unplug]);
      ports.push(port as never);
      return port;
    },
  } as unknown as SerialBinding;
  return {
    binding,
    ports,
    unplug() {
      unplugged = true;
      pull?.(new Error("device disconnected"));
    },
    replug() {
      unplugged = false;
    },
  };
}

function dataFrame(seq: number): Buffer {
  const f: Frame = {
    type: FrameType.Data,
    deviceId: 7,
    seq,
    timestampUs: clock.nowUs(),
    flags: 0,
    values: new Float32Array([1, 2, 3]),
  };
  return cobsEncode(encodeFrame(f));
}

/** ACKed sequences in what the gateway wrote to the port. */
function acked(recording: Buffer): number[] {
  const out: number[] = [];
  new StreamDecoder().push(recording, {
    frame: (f) => {
      if (f.frame.type === FrameType.Ack)
        for (let i = 0; i < f.frame.count; i++) out.push(f.frame.firstSeq + i);
    },
    reject: () => undefined,
  });
  return out;
}

let source: SerialSource | undefined;
afterEach(async () => {
  await source?.stop();
  MockBinding.reset();
});

describe("SerialSource (mock binding)", () => {
  it("behavior: frames are stored and ACKed on the line; garbage is counted as a rejection", async () => {
    MockBinding.createPort(PATH, { echo: false, record: true });
    const cable = pluggableBinding();
    const sink = new MemorySink();
    const ingest = new Ingest({ sink, clock });
    source = new SerialSource(ingest, { path: PATH, binding: cable.binding, clock });
    await source.start();
    expect(source.isOpen).toBe(true);
    const port = cable.ports[0]!;
    port.emitData(Buffer.concat([dataFrame(0), dataFrame(1), Buffer.from([1, 2, 3, 0])]));
    await vi.waitFor(() => expect(acked(port.recording)).toEqual([0, 1]));
    expect(sink.records.map((r) => r.seq)).toEqual([0, 1]);
    expect(ingest.counters.bySource.serial.rejected).toBe(1);
  });

  it("error: an ingest handler that throws or rejects is counted and reported; the frame gets no ACK and the line goes on", async () => {
    MockBinding.createPort(PATH, { echo: false, record: true });
    const cable = pluggableBinding();
    const sink = new MemorySink();
    const ingest = new Ingest({ sink, clock });
    const errors: string[] = [];
    const handle = ingest.handle.bind(ingest);
    vi.spyOn(ingest, "handle")
      .mockImplementationOnce(() => Promise.reject(new Error("observer bug (async)")))
      .mockImplementationOnce(() => {
        throw new Error("observer bug (sync)");
      })
      .mockImplementation(handle);
    source = new SerialSource(ingest, {
      path: PATH,
      binding: cable.binding,
      clock,
      onError: (e) => errors.push(`${e.code}: ${e.shortMessage}`),
    });
    await source.start();
    const port = cable.ports[0]!;
    port.emitData(Buffer.concat([dataFrame(0), dataFrame(1), dataFrame(2)]));
    await vi.waitFor(() => expect(acked(port.recording)).toEqual([2]));
    expect(source.stats()).toMatchObject({ handlerErrors: 2, ioErrors: 0 });
    expect(errors.sort()).toEqual([
      "SERIAL_IO: /dev/ttyMOCK0: ingest handler failed: observer bug (async)",
      "SERIAL_IO: /dev/ttyMOCK0: ingest handler failed: observer bug (sync)",
    ]);
    expect(source.isOpen).toBe(true);
  });

  it("behavior: a pulled cable is reported, reopened with backoff when it is back, and frames resume", async () => {
    MockBinding.createPort(PATH, { echo: false, record: true });
    const cable = pluggableBinding();
    const errors: string[] = [];
    const sink = new MemorySink();
    source = new SerialSource(new Ingest({ sink, clock }), {
      path: PATH,
      binding: cable.binding,
      clock,
      backoffMs: 5,
      maxBackoffMs: 20,
      onError: (e) => errors.push(`${e.code}: ${e.shortMessage}`),
    });
    await source.start();
    cable.unplug();
    await vi.waitFor(() => expect(source!.isOpen).toBe(false));
    // While it is unplugged, opens fail and are retried (each failure reported and counted).
    await vi.waitFor(() => expect(source!.stats().ioErrors).toBeGreaterThanOrEqual(3));
    expect(errors[0]).toMatch(/^SERIAL_IO: \/dev\/ttyMOCK0: /);
    cable.replug();
    await vi.waitFor(() => expect(source!.isOpen).toBe(true));
    expect(source.stats()).toMatchObject({ opens: 2, reopens: 1 });
    const port = cable.ports[1]!;
    port.emitData(dataFrame(0));
    await vi.waitFor(() => expect(acked(port.recording)).toEqual([0]));
    expect(sink.records).toHaveLength(1);
  });
});
