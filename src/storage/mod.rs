//! Storage: the keyspace and the value structures (dict, list, sorted set and its tree, the
//! database with expiry). Pure data owned by one core: it never awaits and knows nothing of
//! routing, sessions or commands.

pub mod access;
pub mod db;
pub mod dict;
pub mod list;
pub mod rng;
pub mod sample;
pub mod zset;
pub mod ztree;
