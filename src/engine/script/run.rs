//! Where and how a script runs (see the module's header), and what every `redis.call` is
//! checked for before it runs, as Redis's `scriptCall` checks it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mlua::Thread;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::acl::{Reason, User};
use crate::engine::cluster::redirect::OpenSlot;
use crate::engine::command::{Command, Now, Run};
use crate::engine::core::Core;
use crate::engine::monitor;
use crate::engine::router::{Tx, TxId};
use crate::engine::script::busy::{self, Named, Watched};
use crate::engine::script::current;
use crate::engine::script::functions;
use crate::engine::script::lua::{self, Ended};
use crate::engine::script::store::{Reach, Source};
use crate::engine::script::turn;
use crate::engine::session::Session;
use crate::engine::shard::Shard;
use crate::engine::slot::{ShardId, Slot};
use crate::engine::spec::flag;
use crate::engine::tracking::Reader;
use crate::facade::Reply;

/// What a script's commands are checked against, fixed when it starts (Redis's run context).
#[derive(Clone, Default)]
pub(crate) struct Rules {
    /// The caller's user, when its rules restrict anything.
    pub(crate) user: Option<Arc<User>>,
    /// EVAL_RO, or a script declaring `no-writes`: no write command.
    pub(crate) read_only: bool,
    /// A script declaring `allow-oom`.
    pub(crate) allow_oom: bool,
    /// Memory was over `maxmemory` with nothing to evict when the script started.
    pub(crate) oom: bool,
    /// This server is a read-only replica.
    pub(crate) replica_read_only: bool,
    /// `lua-strict-keys`: keys a script did not declare are refused.
    pub(crate) strict: bool,
    /// A write command ran (Redis's `SCRIPT_WRITE_DIRTY`): later writes are no longer refused
    /// for the server's state, and a one-shard run can no longer start again elsewhere.
    pub(crate) dirty: bool,
    /// `busy-reply-threshold`.
    pub(crate) busy_after: Duration,
    /// Sent by this server's primary (or replayed from the AOF): it cannot be killed.
    pub(crate) from_primary: bool,
}

/// An ACL denial inside a script, for the caller's ACL LOG.
pub(crate) struct Denied {
    /// Why.
    pub(crate) reason: Reason,
    /// The command's full name, the key or the channel.
    pub(crate) object: Bytes,
}

/// The command `args` name, if a script may run it now; else the error `redis.call` raises.
fn admit(args: &[Bytes], rules: &mut Rules, denied: &mut Vec<Denied>) -> Result<&'static Command, CmdError> {
    admit_named(named(args)?, args, rules, denied)
}

/// The command `args` name, if there is one.
fn named(args: &[Bytes]) -> Result<&'static Command, CmdError> {
    crate::engine::command::registry()
        .resolve(args)
        .map_err(|_| CmdError::msg("ERR Unknown Redis command called from script"))
}

/// `cmd`, named by `args`, if a script may run it now (see [`admit`]).
fn admit_named(
    cmd: &'static Command,
    args: &[Bytes],
    rules: &mut Rules,
    denied: &mut Vec<Denied>,
) -> Result<&'static Command, CmdError> {
    if !cmd.arity_ok(args.len()) || matches!(cmd.run, Run::Container) {
        return Err(CmdError::msg("ERR Wrong number of args calling Redis command from script"));
    }
    if cmd.flags.contains(flag::NOSCRIPT) {
        return Err(CmdError::msg("ERR This Redis command is not allowed from script"));
    }
    if let Some(user) = &rules.user {
        let keys = cmd.acl_keys(args);
        if let Err(d) = crate::engine::acl::check(user, &cmd.acl_request(args, &keys)) {
            let (object, why) = match d.reason {
                Reason::Command => {
                    (Bytes::from(cmd.full_name.clone()), "can't run this command or subcommand")
                }
                Reason::Key => (
                    args[d.pos].clone(),
                    "can't access at least one of the keys mentioned in the command arguments",
                ),
                Reason::Channel => {
                    (args[d.pos].clone(), "can't publish to the channel mentioned in the command")
                }
            };
            denied.push(Denied { reason: d.reason, object });
            return Err(CmdError::text(format!("ERR The user executing the script {why}")));
        }
    }
    let writes = cmd.flags.contains(flag::WRITE);
    if rules.read_only && (writes || cmd.may_replicate) {
        return Err(CmdError::msg("ERR Write commands are not allowed from read-only scripts."));
    }
    if writes && !rules.dirty {
        if rules.replica_read_only {
            return Err(CmdError::ReadOnly);
        }
        if rules.oom && !rules.allow_oom && cmd.flags.contains(flag::DENYOOM) {
            return Err(CmdError::Oom);
        }
    }
    if writes {
        busy::wrote()?;
        rules.dirty = true;
    }
    // Checked by the command itself in Redis, after everything above (as `plan` checks it).
    if !cmd.groups_complete(args) {
        return Err(cmd.arity_error());
    }
    Ok(cmd)
}

/// What runs: a script (EVAL) or a function (FCALL).
pub(crate) enum Target {
    /// A script.
    Eval(Arc<Source>),
    /// A library's function.
    Function(Arc<functions::Function>),
}

impl Target {
    /// What its runs showed of the keys it reaches.
    fn reach(&self) -> Reach {
        match self {
            Target::Eval(s) => s.reach(),
            Target::Function(f) => f.reach(),
        }
    }

    /// Remembers what a run showed.
    fn note(&self, reach: Reach) {
        match self {
            Target::Eval(s) => s.note(reach),
            Target::Function(f) => f.note(reach),
        }
    }

    /// How error replies name it: the script's SHA1, or the function's name.
    fn name(&self) -> &str {
        match self {
            Target::Eval(s) => std::str::from_utf8(&s.sha).unwrap_or_default(),
            Target::Function(f) => &f.name,
        }
    }
}

/// A script or function to run, and what it runs with.
pub(crate) struct Script {
    /// What runs.
    pub(crate) target: Target,
    /// KEYS.
    pub(crate) keys: Vec<Bytes>,
    /// ARGV.
    pub(crate) argv: Vec<Bytes>,
    /// The checks.
    pub(crate) rules: Rules,
    /// The request, for FUNCTION STATS while it is busy (empty for EVAL).
    pub(crate) command: Vec<Bytes>,
}

impl Script {
    /// What its run's watch knows of it.
    fn watched(&self) -> Watched {
        Watched {
            name: match &self.target {
                Target::Eval(source) => Named::Script(source.clone()),
                Target::Function(function) => Named::Function(function.clone()),
            },
            command: self.command.clone(),
            from_primary: self.rules.from_primary,
            threshold: self.rules.busy_after,
        }
    }
}

/// How a run on one shard ended.
enum OnShard {
    /// With this reply; the denials are for the caller's ACL LOG.
    Done(Reply, Vec<Denied>),
    /// It reached another shard before writing anything: run it again holding every shard.
    Elsewhere(Box<Script>),
    /// It went past `busy-reply-threshold` and was paused, its shard's gate kept for the
    /// transaction the caller gave: resume it there ([`resume_parked`]) until it ends.
    Parked,
}

/// The error of a one-shard run that reaches another shard after it wrote (nothing can undo
/// the writes, so it cannot start again holding every shard).
const REACHED_AFTER_WRITING: &str = "ERR Script attempted to access a key on another shard after writing; \
                                      declare every key it uses in KEYS";
/// `lua-strict-keys yes`: a key the script did not declare.
const UNDECLARED: &str =
    "ERR Script attempted to access a key that was not declared in KEYS (lua-strict-keys)";

/// Runs `script` for the session: on the shard of its keys when they share one, else holding
/// every shard.
///
/// # Errors
/// Redis's errors for a script that cannot start.
pub(crate) async fn run(s: &mut Session, script: Script) -> CmdResult {
    let router = s.core.router.clone();
    // Cluster mode, an open slot: the keys are counted in the step that starts the run.
    let open = s.open_held.take();
    let (shard, together) = router.placement(script.keys.iter().map(|k| &k[..]));
    if s.exec_tx.is_some() || !together || script.target.reach() != Reach::Declared {
        return across_boxed(s, script, open).await;
    }
    // The gates the last script kept: this one runs on its shard alone.
    s.release_script_gates().await;
    let (me, shards, db, hold) = (shard, router.shards(), s.db, router.tx_id());
    let reader = s.script_reader();
    let counted = open.clone();
    let ran = router
        .run_free(shard, move |cell| {
            if let Some(refusal) = counted.and_then(|open| cell.borrow().open_slot_refusal(&open)) {
                return Err(refusal);
            }
            Ok(on_shard(cell, me, shards, db, script, hold, reader))
        })
        .await;
    let ran = ran.map_err(|_| CmdError::Unavailable)??;
    after(s, ran, shard, hold, open).await
}

/// Runs `script` at once when it can ([`crate::engine::command::Command::now`]): a script
/// known to keep to the keys it declares, all on this core's shard, with nothing holding that
/// shard or kept for this session, runs there now, between the commands of its pipeline as a
/// local shard command runs, as the free job [`run`] would send (the clock read before it,
/// its effects published after it, whole); a script across shards whose pipeline's previous
/// script kept every gate for it runs holding them ([`across_now`]). Anything else, and what
/// a run that did not end there still needs, is [`run`]'s.
pub(crate) fn now(s: &mut Session, script: Script) -> Now<'_> {
    let router = &s.core.router;
    let (shard, together) = router.placement(script.keys.iter().map(|k| &k[..]));
    let reach = script.target.reach();
    let across = !together || reach != Reach::Declared;
    if across && reach != Reach::Waits && s.exec_tx.is_none() && s.open_held.is_none() {
        if let Some(kept) = s.script_gates.take() {
            return across_now(s, script, kept);
        }
    }
    let alone = s.exec_tx.is_none() && s.script_gates.is_none() && s.open_held.is_none();
    if !alone || !together || shard != router.local() || script.target.reach() != Reach::Declared {
        return Now::Finish(Box::pin(run(s, script)));
    }
    let (shards, db, hold, reader) = (router.shards(), s.db, router.tx_id(), s.script_reader());
    let ran =
        router.try_free_local(script, |cell, script| on_shard(cell, shard, shards, db, script, hold, reader));
    match ran {
        Ok(OnShard::Done(reply, denied)) => {
            log_denials(s, denied);
            Now::Done(Ok(reply))
        }
        Ok(ran) => Now::Finish(Box::pin(after(s, ran, shard, hold, None))),
        Err(script) => Now::Finish(Box::pin(run(s, script))),
    }
}

/// What follows a run on `shard`: its reply; a run that reached another shard, again holding
/// every shard; a run paused while busy, its shard kept for `hold`, resumed a slice at a time
/// until it ends.
async fn after(
    s: &mut Session,
    ran: OnShard,
    shard: ShardId,
    hold: TxId,
    open: Option<OpenSlot>,
) -> CmdResult {
    let router = s.core.router.clone();
    let parked = match ran {
        OnShard::Done(reply, denied) => {
            log_denials(s, denied);
            return Ok(reply);
        }
        OnShard::Elsewhere(script) => {
            script.target.note(Reach::Undeclared);
            return across_boxed(s, *script, open).await;
        }
        OnShard::Parked => router.adopt(hold, shard),
    };
    // Busy: the shard stays held while its core serves others between slices of the run.
    let mut ended = None;
    while ended.is_none() {
        if s.core.global.shutting_down() {
            // The process ends (SHUTDOWN NOSAVE): the run is dropped where it is, what it
            // logged never published, and its gate never released (nothing else runs on
            // that shard again). No hop: the shard's core may have stopped already.
            if shard == router.local() {
                drop_parked();
            }
            std::mem::forget(parked);
            return Err(CmdError::Unavailable);
        }
        crate::facade::pass::behind_the_pass(true).await;
        ended = router.on_core(shard, |_| resume_parked()).await.map_err(|_| CmdError::Unavailable)?;
    }
    parked.release().await;
    match ended {
        Some(OnShard::Done(reply, denied)) => {
            log_denials(s, denied);
            Ok(reply)
        }
        Some(OnShard::Elsewhere(script)) => {
            script.target.note(Reach::Undeclared);
            across_boxed(s, *script, open).await
        }
        _ => Err(CmdError::Internal),
    }
}

/// The one-shard run under way on this core, which its `redis.call`s run against and are
/// checked with ([`call_on_shard`]). There is at most one: it holds its shard's gate (a run
/// paused while busy keeps it), and the core hosts that one shard. Kept here rather than in
/// the handler's captures, so a run allocates nothing to set it up.
struct OnShardRun {
    cell: Rc<RefCell<Shard>>,
    me: ShardId,
    shards: usize,
    db: usize,
    rules: Rules,
    denied: Vec<Denied>,
    elsewhere: bool,
    /// The caller, when it tracks the keys its scripts read (CLIENT TRACKING); `None` once
    /// its declared keys are remembered.
    reader: Option<Reader>,
}

/// A run on a shard, paused while busy (one per core at most: it holds its shard's gate);
/// the rest of it stays in [`RUN`] and [`DECLARED`].
struct Parked {
    thread: Thread,
    unit: crate::engine::shard::Unit,
    script: Script,
}

thread_local! {
    static RUN: RefCell<Option<OnShardRun>> = const { RefCell::new(None) };
    /// The run's KEYS, apart from [`RUN`]: the run reads them as it starts, while each
    /// `redis.call` borrows [`RUN`] to change it.
    static DECLARED: RefCell<Vec<Bytes>> = const { RefCell::new(Vec::new()) };
    static PARKED: RefCell<Option<Parked>> = const { RefCell::new(None) };
}

/// The answer to a `redis.call` of the one-shard run under way: a command run here at once.
fn call_on_shard(args: Vec<Bytes>) -> Reply {
    RUN.with(|run| {
        // Never borrowed already: a command the run calls runs no script.
        let Ok(mut guard) = run.try_borrow_mut() else { return CmdError::Internal.into() };
        let Some(run) = guard.as_mut() else { return CmdError::Internal.into() };
        if run.elsewhere {
            return CmdError::msg(MOVED).into();
        }
        let wrote = run.rules.dirty;
        let cmd = match admit(&args, &mut run.rules, &mut run.denied) {
            Ok(cmd) => cmd,
            Err(e) => return e.into(),
        };
        let (mut here, mut any, mut undeclared) = (true, false, false);
        DECLARED.with(|keys| {
            let keys = keys.borrow();
            for p in cmd.key_positions(&args) {
                any = true;
                // A declared key is on this shard (the run is here because they all are).
                if !keys.iter().any(|k| *k == args[p]) {
                    undeclared = true;
                    here &= Slot::of(&args[p]).shard(run.shards) == run.me;
                }
            }
        });
        if run.rules.strict && undeclared {
            return CmdError::msg(UNDECLARED).into();
        }
        // A key it did not declare, before it wrote: this script runs holding every shard.
        match cmd.run {
            Run::Shard(f) | Run::Split(f, _) | Run::Across(f, _) if any && here && (wrote || !undeclared) => {
                if let Some(core) = Core::current().filter(|c| c.global.monitors.any()) {
                    monitor::feed(&core, run.db, monitor::Source::Lua, cmd, &args);
                }
                let reply = run.cell.borrow_mut().exec(&cmd.shard_cmd(f, run.db, args));
                // As Redis: a script's first read remembers every key it declared for a
                // tracking caller, in the same atomic unit as the read.
                if reads(cmd) {
                    if let Some(reader) = run.reader.take() {
                        DECLARED.with(|keys| run.cell.borrow_mut().remember(&keys.borrow(), reader));
                    }
                }
                reply
            }
            _ if wrote => CmdError::msg(REACHED_AFTER_WRITING).into(),
            _ => {
                run.elsewhere = true;
                CmdError::msg(MOVED).into()
            }
        }
    })
}

/// One run on the shard of its keys, each `redis.call` a command run here at once, the whole
/// run one atomic unit of the shard. A run that goes past `busy-reply-threshold` is paused
/// with the shard's gate kept for `hold`.
fn on_shard(
    cell: &Rc<RefCell<Shard>>,
    me: ShardId,
    shards: usize,
    db: usize,
    mut script: Script,
    hold: TxId,
    reader: Option<Reader>,
) -> OnShard {
    let unit = cell.borrow_mut().enter_unit();
    busy::watch(script.watched());
    let rules = std::mem::take(&mut script.rules);
    let run = OnShardRun {
        cell: cell.clone(),
        me,
        shards,
        db,
        rules,
        denied: Vec::new(),
        elsewhere: false,
        reader,
    };
    RUN.with(|r| *r.borrow_mut() = Some(run));
    DECLARED.with(|k| *k.borrow_mut() = std::mem::take(&mut script.keys));
    current::set_handler(Some(call_on_shard));
    let name = script.target.name();
    let started = DECLARED.with(|keys| {
        let keys = keys.borrow();
        lua::with(|interp| match &script.target {
            Target::Eval(source) => {
                let f = interp.function(source)?;
                interp.run_here(&f, false, &keys, &script.argv, name)
            }
            Target::Function(func) => {
                let f = interp.function_named(&func.name)?;
                interp.run_here(&f, true, &keys, &script.argv, name)
            }
        })
        .and_then(|t| t)
    });
    let (thread, outcome) = match started {
        Ok(started) => started,
        Err(e) => return ended(cell, unit, script, Reply::from(e)),
    };
    if let Ended::Paused = outcome {
        crate::engine::router::keep_gate(hold);
        PARKED.with(|p| *p.borrow_mut() = Some(Parked { thread, unit, script }));
        return OnShard::Parked;
    }
    let _ = lua::with(|interp| interp.recycle(thread));
    ended(cell, unit, script, outcome_reply(Ok(outcome)))
}

/// Runs `script` on `cell`'s shard (the only one) as a one-shard run runs, for the scripts'
/// micro-benchmark (`internals::ScriptRun`): its reply, or `None` if it did not end there.
pub(crate) fn run_here(cell: &Rc<RefCell<Shard>>, script: Script) -> Option<Reply> {
    match on_shard(cell, ShardId(0), 1, 0, script, TxId::NONE, None) {
        OnShard::Done(reply, _) => Some(reply),
        _ => None,
    }
}

/// The reply of a run on a shard that ended.
fn outcome_reply(outcome: Result<Ended, CmdError>) -> Reply {
    match outcome {
        Ok(Ended::Reply(reply)) => reply,
        Ok(_) => Reply::Error("ERR script yielded".into()),
        Err(e) => Reply::from(e),
    }
}

/// Resumes the run parked on this core for a slice: its outcome once it ends.
fn resume_parked() -> Option<OnShard> {
    let parked = PARKED.with(|p| p.borrow_mut().take())?;
    match lua::with(|interp| interp.resume(&parked.thread, None, parked.script.target.name())) {
        Ok(Ended::Paused) => {
            PARKED.with(|p| *p.borrow_mut() = Some(parked));
            None
        }
        outcome => {
            let Parked { unit, script, thread } = parked;
            let _ = lua::with(|interp| interp.recycle(thread));
            let Some(cell) = RUN.with(|r| r.borrow().as_ref().map(|run| run.cell.clone())) else {
                return Some(OnShard::Done(CmdError::Internal.into(), Vec::new()));
            };
            Some(ended(&cell, unit, script, outcome_reply(outcome)))
        }
    }
}

/// Ends the run parked on this core without its reply, dropping what it logged (the server is
/// shutting down: no file or replica gets part of a script).
fn drop_parked() {
    if let Some(Parked { unit, .. }) = PARKED.with(|p| p.borrow_mut().take()) {
        lua::with(lua::Interp::abandon).ok();
        current::set_handler(None);
        busy::unwatch();
        if let Some(run) = RUN.with(|r| r.borrow_mut().take()) {
            run.cell.borrow_mut().abandon_unit(unit);
        }
        DECLARED.with(|k| k.borrow_mut().clear());
    }
}

/// A run on a shard ended with `reply`: its unit closes, its watch, handler and state go.
fn ended(
    cell: &Rc<RefCell<Shard>>,
    unit: crate::engine::shard::Unit,
    mut script: Script,
    reply: Reply,
) -> OnShard {
    current::set_handler(None);
    busy::unwatch();
    cell.borrow_mut().leave_unit(unit);
    script.keys = DECLARED.with(|k| std::mem::take(&mut *k.borrow_mut()));
    let Some(run) = RUN.with(|r| r.borrow_mut().take()) else { return OnShard::Done(reply, Vec::new()) };
    if run.elsewhere {
        return OnShard::Elsewhere(Box::new(Script { rules: run.rules, ..script }));
    }
    OnShard::Done(reply, run.denied)
}

/// [`across`], its large future boxed: a one-shard run's future stays small.
async fn across_boxed(s: &mut Session, script: Script, open: Option<OpenSlot>) -> CmdResult {
    Box::pin(across(s, script, open)).await
}

/// What a run holding every shard keeps between its steps, lent to [`call_across`] while
/// Lua runs.
#[derive(Default)]
struct Held {
    /// The checks.
    rules: Rules,
    /// KEYS (shared with each step, which runs while the run's state is lent out).
    keys: Rc<[Bytes]>,
    /// What the run showed of the keys it reaches.
    reach: Reach,
    /// The caller, when it tracks the keys its scripts read, until a first read remembers
    /// every declared key.
    reader: Option<Reader>,
    /// A run whose `redis.call`s run at once called a command that waits, before it wrote:
    /// it runs again, its `redis.call`s yielding.
    again: bool,
}

/// One run holding every shard (the running EXEC's transaction, or one of its own).
///
/// Its `redis.call`s run at once ([`call_across`]), each hop to another core sent at once and
/// waited for on this thread ([`crate::engine::router::blocking`]): every shard is held, so no
/// other client's keyed command could run here meanwhile, and the wait costs the core one
/// sleep where a yield to its task costs a pass of its loop and a resume of the coroutine.
/// A script that calls a command waiting for more than other cores (MIGRATE's network:
/// [`Command::waits`]) runs instead as a coroutine whose `redis.call`s yield to this task,
/// which awaits them ([`Reach::Waits`]); its first such run starts again that way if it has
/// not written.
///
/// `open`: cluster mode, an open slot's routes, applied once every shard is held.
async fn across(s: &mut Session, script: Script, open: Option<OpenSlot>) -> CmdResult {
    // The run's own transaction holding every gate, with this core's turn at them.
    let own = if s.exec_tx.is_none() {
        let router = s.core.router.clone();
        let (tx, turn) = match s.script_gates.take() {
            Some(kept) => kept,
            None => turn::take(&router).await.map_err(|_| CmdError::Unavailable)?,
        };
        if let Some(refusal) = crate::engine::transaction::open_slot_refusal(&tx, open).await {
            turn::hand_on(&s.core, tx, turn).await;
            return Err(refusal);
        }
        Some((tx, turn))
    } else {
        None
    };
    let mut run = begin(s, script, own);
    let result = if run.target.reach() == Reach::Waits {
        run_yielding(s, &run.target, &run.argv, &mut run.held).await
    } else {
        match start_direct(s, &run.target, &run.argv, &mut run.held) {
            Ok(started) => finish_direct(s, &run.target, &mut run.held, started).await,
            Err(e) => Err(e),
        }
    };
    finish(s, run, result).await
}

/// [`across`] at once, for a script of a pipeline whose previous script kept every gate for
/// it (`kept`): when its first step ends it (it was not paused busy, and called no command
/// that waits) and the gates stay for the next script, it ran without a boxed future,
/// between the commands of its pipeline; else what is left (the rest of the run, or handing
/// the gates on) finishes as in `across`.
fn across_now(s: &mut Session, script: Script, kept: (Tx, turn::Turn)) -> Now<'_> {
    let mut run = begin(s, script, Some(kept));
    let result = match start_direct(s, &run.target, &run.argv, &mut run.held) {
        Ok((thread, Ended::Reply(reply))) => {
            let _ = lua::with(|interp| interp.recycle(thread));
            Ok(reply)
        }
        Ok(started) => {
            return Now::Finish(Box::pin(async move {
                let result = finish_direct(s, &run.target, &mut run.held, started).await;
                finish(s, run, result).await
            }))
        }
        Err(e) => Err(e),
    };
    if run.held.again {
        return Now::Finish(Box::pin(finish(s, run, result)));
    }
    match end(s, run) {
        None => Now::Done(result),
        Some((tx, turn)) => Now::Finish(Box::pin(async move {
            turn::hand_on(&s.core, tx, turn).await;
            result
        })),
    }
}

/// A run holding every shard, begun ([`begin`]): what its steps and its end need.
struct Across {
    target: Target,
    argv: Vec<Bytes>,
    held: Held,
    /// The session's database as the run began: SELECT inside a script selects for the rest
    /// of the script only.
    db: usize,
    /// This core's turn at the gates, when the run holds them for itself (not an EXEC's).
    turn: Option<turn::Turn>,
}

/// Begins the run of `script` holding every shard: in `own`, its transaction holding every
/// gate with this core's turn at them, or else in the running EXEC's.
fn begin(s: &mut Session, script: Script, own: Option<(Tx, turn::Turn)>) -> Across {
    let watched = script.watched();
    let Script { target, keys, argv, rules, .. } = script;
    let turn = own.map(|(tx, turn)| {
        s.exec_tx = Some(std::rc::Rc::new(tx));
        turn
    });
    let held =
        Held { rules, keys: keys.into(), reach: Reach::Declared, reader: s.script_reader(), again: false };
    s.in_script = true;
    busy::watch(watched);
    Across { target, argv, held, db: s.db, turn }
}

/// What follows the first steps of a run holding every shard: its run again yielding, when
/// it has to ([`Held::again`]); its end; its gates handed on.
async fn finish(s: &mut Session, mut run: Across, mut result: CmdResult) -> CmdResult {
    if run.held.again {
        // Nothing was written: the run starts again, its `redis.call`s yielding.
        s.db = run.db;
        result = run_yielding(s, &run.target, &run.argv, &mut run.held).await;
    }
    if let Some((tx, turn)) = end(s, run) {
        turn::hand_on(&s.core, tx, turn).await;
    }
    result
}

/// Ends a run holding every shard. Its own gates stay for the next request of this read when
/// that is a script too, as Redis runs a client's pipelined scripts one after the other
/// (nothing is lost between the two, see `turn::may_keep`), the peers lent to this run staying
/// lent to the next (see `router::blocking`); else they are given back, for
/// [`turn::hand_on`] to a session of this core waiting for them, or released (or dropped
/// unsealed at shutdown). The running EXEC goes on with hops sent the usual way.
fn end(s: &mut Session, run: Across) -> Option<(Tx, turn::Turn)> {
    busy::unwatch();
    s.in_script = false;
    s.db = run.db;
    run.target.note(run.held.reach);
    let Some(turn) = run.turn else {
        crate::engine::router::let_go();
        return None;
    };
    let tx = s.exec_tx.take().and_then(|tx| std::rc::Rc::try_unwrap(tx).ok())?;
    if s.pipeline.next_script && !s.core.global.shutting_down() && turn::may_keep(&tx) {
        s.script_gates = Some((tx, turn));
        None
    } else {
        Some((tx, turn))
    }
}

/// The first step of a run holding every shard whose `redis.call`s run at once
/// ([`call_across`]): it ends there unless the watch hook paused it (busy).
fn start_direct(
    s: &mut Session,
    target: &Target,
    argv: &[Bytes],
    held: &mut Held,
) -> Result<(Thread, Ended), CmdError> {
    let name = target.name();
    let keys = held.keys.clone();
    step(s, held, true, |interp| {
        let (f, function) = match target {
            Target::Eval(source) => (interp.function(source)?, false),
            Target::Function(func) => (interp.function_named(&func.name)?, true),
        };
        interp.run_here(&f, function, &keys, argv, name)
    })
}

/// The rest of a run begun by [`start_direct`]: resumed from here only when the watch hook
/// paused it (busy: every shard stays held while this core serves others).
async fn finish_direct(
    s: &mut Session,
    target: &Target,
    held: &mut Held,
    (thread, mut ended): (Thread, Ended),
) -> CmdResult {
    let name = target.name();
    let result = loop {
        match ended {
            Ended::Reply(reply) => break Ok(reply),
            Ended::Paused if s.core.global.shutting_down() => {
                let _ = lua::with(lua::Interp::abandon);
                break Err(CmdError::Unavailable);
            }
            Ended::Paused => {
                // Every core serves others meanwhile.
                crate::engine::router::let_go();
                crate::facade::pass::behind_the_pass(true).await;
                ended = match step(s, held, true, |interp| Ok(interp.resume(&thread, None, name))) {
                    Ok(ended) => ended,
                    Err(e) => break Err(e),
                };
            }
            // Its `redis.call`s never yield.
            Ended::Call(_) => {
                let _ = lua::with(lua::Interp::abandon);
                break Err(CmdError::Internal);
            }
        }
    };
    let _ = lua::with(|interp| interp.recycle(thread));
    result
}

/// A run holding every shard as a coroutine whose `redis.call`s yield their commands to this
/// task, which awaits them (a script calling a command that waits: [`Reach::Waits`]). Where
/// a `redis.call` cannot yield, [`call_across`] runs it at once.
async fn run_yielding(s: &mut Session, target: &Target, argv: &[Bytes], held: &mut Held) -> CmdResult {
    let name = target.name();
    let thread = lua::with(|interp| match target {
        Target::Eval(source) => {
            let f = interp.function(source)?;
            interp.start(&f, Some((&held.keys, argv)), true)
        }
        Target::Function(func) => {
            let f = interp.function_named(&func.name)?;
            interp.start_function(&f, &held.keys, argv, true)
        }
    })
    .and_then(|t| t)?;
    let mut answer: Option<Reply> = None;
    let result = loop {
        let given = answer.take();
        match step(s, held, false, |interp| Ok(interp.resume(&thread, given.as_ref(), name))) {
            Err(e) => break Err(e),
            Ok(Ended::Reply(reply)) => break Ok(reply),
            // Busy: every shard stays held while this core serves others.
            Ok(Ended::Paused) => {
                if s.core.global.shutting_down() {
                    let _ = lua::with(lua::Interp::abandon);
                    break Err(CmdError::Unavailable);
                }
                crate::facade::pass::behind_the_pass(true).await;
            }
            Ok(Ended::Call(args)) => {
                let mut denied = Vec::new();
                let mut read = false;
                let reply = match admit(&args, &mut held.rules, &mut denied) {
                    Ok(cmd) if undeclared(cmd, &args, &held.keys) && held.rules.strict => {
                        held.reach = held.reach.max(Reach::Undeclared);
                        CmdError::msg(UNDECLARED).into()
                    }
                    Ok(cmd) => {
                        if undeclared(cmd, &args, &held.keys) {
                            held.reach = held.reach.max(Reach::Undeclared);
                        }
                        read = reads(cmd);
                        monitor::feed(&s.core, s.db, monitor::Source::Lua, cmd, &args);
                        Box::pin(s.run_command(cmd, &args)).await
                    }
                    Err(e) => e.into(),
                };
                // A first read: every declared key is remembered for a tracking caller,
                // every shard still held.
                if let Some(r) = held.reader.filter(|_| read) {
                    held.reader = None;
                    s.remember_held(&held.keys, r).await;
                }
                log_denials(s, denied);
                answer = Some(reply);
            }
        }
    };
    let _ = lua::with(|interp| interp.recycle(thread));
    result
}

/// What a `redis.call` of the run holding every shard needs where it runs at once
/// ([`call_across`]); set around each step of the run ([`step`]).
struct AcrossCall {
    /// The run's session, whose task waits inside the step.
    session: *mut Session,
    held: Held,
    /// Every `redis.call` comes here ([`start_direct`]), not only those that cannot yield.
    direct: bool,
    denied: Vec<Denied>,
}

thread_local! {
    static ACROSS: RefCell<Option<AcrossCall>> = const { RefCell::new(None) };
}

/// A command that waits for something other than a hop, called where the script cannot yield.
const CANNOT_WAIT: &str = "ERR This command cannot run inside a C function or a metamethod (such as \
                           table.sort's comparator) of a script whose keys are on several shards";
/// A run whose `redis.call`s run at once called a command that waits (MIGRATE) after it
/// wrote: it cannot start again yielding. Its next runs yield from the start.
const WAITS_AFTER_WRITING: &str =
    "ERR Script attempted to run a command that waits for the network (MIGRATE) \
                                   after writing, on its first run across shards; run it again";
/// The answer to every `redis.call` of a run that will run again elsewhere (its outcome is
/// dropped).
const MOVED: &str = "ERR script moved";

/// One step of the run holding every shard (its start, or a resume) on this core's
/// interpreter, with `held` lent to [`call_across`] for its span.
fn step<R>(
    s: &mut Session,
    held: &mut Held,
    direct: bool,
    f: impl FnOnce(&mut lua::Interp) -> Result<R, CmdError>,
) -> Result<R, CmdError> {
    let session: *mut Session = s;
    let lent = std::mem::take(held);
    ACROSS.with(|a| *a.borrow_mut() = Some(AcrossCall { session, held: lent, direct, denied: Vec::new() }));
    current::set_handler(Some(call_across));
    // A run whose calls never yield waits for its hops here for the whole step, so a peer
    // lent to it stays lent from one call to the next.
    let stepped = if direct {
        crate::engine::router::blocking(|| lua::with(f).and_then(|r| r))
    } else {
        lua::with(f).and_then(|r| r)
    };
    current::set_handler(None);
    if !direct {
        // A call that could not yield may have borrowed a peer's thread: the run's next
        // command is awaited, maybe on the network (MIGRATE), with the peers back in their
        // loops.
        crate::engine::router::let_go();
    }
    if let Some(call) = ACROSS.with(|a| a.borrow_mut().take()) {
        *held = call.held;
        log_denials(s, call.denied);
    }
    stepped
}

/// The answer to a `redis.call` of a run holding every shard, run at once: every call of a
/// run whose calls never yield ([`start_direct`]), and those of a yielding run that cannot
/// yield (inside `table.sort`'s comparator, a metamethod, or a coroutine the script made).
/// Its hops to other cores are waited for on this thread ([`crate::engine::router::blocking`]).
/// The run holds every gate, so every hop is answered.
fn call_across(args: Vec<Bytes>) -> Reply {
    let admitted = ACROSS.with(|a| {
        let Ok(mut guard) = a.try_borrow_mut() else { return Err(CmdError::Internal) };
        let Some(run) = guard.as_mut() else { return Err(CmdError::Internal) };
        let held = &mut run.held;
        if held.again {
            return Err(CmdError::msg(MOVED));
        }
        let cmd = named(&args)?;
        if run.direct && cmd.waits() {
            held.reach = Reach::Waits;
            if held.rules.dirty {
                return Err(CmdError::msg(WAITS_AFTER_WRITING));
            }
            held.again = true;
            return Err(CmdError::msg(MOVED));
        }
        let cmd = admit_named(cmd, &args, &mut held.rules, &mut run.denied)?;
        if undeclared(cmd, &args, &held.keys) {
            held.reach = held.reach.max(Reach::Undeclared);
            if held.rules.strict {
                return Err(CmdError::msg(UNDECLARED));
            }
        }
        // A first read: every declared key is remembered for a tracking caller after it.
        let remember = if reads(cmd) { held.reader.take().map(|r| (r, held.keys.clone())) } else { None };
        Ok((run.session, cmd, remember))
    });
    let (session, cmd, remember) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => return e.into(),
    };
    #[allow(unsafe_code)]
    // SAFETY: `session` is the run's: its task is inside `step`, which made the pointer from
    // its `&mut Session` and uses neither until the step returns; this thread runs nothing
    // else meanwhile, and the reference ends with this call.
    let s = unsafe { &mut *session };
    monitor::feed(&s.core, s.db, monitor::Source::Lua, cmd, &args);
    crate::engine::router::blocking(|| {
        let reply = match s.run_command_blocking(cmd, args) {
            Ok(reply) => reply,
            Err(args) => {
                ready_now(s.run_command(cmd, &args)).unwrap_or_else(|| CmdError::msg(CANNOT_WAIT).into())
            }
        };
        if let Some((reader, keys)) = remember {
            let _ = ready_now(s.remember_held(&keys, reader));
        }
        reply
    })
}

/// What `f` gives when first polled, if it is ready then (inside
/// [`crate::engine::router::blocking`], a future built on hops is).
fn ready_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// Whether a script's call of `cmd` makes a tracking caller remember the script's keys (Redis's
/// `CMD_READONLY` test in `call`).
fn reads(cmd: &Command) -> bool {
    cmd.flags.contains(flag::READONLY) && !cmd.flags.contains(flag::PUBSUB)
}

/// Whether `cmd` on `args` names a key `keys` does not hold.
fn undeclared(cmd: &Command, args: &[Bytes], keys: &[Bytes]) -> bool {
    cmd.key_positions(args).any(|p| !keys.iter().any(|k| *k == args[p]))
}

/// Adds ACL LOG entries for the denials of a script's commands (context `lua`).
fn log_denials(s: &Session, denied: Vec<Denied>) {
    for d in denied {
        let reason = match d.reason {
            Reason::Command => crate::engine::acl::What::Command,
            Reason::Key => crate::engine::acl::What::Key,
            Reason::Channel => crate::engine::acl::What::Channel,
        };
        s.log_acl_lua(reason, d.object);
    }
}
