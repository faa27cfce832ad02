//! Spawnpoint's shared domain: what the browser and the server must agree on.
//!
//! This crate does no I/O and has no features, so it compiles unchanged for `wasm32` (the hydrated app) and
//! natively (the server). It holds the game [`Catalog`] with its plans and prices, the Kubernetes-style
//! [`quantity`] types used by plans, the server [`state`] machine, and [`account`] rules and authorization, the live [`console`]'s
//! wire protocol, and what the [`billing`] page shows.

pub mod account;
pub mod billing;
pub mod console;
pub mod games;
pub mod gameserver;
pub mod quantity;
pub mod state;

pub use games::{
    Catalog, CatalogError, Game, GamePort, LocalProcess, MAIN_PORT, Plan, PlayerRange, Problem, Protocol,
    QueryProtocol, QuerySpec, format_price,
};
pub use quantity::{ByteSize, Cpu, QuantityError};
pub use state::{Action, Payment, ServerStatus, TransitionError, UnknownStatus};
