//! Commands: one family per data type or concern, each with its handlers; argument parsing
//! and Redis's error texts.

pub mod access;
pub mod args;
pub mod connection;
pub mod generic;
pub mod hash;
pub mod list;
pub mod long_double;
pub mod moves;
pub mod pubsub;
pub mod server;
pub mod set;
pub mod string;
pub mod transaction;
pub mod zset;
