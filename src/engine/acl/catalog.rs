//! What ACL rules need to know of the commands: names, ids, categories and subcommands, copied
//! once from the registry (which builds it), so that the ACL code depends on no other part of
//! the engine.

use ahash::AHashMap;

use crate::engine::spec::Acl;

/// One command or subcommand.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Its registry id.
    pub(crate) id: usize,
    /// `get`, or `client|kill` for a subcommand.
    pub(crate) full_name: String,
    /// Its categories, with those its flags imply.
    pub(crate) acl: Acl,
    /// A container's subcommands, by id.
    pub(crate) subcommands: Vec<usize>,
    /// Whether it is a subcommand.
    pub(crate) is_subcommand: bool,
}

/// Every command and subcommand, each container before its subcommands.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    entries: Vec<Entry>,
    by_name: AHashMap<Vec<u8>, usize>,
}

impl Catalog {
    /// The catalog of `entries` (listed in registry order, ids matching their positions).
    #[must_use]
    pub(crate) fn new(entries: Vec<Entry>) -> Catalog {
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.full_name.as_bytes().to_ascii_lowercase(), i))
            .collect();
        Catalog { entries, by_name }
    }

    /// How many commands and subcommands (the ids run below this).
    #[must_use]
    pub(crate) fn count(&self) -> usize {
        self.entries.len()
    }

    /// The command (`get`) or subcommand (`client|kill`) named, in any case.
    #[must_use]
    pub(crate) fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.by_name.get(&name.to_ascii_lowercase()).map(|&i| &self.entries[i])
    }

    /// The entry with id `id`.
    #[must_use]
    pub(crate) fn by_id(&self, id: usize) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Every entry, each container before its subcommands.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}
