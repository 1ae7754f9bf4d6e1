/**
 * gateway/src/alerts/README.md gives one `mosquitto_sub` example per topic kind the gateway's
 * broker carries: each kind's topic (built by the gateway's own topic functions) is matched by
 * exactly one example's filter (MQTT 3.1.1 §4.7 wildcards), every example matches one kind, and
 * binary payloads are printed in hex.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { alertTopics } from "../../gateway/src/alerts/topics.ts";
import { INGEST_TOPIC_PREFIX, nackTopic } from "../../gateway/src/protocol/topics.ts";
import { updatesTopic } from "../../gateway/src/updates/start.ts";

const readme = readFileSync("gateway/src/alerts/README.md", "utf8");

/** MQTT 3.1.1 §4.7.1: `+` one level, `#` the rest. */
function matches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

const t = alertTopics("plant-7", "gw-1");
const DEVICE = 0x2a;
const kinds: Record<string, { topic: string; binary: boolean }> = {
  alert: { topic: t.alert(DEVICE), binary: false },
  health: { topic: t.health(DEVICE), binary: false },
  readings: { topic: t.reading(DEVICE), binary: false },
  "sensor-fault": { topic: t.sensorFault(DEVICE), binary: false },
  "device status": { topic: t.deviceStatus(DEVICE), binary: false },
  "gateway status": { topic: t.status, binary: false },
  "gateway alerts": { topic: t.gatewayAlert, binary: false },
  updates: { topic: updatesTopic("plant-7", "gw-1"), binary: false },
  // runtime.ts #publishAccessStatus
  access: { topic: t.access, binary: false },
  "device frames": { topic: `${INGEST_TOPIC_PREFIX}0000002a`, binary: true },
  "device frames as JSON": { topic: `${INGEST_TOPIC_PREFIX}0000002a/json`, binary: false },
  NACKs: { topic: nackTopic("0000002a"), binary: true },
};

const examples = [...readme.matchAll(/^mosquitto_sub .*$/gm)].map((m) => {
  const line = m[0];
  const filter = /-t '([^']+)'/.exec(line)?.[1] ?? "";
  return { line, filter };
});

describe("mosquitto_sub examples in gateway/src/alerts/README.md", () => {
  it("behavior: each topic kind has exactly one example, and each example is of one kind", () => {
    expect(examples.length).toBe(Object.keys(kinds).length);
    for (const [kind, k] of Object.entries(kinds))
      expect(
        examples.filter((e) => matches(e.filter, k.topic)).map((e) => e.filter),
        kind,
      ).toHaveLength(1);
    for (const e of examples)
      expect(
        Object.values(kinds).filter((k) => matches(e.filter, k.topic)),
        e.line,
      ).toHaveLength(1);
  });

  it("behavior: binary payloads are printed as hex (-F '%t %x'), JSON ones with their topic (-v)", () => {
    for (const k of Object.values(kinds)) {
      const e = examples.find((x) => matches(x.filter, k.topic))!;
      if (k.binary) expect(e.line).toContain("-F '%t %x'");
      else expect(e.line).toMatch(/ -v /);
    }
  });

  it("error: the matcher is MQTT's (a filter of another level count does not match)", () => {
    expect(matches("vigil/v1/+/+/status", t.deviceStatus(DEVICE))).toBe(false);
    expect(matches("vigil/v1/+/+/+/status", t.status)).toBe(false);
    expect(matches("vigil/v1/#", t.status)).toBe(true);
  });
});
