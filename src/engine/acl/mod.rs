//! Access control lists, as Redis 7.0's: users with passwords and selectors of commands, key
//! patterns and channel patterns (`ACL SETUSER`, `user` lines, `requirepass` as the default
//! user's password), checked on the connection's core before a request is routed.
//!
//! One table for the whole server. Sessions keep their user as an `Arc` snapshot and compare
//! the table's generation before each command (one relaxed load): a change to any user
//! reaches every core before its next command, and a session whose user is unchanged pays
//! nothing more. The default user, as shipped (`+@all ~* &*`), skips the check entirely.

mod catalog;
mod check;
mod describe;
mod log;
mod selector;
mod user;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

pub(crate) use catalog::{Catalog, Entry as CatalogEntry};
pub(crate) use check::{check, Denial, Reason, Request};
pub(crate) use describe::{channels, command_rules, flags, keys, user as describe_user};
pub(crate) use log::{Entry, What};
pub(crate) use selector::Selector;
pub(crate) use user::{hex, merge_selectors, User};

/// Why an `ACL SETUSER` rule was refused (Redis's `ACLSetUserStringError` texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SetUserError {
    /// An unknown command or category.
    #[error("Unknown command or category name in ACL")]
    UnknownCommand,
    /// Anything else malformed.
    #[error("Syntax error")]
    Syntax,
    /// A key pattern after `allkeys`.
    #[error(
        "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any \
         effect. Try 'resetkeys' to start with an empty list of patterns"
    )]
    AfterAllKeys,
    /// A channel pattern after `allchannels`.
    #[error(
        "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have \
         any effect. Try 'resetchannels' to start with an empty list of channels"
    )]
    AfterAllChannels,
    /// `<pass` or `!hash` of a password the user does not have.
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    /// A `#` or `!` hash that is not 64 lowercase hex digits.
    #[error(
        "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
    )]
    BadHash,
    /// A first argument of a subcommand (`+config|get|x`).
    #[error("Allowing first-arg of a subcommand is not supported")]
    FirstArgOfSubcommand,
}

/// The users, and a generation that changes with any of them.
pub(crate) struct Users {
    catalog: Catalog,
    table: RwLock<BTreeMap<Bytes, Arc<User>>>,
    generation: AtomicU64,
    log: Mutex<log::Log>,
}

impl Users {
    /// The table with only the default user, its password `requirepass` (none if empty).
    #[must_use]
    pub(crate) fn new(catalog: Catalog, requirepass: &[u8]) -> Users {
        let mut default = User::default_user(&catalog);
        set_requirepass(&mut default, requirepass);
        let table = BTreeMap::from([(default.name.clone(), Arc::new(default))]);
        Users { catalog, table: RwLock::new(table), generation: AtomicU64::new(0), log: Mutex::default() }
    }

    /// The commands the rules name.
    #[must_use]
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The generation: changes whenever a user does.
    #[must_use]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The default user (it cannot be deleted).
    #[must_use]
    pub(crate) fn default_user(&self) -> Arc<User> {
        self.get(b"default").unwrap_or_else(|| Arc::new(User::default_user(&self.catalog)))
    }

    /// The user named `name`.
    #[must_use]
    pub(crate) fn get(&self, name: &[u8]) -> Option<Arc<User>> {
        self.read().get(name).cloned()
    }

    /// Every user, by name.
    #[must_use]
    pub(crate) fn all(&self) -> Vec<Arc<User>> {
        self.read().values().cloned().collect()
    }

    /// Changes (or creates) the user `name` by `rules`, all or nothing.
    ///
    /// # Errors
    /// The rule that failed and why.
    pub(crate) fn set_user(
        &self,
        all_channels_default: bool,
        name: &[u8],
        rules: &[Bytes],
    ) -> Result<(), (Bytes, SetUserError)> {
        let mut table = self.write();
        let mut user = match table.get(name) {
            Some(u) => (**u).clone(),
            None => User::new(Bytes::copy_from_slice(name), &self.catalog, all_channels_default),
        };
        user.apply_all(&self.catalog, all_channels_default, rules)?;
        table.insert(user.name.clone(), Arc::new(user));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Deletes users; how many existed.
    pub(crate) fn delete(&self, names: &[Bytes]) -> usize {
        let mut table = self.write();
        let gone = names.iter().filter(|n| table.remove(&n[..]).is_some()).count();
        self.generation.fetch_add(1, Ordering::AcqRel);
        gone
    }

    /// `requirepass` changed: the default user's passwords become that one (or nopass).
    pub(crate) fn set_requirepass(&self, requirepass: &[u8]) {
        let mut table = self.write();
        if let Some(default) = table.get_mut(&b"default"[..]) {
            set_requirepass(Arc::make_mut(default), requirepass);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Adds an ACL LOG entry, keeping at most `max_len`.
    pub(crate) fn log(&self, entry: Entry, max_len: usize) {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(entry, max_len);
    }

    /// The newest `count` ACL LOG entries.
    #[must_use]
    pub(crate) fn log_entries(&self, count: usize) -> Vec<Entry> {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).newest(count).cloned().collect()
    }

    /// ACL LOG RESET.
    pub(crate) fn clear_log(&self) {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Bytes, Arc<User>>> {
        self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Bytes, Arc<User>>> {
        self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Redis's `ACLUpdateDefaultUserPassword`: `resetpass`, then `>pass` or `nopass`.
fn set_requirepass(user: &mut User, requirepass: &[u8]) {
    user.passwords.clear();
    user.nopass = requirepass.is_empty();
    if !user.nopass {
        user.passwords.push(user::hash(requirepass));
    }
}
