//! What the engine knows of a command besides how to run it: flags, ACL categories, key specs
//! and documentation, as Redis 7.0 describes its commands (COMMAND INFO and COMMAND DOCS show
//! them), and how keys are found in a request from the key specs.
//!
//! The command families (`cmd/`) write these; the engine plans with them. Flag and category
//! names are typed bits, so a misspelt one does not compile.

use std::ops::BitOr;

use bytes::Bytes;

use crate::storage::db::MemberRef;

macro_rules! bits {
    ($(#[$meta:meta])* $name:ident($repr:ty), $module:ident { $($(#[$doc:meta])* $flag:ident = $bit:expr, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
        pub(crate) struct $name($repr);

        #[allow(dead_code)] // Not every bitset uses every helper.
        impl $name {
            /// No bit set.
            pub(crate) const NONE: $name = $name(0);

            /// Whether every bit of `other` is set here.
            #[must_use]
            pub(crate) const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether any bit of `other` is set here.
            #[must_use]
            pub(crate) const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }

            /// The names of the set bits, in Redis's reply order.
            pub(crate) fn names(self) -> impl Iterator<Item = &'static str> {
                $module::ALL.iter().filter(move |(f, _)| self.contains(*f)).map(|(_, n)| *n)
            }

            /// The bit named `text` (any case), if there is one.
            #[must_use]
            pub(crate) fn named(text: &str) -> Option<$name> {
                $module::ALL.iter().find(|(_, n)| n.eq_ignore_ascii_case(text)).map(|(f, _)| *f)
            }
        }

        impl BitOr for $name {
            type Output = $name;
            fn bitor(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_list().entries(self.names()).finish()
            }
        }

        #[allow(missing_docs)]
        pub(crate) mod $module {
            use super::$name;
            $($(#[$doc])* pub(crate) const $flag: $name = $name(1 << $bit);)*
            /// Every bit with its name, in Redis's reply order.
            pub(crate) const ALL: &[($name, &str)] = &[$(($flag, $text)),*];
        }
    };
}

/// The commands that wait for more than other cores (MIGRATE's network): a script holding
/// every shard runs them from its task, its `redis.call`s yielding (`engine::script::run`).
pub(crate) const WAITING: &[&str] = &["migrate"];

bits! {
    /// A command's flags (COMMAND INFO's third field).
    Flags(u32), flag {
        WRITE = 0, "write";
        READONLY = 1, "readonly";
        DENYOOM = 2, "denyoom";
        ADMIN = 3, "admin";
        PUBSUB = 4, "pubsub";
        NOSCRIPT = 5, "noscript";
        BLOCKING = 6, "blocking";
        LOADING = 7, "loading";
        STALE = 8, "stale";
        SKIP_MONITOR = 9, "skip_monitor";
        SKIP_SLOWLOG = 10, "skip_slowlog";
        ASKING = 11, "asking";
        FAST = 12, "fast";
        NO_AUTH = 13, "no_auth";
        NO_MANDATORY_KEYS = 14, "no_mandatory_keys";
        NO_ASYNC_LOADING = 15, "no_async_loading";
        NO_MULTI = 16, "no_multi";
        /// Derived from the key specs, never written by hand.
        MOVABLE_KEYS = 17, "movablekeys";
        ALLOW_BUSY = 18, "allow_busy";
    }
}

bits! {
    /// ACL categories (COMMAND INFO's seventh field).
    Acl(u32), acl {
        KEYSPACE = 0, "@keyspace";
        READ = 1, "@read";
        WRITE = 2, "@write";
        SET = 3, "@set";
        SORTEDSET = 4, "@sortedset";
        LIST = 5, "@list";
        HASH = 6, "@hash";
        STRING = 7, "@string";
        BITMAP = 8, "@bitmap";
        HYPERLOGLOG = 9, "@hyperloglog";
        GEO = 10, "@geo";
        STREAM = 11, "@stream";
        PUBSUB = 12, "@pubsub";
        ADMIN = 13, "@admin";
        FAST = 14, "@fast";
        SLOW = 15, "@slow";
        BLOCKING = 16, "@blocking";
        DANGEROUS = 17, "@dangerous";
        CONNECTION = 18, "@connection";
        TRANSACTION = 19, "@transaction";
        SCRIPTING = 20, "@scripting";
    }
}

bits! {
    /// What a command does with a key (a key spec's flags).
    KeyFlags(u16), key {
        /// Read only.
        RO = 0, "RO";
        /// Read and write.
        RW = 1, "RW";
        /// Overwritten without being read.
        OW = 2, "OW";
        /// Removed.
        RM = 3, "RM";
        ACCESS = 4, "access";
        UPDATE = 5, "update";
        INSERT = 6, "insert";
        DELETE = 7, "delete";
        NOT_KEY = 8, "not_key";
        INCOMPLETE = 9, "incomplete";
        VARIABLE_FLAGS = 10, "variable_flags";
    }
}

impl Acl {
    /// The categories Redis adds from a command's flags (`setImplicitACLCategories`): write,
    /// read (not for scripting), admin and dangerous, pubsub, fast, blocking; slow when not
    /// fast.
    #[must_use]
    pub(crate) fn implied(self, flags: Flags) -> Acl {
        let mut all = self;
        let add = |all: &mut Acl, f: Flags, a: Acl| {
            if flags.contains(f) {
                *all = *all | a;
            }
        };
        add(&mut all, flag::WRITE, acl::WRITE);
        if !self.contains(acl::SCRIPTING) {
            add(&mut all, flag::READONLY, acl::READ);
        }
        add(&mut all, flag::ADMIN, acl::ADMIN | acl::DANGEROUS);
        add(&mut all, flag::PUBSUB, acl::PUBSUB);
        add(&mut all, flag::FAST, acl::FAST);
        add(&mut all, flag::BLOCKING, acl::BLOCKING);
        if !all.contains(acl::FAST) {
            all = all | acl::SLOW;
        }
        all
    }
}

/// Where a key spec starts looking for keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BeginSearch {
    /// At this argument.
    Index(i32),
    /// After a keyword (any case), searched from `startfrom` (from the end when negative).
    Keyword {
        /// The keyword.
        keyword: &'static str,
        /// Where the search starts.
        startfrom: i32,
    },
    /// Nowhere a spec can say (SORT's BY/GET keys come from the sorted values; its STORE may
    /// be anywhere): the command's own key finder knows.
    Unknown,
}

/// How a key spec finds its keys once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FindKeys {
    /// Keys up to `last` (relative to the start; negative: from the end), every `step`; a
    /// `limit` of n takes 1/n of what remains.
    Range {
        /// The last key, relative.
        last: i32,
        /// The step between keys.
        step: i32,
        /// The share of the remaining arguments (0: all).
        limit: i32,
    },
    /// A key count at `index` (relative to the start), the keys from `first` after it.
    KeyNum {
        /// Where the count is, relative to the start.
        index: i32,
        /// Where the first key is, relative to the start.
        first: i32,
        /// The step between keys.
        step: i32,
    },
    /// Not by a rule (see [`BeginSearch::Unknown`]).
    Unknown,
}

/// One key spec: where a group of keys sits in a request, and what the command does with
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeySpec {
    /// What is done with these keys.
    pub(crate) flags: KeyFlags,
    /// Where the search starts.
    pub(crate) begin: BeginSearch,
    /// How keys are found from there.
    pub(crate) find: FindKeys,
    /// Redis's note, if it has one.
    pub(crate) notes: Option<&'static str>,
}

impl KeySpec {
    /// Keys found from argument `index`.
    #[must_use]
    pub(crate) const fn index(index: i32) -> KeySpecStart {
        KeySpecStart(BeginSearch::Index(index))
    }

    /// Keys found after `keyword` (XREAD's STREAMS), searched from `startfrom`.
    #[must_use]
    pub(crate) const fn keyword(keyword: &'static str, startfrom: i32) -> KeySpecStart {
        KeySpecStart(BeginSearch::Keyword { keyword, startfrom })
    }

    /// Keys no spec can find (Redis's `unknown` begin_search and find_keys).
    #[must_use]
    pub(crate) const fn unknown() -> KeySpecFind {
        KeySpecFind(BeginSearch::Unknown, FindKeys::Unknown)
    }

    /// With Redis's note.
    #[must_use]
    pub(crate) const fn notes(mut self, notes: &'static str) -> KeySpec {
        self.notes = Some(notes);
        self
    }
}

/// A key spec being written: where it begins.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySpecStart(BeginSearch);

impl KeySpecStart {
    /// Then a range of keys.
    #[must_use]
    pub(crate) const fn range(self, last: i32, step: i32, limit: i32) -> KeySpecFind {
        KeySpecFind(self.0, FindKeys::Range { last, step, limit })
    }

    /// Then a key count and its keys.
    #[must_use]
    pub(crate) const fn keynum(self, index: i32, first: i32, step: i32) -> KeySpecFind {
        KeySpecFind(self.0, FindKeys::KeyNum { index, first, step })
    }
}

/// A key spec being written: where it begins and how it finds keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySpecFind(BeginSearch, FindKeys);

impl KeySpecFind {
    /// With its flags: the whole key spec.
    #[must_use]
    pub(crate) const fn flags(self, flags: KeyFlags) -> KeySpec {
        KeySpec { flags, begin: self.0, find: self.1, notes: None }
    }
}

/// Redis's first/last/step (COMMAND INFO's fourth to sixth fields), computed from the key
/// specs as Redis computes its "legacy range" (`populateCommandLegacyRangeSpec`), and whether
/// that range misses keys (the command's keys are then "movable").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Legacy {
    /// The first key's position (0: none).
    pub(crate) first: i32,
    /// The last key's position (negative: from the end).
    pub(crate) last: i32,
    /// The step.
    pub(crate) step: i32,
    /// The key specs say more than the range can.
    pub(crate) movable: bool,
}

impl Legacy {
    /// The legacy range of `specs`.
    #[must_use]
    pub(crate) fn of(specs: &[KeySpec]) -> Legacy {
        match specs {
            [] => return Legacy::default(),
            [KeySpec {
                begin: BeginSearch::Index(pos),
                find: FindKeys::Range { last, step, .. },
                flags,
                ..
            }] => {
                return Legacy {
                    first: *pos,
                    last: if *last >= 0 { pos + last } else { *last },
                    step: *step,
                    movable: flags.contains(key::INCOMPLETE),
                };
            }
            _ => {}
        }
        let (mut first, mut last, mut prev_last, mut movable) = (i32::MAX, 0i32, 0i32, false);
        for spec in specs {
            let (BeginSearch::Index(pos), FindKeys::Range { last: rel, step, .. }) = (spec.begin, spec.find)
            else {
                movable = true;
                continue;
            };
            if step != 1 || (prev_last != 0 && prev_last != pos - 1) {
                movable = true;
                continue;
            }
            movable |= spec.flags.contains(key::INCOMPLETE);
            first = first.min(pos);
            let abs = if rel >= 0 { rel + pos } else { rel };
            // Redis compares as unsigned, so that a negative (from the end) wins.
            if (abs as u32) > (last as u32) {
                last = abs;
            }
            prev_last = last;
        }
        if first == i32::MAX {
            return Legacy { movable: true, ..Legacy::default() };
        }
        Legacy { first, last, step: 1, movable }
    }
}

/// Finds the keys of a request as Redis's `getKeysUsingKeySpecs` does: every key spec in turn,
/// `(position, flags)` for each key. `None` when a key spec does not fit the request (a bad
/// key count, a range past its end): the command reports that when it runs.
#[must_use]
pub(crate) fn find_keys(specs: &[KeySpec], args: &[Bytes]) -> Option<Vec<(usize, KeyFlags)>> {
    let mut found = Vec::new();
    find_keys_into(specs, args, &mut found)?;
    Some(found)
}

/// As [`find_keys`], appending to `found` (a buffer kept across requests: the ACL check finds
/// keys on every request); `None` when the arguments do not fit the key specs.
pub(crate) fn find_keys_into(
    specs: &[KeySpec],
    args: &[Bytes],
    found: &mut Vec<(usize, KeyFlags)>,
) -> Option<()> {
    let argc = args.len() as i64;
    for spec in specs {
        if spec.flags.contains(key::NOT_KEY) {
            continue;
        }
        let mut first = match spec.begin {
            BeginSearch::Index(first) => i64::from(first),
            BeginSearch::Keyword { keyword, startfrom } => match after_keyword(args, keyword, startfrom) {
                Some(first) => first,
                None => continue,
            },
            BeginSearch::Unknown => continue,
        };
        let (last, step) = match spec.find {
            FindKeys::Range { last, step, limit } => {
                let last = if last >= 0 {
                    first + i64::from(last)
                } else if limit == 0 {
                    argc + i64::from(last)
                } else {
                    first + ((argc - first) / i64::from(limit) + i64::from(last))
                };
                (last, i64::from(step))
            }
            FindKeys::KeyNum { index, first: from, step } => {
                let count = args.get(usize::try_from(first + i64::from(index)).ok()?)?;
                let n = crate::num::parse_i64(count).filter(|n| *n >= 0)?;
                first += i64::from(from);
                // A count past the arguments (up to i64::MAX) is a bad request, not a panic.
                (first.checked_add(n)? - 1, i64::from(step))
            }
            FindKeys::Unknown => continue,
        };
        if last >= argc || last < first || first >= argc || step <= 0 {
            return None;
        }
        let mut i = first;
        while i <= last {
            found.push((i as usize, spec.flags));
            i += step;
        }
    }
    Some(())
}

/// Where the keys after `keyword` start, as Redis's `getKeysUsingKeySpecs` searches: from
/// `startfrom` towards the end (or, negative, from the end towards the start), never looking
/// at the last argument going forward or the first going back.
fn after_keyword(args: &[Bytes], keyword: &str, startfrom: i32) -> Option<i64> {
    let argc = args.len() as i64;
    let (start, end) =
        if startfrom > 0 { (i64::from(startfrom), argc - 1) } else { (argc + i64::from(startfrom), 1) };
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            return None;
        }
        if args[i as usize].eq_ignore_ascii_case(keyword.as_bytes()) {
            return Some(i + 1);
        }
        i += if start <= end { 1 } else { -1 };
    }
    None
}

/// Which member of a container a request names, for prefetching its slot in a pipelined batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefetch {
    /// None worth fetching.
    Nothing,
    /// The argument at this position (HSET's field, SADD's member).
    Member(u8),
    /// A scored member (ZADD key score member): the member and its score, when the request has
    /// exactly `argc` arguments (no flags, one pair).
    Scored {
        /// The score's position.
        score: u8,
        /// The member's position.
        member: u8,
        /// The request's length for this to hold.
        argc: u8,
    },
}

impl Prefetch {
    /// The member of a container `args` names, if this is a prefetch of one.
    #[must_use]
    pub(crate) fn member_of(self, args: &[Bytes]) -> Option<MemberRef<'_>> {
        match self {
            Prefetch::Nothing => None,
            Prefetch::Member(at) => {
                Some(MemberRef { key: args.get(1)?, member: args.get(usize::from(at))?, score: None })
            }
            Prefetch::Scored { score, member, argc } if args.len() == usize::from(argc) => Some(MemberRef {
                key: args.get(1)?,
                member: args.get(usize::from(member))?,
                score: args.get(usize::from(score)),
            }),
            Prefetch::Scored { .. } => None,
        }
    }
}

/// What the slow log, the latency monitor and MONITOR need of a command: derived from its name
/// and flags once, by the registry, and carried by what a shard runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// `fast`: a slow run is the latency monitor's `fast-command` event, not `command`.
    pub(crate) fast: bool,
    /// `skip_slowlog`: never in the slow log (EXEC, whose commands are logged each).
    pub(crate) skip_slowlog: bool,
    /// Shown to monitors: not `skip_monitor` nor `admin`, except the script commands (which
    /// Redis feeds itself, before their calls).
    pub(crate) monitored: bool,
    /// Which of its arguments are secrets.
    pub(crate) secrets: Secrets,
}

/// Whether the command `name` runs a script or function (EVAL, EVALSHA, FCALL and their
/// read-only forms).
#[must_use]
pub(crate) fn is_script_call(name: &str) -> bool {
    matches!(name, "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro")
}

impl Observed {
    /// The traits of the command `full_name` (`container|sub` for a subcommand) with `flags`.
    #[must_use]
    pub(crate) fn of(full_name: &str, flags: Flags) -> Observed {
        let script = is_script_call(full_name);
        Observed {
            fast: flags.contains(flag::FAST),
            skip_slowlog: flags.contains(flag::SKIP_SLOWLOG),
            monitored: script || !(flags.contains(flag::SKIP_MONITOR) || flags.contains(flag::ADMIN)),
            secrets: match full_name {
                "auth" => Secrets::Auth,
                "hello" => Secrets::Hello,
                "acl|setuser" => Secrets::AclSetuser,
                "config|set" => Secrets::ConfigSet,
                "migrate" => Secrets::Migrate,
                _ => Secrets::None,
            },
        }
    }
}

/// The arguments of a command that are never shown (slow log, MONITOR), as the commands that
/// take secrets redact them in Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Secrets {
    /// None.
    #[default]
    None,
    /// AUTH: every argument.
    Auth,
    /// HELLO: the pair after AUTH.
    Hello,
    /// ACL SETUSER: every rule.
    AclSetuser,
    /// CONFIG SET: the values of `masterauth`, `masteruser` and `requirepass`.
    ConfigSet,
    /// MIGRATE: what follows AUTH (one) and AUTH2 (two).
    Migrate,
}

/// A command's documentation (COMMAND DOCS).
#[derive(Debug, Clone, Default)]
pub(crate) struct Docs {
    /// The group (`string`, `generic`, `connection`, ...).
    pub(crate) group: &'static str,
    /// The Redis version that introduced it.
    pub(crate) since: &'static str,
    /// Its time complexity, as Redis words it.
    pub(crate) complexity: &'static str,
    /// One line on what it does.
    pub(crate) summary: &'static str,
    /// Changes by version.
    pub(crate) history: &'static [(&'static str, &'static str)],
    /// Deprecated since this version, replaced by this text.
    pub(crate) deprecated: Option<(&'static str, &'static str)>,
    /// A system command, not for applications (Redis's `syscmd` doc flag).
    pub(crate) syscmd: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn positions(specs: &[KeySpec], line: &str) -> Vec<usize> {
        find_keys(specs, &args(line)).unwrap_or_default().into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn keys_are_found_as_redis_finds_them() {
        let one = [KeySpec::index(1).range(0, 1, 0).flags(key::RO)];
        assert_eq!(positions(&one, "GET k"), [1]);
        let pairs = [KeySpec::index(1).range(-1, 2, 0).flags(key::OW)];
        assert_eq!(positions(&pairs, "MSET a 1 b 2"), [1, 3]);
        // ZUNIONSTORE dest 2 a b WEIGHTS 1 1: the destination, then the counted keys.
        let store = [
            KeySpec::index(1).range(0, 1, 0).flags(key::OW),
            KeySpec::index(2).keynum(0, 1, 1).flags(key::RO),
        ];
        assert_eq!(positions(&store, "ZUNIONSTORE d 2 a b WEIGHTS 1 1"), [1, 3, 4]);
        assert!(find_keys(&store, &args("ZUNIONSTORE d -100 a")).is_none(), "a bad count: no keys");
        assert!(find_keys(&store, &args("ZUNIONSTORE d 5 a")).is_none(), "nor a count past the end");
        let huge = "ZUNIONSTORE d 9223372036854775807 a";
        assert!(find_keys(&store, &args(huge)).is_none(), "nor one that would overflow");
        // BLPOP a b 0: every key but the timeout.
        let blpop = [KeySpec::index(1).range(-2, 1, 0).flags(key::RW)];
        assert_eq!(positions(&blpop, "BLPOP a b 0"), [1, 2]);
    }

    #[test]
    fn legacy_ranges_are_redis_s() {
        let l = Legacy::of(&[KeySpec::index(1).range(-1, 2, 0).flags(key::OW)]);
        assert_eq!((l.first, l.last, l.step, l.movable), (1, -1, 2, false));
        let l = Legacy::of(&[
            KeySpec::index(1).range(0, 1, 0).flags(key::OW),
            KeySpec::index(2).keynum(0, 1, 1).flags(key::RO),
        ]);
        assert_eq!((l.first, l.last, l.step, l.movable), (1, 1, 1, true));
        let l = Legacy::of(&[
            KeySpec::index(1).range(0, 1, 0).flags(key::RW),
            KeySpec::index(2).range(0, 1, 0).flags(key::RW),
        ]);
        assert_eq!((l.first, l.last, l.step, l.movable), (1, 2, 1, false));
        let l = Legacy::of(&[KeySpec::index(2).keynum(0, 1, 1).flags(key::RW)]);
        assert_eq!((l.first, l.last, l.step, l.movable), (0, 0, 0, true));
    }

    #[test]
    fn implied_categories_follow_flags() {
        let get = acl::STRING.implied(flag::READONLY | flag::FAST);
        assert_eq!(get.names().collect::<Vec<_>>(), ["@read", "@string", "@fast"]);
        let set = acl::STRING.implied(flag::WRITE | flag::DENYOOM);
        assert_eq!(set.names().collect::<Vec<_>>(), ["@write", "@string", "@slow"]);
        assert_eq!(Flags::named("NO_MULTI"), Some(flag::NO_MULTI));
    }
}
