/**
 * Whether a URL's host is an address inside the gateway's own networks: loopback, private
 * (RFC 1918, RFC 4193 unique local), link-local (RFC 3927, RFC 4291: 169.254.169.254 is the cloud
 * metadata service), shared CGNAT space (RFC 6598) and the unspecified address. A release host on
 * the internet that redirects there would make the gateway request an internal URL it was never
 * given (SSRF): fetch.ts refuses such a redirect unless the release's own URI is internal too.
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";

// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are judged by the IPv4 address they carry: Node
// 20's BlockList does so itself (checked: ::ffff:127.0.0.1 and ::ffff:7f00:1 match 127.0.0.0/8),
// and isInternalIp unwraps the dotted form as well.
const INTERNAL = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
] as const)
  INTERNAL.addSubnet(net, bits, "ipv4");
for (const [net, bits] of [
  ["::", 128],
  ["::1", 128],
  ["fc00::", 7],
  ["fe80::", 10],
] as const)
  INTERNAL.addSubnet(net, bits, "ipv6");

/** Whether the IP address `ip` is internal (see the module comment). */
export function isInternalIp(ip: string): boolean {
  const v = isIP(ip);
  if (v === 0) return false;
  if (v === 6) {
    // ::ffff:a.b.c.d written out: judged as the IPv4 address it carries.
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    if (m) return INTERNAL.check(m[1]!, "ipv4");
  }
  return INTERNAL.check(ip, v === 4 ? "ipv4" : "ipv6");
}

/**
 * Whether `url`'s host is internal: a literal address by its value, `localhost` and `*.localhost`
 * by name (RFC 6761), any other name by every address it resolves to now (a name that does not
 * resolve is not internal: the request to it fails anyway). The answer can change before the
 * request resolves the name again (DNS rebinding): this guards against a redirect, not a hostile
 * DNS server.
 */
export async function isInternalUrl(url: URL): Promise<boolean> {
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (isIP(host) !== 0) return isInternalIp(host);
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  try {
    const addrs = await lookup(host, { all: true, verbatim: true });
    return addrs.some((a) => isInternalIp(a.address));
  } catch {
    return false;
  }
}
