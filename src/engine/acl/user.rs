//! An ACL user: whether it is on, its password hashes, and its selectors (the root one first),
//! changed by the rules of `ACL SETUSER` and `user` lines as Redis 7.0's `ACLSetUser`.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::engine::acl::catalog::Catalog;
use crate::engine::acl::selector::Selector;
use crate::engine::acl::SetUserError;

/// A SHA-256 password hash.
pub(crate) type Hash = [u8; 32];

/// One user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    /// Its name (any bytes but whitespace and NUL).
    pub(crate) name: Bytes,
    /// `on` / `off`.
    pub(crate) enabled: bool,
    /// `nopass`: any password authenticates it.
    pub(crate) nopass: bool,
    /// `skip-sanitize-payload` (`Some(false)`) or `sanitize-payload` (`Some(true)`).
    pub(crate) sanitize_payload: Option<bool>,
    /// Password hashes, in the order added.
    pub(crate) passwords: Vec<Hash>,
    /// The root selector, kept inline: the check of every request reads it first, with no
    /// pointer to follow from the user.
    pub(crate) root: Selector,
    /// The `(...)` selectors.
    pub(crate) extra: Vec<Selector>,
}

impl User {
    /// A new user as `ACL SETUSER name` creates it: off, no password, nothing allowed.
    #[must_use]
    pub(crate) fn new(name: Bytes, commands: &Catalog, all_channels: bool) -> User {
        User {
            name,
            enabled: false,
            nopass: false,
            sanitize_payload: None,
            passwords: Vec::new(),
            root: Selector::new(commands, all_channels),
            extra: Vec::new(),
        }
    }

    /// The root selector, then the `(...)` ones.
    pub(crate) fn selectors(&self) -> impl Iterator<Item = &Selector> {
        std::iter::once(&self.root).chain(&self.extra)
    }

    /// Redis's built-in default user: `on nopass ~* &* +@all`.
    #[must_use]
    pub(crate) fn default_user(commands: &Catalog) -> User {
        let mut user = User::new(Bytes::from_static(b"default"), commands, true);
        user.enabled = true;
        user.nopass = true;
        let root = &mut user.root;
        for rule in [&b"+@all"[..], b"~*"] {
            // Neither can fail.
            let _ = root.apply(commands, rule);
        }
        user
    }

    /// Whether a request by this user needs no check at all (the default user's case).
    #[must_use]
    pub(crate) fn unrestricted(&self) -> bool {
        self.root.unrestricted()
    }

    /// Whether one selector allows the request's command and lets it read every key (Redis's
    /// `ACLUserCheckCmdWithUnrestrictedKeyAccess`, which SORT asks before following BY and GET
    /// patterns to keys it cannot know in advance).
    #[must_use]
    pub(crate) fn may_read_every_key(&self, args: &[Bytes]) -> bool {
        let Ok(cmd) = crate::engine::command::registry().resolve(args) else { return false };
        let sub = cmd.full_name.contains('|');
        self.selectors().any(|s| s.allows_command(cmd.id, sub, args) && s.reads_every_key())
    }

    /// Whether one of the selectors lets a client stay subscribed to `channel` (a `PSUBSCRIBE`
    /// pattern: `literal`).
    #[must_use]
    pub(crate) fn may_subscribe(&self, channel: &[u8], literal: bool) -> bool {
        self.selectors().any(|s| s.allows_channel(channel, literal))
    }

    /// Whether this user (after a change) may refuse a subscription `before` allowed, as
    /// Redis's `ACLKillPubsubClientsIfNeeded` decides it: not when a selector allows every
    /// channel, nor when every channel pattern of before is still named.
    #[must_use]
    pub(crate) fn channels_shrunk_from(&self, before: &User) -> bool {
        if self.selectors().any(|s| s.all_channels) {
            return false;
        }
        before.selectors().any(|s| s.all_channels)
            || !before
                .selectors()
                .flat_map(|s| &s.channels)
                .all(|c| self.selectors().any(|s| s.channels.contains(c)))
    }

    /// Whether `password` authenticates this user; the hashes are compared in constant time.
    #[must_use]
    pub(crate) fn password_ok(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash(password);
        // Every stored hash is compared, each without an early exit.
        self.passwords.iter().fold(false, |found, h| found | constant_time_eq(h, &hash))
    }

    /// Applies rules in order, all or nothing: on an error nothing changes. Selector rules
    /// `(...)` come merged into one argument each (see [`merge_selectors`]).
    ///
    /// # Errors
    /// The first rule that fails, with its error.
    pub(crate) fn apply_all(
        &mut self,
        commands: &Catalog,
        all_channels_default: bool,
        rules: &[Bytes],
    ) -> Result<(), (Bytes, SetUserError)> {
        let mut next = self.clone();
        for rule in rules {
            next.apply(commands, all_channels_default, rule).map_err(|e| (rule.clone(), e))?;
        }
        *self = next;
        Ok(())
    }

    /// Applies one rule.
    ///
    /// # Errors
    /// Redis's `ACLSetUser` errors.
    pub(crate) fn apply(
        &mut self,
        commands: &Catalog,
        all_channels_default: bool,
        rule: &[u8],
    ) -> Result<(), SetUserError> {
        if rule.is_empty() {
            return Ok(());
        }
        let lower = rule.to_ascii_lowercase();
        match &lower[..] {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"skip-sanitize-payload" => self.sanitize_payload = Some(false),
            b"sanitize-payload" => self.sanitize_payload = Some(true),
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"clearselectors" => self.extra.clear(),
            b"reset" => {
                for r in [&b"resetpass"[..], b"resetkeys", b"resetchannels"] {
                    self.apply(commands, all_channels_default, r)?;
                }
                if all_channels_default {
                    self.apply(commands, all_channels_default, b"allchannels")?;
                }
                for r in [&b"off"[..], b"sanitize-payload", b"clearselectors", b"-@all"] {
                    self.apply(commands, all_channels_default, r)?;
                }
            }
            _ => match rule[0] {
                b'>' => {
                    let h = hash(&rule[1..]);
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                b'#' => {
                    let h = parse_hash(&rule[1..])?;
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                b'<' => self.remove_password(&hash(&rule[1..]))?,
                b'!' => self.remove_password(&parse_hash(&rule[1..])?)?,
                b'(' if rule.ends_with(b")") => {
                    let mut selector = Selector::new(commands, all_channels_default);
                    let inside = &rule[1..rule.len() - 1];
                    for part in crate::splitargs::split(inside).map_err(|_| SetUserError::Syntax)? {
                        selector.apply(commands, &part)?;
                    }
                    self.extra.push(selector);
                }
                _ => self.root.apply(commands, rule)?,
            },
        }
        Ok(())
    }

    fn remove_password(&mut self, h: &Hash) -> Result<(), SetUserError> {
        let before = self.passwords.len();
        self.passwords.retain(|p| p != h);
        if self.passwords.len() == before {
            return Err(SetUserError::NoSuchPassword);
        }
        Ok(())
    }
}

/// SHA-256 of a password.
#[must_use]
pub(crate) fn hash(password: &[u8]) -> Hash {
    Sha256::digest(password).into()
}

/// A `#`/`!` hash: exactly 64 lowercase hex digits.
fn parse_hash(hex: &[u8]) -> Result<Hash, SetUserError> {
    if hex.len() != 64 || !hex.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return Err(SetUserError::BadHash);
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let digit = |b: u8| if b.is_ascii_digit() { b - b'0' } else { b - b'a' + 10 };
        out[i] = (digit(pair[0]) << 4) | digit(pair[1]);
    }
    Ok(out)
}

/// Lowercase hex of a hash.
#[must_use]
pub(crate) fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &Hash, b: &Hash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Joins arguments that open a `(` selector with those that follow until one ends with `)`,
/// with single spaces, as Redis's `ACLMergeSelectorArguments`.
///
/// # Errors
/// The argument that opened a selector never closed.
pub(crate) fn merge_selectors(rules: &[Bytes]) -> Result<Vec<Bytes>, Bytes> {
    let mut out = Vec::with_capacity(rules.len());
    let mut open: Option<(Bytes, Vec<u8>)> = None;
    for rule in rules {
        match open.as_mut() {
            Some((_, acc)) => {
                acc.push(b' ');
                acc.extend_from_slice(rule);
                if rule.ends_with(b")") {
                    if let Some((_, acc)) = open.take() {
                        out.push(Bytes::from(acc));
                    }
                }
            }
            None if rule.starts_with(b"(") && !rule.ends_with(b")") => {
                open = Some((rule.clone(), rule.to_vec()));
            }
            None => out.push(rule.clone()),
        }
    }
    match open {
        Some((start, _)) => Err(start),
        None => Ok(out),
    }
}
