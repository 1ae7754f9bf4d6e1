import { Wallet } from "ethers";
import { FakeChain } from "../../gateway/src/chain/fake-client.ts";
import { registryClientSuite } from "./registry-client.suite.ts";

registryClientSuite("fake (in memory)", async () => {
  const accounts = Array.from({ length: 6 }, () => Wallet.createRandom().address);
  const chain = new FakeChain({ admin: accounts[0] as `0x${string}`, threshold: 2 });
  const [admin, ...others] = accounts.map((a) => chain.client(a));
  return {
    admin: admin as NonNullable<typeof admin>,
    others,
    advanceTime: async (s: bigint) => {
      chain.timeOffset += s;
    },
    close: async () => {},
  };
});
