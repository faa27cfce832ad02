//! Addresses players can type: a DNS name per game server, kept pointing at wherever its game runs.
//!
//! A provider publishes a server's records — `<id>.<base>` (A, or AAAA for an IPv6 node) → the node's public
//! IP, and for games whose clients look one up an SRV record `_service._proto.<id>.<base>` → the game port,
//! because Agones hands out ports dynamically — marks them as Spawnpoint's, lists what it owns (for drift
//! repair) and removes them. When to do which is the reconciler's business; with no provider (`none`) the
//! address stays `ip:port`.

pub mod cloudflare;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::orchestrator::BoxFuture;

/// SRV records Spawnpoint makes: one target, so priority and weight only need to be valid.
const SRV_PRIORITY: u16 = 0;
const SRV_WEIGHT: u16 = 5;

/// The records one server should have, all leading players to `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecords {
    pub server_id: String,
    /// `<id>.<base>`
    pub hostname: String,
    pub ip: IpAddr,
    pub port: u16,
    /// `_minecraft._tcp` for a game whose clients look up an SRV record.
    pub srv_prefix: Option<String>,
}

impl ServerRecords {
    /// The records of server `server_id`, named under `hostname`, for a game at `ip:port`. Refuses a host that
    /// is not an IP address (a single box configured with a host name has nothing to put in an A record).
    pub fn new(
        server_id: &str,
        hostname: String,
        ip: &str,
        port: u16,
        srv_prefix: Option<String>,
    ) -> Result<Self, String> {
        let ip =
            ip.parse().map_err(|_| format!("the game host `{ip}` is not an IP address, so no A record can name it"))?;
        Ok(Self { server_id: server_id.to_owned(), hostname, ip, port, srv_prefix })
    }

    /// What players type: the hostname alone where an SRV record carries the port, else `hostname:port`.
    pub fn address(&self) -> String {
        match self.srv_prefix {
            Some(_) => self.hostname.clone(),
            None => catalog::gameserver::address(&self.hostname, self.port),
        }
    }

    /// Every record as it should be: the host record, then the SRV record if the game has one.
    pub fn wanted(&self) -> Vec<Record> {
        let host = match self.ip {
            IpAddr::V4(ip) => RecordValue::A(ip),
            IpAddr::V6(ip) => RecordValue::Aaaa(ip),
        };
        let mut records = vec![Record { name: self.hostname.clone(), value: host }];
        if let Some(prefix) = &self.srv_prefix {
            records.push(Record {
                name: format!("{prefix}.{}", self.hostname),
                value: RecordValue::Srv {
                    priority: SRV_PRIORITY,
                    weight: SRV_WEIGHT,
                    port: self.port,
                    target: self.hostname.clone(),
                },
            });
        }
        records
    }
}

/// A DNS record: a fully qualified name and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub value: RecordValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv { priority: u16, weight: u16, port: u16, target: String },
}

impl Record {
    pub fn slot(&self) -> Slot {
        match self.value {
            RecordValue::A(_) | RecordValue::Aaaa(_) => Slot::Host,
            RecordValue::Srv { .. } => Slot::Srv,
        }
    }

    /// The same record, allowing for DNS names being case-insensitive.
    pub fn same_as(&self, other: &Record) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && match (&self.value, &other.value) {
                (
                    RecordValue::Srv { priority, weight, port, target },
                    RecordValue::Srv { priority: p, weight: w, port: o, target: t },
                ) => priority == p && weight == w && port == o && target.eq_ignore_ascii_case(t),
                (mine, theirs) => mine == theirs,
            }
    }
}

/// Which of a server's records: its host record (A or AAAA) or its SRV record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    Host,
    Srv,
}

/// The provider's ids of a server's records, as stored in its row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordIds {
    pub host: Option<String>,
    pub srv: Option<String>,
}

impl RecordIds {
    pub fn get(&self, slot: Slot) -> Option<&str> {
        match slot {
            Slot::Host => self.host.as_deref(),
            Slot::Srv => self.srv.as_deref(),
        }
    }

    pub fn set(&mut self, slot: Slot, id: String) {
        match slot {
            Slot::Host => self.host = Some(id),
            Slot::Srv => self.srv = Some(id),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.host.iter().chain(&self.srv).map(String::as_str)
    }
}

/// A record in the zone that carries Spawnpoint's mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub id: String,
    /// The server it was made for.
    pub server_id: String,
    /// What it says; `None` for a kind of record Spawnpoint does not make (it is removed like any stray).
    pub record: Option<Record>,
}

/// Why the provider could not do what was asked; the text is shown to the server's owner.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DnsError(pub String);

pub trait Dns: Send + Sync + 'static {
    /// The name of server `server_id`: `<id>.<base>`.
    fn hostname(&self, server_id: &str) -> String;
    /// Makes the server's records exactly [`ServerRecords::wanted`] and returns their ids. Records with `known`
    /// ids are updated in place, one request each; with `thorough`, the records the provider holds for the
    /// server are looked up first, so that any it should not have (left by a lost response, or drift) are
    /// corrected or deleted.
    fn publish<'a>(
        &'a self,
        records: &'a ServerRecords,
        known: &'a RecordIds,
        thorough: bool,
    ) -> BoxFuture<'a, Result<RecordIds, DnsError>>;
    /// Deletes every record of the server: `known` ones and any others it owns. What is already gone is fine.
    fn remove<'a>(&'a self, server_id: &'a str, known: &'a RecordIds) -> BoxFuture<'a, Result<(), DnsError>>;
    /// Every record in the zone carrying Spawnpoint's mark.
    fn owned(&self) -> BoxFuture<'_, Result<Vec<OwnedRecord>, DnsError>>;
    /// Deletes one record Spawnpoint owns. What is already gone is fine.
    fn delete<'a>(&'a self, record_id: &'a str) -> BoxFuture<'a, Result<(), DnsError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(ip: &str, srv: Option<&str>) -> ServerRecords {
        let hostname = "abc-mi-123456.play.example.com".to_owned();
        ServerRecords::new("abc-mi-123456", hostname, ip, 7012, srv.map(str::to_owned)).expect("an IP")
    }

    #[test]
    fn srv_games_are_reached_by_name_alone_others_by_name_and_port() {
        let java = records("203.0.113.7", Some("_minecraft._tcp"));
        assert_eq!(java.address(), "abc-mi-123456.play.example.com");
        let wanted = java.wanted();
        assert_eq!(wanted.len(), 2);
        assert_eq!(wanted[0].value, RecordValue::A("203.0.113.7".parse().expect("ip")));
        assert_eq!(wanted[1].name, "_minecraft._tcp.abc-mi-123456.play.example.com");
        assert_eq!(
            wanted[1].value,
            RecordValue::Srv { priority: 0, weight: 5, port: 7012, target: "abc-mi-123456.play.example.com".into() }
        );

        let valheim = records("2001:db8::7", None);
        assert_eq!(valheim.address(), "abc-mi-123456.play.example.com:7012");
        assert_eq!(valheim.wanted().iter().map(Record::slot).collect::<Vec<_>>(), [Slot::Host]);
        assert!(matches!(valheim.wanted()[0].value, RecordValue::Aaaa(_)));
    }

    #[test]
    fn a_host_name_cannot_be_published() {
        let refused = ServerRecords::new("s", "s.example.com".into(), "play.example.com", 1, None);
        assert!(refused.expect_err("not an IP").contains("play.example.com"));
    }

    #[test]
    fn names_compare_without_case() {
        let wanted = records("203.0.113.7", Some("_minecraft._tcp")).wanted();
        let mut shouting = wanted[1].clone();
        shouting.name = shouting.name.to_uppercase();
        assert!(wanted[1].same_as(&shouting));
        assert!(!wanted[0].same_as(&wanted[1]));
    }
}
