//! Commands: one family per data type or concern, each exporting its commands (spec and
//! handler); argument parsing and Redis's error texts; the registry built from them once.

use crate::engine::command::Commands;

pub(crate) mod acl;
pub(crate) mod args;
pub(crate) mod bitmap;
pub(crate) mod block;
pub(crate) mod cluster;
pub(crate) mod command;
pub(crate) mod connection;
pub(crate) mod debug;
pub(crate) mod dump;
pub(crate) mod error;
pub(crate) mod generic;
pub(crate) mod geo;
pub(crate) mod hash;
pub(crate) mod hll;
pub(crate) mod info;
pub(crate) mod latency;
pub(crate) mod list;
pub(crate) mod lolwut;
pub(crate) mod long_double;
pub(crate) mod memory;
pub(crate) mod migrate;
pub(crate) mod monitor;
pub(crate) mod persistence;
pub(crate) mod pqsort;
pub(crate) mod pubsub;
pub(crate) mod replication;
pub(crate) mod scripting;
pub(crate) mod server;
pub(crate) mod set;
pub(crate) mod slowlog;
pub(crate) mod sort;
pub(crate) mod stream;
pub(crate) mod string;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod transaction;
pub(crate) mod zset;

/// Every command of every family, as the registry the runtime installs for every core.
#[must_use]
pub(crate) fn commands() -> Commands {
    Commands::new(
        [
            connection::commands(),
            acl::commands(),
            transaction::commands(),
            pubsub::commands(),
            server::commands(),
            memory::commands(),
            persistence::commands(),
            replication::commands(),
            debug::commands(),
            slowlog::commands(),
            latency::commands(),
            monitor::commands(),
            lolwut::commands(),
            cluster::commands(),
            command::commands(),
            string::commands(),
            bitmap::commands(),
            generic::commands(),
            dump::commands(),
            migrate::commands(),
            list::commands(),
            hash::commands(),
            set::commands(),
            zset::commands(),
            stream::commands(),
            hll::commands(),
            geo::commands(),
            sort::commands(),
            scripting::commands(),
        ]
        .into_iter()
        .flatten()
        .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_registers_and_names_are_unique() {
        // Commands::new panics on a duplicate or a name that is not lowercase.
        let r = commands();
        assert!(r.get(b"GET").is_some() && r.get(b"client").is_some());
        assert!(r.iter().map(|c| 1 + c.subcommands.len()).sum::<usize>() > 150);
    }

    #[test]
    fn effects_are_logged_as_redis_propagates_them() {
        let mut f = crate::cmd::testing::Fixture::new();
        f.journal();
        let cases: &[(&str, &[&str])] = &[
            ("SET k v EX 10", &["SET k v PXAT 1700000010000"]),
            ("SETEX s 10 v", &["SET s v PXAT 1700000010000"]),
            ("SET k v KEEPTTL", &[]),
            ("EXPIRE k 100", &["PEXPIREAT k 1700000100000"]),
            ("PEXPIRE k 500 GT", &[]),
            ("EXPIRE k 200 XX", &["PEXPIREAT k 1700000200000 XX"]),
            ("GETEX k PERSIST", &["PERSIST k"]),
            ("GETEX k PERSIST", &[]),
            ("GETEX k PX 5", &["PEXPIREAT k 1700000000005"]),
            ("EXPIRE s -1", &["DEL s"]),
            ("INCRBYFLOAT f 1.5", &["SET f 1.5 KEEPTTL"]),
            ("HINCRBYFLOAT h x 2", &["HSET h x 2"]),
            ("SADD set a", &[]),
            ("SPOP set", &["SREM set a"]),
            ("SADD set a b c", &[]),
            ("SPOP set 5", &["DEL set"]),
            ("RPUSH l a b c", &[]),
            ("LMPOP 2 none l RIGHT COUNT 2", &["RPOP l 2"]),
            ("LMOVE l l2 LEFT RIGHT", &["LMOVE l l2 LEFT RIGHT"]),
            ("ZADD z 1 a 2 b", &[]),
            ("ZMPOP 1 z MAX COUNT 5", &["ZPOPMAX z 2"]),
        ];
        for (line, want) in cases {
            f.run(line);
            assert_eq!(f.logged(), *want, "{line}");
        }
        // A key found expired is deleted first, then the command's effect.
        f.run("SET gone 1 PX 10");
        f.logged();
        f.now += 20;
        f.run("INCRBYFLOAT gone 1");
        assert_eq!(f.logged(), ["DEL gone", "SET gone 1 KEEPTTL"]);
    }
}
