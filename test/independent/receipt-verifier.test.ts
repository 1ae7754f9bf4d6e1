// The independent verifier (written from RECEIPTS.md alone) against the golden vectors and receipts
// exported from a real gateway run: every genuine receipt passes, every tampered one fails with the
// reason the document gives.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cases } from "./cases.ts";
import { intermediates, verifyBundle, verifyReceipt, type Trust } from "./receipt-verifier.ts";

const load = (path: string): unknown => JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8"));

interface Vectors {
  keys: Record<string, { publicKey: string }>;
  trust: { chainId: number; registry: string; gatewayId: string };
  vectors: { name: string; keyType: string; receipt: unknown; expect: Record<string, string | number> }[];
  invalid: { name: string; change: string; receipt: unknown; reason: string }[];
}
const V = load("../vectors/receipts.json") as Vectors;

describe("golden vectors (test/vectors/receipts.json)", () => {
  it.each(V.vectors)("$name: every intermediate value as the document computes it", (v) => {
    expect(intermediates(v.receipt)).toEqual(v.expect);
  });

  it.each(V.vectors)("$name: passes against the trust anchor and its pinned signer", (v) => {
    const trust: Trust = { ...V.trust, signer: V.keys[v.keyType]!.publicKey };
    expect(verifyReceipt(v.receipt, trust)).toEqual({ ok: true });
  });

  it.each(V.invalid)("$name ($change) fails $reason", (v) => {
    expect(verifyReceipt(v.receipt, V.trust)).toMatchObject({ ok: false, reason: v.reason });
  });
});

describe("statements of RECEIPTS.md, one receipt each (test/independent/cases.ts)", () => {
  it.each(cases())("$name: $expect", (c) => {
    if (c.input.format === "vigil-bundle/1") {
      const { results } = verifyBundle(c.input, c.trust);
      expect(results.map((r) => (r.ok ? "pass" : r.reason))).toEqual(c.expect);
      if (c.message) expect(results.map((r) => (r.ok ? "" : r.message))).toContain(c.message);
    } else {
      const result = verifyReceipt(c.input, c.trust);
      expect(result.ok ? "pass" : result.reason).toBe(c.expect);
    }
  });

  it("a bundle without receipts does not pass", () => {
    expect(verifyBundle({ format: "vigil-bundle/1", receipts: [] }).ok).toBe(false);
  });
});

interface DemoRun {
  trust: Trust & { chainId: number; registry: string; gatewayId: string; signer: string };
  mqtt: { topic: string; leaf: string; frameLeaf?: string; inferenceLeaf?: string }[];
  bundle: { receipts: { leaf: string; frame: { timestampUs: number; deviceId: string; raw: string } }[] };
  receipts: { kind: string; leaf: string; [k: string]: unknown }[];
}
const demo = load("./fixtures/demo-run.json") as DemoRun;

describe("receipts exported by a real gateway run (fixtures/demo-run.json)", () => {
  it("the frame bundle passes, pinned to the run's registry, gateway and key", () => {
    const result = verifyBundle(demo.bundle, demo.trust);
    expect(result.results).toHaveLength(demo.bundle.receipts.length);
    expect(result).toMatchObject({ ok: true });
  });

  it.each(demo.receipts)("$kind receipt of leaf $leaf passes", (r) => {
    expect(verifyReceipt(r, demo.trust)).toEqual({ ok: true });
  });

  it("each alert's MQTT keys name its receipt and the inference that triggered it", () => {
    const byLeaf = new Map(demo.receipts.map((r) => [r.leaf, r]));
    const alerts = demo.mqtt.filter((m) => m.topic.endsWith("/alert"));
    expect(alerts.length).toBeGreaterThan(0);
    for (const m of alerts) {
      const alert = byLeaf.get(m.leaf)!.alert as Record<string, unknown>;
      const inference = byLeaf.get(m.inferenceLeaf!)!.inference as Record<string, unknown>;
      // the same model, window and time; the alert's score is one of the outputs
      for (const k of ["deviceId", "timestampUs", "modelHash", "inputWindowHash"])
        expect(alert[k]).toBe(inference[k]);
      expect(inference.outputs).toContain(alert.score);
    }
  });

  it("a sensor fault's inputWindowHash is the FRAME leaf of its frame, at that frame's time", () => {
    const frames = new Map(demo.bundle.receipts.map((r) => [r.leaf, r.frame]));
    const faults = demo.receipts.filter((r) => r.kind === "sensor-fault");
    const checked = faults.filter((r) =>
      frames.has((r.sensorFault as { inputWindowHash: string }).inputWindowHash),
    );
    expect(checked.length).toBe(2); // the raise and the clear of device 00000001's vib_kurt
    for (const r of checked) {
      const fault = r.sensorFault as {
        inputWindowHash: string;
        timestampUs: number;
        deviceId: string;
        score: number | null;
      };
      const frame = frames.get(fault.inputWindowHash)!;
      expect([frame.timestampUs, frame.deviceId]).toEqual([fault.timestampUs, fault.deviceId]);
      // score: the channel's raw value in the frame (null for NaN or ±Inf), one of its DATA values
      const raw = Buffer.from(frame.raw.slice(2), "hex");
      const values = Array.from({ length: raw[20]! }, (_, i) => raw.readFloatLE(22 + 4 * i));
      const asJson = values.map((v) => (Number.isFinite(v) ? v : null));
      expect(asJson).toContain(fault.score);
      expect(demo.mqtt.find((m) => m.leaf === r.leaf)?.frameLeaf).toBe(fault.inputWindowHash);
    }
  });
});
