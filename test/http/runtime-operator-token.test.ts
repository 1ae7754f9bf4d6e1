// The operator token on a real gateway: Runtime with an access token writes a fresh operator token
// to its dataDir at start (0600), the endpoint refuses operator actions that carry only the access
// token (what a reverse proxy passes on), and `vigil update -c` with the gateway's config sends both.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { OPERATOR_TOKEN_FILE } from "../../gateway/src/http/server.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { runVigil } from "../helpers/procs.ts";

let rt: Runtime | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
});

describe("operator token on a running gateway", () => {
  it("security: the gateway writes a 0600 operator token at start; the access token alone does not reach operator actions; vigil update -c sends both", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-rt-operator-"));
    const token = "c".repeat(24) + "0123456789abcdef";
    writeFileSync(join(dir, "http.token"), `${token}\n`, { mode: 0o600 });
    const settings = {
      dataDir: dir,
      site: "op-site",
      http: { port: 0, authTokenFile: "http.token" },
      attest: { enabled: false, gatewayName: "gw-op" },
      models: { dir: "models/rotating" },
    };
    rt = new Runtime({ config: resolveConfig({ ...settings, mqtt: { embedded: { port: 0 } } }) });
    await rt.start();
    const file = join(dir, OPERATOR_TOKEN_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const op = readFileSync(file, "utf8").trim();
    const url = rt.http!.url;
    const post = (headers: Record<string, string>) =>
      fetch(`${url}/api/updates/check`, { method: "POST", headers });
    const proxied = await post({ authorization: `Bearer ${token}` });
    expect(proxied.status).toBe(403);
    // Past the operator check: this gateway runs no update agents.
    const local = await post({ authorization: `Bearer ${token}`, "x-vigil-operator": op });
    expect([local.status, await local.json()]).toEqual([
      409,
      { error: "updates are not enabled on this gateway (updates.enabled is false)" },
    ]);
    const cfg = join(dir, "vigil.json");
    writeFileSync(cfg, JSON.stringify({ ...settings, http: { ...settings.http, port: rt.http!.port } }));
    const cli = await runVigil(["update", "check", "-c", cfg, "--wait", "0"]);
    expect([cli.code, cli.stderr]).toEqual([
      1,
      "vigil update: updates are not enabled on this gateway (updates.enabled is false).\n",
    ]);
  });
});
