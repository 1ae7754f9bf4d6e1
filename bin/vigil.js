#!/usr/bin/env node
// Runs the compiled CLI (npm run build → dist/) when present, else the TypeScript sources via tsx.
import { existsSync } from "node:fs";

const built = new URL("../dist/gateway/src/cli/main.js", import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL("../gateway/src/cli/main.ts", import.meta.url).href);
}
