/** /readyz (and `vigil status`, the live page) warn while the gateway clock is not known good. */
import { describe, expect, it } from "vitest";
import { readiness } from "../../gateway/src/http/readiness.ts";
import { ClockTrust } from "../../gateway/src/ingest/clock-trust.ts";
import { FakeSource } from "./fake-source.ts";

describe("readiness: the clock warning", () => {
  it("behavior: a clock not known good is a warning (still ready) until timesyncd reports sync", () => {
    const files = new Set(["/run/systemd/timesync"]);
    const clockTrust = new ClockTrust({ exists: (p) => files.has(p), recheckMs: 0 });
    const src = Object.assign(new FakeSource(), { clockTrust });
    const r = readiness(src);
    expect(r.ready).toBe(true);
    expect(r.warnings.filter((w) => w.check === "clock")).toEqual([
      {
        check: "clock",
        reason: "unverified",
        detail:
          "systemd-timesyncd has not synchronised the clock yet; frames are stored marked clock-unverified and timestamps are not judged",
      },
    ]);
    files.add("/run/systemd/timesync/synchronized");
    expect(readiness(src).warnings.filter((w) => w.check === "clock")).toEqual([]);
    // A source that does not judge the clock has no such warning.
    expect(readiness(new FakeSource()).warnings.filter((w) => w.check === "clock")).toEqual([]);
  });
});
