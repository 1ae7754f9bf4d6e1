/**
 * What the embedded broker asks before it lets a client connect, publish or subscribe. The broker
 * declares the questions; the answers come from the registry (access/broker-policy.ts), plugged in
 * by runtime.ts. Every answer after authentication is a lookup in memory (O(1) per message).
 */
import type { Hex } from "../../core/hex.ts";
import { parseIngestTopic } from "../../protocol/topics.ts";

/** Who a connected client is. */
export type BrokerIdentity =
  | { kind: "anonymous" }
  /** A sensor node that proved it holds the credential of `deviceId`. */
  | {
      kind: "device";
      deviceId: number;
      /** Set when it authenticated with a device token (unix seconds). */ expiresAt?: number;
      /** The registered key the token was checked against (lowercase): a key change ends the session. */
      key?: Hex;
    }
  /** A dashboard with a reader token; `expiresAt` is the token's expiry, unix seconds. */
  | { kind: "reader"; address: Hex; expiresAt: number };

/** Why a CONNECT is refused: CONNACK return code 4 (bad credentials) or 5 (not authorised) [MQTT-3.2.2.3]. */
export type AuthRefusal = "bad_credentials" | "not_authorized";

export interface BrokerPolicy {
  /**
   * The identity of a connecting client, or why it is refused. May be asynchronous (key recovery).
   * `remote` is the client's IP address when the transport has one (failed-login backoff).
   */
  authenticate(
    clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
    remote?: string,
  ): BrokerIdentity | AuthRefusal | Promise<BrokerIdentity | AuthRefusal>;
  /** null: allowed; else the reason (a counter name) the PUBLISH is refused and the client disconnected. */
  publish(who: BrokerIdentity, topic: string, retain: boolean): string | null;
  /** null: allowed (SUBACK with the granted QoS); else the reason it is refused (SUBACK 0x80). */
  subscribe(who: BrokerIdentity, filter: string): string | null;
  /** Whether a connected client may stay connected now (a revoked or expired reader may not). */
  stillAllowed(who: BrokerIdentity): boolean;
  /**
   * Whether the identity may keep a stored session (clean = false): as {@link stillAllowed}, but
   * a token's expiry does not count (its holder comes back with a new token to the session
   * queued for it); a revoked reader, a removed or rotated key, a password line removed do.
   */
  identityAllowed(who: BrokerIdentity): boolean;
}

/** The broker's safety limits; each breach disconnects that client and is counted. */
export interface BrokerLimits {
  /** Largest MQTT packet (fixed header included), bytes. Default 16 KiB (a frame is a few hundred bytes). */
  maxPacketBytes: number;
  /** Simultaneous connections from one IP address (loopback exempt unless limitLoopback). Default 64. */
  maxConnectionsPerAddress: number;
  /**
   * New connections accepted from one IP address per second (loopback exempt unless
   * limitLoopback); the rest are closed at accept, before any MQTT state exists. Default 50.
   */
  maxConnectsPerSecondPerAddress: number;
  /** Connections in total. Default 10 000. */
  maxConnections: number;
  /** Bytes queued to a slow client's socket before it is disconnected. Default 1 MiB. */
  maxQueuedBytes: number;
  /**
   * Stored sessions (clean = false) kept at most; a CONNECT that would store one more is refused
   * (CONNACK 3, server unavailable) and counted. Default 1000.
   */
  maxStoredSessions: number;
  /**
   * Stored sessions one authenticated identity (a device or a reader) keeps at most, so one
   * identity cannot take every place of `maxStoredSessions`; a CONNECT that would store one more
   * is refused the same way. Does not apply to `auth: "none"`, where every client is one
   * anonymous identity. Default 100.
   */
  maxStoredSessionsPerIdentity: number;
  /**
   * QoS 1/2 messages kept for one client's session until it acknowledges them (stored-sessions.ts);
   * more are not queued for it, and counted. Default 1000 (Mosquitto's max_queued_messages).
   */
  maxStoredMessages: number;
  /** Bytes kept in all sessions' queues together (payload, topic, 256 per message). Default 16 MiB. */
  maxStoredBytes: number;
  /**
   * Topic filters one client holds at most (its session's, restored ones included); one more is
   * refused with SUBACK 0x80 and counted (`subscribeRefused_too_many_subscriptions`). Default 32.
   */
  maxSubscriptionsPerClient: number;
}

export const DEFAULT_BROKER_LIMITS: BrokerLimits = {
  maxPacketBytes: 16 * 1024,
  maxConnectionsPerAddress: 64,
  maxConnectsPerSecondPerAddress: 50,
  maxConnections: 10_000,
  maxQueuedBytes: 1024 * 1024,
  maxStoredSessions: 1000,
  maxStoredSessionsPerIdentity: 100,
  maxStoredMessages: 1000,
  maxStoredBytes: 16 * 1024 * 1024,
  maxSubscriptionsPerClient: 32,
};

/**
 * The development policy (`mqtt.embedded.auth: "none"`, loopback only): anyone may connect,
 * subscribe and publish device frames, but nobody may publish outside the ingest topics (the
 * gateway's alert, health, status and NACK topics, or any other namespace), nobody may retain, and
 * `$SYS` (other clients' ids and subscriptions) is not readable (`#` does not match it,
 * MQTT-4.7.2-1). Use `mqtt.embedded.auth: "registry"` for anything beyond one's own machine.
 */
export const OPEN_POLICY: BrokerPolicy = {
  authenticate: () => ({ kind: "anonymous" }),
  publish: (_who, topic, retain) => (retain ? "retain" : parseIngestTopic(topic) ? null : "topic"),
  // $SYS lists other clients' ids and subscriptions: not for anonymous clients.
  subscribe: (_who, filter) => (filter.startsWith("$SYS") ? "sys" : null),
  stillAllowed: () => true,
  identityAllowed: () => true,
};
