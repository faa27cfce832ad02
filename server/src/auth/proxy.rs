//! The client's address behind a reverse proxy (cloudflared, a load balancer): taken from the proxy's headers
//! only when the connection comes from a proxy the operator trusts (`SPAWNPOINT_TRUSTED_PROXIES`), since anyone
//! else can send any header.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// Networks whose connections are proxies, e.g. `10.42.0.0/16` (k3s's pod network, where cloudflared runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// A comma-separated list of addresses and CIDR networks; the reason when one is not.
    pub fn parse(text: &str) -> Result<Self, String> {
        let networks = text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(|item| {
            let (address, bits) = item.split_once('/').unwrap_or((item, ""));
            let address: IpAddr = address.parse().map_err(|_| format!("`{item}` is not an address or network"))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() { Ok(max) } else { bits.parse::<u8>().map_err(|_| ()) };
            match bits {
                Ok(bits) if bits <= max => Ok((address, bits)),
                _ => Err(format!("`{item}`: the prefix length must be 0 to {max}")),
            }
        });
        networks.collect::<Result<_, _>>().map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|&(network, bits)| same_prefix(network, ip, bits))
    }

    /// The client's address: the peer's own, unless the peer is a trusted proxy; then the address the proxy
    /// reports (`CF-Connecting-IP`, else the nearest untrusted hop of `X-Forwarded-For`).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        if let Some(ip) = header("cf-connecting-ip").and_then(|value| value.trim().parse().ok()) {
            return ip;
        }
        // Each proxy appends the address it was reached from: the last untrusted one is the client (earlier
        // entries are whatever the client chose to send).
        let hops = header("x-forwarded-for").into_iter().flat_map(|value| value.rsplit(','));
        let mut hops = hops.map_while(|hop| hop.trim().parse::<IpAddr>().ok());
        hops.find(|&hop| !self.trusts(hop)).unwrap_or(peer)
    }
}

fn same_prefix(network: IpAddr, ip: IpAddr, bits: u8) -> bool {
    let (network, ip, width) = match (network, ip.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(n.to_bits()), u128::from(i.to_bits()), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (network >> shift) == (ip >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (axum::http::HeaderName::from_static(name), value.parse().expect("value")))
            .collect()
    }

    #[test]
    fn networks_are_parsed_and_bad_ones_named() {
        let trusted = TrustedProxies::parse("10.42.0.0/16, 192.0.2.7,fd00::/8").expect("valid");
        assert!(trusted.trusts("10.42.3.4".parse().expect("ip")));
        assert!(!trusted.trusts("10.43.0.1".parse().expect("ip")));
        assert!(trusted.trusts("192.0.2.7".parse().expect("ip")) && !trusted.trusts("192.0.2.8".parse().expect("ip")));
        assert!(trusted.trusts("fd12::1".parse().expect("ip")));
        assert!(trusted.trusts("::ffff:10.42.0.9".parse().expect("ip")), "IPv4 seen through an IPv6 socket");
        assert_eq!(TrustedProxies::parse("").expect("empty"), TrustedProxies::default());
        assert!(TrustedProxies::parse("10.0.0.0/33").expect_err("too long").contains("10.0.0.0/33"));
        assert!(TrustedProxies::parse("proxy.local").expect_err("a name").contains("proxy.local"));
    }

    #[test]
    fn headers_count_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse("10.42.0.0/16").expect("valid");
        let proxy: IpAddr = "10.42.0.5".parse().expect("ip");
        let stranger: IpAddr = "198.51.100.9".parse().expect("ip");
        let cf = headers(&[("cf-connecting-ip", "203.0.113.1")]);
        assert_eq!(trusted.client_ip(proxy, &cf), "203.0.113.1".parse::<IpAddr>().expect("ip"));
        assert_eq!(trusted.client_ip(stranger, &cf), stranger, "anyone can send the header");
        assert_eq!(TrustedProxies::default().client_ip(proxy, &cf), proxy, "nothing trusted by default");
        // A client-supplied first entry is skipped: the nearest untrusted hop counts.
        let forwarded = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.2, 10.42.0.7")]);
        assert_eq!(trusted.client_ip(proxy, &forwarded), "203.0.113.2".parse::<IpAddr>().expect("ip"));
        assert_eq!(trusted.client_ip(proxy, &HeaderMap::new()), proxy);
    }
}
