import { VigilError } from "../core/errors.ts";

/**
 * Why a release was refused or an update did not complete. The code is the label of the agent's
 * rejection counter and of the retained status; the message is one sentence for the operator.
 * - `NOT_ACTIVE`: the release is not Active on chain (proposed, below threshold, unknown);
 * - `REVOKED`: the release was revoked;
 * - `WRONG_TARGET`: the release is for another (kind, target), or its manifest serves other profiles;
 * - `NOT_NEWER`: its version is not above the one installed (rollback, or the same version again),
 *   or a firmware image's security counter is below the device's;
 * - `FETCH_FAILED`: no URI delivered the bytes (unreachable, HTTP error, unsupported scheme), the
 *   release's or its pinned manifest's; not remembered (`isTransient`), nor are `NO_WINDOWS` and
 *   `INTERRUPTED`;
 * - `SIZE_MISMATCH`: the body was longer than the recorded size (cut) or shorter;
 * - `HASH_MISMATCH`: the bytes' sha256 differs from the release's content hash;
 * - `CID_MISMATCH`: an IPFS gateway returned bytes whose CID is not the one asked for;
 * - `MANIFEST_INVALID`: the model manifest is missing, not valid, or not the one the release pins;
 * - `MANIFEST_MISMATCH`: the manifest does not describe this model file (hash, size, shapes, names);
 * - `MODEL_INVALID`: onnxruntime cannot load the file;
 * - `TOO_LARGE`: the release's model file is larger than `updates.maxModelBytes`, or its firmware
 *   image larger than `updates.maxFirmwareBytes` (refused before it is fetched);
 * - `SHADOW_FAILED`: in shadow the candidate gave non-finite or out-of-range outputs, cost too much
 *   (tried again after a backoff, model-agent.ts `costAttempts`), or ran no window while the live
 *   model ran some;
 * - `NO_WINDOWS`: no window ran in shadow within `shadowMaxMs`, the live model's neither (no frames
 *   came: a stopped line, a weekend), so the candidate could not be judged: not remembered, the
 *   next check tries again;
 * - `INTERRUPTED`: the gateway stopped before the install finished (in shadow): not remembered,
 *   the next start tries again. A download that a stop aborts (fetch.ts, `signal`) ends with this
 *   code too, and the agents record it as no refusal at all.
 * An install report that cannot be sent is not a refusal: the install stands, the report is
 * counted (`reportErrors`) and sent again at the next check.
 *
 * Any other typed error during an install (the chain's: an RPC outage; the store's: a full disk;
 * the inference loop's: the live model changed meanwhile) is none of these: it fails the check
 * (`checkErrors`, `update-check-stale` when it lasts) and nothing is remembered.
 */
export type UpdateErrorCode =
  | "NOT_ACTIVE"
  | "REVOKED"
  | "WRONG_TARGET"
  | "NOT_NEWER"
  | "FETCH_FAILED"
  | "SIZE_MISMATCH"
  | "HASH_MISMATCH"
  | "CID_MISMATCH"
  | "MANIFEST_INVALID"
  | "MANIFEST_MISMATCH"
  | "MODEL_INVALID"
  | "TOO_LARGE"
  | "SHADOW_FAILED"
  | "NO_WINDOWS"
  | "INTERRUPTED";

/**
 * True for a refusal that says nothing about the release, only that its bytes could not be had
 * now (a host or IPFS gateway down, a timeout), that no frames came to judge it on, or that the
 * gateway stopped during the install: it is counted and logged but not remembered, so
 * the next check (for firmware, also the device's next HELLO) tries again, paced by
 * `updates.schedule` (for a firmware download, also by the release's backoff: firmware-agent.ts).
 * Every other refusal is about the bytes or the chain's record and is
 * remembered until a different release is Active or an operator asks (`vigil update retry`), with
 * three exceptions decided by the agents: wrong bytes from a release's sources (a size, hash or
 * CID mismatch) are remembered only after `mismatchAttempts` attempts in a row (model-agent.ts;
 * firmware-agent.ts, per device), a model that cost too much in shadow only after `costAttempts`
 * shadow phases in a row (model-agent.ts),
 * and a device that answers REFUSED/BUSY (installing another release) is offered again
 * (firmware-agent.ts).
 */
export function isTransient(code: string): boolean {
  return code === "FETCH_FAILED" || code === "NO_WINDOWS" || code === "INTERRUPTED";
}

export class UpdateError extends VigilError {
  override name = "UpdateError";
  declare readonly code: UpdateErrorCode;
  constructor(code: UpdateErrorCode, message: string, opts: { details?: string; cause?: unknown } = {}) {
    super(code, message, opts);
  }
}

/**
 * An https:// source (a release URI, or an https:// `updates.ipfsGateway`) answered with a redirect
 * to plain http://: refused before anything is sent over it, as browsers and `curl --proto-redir`
 * do, so the release's https-only rule is not silently undone (its bytes would still be
 * hash-checked, but not kept confidential). `FETCH_FAILED`: says nothing about the release.
 */
export class RedirectDowngradeError extends UpdateError {
  override name = "RedirectDowngradeError";
  /** The URL asked for, redacted (credentials and key-like parts replaced). */
  readonly url: string;
  /** Where it redirected to, redacted. */
  readonly location: string;
  constructor(url: string, location: string) {
    super(
      "FETCH_FAILED",
      `${url} redirects to plain http:// (${location}); refused: have the server redirect to https://, or publish the final https:// URI`,
    );
    this.url = url;
    this.location = location;
  }
}

/**
 * A release source outside the gateway's networks answered with a redirect to an internal address
 * (loopback, private, link-local such as 169.254.169.254: internal-address.ts): refused before
 * any request goes there, so a content host cannot make the gateway fetch an internal URL it was
 * never given and report what came back (SSRF). A release whose own URI is internal may redirect
 * inside. `FETCH_FAILED`: says nothing about the release.
 */
export class RedirectInternalError extends UpdateError {
  override name = "RedirectInternalError";
  /** The URL asked for, redacted. */
  readonly url: string;
  /** Where it redirected to, redacted. */
  readonly location: string;
  constructor(url: string, location: string) {
    super(
      "FETCH_FAILED",
      `${url} redirects to an internal address (${location}); refused: publish the file's own URI, or serve the release from a host inside this network`,
    );
    this.url = url;
    this.location = location;
  }
}
