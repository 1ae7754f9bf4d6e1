/**
 * keys.ts signatures verify on chain: 1,000 random headers per key type (secp256k1 via ecrecover, P-256 via
 * the RIP-7212 precompile on anvil --network optimism), checked with eth_call against the deployed
 * registry's `isValidGatewaySignature` and `batchDigest`; and the TypeScript EIP-712 code matches ethers'
 * TypedDataEncoder and the contract.
 */
import fc from "fast-check";
import { Contract, JsonRpcProvider, NonceManager, TypedDataEncoder, Wallet, id as keccakId } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VigilRegistryArtifact } from "../../contracts/artifacts/index.ts";
import {
  generateKey,
  KEY_TYPE_CODE,
  registrationPublicKey,
  signDigest,
  verifyDigest,
} from "../../gateway/src/chain/keys.ts";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { deployVigil } from "../../gateway/src/chain/deploy.ts";
import {
  BATCH_HEADER_TYPES,
  batchDigest,
  hashBatchHeader,
  headerTuple,
  toEthersDomain,
  vigilDomain,
  type BatchHeader,
} from "../../gateway/src/chain/eip712.ts";
import { bytesToHex, type Hex } from "../../gateway/src/core/hex.ts";

let anvil: Anvil;
let provider: JsonRpcProvider;
let registry: Contract;
let chainId: bigint;
const SITE = keccakId("site:sig") as Hex;

const hex32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => bytesToHex(b));
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const headerArb = (gatewayId: Hex): fc.Arbitrary<BatchHeader> =>
  fc.record({
    gatewayId: fc.constant(gatewayId),
    seq: u64,
    prevHead: hex32,
    root: hex32,
    leafCount: fc.integer({ min: 0, max: 0xffffffff }),
    firstTimestamp: u64,
    lastTimestamp: u64,
    modelHash: hex32,
  });

beforeAll(async () => {
  anvil = await startAnvil({ network: "optimism" });
  provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 20;
  const admin = new NonceManager(new Wallet(ANVIL_DEV_KEYS[0], provider));
  const d = await deployVigil(admin, { adminDelaySeconds: 0 });
  registry = new Contract(d.contracts.VigilRegistry.address, VigilRegistryArtifact.abi as never, admin);
  chainId = BigInt(d.chainId);
  await (
    await registry.getFunction("grantRole")(
      await registry.getFunction("operatorRole")(SITE),
      await admin.getAddress(),
    )
  ).wait();
});
afterAll(async () => {
  provider?.destroy();
  await anvil?.stop();
});

describe("keys.ts signatures on chain", () => {
  for (const type of ["secp256k1", "p256"] as const) {
    it(`property: 1,000 random headers signed by keys.ts (${type}) verify on chain`, async () => {
      const key = generateKey(type);
      const gatewayId = keccakId(`sig-gw-${type}`) as Hex;
      await (
        await registry.getFunction("registerGateway")(
          gatewayId,
          SITE,
          KEY_TYPE_CODE[type],
          registrationPublicKey(key),
          "",
        )
      ).wait();
      const domain = vigilDomain(chainId, await registry.getAddress());
      const headers = fc.sample(headerArb(gatewayId), { numRuns: 1000, seed: type === "p256" ? 7 : 3 });
      expect(headers).toHaveLength(1000);
      const isValid = registry.getFunction("isValidGatewaySignature");
      const onChainDigest = registry.getFunction("batchDigest");
      let checked = 0;
      // eth_call in parallel chunks keeps 2,000 calls well under the time budget
      for (let i = 0; i < headers.length; i += 50) {
        await Promise.all(
          headers.slice(i, i + 50).map(async (h) => {
            const digest = batchDigest(domain, h);
            const sig = signDigest(key, digest);
            expect(verifyDigest(type, registrationPublicKey(key), digest, sig)).toBe(true);
            expect(await onChainDigest(headerTuple(h))).toBe(digest);
            expect(await isValid(gatewayId, digest, sig)).toBe(true);
            checked++;
          }),
        );
      }
      expect(checked).toBe(1000);
      // and one that must fail, so the check above can fail
      const h0 = headers[0] as BatchHeader;
      const wrong = signDigest(generateKey(type), batchDigest(domain, h0));
      expect(await isValid(gatewayId, batchDigest(domain, h0), wrong)).toBe(false);
    }, 120_000);
  }

  it("property: hashBatchHeader and batchDigest equal ethers' TypedDataEncoder", () => {
    fc.assert(
      fc.property(headerArb(keccakId("gw") as Hex), fc.bigInt({ min: 1n, max: 1n << 64n }), (h, cid) => {
        const domain = vigilDomain(cid, "0x5FbDB2315678afecb367f032d93F642f64180aa3");
        expect(hashBatchHeader(h)).toBe(TypedDataEncoder.hashStruct("BatchHeader", BATCH_HEADER_TYPES, h));
        expect(batchDigest(domain, h)).toBe(
          TypedDataEncoder.hash(toEthersDomain(domain), BATCH_HEADER_TYPES, h),
        );
      }),
      { numRuns: 300 },
    );
  });
});
