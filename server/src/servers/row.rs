//! A server's row, as the repository reads it, and what follows from it: the server as its owner sees it, where
//! its DNS records should lead, its billing state.

use catalog::billing::{Billed, SubscriptionStatus};
use catalog::gameserver::{GameServer, InstallProgress, address};
use catalog::variables::Values;
use catalog::{ServerId, ServerStatus, UserId};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::billing::Open;
use crate::dns::RecordIds;

pub type Result<T, E = sqlx::Error> = std::result::Result<T, E>;

/// A server's row: what should be, and what was last recorded about it.
#[derive(Debug, Clone)]
pub struct ServerRow {
    pub id: ServerId,
    pub user_id: UserId,
    pub name: String,
    pub game: String,
    pub plan: String,
    pub status: ServerStatus,
    /// One of Spawnpoint's [`Notice`]s, as its owner reads it.
    pub status_message: Option<String>,
    /// The outside system's words behind the message, for administrators.
    pub status_detail: Option<String>,
    /// Where players reach it, as last recorded.
    pub node_ip: Option<String>,
    pub port: Option<u16>,
    /// Bumped by every user start or restart: a game server of an older generation is replaced.
    pub generation: i64,
    /// Where its published DNS records lead, if it has any, and what players type for them.
    pub dns_ip: Option<String>,
    pub dns_port: Option<u16>,
    pub dns_address: Option<String>,
    pub dns_ids: RecordIds,
    /// Why its DNS records could not be updated, while that lasts, and the provider's words for administrators.
    pub dns_error: Option<String>,
    pub dns_detail: Option<String>,
    /// When an unpaid or expired server is due for deletion (Unix seconds).
    pub delete_after: Option<i64>,
    /// Its Stripe subscription, once paid for, and that subscription's status.
    pub subscription: Option<String>,
    pub subscription_status: Option<SubscriptionStatus>,
    /// The Checkout Session of its first payment, and where to pay it.
    pub checkout_session: Option<String>,
    pub checkout_url: Option<String>,
    /// When the paid period ends (Unix seconds).
    pub current_period_end: Option<i64>,
    /// Whatever it had at the payment provider has been ended.
    pub billing_settled: bool,
    /// When the newest payment event applied to it was created (Unix seconds).
    pub billing_event_at: Option<i64>,
    /// What the subscription's price is for (`<product>/<plan>`) when that is not this server's plan: the server
    /// then counts as unpaid.
    pub price_mismatch: Option<String>,
    /// Its startup variables (every variable of its game).
    pub variables: Values,
    /// Whether its owner accepted the game's licence at create.
    pub eula_accepted: bool,
    /// Bumped by every reinstall: the game's files are installed again when it changes.
    pub install_generation: i64,
    /// The install step running now and its progress, while installing.
    pub install: Option<InstallProgress>,
    pub created_at: i64,
    pub version: i64,
}

impl ServerRow {
    pub(super) fn read(row: &AnyRow) -> Result<Self> {
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: ServerId::new(row.try_get::<String, _>("id")?),
            user_id: UserId::new(row.try_get::<String, _>("user_id")?),
            name: row.try_get("name")?,
            game: row.try_get("game")?,
            plan: row.try_get("plan")?,
            status: status.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            status_message: row.try_get("status_message")?,
            status_detail: row.try_get("status_detail")?,
            node_ip: row.try_get("node_ip")?,
            port: read_port(row, "port")?,
            generation: row.try_get("generation")?,
            dns_ip: row.try_get("dns_ip")?,
            dns_port: read_port(row, "dns_port")?,
            dns_address: row.try_get("dns_address")?,
            dns_ids: RecordIds { host: row.try_get("dns_host_record")?, srv: row.try_get("dns_srv_record")? },
            dns_error: row.try_get("dns_error")?,
            dns_detail: row.try_get("dns_detail")?,
            delete_after: row.try_get("delete_after")?,
            price_mismatch: row.try_get("price_mismatch")?,
            variables: serde_json::from_str(&row.try_get::<String, _>("variables")?)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            eula_accepted: row.try_get::<Option<i64>, _>("eula_accepted")?.is_some(),
            install_generation: row.try_get("install_generation")?,
            install: row.try_get::<Option<String>, _>("install_step")?.map(|step| InstallProgress {
                step,
                done_bytes: row.try_get::<Option<i64>, _>("install_done").ok().flatten().unwrap_or(0).max(0) as u64,
                total_bytes: row.try_get::<Option<i64>, _>("install_total").ok().flatten().map(|t| t.max(0) as u64),
            }),
            subscription: row.try_get("stripe_subscription_id")?,
            subscription_status: row.try_get::<Option<String>, _>("subscription_status")?.map(SubscriptionStatus::from),
            checkout_session: row.try_get("checkout_session_id")?,
            checkout_url: row.try_get("checkout_url")?,
            current_period_end: row.try_get("current_period_end")?,
            billing_settled: row.try_get::<Option<i64>, _>("subscription_ended_at")?.is_some(),
            billing_event_at: row.try_get("billing_event_at")?,
            created_at: row.try_get("created_at")?,
            version: row.try_get("version")?,
        })
    }

    /// The server as its owner sees it; with `detail` (an administrator) also the detail behind its message.
    pub fn view(&self, detail: bool) -> GameServer {
        // An address only means something while the game is up; its DNS name only while the records lead there.
        let address = match (self.status, &self.node_ip, self.port) {
            (ServerStatus::Running, Some(host), Some(port)) => match &self.dns_address {
                Some(name) if self.dns_published() == Some((host.as_str(), port)) => Some(name.clone()),
                _ => Some(address(host, port)),
            },
            _ => None,
        };
        GameServer {
            id: self.id.clone(),
            name: self.name.clone(),
            game: self.game.clone(),
            plan: self.plan.clone(),
            status: self.status,
            status_message: self.status_message.clone().or_else(|| self.dns_error.clone()),
            status_detail: self.status_detail.clone().or_else(|| self.dns_detail.clone()).filter(|_| detail),
            address,
            user_id: self.user_id.clone(),
            created_at: self.created_at,
            checkout_url: self.checkout_url(),
            install: self.install.clone().filter(|_| self.status == ServerStatus::Installing),
            version: self.version,
        }
    }

    /// Where to pay for the server: only while there is something to pay.
    pub fn checkout_url(&self) -> Option<String> {
        self.checkout_url.clone().filter(|_| self.status == ServerStatus::AwaitingPayment)
    }

    /// Where its DNS records should lead: where it runs, while it runs; otherwise where they lead now (a
    /// stopped or expired server keeps its name).
    pub fn dns_target(&self) -> Option<(&str, u16)> {
        match (self.status, self.node_ip.as_deref(), self.port) {
            (ServerStatus::Running, Some(ip), Some(port)) => Some((ip, port)),
            _ => self.dns_published(),
        }
    }

    /// Where its published DNS records lead.
    pub fn dns_published(&self) -> Option<(&str, u16)> {
        self.dns_ip.as_deref().zip(self.dns_port)
    }

    /// Its state and deadline, as the billing rules judge them.
    pub fn billed(&self) -> Billed {
        Billed { status: self.status, delete_after: self.delete_after }
    }

    /// What it still has at the payment provider, unless that was already ended.
    pub fn open_at_provider(&self) -> Option<Open> {
        let has = self.subscription.is_some() || self.checkout_session.is_some();
        (has && !self.billing_settled).then(|| Open {
            server: self.id.clone(),
            subscription: self.subscription.clone(),
            checkout_session: self.checkout_session.clone(),
        })
    }
}

fn read_port(row: &AnyRow, column: &str) -> Result<Option<u16>> {
    let port: Option<i64> = row.try_get(column)?;
    Ok(port.and_then(|port| u16::try_from(port).ok()))
}
