//! CLIENT TRACKING against Debian's redis-server: the same replies and errors, and the same
//! invalidations for the same reads and writes, in default mode (RESP3 pushes), BCAST with
//! prefixes, OPTIN/OPTOUT, NOLOOP, and RESP2 redirection to a `__redis__:invalidate`
//! subscriber; keys on both shards, the tracking client and the writer on different cores,
//! plain TCP and TLS.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{key_on, Mode, Raw, RedisServer, Server, MODES};

/// A connection that keeps pushes aside.
fn conn(raw: Raw) -> Conn {
    Conn::new(raw)
}

/// One RESP value, enough to read pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    Text(String),
    Int(i64),
    Null,
    List(Vec<V>),
}

fn parse(bytes: &[u8]) -> V {
    fn one(b: &[u8], at: &mut usize) -> V {
        let end = *at + b[*at..].windows(2).position(|w| w == b"\r\n").expect("a line");
        let line = String::from_utf8_lossy(&b[*at + 1..end]).into_owned();
        let kind = b[*at];
        *at = end + 2;
        match kind {
            b'$' | b'=' if line == "-1" => V::Null,
            b'$' | b'=' => {
                let n: usize = line.parse().unwrap();
                let s = String::from_utf8_lossy(&b[*at..*at + n]).into_owned();
                *at += n + 2;
                V::Text(s)
            }
            b'*' | b'>' | b'~' if line == "-1" => V::Null,
            b'*' | b'>' | b'~' => V::List((0..line.parse::<usize>().unwrap()).map(|_| one(b, at)).collect()),
            b'%' => V::List((0..line.parse::<usize>().unwrap() * 2).map(|_| one(b, at)).collect()),
            b':' => V::Int(line.parse().unwrap()),
            b'_' => V::Null,
            _ => V::Text(line),
        }
    }
    one(bytes, &mut 0)
}

/// The keys an invalidation names (`None`: all of them, after a flush), from a RESP3 push
/// (`invalidate`) or a RESP2 message on `__redis__:invalidate`.
fn invalidated(v: &V) -> Option<Option<Vec<String>>> {
    let V::List(items) = v else { return None };
    let payload = match &items[..] {
        [V::Text(kind), payload] if kind == "invalidate" => payload,
        [V::Text(kind), V::Text(channel), payload]
            if kind == "message" && channel == "__redis__:invalidate" =>
        {
            payload
        }
        _ => return None,
    };
    Some(match payload {
        V::Null => None,
        V::List(keys) => {
            Some(keys.iter().map(|k| if let V::Text(k) = k { k.clone() } else { panic!("{k:?}") }).collect())
        }
        other => panic!("invalidation of {other:?}"),
    })
}

/// A connection whose RESP3 pushes, which may come between replies, are kept aside.
struct Conn {
    raw: Raw,
    pushes: std::collections::VecDeque<V>,
}

impl Conn {
    fn new(raw: Raw) -> Conn {
        Conn { raw, pushes: std::collections::VecDeque::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.raw.send(bytes);
    }

    /// The next reply that is not a push.
    fn reply(&mut self) -> Vec<u8> {
        loop {
            let reply = self.raw.reply();
            if !reply.starts_with(b">") {
                return reply;
            }
            self.pushes.push_back(parse(&reply));
        }
    }

    fn request(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&common::resp(args));
        self.reply()
    }

    /// The next push (or, on a RESP2 subscriber, the next message).
    fn push(&mut self) -> V {
        self.pushes.pop_front().unwrap_or_else(|| parse(&self.raw.reply()))
    }

    fn client_id(&mut self) -> i64 {
        self.raw.client_id()
    }
}

fn req(c: &mut Conn, line: &str) -> Vec<u8> {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    c.request(&args)
}

/// `text` with client id `id` written as `<id>`.
fn mask(text: &str, id: i64) -> String {
    text.replace(&format!(":{id}\r\n"), ":<id>\r\n")
        .replace(&format!("Int({id})"), "Int(<id>)")
        .replace(&format!("redir={id}"), "redir=<id>")
}

/// Reads invalidations from `c` until every key of `until` was named (bounded): each
/// shard's invalidations reach a client in order, so with a key of each shard written last,
/// everything written before has arrived. Returns how often each other key was named, `*`
/// standing for a flush.
fn collect(c: &mut Conn, until: &[String]) -> BTreeMap<String, usize> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !until.iter().all(|k| seen.contains_key(k)) {
        assert!(Instant::now() < deadline, "invalidations of {until:?} never came; got {seen:?}");
        let v = c.push();
        match invalidated(&v) {
            Some(Some(keys)) => keys.into_iter().for_each(|k| *seen.entry(k).or_default() += 1),
            Some(None) => *seen.entry("*".into()).or_default() += 1,
            None => panic!("not an invalidation: {v:?}"),
        }
    }
    for k in until {
        seen.remove(k);
    }
    seen
}

/// Keys of both shards, named alike on every server.
fn k(prefix: &str, shard: usize) -> String {
    key_on(prefix, shard, 2)
}

/// Commands and replies that need no second client: the options, their errors, the flags
/// TRACKINGINFO and CLIENT INFO show.
const REPLIES: &[&str] = &[
    "CLIENT TRACKINGINFO",
    "CLIENT GETREDIR",
    "CLIENT CACHING YES",
    "CLIENT TRACKING MAYBE",
    "CLIENT TRACKING ON FOO",
    "CLIENT TRACKING ON REDIRECT",
    "CLIENT TRACKING ON REDIRECT abc",
    "CLIENT TRACKING ON REDIRECT 987654",
    "CLIENT TRACKING ON PREFIX a",
    "CLIENT TRACKING ON BCAST OPTIN",
    "CLIENT TRACKING ON OPTIN OPTOUT",
    "CLIENT TRACKING ON BCAST PREFIX ab PREFIX a",
    "CLIENT TRACKING ON OPTIN NOLOOP",
    "CLIENT INFO",
    "CLIENT TRACKINGINFO",
    "CLIENT GETREDIR",
    "CLIENT CACHING NO",
    "CLIENT CACHING MAYBE",
    "CLIENT CACHING YES",
    "CLIENT TRACKINGINFO",
    "CLIENT TRACKINGINFO",
    "CLIENT TRACKING ON OPTOUT",
    "CLIENT TRACKING ON BCAST",
    "CLIENT TRACKING OFF",
    "CLIENT TRACKINGINFO",
    "CLIENT TRACKING ON OPTOUT",
    "CLIENT CACHING NO",
    "CLIENT TRACKINGINFO",
    "CLIENT TRACKING OFF",
    "CLIENT TRACKING ON BCAST PREFIX b PREFIX a",
    "CLIENT TRACKING ON BCAST PREFIX c",
    "CLIENT TRACKING ON BCAST PREFIX bb",
    "CLIENT TRACKINGINFO",
    "CLIENT TRACKING ON",
    "CLIENT TRACKING OFF",
    "CLIENT TRACKING ON BCAST",
    "CLIENT INFO",
    "CLIENT TRACKINGINFO",
    "RESET",
    "CLIENT TRACKINGINFO",
];

/// The `flags` and `redir` fields of a CLIENT INFO line.
fn flags(info: &str) -> String {
    info.split(' ')
        .filter(|f| f.starts_with("flags=") || f.starts_with("redir="))
        .collect::<Vec<_>>()
        .join(" ")
}

fn replies(c: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    for resp3 in [false, true] {
        if resp3 {
            c.request(&[b"HELLO", b"3"]);
        }
        for line in REPLIES {
            let mut reply = String::from_utf8_lossy(&req(c, line)).into_owned();
            if *line == "CLIENT INFO" {
                reply = flags(&reply);
            }
            out.push(format!("{line} -> {reply}"));
        }
    }
    out
}

#[test]
fn tracking_replies_and_errors_match_redis_server() {
    let redis = RedisServer::start();
    let theirs = replies(&mut conn(redis.raw()));
    let server = Server::start();
    for mode in MODES {
        let ours = replies(&mut conn(server.raw(mode)));
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!(o, t, "{mode:?}");
        }
        assert_eq!(ours.len(), theirs.len());
    }
}

/// A tracking client reads keys of both shards in every way a read reaches them (inline,
/// pipelined, split across shards, a cross-shard command, inside MULTI, another database, a
/// key with a TTL); a writer on another core changes them. Returns how often each key was
/// invalidated, and what the tracking client itself saw when it wrote a key it had read.
fn default_mode(a: &mut Conn, b: &mut Conn, tracking: &str) -> (BTreeMap<String, usize>, Vec<String>) {
    let (k0, k1) = (k("k", 0), k("k", 1));
    let (s0, s1) = (k("s", 0), k("s", 1));
    let (t0, own) = (k("t", 0), k("own", 1));
    let ends = [k("end", 0), k("end", 1)];
    req(b, "FLUSHALL");
    for key in [&k0, &k1, &ends[0], &ends[1]] {
        req(b, &format!("SET {key} v"));
    }
    req(b, &format!("SADD {s0} a"));
    req(b, &format!("SADD {s1} a"));
    req(b, &format!("SET {t0} v PX 300"));
    req(b, &format!("HSET {} f v", k("h", 1)));
    assert_eq!(req(a, tracking), b"+OK\r\n");
    req(a, &format!("GET {k0}"));
    // A pipeline: both reads in one batch.
    a.send(
        &[common::resp(&[b"GET", k1.as_bytes()]), common::resp(&[b"HGET", k("h", 1).as_bytes(), b"f"])]
            .concat(),
    );
    a.reply();
    a.reply();
    req(a, &format!("MGET {} {}", k("m", 0), k("m", 1)));
    req(a, &format!("SINTER {s0} {s1}"));
    req(a, &format!("EXISTS {}", k("e", 0)));
    req(a, &format!("GET {t0}"));
    req(a, "MULTI");
    req(a, &format!("STRLEN {}", k("x", 0)));
    req(a, &format!("LRANGE {} 0 -1", k("x", 1)));
    a.request(&[b"EXEC"]);
    req(a, "SELECT 1");
    req(a, &format!("GET {}", k("db", 0)));
    req(a, "SELECT 0");
    // Scripts: a read remembers every key the script declared, on one shard or on both; a
    // script that only writes remembers nothing.
    let scripted = [
        ("return redis.call('GET', KEYS[1])", vec!["{sc}a".to_owned(), "{sc}b".to_owned()]),
        ("return redis.call('GET', KEYS[1])", vec![k("sx", 0), k("sx", 1)]),
        ("return redis.call('SET', KEYS[1], 'x')", vec![k("sw", 0)]),
    ];
    for (script, keys) in &scripted {
        let n = keys.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), n.as_bytes()];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        a.request(&args);
    }
    // The tracking client writes a key it read: the invalidation follows the reply.
    let mut own_view = Vec::new();
    req(a, &format!("GET {own}"));
    own_view.push(String::from_utf8_lossy(&req(a, &format!("SET {own} x"))).into_owned());
    own_view.push(String::from_utf8_lossy(&req(a, "PING")).into_owned());
    own_view.push(format!("{:?}", a.pushes));
    for end in &ends {
        req(a, &format!("GET {end}"));
    }
    // Writes: each read key once (writing again tells nobody: the readers were forgotten), a
    // write of a key nobody read, a DEL of a key that is not there, and an expiry.
    for line in [
        format!("SET {k0} w"),
        format!("SET {k0} w2"),
        format!("APPEND {k1} w"),
        format!("HSET {} f w", k("h", 1)),
        format!("MSET {} 1 {} 2", k("m", 0), k("m", 1)),
        format!("SADD {s1} b"),
        format!("SET {} v", k("e", 0)),
        format!("SET {} v", k("x", 0)),
        format!("RPUSH {} a", k("x", 1)),
        format!("SET {} v", k("db", 0)),
        format!("SET {} v", k("unread", 0)),
        format!("DEL {}", k("nosuch", 1)),
        "SET {sc}a v".to_owned(),
        "SET {sc}b v".to_owned(),
        format!("SET {} v", k("sx", 0)),
        format!("SET {} v", k("sx", 1)),
        format!("SET {} v", k("sw", 0)),
    ] {
        req(b, &line);
    }
    // The key with a TTL expires; a read finds it gone.
    std::thread::sleep(Duration::from_millis(400));
    req(b, &format!("GET {t0}"));
    for end in &ends {
        req(b, &format!("SET {end} w"));
    }
    let seen = collect(a, &ends);
    // The writer's own invalidation came before any of these: it is in `seen` unless NOLOOP.
    (seen, own_view)
}

#[test]
fn default_mode_invalidations_match_redis_server() {
    for tracking in ["CLIENT TRACKING ON", "CLIENT TRACKING ON NOLOOP"] {
        let redis = RedisServer::start();
        let (mut ra, mut rb) = (conn(redis.raw()), conn(redis.raw()));
        ra.request(&[b"HELLO", b"3"]);
        let theirs = default_mode(&mut ra, &mut rb, tracking);
        // Every key read and then written, once: the comparison below is not of nothing.
        let own = usize::from(!tracking.ends_with("NOLOOP"));
        assert_eq!(theirs.0.len(), 15 + own, "{theirs:?}");
        let server = Server::start();
        for mode in MODES {
            let mut a = conn(server.raw_on_core(mode, 0));
            let mut b = conn(server.raw_on_core(mode, 1));
            a.request(&[b"HELLO", b"3"]);
            let ours = default_mode(&mut a, &mut b, tracking);
            assert_eq!(ours, theirs, "{tracking} {mode:?}");
        }
    }
}

/// A client writes a key it tracks, one command at a time: its reply, then the invalidation
/// (Redis sends a client's own invalidations after the reply of the command that caused them).
fn own_write_transcript(a: &mut Conn) -> Vec<String> {
    let key = k("self", 1);
    req(a, "FLUSHALL");
    req(a, "HELLO 3");
    req(a, "CLIENT TRACKING ON");
    req(a, &format!("GET {key}"));
    a.send(&common::resp(&[b"SET", key.as_bytes(), b"v"]));
    let transcript = vec![String::from_utf8_lossy(&a.reply()).into_owned(), format!("{:?}", a.push())];
    req(a, "CLIENT TRACKING OFF");
    transcript
}

#[test]
fn a_clients_own_write_is_invalidated_after_its_reply() {
    let redis = RedisServer::start();
    let theirs = own_write_transcript(&mut conn(redis.raw()));
    let server = Server::start();
    for mode in MODES {
        for core in [0, 1] {
            assert_eq!(
                own_write_transcript(&mut conn(server.raw_on_core(mode, core))),
                theirs,
                "{mode:?} core {core}"
            );
        }
    }
}

/// BCAST: one client follows two prefixes, another every key; a writer changes keys under
/// them and beside them, on both shards.
fn bcast(a: &mut Conn, all: &mut Conn, b: &mut Conn) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    req(b, "FLUSHALL");
    assert_eq!(req(a, "CLIENT TRACKING ON BCAST PREFIX user: PREFIX obj: NOLOOP"), b"+OK\r\n");
    assert_eq!(req(all, "CLIENT TRACKING ON BCAST"), b"+OK\r\n");
    let ends = [k("user:end", 0), k("user:end", 1)];
    for line in [
        format!("SET {} v", k("user:", 0)),
        format!("SET {} v", k("user:", 1)),
        format!("MSET {} 1 {} 2", k("obj:", 0), k("obj:", 1)),
        format!("SET {} v", k("other:", 0)),
        format!("DEL {}", k("user:", 0)),
        format!("DEL {}", k("user:nosuch", 1)),
    ] {
        req(b, &line);
    }
    // NOLOOP: the follower's own change is left out for it, not for the other.
    req(a, &format!("MSET {} mine {} mine", k("user:mine", 0), k("user:mine", 1)));
    for end in &ends {
        req(b, &format!("SET {end} v"));
    }
    (collect(a, &ends), collect(all, &ends))
}

#[test]
fn bcast_prefix_invalidations_match_redis_server() {
    let redis = RedisServer::start();
    let (mut ra, mut rall, mut rb) = (conn(redis.raw()), conn(redis.raw()), conn(redis.raw()));
    ra.request(&[b"HELLO", b"3"]);
    rall.request(&[b"HELLO", b"3"]);
    let theirs = bcast(&mut ra, &mut rall, &mut rb);
    assert_eq!((theirs.0.len(), theirs.1.len()), (4, 7), "{theirs:?}");
    let server = Server::start();
    for mode in MODES {
        let mut a = conn(server.raw_on_core(mode, 0));
        let mut all = conn(server.raw_on_core(mode, 1));
        let mut b = conn(server.raw_on_core(mode, 1));
        a.request(&[b"HELLO", b"3"]);
        all.request(&[b"HELLO", b"3"]);
        assert_eq!(bcast(&mut a, &mut all, &mut b), theirs, "{mode:?}");
        let info = String::from_utf8_lossy(&b.request(&[b"INFO"])).into_owned();
        for field in ["tracking_clients:2", "tracking_total_prefixes:3"] {
            assert!(info.contains(field), "{field}: {info}");
        }
        req(&mut a, "CLIENT TRACKING OFF");
        req(&mut all, "RESET");
    }
}

/// OPTIN and OPTOUT: only the reads CLIENT CACHING selects are remembered (CLIENT commands in
/// between keep its effect; a transaction takes it whole).
fn opt(a: &mut Conn, b: &mut Conn) -> BTreeMap<String, usize> {
    req(b, "FLUSHALL");
    let ends = [k("end", 0), k("end", 1)];
    req(a, "CLIENT TRACKING ON OPTIN");
    for end in &ends {
        req(a, "CLIENT CACHING YES");
        req(a, &format!("GET {end}"));
    }
    req(a, "CLIENT CACHING YES");
    req(a, "CLIENT ID");
    req(a, &format!("GET {}", k("in", 0)));
    req(a, &format!("GET {}", k("in-not", 0)));
    req(a, "CLIENT CACHING YES");
    req(a, "MULTI");
    req(a, &format!("GET {}", k("in-multi", 1)));
    req(a, &format!("GET {}", k("in-multi", 0)));
    req(a, "EXEC");
    req(a, &format!("GET {}", k("in-after", 1)));
    req(a, "CLIENT TRACKING OFF");
    req(a, "CLIENT TRACKING ON OPTOUT");
    req(a, "CLIENT CACHING NO");
    req(a, &format!("GET {}", k("out-not", 1)));
    req(a, &format!("GET {}", k("out", 1)));
    for key in ["in", "in-not", "in-multi", "in-after", "out-not", "out"] {
        for shard in [0, 1] {
            req(b, &format!("SET {} v", k(key, shard)));
        }
    }
    for end in &ends {
        req(b, &format!("SET {end} v"));
    }
    let seen = collect(a, &ends);
    req(a, "CLIENT TRACKING OFF");
    seen
}

#[test]
fn optin_and_optout_match_redis_server() {
    let redis = RedisServer::start();
    let (mut ra, mut rb) = (conn(redis.raw()), conn(redis.raw()));
    ra.request(&[b"HELLO", b"3"]);
    let theirs = opt(&mut ra, &mut rb);
    assert_eq!(theirs.len(), 4, "{theirs:?}");
    let server = Server::start();
    for mode in MODES {
        let mut a = conn(server.raw_on_core(mode, 1));
        let mut b = conn(server.raw_on_core(mode, 0));
        a.request(&[b"HELLO", b"3"]);
        assert_eq!(opt(&mut a, &mut b), theirs, "{mode:?}");
    }
}

/// RESP2 redirection: the invalidations of a RESP2 client go, as messages on
/// `__redis__:invalidate`, to the subscriber it redirects to; a flush is a null for every
/// tracking client; once the subscriber is gone the redirection is broken (a RESP3 client is
/// told so).
fn redirect(a: &mut Conn, a3: &mut Conn, sub: &mut Conn, b: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    req(b, "FLUSHALL");
    let id = sub.client_id();
    sub.send(&common::resp(&[b"SUBSCRIBE", b"__redis__:invalidate"]));
    sub.reply();
    for c in [&mut *a, &mut *a3] {
        assert_eq!(req(c, &format!("CLIENT TRACKING ON REDIRECT {id}")), b"+OK\r\n");
    }
    out.push(mask(&String::from_utf8_lossy(&req(a, "CLIENT GETREDIR")), id));
    let ends = [k("end", 0), k("end", 1)];
    for key in [k("r", 0), k("r", 1), ends[0].clone(), ends[1].clone()] {
        req(a, &format!("GET {key}"));
    }
    req(a3, &format!("GET {}", k("r3", 0)));
    for key in [k("r", 0), k("r", 1), k("r3", 0), ends[0].clone(), ends[1].clone()] {
        req(b, &format!("SET {key} v"));
    }
    out.push(format!("{:?}", collect(sub, &ends)));
    // A flush: one null per tracking client, through the redirection.
    req(b, "FLUSHALL");
    let mut nulls = 0;
    while nulls < 2 {
        assert_eq!(invalidated(&sub.push()), Some(None));
        nulls += 1;
    }
    // The subscriber leaves: the redirection breaks when there is something to send.
    req(sub, "QUIT");
    let deadline = Instant::now() + Duration::from_secs(10);
    while String::from_utf8_lossy(&req(b, "CLIENT LIST")).contains(&format!("id={id} ")) {
        assert!(Instant::now() < deadline, "the subscriber never left");
        std::thread::yield_now();
    }
    req(a, &format!("GET {}", k("r", 1)));
    req(a3, &format!("GET {}", k("r", 1)));
    req(b, &format!("SET {} w", k("r", 1)));
    let broken = a3.push();
    out.push(mask(&format!("{broken:?}"), id));
    for c in [&mut *a, &mut *a3] {
        // The client it redirects to may live on another core: the news that it is gone
        // comes back from there (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut info = String::from_utf8_lossy(&req(c, "CLIENT INFO")).into_owned();
        while !info.contains("flags=tR") && Instant::now() < deadline {
            std::thread::yield_now();
            info = String::from_utf8_lossy(&req(c, "CLIENT INFO")).into_owned();
        }
        out.push(mask(&flags(&info), id));
        out.push(mask(&String::from_utf8_lossy(&req(c, "CLIENT TRACKINGINFO")), id));
    }
    out
}

#[test]
fn resp2_redirection_flushes_and_broken_redirects_match_redis_server() {
    let redis = RedisServer::start();
    let (mut ra, mut ra3, mut rsub, mut rb) =
        (conn(redis.raw()), conn(redis.raw()), conn(redis.raw()), conn(redis.raw()));
    ra3.request(&[b"HELLO", b"3"]);
    let theirs = redirect(&mut ra, &mut ra3, &mut rsub, &mut rb);
    let server = Server::start();
    for mode in MODES {
        let mut a = conn(server.raw_on_core(mode, 0));
        let mut a3 = conn(server.raw_on_core(mode, 1));
        let mut sub = conn(server.raw_on_core(mode, 1));
        let mut b = conn(server.raw_on_core(mode, 0));
        a3.request(&[b"HELLO", b"3"]);
        assert_eq!(redirect(&mut a, &mut a3, &mut sub, &mut b), theirs, "{mode:?}");
    }
}

/// The table is bounded: past `tracking-table-max-keys`, keys are invalidated as if they had
/// changed, and INFO counts what is left.
#[test]
fn the_tracking_table_stays_within_its_limit() {
    let server = Server::start();
    let mut a = conn(server.raw(Mode::Tls));
    let mut b = conn(server.raw(Mode::Plain));
    assert!(req(&mut b, "CONFIG SET tracking-table-max-keys 10").starts_with(b"+OK"));
    a.request(&[b"HELLO", b"3"]);
    req(&mut a, "CLIENT TRACKING ON");
    for i in 0..100 {
        a.send(&common::resp(&[b"GET", format!("key{i}").as_bytes()]));
    }
    // 100 replies, and the invalidations of the keys pushed out, in some order.
    let (mut replies, mut evicted) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while replies < 100 || evicted < 90 {
        assert!(Instant::now() < deadline, "{replies} replies, {evicted} invalidations");
        match invalidated(&parse(&a.raw.reply())) {
            Some(Some(keys)) => evicted += keys.len(),
            Some(None) => panic!("no flush here"),
            None => replies += 1,
        }
    }
    let info = String::from_utf8_lossy(&b.request(&[b"INFO", b"stats"])).into_owned();
    let keys: u64 =
        info.lines().find_map(|l| l.strip_prefix("tracking_total_keys:")).unwrap().trim().parse().unwrap();
    assert!(keys <= 10, "{info}");
}
