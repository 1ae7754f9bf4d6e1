// The import-direction rule (.dependency-cruiser.cjs, run by `npm run lint:deps` in npm test) must
// bite: a fixture tree with one violation of each kind is refused with the rule's name, and the
// same tree without them passes.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fromRoot } from "../../gateway/src/core/paths.ts";

const root = mkdtempSync(join(tmpdir(), "vigil-layers-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(root, "t-"));
  const all: Record<string, string> = {
    "tsconfig.json": JSON.stringify({
      compilerOptions: {
        allowImportingTsExtensions: true,
        noEmit: true,
        module: "NodeNext",
        moduleResolution: "NodeNext",
      },
    }),
    "gateway/src/core/errors.ts": "export const e = 1;\n",
    "gateway/src/store/core.ts": 'import { e } from "../core/errors.ts";\nexport const s = e;\n',
    "gateway/src/attest/sealer.ts": 'import { s } from "../store/core.ts";\nexport const a = s;\n',
    "gateway/src/runtime.ts": 'import { a } from "./attest/sealer.ts";\nexport const r = a;\n',
    "gateway/src/cli/main.ts": 'import { r } from "../runtime.ts";\nexport const m = r;\n',
    ...files,
  };
  for (const [p, text] of Object.entries(all)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

function cruise(dir: string): { ok: boolean; out: string } {
  try {
    const out = execFileSync(
      process.execPath,
      [
        fromRoot("node_modules", "dependency-cruiser", "bin", "dependency-cruise.mjs"),
        "gateway",
        "--config",
        fromRoot(".dependency-cruiser.cjs"),
        "--output-type",
        "err",
      ],
      { cwd: dir, encoding: "utf8", stdio: "pipe" },
    );
    return { ok: true, out };
  } catch (e) {
    return {
      ok: false,
      out: String((e as { stdout?: string }).stdout ?? "") + String((e as { stderr?: string }).stderr ?? ""),
    };
  }
}

describe("import direction", () => {
  it("behavior: a tree that follows the data flow passes", () => {
    expect(cruise(tree({}))).toMatchObject({ ok: true });
  });

  it("error: a stage importing a later stage, a cycle, core importing a stage, a stage importing the composition root, a fake importing its real twin", () => {
    const r = cruise(
      tree({
        "gateway/src/store/bad.ts": 'import { a } from "../attest/sealer.ts";\nexport const b = a;\n',
        "gateway/src/core/bad.ts": 'import { s } from "../store/core.ts";\nexport const c = s;\n',
        "gateway/src/infer/x.ts": 'import { y } from "./y.ts";\nexport const x = y;\n',
        "gateway/src/infer/y.ts": 'import { x } from "./x.ts";\nexport const y = x;\n',
        "gateway/src/alerts/uses-root.ts": 'import { r } from "../runtime.ts";\nexport const u = r;\n',
        "gateway/src/chain/ethers-client.ts": "export const real = 1;\n",
        "gateway/src/chain/fake-client.ts":
          'import { real } from "./ethers-client.ts";\nexport const fake = real;\n',
      }),
    );
    expect(r.ok).toBe(false);
    for (const rule of [
      "layer-store",
      "core-imports-nothing-of-ours",
      "no-circular",
      "nothing-imports-the-composition-root",
      "fake-never-imports-its-real-twin",
    ])
      expect(r.out, rule).toContain(rule);
  });
});
