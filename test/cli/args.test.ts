/** The shared flag parser (gateway/src/cli/args.ts): an unknown flag's sentence and its hint. */
import { describe, expect, it } from "vitest";
import { parse } from "../../gateway/src/cli/args.ts";

const options = {
  "data-dir": { type: "string" },
  to: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

describe("parse: unknown flags", () => {
  it("behavior: a one-letter flag gets no did-you-mean (every other one-letter flag is as close)", () => {
    // `vigil store check -c FILE` (store takes no config) was answered "did you mean -h?".
    expect(() => parse(["-c", "x"], options)).toThrow(/^unknown option -c$/);
    expect(() => parse(["-x"], options)).toThrow(/^unknown option -x$/);
  });

  it("behavior: a long flag one or two edits away still gets the closest one", () => {
    expect(() => parse(["--dat-dir", "x"], options)).toThrow(
      /^unknown option --dat-dir; did you mean --data-dir\?$/,
    );
    expect(() => parse(["--hepl"], options)).toThrow(/^unknown option --hepl; did you mean --help\?$/);
  });
});

describe("parse: a flag without its value", () => {
  it("behavior: names the flag by its long name, also when it has a short one (it printed '-c, needs a value')", () => {
    const o = { config: { type: "string", short: "c" }, "data-dir": { type: "string" } } as const;
    expect(() => parse(["-c"], o)).toThrow(/^--config needs a value$/);
    expect(() => parse(["--config"], o)).toThrow(/^--config needs a value$/);
    expect(() => parse(["--data-dir"], o)).toThrow(/^--data-dir needs a value$/);
  });
});
