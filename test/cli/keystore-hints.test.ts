// The fix a fatal keystore error is printed with (cli/fatal.ts), for a real keystore file that is
// unreadable or damaged (storage audit D8): a keystore the user may not read is a permission
// problem, not a missing key (the hint proposed "vigil keys init"), and a damaged one cannot be
// replaced by "vigil keys rotate", which only the lost registered key can sign.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { KeystoreError, loadKeystore } from "../../gateway/src/attest/keystore.ts";
import { fatalLine } from "../../gateway/src/cli/fatal.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function failure(path: string): Promise<KeystoreError> {
  const e = await loadKeystore(path, "a passphrase of enough length").then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KeystoreError);
  return e as KeystoreError;
}

describe("keystore failures: the fix printed with them", () => {
  it("error: a keystore this user may not read names the user and the permissions, not a new key", async () => {
    // Root reads any file: the OS error is the one a service user meets (EACCES).
    const e = new KeystoreError(
      "KEYSTORE_MISSING",
      "keystore /var/lib/vigil/gateway.key cannot be read (EACCES)",
    );
    expect(fatalLine(e)).toBe(
      "keystore /var/lib/vigil/gateway.key cannot be read (EACCES); run the command as the user that owns it (the Pi service runs as vigil: sudo -u vigil vigil …), or give it to that user, keeping mode 0600.",
    );
    expect(fatalLine(e)).not.toMatch(/keys init/);
  });

  it("error: a damaged keystore file: restore it, or a new key the site operator registers (keys rotate needs the lost key)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-keystore-"));
    dirs.push(dir);
    const path = join(dir, "gateway.key");
    writeFileSync(path, "");
    chmodSync(path, 0o600);
    const line = fatalLine(await failure(path));
    expect(line).toMatch(
      /; restore the keystore from a backup; without one, create a new key with "vigil keys init --force" and have the site operator move the registration to it \(VigilRegistry\.rotateGatewayKey\)\.$/,
    );
    expect(line).not.toMatch(/rotate it on chain/);
  });

  it("error: a keystore that is not there still gets the keys init hint", async () => {
    const line = fatalLine(await failure(join(tmpdir(), "no-such-vigil-keystore.key")));
    expect(line).toMatch(
      /does not exist; check attest\.keystore, or create the key with "vigil keys init"\.$/,
    );
  });
});
