//! The server: shards, the router between cores, sessions that coordinate commands, and the
//! command families. Knows nothing of sockets or TLS.

pub mod access;
pub mod args;
pub mod blocking;
pub mod client;
pub mod command;
pub mod connection_family;
pub mod core;
pub mod db;
pub mod dict;
pub mod generic_family;
pub mod global;
pub mod hash_family;
pub mod list;
pub mod list_family;
pub mod long_double;
pub mod moves;
pub mod pubsub_family;
pub mod rng;
pub mod router;
pub mod server_family;
pub mod session;
pub mod set_family;
pub mod shard;
pub mod slot;
pub mod string_family;
pub mod transaction_family;
pub mod zset;
pub mod zset_family;
pub mod ztree;
