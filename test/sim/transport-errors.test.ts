// `vigil sim` when its transport cannot reach a gateway: the line keeps the cause (connection
// refused, not an MQTT broker, host not found, not a tty, no ACK on the line) and names the fix.
// The CLI runs as a child process against loopback servers on free ports and a socat pty pair.
import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { connectFailure } from "../../device-sim/src/transports/mqtt.ts";
import { serialOpenError } from "../../device-sim/src/transports/serial.ts";
import { freePort, ptyPair, runVigil, type PtyPair } from "../helpers/procs.ts";

let http: Server | undefined;
let pty: PtyPair | undefined;
afterEach(async () => {
  const h = http;
  http = undefined;
  if (h) await new Promise<void>((res) => h.close(() => res()));
  await pty?.stop();
  pty = undefined;
});

const lastLine = (stderr: string): string => stderr.trimEnd().split("\n").at(-1)!;

describe("vigil sim: transport failures keep their cause", () => {
  it("error: an HTTP port given as --mqtt fails at once (no wait for --connect-timeout-ms): not an MQTT broker, name the broker's port", async () => {
    http = createServer((_req, res) => res.end("not mqtt"));
    await new Promise<void>((res) => http!.listen(0, "127.0.0.1", res));
    const port = (http.address() as { port: number }).port;
    const r = await runVigil(["sim", "--mqtt", `mqtt://127.0.0.1:${port}`, "--connect-timeout-ms", "60000", "--frames", "1"]); // prettier-ignore
    expect(r.code, r.stderr).toBe(1);
    expect(lastLine(r.stderr)).toBe(
      `vigil sim: no MQTT connection to mqtt://127.0.0.1:${port}: not an MQTT broker: 127.0.0.1:${port} answered, but not in MQTT; --mqtt must name the broker's port (is "vigil start" running? It logs its broker as mqtt in "gateway started"), not e.g. its HTTP port.`,
    );
  }, 30_000);

  it("error: a refused connection is retried, and the cause is said at once: nothing listens there, is vigil start running", async () => {
    const port = await freePort();
    const r = await runVigil(["sim", "--mqtt", `mqtt://127.0.0.1:${port}`, "--connect-timeout-ms", "600", "--frames", "1"]); // prettier-ignore
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(
      `\nsim: no MQTT connection to mqtt://127.0.0.1:${port} yet (retrying until --connect-timeout-ms): connection refused (nothing listens on 127.0.0.1:${port}); is "vigil start" running? It logs its broker as mqtt in "gateway started"\n`,
    );
    expect(lastLine(r.stderr)).toBe(
      `vigil sim: no MQTT connection to mqtt://127.0.0.1:${port} within 600 ms.`,
    );
  }, 30_000);

  it("input: the causes are told apart: host not found and a refused CONNECT are not retried, a refused connection is", () => {
    const url = "mqtt://nosuchhost.invalid:1883";
    expect(
      connectFailure(Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" }), url),
    ).toEqual({
      cause: "host not found (nosuchhost.invalid:1883); check the host name in --mqtt",
      retry: false,
    });
    expect(
      connectFailure(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), url).retry,
    ).toBe(true);
    const auth = connectFailure(
      Object.assign(new Error("Connection refused: Not authorized"), { code: 5 }),
      url,
    );
    expect(auth.retry).toBe(false);
    expect(auth.cause).toMatch(
      /^the broker refused the connection \(Not authorized\); .*mqtt:\/\/USER:PASSWORD@HOST:PORT$/,
    );
    expect(
      connectFailure(new Error("Invalid header flag bits, must be 0x0 for puback packet"), url),
    ).toMatchObject({
      cause: expect.stringMatching(/^not an MQTT broker: nosuchhost\.invalid:1883 answered, but not in MQTT/),
      retry: false,
    });
  });

  it("error: a --serial path that is not a tty (/dev/null) is named as such, with the fix", async () => {
    const r = await runVigil(["sim", "--serial", "/dev/null", "--frames", "1"]);
    expect(r.code, r.stderr).toBe(1);
    expect(lastLine(r.stderr)).toMatch(
      /^vigil sim: \/dev\/null is not a serial port \(a tty\); give the adapter's tty \(ls \/dev\/serial\/by-id\/\) or one end of a socat pty pair/,
    );
    expect(r.stderr).not.toMatch(/Inappropriate ioctl/);
    expect(
      serialOpenError("/dev/x", new Error("Error: Permission denied, cannot open /dev/x")).shortMessage,
    ).toMatch(/^\/dev\/x: permission denied; add your user to the group that owns it/);
  }, 30_000);

  it("error: a serial line with no gateway on the other end: exit 1, one line saying no ACK came and what to check", async () => {
    pty = await ptyPair();
    const r = await runVigil(["sim", "--serial", pty.a, "--devices", "1", "--frames", "3", "--rate", "0", "--drain-ms", "600"]); // prettier-ignore
    expect(r.code, r.stderr).toBe(1);
    expect(lastLine(r.stderr)).toBe(
      `vigil sim: 3 frames still unacknowledged after the drain (--drain-ms 600), no ACK at all from serial ${pty.a}; is "vigil start --serial" reading the other end of the line?`,
    );
  }, 30_000);
});
