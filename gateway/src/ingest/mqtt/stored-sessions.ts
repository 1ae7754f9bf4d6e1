/**
 * Bounds what the embedded broker keeps for stored sessions (clean = false): the QoS 1 and 2
 * messages queued for each client until it acknowledges them, in aedes' in-memory persistence.
 *
 * aedes-persistence (memory) queues a copy of every QoS > 0 message for every stored subscription,
 * with no limit: a local client that opens sessions with clean = false, subscribes to `#` and
 * leaves made the gateway's heap grow by every frame, for ever (measured: 500 such sessions and
 * 15 s of QoS 1 traffic ended a 256 MB heap, "JavaScript heap out of memory"). Mosquitto bounds
 * the same queue (`max_queued_messages`, 1000 by default, then drops); this does the same per
 * client, and bounds the bytes of all queues together.
 *
 * The persistence object is wrapped in place (its queue is private): the methods that add to a
 * client's queue count, the one that removes a message (`outgoingClearMessageId`, on PUBACK or
 * when a clean session empties its queue) uncounts, and a message over a limit is not queued for
 * that client (counted in `dropped`). Limits: `mqtt.embedded.limits.maxStoredMessages` and
 * `maxStoredBytes` (payload, topic and a fixed per-message allowance: what the queues cost in
 * memory, roughly).
 *
 * The other direction too: an inbound QoS 2 PUBLISH is remembered until its PUBREL (MQTT-4.3.3-2:
 * a resent one must not be delivered twice), in the session, so across reconnects of a stored one.
 * aedes bounds the unreleased ones per connection (1000), not per session, and keeps the whole
 * packet: a client reconnecting with clean = false and withholding PUBREL piled up 1000 more each
 * time, payload included (growth audit: 15 reconnects with 8 KiB payloads, RSS 171 → 328 MB; one
 * client id could reach 65,535). aedes delivers a QoS 2 message when it arrives and reads the kept
 * packet only to know that its id is there, so only the id is kept (an empty packet), at most
 * `maxStoredMessages` per client id and `maxStoredBytes` / 256 in all (counted apart from the
 * queues' bytes, each within its own `maxStoredBytes`); one more is refused, which makes aedes close that connection (MQTT 3.1.1 has no reason code for it), counted
 * in `inboundRefused`.
 */

import { SourceError } from "../errors.ts";

/** The part of aedes' persistence this wraps (aedes-persistence 10's async API). */
export interface OutgoingPersistence {
  outgoingEnqueue(sub: { clientId: string }, packet: QueuedPacket): Promise<void>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: QueuedPacket): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: unknown): Promise<QueuedPacket | undefined | null>;
  /** A copy of the client's queue (aedes-persistence: a Readable over it). */
  outgoingStream(client: { id: string }): AsyncIterable<QueuedPacket>;
  /** Removes the client's stored subscriptions (nothing more is queued for it). */
  cleanSubscriptions(client: { id: string }): Promise<void>;
}

/**
 * Ends client id `id`'s stored session: its subscriptions (nothing more is queued for it) and
 * every message queued for it, each through `outgoingClearMessageId` as aedes empties the queue of
 * a client that connects with a clean session (aedes lib/handlers/connect.js `emptyQueue`), so
 * the wrapper below uncounts them. A message not delivered yet has no messageId: each call
 * removes the first of those.
 */
export async function dropStoredSession(
  persistence: OutgoingPersistence & IncomingPersistence,
  id: string,
): Promise<void> {
  await persistence.cleanSubscriptions({ id });
  await persistence.cleanIncoming({ id });
  for await (const packet of persistence.outgoingStream({ id }))
    await persistence.outgoingClearMessageId({ id }, packet);
}

/** The part of aedes' persistence that remembers unreleased inbound QoS 2 messages (aedes-persistence 10). */
export interface IncomingPersistence {
  incomingStorePacket(client: { id: string }, packet: InboundPacket): Promise<void>;
  incomingDelPacket(client: { id: string }, packet: { messageId?: number }): Promise<void>;
  /** Forgets every unreleased id of the client (a clean session's connect and close). */
  cleanIncoming(client: { id: string }): Promise<void>;
}

export interface InboundPacket {
  cmd?: string;
  topic?: string;
  payload?: Buffer | string | Uint8Array;
  qos?: number;
  messageId?: number;
}

export interface QueuedPacket {
  payload?: Buffer | string | Uint8Array;
  topic?: string;
}

export interface StoredSessionLimits {
  /** Messages queued for one client at most. */
  maxMessages: number;
  /**
   * Bytes queued for all clients together at most: payload, topic and {@link QUEUED_OVERHEAD_BYTES}
   * per message (a payload queued for n clients counts n times).
   */
  maxBytes: number;
}

export interface StoredSessionCounters {
  /** Messages now queued, all clients. */
  messages: number;
  /** Their bytes, counted as for `maxBytes`. */
  bytes: number;
  /** Messages not queued for a client because a limit was reached. */
  dropped: number;
  /** Unreleased inbound QoS 2 message ids remembered now, all clients (256 bytes each in `bytes`). */
  inbound: number;
  /** Inbound QoS 2 messages refused because a limit was reached (their connection was closed). */
  inboundRefused: number;
}

/**
 * Bookkeeping bytes counted per queued message besides its payload and topic: aedes' Packet
 * object (nine fields) and its slot in the queue, rounded up. A frame's payload is 20–250 bytes,
 * so counting only payloads would let the queues hold several times the limit in objects.
 */
export const QUEUED_OVERHEAD_BYTES = 256;

const sizeOf = (p: QueuedPacket): number =>
  QUEUED_OVERHEAD_BYTES +
  (p.payload === undefined ? 0 : Buffer.byteLength(p.payload)) +
  (p.topic === undefined ? 0 : Buffer.byteLength(p.topic));

/**
 * Wraps `persistence` so its outgoing queues stay within `limits`; `skip(packet)` true: the
 * message is queued for nobody (a frame ingest refused, see embedded-broker.ts). Returns the live
 * counters.
 */
export function boundStoredSessions(
  persistence: OutgoingPersistence & IncomingPersistence,
  limits: StoredSessionLimits,
  skip: (packet: QueuedPacket) => boolean = () => false,
): StoredSessionCounters {
  const counters: StoredSessionCounters = {
    messages: 0,
    bytes: 0,
    dropped: 0,
    inbound: 0,
    inboundRefused: 0,
  };
  boundInbound(persistence, limits, counters);
  /** Per client: queued messages and their bytes. */
  const queued = new Map<string, { n: number; bytes: number }>();
  const enqueue = persistence.outgoingEnqueue.bind(persistence);
  const enqueueCombi = persistence.outgoingEnqueueCombi.bind(persistence);
  const clear = persistence.outgoingClearMessageId.bind(persistence);

  /** Counts one message for `clientId`; false when a limit says no. */
  const admit = (clientId: string, size: number): boolean => {
    const q = queued.get(clientId) ?? { n: 0, bytes: 0 };
    const queuedBytes = counters.bytes - counters.inbound * INBOUND_BYTES;
    if (q.n >= limits.maxMessages || queuedBytes + size > limits.maxBytes) {
      counters.dropped++;
      return false;
    }
    q.n++;
    q.bytes += size;
    queued.set(clientId, q);
    counters.messages++;
    counters.bytes += size;
    return true;
  };

  persistence.outgoingEnqueue = (sub, packet) => {
    if (skip(packet) || !admit(sub.clientId, sizeOf(packet))) return Promise.resolve();
    return enqueue(sub, packet);
  };
  persistence.outgoingEnqueueCombi = (subs, packet) => {
    if (skip(packet)) return Promise.resolve();
    const size = sizeOf(packet);
    const kept = subs.filter((s) => admit(s.clientId, size));
    return kept.length === 0 ? Promise.resolve() : enqueueCombi(kept, packet);
  };
  persistence.outgoingClearMessageId = async (client, packet) => {
    const removed = await clear(client, packet);
    const q = queued.get(client.id);
    if (removed && q && q.n > 0) {
      const size = Math.min(sizeOf(removed), q.bytes);
      q.n--;
      q.bytes -= size;
      counters.messages--;
      counters.bytes -= size;
      if (q.n === 0) queued.delete(client.id);
    }
    return removed;
  };
  return counters;
}

/** Bytes counted per remembered inbound id: the empty packet aedes keeps for it, and its slot. */
const INBOUND_BYTES = QUEUED_OVERHEAD_BYTES;

/** The inbound half of {@link boundStoredSessions} (see the file comment). */
function boundInbound(
  persistence: IncomingPersistence,
  limits: StoredSessionLimits,
  counters: StoredSessionCounters,
): void {
  /** Per client id: the unreleased message ids remembered. */
  const held = new Map<string, Set<number>>();
  const store = persistence.incomingStorePacket.bind(persistence);
  const del = persistence.incomingDelPacket.bind(persistence);
  const clean = persistence.cleanIncoming.bind(persistence);
  const forget = (n: number): void => {
    counters.inbound -= n;
    counters.bytes -= n * INBOUND_BYTES;
  };

  persistence.incomingStorePacket = async (client, packet) => {
    const id = packet.messageId ?? 0;
    const ids = held.get(client.id) ?? new Set<number>();
    if (!ids.has(id)) {
      // Apart from the queues' bytes: full queues of dashboards away must not close the
      // connections of QoS 2 publishers, nor inbound ids crowd out the queues.
      if (ids.size >= limits.maxMessages || (counters.inbound + 1) * INBOUND_BYTES > limits.maxBytes) {
        counters.inboundRefused++;
        // aedes closes the connection on it (clientErrors); MQTT 3.1.1 has no reason code to send.
        throw new SourceError(
          "MQTT_REFUSED",
          "mqtt:embedded",
          `client ${client.id} holds ${ids.size} QoS 2 messages without their PUBREL (limit ${limits.maxMessages} per session, ${limits.maxBytes / INBOUND_BYTES} in all)`,
        );
      }
      ids.add(id);
      held.set(client.id, ids);
      counters.inbound++;
      counters.bytes += INBOUND_BYTES;
    }
    // Only the id is read back (publish.js: a duplicate; pubrel.js: present or not).
    await store(client, { cmd: "publish", topic: "", payload: Buffer.alloc(0), qos: 2, messageId: id });
  };
  persistence.incomingDelPacket = async (client, packet) => {
    await del(client, packet);
    const ids = held.get(client.id);
    if (ids?.delete(packet.messageId ?? 0)) {
      forget(1);
      if (ids.size === 0) held.delete(client.id);
    }
  };
  persistence.cleanIncoming = async (client) => {
    await clean(client);
    const ids = held.get(client.id);
    if (ids) {
      forget(ids.size);
      held.delete(client.id);
    }
  };
}
