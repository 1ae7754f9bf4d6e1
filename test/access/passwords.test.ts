/**
 * The device password file (mosquitto_passwd `$7$` lines): what the embedded broker trusts from it.
 */
import { describe, expect, it } from "vitest";
import { hashPassword, MAX_ITERATIONS, PasswordFile } from "../../gateway/src/access/passwords.ts";

describe("device password file", () => {
  it("behavior: a line written by hashPassword verifies its secret and no other", () => {
    const line = hashPassword("0000000a", "s3cret");
    const pf = new PasswordFile(`# devices\n  ${line}\n`);
    expect([pf.line("0000000a"), pf.line("0000000b")]).toEqual([line, undefined]);
    expect(pf.verify("0000000a", "s3cret")).toBe(true);
    expect(pf.verify("0000000a", "s3cret ")).toBe(false);
    expect(pf.verify("0000000b", "s3cret")).toBe(false);
  });

  it("error: a line whose hash, salt or iterations cannot be right is refused, naming the line", () => {
    const good = hashPassword("0000000a", "s3cret");
    const [user, , , iter, salt, hash] = good.split(/[:$]/);
    const line = (i: string, s: string, h: string): string => `${user}:$7$${i}$${s}$${h}`;
    expect(() => new PasswordFile(line(iter!, salt!, hash!))).not.toThrow();
    // An empty hash would match every password (a zero-length PBKDF2 equals it).
    expect(() => new PasswordFile(`# x\n${line(iter!, salt!, "=")}`)).toThrowError(
      /^line 2: the hash is 0 bytes, not 64$/,
    );
    expect(() => new PasswordFile(line(iter!, salt!, hash!.slice(0, 40)))).toThrowError(
      /the hash is 30 bytes/,
    );
    expect(() => new PasswordFile(line(iter!, "=", hash!))).toThrowError(/the salt is empty/);
    expect(() => new PasswordFile(line("0", salt!, hash!))).toThrowError(
      new RegExp(`iterations must be 1 to ${MAX_ITERATIONS}, got 0`),
    );
    expect(() => new PasswordFile(line(String(MAX_ITERATIONS + 1), salt!, hash!))).toThrowError(
      /iterations must be/,
    );
  });
});
