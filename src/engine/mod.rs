//! The engine: shards and the router between cores, gates and transactions, per-core state,
//! sessions that coordinate commands, blocked clients and watched keys. Knows nothing of
//! sockets or TLS, and no command family: commands reach it as [`command::Command`]s.

pub mod blocking;
pub mod client;
pub mod command;
pub mod core;
pub mod dispatch;
pub mod global;
pub mod local;
pub mod plan;
pub mod pubsub;
pub mod router;
pub mod session;
pub mod shard;
pub mod slot;
pub mod spec;
pub mod transaction;
pub mod waiters;
pub mod watch;
