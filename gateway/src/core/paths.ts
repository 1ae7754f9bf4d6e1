import { existsSync } from "node:fs";
import { InternalError } from "./errors.ts";
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";

let root: string | undefined;

/**
 * The package root (the folder holding package.json), found by walking up from this file, so
 * data files resolve the same from the TypeScript sources and from the compiled `dist/`.
 */
export function packageRoot(): string {
  if (root) return root;
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, "package.json"))) {
    const up = dirname(d);
    if (up === d)
      throw new InternalError(
        `package.json not found above ${fileURLToPath(import.meta.url)}: the installation is incomplete`,
      );
    d = up;
  }
  return (root = d);
}

/** A path inside the package, e.g. `fromRoot("hardware", "frame-json.schema.json")`. */
export function fromRoot(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}

/** `p` as given when absolute, else under `base` (a config path under dataDir, a flag under cwd). */
export function resolvePath(base: string, p: string): string {
  return isAbsolute(p) ? p : join(base, p);
}
