//! The engine: shards and the router between cores, gates and transactions, per-core state,
//! sessions that coordinate commands, blocked clients and watched keys. Knows nothing of
//! sockets or TLS, and no command family: commands reach it as [`command::Command`]s.

pub(crate) mod acl;
pub(crate) mod affinity;
pub(crate) mod aof;
pub(crate) mod backlog;
pub(crate) mod blocking;
pub(crate) mod caching;
pub(crate) mod client;
pub(crate) mod client_eviction;
pub(crate) mod cluster;
pub(crate) mod command;
pub(crate) mod core;
pub(crate) mod dispatch;
pub(crate) mod failover;
pub(crate) mod global;
pub(crate) mod handoff;
pub(crate) mod invalidation;
pub(crate) mod journal;
pub(crate) mod latency;
pub(crate) mod local;
pub(crate) mod monitor;
pub(crate) mod notify;
pub(crate) mod pause;
pub(crate) mod persist;
pub(crate) mod pipelined;
pub(crate) mod plan;
pub(crate) mod pubsub;
pub(crate) mod repl_state;
pub(crate) mod replica;
pub(crate) mod replication;
pub(crate) mod router;
pub(crate) mod script;
pub(crate) mod session;
pub(crate) mod shard;
pub(crate) mod slot;
pub(crate) mod slowlog;
pub(crate) mod snapshot;
pub(crate) mod spec;
pub(crate) mod stats;
pub(crate) mod tracking;
pub(crate) mod transaction;
pub(crate) mod waiters;
pub(crate) mod watch;
