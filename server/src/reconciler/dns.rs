//! DNS upkeep: each pass keeps a server's records leading to where its game runs (a failure there never holds
//! the game up: its owner sees it and it is retried with backoff), and the resync compares the zone's records
//! that Spawnpoint owns with the rows, repairing drift and deleting records of servers that no longer exist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use catalog::{Notice, ServerId, ServerStatus};
use tokio::time::Instant;

use super::memory::doubled;
use super::{Action, Reconciler, Result};
use crate::dns::{OwnedRecord, RecordIds, ServerRecords};
use crate::servers::repo::ServerRow;

/// Retries of a failing publish never wait longer than this.
const MAX_DNS_DELAY: Duration = Duration::from_secs(10 * 60);

impl Reconciler {
    /// Keeps the server's DNS records leading to where its game runs (see [`ServerRow::dns_target`]). Reads the
    /// row afresh: the pass may have just recorded a new address.
    pub(super) async fn keep_dns(self: &Arc<Self>, id: &ServerId) -> Result<Action> {
        let Some(row) = self.repo.get(id).await? else { return Ok(Action::Await) };
        let Some(dns) = &self.dns else {
            // DNS was switched off since: an error about it is over.
            if row.dns_error.is_some() {
                self.repo.record_dns_error(id, None, None).await?;
            }
            return Ok(Action::Await);
        };
        let suspect = self.dns_memory.with(id, |memory| memory.suspect);
        let target = row.dns_target();
        if row.status == ServerStatus::Deleted || (target == row.dns_published() && !suspect) {
            // Where the records lead is where they should: a failure shown from before is over.
            if row.dns_error.is_some() && row.status != ServerStatus::Deleted {
                self.repo.record_dns_error(id, None, None).await?;
            }
            return Ok(Action::Await);
        }
        if let Some(at) = self.dns_memory.with(id, |memory| memory.not_before)
            && at > Instant::now()
        {
            return Ok(Action::RequeueAfter(at - Instant::now()));
        }
        let published = match target {
            Some((ip, port)) => match self.records(&row, ip, port) {
                Ok(records) => {
                    // Trusting stored ids saves a lookup; without any, or when in doubt, look first.
                    let thorough = suspect || row.dns_ids == RecordIds::default();
                    dns.publish(&records, &row.dns_ids, thorough).await.map(|ids| (Some(records), ids))
                }
                Err(reason) => Err(crate::dns::DnsError(reason)),
            },
            None => dns.remove(id.as_str(), &row.dns_ids).await.map(|()| (None, RecordIds::default())),
        };
        match published {
            Ok((records, ids)) => {
                self.dns_memory.forget(id);
                self.repo.record_dns(id, records.as_ref(), &ids).await?;
                Ok(Action::Await)
            }
            Err(error) => {
                let failures = self.dns_memory.with(id, |memory| {
                    memory.failures += 1;
                    memory.failures
                });
                let delay = doubled(self.backoff, failures as usize - 1, MAX_DNS_DELAY);
                self.dns_memory.with(id, |memory| memory.not_before = Some(Instant::now() + delay));
                tracing::warn!(server = %id, %error, failures, "DNS records not updated");
                let notice = Notice::DnsNotUpdated { retry_in_secs: delay.as_secs_f32().ceil() as u64 };
                self.repo.record_dns_error(id, Some(&notice), Some(&error.to_string())).await?;
                Ok(Action::RequeueAfter(delay))
            }
        }
    }

    /// Compares the owned records in the zone with what the rows say was published. Returns the servers whose
    /// records differ (marked for a thorough pass); deletes the records of servers without a row.
    pub(super) async fn compare_dns(&self, rows: &[ServerRow], owned: Vec<OwnedRecord>) -> Vec<ServerId> {
        let mut found: HashMap<String, Vec<OwnedRecord>> = HashMap::new();
        for record in owned {
            found.entry(record.server_id.clone()).or_default().push(record);
        }
        // Servers with records in the zone, to weigh the strays against.
        let servers = found.len();
        let mut suspects = Vec::new();
        for row in rows {
            let theirs = found.remove(row.id.as_str()).unwrap_or_default();
            // A deleted server's pass removes its records.
            if row.status == ServerStatus::Deleted {
                continue;
            }
            let ours = match row.dns_published() {
                Some((ip, port)) => self.records(row, ip, port).map(|records| records.wanted()).unwrap_or_default(),
                None => Vec::new(),
            };
            let matches = theirs.len() == ours.len()
                && ours.iter().all(|wanted| {
                    theirs.iter().any(|there| {
                        there.record.as_ref().is_some_and(|record| record.same_as(wanted))
                            && row.dns_ids.get(wanted.slot()) == Some(there.id.as_str())
                    })
                });
            if !matches {
                tracing::info!(server = %row.id, "DNS records differ from what was published; repairing");
                self.dns_memory.with(&row.id, |memory| memory.suspect = true);
                suspects.push(row.id.clone());
            }
        }
        let Some(dns) = &self.dns else { return suspects };
        if !self.may_collect("DNS records", found.len(), servers).await {
            return suspects;
        }
        for (server, records) in found {
            for record in records {
                tracing::info!(%server, record = %record.id, "deleting a DNS record of a server that no longer exists");
                if let Err(error) = dns.delete(&record.id).await {
                    tracing::warn!(%server, %error, "could not delete a stray DNS record; the next resync retries");
                }
            }
        }
        suspects
    }

    /// The DNS records server `row` has when its game is at `ip:port`.
    fn records(&self, row: &ServerRow, ip: &str, port: u16) -> std::result::Result<ServerRecords, String> {
        let dns = self.dns.as_ref().ok_or("no DNS provider")?;
        let srv_prefix = self.catalog.game(&row.game).and_then(catalog::Game::srv_prefix);
        ServerRecords::new(row.id.as_str(), dns.hostname(row.id.as_str()), ip, port, srv_prefix)
    }
}
