/**
 * The first CONNACK of an mqtt.js client, for the gateway's connections to an external broker
 * (ingest's subscription and the alerts publisher): whether the start may go on without it.
 */
import type { MqttClient } from "mqtt";

/**
 * CONNACK return codes no retry can change: the broker refuses the client's own settings
 * [MQTT-3.2.2.3]: 1 unacceptable protocol version, 2 identifier rejected, 4 bad user name or
 * password, 5 not authorised. (3, server unavailable, passes: it is retried.)
 */
export const REFUSED_FOR_GOOD: ReadonlySet<number> = new Set([1, 2, 4, 5]);

/**
 * Waits at most `timeoutMs` for `client`'s first CONNACK: "connected", or "timeout" (the broker did
 * not answer; mqtt.js goes on reconnecting), or "aborted" when `signal` aborts first (a stop asked
 * during start-up: the start goes on without the broker, as after a timeout). A refusal in
 * {@link REFUSED_FOR_GOOD} ends the client and rejects with mqtt.js' error (its `code` is the
 * return code).
 */
export function firstConnack(
  client: MqttClient,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<"connected" | "timeout" | "aborted"> {
  if (signal?.aborted) return Promise.resolve("aborted");
  return new Promise((res, rej) => {
    const settle = (): void => {
      clearTimeout(t);
      client.off("error", refused);
      client.off("connect", up);
      signal?.removeEventListener("abort", aborted);
    };
    const aborted = (): void => {
      settle();
      res("aborted");
    };
    const t = setTimeout(() => {
      settle();
      res("timeout");
    }, timeoutMs);
    const up = (): void => {
      settle();
      res("connected");
    };
    const refused = (e: Error & { code?: unknown }): void => {
      if (typeof e.code !== "number" || !REFUSED_FOR_GOOD.has(e.code)) return;
      settle();
      client.end(true);
      rej(e);
    };
    client.on("error", refused);
    client.on("connect", up);
    signal?.addEventListener("abort", aborted, { once: true });
  });
}
