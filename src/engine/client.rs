//! What the server knows of one connected client, for CLIENT LIST / INFO / KILL.
//!
//! Owned by the client's connection task; the core's registry in its shard holds another `Rc`.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;

use crate::config::OutputLimit;
use crate::engine::watch::WatchFlag;
use crate::facade::{Buffers, Reply};

/// Why a blocked client stopped waiting without being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unblock {
    /// Its timeout passed, or CLIENT UNBLOCK ... TIMEOUT.
    Timeout,
    /// CLIENT UNBLOCK ... ERROR, or the connection is closing.
    Error,
    /// The server became a replica (Redis's `disconnectAllBlockedClients`): the client gets
    /// `-UNBLOCKED` and its connection closes after the reply.
    Demoted,
}

/// A client's CLIENT TRACKING mode (Redis's `CLIENT_TRACKING*` flags and redirection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TrackingMode {
    /// Tracking is on.
    pub(crate) on: bool,
    /// BCAST: told of every key changed under its prefixes, read or not.
    pub(crate) bcast: bool,
    /// OPTIN: only reads right after CLIENT CACHING YES are remembered.
    pub(crate) optin: bool,
    /// OPTOUT: reads right after CLIENT CACHING NO are not remembered.
    pub(crate) optout: bool,
    /// NOLOOP: not told of its own changes.
    pub(crate) noloop: bool,
    /// The client it redirects to is gone.
    pub(crate) broken: bool,
    /// The client its invalidations go to (0: itself), and that client's core.
    pub(crate) redirect: (u64, u32),
}

/// One client connection, as CLIENT LIST shows it.
pub(crate) struct Client {
    /// The CLIENT ID.
    pub(crate) id: u64,
    /// The peer's address.
    pub(crate) addr: SocketAddr,
    /// The local address it connected to.
    pub(crate) laddr: SocketAddr,
    /// The negotiated TLS version and cipher; `None` for plain TCP.
    pub(crate) tls: Option<crate::facade::stream::TlsInfo>,
    /// The core (shard) that owns the connection.
    pub(crate) core: usize,
    created: Instant,
    /// Unix ms of the last command, from the core's clock (no clock read per request).
    last_active: Cell<u64>,
    /// CLIENT SETNAME.
    pub(crate) name: RefCell<String>,
    /// The ACL user it is authenticated as (`default` until AUTH).
    pub(crate) user: RefCell<bytes::Bytes>,
    /// CLIENT SETINFO LIB-NAME / LIB-VER.
    pub(crate) lib: RefCell<(String, String)>,
    /// Selected database.
    pub(crate) db: Cell<usize>,
    /// RESP version (2 or 3).
    pub(crate) resp: Cell<u8>,
    /// The last command's full name (`client|list`).
    pub(crate) last_cmd: Cell<&'static str>,
    /// The socket's file descriptor.
    pub(crate) fd: i32,
    /// The connection's query and reply buffers, as last reported.
    pub(crate) buffers: Cell<Buffers>,
    /// Bytes of the arguments of the command running now (0 between commands).
    pub(crate) argv_mem: Cell<usize>,
    /// In MULTI: the commands queued and their memory (arguments plus a pointer each, as
    /// Redis counts `multi-mem`).
    pub(crate) multi: Cell<Option<(usize, usize)>>,
    /// Set by a shard when a key this client WATCHes is modified (EXEC then fails).
    pub(crate) watch_flag: RefCell<WatchFlag>,
    /// Bytes rustls holds for this client (unread plaintext, unsent records), as of its last
    /// exchange or stalled write.
    pub(crate) tls_buffered: Cell<usize>,
    killed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    /// Encoded pub/sub messages waiting to be written.
    pushes: RefCell<BytesMut>,
    /// When the push backlog first passed the soft limit (pubsub output buffer).
    over_soft: Cell<Option<Instant>>,
    /// Whether the client is blocked (BLPOP and friends), and how CLIENT UNBLOCK released it.
    blocked: Cell<bool>,
    /// Whether a pause holds its command (CLIENT LIST shows it blocked; CLIENT UNBLOCK does
    /// not release it).
    paused: Cell<bool>,
    /// Whether the current block has a timeout (INFO's `clients_in_timeout_table`).
    blocked_timeout: Cell<bool>,
    unblocked: Cell<Option<Unblock>>,
    /// Channels and patterns subscribed (for CLIENT LIST and the subscribed-mode rules).
    pub(crate) subscriptions: Cell<(usize, usize)>,
    /// Shard channels subscribed (SSUBSCRIBE): kept here rather than in the session, since
    /// the core drops them when the cluster moves their slot away.
    pub(crate) shard_channels: RefCell<std::collections::BTreeSet<bytes::Bytes>>,
    /// The connection is a replica's link (after SYNC or PSYNC).
    pub(crate) replica: Cell<bool>,
    /// CLIENT NO-EVICT: never dropped by `maxmemory-clients`.
    pub(crate) no_evict: Cell<bool>,
    /// MONITOR: it gets a line for every command (see [`crate::engine::monitor`]).
    pub(crate) monitor: Cell<bool>,
    /// Its memory as its core's total for `maxmemory-clients` last counted it.
    pub(crate) counted: Cell<u64>,
    /// CLIENT TRACKING (see [`crate::engine::caching`]).
    pub(crate) tracking: Cell<TrackingMode>,
    /// Another client's CLIENT TRACKING REDIRECT names it: invalidations are sent to its core,
    /// so it never moves to another (see [`crate::engine::affinity`]).
    pub(crate) redirect_target: Cell<bool>,
}

/// What a client's record takes along when its connection moves to another core (see
/// [`crate::engine::affinity`]): what CLIENT LIST shows of it and it set itself. A movable
/// client has nothing else (no subscription, block, tracking, transaction).
pub(crate) struct Carried {
    id: u64,
    addr: SocketAddr,
    laddr: SocketAddr,
    tls: Option<crate::facade::stream::TlsInfo>,
    created: Instant,
    name: String,
    user: bytes::Bytes,
    lib: (String, String),
    db: usize,
    resp: u8,
    last_cmd: &'static str,
    no_evict: bool,
}

impl Client {
    /// What moves with the client to another core.
    #[must_use]
    pub(crate) fn carry(&self) -> Carried {
        Carried {
            id: self.id,
            addr: self.addr,
            laddr: self.laddr,
            tls: self.tls.clone(),
            created: self.created,
            name: self.name.borrow().clone(),
            user: self.user.borrow().clone(),
            lib: self.lib.borrow().clone(),
            db: self.db.get(),
            resp: self.resp.get(),
            last_cmd: self.last_cmd.get(),
            no_evict: self.no_evict.get(),
        }
    }

    /// The client that moved here, on core `core`, its socket now `fd`: the same CLIENT ID,
    /// age and settings.
    #[must_use]
    pub(crate) fn arrive(c: Carried, core: usize, fd: i32) -> Client {
        let mut client = Client::new(c.id, c.addr, c.laddr, c.tls, core, fd);
        client.created = c.created;
        *client.name.get_mut() = c.name;
        *client.user.get_mut() = c.user;
        *client.lib.get_mut() = c.lib;
        client.db.set(c.db);
        client.resp.set(c.resp);
        client.last_cmd.set(c.last_cmd);
        client.no_evict.set(c.no_evict);
        client
    }

    /// The client that replays the AOF at startup (Redis's `CLIENT_ID_AOF`), on core `core`:
    /// no socket, never listed.
    #[must_use]
    pub(crate) fn internal(core: usize) -> Client {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        Client::new(u64::MAX, nowhere, nowhere, None, core, -1)
    }

    /// A client that just connected.
    #[must_use]
    pub(crate) fn new(
        id: u64,
        addr: SocketAddr,
        laddr: SocketAddr,
        tls: Option<crate::facade::stream::TlsInfo>,
        core: usize,
        fd: i32,
    ) -> Client {
        let now = Instant::now();
        Client {
            id,
            addr,
            laddr,
            tls,
            core,
            created: now,
            last_active: Cell::new(crate::engine::shard::now_ms()),
            name: RefCell::default(),
            user: RefCell::new(bytes::Bytes::from_static(b"default")),
            lib: RefCell::default(),
            db: Cell::new(0),
            resp: Cell::new(2),
            last_cmd: Cell::new("NULL"),
            fd,
            buffers: Cell::default(),
            argv_mem: Cell::new(0),
            multi: Cell::new(None),
            watch_flag: RefCell::default(),
            tls_buffered: Cell::new(0),
            killed: Cell::new(false),
            waker: RefCell::new(None),
            pushes: RefCell::default(),
            over_soft: Cell::new(None),
            subscriptions: Cell::new((0, 0)),
            shard_channels: RefCell::default(),
            blocked: Cell::new(false),
            paused: Cell::new(false),
            blocked_timeout: Cell::new(false),
            unblocked: Cell::new(None),
            replica: Cell::new(false),
            no_evict: Cell::new(false),
            monitor: Cell::new(false),
            counted: Cell::new(0),
            tracking: Cell::default(),
            redirect_target: Cell::new(false),
        }
    }

    /// Notes activity now (for `idle=`), at the core's clock: the time its shard's last
    /// tick set, as Redis takes `server.unixtime`.
    pub(crate) fn touch(&self) {
        let now = crate::storage::clock::core_now_ms();
        self.last_active.set(if now == 0 { crate::engine::shard::now_ms() } else { now });
    }

    /// Seconds since the last command.
    #[must_use]
    pub(crate) fn idle_secs(&self) -> u64 {
        crate::engine::shard::now_ms().saturating_sub(self.last_active.get()) / 1000
    }

    /// Asks the connection to close (CLIENT KILL, shutdown): it wakes from its read and ends.
    pub(crate) fn kill(&self) {
        self.killed.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Whether the connection was asked to close.
    #[must_use]
    pub(crate) fn is_killed(&self) -> bool {
        self.killed.get()
    }

    /// Whether it subscribes to any channel, pattern or shard channel (Redis's `CLIENT_PUBSUB`).
    #[must_use]
    pub(crate) fn subscribed(&self) -> bool {
        self.subscriptions.get() != (0, 0) || !self.shard_channels.borrow().is_empty()
    }

    /// Queues a push for this client (encoded in its protocol) and wakes its connection; a client
    /// whose backlog passes the output buffer limits is disconnected instead. Returns whether the
    /// push was queued.
    pub(crate) fn push(&self, reply: &Reply, limit: OutputLimit) -> bool {
        if self.is_killed() {
            return false;
        }
        let len = {
            let mut pushes = self.pushes.borrow_mut();
            reply.encode(self.resp.get() == 3, &mut pushes);
            pushes.len() as u64
        };
        let over_hard = limit.hard > 0 && len > limit.hard;
        let over_soft = limit.soft > 0 && len > limit.soft;
        let since = match (over_soft, self.over_soft.get()) {
            (true, None) => {
                self.over_soft.set(Some(Instant::now()));
                None
            }
            (true, since) => since,
            (false, _) => {
                self.over_soft.set(None);
                None
            }
        };
        if over_hard || since.is_some_and(|t| t.elapsed().as_secs() >= limit.soft_secs) {
            tracing::warn!(
                id = self.id,
                addr = %self.addr,
                backlog = len,
                "Client scheduled to be closed ASAP for overcoming of output buffer limits."
            );
            self.pushes.borrow_mut().clear();
            self.kill();
            return false;
        }
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
        true
    }

    /// Marks the client blocked (with a timeout or not), or no longer blocked: for CLIENT
    /// UNBLOCK, CLIENT LIST and INFO.
    pub(crate) fn set_blocked(&self, blocked: Option<bool>) {
        self.blocked.set(blocked.is_some());
        self.blocked_timeout.set(blocked == Some(true));
        self.unblocked.set(None);
    }

    /// Whether the client is blocked with a timeout.
    #[must_use]
    pub(crate) fn is_blocked_with_timeout(&self) -> bool {
        self.blocked.get() && self.blocked_timeout.get()
    }

    /// Whether the client is blocked, by a blocking command or a pause (INFO counts both).
    #[must_use]
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked.get() || self.paused.get()
    }

    /// Marks the client held by a pause, or no longer.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.set(paused);
    }

    /// CLIENT UNBLOCK: wakes a blocked client with `how`; whether it was blocked.
    pub(crate) fn unblock(&self, how: Unblock) -> bool {
        if !self.blocked.get() {
            return false;
        }
        self.unblocked.set(Some(how));
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
        true
    }

    /// Ready when a blocked client must stop waiting: unblocked, or its connection is closing.
    pub(crate) fn poll_unblock(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Unblock> {
        self.set_waker(cx.waker());
        if self.is_killed() {
            return std::task::Poll::Ready(Unblock::Error);
        }
        match self.unblocked.get() {
            Some(how) => std::task::Poll::Ready(how),
            None => std::task::Poll::Pending,
        }
    }

    /// Whether pushes are waiting.
    #[must_use]
    pub(crate) fn has_pushes(&self) -> bool {
        !self.pushes.borrow().is_empty()
    }

    /// Moves the waiting pushes into `out`.
    pub(crate) fn take_pushes(&self, out: &mut BytesMut) {
        let mut pushes = self.pushes.borrow_mut();
        // Called after every call: most have nothing to move.
        if pushes.is_empty() {
            return;
        }
        out.extend_from_slice(&pushes);
        pushes.clear();
        self.over_soft.set(None);
    }

    /// Registers the task to wake on [`Client::kill`].
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        // The connection's task registers on every poll: a clone (and the old one's drop) only
        // when the waker changed.
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// Bytes of output waiting: unwritten replies and undelivered pushes.
    #[must_use]
    pub(crate) fn output_pending(&self) -> usize {
        self.buffers.get().reply + self.pushes.borrow().len()
    }

    /// The memory this client holds: its buffers (query, reply, pushes, TLS), the command
    /// running and the commands queued, and its own structures. Redis's `tot-mem`.
    #[must_use]
    pub(crate) fn memory(&self) -> usize {
        let b = self.buffers.get();
        b.query_capacity
            + b.reply_capacity
            + self.pushes.borrow().capacity()
            + self.tls_buffered.get()
            + self.argv_mem.get()
            + self.multi.get().map_or(0, |m| m.1)
            + std::mem::size_of::<Client>()
    }

    /// Redis's flag letters for this client, `N` for none.
    fn flags(&self) -> String {
        let mut flags = String::new();
        if self.monitor.get() {
            flags.push('O');
        } else if self.replica.get() {
            flags.push('S');
        }
        if self.subscribed() {
            flags.push('P');
        }
        if self.multi.get().is_some() {
            flags.push('x');
        }
        if self.is_blocked() {
            flags.push('b');
        }
        let tracking = self.tracking.get();
        if tracking.on {
            flags.push('t');
            if tracking.broken {
                flags.push('R');
            }
            if tracking.bcast {
                flags.push('B');
            }
        }
        if self.watch_flag.borrow().load(std::sync::atomic::Ordering::Relaxed) {
            flags.push('d');
        }
        if self.killed.get() {
            flags.push('A');
        }
        if self.no_evict.get() {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        flags
    }

    /// One CLIENT LIST line (without the trailing newline): Redis 7.0's fields in its order,
    /// then ferrokey's (the library, the core, TLS).
    #[must_use]
    pub(crate) fn info_line(&self) -> String {
        let mut s = String::with_capacity(384);
        let (lib_name, lib_ver) = &*self.lib.borrow();
        let b = self.buffers.get();
        let (channels, patterns) = self.subscriptions.get();
        let tracking = self.tracking.get();
        let _ = write!(
            s,
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={channels} \
             psub={patterns} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} \
             rbp={} obl={} oll=0 omem={} tot-mem={} events={} cmd={} user={} redir={} resp={} \
             lib-name={} lib-ver={} core={} tls={} tls-version={} tls-cipher={} tls-cn={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name.borrow(),
            self.created.elapsed().as_secs(),
            self.idle_secs(),
            self.flags(),
            self.db.get(),
            self.shard_channels.borrow().len(),
            self.multi.get().map_or(-1, |m| m.0 as i64),
            b.query,
            b.query_capacity.saturating_sub(b.query),
            self.argv_mem.get(),
            self.multi.get().map_or(0, |m| m.1),
            b.reply_capacity,
            b.reply_capacity,
            b.reply,
            self.output_pending(),
            self.memory(),
            if self.output_pending() > 0 { "rw" } else { "r" },
            self.last_cmd.get(),
            String::from_utf8_lossy(&self.user.borrow()),
            if tracking.on { tracking.redirect.0 as i64 } else { -1 },
            self.resp.get(),
            lib_name,
            lib_ver,
            self.core,
            if self.tls.is_some() { "yes" } else { "no" },
            self.tls.as_ref().map_or("", |t| t.version.as_str()),
            self.tls.as_ref().map_or("", |t| t.cipher.as_str()),
            // CLIENT LIST is space-separated: a CN with spaces keeps its words joined.
            self.tls.as_ref().map_or(String::new(), |t| t
                .client_cn
                .replace(|c: char| c.is_whitespace() || c.is_control(), "_")),
        );
        s
    }
}

impl crate::facade::Waiting for Rc<Client> {
    fn is_waiting(&self) -> bool {
        self.blocked.get()
    }

    /// As Redis frees a blocked client whose connection closes: its wait ends unserved (so no
    /// element is popped for it) and its connection closes.
    fn hung_up(&self) {
        self.kill();
    }
}
