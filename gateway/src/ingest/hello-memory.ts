/**
 * Keeps each device's last HELLO (profile, channel names, firmware, boot) in the store's named
 * records, and gives it back to ingest when the gateway starts.
 *
 * Why: a device sends HELLO when it boots and when its link reconnects (PROTOCOL.md); a gateway
 * that restarts while a serial device keeps running sees DATA but no HELLO, so without this it
 * did not know the device's profile, and no model ran for that device until the device rebooted
 * (hostile-client audit: after each gateway restart, stored frames and no inference). Written
 * when a HELLO differs from the one kept (at most once per boot of a well-behaved device), off
 * the acknowledgement path: a failed write is reported and costs only this memory.
 */
import { deviceIdHex, parseDeviceIdHex } from "../protocol/frame.ts";
import type { DeviceSchema, Ingest } from "./ingest.ts";

/** The store's named records (FrameStore's getMeta/putMeta/metaEntries). */
export interface MetaRecords {
  putMeta(name: string, value: Buffer): Promise<void>;
  metaEntries(prefix: string): Promise<Array<[string, Buffer]>>;
}

const PREFIX = "ingest/hello/";

/** Parses a kept record; undefined for one this version cannot read (skipped, not fatal). */
function parse(value: Buffer): DeviceSchema | undefined {
  try {
    const v = JSON.parse(value.toString("utf8")) as Partial<DeviceSchema> & { v?: number };
    if (
      v.v !== 1 ||
      typeof v.bootId !== "number" ||
      typeof v.profile !== "string" ||
      typeof v.firmware !== "string" ||
      !Array.isArray(v.channelNames) ||
      !v.channelNames.every((n) => typeof n === "string")
    )
      return undefined;
    return { bootId: v.bootId, profile: v.profile, channelNames: v.channelNames, firmware: v.firmware };
  } catch {
    return undefined; // not JSON: a damaged record, skipped like an unreadable one
  }
}

const encode = (s: DeviceSchema): string =>
  JSON.stringify({
    v: 1,
    bootId: s.bootId,
    profile: s.profile,
    channelNames: s.channelNames,
    firmware: s.firmware,
  });

/**
 * Restores the kept HELLOs into `ingest` and from then on keeps every new one. Resolves with the
 * number restored and the number of records that could not be read (skipped).
 */
export async function keepHellos(
  records: MetaRecords,
  ingest: Ingest,
  onError: (e: Error) => void,
): Promise<{ restored: number; skipped: number }> {
  const written = new Map<number, string>();
  let restored = 0;
  let skipped = 0;
  for (const [name, value] of await records.metaEntries(PREFIX)) {
    const id = parseDeviceIdHex(name.slice(PREFIX.length));
    const schema = value.length > 0 ? parse(value) : undefined;
    if (id === undefined || schema === undefined) {
      skipped++;
      continue;
    }
    ingest.restoreSchema(id, schema);
    written.set(id, encode(schema));
    restored++;
  }
  ingest.onHello((deviceId, schema) => {
    const text = encode(schema);
    if (written.get(deviceId) === text) return;
    written.set(deviceId, text);
    records.putMeta(PREFIX + deviceIdHex(deviceId), Buffer.from(text)).catch((e: unknown) => {
      written.delete(deviceId); // tried again at the device's next HELLO
      onError(e as Error);
    });
  });
  return { restored, skipped };
}
