//! The engine: shards and the router between cores, gates and transactions, per-core state,
//! sessions that coordinate commands, and blocked clients. Knows nothing of sockets or TLS,
//! and no command family.

pub mod blocking;
pub mod client;
pub mod command;
pub mod core;
pub mod global;
pub mod router;
pub mod session;
pub mod shard;
pub mod slot;
