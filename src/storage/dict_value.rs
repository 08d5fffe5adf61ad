//! A hash or set value: its [`Dict`], and the encoding Redis would hold it in.
//!
//! Redis keeps a small hash as a listpack and a small set of integers as an intset, and
//! converts either to a hash table when a write takes it past the limits of redis.conf
//! (`hash-max-listpack-entries` and `-value`, `set-max-intset-entries`, or a member that is not
//! an integer). It never converts back: a hash that grew and shrank stays a table until it is
//! loaded again from a file, and limits changed later leave existing values as they are.
//! OBJECT ENCODING and the dump format show the difference, so every write that adds goes
//! through [`DictValue`], which makes Redis's decision at that moment; ferrokey's own storage
//! (a [`Dict`], a vector while small) does not depend on it. Reads see the [`Dict`] itself.

use std::ops::Deref;

use crate::num::parse_i64;
use crate::storage::dict::{Dict, Key};
use crate::storage::encoding;

/// A hash or set, and whether Redis would hold it as a hash table (`hashtable`) rather than in
/// its compact encoding (`listpack`, `intset`).
#[derive(Default)]
pub(crate) struct DictValue<V> {
    dict: Box<Dict<V>>,
    table: bool,
}

/// A hash: field to value.
pub(crate) type Hash = DictValue<Key>;
/// A set of members.
pub(crate) type Set = DictValue<()>;

impl<V> Deref for DictValue<V> {
    type Target = Dict<V>;

    fn deref(&self) -> &Dict<V> {
        &self.dict
    }
}

impl<V> DictValue<V> {
    /// Whether Redis would hold this value as a hash table.
    #[must_use]
    pub(crate) fn is_table(&self) -> bool {
        self.table
    }

    /// Removes `key`; returns its value. Never converts (as in Redis).
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.dict.remove(key)
    }

    /// A copy, its dict made by `copy`: the encoding is kept, as Redis's `hashTypeDup` and
    /// `setTypeDup` keep it.
    #[must_use]
    pub(crate) fn copy_with(&self, copy: impl FnOnce(&Dict<V>) -> Dict<V>) -> DictValue<V> {
        DictValue { dict: Box::new(copy(&self.dict)), table: self.table }
    }
}

impl Hash {
    /// A hash holding `dict`, encoded by its content, as Redis loads one from a file.
    #[must_use]
    pub(crate) fn from_dict(dict: Box<Dict<Key>>) -> Hash {
        let t = encoding::get();
        let table = dict.len() > t.hash_entries
            || dict.iter().any(|(f, v)| f.len() > t.hash_value || v.len() > t.hash_value);
        DictValue { dict, table }
    }

    /// Sets `field` to `value`; returns the value it replaced. Past the limits, the hash is a
    /// table from now on (Redis's `hashTypeTryConversion` and `hashTypeSet`).
    pub(crate) fn insert_copy(&mut self, field: &[u8], value: Key) -> Option<Key> {
        let t = encoding::get();
        self.table |= field.len() > t.hash_value || value.len() > t.hash_value;
        let old = self.dict.insert_copy(field, value);
        self.table |= self.dict.len() > t.hash_entries;
        old
    }
}

impl Set {
    /// A set holding `dict`, encoded by its content, as Redis builds one member by member
    /// (loading a file, storing SINTERSTORE's result).
    #[must_use]
    pub(crate) fn from_dict(dict: Box<Dict<()>>) -> Set {
        let table = dict.len() > encoding::get().set_intset_entries
            || dict.iter().any(|(m, ())| parse_i64(m).is_none());
        DictValue { dict, table }
    }

    /// Adds `member`; `Some(())` when it was there already. A member that is not an integer,
    /// or one past `set-max-intset-entries`, makes the set a table from now on (Redis's
    /// `setTypeAdd`).
    pub(crate) fn insert_copy(&mut self, member: &[u8], value: ()) -> Option<()> {
        let old = self.dict.insert_copy(member, value);
        if !self.table && old.is_none() {
            self.table = parse_i64(member).is_none() || self.dict.len() > encoding::get().set_intset_entries;
        }
        old
    }

    /// Encodes the set by its content again, as Redis does when it rebuilds a set from what
    /// remains (SPOP of most of a set).
    pub(crate) fn rebuilt(&mut self) {
        let dict = std::mem::take(&mut self.dict);
        *self = Set::from_dict(dict);
    }

    /// Makes the set a table, as a result built from a larger one (SDIFFSTORE's second
    /// algorithm starts from the whole first set).
    pub(crate) fn make_table(&mut self) {
        self.table = true;
    }
}
