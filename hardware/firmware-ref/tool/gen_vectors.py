#!/usr/bin/env python3
"""Regenerates test/vectors.inc from hardware/vectors/frames.json (run via `make vectors`)."""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
d = json.load(open(os.path.join(here, "..", "..", "vectors", "frames.json")))
out = [
    "/* Generated from hardware/vectors/frames.json (known-answer vectors of the TypeScript codec).",
    " * Regenerate with: make vectors. The vitest suite test/protocol/c-reference.test.ts reads the",
    " * JSON directly, so a stale copy here cannot hide a mismatch. */",
    "static const struct { const char *name; const char *hex; const char *wire; } valid_vectors[] = {",
]
out += ['    {"%s", "%s", "%s"},' % (v["name"], v["hex"], v["wire"]) for v in d["valid"]]
out += ["};", "static const struct { const char *name; const char *hex; const char *reason; } invalid_vectors[] = {"]
out += ['    {"%s", "%s", "%s"},' % (v["name"], v["hex"], v["reason"]) for v in d["invalid"]]
out += ["};"]
open(os.path.join(here, "..", "test", "vectors.inc"), "w").write("\n".join(out) + "\n")
