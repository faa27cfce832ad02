//! Spawnpoint's shared domain: what the browser and the server must agree on.
//!
//! This crate does no I/O and has no features, so it compiles unchanged for `wasm32` (the hydrated app) and
//! natively (the server). It holds the game [`Catalog`] with its plans and prices, the Kubernetes-style
//! [`quantity`] types used by plans, the server [`state`] machine, and [`account`] rules and authorization, the live [`console`]'s
//! wire protocol, what the [`billing`] page shows and the deadline rules of paid servers, typed [`ids`], and the curated
//! [`notice`]s a customer reads about their server, and what the file manager
//! ([`files`]) and [`backups`] show.

pub mod account;
pub mod backups;
pub mod billing;
pub mod console;
pub mod files;
pub mod games;
pub mod gameserver;
pub mod ids;
pub mod install;
pub mod notice;
pub mod output;
pub mod quantity;
pub mod state;
pub mod variables;
pub mod yaml;

pub use games::{
    BackupHooks, Catalog, Game, GamePort, LocalProcess, MAIN_PORT, Plan, PlayerRange, Protocol, PublicGame,
    QueryProtocol, QuerySpec, RunAs, format_price,
};
pub use ids::{ServerId, UserId};
pub use notice::Notice;
pub use quantity::{ByteSize, Cpu, QuantityError, bytes_text};
pub use state::{Action, Payment, ServerStatus, TransitionError, UnknownStatus};
pub use yaml::{CatalogError, Problem};
