/**
 * Which IP addresses a sync may connect to. A sync URL comes from whoever configured it, and the
 * server fetches it on its own schedule: without a guard it could be pointed at the machine's own
 * services, the private network or a cloud metadata endpoint (SSRF).
 *
 * IPv4 is refused by a table of special-purpose ranges (IANA registry). IPv6 is refused unless it
 * is global unicast (2000::/3), minus the special ranges inside it: new kinds of local address
 * then stay refused instead of slipping through a table that did not know them. IPv6 forms that
 * carry an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by that IPv4 address.
 *
 * Pure: no I/O. Parsing is strict: anything that is not an IP address is refused.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

/** IPv4 ranges that are not reachable public unicast hosts. */
const REFUSED_V4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // "this network", incl. the unspecified 0.0.0.0
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // shared address space, carrier-grade NAT (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, incl. the cloud metadata address 169.254.169.254
  ['172.16.0.0', 12], // private (RFC 1918)
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation (TEST-NET-1)
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // private (RFC 1918)
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation (TEST-NET-2)
  ['203.0.113.0', 24], // documentation (TEST-NET-3)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, incl. the broadcast 255.255.255.255
];

/** Special ranges inside global unicast 2000::/3. */
const REFUSED_V6_GLOBAL: ReadonlyArray<readonly [string, number]> = [
  ['2001::', 23], // IETF protocol assignments, incl. Teredo 2001::/32 and benchmarking
  ['2001:db8::', 32], // documentation
  ['3fff::', 20], // documentation (RFC 9637)
];

function blockList(ranges: ReadonlyArray<readonly [string, number]>, type: 'ipv4' | 'ipv6'): BlockList {
  const list = new BlockList();
  for (const [network, prefix] of ranges) list.addSubnet(network, prefix, type);
  return list;
}

const refusedV4 = blockList(REFUSED_V4, 'ipv4');
const refusedV6Global = blockList(REFUSED_V6_GLOBAL, 'ipv6');

/**
 * The eight 16-bit groups of an IPv6 address (a zone id such as `%eth0` is dropped), or null
 * when the text is not one.
 */
export function ipv6Groups(address: string): number[] | null {
  let text = address.replace(/%.*$/s, '');
  if (!isIPv6(text)) return null;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const split = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const left = split(head);
  const right = rest === undefined ? [] : split(rest);
  const zeros = rest === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(Math.max(zeros, 0)).fill('0'), ...right].map((g) => Number.parseInt(g, 16));
  return groups.length === 8 ? groups : null;
}

/** The IPv4 address carried by the two last groups, as dotted quad. */
function embeddedV4(high: number, low: number): string {
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

function isPublicV4(address: string): boolean {
  return !refusedV4.check(address, 'ipv4');
}

function isPublicV6(address: string): boolean {
  const g = ipv6Groups(address);
  if (g === null) return false;
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number];
  const upperZero = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0;
  // ::ffff:a.b.c.d (IPv4-mapped): the socket talks IPv4 to a.b.c.d.
  if (upperZero && g5 === 0xffff) return isPublicV4(embeddedV4(g6, g7));
  // 64:ff9b::a.b.c.d (NAT64 well-known prefix): the translator connects to a.b.c.d.
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return isPublicV4(embeddedV4(g6, g7));
  // 2002:aabb:ccdd::/48 (6to4): tunnelled to the IPv4 address aa.bb.cc.dd.
  if (g0 === 0x2002) return isPublicV4(embeddedV4(g1, g2));
  if (g0 < 0x2000 || g0 > 0x3fff) return false; // outside global unicast 2000::/3
  return !refusedV6Global.check(address.replace(/%.*$/s, ''), 'ipv6');
}

/**
 * Whether `address` (an IPv4 or IPv6 address, as `dns.lookup` returns or a URL holds without
 * brackets) is a public unicast address a sync may connect to. Loopback, private, CGNAT,
 * link-local, unique-local, unspecified, multicast, broadcast, documentation and reserved
 * addresses, and IPv6 forms that embed one of these, are not; neither is anything unparsable.
 */
export function isPublicAddress(address: string): boolean {
  if (isIPv4(address)) return isPublicV4(address);
  return isPublicV6(address);
}
