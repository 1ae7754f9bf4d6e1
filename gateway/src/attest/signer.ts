/**
 * The gateway's signing key as an object that cannot leak its secret by accident: the
 * private key sits in a private field; `toJSON`, `util.inspect` and `String()` show only the
 * key type and public key (pino, console.log and error messages included).
 */
import { inspect } from "node:util";
import type { SignerInfo } from "../store/types.ts";
import { importKey, registrationPublicKey, signDigest, type DeviceKey, type KeyType } from "../chain/keys.ts";
import type { Hex } from "../core/hex.ts";

export class GatewaySigner {
  readonly keyType: KeyType;
  /** Registry encoding: address (secp256k1, lowercase) or x‖y (P-256). */
  readonly publicKey: Hex;
  readonly #key: DeviceKey;

  constructor(key: DeviceKey) {
    this.#key = importKey(key.type, key.privateKey);
    this.keyType = key.type;
    this.publicKey = registrationPublicKey(this.#key);
  }

  /** Signs a 32-byte digest (EIP-712) as the registry expects for this key type. */
  sign(digest: Hex | Uint8Array): Hex {
    return signDigest(this.#key, digest);
  }

  info(): SignerInfo {
    return this.keyType === "secp256k1"
      ? { keyType: this.keyType, address: this.publicKey, publicKey: this.publicKey }
      : { keyType: this.keyType, publicKey: this.publicKey };
  }

  /** The raw key, for re-encrypting into a keystore only. */
  exportKey(): DeviceKey {
    return { type: this.#key.type, privateKey: Uint8Array.from(this.#key.privateKey) };
  }

  toJSON(): object {
    return { keyType: this.keyType, publicKey: this.publicKey };
  }

  toString(): string {
    return `GatewaySigner(${this.keyType} ${this.publicKey})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
