//! One ACL selector: the commands, key patterns and channel patterns it allows, and the rules
//! that change them (`+@all`, `~key*`, `%R~k*`, `&chan`, ...), as Redis 7.0's `ACLSetSelector`.
//! A user has a root selector and any number of `(...)` ones; a request passes when one selector
//! allows all of it.

use bytes::Bytes;

use crate::engine::acl::catalog::{Catalog, Entry};
use crate::engine::acl::SetUserError;
use crate::engine::spec::Acl;
use crate::glob::Pattern;

/// Read and write permission on a key pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KeyPerm {
    /// `%R~`: the pattern allows reading.
    pub(crate) read: bool,
    /// `%W~`: the pattern allows writing.
    pub(crate) write: bool,
}

impl KeyPerm {
    /// `~`: both.
    pub(crate) const ALL: KeyPerm = KeyPerm { read: true, write: true };

    /// Whether this allows everything `need` asks.
    #[inline]
    #[must_use]
    pub(crate) fn covers(self, need: KeyPerm) -> bool {
        (self.read || !need.read) && (self.write || !need.write)
    }
}

/// The key patterns by the byte their matches start with, so that a request's key is tried
/// only against those that can match it (a user with many prefixes, `~cache:* ~session:* ...`,
/// pays for a few, not all). A copy of the patterns, those with a literal first byte grouped
/// by it and then the rest, with where each byte's group starts: the table sits inside the
/// selector and the patterns in one array, so a check follows one pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyIndex {
    /// `sorted[starts[b]..starts[b + 1]]` start with byte `b`; `sorted[starts[256]..]` may
    /// start with anything.
    starts: [u8; 257],
    sorted: Vec<(Pattern, KeyPerm)>,
}

impl Default for KeyIndex {
    fn default() -> KeyIndex {
        KeyIndex { starts: [0; 257], sorted: Vec::new() }
    }
}

impl KeyIndex {
    fn of(keys: &[(Pattern, KeyPerm)]) -> KeyIndex {
        let mut sorted = keys.to_vec();
        sorted.sort_by_key(|(p, _)| p.first_literal().map_or(256, u16::from));
        let mut starts = [0u8; 257];
        let literal = sorted.partition_point(|(p, _)| p.first_literal().is_some());
        if literal > usize::from(u8::MAX) {
            // Past what the table counts, every pattern is tried.
            return KeyIndex { starts, sorted };
        }
        for b in sorted[..literal].iter().filter_map(|(p, _)| p.first_literal()) {
            starts[usize::from(b) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        KeyIndex { starts, sorted }
    }

    /// The patterns that start with `first`.
    #[inline]
    fn starting_with(&self, first: u8) -> &[(Pattern, KeyPerm)] {
        let b = usize::from(first);
        let (from, to) = (usize::from(self.starts[b]), usize::from(self.starts[b + 1]));
        self.sorted.get(from..to).unwrap_or(&[])
    }

    /// The patterns that may start with anything.
    #[inline]
    fn wild(&self) -> &[(Pattern, KeyPerm)] {
        self.sorted.get(usize::from(self.starts[256])..).unwrap_or(&[])
    }
}

/// One bit per command id (a selector's command bits stay in a cache line or a few).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandBits {
    words: Box<[u64]>,
    count: usize,
}

impl CommandBits {
    fn new(count: usize) -> CommandBits {
        CommandBits { words: vec![0; count.div_ceil(64)].into_boxed_slice(), count }
    }

    /// Whether command `id`'s bit is set.
    #[inline]
    #[must_use]
    pub(crate) fn get(&self, id: usize) -> bool {
        self.words.get(id / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set(&mut self, id: usize, on: bool) {
        if let Some(w) = self.words.get_mut(id / 64) {
            if on {
                *w |= 1 << (id % 64);
            } else {
                *w &= !(1 << (id % 64));
            }
        }
    }

    fn fill(&mut self, on: bool) {
        for id in 0..self.count {
            self.set(id, on);
        }
    }
}

/// The commands a selector allows, by registry id, and the first arguments it allows of
/// commands it does not (the deprecated `+select|0` form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    /// Allowed command ids (a container's id and each of its subcommands' ids).
    pub(crate) allowed: CommandBits,
    /// Set by `+@all`, cleared by `-@all`: commands added later are allowed too (Redis's
    /// reserved bit). It decides whether the description starts with `+@all` or `-@all`.
    pub(crate) future_commands: bool,
    /// Every command is allowed (`+@all` with nothing taken away since).
    pub(crate) all_commands: bool,
    /// First arguments allowed per command id whose bit is clear.
    pub(crate) first_args: Vec<(usize, Vec<Bytes>)>,
    /// `allkeys` / `~*`.
    pub(crate) all_keys: bool,
    /// Key patterns in the order added, with their permissions.
    pub(crate) keys: Vec<(Pattern, KeyPerm)>,
    /// The key patterns again, ordered for the check of every request.
    key_index: KeyIndex,
    /// `allchannels` / `&*`.
    pub(crate) all_channels: bool,
    /// Channel patterns in the order added.
    pub(crate) channels: Vec<Pattern>,
}

impl Selector {
    /// A selector that allows nothing (channels per `acl-pubsub-default`).
    #[must_use]
    pub(crate) fn new(commands: &Catalog, all_channels: bool) -> Selector {
        Selector {
            allowed: CommandBits::new(commands.count()),
            future_commands: false,
            all_commands: false,
            first_args: Vec::new(),
            all_keys: false,
            keys: Vec::new(),
            key_index: KeyIndex::default(),
            all_channels,
            channels: Vec::new(),
        }
    }

    /// Whether this selector lets everything through without looking at the request.
    #[must_use]
    pub(crate) fn unrestricted(&self) -> bool {
        self.all_commands && self.all_keys && self.all_channels
    }

    /// Applies one selector rule (the text of a user rule that is not a user-level one).
    ///
    /// # Errors
    /// Redis's `ACLSetSelector` errors.
    pub(crate) fn apply(&mut self, commands: &Catalog, rule: &[u8]) -> Result<(), SetUserError> {
        let applied = self.apply_rule(commands, rule);
        self.key_index = KeyIndex::of(&self.keys);
        applied
    }

    fn apply_rule(&mut self, commands: &Catalog, rule: &[u8]) -> Result<(), SetUserError> {
        let lower = rule.to_ascii_lowercase();
        match &lower[..] {
            b"allkeys" | b"~*" => {
                self.all_keys = true;
                self.keys.clear();
            }
            b"resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            b"allchannels" | b"&*" => {
                self.all_channels = true;
                self.channels.clear();
            }
            b"resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            b"allcommands" | b"+@all" => self.set_all(true),
            b"nocommands" | b"-@all" => self.set_all(false),
            _ => match rule.first() {
                Some(b'~') => self.add_key(&rule[1..], KeyPerm::ALL)?,
                Some(b'%') => {
                    let tilde = rule.iter().position(|&b| b == b'~').ok_or(SetUserError::Syntax)?;
                    let mut perm = KeyPerm::default();
                    for &flag in &rule[1..tilde] {
                        match flag.to_ascii_uppercase() {
                            b'R' if !perm.read => perm.read = true,
                            b'W' if !perm.write => perm.write = true,
                            _ => return Err(SetUserError::Syntax),
                        }
                    }
                    if perm == KeyPerm::default() {
                        return Err(SetUserError::Syntax);
                    }
                    self.add_key(&rule[tilde + 1..], perm)?;
                }
                Some(b'&') => self.add_channel(&rule[1..])?,
                Some(&sign @ (b'+' | b'-')) => self.command_rule(commands, sign == b'+', &rule[1..])?,
                _ => return Err(SetUserError::Syntax),
            },
        }
        Ok(())
    }

    fn set_all(&mut self, on: bool) {
        self.allowed.fill(on);
        self.future_commands = on;
        self.all_commands = on;
        self.first_args.clear();
    }

    fn add_key(&mut self, pattern: &[u8], perm: KeyPerm) -> Result<(), SetUserError> {
        if self.all_keys {
            return Err(SetUserError::AfterAllKeys);
        }
        if has_spaces(pattern) {
            return Err(SetUserError::Syntax);
        }
        match self.keys.iter_mut().find(|(p, _)| p[..] == *pattern) {
            Some((_, have)) => {
                have.read |= perm.read;
                have.write |= perm.write;
            }
            None => self.keys.push((Pattern::new(pattern), perm)),
        }
        Ok(())
    }

    fn add_channel(&mut self, pattern: &[u8]) -> Result<(), SetUserError> {
        if self.all_channels {
            return Err(SetUserError::AfterAllChannels);
        }
        if has_spaces(pattern) {
            return Err(SetUserError::Syntax);
        }
        if !self.channels.iter().any(|c| c[..] == *pattern) {
            self.channels.push(Pattern::new(pattern));
        }
        Ok(())
    }

    /// `+name`, `-name`, `+@category`, `-@category`, `+cmd|sub`, `+cmd|firstarg`.
    fn command_rule(&mut self, commands: &Catalog, allow: bool, name: &[u8]) -> Result<(), SetUserError> {
        if let Some(category) = name.strip_prefix(b"@") {
            let cat = std::str::from_utf8(category)
                .ok()
                .and_then(|c| Acl::named(&format!("@{c}")))
                .ok_or(SetUserError::UnknownCommand)?;
            for entry in commands.iter().filter(|e| e.acl.contains(cat)) {
                self.set_command(commands, entry, allow);
            }
            return Ok(());
        }
        let split = name.iter().rposition(|&b| b == b'|');
        let Some(bar) = split else {
            let cmd = commands.get(name).filter(|e| !e.is_subcommand).ok_or(SetUserError::UnknownCommand)?;
            self.set_command(commands, cmd, allow);
            return Ok(());
        };
        let (parent, arg) = (&name[..bar], &name[bar + 1..]);
        if !allow {
            // `-x|y` must name a real subcommand.
            let cmd = commands.get(name).ok_or(SetUserError::UnknownCommand)?;
            self.set_command(commands, cmd, false);
            return Ok(());
        }
        if parent.contains(&b'|') {
            let grand = &parent[..parent.iter().position(|&b| b == b'|').unwrap_or(0)];
            return match commands.get(grand).filter(|e| !e.is_subcommand) {
                Some(_) => Err(SetUserError::FirstArgOfSubcommand),
                None => Err(SetUserError::UnknownCommand),
            };
        }
        let cmd = commands.get(parent).filter(|e| !e.is_subcommand).ok_or(SetUserError::UnknownCommand)?;
        if arg.is_empty() {
            return Err(SetUserError::Syntax);
        }
        if !cmd.subcommands.is_empty() {
            let sub = commands.get(name).ok_or(SetUserError::UnknownCommand)?;
            self.set_command(commands, sub, true);
            return Ok(());
        }
        // The deprecated first-argument form: allowed only while the command itself is not.
        let lower = Bytes::from(arg.to_ascii_lowercase());
        match self.first_args.iter_mut().find(|(id, _)| *id == cmd.id) {
            Some((_, args)) if args.contains(&lower) => {}
            Some((_, args)) => args.push(lower),
            None => self.first_args.push((cmd.id, vec![lower])),
        }
        Ok(())
    }

    /// Allows or denies `cmd` (and, for a container, its subcommands), dropping its first
    /// arguments.
    fn set_command(&mut self, commands: &Catalog, cmd: &Entry, allow: bool) {
        let mut set = |id: usize| {
            self.allowed.set(id, allow);
            self.first_args.retain(|(i, _)| *i != id);
        };
        set(cmd.id);
        cmd.subcommands.iter().filter_map(|&id| commands.by_id(id)).for_each(|s| set(s.id));
        if !allow {
            self.all_commands = false;
        }
    }

    /// Whether this selector allows running `cmd` with `args` (before keys and channels).
    #[inline]
    #[must_use]
    pub(crate) fn allows_command(&self, id: usize, is_subcommand: bool, args: &[Bytes]) -> bool {
        if self.all_commands || self.allowed.get(id) {
            return true;
        }
        let first = if is_subcommand { 2 } else { 1 };
        let Some(arg) = args.get(first) else { return false };
        self.first_args
            .iter()
            .find(|(i, _)| *i == id)
            .is_some_and(|(_, allowed)| allowed.iter().any(|a| a.eq_ignore_ascii_case(arg)))
    }

    /// Whether every key may be read: all keys, or a `*` pattern that reads.
    #[must_use]
    pub(crate) fn reads_every_key(&self) -> bool {
        self.all_keys || self.key_index.sorted.iter().any(|(p, perm)| perm.read && p.text() == b"*")
    }

    /// Whether `key` may be used with permission `need`: one single pattern must both match it
    /// and carry every permission asked (an `RO`-only key asks none and any pattern will do).
    #[inline]
    #[must_use]
    pub(crate) fn allows_key(&self, key: &[u8], need: KeyPerm) -> bool {
        if self.all_keys {
            return true;
        }
        let allows = |(pattern, perm): &(Pattern, KeyPerm)| perm.covers(need) && pattern.matches(key);
        if let Some(&first) = key.first() {
            if self.key_index.starting_with(first).iter().any(allows) {
                return true;
            }
        }
        self.key_index.wild().iter().any(allows)
    }

    /// Whether a channel may be published or subscribed to; a `PSUBSCRIBE` pattern (`literal`)
    /// must equal one of the patterns, not match it.
    #[must_use]
    pub(crate) fn allows_channel(&self, channel: &[u8], literal: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|p| if literal { p[..] == *channel } else { p.matches(channel) })
    }
}

/// Redis's `ACLStringHasSpaces`: C's whitespace or NUL (refused in user names and patterns).
#[must_use]
pub(crate) fn has_spaces(name: &[u8]) -> bool {
    name.iter().any(|b| b.is_ascii_whitespace() || *b == 0 || *b == 0x0b)
}

#[cfg(test)]
mod tests {
    use super::{KeyPerm, Selector};
    use crate::engine::acl::Catalog;

    fn selector(rules: &[String]) -> Selector {
        let commands = Catalog::new(Vec::new());
        let mut s = Selector::new(&commands, false);
        for rule in rules {
            s.apply(&commands, rule.as_bytes()).expect("valid rule");
        }
        s
    }

    /// The first-byte index finds what a scan of every pattern finds: literal, prefix and
    /// glob patterns, an empty key, permissions per pattern, and more literal patterns than
    /// the table counts.
    #[test]
    fn key_index_agrees_with_every_pattern_tried_in_order() {
        let read = KeyPerm { read: true, write: false };
        let write = KeyPerm { read: false, write: true };
        for extra in [0, 300] {
            let mut rules: Vec<String> =
                ["~cache:*", "%R~cart:*", "~exact", "~*:tail", "~?ne", "%W~[ab]*", "~"]
                    .map(String::from)
                    .to_vec();
            rules.extend((0..extra).map(|i| format!("~k{i}:*")));
            let s = selector(&rules);
            let scan = |key: &[u8], need: KeyPerm| {
                s.keys.iter().any(|(p, perm)| perm.covers(need) && crate::glob::matches(p, key, false))
            };
            let keys: [&[u8]; 13] = [
                b"cache:1", b"cart:1", b"exact", b"exactly", b"x:tail", b"one", b"a1", b"b", b"", b"k7:x",
                b"k299:y", b"k300:z", b"zzz",
            ];
            for key in keys {
                for need in [KeyPerm::default(), read, write, KeyPerm::ALL] {
                    assert_eq!(s.allows_key(key, need), scan(key, need), "{} {need:?}", key.escape_ascii());
                }
            }
            assert!(s.allows_key(b"cart:1", read) && !s.allows_key(b"cart:1", write));
        }
    }
}
