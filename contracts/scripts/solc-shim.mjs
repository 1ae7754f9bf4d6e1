#!/usr/bin/env node
// A `solc` executable for forge, backed by the pinned solc-js (npm `solc`), so forge never downloads a
// compiler. Answers `--version` and `--standard-json` (JSON on stdin, JSON on stdout); imports that forge
// did not inline are resolved against the working directory, --base-path and --include-path.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { isAbsolute, join } from "node:path";
import process from "node:process";
import { Buffer } from "node:buffer";

const require = createRequire(import.meta.url);
const solc = require("solc");
const args = process.argv.slice(2);

if (args.includes("--version")) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solc-shim: only --version and --standard-json are supported\n");
  process.exit(1);
}
const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if ((args[i] === "--base-path" || args[i] === "--include-path") && args[i + 1]) roots.push(args[i + 1]);
}
const findImport = (path) => {
  for (const root of isAbsolute(path) ? [""] : roots) {
    try {
      return { contents: readFileSync(root ? join(root, path) : path, "utf8") };
    } catch {
      // try the next root
    }
  }
  return { error: `File not found: ${path}` };
};
// Read stdin as a stream: readFileSync(0) fails with EAGAIN when forge hands over a
// non-blocking pipe with more than the pipe buffer (seen on a clean build).
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = Buffer.concat(chunks).toString("utf8");
process.stdout.write(solc.compile(input, { import: findImport }));
