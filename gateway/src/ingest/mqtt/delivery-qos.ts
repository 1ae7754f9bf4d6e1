/**
 * The QoS at which the embedded broker delivers a message to one client (MQTT 3.1.1).
 *
 * A message goes out at the lower of its own QoS and the QoS granted to the subscription
 * [MQTT-3.8.4-6]; when several of the client's subscriptions match, at the highest of theirs
 * [MQTT-3.3.5-1]. aedes 1.2 looks the subscription up by the message's topic, so it finds no
 * wildcard subscription and then keeps the message's QoS: a dashboard subscribed at QoS 0 to
 * `vigil/v1/+/+/+/status` received the retained statuses at QoS 1, and an auditor subscribed at
 * QoS 1 to `vigil/v1/ingest/#` received a device's QoS 2 frames at QoS 2. The broker's
 * `authorizeForward` applies this function to every message it forwards.
 */

/** An MQTT QoS level. */
export type QoS = 0 | 1 | 2;

/**
 * Whether the topic filter `filter` matches the topic name `topic` (MQTT 3.1.1 §4.7): `+` is one
 * level (which may be empty), a last `#` is that level and every one below, including none
 * (`a/#` matches `a`) [MQTT-4.7.1-2]; a filter starting with a wildcard does not match a topic
 * starting with `$` [MQTT-4.7.2-1].
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && (filter.startsWith("+") || filter.startsWith("#"))) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === "#") return i === f.length - 1;
    if (i >= t.length || (level !== "+" && level !== t[i])) return false;
  }
  return f.length === t.length;
}

/**
 * The QoS to deliver a message of QoS `qos` on `topic` at, given the client's subscriptions
 * (filter → granted QoS, as aedes keeps them in `client.subscriptions`).
 * @returns `min(qos, max granted QoS of the matching filters)`; `qos` itself when no filter
 *   matches (a message queued for a stored session before its subscriptions changed is left as
 *   aedes would send it).
 */
export function deliveryQos(
  subscriptions: Readonly<Record<string, { readonly qos?: number } | undefined>>,
  topic: string,
  qos: QoS,
): QoS {
  let granted = -1;
  for (const filter in subscriptions) {
    const g = subscriptions[filter]?.qos ?? 0;
    if (g > granted && topicMatches(filter, topic)) granted = g;
    if (granted >= qos) return qos;
  }
  // granted < qos ≤ 2 here, so it is 0 or 1 when a filter matched.
  return granted < 0 ? qos : (granted as QoS);
}
