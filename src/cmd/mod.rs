//! Commands: one family per data type or concern, each exporting its commands (spec and
//! handler); argument parsing and Redis's error texts; the registry built from them once.

use crate::engine::command::Commands;

pub(crate) mod args;
pub(crate) mod block;
pub(crate) mod command;
pub(crate) mod connection;
pub(crate) mod debug;
pub(crate) mod dump;
pub(crate) mod error;
pub(crate) mod generic;
pub(crate) mod hash;
pub(crate) mod info;
pub(crate) mod list;
pub(crate) mod long_double;
pub(crate) mod persistence;
pub(crate) mod pubsub;
pub(crate) mod server;
pub(crate) mod set;
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
            transaction::commands(),
            pubsub::commands(),
            server::commands(),
            persistence::commands(),
            debug::commands(),
            command::commands(),
            string::commands(),
            generic::commands(),
            dump::commands(),
            list::commands(),
            hash::commands(),
            set::commands(),
            zset::commands(),
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
}
