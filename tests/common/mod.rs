//! Test harness: starts the real `ferrokey-server` binary on free loopback ports, waits for its
//! readiness line, and hands out clients (the `redis` crate, raw sockets, redis-cli) over plain
//! TCP and TLS. The server is killed when the handle drops.
#![allow(dead_code)]

pub mod dataset;
pub mod fuzz;
pub mod replication;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Both transports, for tests that must pass over each.
pub const MODES: [Mode; 2] = [Mode::Plain, Mode::Tls];

/// A transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tls,
}

/// The development certificates, generated once per test process by scripts/gen-test-certs.sh.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
    /// The TLS flags redis-cli and redis-benchmark take, with the client certificate.
    pub fn tool_args(&self) -> Vec<String> {
        let mut args = vec!["--tls".to_owned()];
        for (flag, file) in [("--cacert", "ca.crt"), ("--cert", "client.crt"), ("--key", "client.key")] {
            args.push(flag.to_owned());
            args.push(self.path(file));
        }
        args
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).expect("reading a generated certificate")
    }
}

pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ferrokey-test-certs-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-test-certs.sh");
        let out = Command::new("bash").arg(script).arg(&dir).output().expect("running gen-test-certs.sh");
        assert!(out.status.success(), "gen-test-certs.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        Certs { dir }
    })
}

/// One rustls provider for the whole test process (the dev tree has both ring and aws-lc-rs).
pub fn init_crypto() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A free loopback port (bound, then released for the server to take), never one this test
/// process handed out before: the kernel may offer a released port again at once, and a server
/// given the same port twice refuses to start.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// How to start a server.
#[derive(Clone)]
pub struct Opts {
    pub threads: usize,
    pub plain: bool,
    pub tls: bool,
    pub auth_clients: &'static str,
    pub extra: Vec<String>,
    pub config_file: Option<PathBuf>,
    /// The plain and TLS ports, when the test must know them before the server starts.
    pub ports: Option<(u16, u16)>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            threads: 2,
            plain: true,
            tls: true,
            auth_clients: "optional",
            extra: vec![],
            config_file: None,
            ports: None,
        }
    }
}

impl Opts {
    pub fn arg(mut self, name: &str, value: &str) -> Opts {
        self.extra.push(format!("--{name}"));
        self.extra.push(value.to_owned());
        self
    }
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub tls_port: u16,
    pub opts: Opts,
    /// Its `dir` (snapshots): a directory of its own, removed with it, unless the test named one.
    pub data_dir: PathBuf,
    own_data_dir: bool,
    log: Arc<Mutex<Vec<String>>>,
    /// The threads reading its stdout and stderr into `log`.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        Server::with(Opts::default())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn with(opts: Opts) -> Server {
        init_crypto();
        let mut last = String::new();
        for _ in 0..5 {
            match Server::try_start(opts.clone()) {
                Ok(s) => return s,
                // Another process took a port between our probe and the server's bind: retry.
                Err(log) if log.contains("could not bind") => last = log,
                Err(log) => panic!("server failed to start:\n{log}"),
            }
        }
        panic!("server failed to start after retries:\n{last}");
    }

    fn try_start(opts: Opts) -> Result<Server, String> {
        let c = certs();
        let (port, tls_port) = opts.ports.unwrap_or_else(|| {
            (if opts.plain { free_port() } else { 0 }, if opts.tls { free_port() } else { 0 })
        });
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"));
        if let Some(f) = &opts.config_file {
            cmd.arg(f);
        }
        let named = opts.extra.iter().position(|a| a == "--dir").and_then(|i| opts.extra.get(i + 1));
        let own_data_dir = named.is_none();
        let data_dir = match named {
            Some(d) => PathBuf::from(d),
            None => {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let d = std::env::temp_dir().join(format!("ferrokey-data-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&d).map_err(|e| format!("data dir: {e}"))?;
                cmd.arg("--dir").arg(&d);
                d
            }
        };
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--tls-port", &tls_port.to_string()])
            .args(["--threads", &opts.threads.to_string(), "--loglevel", "verbose"])
            .args(["--tls-cert-file", &c.path("server.crt"), "--tls-key-file", &c.path("server.key")])
            .args(["--tls-ca-cert-file", &c.path("ca.crt"), "--tls-auth-clients", opts.auth_clients])
            .args(&opts.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut readers = Vec::new();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, ready) = (log.clone(), ready_tx.clone());
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.contains("Ready to accept connections") {
                        let _ = ready.send(true);
                    }
                    log.lock().unwrap().push(line);
                }
                let _ = ready.send(false);
            }));
        }
        drop(ready_tx);
        let started = matches!(ready_rx.recv_timeout(Duration::from_secs(30)), Ok(true));
        if !started {
            let _ = child.kill();
            let _ = child.wait();
            // Let the reader threads collect the last lines.
            let _ = ready_rx.recv_timeout(Duration::from_secs(2));
            if own_data_dir {
                let _ = std::fs::remove_dir_all(&data_dir);
            }
            return Err(log.lock().unwrap().join("\n"));
        }
        Ok(Server { child, port, tls_port, opts, data_dir, own_data_dir, log, readers })
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (bounded) until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits (bounded, 30 s) until `n` log lines contain `needle`.
    pub fn wait_log_count(&self, needle: &str, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn addr(&self, mode: Mode) -> SocketAddr {
        let port = if mode == Mode::Tls { self.tls_port } else { self.port };
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    pub fn redis_client(&self, mode: Mode) -> redis::Client {
        match mode {
            Mode::Plain => redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap(),
            Mode::Tls => {
                let c = certs();
                redis::Client::build_with_tls(
                    format!("rediss://127.0.0.1:{}", self.tls_port),
                    redis::TlsCertificates {
                        client_tls: Some(redis::ClientTlsConfig {
                            client_cert: c.read("client.crt"),
                            client_key: c.read("client.key"),
                        }),
                        root_cert: Some(c.read("ca.crt")),
                    },
                )
                .unwrap()
            }
        }
    }

    /// A `redis` crate connection.
    pub fn conn(&self, mode: Mode) -> redis::Connection {
        let conn = self.redis_client(mode).get_connection().expect("connecting with the redis crate");
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        conn
    }

    /// A connection that landed on `core` (SO_REUSEPORT spreads them; bounded attempts).
    pub fn conn_on_core(&self, mode: Mode, core: usize) -> redis::Connection {
        for _ in 0..200 {
            let mut c = self.conn(mode);
            let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
            if info.contains(&format!(" core={core} ")) {
                return c;
            }
        }
        panic!("no connection landed on core {core} in 200 attempts");
    }

    /// A raw byte stream that landed on `core` (bounded attempts, as [`Server::conn_on_core`]).
    pub fn raw_on_core(&self, mode: Mode, core: usize) -> Raw {
        for _ in 0..200 {
            let mut raw = self.raw(mode);
            let info = raw.request(&[b"CLIENT", b"INFO"]);
            if String::from_utf8_lossy(&info).contains(&format!(" core={core} ")) {
                return raw;
            }
        }
        panic!("no connection landed on core {core} in 200 attempts");
    }

    /// A raw byte stream.
    pub fn raw(&self, mode: Mode) -> Raw {
        raw_connect(self.addr(mode), mode, Some(("client.crt", "client.key")), "ca.crt")
    }

    /// Runs redis-cli with `args` and returns its stdout.
    pub fn cli(&self, mode: Mode, args: &[&str]) -> String {
        let c = certs();
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.addr(mode).port().to_string()]);
        if mode == Mode::Tls {
            cmd.args(c.tool_args());
        }
        let out = cmd.args(args).output().expect("redis-cli must be installed (apt-get install redis-tools)");
        assert!(out.status.success(), "redis-cli failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends SIGTERM and waits (bounded) for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.wait_exit()
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> Option<i32> {
        wait_child(&mut self.child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.own_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        // A failing test shows what the server said last (a panic, say), to see why.
        if std::thread::panicking() {
            std::mem::take(&mut self.readers).into_iter().for_each(|r| drop(r.join()));
            let log = self.log();
            let keep =
                std::env::var("FERROKEY_TEST_LOG_LINES").ok().and_then(|n| n.parse().ok()).unwrap_or(40);
            let tail: Vec<&str> = log.lines().rev().take(keep).collect();
            eprintln!("--- the server's last log lines ---");
            tail.iter().rev().for_each(|l| eprintln!("{l}"));
        }
    }
}

/// Debian's redis-server, for reference replies, on a free loopback port; killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    /// Its working directory (a test's own `--dir` in `extra` overrides it): never the
    /// checkout, where a stray `dump.rdb` would be loaded at start.
    dir: PathBuf,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::with(&[])
    }

    /// Started with `extra` arguments (`--enable-debug-command local`, say).
    pub fn with(extra: &[&str]) -> RedisServer {
        RedisServer::with_file(None, extra)
    }

    /// Started with a config file (first on its command line) and `extra` arguments.
    pub fn with_file(file: Option<&Path>, extra: &[&str]) -> RedisServer {
        let port = free_port();
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("redis-data-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new("redis-server")
            .args(file)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let ready = lines.by_ref().map_while(Result::ok).any(|l| l.contains("Ready to accept connections"));
        assert!(ready, "redis-server did not start");
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        RedisServer { child, port, dir }
    }

    /// A plain raw connection.
    pub fn raw(&self) -> Raw {
        raw_connect(SocketAddr::from(([127, 0, 0, 1], self.port)), Mode::Plain, None, "ca.crt")
    }

    /// Waits (bounded) for the process to exit by itself (SHUTDOWN, say).
    pub fn wait_exit(&mut self) -> Option<i32> {
        wait_child(&mut self.child)
    }
}

/// Waits up to 15 s for `child` to exit by itself; its exit code.
fn wait_child(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A blocking byte stream, plain or TLS.
pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

pub struct Raw {
    pub inner: Box<dyn ReadWrite>,
}

/// The rustls client configuration tests use: trusts `ca`, optionally presents a client cert.
pub fn tls_client_config(client: Option<(&str, &str)>, ca: &str) -> Arc<rustls::ClientConfig> {
    tls_client_config_with(client, ca, rustls::DEFAULT_VERSIONS)
}

/// The same, speaking only `versions`. One configuration keeps one session cache: reuse it to
/// resume sessions.
pub fn tls_client_config_with(
    client: Option<(&str, &str)>,
    ca: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    init_crypto();
    let c = certs();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(c.path(ca)).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(c.path(cert)).unwrap().map(Result::unwrap).collect(),
                PrivateKeyDer::from_pem_file(c.path(key)).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects raw; for TLS completes the handshake (panics if it fails: use `tls_handshake` to test
/// failures).
pub fn raw_connect(addr: SocketAddr, mode: Mode, client: Option<(&str, &str)>, ca: &str) -> Raw {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.set_nodelay(true).unwrap();
    match mode {
        Mode::Plain => Raw { inner: Box::new(tcp) },
        Mode::Tls => Raw { inner: Box::new(tls_handshake(tcp, client, ca).expect("TLS handshake")) },
    }
}

/// Runs a TLS handshake over `tcp`, and one round trip (inline PING) so that a server rejecting
/// the client certificate (which TLS 1.3 reports after the handshake) is seen.
pub fn tls_handshake(
    tcp: TcpStream,
    client: Option<(&str, &str)>,
    ca: &str,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    let conn = rustls::ClientConnection::new(
        tls_client_config(client, ca),
        ServerName::try_from("localhost").unwrap(),
    )
    .map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
    // +PONG, or -NOAUTH when a password is required: either proves the session works.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        stream.read_exact(&mut b).map_err(|e| e.to_string())?;
        line.push(b[0]);
    }
    Ok(stream)
}

impl Raw {
    pub fn send(&mut self, bytes: &[u8]) {
        self.inner.write_all(bytes).unwrap();
        self.inner.flush().unwrap();
    }

    /// Sends one request and reads its whole reply, as raw RESP.
    pub fn request(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&resp(args));
        read_reply(&mut self.inner)
    }

    /// Reads one whole reply, as raw RESP.
    pub fn reply(&mut self) -> Vec<u8> {
        read_reply(&mut self.inner)
    }

    /// This connection's CLIENT ID.
    pub fn client_id(&mut self) -> i64 {
        let reply = self.request(&[b"CLIENT", b"ID"]);
        String::from_utf8_lossy(&reply).trim().trim_start_matches(':').parse().expect("CLIENT ID")
    }

    /// Reads exactly `n` bytes.
    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.inner.read_exact(&mut buf).unwrap();
        buf
    }

    /// Sends `req` and reads exactly `expected.len()` bytes, asserting they match.
    pub fn roundtrip(&mut self, req: &[u8], expected: &[u8]) {
        self.send(req);
        let got = self.read_n(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "request {:?}",
            String::from_utf8_lossy(req)
        );
    }

    /// Reads until the peer closes; returns what came (EOF or a TLS close without notify).
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.inner.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    panic!("connection was not closed; got so far: {:?}", String::from_utf8_lossy(&out))
                }
                Err(_) => return out,
            }
        }
    }
}

/// Encodes a request as a RESP multibulk.
pub fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one whole RESP reply off a raw stream (for comparing servers byte for byte).
pub fn read_reply(r: &mut dyn Read) -> Vec<u8> {
    let mut out = Vec::new();
    read_one(r, &mut out);
    out
}

fn read_line(r: &mut dyn Read, out: &mut Vec<u8>) -> Vec<u8> {
    let start = out.len();
    let mut b = [0u8; 1];
    loop {
        r.read_exact(&mut b).unwrap();
        out.push(b[0]);
        if out.len() >= start + 2 && &out[out.len() - 2..] == b"\r\n" {
            return out[start..out.len() - 2].to_vec();
        }
    }
}

fn read_one(r: &mut dyn Read, out: &mut Vec<u8>) {
    let line = read_line(r, out);
    let n: i64 = std::str::from_utf8(&line[1..]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    match line[0] {
        b'$' | b'=' | b'!' if n >= 0 => {
            let mut body = vec![0u8; n as usize + 2];
            r.read_exact(&mut body).unwrap();
            out.extend_from_slice(&body);
        }
        b'*' | b'~' | b'>' => (0..n.max(0)).for_each(|_| read_one(r, out)),
        b'%' => (0..n * 2).for_each(|_| read_one(r, out)),
        _ => {}
    }
}

/// The shard that owns `key` in a server with `shards` shards (from the library itself).
pub fn shard_of(key: &str, shards: usize) -> usize {
    ferrokey::internals::Slot::of(key.as_bytes()).shard(shards).0
}

/// The Redis Cluster hash slot of `key`.
pub fn slot_of(key: &str) -> u16 {
    ferrokey::internals::Slot::of(key.as_bytes()).number()
}

/// A key named `prefix...` owned by `shard`.
pub fn key_on(prefix: &str, shard: usize, shards: usize) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|k| shard_of(k, shards) == shard).unwrap()
}

/// Waits (bounded) until client `id` shows as blocked in CLIENT LIST.
pub fn wait_blocked(c: &mut redis::Connection, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: String = redis::cmd("CLIENT").arg("LIST").arg("ID").arg(id).query(c).unwrap();
        if list.contains(" flags=b ") {
            return;
        }
        assert!(Instant::now() < deadline, "client {id} never blocked: {list}");
        std::thread::yield_now();
    }
}

/// Starts the server with `args` on a free loopback port (no TLS), expecting it to refuse to
/// start: its exit code and everything it logged.
/// A config file, if given, comes first in `args` (it goes first on the command line).
pub fn start_refused(args: &[&str]) -> (Option<i32>, String) {
    let (file, rest) = match args.split_first() {
        Some((first, rest)) if !first.starts_with("--") => (Some(*first), rest),
        _ => (None, args),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(file)
        .args(["--bind", "127.0.0.1", "--port", &free_port().to_string(), "--tls-port", "0"])
        .args(rest)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), log)
}
