//! A client's session on its core: the connection's state (database, protocol, MULTI, WATCH,
//! subscriptions) and the ways a command reaches shards from it. The pipeline that decides
//! where each request runs is [`crate::engine::dispatch`].

use std::collections::BTreeSet;
use std::rc::Rc;

use bytes::Bytes;

use crate::cmd::error::CmdError;
use crate::engine::client::Client;
use crate::engine::core::Core;
use crate::engine::router::{Tx, Unavailable};
use crate::engine::shard::{Ctx, Shard, ShardCmd};
use crate::engine::slot::ShardId;
use crate::engine::watch::WatchFlag;
use crate::facade::Reply;

/// What MULTI has queued.
#[derive(Default)]
pub(crate) struct Multi {
    /// The queued commands (checked when queued: their registry ids), in order.
    pub(crate) queued: Vec<(usize, Vec<Bytes>)>,
    /// A request failed to queue: EXEC must answer EXECABORT.
    pub(crate) failed: bool,
}

/// The requests of a pipelined read that are still to run or to reply.
#[derive(Default)]
pub(crate) struct Pipeline {
    /// Per shard: commands waiting to be sent, with the reply slot each fills.
    pub(crate) batches: Vec<Vec<(usize, ShardCmd)>>,
    /// Replies in request order; `None` while its shard has not answered.
    pub(crate) slots: Vec<Option<Reply>>,
    /// The slots whose reply is not sent (CLIENT REPLY OFF or SKIP), in order.
    pub(crate) silenced: Vec<usize>,
    /// The request after the one being dispatched, in the same read, runs a script.
    pub(crate) next_script: bool,
}

/// CLIENT REPLY: whether the server replies to this client's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ReplyMode {
    /// Every command gets its reply.
    #[default]
    On,
    /// No command does (until CLIENT REPLY ON).
    Off,
    /// CLIENT REPLY SKIP ran: the command after it gets none.
    SkipNext,
    /// This command gets none; the next does.
    Skip,
}

/// One client's session on its core.
pub(crate) struct Session {
    /// The core's context.
    pub(crate) core: Rc<Core>,
    /// What CLIENT LIST shows of this client.
    pub(crate) client: Rc<Client>,
    /// The selected database.
    pub(crate) db: usize,
    /// Room for the keys the ACL check finds in each request (kept: no allocation per request).
    pub(crate) acl_keys: Vec<(usize, crate::engine::spec::KeyFlags)>,
    /// Whether the client speaks RESP3.
    pub(crate) resp3: bool,
    /// Whether the client has authenticated (always, when the default user needs no password).
    pub(crate) authed: bool,
    /// The ACL user it runs as, as of [`Session::acl_generation`].
    pub(crate) user: std::sync::Arc<crate::engine::acl::User>,
    /// The users table's generation when `user` was read.
    pub(crate) acl_generation: u64,
    /// An internal session (AOF replay, the link to a primary): ACLs do not apply, as Redis's
    /// clients with no user.
    pub(crate) superuser: bool,
    /// Set by QUIT, SHUTDOWN and CLIENT KILL of itself: close after this batch's replies.
    pub(crate) closing: bool,
    /// Commands queued since MULTI, and whether one of them failed to queue.
    pub(crate) multi: Option<Multi>,
    /// The transaction an EXEC is running; hops go through it while it is set.
    pub(crate) exec_tx: Option<Rc<Tx>>,
    /// Every shard's gate and this core's turn at them, kept by a script that held them all
    /// for the next request of the same read, a script too (see `script::run`); handed on or
    /// released before anything else runs.
    pub(crate) script_gates: Option<(Tx, crate::engine::script::turn::Turn)>,
    /// The WATCHed keys, with their database.
    pub(crate) watched: Vec<(usize, Bytes)>,
    /// Subscribed channels.
    pub(crate) channels: BTreeSet<Bytes>,
    /// Subscribed patterns.
    pub(crate) patterns: BTreeSet<Bytes>,
    /// The pipelined read being run.
    pub(crate) pipeline: Pipeline,
    /// Nanoseconds the running command has spent blocked (left out of its statistics).
    pub(crate) blocked_ns: std::cell::Cell<u64>,
    /// Cluster mode: ASKING was sent; it holds for the next command, or until the transaction
    /// it is sent in ends.
    pub(crate) asking: bool,
    /// Cluster mode: the request being checked touches a slot being migrated or imported, and
    /// its keys must be looked up before it may run here.
    pub(crate) open_slot: Option<u16>,
    /// Cluster mode: the routes of an open slot's request that EXEC or a script applies once
    /// it holds the slot's shard, counting the keys there (see `OpenSlot`).
    pub(crate) open_held: Option<crate::engine::cluster::redirect::OpenSlot>,
    /// Cluster mode: READONLY was sent (reads of its primary's slots on a replica).
    pub(crate) cluster_readonly: bool,
    /// The session replaying the AOF at startup: it runs while others get LOADING, and its
    /// blocking commands never block (Redis's `CLIENT_DENY_BLOCKING`).
    pub(crate) replaying: bool,
    /// CLIENT REPLY's mode.
    pub(crate) reply_mode: ReplyMode,
    /// The command being dispatched gets no reply (see [`ReplyMode`]).
    pub(crate) silent: bool,
    /// A script holding every shard runs its `redis.call`s through this session: a blocking
    /// command with BLOCK is refused, as Redis refuses it from scripts.
    pub(crate) in_script: bool,
    /// A write command ran in the current call: under `appendfsync always` its replies wait
    /// for the disk.
    pub(crate) wrote: bool,
    /// What the client told REPLCONF (a replica, before its SYNC or PSYNC).
    pub(crate) replconf: crate::engine::replication::ReplConf,
    /// SYNC or PSYNC asked for the connection to become a replica's link.
    pub(crate) handover: Option<crate::engine::replication::SyncRequest>,
    /// CLIENT CACHING YES or NO was given for the next command (or transaction).
    pub(crate) caching: bool,
    /// CLIENT TRACKING's BCAST prefixes, in order (see [`crate::engine::caching`]).
    pub(crate) tracking_prefixes: BTreeSet<Bytes>,
    /// Where its calls go: whether the connection should move to another core.
    pub(crate) affinity: crate::engine::affinity::Affinity,
}

/// What a session takes along when its connection moves to another core (see
/// [`Session::movable`] for what it must not hold).
pub(crate) struct Carried {
    db: usize,
    resp3: bool,
    authed: bool,
    user: std::sync::Arc<crate::engine::acl::User>,
    acl_generation: u64,
    reply_mode: ReplyMode,
    cluster_readonly: bool,
    replconf: crate::engine::replication::ReplConf,
}

impl Session {
    /// What moves with the session to another core.
    #[must_use]
    pub(crate) fn carry(&self) -> Carried {
        Carried {
            db: self.db,
            resp3: self.resp3,
            authed: self.authed,
            user: self.user.clone(),
            acl_generation: self.acl_generation,
            reply_mode: self.reply_mode,
            cluster_readonly: self.cluster_readonly,
            replconf: self.replconf.clone(),
        }
    }

    /// The session of a client that moved to `core`, as it was on its old core.
    #[must_use]
    pub(crate) fn arrive(core: Rc<Core>, client: Rc<Client>, c: Carried) -> Session {
        let mut s = Session::new(core, client);
        (s.db, s.resp3, s.authed, s.user, s.acl_generation) =
            (c.db, c.resp3, c.authed, c.user, c.acl_generation);
        (s.reply_mode, s.cluster_readonly, s.replconf) = (c.reply_mode, c.cluster_readonly, c.replconf);
        s
    }

    /// A new session for `client` on `core`.
    #[must_use]
    pub(crate) fn new(core: Rc<Core>, client: Rc<Client>) -> Session {
        let shards = core.router.shards();
        let acl_generation = core.global.users.generation();
        let user = core.global.users.default_user();
        let authed = user.nopass && user.enabled;
        Session {
            core,
            client,
            db: 0,
            acl_keys: Vec::new(),
            resp3: false,
            authed,
            user,
            acl_generation,
            superuser: false,
            closing: false,
            multi: None,
            exec_tx: None,
            script_gates: None,
            watched: Vec::new(),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            pipeline: Pipeline { batches: (0..shards).map(|_| Vec::new()).collect(), ..Pipeline::default() },
            blocked_ns: std::cell::Cell::new(0),
            replaying: false,
            reply_mode: ReplyMode::On,
            silent: false,
            in_script: false,
            wrote: false,
            replconf: crate::engine::replication::ReplConf::default(),
            handover: None,
            caching: false,
            tracking_prefixes: BTreeSet::new(),
            asking: false,
            cluster_readonly: false,
            open_slot: None,
            open_held: None,
            affinity: crate::engine::affinity::Affinity::default(),
        }
    }

    /// Authenticates the session as `user` (read at `generation`).
    pub(crate) fn log_in(&mut self, user: std::sync::Arc<crate::engine::acl::User>, generation: u64) {
        *self.client.user.borrow_mut() = user.name.clone();
        self.user = user;
        self.acl_generation = generation;
        self.authed = true;
    }

    /// `tls-auth-clients-user`: a verified client certificate that names an enabled user
    /// authenticates the new connection as that user. One that names no enabled user leaves it
    /// the default user's, counted in INFO and logged in ACL LOG (reason `tls-cert`), as Valkey.
    pub(crate) fn log_in_by_certificate(&mut self) {
        let mode = self.core.with_config(|c| c.tls_auth_clients_user);
        let Some(tls) = self.client.tls.as_ref() else { return };
        let users = &self.core.global.users;
        // Read first: a change after it makes the next command look the user up again.
        let generation = users.generation();
        match users.by_certificate(mode, &tls.client_cn, &tls.client_uris) {
            Ok(Some(user)) => {
                tracing::debug!(
                    id = self.client.id,
                    "TLS: Auto-authenticated client as {}",
                    user.name.escape_ascii()
                );
                self.log_in(user, generation);
            }
            Ok(None) => {}
            Err(name) => {
                tracing::debug!(
                    id = self.client.id,
                    "TLS: no enabled user named '{}' by the client certificate",
                    name.escape_ascii()
                );
                self.log_acl(crate::engine::acl::What::TlsCert, Bytes::new(), name);
            }
        }
    }

    /// Back to the default user, authenticated only if it needs no password (a new
    /// connection's state, and RESET's).
    pub(crate) fn log_out(&mut self) {
        let users = &self.core.global.users;
        self.acl_generation = users.generation();
        self.user = users.default_user();
        self.authed = self.user.nopass && self.user.enabled;
        *self.client.user.borrow_mut() = self.user.name.clone();
    }

    /// Picks up a change to the users table; `false` if the session's user was deleted
    /// (the connection then closes, as Redis disconnects a deleted user's clients).
    pub(crate) fn refresh_user(&mut self) -> bool {
        let users = &self.core.global.users;
        let generation = users.generation();
        if generation == self.acl_generation {
            return true;
        }
        self.acl_generation = generation;
        match users.get(&self.user.name) {
            Some(user) => {
                self.user = user;
                true
            }
            None => {
                self.closing = true;
                self.client.kill();
                false
            }
        }
    }

    /// The flag shards set when a key this client WATCHes is modified.
    #[must_use]
    pub(crate) fn watch_flag(&self) -> WatchFlag {
        self.client.watch_flag.borrow().clone()
    }

    /// MULTI: commands queue from now on.
    pub(crate) fn begin_multi(&mut self) {
        self.multi = Some(Multi::default());
        self.client.multi.set(Some((0, 0)));
    }

    /// The end of MULTI (EXEC, DISCARD, RESET): what it queued, if it had begun.
    pub(crate) fn end_multi(&mut self) -> Option<Multi> {
        self.client.multi.set(None);
        self.multi.take()
    }

    /// Whether the client has any channel, pattern or shard channel subscription.
    #[must_use]
    pub(crate) fn subscribed(&self) -> bool {
        !self.channels.is_empty()
            || !self.patterns.is_empty()
            || !self.client.shard_channels.borrow().is_empty()
    }

    /// RESP2 clients with subscriptions may only run the pub/sub commands (Redis's rule).
    #[must_use]
    pub(crate) fn subscribed_resp2(&self) -> bool {
        !self.resp3 && self.subscribed()
    }

    /// Whether the connection may move to another core now (see [`crate::engine::affinity`]):
    /// nothing of it is tied to this core. No transaction, watch, subscription, monitor,
    /// tracking or block; not a replica's link, an internal session or another client's
    /// tracking redirect; no ASKING or CLIENT CACHING pending for its next command.
    #[must_use]
    pub(crate) fn movable(&self) -> bool {
        self.multi.is_none()
            && self.exec_tx.is_none()
            && self.script_gates.is_none()
            && self.watched.is_empty()
            && !self.subscribed()
            && self.tracking_prefixes.is_empty()
            && !self.caching
            && !self.asking
            && self.handover.is_none()
            && !self.replaying
            && !self.superuser
            && !self.client.monitor.get()
            && !self.client.tracking.get().on
            && !self.client.redirect_target.get()
            && !self.client.replica.get()
            && !self.client.is_blocked()
            && !self.client.has_pushes()
            && !self.client.is_killed()
    }

    /// Ends the hold of the gates a script kept for the next one, if it did: to this core's
    /// next script, or released (see `script::turn::hand_on`).
    pub(crate) async fn release_script_gates(&mut self) {
        if let Some((tx, turn)) = self.script_gates.take() {
            crate::engine::script::turn::hand_on(&self.core, tx, turn).await;
        }
    }

    /// Whether an EXEC is running this session's commands.
    #[must_use]
    pub(crate) fn in_exec(&self) -> bool {
        self.exec_tx.is_some()
    }

    /// Whether a blocking command may block: not inside EXEC, nor while replaying the AOF, as
    /// in Redis.
    #[must_use]
    pub(crate) fn may_block(&self) -> bool {
        !self.in_exec() && !self.replaying
    }

    /// Runs `f` on `shard`: through the running EXEC's transaction if there is one.
    pub(crate) async fn run_on<R, F>(&self, shard: ShardId, f: F) -> Result<R, Unavailable>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        match &self.exec_tx {
            Some(tx) => tx.run(shard, f).await,
            None => self.core.router.run(shard, None, f).await,
        }
    }

    /// Runs `f` against the selected database of `shard` (through the running EXEC, if any).
    pub(crate) async fn on_db<R, F>(&self, shard: ShardId, f: F) -> Result<R, CmdError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Ctx<'_>) -> Result<R, CmdError> + Send + 'static,
    {
        let db = self.db;
        match self.run_on(shard, move |sh: &mut Shard| sh.with_db(db, f)).await {
            Ok(r) => r,
            Err(Unavailable(_)) => Err(CmdError::Unavailable),
        }
    }

    /// Runs `f` on every shard concurrently, without locking; results in shard order.
    pub(crate) async fn each_shard<R, F>(&self, f: F) -> Result<Vec<R>, CmdError>
    where
        R: Send + 'static,
        F: Fn(&mut Shard) -> R + Clone + Send + 'static,
    {
        let hops = (0..self.core.router.shards()).map(|s| self.run_on(ShardId(s), f.clone()));
        futures::future::join_all(hops)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| CmdError::Unavailable)
    }

    /// Runs an operation on `keys` atomically, wherever they live: in one hop on their shard
    /// when they share one (`here`), else `across` in a transaction holding their shards (the
    /// running EXEC's, which holds them already, if there is one). The typed operations of the
    /// families (LMPOP's, LMOVE's, ...) reach their keys this way, wherever they are called
    /// from: a command, a blocked client's retry, EXEC.
    pub(crate) async fn over_keys<R, H, A>(&self, keys: &[Bytes], here: H, across: A) -> Result<R, CmdError>
    where
        R: Send + 'static,
        H: FnOnce(&mut Ctx<'_>) -> Result<R, CmdError> + Send + 'static,
        A: AsyncFnOnce(&Tx) -> Result<R, CmdError>,
    {
        let router = &self.core.router;
        let (shard, together) = router.placement(keys.iter().map(|k| &k[..]));
        if together {
            return self.on_db(shard, here).await;
        }
        if let Some(tx) = self.exec_tx.clone() {
            return across(&tx).await;
        }
        let shards: BTreeSet<ShardId> = keys.iter().map(|k| router.shard_of(k)).collect();
        let tx = router.begin(shards.into_iter().collect()).await.map_err(|_| CmdError::Unavailable)?;
        let result = across(&tx).await;
        tx.release().await;
        result
    }

    /// UNWATCH, and the end of every EXEC or DISCARD: forgets the keys and starts a fresh flag.
    pub(crate) async fn unwatch_all(&mut self) {
        let watched = std::mem::take(&mut self.watched);
        let flag = self.client.watch_flag.replace(WatchFlag::default());
        let router = self.core.router.clone();
        let hops = watched.into_iter().map(|(db, key)| {
            let flag = flag.clone();
            router.run(router.shard_of(&key), None, move |sh: &mut Shard| sh.unwatch(db, &key, &flag))
        });
        futures::future::join_all(hops).await;
    }

    /// MONITOR: this client gets every command from now on.
    pub(crate) fn start_monitoring(&mut self) {
        if self.client.monitor.replace(true) {
            return;
        }
        self.core.local().monitors.borrow_mut().push(self.client.clone());
        self.core.global.monitors.count(self.client.core, true);
    }

    /// Ends MONITOR (RESET, disconnect).
    pub(crate) fn stop_monitoring(&mut self) {
        if !self.client.monitor.replace(false) {
            return;
        }
        self.core.local().monitors.borrow_mut().retain(|c| c.id != self.client.id);
        self.core.global.monitors.count(self.client.core, false);
    }

    /// Drops every subscription (RESET, disconnect).
    pub(crate) fn unsubscribe_all(&mut self) {
        if !self.subscribed() {
            return;
        }
        self.core.local().pubsub.borrow_mut().remove_client(self.client.id);
        self.core.local().note_subscribers(&self.core.global, self.core.router.local().0);
        self.channels.clear();
        self.patterns.clear();
        self.client.shard_channels.borrow_mut().clear();
        self.client.subscriptions.set((0, 0));
    }
}

impl Drop for Session {
    /// A client that leaves while WATCHing: its watches are dropped from the shards in the
    /// background (a flag whose client is gone would otherwise linger until its key changes).
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.stop_monitoring();
        if self.stop_tracking() {
            let (router, id) = (self.core.router.clone(), self.client.id);
            glommio::spawn_local(async move {
                for shard in 0..router.shards() {
                    let _ = router.run(ShardId(shard), None, move |sh: &mut Shard| sh.unfollow(id)).await;
                }
            })
            .detach();
        }
        if self.watched.is_empty() {
            return;
        }
        let (router, watched, flag) =
            (self.core.router.clone(), std::mem::take(&mut self.watched), self.watch_flag());
        glommio::spawn_local(async move {
            for (db, key) in watched {
                let flag = flag.clone();
                let shard = router.shard_of(&key);
                let _ = router.run(shard, None, move |sh: &mut Shard| sh.unwatch(db, &key, &flag)).await;
            }
        })
        .detach();
    }
}
