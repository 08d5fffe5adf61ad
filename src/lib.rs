//! ferrokey: a Redis-compatible, thread-per-core in-memory data server where TLS is never the
//! bottleneck.
//!
//! # Layout
//! - [`benchmark`]: `ferrokey-benchmark`, the load generator, on the same I/O stack.
//! - [`config`]: directives, redis.conf files, command-line overrides, CONFIG GET/SET.
//! - [`facade`]: listeners, TLS, the stream type, the RESP parser and reply encoder, the
//!   connection loop. Knows nothing of the keyspace.
//! - [`storage`]: the keyspace and value structures; pure data, never awaits.
//! - [`engine`]: shards (one per core), the router (the only code that talks between cores),
//!   transactions, sessions that coordinate commands, blocked clients.
//! - [`cmd`]: the command families, argument parsing, Redis's error texts.
//! - [`runtime`]: executors, startup, shutdown; plugs server sessions into facade connections.
//! - [`glob`]: Redis glob patterns, for KEYS, SCAN MATCH and CONFIG GET.
//! - [`logging`]: the `tracing` subscriber, whose level CONFIG SET loglevel changes.
//! - [`memory`]: the counting allocator behind INFO's `used_memory`.
//! - [`num`]: Redis's number syntax (`strtod`), for storage and commands alike.
//! - [`splitargs`]: Redis's argument splitter, shared by inline commands and config files.
//!
//! See ARCHITECTURE.md for the life of a command and the invariants.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod benchmark;
pub mod cmd;
pub mod config;
pub mod engine;
pub mod facade;
pub mod glob;
pub mod logging;
pub mod memory;
pub mod num;
pub mod runtime;
pub mod splitargs;
pub mod storage;

/// The Redis version whose behaviour ferrokey follows, as HELLO and INFO report it.
pub const REDIS_VERSION: &str = "7.0.0";
