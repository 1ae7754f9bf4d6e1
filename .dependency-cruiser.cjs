// Import direction of the gateway (run by `npm run lint:deps`, part of `npm test`).
//
// The folders of gateway/src follow the data flow; a folder imports only folders listed before
// it. Where a lower stage must be served by a higher one (the registry cache answering ingest's
// "may this device send?"), the lower one declares an interface and runtime.ts plugs the
// implementation in. Order and reasons: gateway/src/README.md ("Layers").
/** @type {string[]} lowest first */
const LAYERS = [
  "core",
  "protocol",
  "ingest",
  "store",
  "infer",
  "alerts",
  "chain",
  "attest",
  "anchor",
  "access",
  "updates",
  "http",
  "config",
];
const G = "^gateway/src/";

/** "layer X must not import a layer listed after it" */
const layerRules = LAYERS.map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `gateway/src/${layer}/ imports only ${LAYERS.slice(0, i).join(", ") || "nothing of ours"}`,
  severity: "error",
  from: { path: `${G}${layer}/` },
  to: {
    path: [
      ...LAYERS.slice(i + 1).map((l) => `${G}${l}/`),
      `${G}runtime\\.ts$`,
      `${G}cli/`,
      "^device-sim/",
      "^contracts/(src|scripts)/",
    ],
  },
}));

// Real implementations that a fake must never import (the fake stands in for them).
const REAL_TWINS = [
  `${G}chain/ethers-client\\.ts$`,
  `${G}store/level\\.ts$`,
  `${G}ingest/serial/serial-source\\.ts$`,
  `${G}ingest/mqtt/(embedded-broker|external-source)\\.ts$`,
  `${G}alerts/(embedded|mqtt)-publisher\\.ts$`,
];

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "no import cycles, at any level",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: "core-imports-nothing-of-ours",
      severity: "error",
      from: { path: `${G}core/` },
      to: { path: "^(gateway|device-sim|models|bench|test|contracts)/", pathNot: `${G}core/` },
    },
    {
      name: "product-never-imports-tools",
      comment: "the product (gateway, simulator, bin) never imports models/eval, bench/ or test/",
      severity: "error",
      from: { path: "^(gateway/src|device-sim/src|bin)/" },
      to: { path: "^(models/eval|bench|test)/" },
    },
    {
      name: "nothing-imports-the-composition-root",
      comment: "only cli/ (and bin/) import runtime.ts and cli/",
      severity: "error",
      from: { path: "^(gateway/src|device-sim/src)/", pathNot: `${G}cli/` },
      to: { path: [`${G}runtime\\.ts$`, `${G}cli/`] },
    },
    {
      name: "simulator-uses-only-shared-parts",
      comment: "the device simulator speaks the protocol; it never reaches into the gateway's stages",
      severity: "error",
      from: { path: "^device-sim/" },
      to: { path: G, pathNot: `${G}(core|protocol|infer/features)/` },
    },
    {
      name: "independent-verifier-imports-nothing-of-ours",
      comment:
        "test/independent/ checks that the documents are exact (RECEIPTS.md, the alerts README, the contracts README): its clients, written from the documents alone, import only third-party libraries; the test files that drive them may start processes with the test helpers",
      severity: "error",
      from: { path: "^test/independent/", pathNot: "\\.test\\.ts$" },
      to: {
        path: "^(gateway|device-sim|bin|bench|models|contracts|hardware|test)/",
        pathNot: "^test/independent/",
      },
    },
    {
      name: "fake-never-imports-its-real-twin",
      severity: "error",
      from: { path: "(^|/)(fake-[^/]+|memory[^/]*)\\.ts$" },
      to: { path: REAL_TWINS },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)(node_modules|dist)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js", ".mjs", ".cjs", ".json"] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
