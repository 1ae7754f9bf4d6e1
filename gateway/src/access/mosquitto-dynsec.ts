/**
 * The registry's allow/deny table on Mosquitto 2.0 through its dynamic-security plugin
 * (`mosquitto_dynamic_security.so`, shipped with Debian's mosquitto), so that a denied SUBSCRIBE
 * is refused at SUBSCRIBE time: SUBACK 0x80 (MQTT 3.1.1) or reason 0x87 Not authorized (MQTT 5).
 *
 * Why not the ACL file alone: Mosquitto 2.0's acl_file check answers every SUBSCRIBE with success
 * (src/security_default.c, mosquitto_acl_check_default returns MOSQ_ERR_SUCCESS for
 * MOSQ_ACL_SUBSCRIBE, marked "FIXME - implement ACL subscription strings") and filters at
 * delivery, a silent drop. The plugin checks `subscribePattern` ACLs at SUBSCRIBE (plugins/dynamic-security/
 * acl.c acl_check_subscribe) and src/handle_subscribe.c turns MOSQ_ERR_ACL_DENIED into 0x80 / 0x87.
 *
 * Split of duties (checked on Mosquitto 2.0.11, test/interop/mosquitto-access.test.ts):
 * - Authentication stays with the password file (`vigil.passwd`, hashed `$7$` secrets, reloaded on
 *   SIGHUP, which disconnects users no longer in it). The plugin's clients carry no password, so
 *   its basic-auth check defers to the file (plugins/dynamic-security/auth.c). Plugin commands
 *   only take plain-text passwords in 2.0, which the gateway never holds.
 * - Authorisation is the plugin's: one role `vigil:<username>` per user with its ACLs, default
 *   access all denied. A user unknown to the plugin is denied everything; so `acl_file` must NOT be
 *   configured beside it (it would grant every SUBSCRIBE of such users).
 * - The plugin's state is changed at run time by commands on `$CONTROL/dynamic-security/v1`
 *   (it has no reload on SIGHUP in 2.0): {@link syncDynsec} lists clients and roles and sends the
 *   difference. Deleting a client disconnects it. The initial state is `vigil.dynsec.json`
 *   ({@link dynsecConfig}), the plugin's `plugin_opt_config_file`, which the plugin then rewrites
 *   itself after every command.
 */
import type { MqttClient } from "mqtt";
import { VigilError, redactUrl } from "../core/errors.ts";

/**
 * One user the external broker should know: its password-file line and the topics it may publish
 * on and the filters it may subscribe to (and receive on), the same table as broker-policy.ts.
 */
export interface ExportUser {
  username: string;
  line: string;
  kind: "gateway" | "device" | "reader" | "auditor";
  publish: string[];
  read: string[];
}

export type DynsecAclType = "publishClientSend" | "publishClientReceive" | "subscribePattern";

export interface DynsecAcl {
  acltype: DynsecAclType;
  topic: string;
  allow: boolean;
}

export interface DynsecRole {
  rolename: string;
  acls: DynsecAcl[];
}

export interface DynsecClient {
  username: string;
  roles: string[];
}

export interface DynsecState {
  roles: DynsecRole[];
  clients: DynsecClient[];
}

/** Roles this export manages carry this prefix; other roles and their clients are left alone. */
export const ROLE_PREFIX = "vigil:";
/** The plugin's command topic (2.0) and the topic its answers are published on. */
export const CONTROL_TOPIC = "$CONTROL/dynamic-security/v1";
export const RESPONSE_TOPIC = `${CONTROL_TOPIC}/response`;

/** The plugin's state for `users`: one role per user; the gateway also administers the plugin. */
export function dynsecState(users: readonly ExportUser[]): DynsecState {
  const roles: DynsecRole[] = [];
  const clients: DynsecClient[] = [];
  for (const u of users) {
    const acls: DynsecAcl[] = [];
    for (const t of u.publish) acls.push({ acltype: "publishClientSend", topic: t, allow: true });
    for (const t of u.read) {
      acls.push({ acltype: "subscribePattern", topic: t, allow: true });
      acls.push({ acltype: "publishClientReceive", topic: t, allow: true });
    }
    if (u.kind === "gateway")
      for (const acltype of ["publishClientSend", "subscribePattern", "publishClientReceive"] as const)
        acls.push({ acltype, topic: `${CONTROL_TOPIC}/#`, allow: true });
    const rolename = `${ROLE_PREFIX}${u.username}`;
    roles.push({ rolename, acls });
    clients.push({ username: u.username, roles: [rolename] });
  }
  return { roles, clients };
}

/**
 * The plugin's configuration file for `state` (plugin_opt_config_file): everything not granted is
 * denied, except UNSUBSCRIBE (harmless).
 */
export function dynsecConfig(state: DynsecState): string {
  return `${JSON.stringify(
    {
      defaultACLAccess: {
        publishClientSend: false,
        publishClientReceive: false,
        subscribe: false,
        unsubscribe: true,
      },
      clients: state.clients.map((c) => ({
        username: c.username,
        roles: c.roles.map((rolename) => ({ rolename })),
      })),
      groups: [],
      roles: state.roles.map((r) => ({
        rolename: r.rolename,
        acls: r.acls.map((a) => ({ ...a, priority: 0 })),
      })),
    },
    null,
    2,
  )}\n`;
}

const aclKey = (a: { acltype: string; topic: string }): string => `${a.acltype} ${a.topic}`;

/**
 * The plugin commands that turn `current` into `desired` for the roles this export manages
 * (prefix {@link ROLE_PREFIX}) and the clients holding them: create before delete, roles before
 * the clients that use them. Pure; the order of the result is the order to send.
 */
export function dynsecCommands(current: DynsecState, desired: DynsecState): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const curRoles = new Map(
    current.roles.filter((r) => r.rolename.startsWith(ROLE_PREFIX)).map((r) => [r.rolename, r]),
  );
  const wantRoles = new Map(desired.roles.map((r) => [r.rolename, r]));
  for (const [name, want] of wantRoles) {
    const cur = curRoles.get(name);
    if (!cur) {
      out.push({
        command: "createRole",
        rolename: name,
        acls: want.acls.map((a) => ({ ...a, priority: 0 })),
      });
      continue;
    }
    const have = new Set(cur.acls.map(aclKey));
    const need = new Set(want.acls.map(aclKey));
    for (const a of cur.acls)
      if (!need.has(aclKey(a)))
        out.push({ command: "removeRoleACL", rolename: name, acltype: a.acltype, topic: a.topic });
    for (const a of want.acls)
      if (!have.has(aclKey(a))) out.push({ command: "addRoleACL", rolename: name, ...a, priority: 0 });
  }
  const curClients = new Map(current.clients.map((c) => [c.username, c]));
  const wantClients = new Map(desired.clients.map((c) => [c.username, c]));
  for (const [username, want] of wantClients) {
    const cur = curClients.get(username);
    if (!cur) {
      out.push({ command: "createClient", username, roles: want.roles.map((rolename) => ({ rolename })) });
      continue;
    }
    for (const r of want.roles)
      if (!cur.roles.includes(r)) out.push({ command: "addClientRole", username, rolename: r });
    for (const r of cur.roles)
      if (r.startsWith(ROLE_PREFIX) && !want.roles.includes(r))
        out.push({ command: "removeClientRole", username, rolename: r });
  }
  // A client is ours when it holds its own managed role; deleting it disconnects it.
  for (const [username, cur] of curClients)
    if (!wantClients.has(username) && cur.roles.includes(`${ROLE_PREFIX}${username}`))
      out.push({ command: "deleteClient", username });
  for (const name of curRoles.keys())
    if (!wantRoles.has(name)) out.push({ command: "deleteRole", rolename: name });
  return out;
}

/** The dynamic-security plugin refused a command, did not answer, or the broker refused us. */
export class DynsecError extends VigilError {
  override name = "DynsecError";
  declare readonly code: "DYNSEC_UNREACHABLE" | "DYNSEC_TIMEOUT" | "DYNSEC_REFUSED";
  constructor(code: DynsecError["code"], message: string, opts: { cause?: unknown } = {}) {
    super(code, message, opts);
  }
}

export interface DynsecSyncOptions {
  /** The external broker (mqtt.url); credentials are those of the gateway's own user. */
  url: string;
  username: string;
  password: string;
  desired: DynsecState;
  /** How long to wait for the broker and each answer (default 5000 ms). */
  timeoutMs?: number;
}

interface Response {
  command?: string;
  error?: string;
  correlationData?: string;
  data?: {
    clients?: Array<{ username: string; roles?: Array<{ rolename: string }> }>;
    roles?: Array<{ rolename: string; acls?: Array<{ acltype: string; topic: string; allow: boolean }> }>;
  };
}

/**
 * Brings the plugin's state to `desired`: lists clients and roles, sends the difference
 * ({@link dynsecCommands}), and checks every answer. Resolves with the number of commands sent;
 * rejects with a {@link DynsecError} naming the first refused command.
 */
export async function syncDynsec(o: DynsecSyncOptions): Promise<number> {
  const timeoutMs = o.timeoutMs ?? 5000;
  let client: MqttClient;
  // mqtt.js is imported when a connection is first made: a gateway on its embedded broker never
  // loads it (mqtt.js and serialport together: about 4 MB of RSS; gateway/src/infer/README.md
  // "Where the RSS goes").
  const { default: mqtt } = await import("mqtt");
  try {
    client = await mqtt.connectAsync(o.url, {
      username: o.username,
      password: o.password,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      clientId: `vigil-dynsec-${process.pid}-${Date.now()}`,
    });
  } catch (e) {
    throw new DynsecError(
      "DYNSEC_UNREACHABLE",
      `cannot connect to ${redactUrl(o.url)}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  let seq = 0;
  const waiting = new Map<string, (r: Response[]) => void>();
  client.on("message", (_t, payload) => {
    let responses: Response[];
    try {
      responses = (JSON.parse(payload.toString()) as { responses?: Response[] }).responses ?? [];
    } catch {
      return; // not an answer of ours
    }
    const id = responses[0]?.correlationData;
    if (id === undefined) return;
    waiting.get(id)?.(responses);
  });
  const send = async (commands: Array<Record<string, unknown>>): Promise<Response[]> => {
    const id = `vigil-${++seq}`;
    const answer = new Promise<Response[]>((res) => waiting.set(id, res));
    // One deadline for the PUBACK and the answer together, raced so that a timeout while the
    // publish is still unacknowledged (a busy broker, a dropped link) rejects this call only: a
    // timer rejecting a promise nobody awaits yet would be an unhandled rejection.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () => rej(new DynsecError("DYNSEC_TIMEOUT", `no answer on ${RESPONSE_TOPIC} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    let responses: Response[];
    try {
      responses = await Promise.race([
        client
          .publishAsync(
            CONTROL_TOPIC,
            JSON.stringify({ commands: commands.map((c) => ({ ...c, correlationData: id })) }),
            { qos: 1 },
          )
          .then(() => answer),
        deadline,
      ]);
    } finally {
      clearTimeout(timer);
      waiting.delete(id);
    }
    const bad = responses.find((r) => r.error);
    if (bad)
      throw new DynsecError(
        "DYNSEC_REFUSED",
        `the dynamic-security plugin refused ${bad.command}: ${bad.error}`,
      );
    return responses;
  };
  try {
    // mqtt.js rejects a SUBACK 0x80: the user lacks the plugin's $CONTROL grants.
    await client.subscribeAsync(RESPONSE_TOPIC, { qos: 1 }).catch((e: unknown) => {
      throw new DynsecError("DYNSEC_REFUSED", `${o.username} may not subscribe to ${RESPONSE_TOPIC}`, {
        cause: e,
      });
    });
    const [clients, roles] = await send([
      { command: "listClients", verbose: true, count: -1 },
      { command: "listRoles", verbose: true, count: -1 },
    ]);
    const current: DynsecState = {
      clients: (clients?.data?.clients ?? []).map((c) => ({
        username: c.username,
        roles: (c.roles ?? []).map((r) => r.rolename),
      })),
      roles: (roles?.data?.roles ?? []).map((r) => ({
        rolename: r.rolename,
        acls: (r.acls ?? []).map((a) => ({
          acltype: a.acltype as DynsecAclType,
          topic: a.topic,
          allow: a.allow,
        })),
      })),
    };
    const commands = dynsecCommands(current, o.desired);
    if (commands.length > 0) await send(commands);
    return commands.length;
  } catch (e) {
    if (e instanceof DynsecError) throw e;
    throw new DynsecError("DYNSEC_UNREACHABLE", `${redactUrl(o.url)}: ${(e as Error).message}`, { cause: e });
  } finally {
    await client.endAsync(true);
  }
}
