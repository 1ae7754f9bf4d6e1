/**
 * The help texts of start, status and init state the config's defaults as literals (help/*.ts
 * must not import the config module: its validator is what made their --help slow, see
 * help-imports.test.ts). This test holds each stated default to DEFAULT_CONFIG.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG as D } from "../../gateway/src/config/config.ts";
import { INIT_HELP } from "../../gateway/src/cli/help/init.ts";
import { START_HELP } from "../../gateway/src/cli/help/start.ts";
import { STATUS_HELP } from "../../gateway/src/cli/help/status.ts";

/** The text after `flag` up to the end of its description (the next line starting with "  -"). */
function entry(help: string, flag: string): string {
  const i = help.indexOf(`\n  ${flag} `);
  expect(i, `${flag} is in the help`).toBeGreaterThan(-1);
  const rest = help.slice(i + 1);
  const next = rest.slice(1).search(/\n {2}-/);
  return (next < 0 ? rest : rest.slice(0, next + 1)).replace(/\s+/g, " ");
}

describe("help texts state the config's defaults", () => {
  it("behavior: vigil start --help gives DEFAULT_CONFIG's data folder, broker, stats interval and HTTP port", () => {
    expect(entry(START_HELP, "--data-dir")).toContain(`(default ${D.dataDir})`);
    expect(entry(START_HELP, "--mqtt-port")).toContain(`(default ${D.mqtt.embedded.port};`);
    expect(entry(START_HELP, "--mqtt-host")).toContain(`(default ${D.mqtt.embedded.host})`);
    expect(entry(START_HELP, "--mqtt-auth")).toContain(`default ${D.mqtt.embedded.auth})`);
    expect(entry(START_HELP, "--stats-ms")).toContain(`(default ${D.log.statsIntervalMs})`);
    expect(entry(START_HELP, "--log-level")).toContain(`(default ${D.log.level})`);
    expect(entry(START_HELP, "--http-port")).toContain(`(default ${D.http.port};`);
  });

  it("behavior: vigil status --help gives DEFAULT_CONFIG's endpoint; vigil init --help its site and data folder", () => {
    expect(entry(STATUS_HELP, "--url")).toContain(`http://${D.http.host}:${D.http.port})`);
    expect(entry(INIT_HELP, "--site")).toContain(`(default ${D.site})`);
    expect(entry(INIT_HELP, "--data-dir")).toContain(`(default ${D.dataDir})`);
  });
});
