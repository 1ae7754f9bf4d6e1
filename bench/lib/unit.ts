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
