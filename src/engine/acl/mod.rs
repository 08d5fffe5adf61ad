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
mod file;
mod log;
mod selector;
mod user;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

pub(crate) use catalog::{Catalog, Entry as CatalogEntry};
pub(crate) use check::{check, Channels, Denial, Reason, Request};
#[cfg(test)]
pub(crate) use describe::user as describe_user;
pub(crate) use describe::{channels, command_rules, flags, keys};
pub(crate) use log::{Entry, What, COUNTERS as DENIAL_COUNTERS};
pub(crate) use selector::{has_spaces, Selector};
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

/// A user before a change (if it existed) and after.
pub(crate) type Change = (Option<Arc<User>>, Arc<User>);

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

    /// The table at startup: the default user with `requirepass` as its password, then the
    /// config file's `user` directives, or the users of `aclfile` (not both, as Redis).
    ///
    /// # Errors
    /// What is wrong, as Redis logs it before exiting.
    pub(crate) fn at_startup(catalog: Catalog, config: &crate::config::Config) -> Result<Users, String> {
        let users = Users::new(catalog, config.requirepass.as_bytes());
        if !config.aclfile.is_empty() && !config.users.is_empty() {
            return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path \
                        is invalid. This setup is very likely to lead to configuration errors and security holes, \
                        please define either an ACL file or declare users directly in your redis.conf, but not \
                        both."
                .into());
        }
        {
            let mut table = users.write();
            file::apply_directives(&mut table, &config.users, &users.catalog, config.acl_all_channels())?;
        }
        if !config.aclfile.is_empty() {
            users
                .load_file(config)
                .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
        }
        Ok(users)
    }

    /// ACL LOAD: the whole table from `config`'s ACL file, or nothing changes. Gives the users
    /// that are gone or whose rules changed (their clients must go).
    ///
    /// # Errors
    /// Every problem found, as Redis's reply.
    pub(crate) fn load_file(&self, config: &crate::config::Config) -> Result<Vec<Bytes>, String> {
        let path = &config.aclfile;
        let text = std::fs::read(config.aclfile_path()).map_err(|e| {
            format!("Error loading ACLs, opening file '{path}': {}", crate::durable::strerror(&e))
        })?;
        let fresh = file::parse(&text, path, &self.catalog, config.acl_all_channels())?;
        let mut table = self.write();
        let changed = table
            .iter()
            .filter(|(name, before)| fresh.get(*name).is_none_or(|after| after != *before))
            .map(|(name, _)| name.clone())
            .collect();
        *table = fresh;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(changed)
    }

    /// ACL SAVE: every user into `config`'s ACL file, replaced durably.
    ///
    /// # Errors
    /// The file could not be written.
    pub(crate) fn save_file(&self, config: &crate::config::Config) -> std::io::Result<()> {
        let text = file::render(&self.read(), &self.catalog);
        crate::durable::replace(&config.aclfile_path(), text.as_bytes())
    }

    /// Every user as a `user` line of an ACL file (ACL LIST, CONFIG REWRITE).
    #[must_use]
    pub(crate) fn lines(&self) -> Vec<String> {
        self.read().values().map(|u| file::line(&self.catalog, u)).collect()
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

    /// Changes (or creates) the user `name` by `rules`, all or nothing; gives the user before
    /// (if it existed) and after.
    ///
    /// # Errors
    /// The rule that failed and why.
    pub(crate) fn set_user(
        &self,
        all_channels_default: bool,
        name: &[u8],
        rules: &[Bytes],
    ) -> Result<Change, (Bytes, SetUserError)> {
        let mut table = self.write();
        let before = table.get(name).cloned();
        let mut user = match &before {
            Some(u) => (**u).clone(),
            None => User::new(Bytes::copy_from_slice(name), &self.catalog, all_channels_default),
        };
        user.apply_all(&self.catalog, all_channels_default, rules)?;
        let after = Arc::new(user);
        table.insert(after.name.clone(), after.clone());
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok((before, after))
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

    /// How many denials of each kind there were, named as INFO names them.
    #[must_use]
    pub(crate) fn denials(&self) -> [(&'static str, u64); 5] {
        let counts = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).denied();
        std::array::from_fn(|i| (DENIAL_COUNTERS[i], counts[i]))
    }

    /// CONFIG RESETSTAT: the denial counters restart from zero.
    pub(crate) fn reset_denials(&self) {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).reset_counters();
    }

    /// The user a verified client certificate names under `tls-auth-clients-user` (`mode`):
    /// its subject CN, or the first of its SAN URIs that names an enabled user. `Err` with the
    /// name tried last when it names none (the connection stays the default user's); `Ok(None)`
    /// when the certificate has no such field.
    ///
    /// # Errors
    /// The name that matched no enabled user.
    pub(crate) fn by_certificate(
        &self,
        mode: crate::config::TlsAuthClientsUser,
        cn: &str,
        uris: &[String],
    ) -> Result<Option<Arc<User>>, Bytes> {
        use crate::config::TlsAuthClientsUser as Mode;
        let names: &mut dyn Iterator<Item = &str> = match mode {
            Mode::Off => return Ok(None),
            Mode::Cn => &mut std::iter::once(cn).filter(|cn| !cn.is_empty()),
            Mode::Uri => &mut uris.iter().map(String::as_str),
        };
        let mut tried = None;
        for name in names {
            match self.get(name.as_bytes()) {
                Some(user) if user.enabled => return Ok(Some(user)),
                _ => tried = Some(name),
            }
        }
        tried.map_or(Ok(None), |name| Err(Bytes::copy_from_slice(name.as_bytes())))
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
