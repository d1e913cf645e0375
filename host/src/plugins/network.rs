//! Where a plugin's HTTP requests may go: public addresses only, unless the
//! operator allows private ones for that plugin.
//!
//! Checking a host name once and connecting later would let a name resolve
//! to a public address for the check and a private one for the connection
//! (DNS rebinding), so the check lives in the resolver the HTTP client
//! connects with: [`PublicOnly`] drops every non-public address it resolves.
//! Literal IP addresses in URLs never reach a resolver and are checked by
//! [`is_public`] before the request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is a public, routable unicast address. An IPv6 address
/// that carries an IPv4 address (mapped, IPv4-compatible, NAT64, 6to4) is
/// judged by the IPv4 address it carries: `[64:ff9b::7f00:1]` reaches
/// 127.0.0.1 through a NAT64 gateway.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// The IPv4 address an IPv6 address carries, if it is of a kind that
/// carries one: IPv4-mapped (`::ffff:0:0/96`), IPv4-translated
/// (`::ffff:0:0:0/96`), IPv4-compatible (`::/96`, deprecated but still
/// routed by some stacks), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Public IPv6 unicast is global unicast (`2000::/3`) less the ranges
/// reserved within it; everything else (loopback, unspecified, unique and
/// link local, site local, multicast, discard, local NAT64) is not.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    global_unicast
        && !(s[0] == 0x2001 && s[1] == 0) // Teredo: hides an IPv4 address
        && !(s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        && !(s[0] == 0x2001 && s[1] == 2 && s[2] == 0) // benchmarking
        && !(s[0] == 0x2001 && (s[1] & 0xfff0) == 0x10) // ORCHID
        && !(s[0] == 0x2001 && (s[1] & 0xfff0) == 0x20) // ORCHIDv2
        && !(s[0] == 0x3fff && s[1] < 0x1000) // documentation (RFC 9637)
}

/// The `host[:port]` `url` names, lower case, as operators list the hosts
/// a plugin or a callback may reach; `None` without a host.
pub fn authority(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// The address `url` names literally, if it names one. The URL parser has
/// already read every spelling of an address (decimal, octal, short forms,
/// IPv6 with an IPv4 inside) into one; a name is left to [`PublicOnly`].
pub fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// A resolver that answers only public addresses.
#[derive(Debug, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if resolved.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(resolved.into_iter());
            Ok(addrs)
        })
    }
}

/// The two HTTP clients plugins use: one that reaches public addresses
/// only, one (for plugins the operator allowed) that reaches any.
#[derive(Clone)]
pub struct Clients {
    /// Connects to public addresses only.
    pub public_only: reqwest::Client,
    /// Connects anywhere (for plugins allowed private addresses).
    pub any_address: reqwest::Client,
}

impl Clients {
    /// Both clients: no proxy, no redirects.
    pub fn new() -> Result<Clients, reqwest::Error> {
        // Never follow redirects: a redirect could leave the declared hosts.
        // Never use a proxy (reqwest reads HTTP(S)_PROXY from the
        // environment by default): the proxy, not chirp, would resolve the
        // name, and it would reach private addresses for the plugin.
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(256)
        };
        Ok(Clients {
            public_only: builder().dns_resolver(Arc::new(PublicOnly)).build()?,
            any_address: builder().build()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:0:127.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "fec0::1",
            "100::1",
            "ff02::1",
            "3fff::1",
            "192.0.0.8",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "13.235.1.1",
            "2606:4700::1111",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn the_public_resolver_refuses_localhost() {
        let name: Name = "localhost".parse().unwrap();
        assert!(PublicOnly.resolve(name).await.is_err());
    }
}
