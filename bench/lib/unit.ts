import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The `Environment=` assignments of a systemd unit file (hardware/pi/vigil.service), as systemd
 * reads the ones this project writes: one assignment per line, a value with spaces quoted whole,
 * `Environment="K=a b"` (systemd.exec). Used by the benches that run the gateway as the unit does.
 */
export function unitEnvironment(unitText: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of unitText.split("\n")) {
    const l = line.trim();
    if (!l.startsWith("Environment=")) continue;
    const raw = l.slice("Environment=".length);
    const kv = raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
    const eq = kv.indexOf("=");
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

/**
 * The Node flags the deployed gateway runs with: the `NODE_OPTIONS` of the Pi unit
 * (`<repo>/hardware/pi/vigil.service`), split on whitespace. Throws when the unit sets none, so a
 * bench that promises "as deployed" never silently measures Node's defaults.
 */
export function unitNodeOptions(repoRoot: string): string[] {
  const unit = readFileSync(join(repoRoot, "hardware/pi/vigil.service"), "utf8");
  const flags = (unitEnvironment(unit)["NODE_OPTIONS"] ?? "").split(/\s+/).filter(Boolean);
  if (flags.length === 0) throw new Error("hardware/pi/vigil.service sets no NODE_OPTIONS");
  return flags;
}
