// The runtime wires the frame log into inference: a gateway restarted over the same data dir
// warms a returning device's window and baseline from its stored frames (real LevelDB store,
// real embedded broker on a free loopback port).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { CMAPSS_CHANNELS, loadCmapss } from "../../gateway/src/infer/features/cmapss.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { row, tempModels } from "./helpers.ts";
import { decoded as dec } from "../helpers/frames.ts";

const dir = mkdtempSync(join(tmpdir(), "vigil-runtime-warm-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DEV = 0x51;
const unit = loadCmapss(join(REPO_ROOT, "models", "data", "cmapss", "test_FD001.txt.gz")).find(
  (u) => u.cycles >= 100,
)!;

async function session(from: number, to: number): Promise<Runtime> {
  const rt = new Runtime({
    config: resolveConfig({
      dataDir: dir,
      mqtt: { embedded: { enabled: true, host: "127.0.0.1", port: 0 } },
      http: { port: 0 },
      models: { dir: tempModels() },
      attest: { enabled: false },
    }),
  });
  await rt.start();
  const ingest = rt.ingest;
  ingest.handle(
    dec({
      type: FrameType.Hello,
      deviceId: DEV,
      bootId: 1, // the gateway restarts, the device does not
      firmware: { major: 1, minor: 0, patch: 0 },
      profile: "cmapss-fd001",
      channels: CMAPSS_CHANNELS.map((name) => ({ name, unit: 0 })),
    }),
    "mqtt",
  );
  const now = Date.now() * 1000;
  for (let r = from; r < to; r++) {
    const values = Float32Array.from(row(unit, r));
    const f: Frame = { type: FrameType.Data, deviceId: DEV, seq: r, timestampUs: now + r, flags: 0, values };
    expect(await ingest.handle(dec(f), "mqtt")).toMatchObject({ kind: "ack" });
  }
  await rt.loop!.warmed();
  return rt;
}

describe("runtime restart", () => {
  it("behavior: after a restart the device's window and baseline are warmed from the stored frames", async () => {
    const first = await session(0, 80);
    expect(first.loop!.counters).toMatchObject({ framesSeen: 80, warmups: 0 });
    await first.stop();

    const second = await session(80, 85);
    const c = second.loop!.counters;
    // 10 earliest frames seed the baseline, the 59 before frame 80 refill the window.
    expect(c).toMatchObject({ framesSeen: 5, warmups: 1, warmupRows: 69, warmupErrors: 0 });
    await second.stop();
  });
});
