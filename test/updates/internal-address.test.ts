/**
 * internal-address.ts: which hosts count as inside the gateway's networks for the redirect rule
 * of release downloads (SSRF), on real addresses and names (no name here is resolved: the tests
 * use no network beyond loopback).
 */
import { describe, expect, it } from "vitest";
import { isInternalIp, isInternalUrl } from "../../gateway/src/updates/internal-address.ts";

describe("internal addresses", () => {
  it("input: loopback, private, link-local, CGNAT, unique-local and unspecified addresses are internal; public and documentation ones are not", () => {
    const internal = [
      "127.0.0.1",
      "127.255.0.9",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "::1",
      "::",
      "fe80::1",
      "fd12:3456::1",
      "::ffff:127.0.0.1",
      "::ffff:169.254.169.254",
    ];
    const external = ["8.8.8.8", "172.32.0.1", "192.0.2.1", "100.128.0.1", "2001:db8::1", "::ffff:8.8.8.8"];
    expect(internal.filter((a) => !isInternalIp(a))).toEqual([]);
    expect(external.filter((a) => isInternalIp(a))).toEqual([]);
    expect(isInternalIp("not an address")).toBe(false);
  });

  it("input: URLs by literal address and by the names localhost and *.localhost", async () => {
    expect(await isInternalUrl(new URL("https://169.254.169.254/latest/meta-data/"))).toBe(true);
    expect(await isInternalUrl(new URL("https://[::1]:8443/x"))).toBe(true);
    expect(await isInternalUrl(new URL("https://[2001:db8::1]/x"))).toBe(false);
    expect(await isInternalUrl(new URL("https://93.184.216.34/x"))).toBe(false);
    expect(await isInternalUrl(new URL("http://localhost:9/x"))).toBe(true);
    expect(await isInternalUrl(new URL("http://metadata.localhost/x"))).toBe(true);
  });
});
