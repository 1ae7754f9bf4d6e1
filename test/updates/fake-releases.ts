/**
 * The releases of the model-agent unit tests: a {@link ReleaseSource} in memory (the chain is a
 * fake behind that interface) whose methods can be made to fail as an unreachable RPC does
 * (the chain client's typed ChainNetworkError), and an install reporter that records the reports.
 */
import type { ReleaseRecord } from "../../gateway/src/chain/client.ts";
import { ChainNetworkError } from "../../gateway/src/chain/errors.ts";
import { planRelease } from "../../gateway/src/cli/release.ts";
import type { ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import type { InstallReporter } from "../../gateway/src/updates/model-agent.ts";
import { releaseFolder } from "./rig.ts";

/** Releases in memory; `down` makes the next calls of a method fail as an unreachable RPC does. */
export class FakeReleases implements InstallReporter {
  readonly releases = new Map<bigint, ReleaseRecord>();
  readonly active = new Map<string, bigint>();
  down = { getRelease: 0, installedRelease: 0, report: 0 };
  /** What `installedRelease` answers: the release last reported (0n: none). */
  installed = 0n;
  /** Every install report that went through, in order. */
  readonly reports: bigint[] = [];
  #fail(m: keyof FakeReleases["down"]): void {
    if (this.down[m] > 0) {
      this.down[m]--;
      throw new ChainNetworkError("http://127.0.0.1:8545", { reason: "connection failed" });
    }
  }
  async activeRelease(_kind: string, target: string): Promise<ReleaseRecord | null> {
    const id = this.active.get(target);
    const r = id === undefined ? undefined : this.releases.get(id);
    return r && r.status === "active" ? structuredClone(r) : null;
  }
  async getRelease(id: bigint): Promise<ReleaseRecord | null> {
    this.#fail("getRelease");
    const r = this.releases.get(id);
    return r ? structuredClone(r) : null;
  }
  async installedRelease(): Promise<bigint> {
    this.#fail("installedRelease");
    return this.installed;
  }
  async report(id: bigint): Promise<void> {
    this.#fail("report");
    this.reports.push(id);
    this.installed = id;
  }
  /**
   * Publishes release `id` (Active) of FD001's int8 (or float32) ONNX under a manifest at
   * `version` serving `profile` (`edit` changes that manifest); `chainVersion` overrides the
   * version recorded on chain.
   */
  async add(
    id: bigint,
    profile: string,
    version: string,
    chainVersion?: bigint,
    precision?: "int8" | "float32",
    edit?: (m: ModelManifest) => void,
  ): Promise<{ file: string; manifest: string }> {
    const rel = releaseFolder({
      profile,
      version,
      ...(precision ? { precision } : {}),
      ...(edit ? { edit } : {}),
    });
    const plan = await planRelease({
      kind: "model",
      target: profile,
      file: rel.file,
      manifest: rel.manifest,
    });
    const rec = { ...plan.input, id, status: "active", approvals: 2, proposer: `0x${"11".repeat(20)}` };
    if (chainVersion !== undefined) rec.version = chainVersion;
    this.releases.set(id, rec as ReleaseRecord);
    this.active.set(rec.target, id);
    return rel;
  }
}
