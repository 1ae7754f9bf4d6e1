/**
 * `vigil release publish --kind firmware` plans the release version from the image header: a part
 * above 999 (which would pack to another version's number) and a --version other than the
 * header's (which gateways would refuse at install) are usage errors before anything is sent.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { planRelease } from "../../gateway/src/cli/release.ts";
import { UsageError } from "../../gateway/src/core/errors.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import type { FirmwareVersion } from "../../gateway/src/protocol/frame.ts";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function imageFile(version: FirmwareVersion): string {
  dir = mkdtempSync(join(tmpdir(), "vigil-fwplan-"));
  const file = join(dir, "fw.vgfw");
  writeFileSync(file, buildFirmwareImage({ version, securityCounter: 4, body: Buffer.alloc(64, 7) }));
  return file;
}

describe("release plan of a firmware image", () => {
  it("behavior: the version is the header's, packed major·10^6 + minor·10^3 + patch; the security counter goes in metrics", async () => {
    const p = await planRelease({
      kind: "firmware",
      target: "sim-mcu",
      file: imageFile({ major: 2, minor: 3, patch: 999 }),
    });
    expect(p.input.version).toBe(2_003_999n);
    expect(p.input.metrics).toBe('{"securityCounter":4}');
    const same = await planRelease({
      kind: "firmware",
      target: "sim-mcu",
      file: imageFile({ major: 2, minor: 3, patch: 999 }),
      version: 2_003_999n,
    });
    expect(same.input.version).toBe(2_003_999n);
  });

  it("input: a patch above 999 is refused (1.0.1000 would be release version 1.1.0's)", async () => {
    const e = await planRelease({
      kind: "firmware",
      target: "sim-mcu",
      file: imageFile({ major: 1, minor: 0, patch: 1000 }),
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).message).toMatch(/1\.0\.1000 has a patch above 999/);
  });

  it("input: a --version other than the image header's is refused (gateways would refuse the release)", async () => {
    const e = await planRelease({
      kind: "firmware",
      target: "sim-mcu",
      file: imageFile({ major: 1, minor: 2, patch: 3 }),
      version: 1_002_004n,
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).message).toBe(
      "--version 1002004 is not the image header's version 1.2.3 (1002003); gateways would refuse the release",
    );
  });
});
