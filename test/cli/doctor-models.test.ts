/**
 * vigil doctor's `models` check loads the models as `vigil start` would (models.precision), and
 * checks their other precisions' files too: a bad int8 file is found before an operator sets
 * `models.precision: "int8"`, not at that start.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runChecks } from "../../gateway/src/cli/doctor.ts";
import { resolveConfig, type GatewayConfig } from "../../gateway/src/config/config.ts";

/** A models folder with the FD001 model: its manifest, float32 and int8 files. */
function fd001Folder(): string {
  const dir = mkdtempSync(join(tmpdir(), "vigil-doctor-models-"));
  for (const f of ["fd001.manifest.json", "fd001.onnx", "fd001.int8.onnx"])
    copyFileSync(join("models/cmapss", f), join(dir, f));
  return dir;
}

async function modelsCheck(dir: string, precision: GatewayConfig["models"]["precision"]) {
  const cfg = resolveConfig({
    dataDir: mkdtempSync(join(tmpdir(), "vigil-doctor-models-data-")),
    mqtt: { embedded: { port: 0 } },
    http: { port: 0 },
    models: { dir, precision },
  });
  return (await runChecks(cfg, {})).find((r) => r.name === "models");
}

describe("vigil doctor: models", () => {
  it("behavior: a good folder is ok, naming the precision and that the other files were verified", async () => {
    const dir = fd001Folder();
    expect(await modelsCheck(dir, "auto")).toMatchObject({
      status: "ok",
      detail: expect.stringMatching(
        /1 verified \(sha256\) and loaded \(models\.precision auto\), their other precisions' files verified/,
      ),
    });
  }, 60_000);

  it("error: a damaged int8 file fails the check under precision auto (float32 is loaded), naming the file; precision int8 fails at loading it", async () => {
    const dir = fd001Folder();
    const int8 = join(dir, "fd001.int8.onnx");
    writeFileSync(int8, Buffer.concat([readFileSync(int8), Buffer.from("x")]));
    const auto = await modelsCheck(dir, "auto");
    expect(auto).toMatchObject({ status: "fail" });
    expect(auto!.detail).toMatch(
      /1 loaded, but another precision's file is bad: .*fd001\.int8\.onnx \(int8\) is not the manifest's file/,
    );
    const chosen = await modelsCheck(dir, "int8");
    expect(chosen).toMatchObject({ status: "fail", detail: expect.stringMatching(/fd001\.int8\.onnx/) });
    expect(chosen!.detail).not.toMatch(/1 loaded/);
    rmSync(int8);
    expect((await modelsCheck(dir, "float32"))!.detail).toMatch(
      /fd001\.int8\.onnx \(int8\) cannot be read \(ENOENT\)/,
    );
  }, 60_000);
});
