//! Configuration: one [`Settings`] struct, nested by subsystem, read from an optional TOML file
//! (`--config` / `SPAWNPOINT_CONFIG`) with environment variables overriding it, and defaults that start the
//! single-box mode (127.0.0.1:3000, SQLite in `./data`, the built-in catalog).
//!
//! Every setting has one environment variable and one key in the file ([`KEYS`]); a bad value is refused
//! naming the one it came from. [`Tuning`] holds what only tests change, apart from the operator's settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use catalog::Catalog;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::hosts::{AllowedHosts, url_host};
use crate::auth::proxy::TrustedProxies;
use crate::backups::store::BackupTarget;
use crate::billing::stripe::StripeConfig;
use crate::clock::Clock;
use crate::console::ConsoleLimits;
use crate::dns::cloudflare::CloudflareConfig;
use crate::orchestrator::agones::AgonesConfig;
use crate::orchestrator::local::LocalConfig;
use crate::orchestrator::local::install::Sources;
use crate::reconciler::ReconcilerConfig;

/// Each setting's environment variable and its key in the configuration file.
pub const KEYS: &[(&str, &str)] = &[
    ("SPAWNPOINT_ADDR", "http.addr"),
    ("SPAWNPOINT_PUBLIC_URL", "http.public_url"),
    ("SPAWNPOINT_SITE_ROOT", "http.site_root"),
    ("SPAWNPOINT_TRUSTED_PROXIES", "http.trusted_proxies"),
    ("SPAWNPOINT_ALLOWED_HOSTS", "http.allowed_hosts"),
    ("SPAWNPOINT_DATA_DIR", "data_dir"),
    ("DATABASE_URL", "database.url"),
    ("SPAWNPOINT_CATALOG", "catalog"),
    ("SPAWNPOINT_JWT_SECRET", "accounts.jwt_secret"),
    ("SPAWNPOINT_SESSION_TTL", "accounts.session_ttl"),
    ("SPAWNPOINT_MAX_SERVERS", "accounts.max_servers"),
    ("SPAWNPOINT_DRIVER", "driver"),
    ("SPAWNPOINT_GAME_HOST", "local.game_host"),
    ("SPAWNPOINT_GAME_PORTS", "local.game_ports"),
    ("SPAWNPOINT_STOP_GRACE", "local.stop_grace"),
    ("SPAWNPOINT_GAME_USER", "local.game_user"),
    ("SPAWNPOINT_KEEP_GAMES", "local.keep_games"),
    ("SPAWNPOINT_PAPER_API", "local.paper_api"),
    ("SPAWNPOINT_MOJANG_MANIFEST", "local.mojang_manifest"),
    ("SPAWNPOINT_STEAMCMD", "local.steamcmd"),
    ("SPAWNPOINT_BACKUPS", "backups.store"),
    ("AWS_ENDPOINT_URL", "backups.aws_endpoint_url"),
    ("AWS_REGION", "backups.aws_region"),
    ("AWS_ACCESS_KEY_ID", "backups.aws_access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "backups.aws_secret_access_key"),
    ("AWS_ALLOW_HTTP", "backups.aws_allow_http"),
    ("SPAWNPOINT_SFTP_ADDR", "sftp.addr"),
    ("SPAWNPOINT_SFTP_HOST_KEY", "sftp.host_key"),
    ("SPAWNPOINT_NAMESPACE", "agones.namespace"),
    ("SPAWNPOINT_PUBLIC_IP_LABEL", "agones.public_ip_label"),
    ("SPAWNPOINT_KUBE_API", "agones.kube_api"),
    ("SPAWNPOINT_RESYNC_INTERVAL", "reconciler.resync_interval"),
    ("SPAWNPOINT_START_TIMEOUT", "reconciler.start_timeout"),
    ("SPAWNPOINT_DNS", "dns.provider"),
    ("SPAWNPOINT_DNS_REPAIR_INTERVAL", "dns.repair_interval"),
    ("DNS_BASE_DOMAIN", "dns.base_domain"),
    ("CLOUDFLARE_API_TOKEN", "dns.cloudflare.api_token"),
    ("CLOUDFLARE_ZONE_ID", "dns.cloudflare.zone_id"),
    ("CLOUDFLARE_API_BASE", "dns.cloudflare.api_base"),
    ("SPAWNPOINT_BILLING", "billing.provider"),
    ("STRIPE_SECRET_KEY", "billing.stripe.secret_key"),
    ("STRIPE_WEBHOOK_SECRET", "billing.stripe.webhook_secret"),
    ("STRIPE_API_BASE", "billing.stripe.api_base"),
];

/// Everything the binary can be told. Secrets are [`SecretString`]s so `{:?}` never prints them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    /// `SPAWNPOINT_DATA_DIR`: SQLite database, game server data and the session secret on the single box.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`; defaults to `sqlite://<data dir>/spawnpoint.db`.
    /// Secret because a PostgreSQL URL carries the password.
    pub database_url: SecretString,
    /// `SPAWNPOINT_CATALOG`: a catalog YAML file replacing the built-in one (on a cluster, the ConfigMap).
    pub catalog_path: Option<PathBuf>,
    pub accounts: AccountSettings,
    /// `SPAWNPOINT_DRIVER`: `local` (game servers as processes on this machine, the default) or `agones`.
    pub driver: Driver,
    /// The `local` driver's settings.
    pub local: LocalConfig,
    /// The `agones` driver's settings.
    pub agones: AgonesConfig,
    pub reconciler: ReconcilerConfig,
    /// `SPAWNPOINT_DNS`: `none` (players get `ip:port`, the default) or `cloudflare` (a name per server).
    pub dns: DnsProvider,
    /// `SPAWNPOINT_BILLING`: `none` (servers are free within the quota, the default) or `stripe` (a monthly
    /// subscription per server; needs `SPAWNPOINT_PUBLIC_URL` for Stripe to send customers back to).
    pub billing: BillingMode,
    /// `SPAWNPOINT_BACKUPS`: `file:///path` (default `<data dir>/backups`) or `s3://bucket/prefix` with
    /// `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`.
    pub backups: BackupTarget,
    pub sftp: SftpSettings,
    /// What only tests change.
    pub tuning: Tuning,
}

/// The HTTP server and how browsers reach it.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `SPAWNPOINT_ADDR`: where the HTTP server listens.
    pub addr: SocketAddr,
    /// `SPAWNPOINT_PUBLIC_URL`: where browsers reach the app, e.g. `https://panel.example.com`. It is the
    /// origin that state-changing browser requests must come from, and `https` makes the cookie `Secure`.
    /// Unset: the origin is the request's own `Host` (right for the single box on loopback).
    pub public_url: Option<String>,
    /// `SPAWNPOINT_SITE_ROOT`: the built site (WASM, JS, CSS) that cargo-leptos writes.
    pub site_root: PathBuf,
    /// `SPAWNPOINT_TRUSTED_PROXIES`: addresses and networks of reverse proxies whose client-address headers
    /// (`CF-Connecting-IP`, `X-Forwarded-For`) are believed, for per-client rate limits (default: none).
    pub trusted_proxies: TrustedProxies,
    /// `SPAWNPOINT_ALLOWED_HOSTS`: host names besides loopback and the public URL's host that requests may
    /// name in `Host` (comma-separated); any other gets 421, which stops DNS rebinding.
    pub allowed_hosts: AllowedHosts,
}

/// The SFTP endpoint.
#[derive(Debug, Clone)]
pub struct SftpSettings {
    /// `SPAWNPOINT_SFTP_ADDR`: where SFTP listens (default `127.0.0.1:2022`, Pterodactyl's port); `off` for no
    /// SFTP.
    pub addr: Option<SocketAddr>,
    /// `SPAWNPOINT_SFTP_HOST_KEY`: the server's host key, an OpenSSH private key file. Unset: an ed25519 key is
    /// generated once into `<data dir>/sftp-host-key` (on a cluster, give every replica the same key).
    pub host_key: Option<PathBuf>,
}

/// Accounts and sessions.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// `SPAWNPOINT_JWT_SECRET`: signs session tokens. Unset: generated once into `<data dir>/jwt-secret`.
    pub jwt_secret: Option<SecretString>,
    /// `SPAWNPOINT_SESSION_TTL`: how long a sign-in lasts, in seconds (default 7 days).
    pub session_ttl: Duration,
    /// `SPAWNPOINT_MAX_SERVERS`: how many servers a customer may have (default 3; administrators unlimited).
    pub max_servers_per_customer: u32,
}

/// What tests change and operators never need to: read from no variable and no file.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The first wait before restarting a crashed game or retrying a failed one; it doubles with each failure.
    pub restart_backoff: Duration,
    /// How long one Kubernetes API request may take (default 10 s).
    pub kube_request_timeout: Duration,
    /// The live console's throttle and per-viewer buffer.
    pub console: ConsoleLimits,
    /// The time billing deadlines are judged by (tests move it forward).
    pub clock: Clock,
    /// While set, a Stripe webhook handler dies between recording an event and applying it, as a crash would.
    pub crash_after_claim: Arc<AtomicBool>,
    /// Password hashes computed at once (default two per core), and sign-ins per second for the whole process
    /// (default [`crate::auth::limit::GLOBAL_PER_SECOND`]); the sign-in benchmark compares others.
    pub password_hashes: usize,
    pub sign_ins_per_second: std::num::NonZeroU32,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            restart_backoff: Duration::from_secs(2),
            kube_request_timeout: Duration::from_secs(10),
            console: ConsoleLimits::default(),
            clock: Clock::default(),
            crash_after_claim: Arc::default(),
            password_hashes: crate::auth::password::Hashing::default_permits(),
            sign_ins_per_second: crate::auth::limit::GLOBAL_PER_SECOND,
        }
    }
}

/// Whether and how servers are paid for.
#[derive(Debug, Clone)]
pub enum BillingMode {
    None,
    /// With `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET` and `STRIPE_API_BASE` (default `https://api.stripe.com`).
    Stripe(StripeConfig),
}

/// Where game servers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Local,
    Agones,
}

/// Who publishes servers' DNS names.
#[derive(Debug, Clone)]
pub enum DnsProvider {
    None,
    /// With `CLOUDFLARE_API_TOKEN`, `CLOUDFLARE_ZONE_ID`, `DNS_BASE_DOMAIN` and `CLOUDFLARE_API_BASE` (default
    /// `https://api.cloudflare.com/client/v4`).
    Cloudflare(CloudflareConfig),
}

/// A setting that could not be used, named by where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("`{key}` in {file} is not valid: {reason}")]
    InvalidInFile { key: &'static str, file: PathBuf, reason: String },
    #[error("{file}: {reason}")]
    File { file: PathBuf, reason: String },
    #[error("could not read the catalog {path}: {source}")]
    CatalogFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the catalog {path} was refused: {source}")]
    Catalog {
        path: PathBuf,
        #[source]
        source: catalog::CatalogError,
    },
}

/// A configuration file, flattened to its keys' values as text (`http.addr` → `127.0.0.1:3000`).
#[derive(Debug, Default)]
pub struct ConfigFile {
    path: PathBuf,
    values: BTreeMap<&'static str, String>,
}

impl ConfigFile {
    /// Reads and checks a TOML file: every key must be one of [`KEYS`], every value a string, number, boolean
    /// or list of strings (a list is joined with commas, like the environment variable's value).
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let file = |reason: String| ConfigError::File { file: path.to_owned(), reason };
        let text = std::fs::read_to_string(path).map_err(|error| file(format!("cannot be read: {error}")))?;
        Self::parse(path, &text).map_err(file)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, String> {
        let table: toml::Table = text.parse().map_err(|error| format!("is not valid TOML: {error}"))?;
        let mut found = BTreeMap::new();
        flatten("", &toml::Value::Table(table), &mut found)?;
        let mut values = BTreeMap::new();
        for (key, value) in found {
            let known = KEYS.iter().find(|(_, known)| *known == key).map(|(_, known)| *known);
            let known = known.ok_or_else(|| format!("`{key}` is not a setting (see the README's Configuration)"))?;
            values.insert(known, value);
        }
        Ok(Self { path: path.to_owned(), values })
    }

    fn get(&self, name: &str) -> Option<String> {
        let key = key_of(name)?;
        self.values.get(key).cloned()
    }
}

/// The file key of environment variable `name`.
fn key_of(name: &str) -> Option<&'static str> {
    KEYS.iter().find(|(env, _)| *env == name).map(|(_, key)| *key)
}

fn flatten(prefix: &str, value: &toml::Value, into: &mut BTreeMap<String, String>) -> Result<(), String> {
    let text = match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, value, into)?;
            }
            return Ok(());
        }
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| format!("`{prefix}` must list strings")))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        _ => return Err(format!("`{prefix}` must be a string, a number, a boolean or a list of strings")),
    };
    into.insert(prefix.to_owned(), text);
    Ok(())
}

impl Settings {
    /// Reads the process environment over the configuration file `file`, if one is given.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let file = file.map(ConfigFile::read).transpose()?.unwrap_or_default();
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Self::from_sources(env, &file)
    }

    /// Settings from `env` (the variables) over `file`: a variable wins over the file's key; a bad value is
    /// refused naming the variable or, when it came from the file, the file's key.
    pub fn from_sources(env: impl Fn(&str) -> Option<String>, file: &ConfigFile) -> Result<Self, ConfigError> {
        let from_env = |name: &str| env(name).is_some();
        Self::from_lookup(|name| env(name).or_else(|| file.get(name))).map_err(|error| match error {
            ConfigError::Invalid { name, reason } if !from_env(name) && file.get(name).is_some() => {
                match key_of(name) {
                    Some(key) => ConfigError::InvalidInFile { key, file: file.path.clone(), reason },
                    None => ConfigError::Invalid { name, reason },
                }
            }
            other => other,
        })
    }

    /// Reads settings through `lookup`, so tests can configure without touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let addr = match lookup("SPAWNPOINT_ADDR") {
            Some(text) => text
                .parse()
                .map_err(|e| ConfigError::Invalid { name: "SPAWNPOINT_ADDR", reason: format!("`{text}`: {e}") })?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let data_dir = PathBuf::from(lookup("SPAWNPOINT_DATA_DIR").unwrap_or_else(|| "data".into()));
        let database_url = match lookup("DATABASE_URL") {
            Some(url)
                if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                url
            }
            // Only the scheme is echoed: the rest may hold a password.
            Some(url) => {
                let scheme = url.split(':').next().unwrap_or_default();
                return Err(ConfigError::Invalid {
                    name: "DATABASE_URL",
                    reason: format!("scheme `{scheme}` is not supported (use sqlite: or postgres://)"),
                });
            }
            None => format!("sqlite://{}/spawnpoint.db", data_dir.display()),
        };
        let public_url = lookup("SPAWNPOINT_PUBLIC_URL").map(|url| url.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                name: "SPAWNPOINT_PUBLIC_URL",
                reason: format!("`{url}` must start with http:// or https://"),
            });
        }
        let jwt_secret = match lookup("SPAWNPOINT_JWT_SECRET") {
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError::Invalid {
                    name: "SPAWNPOINT_JWT_SECRET",
                    reason: "must be at least 32 characters".into(),
                });
            }
            secret => secret.map(SecretString::from),
        };
        let seconds = |name: &'static str, default: u64| match lookup(name) {
            Some(text) => text.parse::<u64>().ok().filter(|&secs| secs > 0).map(Duration::from_secs).ok_or_else(|| {
                ConfigError::Invalid { name, reason: format!("`{text}` is not a positive number of seconds") }
            }),
            None => Ok(Duration::from_secs(default)),
        };
        let session_ttl = seconds("SPAWNPOINT_SESSION_TTL", 7 * 24 * 60 * 60)?;
        let resync_interval = seconds("SPAWNPOINT_RESYNC_INTERVAL", 30)?;
        let stop_grace = seconds("SPAWNPOINT_STOP_GRACE", 10)?;
        let keep_games = match lookup("SPAWNPOINT_KEEP_GAMES").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "SPAWNPOINT_KEEP_GAMES",
                    reason: format!("`{other}` is neither true nor false"),
                });
            }
        };
        let backups = match lookup("SPAWNPOINT_BACKUPS") {
            None => BackupTarget::DataDir,
            Some(text) => BackupTarget::parse(&text, &lookup)
                .map_err(|reason| ConfigError::Invalid { name: "SPAWNPOINT_BACKUPS", reason })?,
        };
        let sftp_addr = match lookup("SPAWNPOINT_SFTP_ADDR").as_deref() {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 2022))),
            Some("off") => None,
            Some(text) => Some(text.parse().map_err(|e| ConfigError::Invalid {
                name: "SPAWNPOINT_SFTP_ADDR",
                reason: format!("`{text}`: {e} (an address like 0.0.0.0:2022, or off)"),
            })?),
        };
        let default_sources = Sources::default();
        let start_timeout = seconds("SPAWNPOINT_START_TIMEOUT", 900)?;
        let dns_repair_interval = seconds("SPAWNPOINT_DNS_REPAIR_INTERVAL", 300)?;
        let trusted_proxies = TrustedProxies::parse(&lookup("SPAWNPOINT_TRUSTED_PROXIES").unwrap_or_default())
            .map_err(|reason| ConfigError::Invalid { name: "SPAWNPOINT_TRUSTED_PROXIES", reason })?;
        let allowed_hosts =
            AllowedHosts::new(public_url.as_deref(), &lookup("SPAWNPOINT_ALLOWED_HOSTS").unwrap_or_default())
                .map_err(|reason| ConfigError::Invalid { name: "SPAWNPOINT_ALLOWED_HOSTS", reason })?;
        let game_ports = match lookup("SPAWNPOINT_GAME_PORTS") {
            Some(text) => parse_port_range(&text).ok_or_else(|| ConfigError::Invalid {
                name: "SPAWNPOINT_GAME_PORTS",
                reason: format!("`{text}` is not a port range like 25000-29999"),
            })?,
            None => 25000..=29999,
        };
        let driver = match lookup("SPAWNPOINT_DRIVER").as_deref() {
            None | Some("local") => Driver::Local,
            Some("agones") => Driver::Agones,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "SPAWNPOINT_DRIVER",
                    reason: format!("`{other}` is not a driver (use local or agones)"),
                });
            }
        };
        let dns = dns_provider(&lookup)?;
        let billing = billing_mode(&lookup, public_url.is_some())?;
        let game_host = lookup("SPAWNPOINT_GAME_HOST")
            .or_else(|| public_url.as_deref().and_then(url_host))
            .unwrap_or_else(|| "127.0.0.1".into());
        let max_servers_per_customer = match lookup("SPAWNPOINT_MAX_SERVERS") {
            Some(text) => text.parse().map_err(|_| ConfigError::Invalid {
                name: "SPAWNPOINT_MAX_SERVERS",
                reason: format!("`{text}` is not a whole number"),
            })?,
            None => 3,
        };
        Ok(Self {
            http: HttpSettings {
                addr,
                public_url,
                site_root: PathBuf::from(lookup("SPAWNPOINT_SITE_ROOT").unwrap_or_else(|| "target/site".into())),
                trusted_proxies,
                allowed_hosts,
            },
            database_url: SecretString::from(database_url),
            catalog_path: lookup("SPAWNPOINT_CATALOG").map(PathBuf::from),
            accounts: AccountSettings { jwt_secret, session_ttl, max_servers_per_customer },
            driver,
            local: LocalConfig {
                host: game_host,
                ports: game_ports,
                stop_grace,
                game_user: lookup("SPAWNPOINT_GAME_USER").unwrap_or_else(|| "spawnpoint-game".into()),
                keep_games,
                sources: Sources {
                    paper_api: lookup("SPAWNPOINT_PAPER_API").unwrap_or(default_sources.paper_api),
                    mojang_manifest: lookup("SPAWNPOINT_MOJANG_MANIFEST").unwrap_or(default_sources.mojang_manifest),
                    steamcmd: lookup("SPAWNPOINT_STEAMCMD").unwrap_or(default_sources.steamcmd),
                },
            },
            agones: AgonesConfig {
                namespace: lookup("SPAWNPOINT_NAMESPACE").unwrap_or_else(|| "gameservers".into()),
                public_ip_label: lookup("SPAWNPOINT_PUBLIC_IP_LABEL").unwrap_or_else(|| "platform.io/public-ip".into()),
                kube_api: lookup("SPAWNPOINT_KUBE_API"),
            },
            reconciler: ReconcilerConfig { resync_interval, start_timeout, dns_repair_interval },
            dns,
            billing,
            tuning: Tuning::default(),
            backups,
            sftp: SftpSettings { addr: sftp_addr, host_key: lookup("SPAWNPOINT_SFTP_HOST_KEY").map(PathBuf::from) },
            data_dir,
        })
    }

    /// The configured catalog: the file named by `SPAWNPOINT_CATALOG`, else the built-in one.
    pub fn load_catalog(&self) -> Result<Catalog, ConfigError> {
        let Some(path) = &self.catalog_path else {
            return Ok(Catalog::builtin());
        };
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::CatalogFile { path: path.clone(), source })?;
        Catalog::from_yaml(&text).map_err(|source| ConfigError::Catalog { path: path.clone(), source })
    }

    /// `sqlite` or `postgres`, for log lines that must not print the URL itself.
    pub fn database_kind(&self) -> &'static str {
        if self.database_url.expose_secret().starts_with("sqlite:") { "sqlite" } else { "postgres" }
    }
}

/// `SPAWNPOINT_DNS` and what its provider needs, each checked and named when missing or wrong.
fn dns_provider(lookup: &impl Fn(&str) -> Option<String>) -> Result<DnsProvider, ConfigError> {
    match lookup("SPAWNPOINT_DNS").as_deref() {
        None | Some("none") => Ok(DnsProvider::None),
        Some("cloudflare") => {
            let required = |name| required(lookup, name, "SPAWNPOINT_DNS=cloudflare");
            let token = SecretString::from(required("CLOUDFLARE_API_TOKEN")?);
            let zone_id = required("CLOUDFLARE_ZONE_ID")?;
            if !zone_id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ConfigError::Invalid {
                    name: "CLOUDFLARE_ZONE_ID",
                    reason: format!("`{zone_id}` is not a zone id (letters and digits, from the zone's overview)"),
                });
            }
            let base_domain = required("DNS_BASE_DOMAIN")?;
            if !is_domain(base_domain.trim_end_matches('.')) {
                return Err(ConfigError::Invalid {
                    name: "DNS_BASE_DOMAIN",
                    reason: format!("`{base_domain}` is not a domain name like play.example.com"),
                });
            }
            let api_base = api_base(lookup, "CLOUDFLARE_API_BASE", "https://api.cloudflare.com/client/v4")?;
            Ok(DnsProvider::Cloudflare(CloudflareConfig::new(api_base, token, zone_id, base_domain)))
        }
        Some(other) => Err(ConfigError::Invalid {
            name: "SPAWNPOINT_DNS",
            reason: format!("`{other}` is not a DNS provider (use none or cloudflare)"),
        }),
    }
}

/// `SPAWNPOINT_BILLING` and Stripe's keys, each checked and named when missing or wrong.
fn billing_mode(lookup: &impl Fn(&str) -> Option<String>, has_public_url: bool) -> Result<BillingMode, ConfigError> {
    match lookup("SPAWNPOINT_BILLING").as_deref() {
        None | Some("none") => Ok(BillingMode::None),
        Some("stripe") => {
            let required = |name| required(lookup, name, "SPAWNPOINT_BILLING=stripe");
            if !has_public_url {
                return Err(ConfigError::Invalid {
                    name: "SPAWNPOINT_PUBLIC_URL",
                    reason: "is required with SPAWNPOINT_BILLING=stripe (Stripe sends customers back there)".into(),
                });
            }
            let secret_key = SecretString::from(required("STRIPE_SECRET_KEY")?);
            let webhook_secret = SecretString::from(required("STRIPE_WEBHOOK_SECRET")?);
            let api_base = api_base(lookup, "STRIPE_API_BASE", "https://api.stripe.com")?;
            Ok(BillingMode::Stripe(StripeConfig { secret_key, webhook_secret, api_base }))
        }
        Some(other) => Err(ConfigError::Invalid {
            name: "SPAWNPOINT_BILLING",
            reason: format!("`{other}` is not a billing mode (use none or stripe)"),
        }),
    }
}

/// Setting `name`, which `mode` (e.g. `SPAWNPOINT_DNS=cloudflare`) cannot do without.
fn required(lookup: &impl Fn(&str) -> Option<String>, name: &'static str, mode: &str) -> Result<String, ConfigError> {
    lookup(name).ok_or_else(|| ConfigError::Invalid { name, reason: format!("is required with {mode}") })
}

/// An outside API's base URL from setting `name` (tests point it at a fake), else `default`.
fn api_base(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let base = lookup(name).unwrap_or_else(|| default.into());
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(ConfigError::Invalid { name, reason: format!("`{base}` must start with https:// (or http://)") });
    }
    Ok(base)
}

/// A domain names can be made under: dot-separated labels of letters, digits and inner hyphens, with room left
/// for a server id label in front (253 characters in all).
fn is_domain(name: &str) -> bool {
    let label = |label: &str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    name.contains('.') && name.len() <= 200 && name.split('.').all(label)
}

/// `first-last`, both ports, first ≤ last.
fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let (first, last) = text.split_once('-')?;
    let (first, last) = (first.trim().parse::<u16>().ok()?, last.trim().parse::<u16>().ok()?);
    (first > 0 && first <= last).then_some(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn no_configuration_means_single_box_defaults() {
        let settings = settings(&[]).expect("defaults");
        assert_eq!(settings.http.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(settings.data_dir, PathBuf::from("data"));
        assert_eq!(settings.database_url.expose_secret(), "sqlite://data/spawnpoint.db");
        assert_eq!(settings.database_kind(), "sqlite");
        assert_eq!(settings.http.site_root, PathBuf::from("target/site"));
        assert_eq!(settings.load_catalog().expect("built in").games().len(), 6);
        assert_eq!(settings.http.public_url, None);
        assert!(settings.accounts.jwt_secret.is_none());
        assert_eq!(settings.accounts.session_ttl, Duration::from_secs(604_800));
        assert_eq!(settings.accounts.max_servers_per_customer, 3);
        assert!(super::Settings::from_lookup(|n| (n == "SPAWNPOINT_MAX_SERVERS").then(|| "many".into())).is_err());
        assert_eq!(settings.local.host, "127.0.0.1");
        assert_eq!(settings.local.ports, 25000..=29999);
        assert_eq!(settings.reconciler.resync_interval, Duration::from_secs(30));
        assert_eq!(settings.local.stop_grace, Duration::from_secs(10));
        assert_eq!(settings.reconciler.start_timeout, Duration::from_secs(900));
        assert_eq!(settings.reconciler.dns_repair_interval, Duration::from_secs(300));
        assert_eq!(settings.http.trusted_proxies, TrustedProxies::default(), "no proxy is trusted unless named");
        let bad = super::Settings::from_lookup(|n| (n == "SPAWNPOINT_TRUSTED_PROXIES").then(|| "10.0.0.0/40".into()));
        assert!(bad.expect_err("refused").to_string().contains("SPAWNPOINT_TRUSTED_PROXIES"));
    }

    #[test]
    fn game_server_settings_are_checked() {
        let ok = settings(&[
            ("SPAWNPOINT_GAME_PORTS", "30000 - 30010"),
            ("SPAWNPOINT_RESYNC_INTERVAL", "5"),
            ("SPAWNPOINT_PUBLIC_URL", "https://panel.example.com:8443/app"),
        ])
        .expect("valid");
        assert_eq!(ok.local.ports, 30000..=30010);
        assert_eq!(ok.reconciler.resync_interval, Duration::from_secs(5));
        assert_eq!(ok.local.host, "panel.example.com", "players reach the box where browsers do");
        let explicit =
            settings(&[("SPAWNPOINT_GAME_HOST", "203.0.113.7"), ("SPAWNPOINT_PUBLIC_URL", "http://[::1]:3000")]);
        assert_eq!(explicit.expect("valid").local.host, "203.0.113.7");
        assert_eq!(settings(&[("SPAWNPOINT_PUBLIC_URL", "http://[::1]:3000")]).expect("valid").local.host, "::1");
        for bad in ["30010-30000", "0-10", "25000", "a-b", "25000-70000"] {
            let error = settings(&[("SPAWNPOINT_GAME_PORTS", bad)]).expect_err(bad);
            assert!(error.to_string().starts_with("SPAWNPOINT_GAME_PORTS"), "{error}");
        }
        assert_eq!(settings(&[]).expect("defaults").driver, Driver::Local);
        assert_eq!(settings(&[("SPAWNPOINT_DRIVER", "agones")]).expect("valid").driver, Driver::Agones);
        let error = settings(&[("SPAWNPOINT_DRIVER", "docker")]).expect_err("unknown");
        assert!(error.to_string().starts_with("SPAWNPOINT_DRIVER"), "{error}");
        let error = settings(&[("SPAWNPOINT_STOP_GRACE", "0")]).expect_err("zero");
        assert!(error.to_string().starts_with("SPAWNPOINT_STOP_GRACE"), "{error}");
    }

    #[test]
    fn account_settings_are_checked() {
        let short = settings(&[("SPAWNPOINT_JWT_SECRET", "too-short")]).expect_err("short secret");
        assert!(short.to_string().starts_with("SPAWNPOINT_JWT_SECRET") && !short.to_string().contains("too-short"));
        assert!(settings(&[("SPAWNPOINT_PUBLIC_URL", "panel.example.com")]).is_err());
        assert!(settings(&[("SPAWNPOINT_SESSION_TTL", "soon")]).is_err());
        let ok = settings(&[("SPAWNPOINT_PUBLIC_URL", "https://panel.example.com/"), ("SPAWNPOINT_SESSION_TTL", "60")])
            .expect("valid");
        assert_eq!(ok.http.public_url.as_deref(), Some("https://panel.example.com"));
        assert_eq!(ok.accounts.session_ttl, Duration::from_secs(60));
    }

    /// Leaving out any setting of `valid` but the first (the mode) is refused, naming it.
    fn each_is_required(valid: &[(&str, &str)]) {
        for (missing, _) in &valid[1..] {
            let without: Vec<(&str, &str)> = valid.iter().copied().filter(|(k, _)| k != missing).collect();
            let error = settings(&without).expect_err(missing);
            assert!(error.to_string().starts_with(missing), "{error}");
        }
    }

    /// `valid` with `name` set to `bad` is refused, naming `name`; returns the error's text.
    fn refused_naming(valid: &[(&str, &str)], name: &str, bad: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = valid.iter().copied().filter(|(k, _)| *k != name).collect();
        pairs.push((name, bad));
        let error = settings(&pairs).expect_err(bad).to_string();
        assert!(error.starts_with(name), "{error}");
        error
    }

    #[test]
    fn dns_settings_are_checked_and_the_token_kept_secret() {
        assert!(matches!(settings(&[]).expect("defaults").dns, DnsProvider::None));
        let cloudflare = [
            ("SPAWNPOINT_DNS", "cloudflare"),
            ("CLOUDFLARE_API_TOKEN", "cf-secret-token"),
            ("CLOUDFLARE_ZONE_ID", "023e105f4ecef8ad9ca31a8372d0c353"),
            ("DNS_BASE_DOMAIN", "Play.Example.com."),
        ];
        let ok = settings(&cloudflare).expect("valid");
        let DnsProvider::Cloudflare(config) = &ok.dns else { panic!("cloudflare expected") };
        assert_eq!(config.base_domain, "play.example.com");
        assert_eq!(config.api_base, "https://api.cloudflare.com/client/v4");
        assert!(!format!("{ok:?}").contains("cf-secret-token"));

        each_is_required(&cloudflare);
        for (name, bad) in [
            ("DNS_BASE_DOMAIN", "localhost"),
            ("DNS_BASE_DOMAIN", "play_ground.example.com"),
            ("CLOUDFLARE_ZONE_ID", "zone/../x"),
            ("CLOUDFLARE_API_BASE", "api.cloudflare.com"),
            ("SPAWNPOINT_DNS", "route53"),
        ] {
            assert!(!refused_naming(&cloudflare, name, bad).contains("cf-secret-token"));
        }
    }

    #[test]
    fn billing_settings_are_checked_and_the_keys_kept_secret() {
        assert!(matches!(settings(&[]).expect("defaults").billing, BillingMode::None));
        let stripe = [
            ("SPAWNPOINT_BILLING", "stripe"),
            ("SPAWNPOINT_PUBLIC_URL", "https://panel.example.com"),
            ("STRIPE_SECRET_KEY", "sk_test_secret"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_secret"),
        ];
        let ok = settings(&stripe).expect("valid");
        let BillingMode::Stripe(config) = &ok.billing else { panic!("stripe expected") };
        assert_eq!(config.api_base, "https://api.stripe.com");
        let shown = format!("{ok:?}");
        assert!(!shown.contains("sk_test_secret") && !shown.contains("whsec_secret"), "{shown}");
        each_is_required(&stripe);
        for (name, bad) in [("SPAWNPOINT_BILLING", "paypal"), ("STRIPE_API_BASE", "api.stripe.com")] {
            refused_naming(&stripe, name, bad);
        }
    }

    #[test]
    fn the_data_dir_moves_the_default_database() {
        let settings = settings(&[("SPAWNPOINT_DATA_DIR", "/srv/spawnpoint")]).expect("valid");
        assert_eq!(settings.database_url.expose_secret(), "sqlite:///srv/spawnpoint/spawnpoint.db");
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_the_password() {
        let error = settings(&[("SPAWNPOINT_ADDR", "localhost")]).expect_err("not a socket address");
        assert!(error.to_string().starts_with("SPAWNPOINT_ADDR is not valid"), "{error}");

        let error = settings(&[("DATABASE_URL", "mysql://root:hunter2@db/x")]).expect_err("unsupported");
        let text = error.to_string();
        assert!(text.starts_with("DATABASE_URL is not valid") && text.contains("mysql"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn debug_output_never_shows_the_database_password() {
        let settings = settings(&[("DATABASE_URL", "postgres://spawnpoint:hunter2@db/spawnpoint")]).expect("valid");
        assert_eq!(settings.database_kind(), "postgres");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn a_broken_catalog_file_is_refused_with_its_path() {
        let dir = std::env::temp_dir().join(format!("spawnpoint-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("games.yaml");
        std::fs::write(&path, "games: []\nextra: 1\n").expect("write");
        let settings = settings(&[("SPAWNPOINT_CATALOG", path.to_str().expect("utf-8"))]).expect("valid");
        let error = settings.load_catalog().expect_err("unknown field");
        assert!(error.to_string().contains("games.yaml"), "{error}");
        let missing = Settings { catalog_path: Some(dir.join("nope.yaml")), ..settings };
        assert!(matches!(missing.load_catalog(), Err(ConfigError::CatalogFile { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn file(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse(Path::new("spawnpoint.toml"), text)
    }

    #[test]
    fn a_file_is_read_by_subsystem_and_the_environment_overrides_it() {
        let file = file(
            "data_dir = \"/srv/spawnpoint\"\n[http]\naddr = \"0.0.0.0:8080\"\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\n\
             [reconciler]\nresync_interval = 5\n[accounts]\nmax_servers = 7\n",
        )
        .expect("valid");
        let from_file = Settings::from_sources(|_| None, &file).expect("valid");
        assert_eq!(from_file.http.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(from_file.data_dir, PathBuf::from("/srv/spawnpoint"));
        assert_eq!(from_file.reconciler.resync_interval, Duration::from_secs(5));
        assert_eq!(from_file.accounts.max_servers_per_customer, 7);
        assert_eq!(from_file.http.trusted_proxies, TrustedProxies::parse("10.0.0.0/8,127.0.0.1").expect("valid"));
        let env = |name: &str| (name == "SPAWNPOINT_ADDR").then(|| "127.0.0.1:9000".to_owned());
        let overridden = Settings::from_sources(env, &file).expect("valid");
        assert_eq!(overridden.http.addr.to_string(), "127.0.0.1:9000", "the variable wins");
        assert_eq!(overridden.accounts.max_servers_per_customer, 7, "the rest still comes from the file");
    }

    #[test]
    fn a_bad_file_value_names_its_key_and_an_unknown_key_is_refused() {
        let bad = file("[reconciler]\nresync_interval = \"soon\"\n").expect("valid TOML");
        let error = Settings::from_sources(|_| None, &bad).expect_err("not seconds").to_string();
        assert!(error.starts_with("`reconciler.resync_interval` in spawnpoint.toml is not valid"), "{error}");
        let env = |name: &str| (name == "SPAWNPOINT_RESYNC_INTERVAL").then(|| "never".to_owned());
        let error = Settings::from_sources(env, &bad).expect_err("not seconds").to_string();
        assert!(error.starts_with("SPAWNPOINT_RESYNC_INTERVAL is not valid"), "a variable is named as itself: {error}");
        let typo = file("[http]\nadress = \"0.0.0.0:80\"\n").expect_err("unknown key");
        assert!(typo.contains("`http.adress` is not a setting"), "{typo}");
        assert!(file("[http\n").expect_err("broken").contains("not valid TOML"));
        let secret = file("[billing.stripe]\nsecret_key = \"sk_live_hidden\"\n").expect("valid");
        let settings = Settings::from_sources(|_| None, &secret).expect("unused without billing");
        assert!(!format!("{settings:?}").contains("sk_live_hidden"));
    }

    #[test]
    fn every_setting_has_one_variable_and_one_key() {
        let mut names: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
        let mut keys: Vec<&str> = KEYS.iter().map(|(_, key)| *key).collect();
        names.sort_unstable();
        keys.sort_unstable();
        names.dedup();
        keys.dedup();
        assert_eq!((names.len(), keys.len()), (KEYS.len(), KEYS.len()));
    }
}
