//! Commands as the engine runs them: a spec (name, arity, flags, ACL categories, key specs,
//! docs) and how it runs, and the registry built once from every family's commands.
//!
//! Each family in `cmd/` returns its `Command`s; the runtime hands the registry to every core.
//! The engine asks a command what it is (its flags, its keys, where it runs), never its name.

use std::future::Future;
use std::pin::Pin;

use ahash::AHashMap;
use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::router::Tx;
use crate::engine::session::Session;
use crate::engine::shard::{ShardCmd, ShardFn};
use crate::engine::spec::{find_keys, Acl, Docs, Flags, KeyFlags, KeySpec, Legacy, Prefetch};
use crate::storage::db::MemberRef;

/// A command's reply, still to come.
pub(crate) type Pending<'a> = Pin<Box<dyn Future<Output = CmdResult> + 'a>>;
/// A command run by the connection's session (it may await other cores).
pub(crate) type SessionFn = for<'a> fn(&'a mut Session, &'a [Bytes]) -> Pending<'a>;
/// A session command's way to run at once, with no future of its own when it needs none (see
/// [`Command::now`]).
pub(crate) type NowFn = for<'a> fn(&'a mut Session, &'a [Bytes]) -> Now<'a>;
/// A command that only reads the session and needs no ordering against shards (PING, ECHO).
pub(crate) type InlineFn = fn(&Session, &[Bytes]) -> CmdResult;
/// Finds a request's keys and their flags where the key specs cannot say (their flags vary
/// with the arguments: SET with or without GET), as Redis's `getkeys_proc`; appended to the
/// vector given (the ACL check keeps one across requests).
pub(crate) type GetKeysFn = fn(&[Bytes], &mut Vec<(usize, KeyFlags)>);
/// A keyed command's protocol across shards, inside a transaction holding every shard it
/// touches (its own, or an EXEC's), in database `db`.
pub(crate) type AcrossFn = for<'a> fn(&'a Tx, usize, &'a [Bytes]) -> Pending<'a>;

/// What a [`NowFn`] did.
pub(crate) enum Now<'a> {
    /// It ran: its result.
    Done(CmdResult),
    /// It began, and has to wait for something: this finishes it.
    Finish(Pending<'a>),
}

impl<'a> Now<'a> {
    /// As a session command's reply still to come (the path of [`Run::Session`]).
    pub(crate) fn into_pending(self) -> Pending<'a> {
        match self {
            Now::Done(result) => Box::pin(std::future::ready(result)),
            Now::Finish(rest) => rest,
        }
    }
}

/// How a command runs.
#[derive(Clone, Copy)]
pub(crate) enum Run {
    /// On the shard that owns its keys; every key must live there (or it names one key).
    Shard(ShardFn),
    /// On each shard with that shard's keys, atomically across them; the replies merged.
    Split(ShardFn, Merge),
    /// On one shard when every key lives there, else by its own cross-shard protocol.
    Across(ShardFn, AcrossFn),
    /// By the session, after every earlier command of the pipeline has replied.
    Session(SessionFn),
    /// By the session at once: a pure reply that needs no ordering against the shards.
    Inline(InlineFn),
    /// A container: its subcommands run.
    Container,
}

/// How the per-shard replies of a split command combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// Integers add up (DEL, EXISTS).
    Sum,
    /// Array elements go back to their keys' positions (MGET).
    Positional,
    /// Every part answers OK (MSET).
    AllOk,
}

/// One command (or subcommand).
pub(crate) struct Command {
    /// Its name, lowercase (a subcommand's own name).
    pub(crate) name: &'static str,
    /// `container|sub` for a subcommand, else the name (set by the registry).
    pub(crate) full_name: String,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub(crate) arity: i32,
    /// Its flags (with `movablekeys` derived from the key specs).
    pub(crate) flags: Flags,
    /// Its ACL categories (with those its flags imply).
    pub(crate) acl: Acl,
    /// Where its keys are and what it does with them.
    pub(crate) keys: Vec<KeySpec>,
    /// Redis's first/last/step, from the key specs.
    pub(crate) legacy: Legacy,
    /// Hints for clients (`nondeterministic_output`, `request_policy:...`).
    pub(crate) tips: &'static [&'static str],
    /// COMMAND DOCS.
    pub(crate) docs: Docs,
    /// A container's subcommands.
    pub(crate) subcommands: Vec<Command>,
    /// How it runs.
    pub(crate) run: Run,
    /// A session command's way to run at once: one a pipeline dispatches, with nothing for
    /// another shard queued ahead of it, takes its reply slot as a local shard command does
    /// (a script whose keys are on this core's shard: no future, no wait). It remembers no
    /// keys for CLIENT TRACKING (scripts remember their own).
    pub(crate) now: Option<NowFn>,
    /// What a pipelined batch prefetches for it.
    pub(crate) prefetch: Prefetch,
    /// Its keys with their flags, when the key specs' flags vary with the arguments.
    pub(crate) getkeys: Option<GetKeysFn>,
    /// Runs at once even inside MULTI (MULTI, EXEC, DISCARD, WATCH, QUIT, RESET).
    pub(crate) control: bool,
    /// A RESP2 client with subscriptions may run it.
    pub(crate) when_subscribed: bool,
    /// A session command that reaches every shard (KEYS, SCAN, FLUSHDB, DBSIZE): EXEC locks
    /// them all for it.
    pub(crate) fan_out: bool,
    /// A session command that reaches every shard only with some arguments (SORT with a BY or
    /// GET pattern reads keys it does not name): EXEC locks them all for it then.
    pub(crate) fan_out_when: Option<fn(&[Bytes]) -> bool>,
    /// Not a write, yet it may add to the replication stream (Redis's hidden `may_replicate`
    /// flag: PUBLISH): a write pause holds it.
    pub(crate) may_replicate: bool,
    /// A container's subcommand (set by the registry).
    pub(crate) is_subcommand: bool,
    /// Which of its arguments an ACL check takes as channels (set by the registry).
    pub(crate) channels: crate::engine::acl::Channels,
    /// Its index in the registry (for per-command statistics).
    pub(crate) id: usize,
    /// What the slow log, the latency monitor and MONITOR need of it (set by the registry).
    pub(crate) observed: crate::engine::spec::Observed,
}

impl Command {
    fn new(name: &'static str, arity: i32, run: Run) -> Command {
        Command {
            name,
            full_name: String::new(),
            arity,
            flags: Flags::NONE,
            acl: Acl::NONE,
            keys: Vec::new(),
            legacy: Legacy::default(),
            tips: &[],
            docs: Docs::default(),
            subcommands: Vec::new(),
            run,
            now: None,
            prefetch: Prefetch::Nothing,
            getkeys: None,
            control: false,
            when_subscribed: false,
            fan_out: false,
            fan_out_when: None,
            may_replicate: false,
            is_subcommand: false,
            channels: crate::engine::acl::Channels::None,
            id: 0,
            observed: crate::engine::spec::Observed::default(),
        }
    }

    /// This command bound for a shard: `run` (its body, or a split command's part) on `args`
    /// in database `db`.
    #[must_use]
    pub(crate) fn shard_cmd(&self, run: ShardFn, db: usize, args: Vec<Bytes>) -> ShardCmd {
        ShardCmd {
            id: Some(self.id),
            prefetch: self.prefetch,
            run,
            db,
            args,
            write: self.flags.contains(crate::engine::spec::flag::WRITE),
            denyoom: self.flags.contains(crate::engine::spec::flag::DENYOOM),
            obey: false,
            origin: crate::engine::slowlog::Origin::Script,
            observed: self.observed,
            track: None,
        }
    }

    /// A command run on the shard that owns its key(s).
    #[must_use]
    pub(crate) fn shard(name: &'static str, arity: i32, run: ShardFn) -> Command {
        Command::new(name, arity, Run::Shard(run))
    }

    /// A command split per shard and merged.
    #[must_use]
    pub(crate) fn split(name: &'static str, arity: i32, run: ShardFn, merge: Merge) -> Command {
        Command::new(name, arity, Run::Split(run, merge))
    }

    /// A command with a protocol of its own across shards.
    #[must_use]
    pub(crate) fn across(name: &'static str, arity: i32, here: ShardFn, across: AcrossFn) -> Command {
        Command::new(name, arity, Run::Across(here, across))
    }

    /// A command the session runs.
    #[must_use]
    pub(crate) fn session(name: &'static str, arity: i32, run: SessionFn) -> Command {
        Command::new(name, arity, Run::Session(run))
    }

    /// A command the session answers at once.
    #[must_use]
    pub(crate) fn inline(name: &'static str, arity: i32, run: InlineFn) -> Command {
        Command::new(name, arity, Run::Inline(run))
    }

    /// A container of subcommands.
    #[must_use]
    pub(crate) fn container(name: &'static str, arity: i32, subcommands: Vec<Command>) -> Command {
        Command { subcommands, ..Command::new(name, arity, Run::Container) }
    }

    /// With these subcommands (COMMAND, which also runs by itself).
    #[must_use]
    pub(crate) fn subcommands(mut self, subcommands: Vec<Command>) -> Command {
        self.subcommands = subcommands;
        self
    }

    /// With these flags.
    #[must_use]
    pub(crate) fn flags(mut self, flags: Flags) -> Command {
        self.flags = flags;
        self
    }

    /// In these ACL categories (besides those the flags imply).
    #[must_use]
    pub(crate) fn acl(mut self, acl: Acl) -> Command {
        self.acl = acl;
        self
    }

    /// With one more key spec.
    #[must_use]
    pub(crate) fn key(mut self, spec: KeySpec) -> Command {
        self.keys.push(spec);
        self
    }

    /// With tips for clients.
    #[must_use]
    pub(crate) fn tips(mut self, tips: &'static [&'static str]) -> Command {
        self.tips = tips;
        self
    }

    /// Its documentation: group, version, complexity, summary.
    #[must_use]
    pub(crate) fn docs(
        mut self,
        group: &'static str,
        since: &'static str,
        complexity: &'static str,
        summary: &'static str,
    ) -> Command {
        self.docs = Docs { group, since, complexity, summary, ..self.docs };
        self
    }

    /// Its history of changes, by version.
    #[must_use]
    pub(crate) fn history(mut self, history: &'static [(&'static str, &'static str)]) -> Command {
        self.docs.history = history;
        self
    }

    /// A system command, not for applications (Redis's `syscmd` doc flag).
    #[must_use]
    pub(crate) fn syscmd(mut self) -> Command {
        self.docs.syscmd = true;
        self
    }

    /// Deprecated since `since`, replaced by `by`.
    #[must_use]
    pub(crate) fn deprecated(mut self, since: &'static str, by: &'static str) -> Command {
        self.docs.deprecated = Some((since, by));
        self
    }

    /// With a member to prefetch in pipelined batches.
    #[must_use]
    pub(crate) fn prefetch(mut self, prefetch: Prefetch) -> Command {
        self.prefetch = prefetch;
        self
    }

    /// With a procedure for its keys' flags (key specs marked `variable_flags`).
    #[must_use]
    pub(crate) fn getkeys(mut self, getkeys: GetKeysFn) -> Command {
        self.getkeys = Some(getkeys);
        self
    }

    /// Runs at once even inside MULTI.
    #[must_use]
    pub(crate) fn control(mut self) -> Command {
        self.control = true;
        self
    }

    /// Allowed to a RESP2 client with subscriptions.
    #[must_use]
    pub(crate) fn when_subscribed(mut self) -> Command {
        self.when_subscribed = true;
        self
    }

    /// May add to the replication stream without being a write.
    #[must_use]
    pub(crate) fn may_replicate(mut self) -> Command {
        self.may_replicate = true;
        self
    }

    /// Whether it waits for more than other cores ([`crate::engine::spec::WAITING`]).
    #[must_use]
    pub(crate) fn waits(&self) -> bool {
        !self.is_subcommand && crate::engine::spec::WAITING.contains(&self.name)
    }

    /// Whether a write pause holds it: a write, or a command that may replicate.
    #[must_use]
    pub(crate) fn may_write(&self) -> bool {
        self.may_replicate || self.flags.contains(crate::engine::spec::flag::WRITE)
    }

    /// Runs at once through `now` when a pipeline allows (see [`Command::now`]).
    #[must_use]
    pub(crate) fn now(mut self, now: NowFn) -> Command {
        self.now = Some(now);
        self
    }

    /// Reaches every shard.
    #[must_use]
    pub(crate) fn fan_out(mut self) -> Command {
        self.fan_out = true;
        self
    }

    /// Reaches every shard when `when` says so of its arguments.
    #[must_use]
    pub(crate) fn fan_out_when(mut self, when: fn(&[Bytes]) -> bool) -> Command {
        self.fan_out_when = Some(when);
        self
    }

    /// Whether running it with `args` may reach every shard (EXEC then holds them all).
    #[must_use]
    pub(crate) fn fans_out(&self, args: &[Bytes]) -> bool {
        self.fan_out || self.fan_out_when.is_some_and(|when| when(args))
    }

    /// Whether `argc` arguments (name included) satisfy the arity.
    #[must_use]
    pub(crate) fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Whether the keys of a command whose keys come in groups (MSET's pairs) end with a
    /// whole group. Checked when the command runs, as Redis does (inside MULTI only it fails).
    #[must_use]
    pub(crate) fn groups_complete(&self, args: &[Bytes]) -> bool {
        let Legacy { first, last, step, .. } = self.legacy;
        if step > 1 && last < 0 && first > 0 {
            let argc = args.len() as i64;
            return (argc - i64::from(first)) % i64::from(step) == 0;
        }
        true
    }

    /// The arity error for this command.
    #[must_use]
    pub(crate) fn arity_error(&self) -> CmdError {
        CmdError::WrongArity(self.full_name.clone())
    }

    /// The positions of the keys in `args`, in key-spec order. The common case, a plain range
    /// (`GET k`, `MSET k v k v`), costs no allocation.
    pub(crate) fn key_positions(&self, args: &[Bytes]) -> Keys {
        if self.legacy.movable {
            let found = self.keys_and_flags(args).unwrap_or_default();
            return Keys::Listed(found.into_iter().map(|(p, _)| p).collect::<Vec<_>>().into_iter());
        }
        let Legacy { first, last, step, .. } = self.legacy;
        if first <= 0 {
            return Keys::Listed(Vec::new().into_iter());
        }
        let argc = args.len() as i64;
        let last = if last < 0 { argc + i64::from(last) } else { i64::from(last).min(argc - 1) };
        let first = i64::from(first);
        let end = if last < first { first } else { last + 1 };
        Keys::Range((first as usize..end as usize).step_by(step.max(1) as usize))
    }

    /// The keys an ACL check looks at: each with its flags, none when the command has no key
    /// specs or the arguments do not fit them.
    #[must_use]
    pub(crate) fn acl_keys(&self, args: &[Bytes]) -> Vec<(usize, KeyFlags)> {
        let mut keys = Vec::new();
        self.acl_keys_into(args, &mut keys);
        keys
    }

    /// As [`Command::acl_keys`], into `keys` (cleared first): no allocation once it has room.
    pub(crate) fn acl_keys_into(&self, args: &[Bytes], keys: &mut Vec<(usize, KeyFlags)>) {
        keys.clear();
        if self.keys.is_empty() {
            return;
        }
        let found = match self.getkeys {
            Some(getkeys) => {
                getkeys(args, keys);
                Some(())
            }
            None => crate::engine::spec::find_keys_into(&self.keys, args, keys),
        };
        if found.is_none() {
            keys.clear();
        }
    }

    /// A request for this command as an ACL check sees it, with its keys.
    #[must_use]
    pub(crate) fn acl_request<'a>(
        &'a self,
        args: &'a [Bytes],
        keys: &'a [(usize, KeyFlags)],
    ) -> crate::engine::acl::Request<'a> {
        crate::engine::acl::Request {
            id: self.id,
            is_subcommand: self.is_subcommand,
            channels: self.channels,
            no_auth: self.flags.contains(crate::engine::spec::flag::NO_AUTH),
            args,
            keys,
        }
    }

    /// The keys of `args` with what is done with each (COMMAND GETKEYSANDFLAGS); `None` when
    /// the arguments do not fit the key specs.
    #[must_use]
    pub(crate) fn keys_and_flags(&self, args: &[Bytes]) -> Option<Vec<(usize, KeyFlags)>> {
        match self.getkeys {
            Some(getkeys) => {
                let mut keys = Vec::new();
                getkeys(args, &mut keys);
                Some(keys)
            }
            None => find_keys(&self.keys, args),
        }
    }

    /// The first key `args` names, if any (for prefetching).
    #[must_use]
    pub(crate) fn first_key<'a>(&self, args: &'a [Bytes]) -> Option<&'a Bytes> {
        let Legacy { first, movable, .. } = self.legacy;
        if movable {
            return self.key_positions(args).next().and_then(|p| args.get(p));
        }
        usize::try_from(first).ok().filter(|&p| p > 0).and_then(|p| args.get(p))
    }

    /// The member of a container `args` names, for prefetching.
    #[must_use]
    pub(crate) fn member_of<'a>(&self, args: &'a [Bytes]) -> Option<MemberRef<'a>> {
        self.prefetch.member_of(args)
    }

    /// The subcommand named `name` (any case).
    #[must_use]
    pub(crate) fn subcommand(&self, name: &[u8]) -> Option<&Command> {
        self.subcommands.iter().find(|c| name.eq_ignore_ascii_case(c.name.as_bytes()))
    }
}

/// A request's key positions.
pub(crate) enum Keys {
    /// A plain range.
    Range(std::iter::StepBy<std::ops::Range<usize>>),
    /// Found by walking the key specs.
    Listed(std::vec::IntoIter<usize>),
}

impl Iterator for Keys {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        match self {
            Keys::Range(r) => r.next(),
            Keys::Listed(l) => l.next(),
        }
    }
}

/// The registry every core runs commands from: installed once at startup (the runtime installs
/// the families' commands); empty until then, so that every request is an unknown command.
static REGISTRY: std::sync::OnceLock<Commands> = std::sync::OnceLock::new();

/// Installs `commands` as the registry, once; a second installation is refused and returns
/// them.
///
/// # Errors
/// The commands, when a registry is installed already.
pub(crate) fn install(commands: Commands) -> Result<(), Commands> {
    REGISTRY.set(commands)
}

/// The registry.
#[must_use]
pub(crate) fn registry() -> &'static Commands {
    REGISTRY.get_or_init(|| Commands::new(Vec::new()))
}

/// Every command, by name; built once from the families' commands.
pub(crate) struct Commands {
    top: Vec<Command>,
    by_name: AHashMap<&'static [u8], usize>,
    /// By id: the top-level index, and the subcommand's index within it.
    ids: Vec<(usize, Option<usize>)>,
}

impl Commands {
    /// The registry of `commands`: names checked unique, ids given, derived fields computed.
    ///
    /// # Panics
    /// When two commands share a name, or a name is not lowercase: a bug in a family's table,
    /// found at startup (and by the unit tests).
    #[must_use]
    pub(crate) fn new(mut top: Vec<Command>) -> Commands {
        let mut ids = Vec::new();
        let mut by_name = AHashMap::new();
        for (i, cmd) in top.iter_mut().enumerate() {
            assert!(cmd.name == cmd.name.to_ascii_lowercase(), "command {} is not lowercase", cmd.name);
            assert!(by_name.insert(cmd.name.as_bytes(), i).is_none(), "command {} twice", cmd.name);
            finish(cmd, None);
            cmd.id = ids.len();
            ids.push((i, None));
            let parent = cmd.name;
            for (j, sub) in cmd.subcommands.iter_mut().enumerate() {
                finish(sub, Some(parent));
                sub.id = ids.len();
                ids.push((i, Some(j)));
            }
        }
        Commands { top, by_name, ids }
    }

    /// The top-level command named `name`, in any letter case.
    #[must_use]
    pub(crate) fn get(&self, name: &[u8]) -> Option<&Command> {
        let mut lower = [0u8; 32];
        let lower = lower.get_mut(..name.len())?;
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        self.by_name.get(&*lower).map(|&i| &self.top[i])
    }

    /// The command a request names: a container's subcommand when it has one and the request
    /// names one, as Redis's `lookupCommand`.
    ///
    /// # Errors
    /// Redis's unknown command or unknown subcommand error.
    pub(crate) fn resolve(&self, args: &[Bytes]) -> Result<&Command, CmdError> {
        let base = self.get(&args[0]).ok_or_else(|| CmdError::unknown_command(args))?;
        if base.subcommands.is_empty() || args.len() < 2 {
            return Ok(base);
        }
        base.subcommand(&args[1]).ok_or_else(|| {
            CmdError::unknown_subcommand(
                &String::from_utf8_lossy(&args[0]),
                &args[1][..args[1].len().min(128)],
            )
        })
    }

    /// The command (or subcommand) with id `id`.
    #[must_use]
    pub(crate) fn by_id(&self, id: usize) -> Option<&Command> {
        let &(top, sub) = self.ids.get(id)?;
        let cmd = &self.top[top];
        match sub {
            None => Some(cmd),
            Some(j) => cmd.subcommands.get(j),
        }
    }

    /// What ACL rules need to know of every command and subcommand.
    #[must_use]
    pub(crate) fn acl_catalog(&self) -> crate::engine::acl::Catalog {
        let entries = (0..self.ids.len())
            .filter_map(|id| self.by_id(id))
            .map(|c| crate::engine::acl::CatalogEntry {
                id: c.id,
                full_name: c.full_name.clone(),
                acl: c.acl,
                subcommands: c.subcommands.iter().map(|s| s.id).collect(),
                is_subcommand: c.is_subcommand,
            })
            .collect();
        crate::engine::acl::Catalog::new(entries)
    }

    /// The top-level commands.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Command> {
        self.top.iter()
    }
}

/// Fills in what is derived: the full name, the legacy range and `movablekeys`, the implied
/// ACL categories.
fn finish(cmd: &mut Command, parent: Option<&str>) {
    cmd.full_name = match parent {
        Some(p) => format!("{p}|{}", cmd.name),
        None => cmd.name.to_owned(),
    };
    cmd.is_subcommand = parent.is_some();
    cmd.channels = crate::engine::acl::Channels::of(&cmd.full_name);
    cmd.legacy = Legacy::of(&cmd.keys);
    if cmd.legacy.movable {
        cmd.flags = cmd.flags | crate::engine::spec::flag::MOVABLE_KEYS;
    }
    cmd.acl = cmd.acl.implied(cmd.flags);
    cmd.observed = crate::engine::spec::Observed::of(&cmd.full_name, cmd.flags);
}
