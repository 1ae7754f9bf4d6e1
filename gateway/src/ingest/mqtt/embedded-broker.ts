/**
 * The embedded MQTT broker (aedes, MQTT 3.1.1), listening on loopback by default. Device
 * frames are ingested inside `authorizePublish`, so the broker's PUBACK to the device is sent
 * only after the frame is durable [MQTT-4.3.2-2 makes the receiver own the message once it
 * PUBACKs]. When the store is unavailable the client is disconnected without a PUBACK; its
 * session resends the PUBLISH on reconnect [MQTT-4.4.0-1].
 *
 * Back-pressure (MQTT 3.1.1 has no receive maximum, so the broker withholds PUBACKs and stops
 * reading): aedes parses one socket read at a time and reads the next only when every PUBLISH
 * of the current one has been authorised, i.e. stored here. So each client's in-flight window
 * is one socket read (at most 64 KiB of packets, ≈ 800 six-channel DATA frames), and TCP slows
 * the sender beyond it. While ingest as a whole is busy (its backlog above `ingest.maxPending`)
 * the broker also holds back the PUBACKs of frames already stored, so no client is read until
 * the backlog has drained to half; then the held PUBACKs go out (counted `mqttHeld`).
 * (aedes's own Client.pause() is not used: it drops the batch count of packets that complete
 * while paused and never reads that client again.)
 *
 * Access (policy.ts): every CONNECT is authenticated by the policy (refused with CONNACK 4 or 5
 * [MQTT-3.2.2.3]); every client PUBLISH is authorised before ingest sees it (a refused one
 * disconnects the client: MQTT 3.1.1 has no negative PUBACK [MQTT-3.3.5-2]); a refused
 * SUBSCRIBE is answered SUBACK 0x80 [MQTT-3.9.3-1], never dropped silently. A subscription is
 * checked when it is made, and every delivery again (a reader whose rights shrank keeps its
 * subscription but receives only what it may read now). `sweep()` disconnects clients the policy
 * no longer allows (a revoked or expired reader). A client id belongs to the identity that holds
 * it (connected, or with a stored session): another identity's CONNECT with it is refused with
 * CONNACK 0x02 [MQTT-3.2.2-3 table 3.1], so no one can knock a device off the broker or resume
 * an auditor's session and receive what was queued for it.
 *
 * Limits (policy.ts BrokerLimits): a packet announcing more than `maxPacketBytes` disconnects
 * its client before the body is buffered; connections per address and in total, and new
 * connections per address and second, are capped at accept (a refused connection is held unread
 * for 1 s, see #refuse); a client whose socket has more than `maxQueuedBytes` unsent is
 * disconnected. Each breach is counted in stats(); everyone else keeps being served.
 *
 * Delivery: a message goes out at the lower of its QoS and the subscription's [MQTT-3.8.4-6]
 * (delivery-qos.ts; aedes alone misses wildcard subscriptions), and the gateway's own
 * publications leave one at a time, in order (publish()).
 */
import type { EventEmitter } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer, type AddressInfo, type Server } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer } from "node:tls";
import { createWebSocketStream, WebSocketServer } from "ws";
import {
  Aedes,
  type AuthenticateError,
  type AuthenticateHandler,
  type AuthorizeForwardHandler,
  type AuthorizePublishHandler,
  type AuthorizeSubscribeHandler,
  type Client,
} from "aedes";
import type { Ingest } from "../ingest.ts";
import type { IngestSource } from "../source.ts";
import { deliveryQos } from "./delivery-qos.ts";
import { MqttIngestHandler, type MqttVerdict } from "./handler.ts";
import {
  boundStoredSessions,
  dropStoredSession,
  type IncomingPersistence,
  type OutgoingPersistence,
  type StoredSessionCounters,
} from "./stored-sessions.ts";
import { IngestRejectError, SourceError } from "../errors.ts";
import {
  DEFAULT_BROKER_LIMITS,
  OPEN_POLICY,
  type AuthRefusal,
  type BrokerIdentity,
  type BrokerLimits,
  type BrokerPolicy,
} from "./policy.ts";

export interface EmbeddedBrokerOptions {
  /** Default 1883; 0 picks a free port (see `port` after start). */
  port?: number;
  /** Default 127.0.0.1: expose to the plant network only on purpose. */
  host?: string;
  onError?: (e: SourceError) => void;
  /**
   * How long stop() waits for connected clients to read what was published before it and close
   * their side (graceful close, see stop()). Default 5000 ms.
   */
  closeTimeoutMs?: number;
  /** Who may connect, publish and subscribe. Default {@link OPEN_POLICY} (development, loopback). */
  policy?: BrokerPolicy;
  /** Safety limits; defaults in {@link DEFAULT_BROKER_LIMITS}. */
  limits?: Partial<BrokerLimits>;
  /**
   * Also listen with TLS on `port` (same host), with this PEM certificate and key. Default none.
   * Clients then connect with mqtts://.
   */
  tls?: { port: number; cert: string | Buffer; key: string | Buffer };
  /**
   * Also serve MQTT over WebSocket on `port` (same host), path any, so a dashboard page can
   * subscribe directly; wss:// when `tls` is given. Default none.
   */
  websocket?: { port: number };
  /**
   * Connections refused at accept that are held (unread, 1 s) before being closed; while this many
   * are held, the listeners shed new connections inside Node's accept. Default 1024.
   */
  maxRefusedHeld?: number;
  /** Apply the per-address limits (connections, connect rate) to loopback clients too (tests, bench). Default false. */
  limitLoopback?: boolean;
}

/** Counters of refusals and limit breaches, by reason. */
export interface BrokerAccessCounters {
  authRefused: number;
  publishRefused: number;
  subscribeRefused: number;
  packetTooLarge: number;
  tooManyConnections: number;
  /** Connections closed at accept because their address exceeded maxConnectsPerSecondPerAddress. */
  connectRateLimited: number;
  /** Connections closed inside Node's accept while the pool of refused connections was full (a connect flood). */
  acceptShed: number;
  slowClient: number;
  /** Clients disconnected by sweep() (revoked or expired). */
  revokedDisconnects: number;
  /**
   * Stored sessions (clean = false) ended by sweep() because their identity may no longer
   * connect: their subscriptions and queued messages dropped, their client id freed.
   */
  revokedSessionsDropped: number;
  /**
   * CONNECTs refused with CONNACK 0x01 "unacceptable protocol version" [MQTT-3.1.2-2]: aedes 1.2
   * speaks MQTT 3.1 and 3.1.1 only, so an MQTT 5 client is refused before authentication.
   */
  unsupportedProtocol: number;
  /** Refused PUBLISHes by reason (policy reason strings). */
  publishRefusedBy: Record<string, number>;
  /** Refused SUBSCRIBE filters by reason (policy reason strings). */
  subscribeRefusedBy: Record<string, number>;
  /** Deliveries withheld because the receiver may no longer read the topic, by reason. */
  forwardRefusedBy: Record<string, number>;
  /** CONNECTs refused (CONNACK 0x02) because another identity holds the client id. */
  clientIdTaken: number;
  /**
   * CONNECTs with clean = false refused (CONNACK 0x03) because maxStoredSessions sessions are
   * stored, or maxStoredSessionsPerIdentity of the client's identity.
   */
  storedSessionsFull: number;
  /** The policy threw while checking a CONNECT (refused CONNACK 4; a defect or a bad credential file). */
  authErrors: number;
}

/**
 * Wraps aedes's per-client packet parser so a packet whose fixed header announces more than
 * `max` bytes is refused before its body is buffered (aedes 1.2 has no packet-size limit and
 * mqtt-packet buffers a whole packet). Walks only the fixed headers [MQTT-2.2.3]: O(1) per chunk
 * beyond the header bytes.
 */
function limitPacketSize(client: Client, max: number, onTooLarge: () => void): void {
  const parser = (client as unknown as { _parser: { parse(buf: Buffer): number } })._parser;
  const parse = parser.parse.bind(parser);
  // State: skip = body bytes still to pass; hdr = bytes of the current fixed header seen.
  let skip = 0;
  let hdr = 0;
  let len = 0;
  let mul = 1;
  let dead = false;
  parser.parse = (buf: Buffer): number => {
    if (dead) return 0;
    let i = 0;
    while (i < buf.length) {
      if (skip > 0) {
        const n = Math.min(skip, buf.length - i);
        skip -= n;
        i += n;
        continue;
      }
      const b = buf[i++]!;
      if (hdr === 0) {
        hdr = 1;
        len = 0;
        mul = 1;
        continue;
      }
      len += (b & 0x7f) * mul;
      mul *= 128;
      hdr++;
      if ((b & 0x80) === 0 || hdr > 4) {
        const total = hdr + len;
        hdr = 0;
        if (total > max) {
          dead = true;
          onTooLarge();
          return 0;
        }
        skip = len;
      }
    }
    return parse(buf);
  };
}

/**
 * Every listener disables Nagle's algorithm on accepted sockets (TCP_NODELAY; RFC 896, RFC 1122
 * 4.2.3.4). A PUBACK is 4 bytes: with Nagle on, one written while the previous is not yet ACKed
 * waits for the device's delayed ACK (RFC 1122 4.2.3.2 allows up to 500 ms; Linux waits at least
 * 40 ms). Measured with bench e2e --step-at (README, e2e): p99 PUBLISH→PUBACK at 6,000 frames/s
 * met the 50 ms goal in 10 of 14 runs with it, 0 of 6 without, at the same CPU per frame.
 */
const SOCKET_OPTIONS = { noDelay: true } as const;

/** How long a connection refused at accept is held (unread) before it is closed. */
const REFUSED_HOLD_MS = 1000;
/** Refused connections held at once (each is a socket and its kernel buffers); at this many, listeners shed at accept. */
const MAX_REFUSED_HELD = 1024;
/** Held connections closed per event-loop turn when their hold ends. */
const CLOSE_CHUNK = 32;

const isLoopback = (a: string | undefined): boolean =>
  a === "127.0.0.1" || a === "::1" || a === "::ffff:127.0.0.1" || (a?.startsWith("127.") ?? false);
export { isLoopback };

const ANONYMOUS = "anonymous";

/** One string per identity: client ids and stored sessions are held per identity (see #owners). */
function identityKey(w: BrokerIdentity): string {
  if (w.kind === "device") return `device:${w.deviceId}`;
  if (w.kind === "reader") return `reader:${w.address.toLowerCase()}`;
  return ANONYMOUS;
}

/** The part of aedes' emitter (mqemitter) used here: a listener on every topic. */
interface MqEmitterLike {
  on(topic: string, notify: (packet: { payload?: unknown }, cb: () => void) => void): void;
}

/**
 * The broker id the gateway's own publications carry: aedes deduplicates per (client, broker id)
 * by a rising counter, so they form a stream of their own (see EmbeddedBroker.publish).
 */
const GATEWAY_STREAM = "vigil-gateway";

export class EmbeddedBroker implements IngestSource {
  readonly name = "mqtt:embedded";
  broker: Aedes | undefined;
  readonly #servers: Array<{ close(cb: () => void): unknown }> = [];
  readonly #conns = new Set<Duplex>();
  #tlsPort = 0;
  #wsPort = 0;
  #port = 0;
  readonly #handler: MqttIngestHandler;
  readonly #ingest: Ingest;
  readonly #counters = {
    connects: 0,
    disconnects: 0,
    retries: 0,
    clientErrors: 0,
    held: 0,
    /** Errors of a listener after it started (e.g. EMFILE at accept); the listener goes on. */
    listenerErrors: 0,
    /** aedes' own 'error' events (a failed will sweep or subscription lookup); the broker goes on. */
    brokerErrors: 0,
    /** Connections that failed before a CONNECT was accepted (none within 30 s, not MQTT, a packet first). */
    connectionErrors: 0,
  };
  readonly #access: BrokerAccessCounters = {
    authRefused: 0,
    publishRefused: 0,
    subscribeRefused: 0,
    packetTooLarge: 0,
    tooManyConnections: 0,
    connectRateLimited: 0,
    acceptShed: 0,
    slowClient: 0,
    revokedDisconnects: 0,
    revokedSessionsDropped: 0,
    unsupportedProtocol: 0,
    publishRefusedBy: {},
    subscribeRefusedBy: {},
    forwardRefusedBy: {},
    clientIdTaken: 0,
    storedSessionsFull: 0,
    authErrors: 0,
  };
  /** The stored sessions' queues (stored-sessions.ts), once started. */
  #stored: StoredSessionCounters = { messages: 0, bytes: 0, dropped: 0, inbound: 0, inboundRefused: 0 };
  /**
   * Topic filters each connected client holds (granted here, less those it unsubscribed): at most
   * `maxSubscriptionsPerClient`. A stored session's are granted again when it reconnects.
   */
  readonly #filters = new WeakMap<Client, Set<string>>();
  /**
   * Payloads of PUBLISHes that are not frames ingest accepted (undecodable, NACKed): acknowledged,
   * but passed to no subscriber and queued for no stored session (compared by identity: aedes
   * passes the same Buffer on).
   */
  readonly #unforwarded = new WeakSet<object>();
  readonly #policy: BrokerPolicy;
  /** Each client's IP address, for the policy's failed-login backoff. */
  readonly #remoteOf = new WeakMap<Client, string>();
  readonly #limits: BrokerLimits;
  /** Authenticated clients and who they are. */
  readonly #who = new Map<Client, BrokerIdentity>();
  /**
   * Who holds each client id: the identity (identityKey) and the client that last authenticated
   * with it. Kept after a disconnect while the session is stored (clean = false; aedes keeps
   * sessions in memory, so this lives exactly as long as they do).
   */
  readonly #owners = new Map<string, { key: string; client: Client; who: BrokerIdentity }>();
  /** aedes' persistence (set by start()): stored sessions are ended through it (sweep()). */
  #persistence: (OutgoingPersistence & IncomingPersistence) | undefined;
  readonly #perAddress = new Map<string, number>();
  /**
   * Connections accepted per address in the current one-second window (cleared when the window
   * ends, so it holds at most the addresses seen in one second).
   */
  readonly #acceptedThisSecond = new Map<string, number>();
  /** Connections refused at accept and held until REFUSED_HOLD_MS passes (see #refuse). */
  readonly #refused = new Set<Duplex>();
  /** The TCP listeners, for shedding at accept while the refused pool is full. */
  readonly #listeners: Server[] = [];
  #shedding = false;
  /** Held connections due to be closed (#closeLater). */
  readonly #dueToClose: Duplex[] = [];
  #secondStartMs = 0;
  /** Clients being disconnected for a limit (nothing more is queued to them, counted once). */
  readonly #closing = new WeakSet<Client>();
  /** Authorisations completed while ingest is busy, released when it is not. */
  #held: Array<() => void> = [];

  constructor(
    ingest: Ingest,
    private readonly opts: EmbeddedBrokerOptions = {},
  ) {
    this.#ingest = ingest;
    this.#handler = new MqttIngestHandler(ingest);
    this.#policy = opts.policy ?? OPEN_POLICY;
    this.#limits = { ...DEFAULT_BROKER_LIMITS, ...opts.limits };
    ingest.onPressure((busy) => {
      if (busy) return;
      const held = this.#held;
      this.#held = [];
      for (const release of held) release();
    });
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `mqtt://${this.opts.host ?? "127.0.0.1"}:${this.#port}`;
  }

  stats(): Record<string, number> {
    const { publishRefusedBy, subscribeRefusedBy, forwardRefusedBy, ...a } = this.#access;
    const by = (prefix: string, m: Record<string, number>): Record<string, number> =>
      Object.fromEntries(Object.entries(m).map(([k, v]) => [`${prefix}_${k}`, v]));
    return {
      ...this.#counters,
      ...a,
      storedDropped: this.#stored.dropped,
      storedInboundRefused: this.#stored.inboundRefused,
      ...by("publishRefused", publishRefusedBy),
      ...by("subscribeRefused", subscribeRefusedBy),
      ...by("forwardRefused", forwardRefusedBy),
    };
  }

  clients(): number {
    return this.#who.size;
  }

  /**
   * Stored sessions now, the messages queued for them, the unreleased inbound QoS 2 ids remembered
   * (of every session), and the bytes of both (stored-sessions.ts).
   */
  storedSessions(): { sessions: number; messages: number; inbound: number; bytes: number } {
    return {
      sessions: this.#storedSessions(),
      messages: this.#stored.messages,
      inbound: this.#stored.inbound,
      bytes: this.#stored.bytes,
    };
  }

  /** Refusal and limit counters. */
  get access(): Readonly<BrokerAccessCounters> {
    return this.#access;
  }

  /** Who the connected client `clientId` authenticated as (undefined: not connected). */
  identityOf(clientId: string): BrokerIdentity | undefined {
    for (const [c, w] of this.#who) if (c.id === clientId) return w;
    return undefined;
  }

  /**
   * Disconnects every client the policy no longer allows (a reader whose grant was revoked or
   * whose token expired), and ends the stored sessions (clean = false) of identities the policy
   * no longer allows (`identityAllowed`: a token's expiry aside), connected or not: their
   * subscriptions and queued messages are dropped and their client ids freed, or the session
   * would queue every message for them until a restart and hand the lot over if they were
   * allowed again. Called after every registry refresh and on a timer by
   * runtime.ts. Returns the number disconnected; the sessions ended count in
   * `revokedSessionsDropped` (their queues are emptied asynchronously, just after).
   */
  sweep(): number {
    let n = 0;
    for (const [c, w] of this.#who)
      if (!this.#policy.stillAllowed(w)) {
        this.#who.delete(c);
        this.#access.revokedDisconnects++;
        n++;
        c.close();
      }
    for (const [id, o] of this.#owners)
      if (!o.client.clean && !this.#policy.identityAllowed(o.who)) {
        this.#owners.delete(id);
        this.#access.revokedSessionsDropped++;
        if (this.#persistence)
          dropStoredSession(this.#persistence, id).catch((e: unknown) => {
            this.#counters.brokerErrors++;
            this.opts.onError?.(
              new SourceError("MQTT_IO", this.name, `a revoked stored session was not ended: ${String(e)}`, {
                cause: e,
              }),
            );
          });
      }
    return n;
  }

  async start(): Promise<void> {
    const broker = await Aedes.createBroker({ heartbeatInterval: 60_000 });
    // (aedes' types omit `persistence`: the in-memory aedes-persistence by default.)
    this.#persistence = (
      broker as unknown as { persistence: OutgoingPersistence & IncomingPersistence }
    ).persistence;
    this.#stored = boundStoredSessions(
      this.#persistence,
      { maxMessages: this.#limits.maxStoredMessages, maxBytes: this.#limits.maxStoredBytes },
      (p) => typeof p.payload === "object" && this.#unforwarded.has(p.payload),
    );
    // aedes stores a SUBSCRIBE's whole filter list in the session when any one filter of it is
    // granted (handlers/subscribe.js storeSubscriptions), refused ones included: one packet of
    // thousands of filters would pass maxSubscriptionsPerClient, and a refused filter came back at
    // the session's next connect (refused again there). Only the filters granted here are stored.
    const persistence = this.#persistence as unknown as {
      addSubscriptions(client: Client, subs: Array<{ topic: string }>): Promise<void>;
    };
    const addSubscriptions = persistence.addSubscriptions.bind(persistence);
    persistence.addSubscriptions = (client, subs) =>
      addSubscriptions(
        client,
        subs.filter((sub) => this.#filters.get(client)?.has(sub.topic)),
      );
    broker.authenticate = this.#authenticate;
    broker.authorizePublish = this.#authorizePublish;
    broker.authorizeSubscribe = this.#authorizeSubscribe;
    broker.authorizeForward = this.#authorizeForward;
    // Sees every message as the broker hands it to its subscribers (see publish()).
    // (aedes' emitter, mqemitter; its `mq` property is not in aedes' types.)
    const mq = (broker as unknown as { mq: MqEmitterLike }).mq;
    mq.on("#", this.#observeEmit);
    broker.on("client", () => this.#counters.connects++);
    broker.on("unsubscribe", (filters: string[], c: Client) => {
      const held = this.#filters.get(c);
      for (const f of filters) held?.delete(f);
    });
    broker.on("clientDisconnect", (c: Client) => {
      this.#counters.disconnects++;
      this.#gone(c);
    });
    broker.on("clientError", (c: Client, _e: Error) => {
      this.#counters.clientErrors++;
      this.#gone(c);
    });
    // A connection that failed before its CONNECT was accepted (aedes lib/client.js): an MQTT 5
    // CONNECT (errorCode is the CONNACK's), or no CONNECT within 30 s, bytes that are not MQTT, a
    // packet before the CONNECT; each is counted, or such clients would go unseen.
    broker.on("connectionError", (_c: Client, e: Error & { errorCode?: number }) => {
      if (e.errorCode === 1) this.#access.unsupportedProtocol++;
      else this.#counters.connectionErrors++;
    });
    // aedes emits 'error' when its persistence fails (the will sweep, a subscription lookup); with
    // no listener Node's EventEmitter would throw it and end the gateway. Counted and reported.
    // (aedes' types omit the event.)
    (broker as unknown as EventEmitter).on("error", (e: Error) => {
      this.#counters.brokerErrors++;
      this.opts.onError?.(new SourceError("MQTT_IO", this.name, `broker error: ${e.message}`, { cause: e }));
    });
    const host = this.opts.host ?? "127.0.0.1";
    const listen = async (
      server: {
        listen(port: number, host: string, cb: () => void): unknown;
        once(e: "error", f: (e: Error) => void): unknown;
        on(e: "error", f: (e: Error) => void): unknown;
        off(e: "error", f: (e: Error) => void): unknown;
        address(): AddressInfo | string | null;
      },
      port: number,
      setting: string,
    ): Promise<number> => {
      await new Promise<void>((res, rej) => {
        // The setting is named: the fix (cli/fatal.ts) must point at the listener that failed.
        const failed = (e: Error): void =>
          rej(new SourceError("MQTT_IO", `${host}:${port} (${setting})`, e.message, { cause: e }));
        server.once("error", failed);
        server.listen(port, host, () => {
          server.off("error", failed);
          res();
        });
      });
      // From now on an error is counted, not thrown: a server 'error' without a listener would
      // end the process (Node's EventEmitter), and an error at accept does not stop the listener.
      server.on("error", () => this.#counters.listenerErrors++);
      const a = server.address();
      return typeof a === "object" && a ? a.port : 0;
    };
    this.broker = broker;
    try {
      const plain = createServer(SOCKET_OPTIONS, (sock) => this.#accept(broker, sock, sock.remoteAddress));
      this.#servers.push(this.#listener(plain));
      this.#port = await listen(plain, this.opts.port ?? 1883, "mqtt.embedded.port");
      const tls = this.opts.tls;
      if (tls) {
        const t = createTlsServer({ ...SOCKET_OPTIONS, cert: tls.cert, key: tls.key }, (sock) =>
          this.#accept(broker, sock, sock.remoteAddress),
        );
        this.#servers.push(this.#listener(t));
        this.#tlsPort = await listen(t, tls.port, "mqtt.embedded.tls.port");
      }
      if (this.opts.websocket) {
        const http = tls
          ? createHttpsServer({ ...SOCKET_OPTIONS, cert: tls.cert, key: tls.key })
          : createHttpServer(SOCKET_OPTIONS);
        const wss = new WebSocketServer({ server: http, maxPayload: this.#limits.maxPacketBytes });
        // ws re-emits the HTTP server's errors on the WebSocketServer: the HTTP server's own
        // listeners (start-up refusal, then the count) handle them, this one only keeps them from
        // being thrown.
        wss.on("error", () => undefined);
        wss.on("connection", (ws, req) =>
          this.#accept(broker, createWebSocketStream(ws), req.socket.remoteAddress, req),
        );
        this.#listener(http);
        this.#servers.push({ close: (cb) => wss.close(() => http.close(() => cb())) });
        this.#wsPort = await listen(http, this.opts.websocket.port, "mqtt.embedded.websocket.port");
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** TLS listener port (0 when none). */
  get tlsPort(): number {
    return this.#tlsPort;
  }

  /** WebSocket listener port (0 when none). */
  get wsPort(): number {
    return this.#wsPort;
  }

  /**
   * Counts one accept from `addr` in the current one-second window; true when the address is past
   * maxConnectsPerSecondPerAddress. A connect flood (failed logins, connect/disconnect loops)
   * would otherwise build and drop a whole aedes client per attempt.
   */
  #overConnectRate(addr: string): boolean {
    const now = performance.now();
    if (now - this.#secondStartMs >= 1000) {
      this.#acceptedThisSecond.clear();
      this.#secondStartMs = now;
    }
    const recent = this.#acceptedThisSecond.get(addr) ?? 0;
    if (recent >= this.#limits.maxConnectsPerSecondPerAddress) return true;
    this.#acceptedThisSecond.set(addr, recent + 1);
    return false;
  }

  /** A TCP listener: shed with the others while the refused pool is full (#shed), sheds counted. */
  #listener<T extends Server>(server: T): T {
    server.on("drop", () => this.#access.acceptShed++);
    this.#listeners.push(server);
    return server;
  }

  /**
   * Closes a connection refused at accept (no MQTT state was built for it) after holding it
   * unread for REFUSED_HOLD_MS: closing at once invites an immediate retry, and a client that
   * retries at once makes the gateway accept and drop thousands of sockets a second, whose garbage
   * drives GC pauses that delay every other client's PUBACK (bench access: a 256-connection flood
   * from one address). Once `maxRefusedHeld` are held, the listeners shed new connections inside
   * Node's accept (#shed) until the pool has drained to half.
   */
  #refuse(stream: Duplex): void {
    if (!this.broker) {
      stream.destroy();
      return;
    }
    this.#refused.add(stream);
    // A held connection the peer resets (ECONNRESET), or a refused WebSocket stream that receives a
    // bad frame, emits 'error': without a listener that would end the gateway. Counted, then closed.
    stream.on("error", () => {
      this.#counters.clientErrors++;
      stream.destroy();
    });
    const max = this.opts.maxRefusedHeld ?? MAX_REFUSED_HELD;
    if (this.#refused.size >= max) this.#shed(true);
    const t = setTimeout(() => this.#closeLater(stream), REFUSED_HOLD_MS);
    stream.once("close", () => {
      clearTimeout(t);
      this.#refused.delete(stream);
      if (this.#shedding && this.#refused.size <= max / 2) this.#shed(false);
    });
  }

  /**
   * Closes held connections a few at a time, yielding to I/O in between: a flood's held sockets
   * come due together, and closing a thousand in one timer callback stalls the event loop for
   * milliseconds.
   */
  #closeLater(stream: Duplex): void {
    this.#dueToClose.push(stream);
    if (this.#dueToClose.length > 1) return;
    const drain = (): void => {
      for (const s of this.#dueToClose.splice(0, CLOSE_CHUNK)) s.destroy();
      if (this.#dueToClose.length > 0) setImmediate(drain);
    };
    setImmediate(drain);
  }

  /**
   * While the refused pool is full (a connect flood), every listener sheds new connections inside
   * Node's accept, before a socket object exists (net.Server maxConnections; counted `acceptShed`
   * through its 'drop' event). Connected clients are not affected; new ones, the flood's and any
   * other, are closed at once until the pool has drained to half.
   */
  #shed(on: boolean): void {
    this.#shedding = on;
    for (const l of this.#listeners) l.maxConnections = on ? 1 : Infinity;
  }

  /** One new connection on any listener: the connection limits, then aedes with the packet-size limit. */
  #accept(
    broker: Aedes,
    stream: Duplex,
    remote: string | undefined,
    req?: Parameters<Aedes["handle"]>[1],
  ): void {
    const lim = this.#limits;
    const addr = remote ?? "?";
    const count = this.#perAddress.get(addr) ?? 0;
    // Loopback is exempt from the per-address cap (the simulator and local tools open thousands
    // of connections from 127.0.0.1; whoever is on the box is past this limit anyway).
    const limited = !isLoopback(addr) || this.opts.limitLoopback === true;
    const perAddressCap = limited ? lim.maxConnectionsPerAddress : Infinity;
    if (count >= perAddressCap || this.#conns.size >= lim.maxConnections) {
      this.#access.tooManyConnections++;
      return this.#refuse(stream);
    }
    if (limited && this.#overConnectRate(addr)) {
      this.#access.connectRateLimited++;
      return this.#refuse(stream);
    }
    this.#perAddress.set(addr, count + 1);
    this.#conns.add(stream);
    stream.once("close", () => {
      this.#conns.delete(stream);
      const left = (this.#perAddress.get(addr) ?? 1) - 1;
      if (left <= 0) this.#perAddress.delete(addr);
      else this.#perAddress.set(addr, left);
    });
    const client = broker.handle(stream, req);
    this.#remoteOf.set(client, addr);
    limitPacketSize(client, lim.maxPacketBytes, () => {
      this.#access.packetTooLarge++;
      stream.destroy();
    });
  }

  /** Client ids whose session is stored (clean = false), connected or not; of one identity if `key` is given. */
  #storedSessions(key?: string): number {
    let n = 0;
    for (const o of this.#owners.values()) if (!o.client.clean && (key === undefined || o.key === key)) n++;
    return n;
  }

  /** A new stored session would pass a limit: all identities', or (not anonymous) this identity's. */
  #storedSessionsFull(key: string): boolean {
    if (this.#storedSessions() >= this.#limits.maxStoredSessions) return true;
    return key !== ANONYMOUS && this.#storedSessions(key) >= this.#limits.maxStoredSessionsPerIdentity;
  }

  /** A client left: forget who it was; its client id stays held while its session is stored. */
  #gone(c: Client): void {
    this.#who.delete(c);
    const o = c.id ? this.#owners.get(c.id) : undefined;
    if (o?.client === c && c.clean) this.#owners.delete(c.id);
  }

  #authenticate: AuthenticateHandler = (client, username, password, done) => {
    const refuse = (r: AuthRefusal | "identifier_rejected" | "server_unavailable"): void => {
      this.#access.authRefused++;
      const e = new Error(r) as AuthenticateError;
      e.returnCode =
        r === "bad_credentials" ? 4 : r === "not_authorized" ? 5 : r === "server_unavailable" ? 3 : 2;
      done(e, false);
    };
    const accept = (w: BrokerIdentity | AuthRefusal): void => {
      if (typeof w === "string") return refuse(w);
      const key = identityKey(w);
      const held = this.#owners.get(client.id);
      if (held && held.key !== key) {
        this.#access.clientIdTaken++;
        return refuse("identifier_rejected");
      }
      // A new stored session (aedes keeps each one, and its subscriptions, in memory for ever).
      if (!client.clean && !held && this.#storedSessionsFull(key)) {
        this.#access.storedSessionsFull++;
        return refuse("server_unavailable");
      }
      this.#owners.set(client.id, { key, client, who: w });
      this.#who.set(client, w);
      done(null, true);
    };
    const failed = (): void => {
      this.#access.authErrors++;
      refuse("bad_credentials");
    };
    let r: ReturnType<BrokerPolicy["authenticate"]>;
    try {
      r = this.#policy.authenticate(client.id, username, password, this.#remoteOf.get(client));
    } catch {
      return failed();
    }
    if (r instanceof Promise) r.then(accept, failed);
    else accept(r);
  };

  #authorizeSubscribe: AuthorizeSubscribeHandler = (client, sub, cb) => {
    const who = this.#who.get(client);
    let why = who ? this.#policy.subscribe(who, sub.topic) : "unauthenticated";
    // Each filter costs about 1 KB in a stored session, for as long as it is stored (growth audit:
    // 60,000 filters of one client id, heap 35 → 94 MB), and matching work on every publish.
    const held = this.#filters.get(client) ?? new Set<string>();
    if (why === null && !held.has(sub.topic) && held.size >= this.#limits.maxSubscriptionsPerClient)
      why = "too_many_subscriptions";
    if (why === null) {
      held.add(sub.topic);
      this.#filters.set(client, held);
      return cb(null, sub);
    }
    this.#access.subscribeRefused++;
    this.#access.subscribeRefusedBy[why] = (this.#access.subscribeRefusedBy[why] ?? 0) + 1;
    // cb(null, null) answers SUBACK 0x80 for this filter; cb(err) would disconnect.
    cb(null, null);
  };

  /**
   * Per delivered message: the receiver may still read the topic (a subscription is checked when
   * made; rights can shrink after, and a stored session's queue was filled under the old ones),
   * and a client that does not read its socket is disconnected (bounded queue).
   */
  #authorizeForward: AuthorizeForwardHandler = (client, packet) => {
    const conn = (client as unknown as { conn?: { writableLength?: number } }).conn;
    if (this.#closing.has(client)) return null;
    if (typeof packet.payload === "object" && this.#unforwarded.has(packet.payload)) return null;
    // A client that has just left has no identity here: what it is sent goes to its stored session
    // (clean = false) and is checked again when delivered after it reconnects and authenticates.
    const who = this.#who.get(client);
    const why = who ? this.#policy.subscribe(who, packet.topic) : null;
    if (why !== null) {
      this.#access.forwardRefusedBy[why] = (this.#access.forwardRefusedBy[why] ?? 0) + 1;
      return null;
    }
    if ((conn?.writableLength ?? 0) > this.#limits.maxQueuedBytes) {
      this.#closing.add(client);
      this.#access.slowClient++;
      this.#who.delete(client);
      client.close();
      return null;
    }
    if (packet.qos === 0) return packet;
    // [MQTT-3.8.4-6]: aedes keeps the message's QoS for wildcard subscriptions (delivery-qos.ts).
    const subs = (client as unknown as { subscriptions?: Record<string, { qos?: number }> }).subscriptions;
    const qos = deliveryQos(subs ?? {}, packet.topic, packet.qos);
    return qos === packet.qos ? packet : { ...packet, qos };
  };

  #authorizePublish: AuthorizePublishHandler = (client, packet, cb) => {
    const topic = packet.topic;
    // client is null for the gateway's own publications (alerts, NACKs, LWT).
    if (!client) return cb(null);
    const who = this.#who.get(client);
    const why = who ? this.#policy.publish(who, topic, packet.retain) : "unauthenticated";
    if (why !== null) {
      this.#access.publishRefused++;
      this.#access.publishRefusedBy[why] = (this.#access.publishRefusedBy[why] ?? 0) + 1;
      return cb(
        new SourceError("MQTT_REFUSED", `client ${client.id}`, `publish on ${topic} refused (${why})`),
      );
    }
    if (MqttIngestHandler.handles(topic)) {
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      const v = this.#handler.handle(topic, payload);
      const finish = (verdict: MqttVerdict): void => {
        if (!verdict.forward && typeof packet.payload === "object") this.#unforwarded.add(packet.payload);
        this.#finish(verdict, cb);
      };
      if (v instanceof Promise)
        void v.then(
          (verdict) => this.#hold(() => finish(verdict)),
          (e: unknown) => cb(e as Error),
        );
      else finish(v);
      return;
    }
    cb(null);
  };

  /** Runs `release` now, or when ingest is no longer busy (withholding the PUBACK until then). */
  #hold(release: () => void): void {
    if (!this.#ingest.busy) return release();
    this.#counters.held++;
    this.#ingest.counters.shed("mqttHeld", "mqtt");
    this.#held.push(release);
  }

  #finish(
    v: { action: "ack" | "retry"; nack?: { topic: string; payload: Buffer } },
    cb: (e: Error | null) => void,
  ): void {
    if (v.nack)
      this.publish(v.nack.topic, v.nack.payload, { qos: 1, retain: false }).catch((e: unknown) =>
        this.opts.onError?.(
          new SourceError("MQTT_IO", this.name, `NACK not published: ${(e as Error).message}`, { cause: e }),
        ),
      );
    if (v.action === "retry") {
      this.#counters.retries++;
      return cb(new IngestRejectError("STORE_UNAVAILABLE", "store unavailable; resend later"));
    }
    cb(null);
  }

  /** Where the gateway's next publication may start: when the previous one was emitted. */
  #publishing: Promise<void> = Promise.resolve();
  /**
   * The gateway publication aedes is emitting now (one at a time, see {@link publish}): its payload
   * (compared by identity: aedes passes the same Buffer on) and what lets the next one start.
   */
  #emitting: { payload: Buffer; open: () => void } | undefined;

  /**
   * Called by aedes' emitter for every message, in the same synchronous loop that hands it to
   * each subscriber's delivery (which runs aedes' dedupe first).
   */
  #observeEmit = (packet: { payload?: unknown }, cb: () => void): void => {
    const e = this.#emitting;
    if (e && packet.payload === e.payload) {
      this.#emitting = undefined;
      e.open();
    }
    cb();
  };

  /**
   * Publishes as the gateway (alerts, health, statuses, NACKs), bypassing authorizePublish.
   * Resolves once aedes handed the message to every matching subscriber; rejects when the broker
   * is stopped or aedes fails.
   *
   * In order, each starting when the previous one was emitted to the subscribers: aedes 1.2 drops
   * a message for a subscriber when one with a higher broker counter reached that subscriber
   * first (lib/client.js `dedupe`), and a retained publication waits for the retained store before
   * it is emitted. So a live message published right after a retained one overtook it, and live
   * dashboards lost the retained one (a device status before its sensor fault, the health
   * published on an alert transition); the retained copy was right. Waiting for the emission, not
   * for the delivery, keeps a subscriber that does not read its socket from holding the others.
   *
   * aedes keeps that counter per broker id, so the gateway's publications carry their own
   * ({@link GATEWAY_STREAM}): a device's frame, counted after a retained status but emitted before
   * it, would otherwise still cost a subscriber of both (`vigil/v1/#`) the status. Within each
   * stream counters are emitted in order (the gateway's by this chain; clients' frames are never
   * retained), and overlapping subscriptions still get one copy.
   */
  publish(topic: string, payload: Buffer | string, opts: { qos: 0 | 1; retain: boolean }): Promise<void> {
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const delivered = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#publishing = this.#publishing.then(
      () =>
        new Promise<void>((open) => {
          const broker = this.broker;
          if (!broker) {
            reject(new SourceError("MQTT_IO", this.name, "the embedded broker is stopped"));
            return open();
          }
          const body = typeof payload === "string" ? Buffer.from(payload) : payload;
          this.#emitting = { payload: body, open };
          broker.publish(
            // The gateway's own counter stream for aedes' dedupe (see above); aedes types omit it.
            Object.assign(
              {
                cmd: "publish" as const,
                topic,
                payload: body,
                qos: opts.qos,
                retain: opts.retain,
                dup: false,
              },
              { brokerId: GATEWAY_STREAM },
            ),
            (err?: Error) => {
              // Failed before it was emitted: the next one starts anyway.
              if (this.#emitting?.open === open) this.#emitting = undefined;
              open();
              if (err)
                reject(
                  new SourceError("MQTT_IO", this.name, `publish on ${topic} failed: ${err.message}`, {
                    cause: err,
                  }),
                );
              else resolve();
            },
          );
        }),
    );
    return delivered;
  }

  /**
   * Graceful stop: no new connections, then every client connection is half-closed (FIN after
   * the writes already queued) and the broker keeps reading until the client has read
   * everything and closed its side, at most `closeTimeoutMs`; only then are the sockets
   * destroyed. Destroying a socket with unread data in it resets the connection and can lose the
   * messages published just before (the final health and the offline status): seen with 1,515
   * devices before this. Devices' unacknowledged PUBLISHes are resent by their sessions.
   */
  async stop(): Promise<void> {
    const b = this.broker;
    const servers = this.#servers.splice(0);
    this.broker = undefined;
    // Refused connections are not waited for: server.close() would wait out their hold.
    for (const c of this.#refused) c.destroy();
    // PUBACKs held back for back-pressure are not sent: their frames are stored, and the devices
    // resend them to the next session, which answers them as duplicates.
    this.#held = [];
    const closed = Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
    const gone = [...this.#conns].map(
      (c) =>
        new Promise<void>((res) => {
          if (c.destroyed) return res();
          c.once("close", () => res());
          c.end();
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(gone),
      new Promise<void>((res) => (timer = setTimeout(res, this.opts.closeTimeoutMs ?? 5000))),
    ]);
    clearTimeout(timer);
    if (b) await new Promise<void>((res) => b.close(() => res()));
    for (const c of this.#conns) c.destroy();
    await closed;
  }
}
