//! Commands: one family per data type or concern, each exporting its commands (spec and
//! handler); argument parsing and Redis's error texts; the registry built from them once.

use std::sync::LazyLock;

use crate::engine::command::Commands;

pub mod args;
pub mod block;
pub mod command;
pub mod connection;
pub mod error;
pub mod generic;
pub mod hash;
pub mod info;
pub mod list;
pub mod long_double;
pub mod pubsub;
pub mod server;
pub mod set;
pub mod string;
pub mod transaction;
pub mod zset;

/// Every command of every family, built once; the runtime hands it to every core.
pub fn registry() -> &'static Commands {
    static REGISTRY: LazyLock<Commands> = LazyLock::new(|| {
        Commands::new(
            [
                connection::commands(),
                transaction::commands(),
                pubsub::commands(),
                server::commands(),
                command::commands(),
                string::commands(),
                generic::commands(),
                list::commands(),
                hash::commands(),
                set::commands(),
                zset::commands(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        )
    });
    &REGISTRY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_registers_and_names_are_unique() {
        // Commands::new panics on a duplicate or a name that is not lowercase.
        let r = registry();
        assert!(r.get(b"GET").is_some() && r.get(b"client").is_some());
        assert!(r.len() > 150);
    }
}
