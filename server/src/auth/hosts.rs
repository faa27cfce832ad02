//! The host names this panel answers to. Without the check, a page on any site whose name an attacker points
//! at 127.0.0.1 (DNS rebinding) would be "same origin" with the single box, since origin checks compare against
//! the request's own `Host`. Loopback names always pass (the single box's own browser), and so do the public
//! URL's host and whatever `SPAWNPOINT_ALLOWED_HOSTS` adds.

use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// The public URL's host and a comma-separated list of more host names (no ports, no schemes); the
    /// reason when an entry is not a host name.
    pub fn new(public_url: Option<&str>, extra: &str) -> Result<Self, String> {
        let mut hosts: Vec<String> = public_url.and_then(url_host).into_iter().collect();
        for item in extra.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let host = item.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
            // A name, an IPv4 address, or a bare IPv6 address; no port (the `Host` check ignores ports).
            let name = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
            if !name && host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("`{item}` is not a host name like panel.example.com (no scheme, no port)"));
            }
            hosts.push(host.to_ascii_lowercase());
        }
        Ok(Self(hosts))
    }

    /// Whether a request's `Host` value (a name or address, perhaps with a port) is one of ours.
    pub fn allows(&self, host_header: &str) -> bool {
        let host = strip_port(host_header.trim()).to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        is_loopback(host) || self.0.iter().any(|allowed| allowed == host)
    }
}

/// `host` of `scheme://host[:port]/…`.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = strip_port(authority).trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `[::1]:3000` → `::1`, `example.com:3000` → `example.com`, `::1` (bare IPv6) unchanged.
fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_the_public_host_and_the_listed_ones_pass() {
        let hosts = AllowedHosts::new(Some("https://Panel.example.com"), "games.example.net, 192.0.2.10").expect("ok");
        for ok in [
            "127.0.0.1:3000",
            "127.0.0.2",
            "localhost:3000",
            "[::1]:3000",
            "panel.example.com",
            "PANEL.example.com.",
            "panel.example.com:443",
            "games.example.net",
            "192.0.2.10:3000",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in ["evil.example", "panel.example.com.evil.example", "127.0.0.1.evil.example", "10.0.0.1:3000", ""]
        {
            assert!(!hosts.allows(refused), "{refused}");
        }
    }

    #[test]
    fn entries_that_are_not_host_names_are_named() {
        assert!(AllowedHosts::new(None, "https://x.example").expect_err("a URL").contains("https://x.example"));
        assert!(AllowedHosts::new(None, "a b").expect_err("a space").contains("a b"));
        assert!(AllowedHosts::new(None, "panel.example.net:8080").expect_err("a port").contains("no port"));
        let hosts = AllowedHosts::new(None, "Panel.Example.NET., [2001:db8::7]").expect("valid");
        assert!(hosts.allows("panel.example.net:3000") && hosts.allows("[2001:db8::7]:3000"));
        assert_eq!(AllowedHosts::new(None, " , ").expect("empty"), AllowedHosts::default());
    }
}
