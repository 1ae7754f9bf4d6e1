/**
 * The embedded broker's TLS and WebSocket listeners (certificate and key from config; a dashboard
 * page subscribes over WebSocket) carry the same access rules as the plain one.
 */
import mqtt from "mqtt";
import { generate } from "selfsigned";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  accessRig,
  connackCode,
  dataFrame,
  DEV_A,
  GW_NAME,
  hex8,
  SECRET,
  SITE_NAME,
  subackCodes,
  type AccessRig,
} from "./rig.ts";

let pems: { cert: string; key: string };
let rig: AccessRig | undefined;
beforeAll(async () => {
  const g = await generate([{ name: "commonName", value: "vigil-test" }], {
    keySize: 2048,
    extensions: [{ name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] }],
  });
  pems = { cert: g.cert, key: g.private };
});
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

const tlsOpts = () => ({ ca: pems.cert, rejectUnauthorized: true });

describe("embedded broker transports", () => {
  it("TLS: a device publishes over mqtts:// with the configured certificate; anonymous is refused there too", async () => {
    rig = await accessRig({ tls: { port: 0, ...pems } });
    const url = `mqtts://127.0.0.1:${rig.broker.tlsPort}`;
    const c = await mqtt.connectAsync(url, {
      ...tlsOpts(),
      username: hex8(DEV_A),
      password: SECRET,
      reconnectPeriod: 0,
    });
    await c.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, 1), { qos: 1 });
    c.end(true);
    expect(rig.sink.records.map((r) => r.seq)).toEqual([1]);
    expect(await connackCode(url, { ...tlsOpts() })).toBe(5);
  });

  it("error: a client that does not trust the certificate cannot connect over TLS", async () => {
    rig = await accessRig({ tls: { port: 0, ...pems } });
    const err = await mqtt
      .connectAsync(`mqtts://127.0.0.1:${rig.broker.tlsPort}`, {
        rejectUnauthorized: true,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      })
      .then(
        (c) => (c.end(true), null),
        (e: unknown) => e as Error,
      );
    expect(err?.message).toMatch(/self.signed|certificate/i);
  });

  it("WebSocket: a reader with a token subscribes over ws:// (and wss:// with TLS); # is still refused", async () => {
    rig = await accessRig({ websocket: { port: 0 } });
    const r = await mqtt.connectAsync(`ws://127.0.0.1:${rig.broker.wsPort}`, {
      ...(await rig.token(rig.reader)),
      reconnectPeriod: 0,
    });
    expect(await subackCodes(r, [`vigil/v1/${SITE_NAME}/${GW_NAME}/+/alert`, "#"])).toEqual([1, 128]);
    const got = new Promise<string>((res) => r.once("message", (_t, p) => res(p.toString())));
    rig.broker.publish(`vigil/v1/${SITE_NAME}/${GW_NAME}/${hex8(DEV_A)}/alert`, "alert!", {
      qos: 1,
      retain: false,
    });
    expect(await got).toBe("alert!");
    r.end(true);
    await rig.stop();
    rig = await accessRig({ websocket: { port: 0 }, tls: { port: 0, ...pems } });
    const w = await mqtt.connectAsync(`wss://127.0.0.1:${rig.broker.wsPort}`, {
      ...tlsOpts(),
      ...(await rig.token(rig.reader)),
      reconnectPeriod: 0,
    });
    expect(await subackCodes(w, [`vigil/v1/${SITE_NAME}/${GW_NAME}/status`])).toEqual([1]);
    w.end(true);
    expect(await connackCode(`ws://127.0.0.1:${rig.broker.wsPort}`, {})).not.toBe(0);
  });
});
