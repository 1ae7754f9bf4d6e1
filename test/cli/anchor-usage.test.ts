/** `vigil anchor` usage errors: one line naming the mistake and the --help to read, exit 2. */
import { describe, expect, it } from "vitest";
import { anchorCommand } from "../../gateway/src/cli/anchor.ts";

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await anchorCommand(argv, { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}

describe("vigil anchor usage errors", () => {
  it("behavior: one line with the --help to read, as every other command's (it printed the whole help after it)", async () => {
    expect(await run(["resync"])).toEqual({
      code: 2,
      out: "",
      err: 'vigil anchor resync: --deployment FILE is required (or chain.deployment in the config) (see "vigil anchor resync --help")\n',
    });
    expect(await run(["resync", "--bogus"])).toEqual({
      code: 2,
      out: "",
      err: 'vigil anchor resync: unknown option --bogus (see "vigil anchor resync --help")\n',
    });
    expect(await run(["resyn"])).toEqual({
      code: 2,
      out: "",
      err: 'vigil anchor: unknown anchor command "resyn"; did you mean resync? (see "vigil anchor --help")\n',
    });
  });
});
