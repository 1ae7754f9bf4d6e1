// `vigil chain deploy` writes its deployment file after the contracts are on chain: the write is
// tested here without a chain (test/contracts/cli-chain.test.ts runs the whole command on anvil).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Deployment } from "../../gateway/src/chain/deploy.ts";
import { writeDeploymentFile } from "../../gateway/src/cli/chain.ts";

const d = { format: "vigil-deployment/1", chainId: "31337", deployBlock: 7 } as Deployment;
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe("vigil chain deploy: the deployment file", () => {
  it("behavior: written whole; replaced only when asked (--force)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-deploy-file-"));
    const out = join(dir, "deployment.json");
    await writeDeploymentFile(out, d, false);
    expect(JSON.parse(readFileSync(out, "utf8"))).toEqual(d);
    await writeDeploymentFile(out, { ...d, deployBlock: 8 }, true);
    expect(JSON.parse(readFileSync(out, "utf8"))).toMatchObject({ deployBlock: 8 });
    expect(readdirSync(dir)).toEqual(["deployment.json"]);
  });

  it("error: a failed write says the contracts are deployed and leaves no temporary file; a file that appeared meanwhile is kept without --force", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-deploy-file-"));
    const folder = join(dir, "out");
    mkdirSync(folder);
    const e = (await failure(writeDeploymentFile(folder, d, true))) as Error & { code?: string };
    expect(readdirSync(dir)).toEqual(["out"]);
    expect(e.code).toBe("FILE_ACCESS");
    expect(e.message).toBe(
      `cannot write ${folder}: it is a folder (EISDIR); the contracts ARE deployed (addresses above): write the deployment file by hand or re-run with another --out only if you mean a new deployment`,
    );
    const out = join(dir, "deployment.json");
    writeFileSync(out, "another deployment's file\n");
    const x = (await failure(writeDeploymentFile(out, d, false))) as Error;
    expect(x.message).toMatch(
      /^cannot write .*deployment\.json: it already exists \(EEXIST\); the contracts ARE deployed/,
    );
    expect(readFileSync(out, "utf8")).toBe("another deployment's file\n");
    expect(readdirSync(dir).sort()).toEqual(["deployment.json", "out"]);
  });
});
