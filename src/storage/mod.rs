//! Storage: the keyspace and the value structures (dict, list, sorted set and its tree, the
//! database with expiry) and their RDB serialization. Pure data owned by one core: it never awaits and knows nothing of
//! routing, sessions or commands.

pub(crate) mod access;
pub(crate) mod aof;
pub(crate) mod clock;
pub(crate) mod db;
pub(crate) mod dict;
pub(crate) mod dict_value;
pub(crate) mod encoding;
pub(crate) mod evict;
pub(crate) mod footprint;
pub(crate) mod geohash;
pub(crate) mod hll;
pub(crate) mod list;
pub(crate) mod rdb;
pub(crate) mod rng;
pub(crate) mod sample;
pub(crate) mod slot_index;
pub(crate) mod stream;
pub(crate) mod zset;
pub(crate) mod ztree;
