//! The coordinator: runs the requests of one read, in order, each where [`plan`] says.
//!
//! The connection's task is the coordinator: it parses nothing and stores nothing. Commands
//! for one shard, from one read of a pipeline, go to that shard as one hop; the local shard's
//! run inline. Commands whose keys span shards, and commands the session runs, first settle
//! what is pending, so replies keep request order.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::client::Client;
use crate::engine::cluster::redirect::{route, Asker, OpenSlot, Present, Route};
use crate::engine::command::{AcrossFn, Command, Merge, Now, NowFn, Run};
use crate::engine::monitor::Source;
use crate::engine::plan::{plan, Plan};
use crate::engine::router::{Tx, Unavailable};
use crate::engine::session::{ReplyMode, Session};
use crate::engine::shard::{Shard, ShardCmd, ShardFn};
use crate::engine::slot::ShardId;
use crate::engine::slowlog::Origin;
use crate::engine::stats::Started;
use crate::facade::resp::Limits;
use crate::facade::{Buffers, ConnLimits, Event, Flow, Reply, Service};

impl Session {
    /// Looks the request up and checks it as Redis's `processCommand` does; an error also
    /// fails a MULTI being queued.
    fn check(
        &mut self,
        args: &[Bytes],
        known: Option<&'static Command>,
    ) -> Result<&'static Command, CmdError> {
        let commands = crate::engine::command::registry();
        let checked = (|| {
            let cmd = match known {
                Some(cmd) => cmd,
                None => commands.resolve(args)?,
            };
            if !cmd.arity_ok(args.len()) {
                return Err(cmd.arity_error());
            }
            if !self.authed && !cmd.flags.contains(crate::engine::spec::flag::NO_AUTH) {
                return Err(CmdError::NoAuth);
            }
            if !self.superuser {
                if !self.refresh_user() {
                    return Err(CmdError::NoAuth);
                }
                if !self.user.unrestricted() {
                    self.acl_allows(cmd, args).map_err(|d| self.denied(cmd, args, d))?;
                }
            }
            // Cluster mode: another node's keys are redirected before any other check, as
            // Redis does (a write sent to a replica is MOVED, not READONLY).
            // The common case (every key in a settled slot of this node) is decided on the
            // slot alone, with nothing built or copied: the full rule runs only when it fails.
            let settled = |routing: &crate::engine::cluster::redirect::Routing| {
                cmd.name != "exec"
                    && routing.outright_slot(cmd.key_positions(args).map(|p| &args[p][..])).is_some()
            };
            if !self.replaying && self.core.with_cluster(settled) == Some(false) {
                match self.core.with_cluster(|routing| self.route(routing, cmd, args, None)) {
                    Some(Err(e)) => return Err(e),
                    Some(Ok(Route::Lookup(slot))) => self.open_slot = Some(slot),
                    _ => {}
                }
            }
            let writes = cmd.flags.contains(crate::engine::spec::flag::WRITE);
            if !self.replaying {
                if self.core.global.bgsave_failed()
                    && (writes || cmd.name == "ping")
                    && self.core.config().refuses_writes()
                {
                    return Err(CmdError::Misconf);
                }
                if self.core.global.aof_failed() && (writes || cmd.name == "ping") {
                    let why = self.core.global.persistence().aof.write_error.clone().unwrap_or_default();
                    return Err(CmdError::AofMisconf(why));
                }
                if self.core.global.following.load(std::sync::atomic::Ordering::Relaxed) {
                    if writes && self.core.with_config(|c| c.replica_read_only) {
                        return Err(CmdError::ReadOnly);
                    }
                    if !cmd.flags.contains(crate::engine::spec::flag::STALE)
                        && !self.core.with_config(|c| c.replica_serve_stale_data)
                        && !crate::engine::replica::link_up(&self.core)
                    {
                        return Err(CmdError::MasterDown);
                    }
                }
                if writes {
                    let (min, max_lag) =
                        self.core.with_config(|c| (c.min_replicas_to_write, c.min_replicas_max_lag));
                    if min > 0 && max_lag > 0 && self.core.global.replication().good(max_lag) < min {
                        return Err(CmdError::NoReplicas);
                    }
                }
                if self.core.global.loading() && !cmd.flags.contains(crate::engine::spec::flag::LOADING) {
                    return Err(CmdError::Loading);
                }
                if !cmd.flags.contains(crate::engine::spec::flag::ALLOW_BUSY) {
                    if let Some(busy) = crate::engine::script::busy::refusal() {
                        return Err(busy);
                    }
                }
                // Over `maxmemory` with nothing left to evict: what may grow memory is refused,
                // and so is anything queued into MULTI (as Redis's processCommand).
                if self.core.global.oom() && self.over_maxmemory() {
                    let queued = self.multi.is_some() && !cmd.control;
                    if queued || self.denies_oom(cmd) {
                        return Err(CmdError::Oom);
                    }
                }
            }
            self.wrote |= writes;
            if self.multi.is_some() && cmd.flags.contains(crate::engine::spec::flag::NO_MULTI) {
                return Err(CmdError::NotInMulti);
            }
            if self.subscribed_resp2() && !cmd.when_subscribed {
                return Err(CmdError::text(format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are \
                     allowed in this context",
                    cmd.full_name
                )));
            }
            Ok(cmd)
        })();
        if let Err(e) = &checked {
            self.reject(args, known, e);
        }
        checked
    }

    /// A request refused before it ran: it fails the MULTI being queued, and counts as
    /// rejected.
    fn reject(&mut self, args: &[Bytes], known: Option<&'static Command>, e: &CmdError) {
        if let Some(multi) = self.multi.as_mut() {
            multi.failed = true;
        }
        let id = known.or_else(|| crate::engine::command::registry().resolve(args).ok()).map(|c| c.id);
        self.core.local().commands.borrow_mut().rejected(id, &Reply::from(e.clone()));
    }

    /// Cluster mode: whether this node serves the request (Redis's `getNodeByQuery`); for
    /// EXEC, the keys of every command queued, together.
    fn route(
        &self,
        routing: &crate::engine::cluster::redirect::Routing,
        cmd: &Command,
        args: &[Bytes],
        present: Option<Present>,
    ) -> Result<Route, CmdError> {
        let not_exec = cmd.name != "exec";
        let write = cmd.flags.contains(crate::engine::spec::flag::WRITE);
        let mut asker = Asker {
            write,
            writes_any: write,
            asking: self.asking || cmd.flags.contains(crate::engine::spec::flag::ASKING),
            readonly: self.cluster_readonly,
            tls: self.client.tls.is_some(),
            migrate: cmd.name == "migrate",
            shard_pubsub: cmd.flags.contains(crate::engine::spec::flag::PUBSUB) && !cmd.keys.is_empty(),
        };
        if not_exec {
            // The common case reads the keys where they are: nothing copied per request.
            let keys = cmd.key_positions(args).map(|p| &args[p][..]);
            return self.core.with_config(|config| route(routing, config, keys, &asker, present));
        }
        let commands = crate::engine::command::registry();
        let queued = self.multi.iter().flat_map(|m| m.queued.iter());
        asker.writes_any = queued
            .filter_map(|(id, _)| commands.by_id(*id))
            .any(|c| c.flags.contains(crate::engine::spec::flag::WRITE));
        let keys = self.request_keys(cmd, args);
        self.core.with_config(|config| route(routing, config, keys.iter().map(|k| &k[..]), &asker, present))
    }

    /// The keys routing looks at: the command's, or for EXEC those of every command queued.
    fn request_keys(&self, cmd: &Command, args: &[Bytes]) -> Vec<Bytes> {
        if cmd.name != "exec" {
            return cmd.key_positions(args).map(|p| args[p].clone()).collect();
        }
        let commands = crate::engine::command::registry();
        let queued = self.multi.iter().flat_map(|m| m.queued.iter());
        queued
            .filter_map(|(id, a)| Some((commands.by_id(*id)?, a)))
            .flat_map(|(c, a)| c.key_positions(a).map(|p| a[p].clone()).collect::<Vec<_>>())
            .collect()
    }

    /// Cluster mode, a slot being migrated or imported: routing's answer for each count of the
    /// request's keys found here (see [`OpenSlot`]).
    fn open_slot_routes(&self, cmd: &Command, args: &[Bytes]) -> Option<OpenSlot> {
        let keys = self.request_keys(cmd, args);
        self.core.with_cluster(|routing| {
            OpenSlot::decide(keys, |present| self.route(routing, cmd, args, Some(present)))
        })
    }

    /// Counts the keys of an open slot in a step of their own, and routes by them: for a
    /// request whose run cannot count them in the step that runs it.
    pub(crate) async fn count_open_slot(&self, open: OpenSlot) -> Result<(), CmdError> {
        let Some(first) = open.first_key() else { return Ok(()) };
        let shard = self.core.router.shard_of(first);
        let refusal =
            self.core.router.run(shard, None, move |sh: &mut Shard| sh.open_slot_refusal(&open)).await;
        refusal.map_err(|_| CmdError::Unavailable)?.map_or(Ok(()), Err)
    }

    /// Runs a command of an open slot where its keys are counted, in one step: refused as the
    /// count says, or run (see [`OpenSlot`]). What the pipeline queued before it runs first.
    async fn run_counted(
        &mut self,
        cmd: &'static Command,
        (shard, shard_cmd): (ShardId, ShardCmd),
        open: OpenSlot,
        out: &mut BytesMut,
    ) {
        self.settle(out).await;
        let ran = self
            .core
            .router
            .run(shard, None, move |sh: &mut Shard| match sh.open_slot_refusal(&open) {
                Some(refusal) => Err(refusal),
                None => Ok(sh.exec(&shard_cmd)),
            })
            .await;
        let reply = match ran {
            Ok(Ok(reply)) => reply,
            Ok(Err(refusal)) => {
                self.reject(&[], Some(cmd), &refusal);
                refusal.into()
            }
            Err(_) => CmdError::Unavailable.into(),
        };
        self.push_slot(Some(reply));
    }

    /// Logs an ACL denial (ACL LOG) and gives its error.
    fn denied(&self, cmd: &Command, args: &[Bytes], d: crate::engine::acl::Denial) -> CmdError {
        use crate::engine::acl::Reason;
        self.log_denial(cmd, args, d, self.acl_context());
        match d.reason {
            Reason::Command => CmdError::NoPermCommand(cmd.full_name.clone()),
            Reason::Key => CmdError::NoPermKey,
            Reason::Channel => CmdError::NoPermChannel,
        }
    }

    /// EXEC's second check of a command MULTI queued, against the user's rules as they are now
    /// (they may have changed since): a denial is logged and becomes that command's reply.
    ///
    /// # Errors
    /// Redis's "ACLs rules changed" `-NOPERM`.
    pub(crate) fn recheck(&mut self, cmd: &Command, args: &[Bytes]) -> Result<(), CmdError> {
        use crate::engine::acl::Reason;
        if self.superuser || !self.refresh_user() || self.user.unrestricted() {
            // A deleted user's connection is closing; its EXEC runs as a whole or not at all.
            return Ok(());
        }
        self.acl_allows(cmd, args).map_err(|d| {
            self.log_denial(cmd, args, d, "multi");
            CmdError::NoPermChanged(match d.reason {
                Reason::Command => "no permission to execute the command or subcommand",
                Reason::Key => "no permission to touch the specified keys",
                Reason::Channel => "no permission to access one of the channels used as arguments",
            })
        })
    }

    /// The user's rules against one request, its keys found into the session's buffer.
    fn acl_allows(&mut self, cmd: &Command, args: &[Bytes]) -> Result<(), crate::engine::acl::Denial> {
        let mut keys = std::mem::take(&mut self.acl_keys);
        cmd.acl_keys_into(args, &mut keys);
        let checked = crate::engine::acl::check(&self.user, &cmd.acl_request(args, &keys));
        self.acl_keys = keys;
        checked
    }

    /// Adds the ACL LOG entry of a denial.
    fn log_denial(
        &self,
        cmd: &Command,
        args: &[Bytes],
        d: crate::engine::acl::Denial,
        context: &'static str,
    ) {
        use crate::engine::acl::{Reason, What};
        let (reason, object) = match d.reason {
            Reason::Command => (What::Command, Bytes::from(cmd.full_name.clone())),
            Reason::Key => (What::Key, args[d.pos].clone()),
            Reason::Channel => (What::Channel, args[d.pos].clone()),
        };
        self.log_acl_in(reason, object, self.user.name.clone(), context);
    }

    /// The ACL LOG context of what this client runs now: `multi` while it queues.
    fn acl_context(&self) -> &'static str {
        if self.multi.is_some() {
            "multi"
        } else {
            "toplevel"
        }
    }

    /// Adds an ACL LOG entry for this client.
    pub(crate) fn log_acl(&self, reason: crate::engine::acl::What, object: Bytes, username: Bytes) {
        self.log_acl_in(reason, object, username, self.acl_context());
    }

    /// Adds an ACL LOG entry for a command this client's script was denied (context `lua`).
    pub(crate) fn log_acl_lua(&self, reason: crate::engine::acl::What, object: Bytes) {
        self.log_acl_in(reason, object, self.user.name.clone(), "lua");
    }

    fn log_acl_in(
        &self,
        reason: crate::engine::acl::What,
        object: Bytes,
        username: Bytes,
        context: &'static str,
    ) {
        let entry = crate::engine::acl::Entry {
            count: 1,
            reason,
            context,
            object,
            username,
            at_ms: crate::engine::shard::now_ms(),
            client_info: self.client.info_line(),
        };
        let max = self.core.with_config(|c| c.acllog_max_len) as usize;
        self.core.global.users.log(entry, max);
    }

    /// Whether memory is over `maxmemory` now.
    fn over_maxmemory(&self) -> bool {
        let max = self.core.with_config(|c| c.maxmemory.0);
        max > 0 && self.core.global.used_now(self.core.router.local().0, crate::memory::here()) > max
    }

    /// Whether `cmd` may grow memory (`denyoom`), or is an EXEC whose transaction holds one.
    fn denies_oom(&self, cmd: &Command) -> bool {
        self.holds(cmd, |c| c.flags.contains(crate::engine::spec::flag::DENYOOM))
    }

    /// Whether a write pause holds `cmd`: it may write, or it is an EXEC whose transaction
    /// holds one that may.
    fn may_write(&self, cmd: &Command) -> bool {
        self.holds(cmd, Command::may_write)
    }

    /// Whether `test` holds for `cmd`, or `cmd` is an EXEC and it holds for a command queued in
    /// this session's transaction.
    fn holds(&self, cmd: &Command, test: impl Fn(&Command) -> bool) -> bool {
        if test(cmd) {
            return true;
        }
        let commands = crate::engine::command::registry();
        cmd.name == "exec"
            && self
                .multi
                .as_ref()
                .is_some_and(|m| m.queued.iter().any(|(id, _)| commands.by_id(*id).is_some_and(&test)))
    }

    /// Records a command the session ran itself (a shard records those it executes, see
    /// [`crate::engine::stats`]) and turns its result into the reply. The time it spent
    /// blocked is not the command's.
    pub(crate) fn record(&self, cmd: &Command, args: &[Bytes], started: Started, result: CmdResult) -> Reply {
        let reply = result.unwrap_or_else(Reply::from);
        let nanos = started.elapsed_ns().saturating_sub(self.blocked_ns.take());
        let global = &self.core.global;
        self.core.local().commands.borrow_mut().called(cmd.id, nanos, &reply, global.latency_tracking());
        global.latency.command(self.client.core, cmd.observed.fast, nanos);
        if global.slowlog.is_slow(nanos) && !self.replaying {
            let (peer, name) = (self.client.addr.to_string(), self.client.name.borrow().clone());
            global.slowlog.push(self.client.core, cmd.observed, args, nanos, peer, name);
        }
        reply
    }

    /// Who the shard should name in its slow log for this session's commands: nobody while
    /// the AOF is replayed (Redis does not log a load).
    pub(crate) fn origin(&self) -> Origin {
        if self.replaying {
            Origin::Unlogged
        } else {
            Origin::Client { id: self.client.id, core: self.client.core as u32 }
        }
    }

    /// `cmd` with `args` as a shard runs it for this session: who sent it, whether it is
    /// obeyed, and the read to remember when the client tracks its keys.
    pub(crate) fn shard_cmd(&self, cmd: &Command, run: ShardFn, db: usize, args: Vec<Bytes>) -> ShardCmd {
        let track = self.track_of(cmd, &args);
        ShardCmd { obey: self.superuser, origin: self.origin(), track, ..cmd.shard_cmd(run, db, args) }
    }

    /// Runs a command whose body is the session's (connection-level, or inline), recorded.
    async fn run_in_session(&mut self, cmd: &'static Command, args: &[Bytes]) -> Reply {
        let started = Started::now();
        let result = match cmd.run {
            Run::Session(f) => {
                self.remember_first(cmd, args, None).await;
                // What CLIENT LIST shows of a command that may wait (a blocked BLPOP).
                self.client.argv_mem.set(args.iter().map(Bytes::len).sum());
                // `f`'s future is boxed already (`Pending`).
                let result = f(self, args).await;
                self.client.argv_mem.set(0);
                result
            }
            Run::Inline(f) => f(self, args),
            _ => Err(CmdError::Internal),
        };
        self.record(cmd, args, started, result)
    }

    /// Runs a session command that can run at once ([`Command::now`]), recorded: its reply
    /// takes the next slot, behind what the pipeline answered already, as a local shard
    /// command's does. One that has to wait finishes here first.
    async fn run_now(&mut self, cmd: &'static Command, now: NowFn, args: &[Bytes]) {
        let started = Started::now();
        // What CLIENT LIST shows of a command that may wait (a busy script).
        self.client.argv_mem.set(args.iter().map(Bytes::len).sum());
        let result = match now(self, args) {
            Now::Done(result) => result,
            Now::Finish(rest) => rest.await,
        };
        self.client.argv_mem.set(0);
        let reply = self.record(cmd, args, started, result);
        self.push_slot(Some(reply));
    }

    /// Takes the next reply slot, silenced when this command gets no reply.
    fn push_slot(&mut self, reply: Option<Reply>) {
        if self.silent {
            self.pipeline.silenced.push(self.pipeline.slots.len());
        }
        self.pipeline.slots.push(reply);
    }

    /// Dispatches one request, replying as CLIENT REPLY says: a command under OFF, or the one
    /// after SKIP, runs but its reply is not sent (Redis's `CLIENT_REPLY_OFF` / `_SKIP`).
    async fn dispatch(&mut self, args: Vec<Bytes>, known: Option<&'static Command>, out: &mut BytesMut) {
        self.silent = matches!(self.reply_mode, ReplyMode::Off | ReplyMode::Skip);
        let client = args.first().is_some_and(|name| name.eq_ignore_ascii_case(b"client"));
        let asking = args.first().is_some_and(|name| name.eq_ignore_ascii_case(b"asking"));
        self.dispatch_one(args, known, out).await;
        self.silent = false;
        // ASKING holds for the next command, or the transaction it is sent in (Redis's
        // resetClient).
        if self.multi.is_none() && !asking {
            self.asking = false;
        }
        // CLIENT CACHING holds for the next command, or the transaction it begins, as Redis
        // clears CLIENT_TRACKING_CACHING (CLIENT commands in between keep it).
        if self.multi.is_none() && !client {
            self.caching = false;
        }
        self.reply_mode = match self.reply_mode {
            ReplyMode::Skip => ReplyMode::On,
            ReplyMode::SkipNext => ReplyMode::Skip,
            mode => mode,
        };
    }

    /// Answers a refused request. A redirected EXEC drops its transaction and answers the
    /// redirection itself (Redis's `discardTransaction`), not EXECABORT.
    async fn refused(&mut self, args: &[Bytes], e: CmdError) {
        if e.is_redirect()
            && args.first().is_some_and(|a| a.eq_ignore_ascii_case(b"exec"))
            && self.multi.is_some()
        {
            self.end_multi();
            self.unwatch_all().await;
        }
        self.push_slot(Some(e.into()));
    }

    async fn dispatch_one(&mut self, args: Vec<Bytes>, known: Option<&'static Command>, out: &mut BytesMut) {
        if self.script_gates.is_some() && !known.is_some_and(|c| crate::engine::spec::is_script_call(c.name))
        {
            self.release_script_gates().await;
        }
        let mut cmd = match self.check(&args, known) {
            Ok(cmd) => cmd,
            Err(e) => return self.refused(&args, e).await,
        };
        // A pause holds the command (queued into MULTI too, as Redis); once released it is
        // checked again: after a failover, a write finds a replica.
        while !self.replaying && self.core.global.pauses.active() {
            let writes = self.may_write(cmd);
            if !self.core.global.pauses.holds(writes) {
                break;
            }
            self.release_script_gates().await;
            self.settle(out).await;
            // Shown blocked meanwhile (CLIENT LIST's `b`, INFO's blocked_clients), as Redis
            // shows a postponed client; a kill or a hang-up ends the wait.
            self.client.set_paused(true);
            let client = self.client.clone();
            let killed = std::future::poll_fn(|cx| client.poll_unblock(cx));
            let released = self.core.global.pauses.released(writes);
            futures::future::select(std::pin::pin!(released), std::pin::pin!(killed)).await;
            self.client.set_paused(false);
            if self.client.is_killed() {
                return;
            }
            cmd = match self.check(&args, Some(cmd)) {
                Ok(cmd) => cmd,
                Err(e) => return self.push_slot(Some(e.into())),
            };
        }
        let mut open = match self.open_slot.take().and_then(|_| self.open_slot_routes(cmd, &args)) {
            Some(open) => match open.settled() {
                Some(None) => None,
                Some(Some(refusal)) => {
                    let refusal = refusal.clone();
                    self.reject(&args, Some(cmd), &refusal);
                    return self.refused(&args, refusal).await;
                }
                None => Some(open),
            },
            None => None,
        };
        // Counted in the step that runs the request: a command for one shard, EXEC and
        // scripts (which hold the slot's shard when they count). Anything else counts first;
        // a request being queued into MULTI only learns whether it may be queued.
        let queuing = self.multi.is_some() && !cmd.control;
        if let Some(o) = open.take_if(|_| queuing || !counts_where_it_runs(cmd)) {
            if let Err(refusal) = self.count_open_slot(o).await {
                self.reject(&args, Some(cmd), &refusal);
                return self.refused(&args, refusal).await;
            }
        }
        self.client.last_cmd.set(&cmd.full_name);
        if let (Some(multi), false) = (self.multi.as_mut(), cmd.control) {
            let (count, mem) = self.client.multi.get().unwrap_or_default();
            let size = args.iter().map(|a| a.len() + std::mem::size_of::<usize>()).sum::<usize>();
            self.client.multi.set(Some((count + 1, mem + size)));
            multi.queued.push((cmd.id, args));
            return self.push_slot(Some(Reply::status("QUEUED")));
        }
        // Monitors see a command as it is dispatched; two as Redis shows them after they ran:
        // EXEC after what it ran (see `transaction::exec`), RESET once its client stopped
        // monitoring.
        let monitored = self.core.global.monitors.any() && !self.replaying;
        if monitored && !matches!(cmd.name, "exec" | "reset") {
            crate::engine::monitor::feed(&self.core, self.db, Source::Client(&self.client.addr), cmd, &args);
        }
        match cmd.run {
            // Pure replies need no ordering against shards: they take their slot.
            Run::Inline(_) => {
                let reply = self.run_in_session(cmd, &args).await;
                self.push_slot(Some(reply));
            }
            Run::Shard(run) | Run::Split(run, _) | Run::Across(run, _) => {
                match plan(cmd, &args, &self.core.router) {
                    Ok(Plan::Shard(shard)) => {
                        self.affinity.one(shard);
                        let shard_cmd = self.shard_cmd(cmd, run, self.db, args);
                        match open {
                            Some(open) => {
                                Box::pin(self.run_counted(cmd, (shard, shard_cmd), open, out)).await
                            }
                            None => self.queue(shard, shard_cmd),
                        }
                    }
                    Ok(planned) => {
                        self.affinity.spread();
                        if let Some(open) = open {
                            if let Err(refusal) = self.count_open_slot(open).await {
                                self.reject(&args, Some(cmd), &refusal);
                                return self.push_slot(Some(refusal.into()));
                            }
                        }
                        self.settle(out).await;
                        // Boxed: a rare path whose large future must not size every idle connection.
                        let reply = Box::pin(self.run_planned(cmd, planned, &args)).await;
                        self.push_slot(Some(reply));
                    }
                    Err(e) => {
                        let reply = self.record(cmd, &args, Started::now(), Err(e));
                        self.push_slot(Some(reply));
                    }
                }
            }
            Run::Session(_) => {
                self.affinity.spread();
                if let (Some(now), None) = (cmd.now, &open) {
                    if self.pipeline.batches.iter().all(Vec::is_empty) {
                        return self.run_now(cmd, now, &args).await;
                    }
                }
                self.settle(out).await;
                self.open_held = open;
                // Encoded at once: HELLO and RESET change the protocol their own reply uses.
                let reply = Box::pin(self.run_in_session(cmd, &args)).await;
                self.open_held = None;
                if cmd.name == "reset" {
                    crate::engine::monitor::feed(
                        &self.core,
                        self.db,
                        Source::Client(&self.client.addr),
                        cmd,
                        &args,
                    );
                }
                if !self.silent {
                    reply.encode(self.resp3, out);
                }
            }
            Run::Container => self.push_slot(Some(CmdError::Internal.into())),
        }
    }

    /// Runs one command now, wherever [`plan`] says: a command the pipeline could not batch,
    /// and every command of an EXEC (through its transaction).
    pub(crate) async fn run_command(&mut self, cmd: &'static Command, args: &[Bytes]) -> Reply {
        if let Run::Session(_) | Run::Inline(_) = cmd.run {
            return Box::pin(self.run_in_session(cmd, args)).await;
        }
        match plan(cmd, args, &self.core.router) {
            Ok(planned) => Box::pin(self.run_planned(cmd, planned, args)).await,
            Err(e) => self.record(cmd, args, Started::now(), Err(e)),
        }
    }

    /// [`Session::run_command`] inside [`crate::engine::router::blocking`] (each `redis.call` of
    /// a script holding every shard), for a command of one shard: it runs there in the
    /// session's transaction with the arguments given, answered before this returns, with no
    /// future around it. `Err` gives the arguments back for any other command, or with no
    /// transaction running.
    pub(crate) fn run_command_blocking(
        &mut self,
        cmd: &'static Command,
        args: Vec<Bytes>,
    ) -> Result<Reply, Vec<Bytes>> {
        let (Run::Shard(run) | Run::Split(run, _) | Run::Across(run, _)) = cmd.run else { return Err(args) };
        let Some(tx) = self.exec_tx.clone() else { return Err(args) };
        let Ok(Plan::Shard(shard)) = plan(cmd, &args, &self.core.router) else { return Err(args) };
        let shard_cmd = self.shard_cmd(cmd, run, self.db, args);
        Ok(tx.run_blocking(shard, move |sh: &mut Shard| sh.exec(&shard_cmd)).unwrap_or_else(unavailable))
    }

    /// Runs `cmd` on `shard`, which records it.
    async fn run_on_shard(&self, cmd: &Command, run: ShardFn, shard: ShardId, args: Vec<Bytes>) -> Reply {
        let shard_cmd = self.shard_cmd(cmd, run, self.db, args);
        self.run_on(shard, move |sh: &mut Shard| sh.exec(&shard_cmd)).await.unwrap_or_else(unavailable)
    }

    /// Runs a keyed command as planned: on its shard (which records it), or here, recorded.
    async fn run_planned(&mut self, cmd: &'static Command, planned: Plan, args: &[Bytes]) -> Reply {
        let db = self.db;
        let started = Started::now();
        let result: CmdResult = match (planned, cmd.run) {
            (Plan::Shard(shard), Run::Shard(run) | Run::Split(run, _) | Run::Across(run, _)) => {
                return self.run_on_shard(cmd, run, shard, args.to_vec()).await;
            }
            (Plan::Split(parts), Run::Split(run, merge)) => {
                let reply = self.split(cmd, run, merge, &parts, args).await;
                return self.record(cmd, args, started, Ok(reply));
            }
            (Plan::Across(shards), Run::Across(_, across)) => match self.exec_tx.clone() {
                Some(tx) => {
                    self.remember_first(cmd, args, Some(&*tx)).await;
                    run_across(cmd, across, &tx, db, args).await
                }
                None => match self.core.router.begin(shards).await {
                    Ok(tx) => {
                        self.remember_first(cmd, args, Some(&tx)).await;
                        let result = run_across(cmd, across, &tx, db, args).await;
                        tx.release().await;
                        result
                    }
                    Err(_) => Err(CmdError::Unavailable),
                },
            },
            (_, Run::Session(f)) => f(self, args).await,
            (_, Run::Inline(f)) => f(self, args),
            _ => Err(CmdError::Internal),
        };
        self.record(cmd, args, started, result)
    }

    /// A split command: each shard gets its keys (with what follows each, for MSET's values),
    /// atomically across them; the replies merge.
    async fn split(
        &mut self,
        cmd: &'static Command,
        run: ShardFn,
        merge: Merge,
        parts: &BTreeMap<ShardId, Vec<usize>>,
        args: &[Bytes],
    ) -> Reply {
        let step = cmd.legacy.step.max(1) as usize;
        let db = self.db;
        let work: Vec<_> = parts
            .iter()
            .map(|(&s, positions)| {
                let mut sub = Vec::with_capacity(1 + positions.len() * step);
                sub.push(args[0].clone());
                for &p in positions {
                    sub.extend_from_slice(&args[p..(p + step).min(args.len())]);
                }
                let cmd = ShardCmd { id: None, ..self.shard_cmd(cmd, run, db, sub) };
                (s, move |shard: &mut Shard| shard.exec(&cmd))
            })
            .collect();
        let replies = match self.exec_tx.clone() {
            Some(tx) => futures::future::join_all(work.into_iter().map(|(s, f)| tx.run(s, f))).await,
            // The common case: one message per shard, the last one locking and running at once.
            None => self.core.router.atomically(work).await,
        };
        merge_replies(merge, parts, args.len(), replies)
    }

    /// Queues a single-shard command, or runs it now when it is for the local shard and nothing
    /// is ahead of it.
    fn queue(&mut self, shard: ShardId, cmd: ShardCmd) {
        let router = &self.core.router;
        let batch = &mut self.pipeline.batches[shard.0];
        if shard == router.local() && batch.is_empty() {
            if let Some(reply) = router.try_local(|s| s.exec(&cmd)) {
                return self.push_slot(Some(reply));
            }
        }
        if batch.capacity() == 0 {
            *batch = router.pipeline_batch();
        }
        batch.push((self.pipeline.slots.len(), cmd));
        self.push_slot(None);
    }

    /// Sends every queued batch, one hop per shard, all at once, and puts each reply in its
    /// slot. Each batch comes back with its replies ([`Pipelined`]): its commands, and the
    /// memory the parser gave their arguments, are dropped by the thread that allocated them,
    /// and its vectors are kept for the next pipeline. A shard that is gone leaves its slots
    /// empty, answered `Unavailable` when they settle.
    ///
    /// [`Pipelined`]: crate::engine::pipelined::Pipelined
    async fn hop_batches(&mut self) {
        let router = self.core.router.clone();
        // Most pipelines send one batch (two shards, the local one's commands run inline): no
        // vector for the answers then.
        let (mut first, mut rest) = (None, Vec::new());
        for (s, batch) in self.pipeline.batches.iter_mut().enumerate() {
            if !batch.is_empty() {
                let answer = router.send_pipelined(ShardId(s), std::mem::take(batch));
                match first {
                    None => first = Some(answer),
                    Some(_) => rest.push(answer),
                }
            }
        }
        for answer in first.into_iter().chain(rest) {
            if let Ok(mut hop) = answer.await {
                for ((slot, _), reply) in hop.cmds.iter().zip(hop.replies.drain(..)) {
                    self.pipeline.slots[*slot] = Some(reply);
                }
                router.recycle(hop);
            }
        }
    }

    /// Sends every queued batch (one hop per shard, all at once), waits for the replies, and
    /// encodes every reply so far, in order, into `out`.
    async fn settle(&mut self, out: &mut BytesMut) {
        // Every queued command has its slot: nothing to send and nothing to write.
        if self.pipeline.slots.is_empty() {
            return;
        }
        // Commands run on the local shard as they came have their replies already.
        if self.pipeline.batches.iter().any(|b| !b.is_empty()) {
            self.hop_batches().await;
        }
        let mut silenced = std::mem::take(&mut self.pipeline.silenced).into_iter().peekable();
        for (i, reply) in self.pipeline.slots.drain(..).enumerate() {
            if silenced.next_if_eq(&i).is_some() {
                continue;
            }
            reply.unwrap_or_else(|| CmdError::Unavailable.into()).encode(self.resp3, out);
        }
    }
}

/// Whether a request for an open slot counts its keys in the step that runs it (see
/// [`OpenSlot`]): a command run on its keys' shard does, and so do EXEC and scripts, which
/// count them once they hold the slot's shard ([`Session::open_held`]).
fn counts_where_it_runs(cmd: &Command) -> bool {
    match cmd.run {
        Run::Shard(_) | Run::Split(..) | Run::Across(..) => true,
        Run::Session(_) => cmd.name == "exec" || crate::engine::spec::is_script_call(cmd.name),
        Run::Inline(_) | Run::Container => false,
    }
}

/// Runs a command's cross-shard protocol in `tx` and logs it as it came when it wrote and its
/// shards logged nothing of it themselves (LMPOP's shards log the pop they made).
async fn run_across(cmd: &Command, across: AcrossFn, tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let journaling = tx.journaling() && cmd.flags.contains(crate::engine::spec::flag::WRITE);
    let before = if journaling { tx.explicit() } else { 0 };
    let result = across(tx, db, args).await;
    if journaling && result.is_ok() && tx.explicit() == before {
        let logged: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        tx.log(Some(db), &logged);
    }
    result
}

fn unavailable(_: Unavailable) -> Reply {
    CmdError::Unavailable.into()
}

/// Puts per-shard replies of a split command back together.
fn merge_replies(
    merge: Merge,
    parts: &BTreeMap<ShardId, Vec<usize>>,
    argc: usize,
    replies: Vec<Result<Reply, Unavailable>>,
) -> Reply {
    let mut values = vec![Reply::Nil; argc];
    let mut sum = 0;
    for (positions, reply) in parts.values().zip(replies) {
        match reply {
            Err(_) => return CmdError::Unavailable.into(),
            Ok(e @ Reply::Error(_)) => return e,
            Ok(Reply::Int(n)) => sum += n,
            Ok(Reply::Array(items)) => {
                for (&p, item) in positions.iter().zip(items) {
                    values[p] = item;
                }
            }
            Ok(_) => {}
        }
    }
    match merge {
        Merge::Sum => Reply::Int(sum),
        Merge::Positional => {
            let mut positions: Vec<usize> = parts.values().flatten().copied().collect();
            positions.sort_unstable();
            Reply::Array(
                positions.into_iter().map(|p| std::mem::replace(&mut values[p], Reply::Nil)).collect(),
            )
        }
        Merge::AllOk => Reply::Ok,
    }
}

impl Service for Session {
    fn limits(&self) -> ConnLimits {
        self.core.with_config(|c| ConnLimits {
            parser: Limits { max_bulk: c.proto_max_bulk_len.0, max_multibulk: i32::MAX as u64 },
            query_buffer: usize::try_from(c.client_query_buffer_limit.0).unwrap_or(usize::MAX),
            // Like Redis, `timeout` does not apply to subscribers.
            idle: (c.timeout > 0 && !self.subscribed()).then(|| Duration::from_secs(c.timeout)),
        })
    }

    fn authenticated(&self) -> bool {
        self.authed
    }

    async fn call(&mut self, requests: &mut Vec<Vec<Bytes>>, out: &mut BytesMut) -> Flow {
        let router = self.core.router.clone();
        router.try_local(Shard::tick);
        self.client.touch();
        let commands = crate::engine::command::registry();
        // A pipelined batch looks its commands up once, for its prefetch and its dispatch.
        let known: Vec<Option<&'static Command>> = if requests.len() > 1 {
            let known: Vec<_> = requests.iter().map(|args| commands.resolve(args).ok()).collect();
            // The local keys of the batch: their cache misses overlap before any runs.
            let local = router.local();
            let db = self.db;
            router.try_local(|shard| {
                let here = |key: &Bytes| router.shard_of(key) == local;
                let keys = requests.iter().zip(&known).filter_map(|(args, c)| c.as_ref()?.first_key(args));
                shard.prefetch(db, keys.filter(|key| here(key)));
                // Only container commands pay for the second pass (and its routing).
                let members = requests.iter().zip(&known).filter_map(|(args, c)| c.as_ref()?.member_of(args));
                shard.prefetch_members(db, members.filter(|m| here(m.key)));
            });
            known
        } else {
            Vec::new()
        };
        for (i, args) in requests.drain(..).enumerate() {
            self.pipeline.next_script = known
                .get(i + 1)
                .copied()
                .flatten()
                .is_some_and(|c| crate::engine::spec::is_script_call(c.name));
            self.dispatch(args, known.get(i).copied().flatten(), out).await;
            // A killed client (CLIENT KILL, or it hung up while blocked) runs nothing more, nor
            // does a connection that became a replica's link.
            if self.closing || self.client.is_killed() || self.handover.is_some() {
                break;
            }
        }
        self.release_script_gates().await;
        self.settle(out).await;
        self.core.router.publish_local();
        self.client.db.set(self.db);
        // `appendfsync always`: no reply before its write is on disk. Every write of this call
        // was published before its reply came back; one fsync covers every connection waiting.
        if std::mem::take(&mut self.wrote) && self.core.global.journal.waits() {
            let journal = &self.core.global.journal;
            self.core.commits.wait(journal, journal.last_ticket()).await;
        }
        if self.closing || self.client.is_killed() {
            Flow::Close
        } else if self.handover.is_some() {
            Flow::Handover
        } else if let Some(to) = self.affinity.end_call(router.local()) {
            let left = &self.core.local().moves_left;
            if left.get() > 0 && self.movable() && self.core.config().migrate_connections {
                left.set(left.get() - 1);
                Flow::Move(to.0)
            } else {
                Flow::Continue
            }
        } else {
            Flow::Continue
        }
    }

    type Waiting = Rc<Client>;

    fn waiting(&self) -> Rc<Client> {
        self.client.clone()
    }

    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Event> {
        // Register first: a caller may ignore Push (while writing) and must still be woken by a
        // later kill, whose wake would otherwise find no waker.
        self.client.set_waker(cx.waker());
        if self.client.is_killed() {
            return Poll::Ready(Event::Close);
        }
        if self.client.has_pushes() {
            return Poll::Ready(Event::Push);
        }
        Poll::Pending
    }

    fn take_pushes(&mut self, out: &mut BytesMut) {
        self.client.take_pushes(out);
    }

    fn on_buffers(&self, buffers: Buffers) {
        self.client.buffers.set(buffers);
        crate::engine::client_eviction::note(&self.core, &self.client);
    }

    fn on_io(&self, read: usize, written: usize) {
        self.core.local().count(|s| {
            s.net_in += read as u64;
            s.net_out += written as u64;
            s.reads += u64::from(read > 0);
            s.writes += u64::from(written > 0);
        });
    }

    fn on_layer_buffered(&self, bytes: usize) {
        self.client.tls_buffered.set(bytes);
    }
}
