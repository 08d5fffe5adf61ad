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
use crate::facade::Reply;

/// Why a blocked client stopped waiting without being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unblock {
    /// Its timeout passed, or CLIENT UNBLOCK ... TIMEOUT.
    Timeout,
    /// CLIENT UNBLOCK ... ERROR, or the connection is closing.
    Error,
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
    last_active: Cell<Instant>,
    /// CLIENT SETNAME.
    pub(crate) name: RefCell<String>,
    /// CLIENT SETINFO LIB-NAME / LIB-VER.
    pub(crate) lib: RefCell<(String, String)>,
    /// Selected database.
    pub(crate) db: Cell<usize>,
    /// RESP version (2 or 3).
    pub(crate) resp: Cell<u8>,
    /// The last command's name.
    pub(crate) last_cmd: Cell<&'static str>,
    /// Bytes waiting in the query buffer.
    pub(crate) qbuf: Cell<usize>,
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
    unblocked: Cell<Option<Unblock>>,
    /// Channels and patterns subscribed (for CLIENT LIST and the subscribed-mode rules).
    pub(crate) subscriptions: Cell<(usize, usize)>,
}

impl Client {
    /// A client that just connected.
    #[must_use]
    pub(crate) fn new(
        id: u64,
        addr: SocketAddr,
        laddr: SocketAddr,
        tls: Option<crate::facade::stream::TlsInfo>,
        core: usize,
    ) -> Client {
        let now = Instant::now();
        Client {
            id,
            addr,
            laddr,
            tls,
            core,
            created: now,
            last_active: Cell::new(now),
            name: RefCell::default(),
            lib: RefCell::default(),
            db: Cell::new(0),
            resp: Cell::new(2),
            last_cmd: Cell::new("NULL"),
            qbuf: Cell::new(0),
            tls_buffered: Cell::new(0),
            killed: Cell::new(false),
            waker: RefCell::new(None),
            pushes: RefCell::default(),
            over_soft: Cell::new(None),
            subscriptions: Cell::new((0, 0)),
            blocked: Cell::new(false),
            unblocked: Cell::new(None),
        }
    }

    /// Notes activity now (for `idle=` and `timeout`).
    pub(crate) fn touch(&self) {
        self.last_active.set(Instant::now());
    }

    /// Seconds since the last command.
    #[must_use]
    pub(crate) fn idle_secs(&self) -> u64 {
        self.last_active.get().elapsed().as_secs()
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

    /// Marks the client blocked (or not), for CLIENT UNBLOCK and INFO.
    pub(crate) fn set_blocked(&self, blocked: bool) {
        self.blocked.set(blocked);
        self.unblocked.set(None);
    }

    /// Whether the client is blocked.
    #[must_use]
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked.get()
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
        out.extend_from_slice(&pushes);
        pushes.clear();
        self.over_soft.set(None);
    }

    /// Registers the task to wake on [`Client::kill`].
    pub(crate) fn set_waker(&self, waker: &Waker) {
        *self.waker.borrow_mut() = Some(waker.clone());
    }

    /// One CLIENT LIST line (without the trailing newline), in Redis 7's field order.
    #[must_use]
    pub(crate) fn info_line(&self) -> String {
        let mut s = String::with_capacity(256);
        let (lib_name, lib_ver) = &*self.lib.borrow();
        let _ = write!(
            s,
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db={} sub={} psub={} \
             ssub=0 multi=-1 qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
             omem={} tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} \
             lib-ver={} core={} tls={} tls-version={} tls-cipher={} tls-cn={}",
            self.id,
            self.addr,
            self.laddr,
            self.name.borrow(),
            self.created.elapsed().as_secs(),
            self.idle_secs(),
            match (self.blocked.get(), self.subscriptions.get() == (0, 0)) {
                (true, _) => "b",
                (false, true) => "N",
                (false, false) => "P",
            },
            self.db.get(),
            self.subscriptions.get().0,
            self.subscriptions.get().1,
            self.qbuf.get(),
            self.pushes.borrow().len(),
            self.last_cmd.get(),
            self.resp.get(),
            lib_name,
            lib_ver,
            self.core,
            if self.tls.is_some() { "yes" } else { "no" },
            self.tls.as_ref().map_or("", |t| t.version.as_str()),
            self.tls.as_ref().map_or("", |t| t.cipher.as_str()),
            self.tls.as_ref().map_or("", |t| t.client_cn.as_str()),
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
