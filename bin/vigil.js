#!/usr/bin/env node
// Runs the TypeScript sources through tsx, or the compiled dist/ (npm run build) when
// VIGIL_DIST=1 or the sources are not shipped. Sources win by default so a stale dist/ never
// runs by accident during development; the Pi service sets VIGIL_DIST=1.
/* global URL, process */
import { existsSync } from "node:fs";

const built = new URL("../dist/gateway/src/cli/main.js", import.meta.url);
const source = new URL("../gateway/src/cli/main.ts", import.meta.url);
if (existsSync(built) && (process.env.VIGIL_DIST === "1" || !existsSync(source))) {
  await import(built.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(source.href);
}
