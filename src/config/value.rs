//! The value types directives hold, each parsed from and shown as redis.conf text.

/// A value a directive can hold: parsed from its arguments, shown for CONFIG GET.
pub trait ConfigValue: Sized {
    /// Parses the directive's arguments.
    fn parse(args: &[String]) -> Result<Self, String>;
    /// Shows the value as CONFIG GET reports it.
    fn show(&self) -> String;
    /// The value after applying `args` to the current one (most directives simply replace it).
    fn update(&self, args: &[String]) -> Result<Self, String> {
        Self::parse(args)
    }
}

fn one(args: &[String]) -> Result<&str, String> {
    match args {
        [a] => Ok(a),
        _ => Err(format!("expected one argument, got {}", args.len())),
    }
}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            fn parse(args: &[String]) -> Result<Self, String> {
                let a = one(args)?;
                a.parse().map_err(|_| format!("argument couldn't be parsed into an integer: '{a}'"))
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
numeric!(u16, u64, i64, usize);

impl ConfigValue for bool {
    fn parse(args: &[String]) -> Result<Self, String> {
        match one(args)?.to_ascii_lowercase().as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(format!("argument must be 'yes' or 'no', not '{other}'")),
        }
    }
    fn show(&self) -> String {
        if *self { "yes" } else { "no" }.to_owned()
    }
}

impl ConfigValue for String {
    fn parse(args: &[String]) -> Result<Self, String> {
        one(args).map(str::to_owned)
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl ConfigValue for Vec<String> {
    fn parse(args: &[String]) -> Result<Self, String> {
        if args.is_empty() {
            return Err("expected at least one address".into());
        }
        Ok(args.to_vec())
    }
    fn show(&self) -> String {
        self.join(" ")
    }
}

/// `save`: the points at which a background save starts by itself, as `(seconds, changes)`
/// pairs (after `seconds` if at least `changes` keys changed). Redis 7.0's rules: a config
/// file's first `save` line replaces the defaults and later ones add to it; CONFIG SET replaces
/// the whole list; `save ""` clears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavePoints {
    /// The points, in the order given.
    pub points: Vec<(u64, u64)>,
    /// Whether a further `save` line adds to the list (false: it replaces it).
    pub appending: bool,
}

impl Default for SavePoints {
    /// Redis 7.0's: an hour and 1 change, 5 minutes and 100, a minute and 10000.
    fn default() -> SavePoints {
        SavePoints { points: vec![(3600, 1), (300, 100), (60, 10000)], appending: false }
    }
}

impl ConfigValue for SavePoints {
    fn parse(args: &[String]) -> Result<Self, String> {
        if let [only] = args {
            if only.is_empty() {
                return Ok(SavePoints { points: Vec::new(), appending: true });
            }
        }
        if args.is_empty() || args.len() % 2 != 0 {
            return Err("Invalid save parameters".into());
        }
        let points = args
            .chunks_exact(2)
            .map(|p| match (p[0].parse::<u64>(), p[1].parse::<u64>()) {
                (Ok(secs), Ok(changes)) if i64::try_from(secs).is_ok() && i32::try_from(changes).is_ok() => {
                    Ok((secs, changes))
                }
                _ => Err("Invalid save parameters".to_owned()),
            })
            .collect::<Result<_, _>>()?;
        Ok(SavePoints { points, appending: true })
    }
    fn show(&self) -> String {
        self.points.iter().map(|(s, c)| format!("{s} {c}")).collect::<Vec<_>>().join(" ")
    }
    fn update(&self, args: &[String]) -> Result<Self, String> {
        let mut next = Self::parse(args)?;
        if self.appending && !next.points.is_empty() {
            next.points.splice(0..0, self.points.iter().copied());
        }
        Ok(next)
    }
}

/// `latency-tracking-info-percentiles`: the percentiles INFO latencystats reports, each in
/// [0, 100]; a single empty argument means none.
#[derive(Debug, Clone, PartialEq)]
pub struct Percentiles(pub Vec<f64>);

impl ConfigValue for Percentiles {
    fn parse(args: &[String]) -> Result<Self, String> {
        if let [only] = args {
            if only.is_empty() {
                return Ok(Percentiles(Vec::new()));
            }
        }
        let mut all = Vec::with_capacity(args.len());
        for a in args {
            let p: f64 = a
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite())
                .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
            if !(0.0..=100.0).contains(&p) {
                return Err(
                    "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into()
                );
            }
            all.push(p);
        }
        Ok(Percentiles(all))
    }
    fn show(&self) -> String {
        self.0.iter().map(|p| trim_double(*p)).collect::<Vec<_>>().join(" ")
    }
}

/// A percentile as Redis prints it: `%f` with trailing zeros (and a trailing point) removed.
#[must_use]
pub fn trim_double(p: f64) -> String {
    let s = format!("{p:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A byte size written as Redis writes memory: `1024`, `1k` (1000), `1kb` (1024), `5mb`, `1gb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory(pub u64);

impl ConfigValue for Memory {
    fn parse(args: &[String]) -> Result<Self, String> {
        let a = one(args)?.to_ascii_lowercase();
        let split = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
        let (num, unit) = a.split_at(split);
        let mul: u64 = match unit {
            "" | "b" => 1,
            "k" => 1000,
            "kb" => 1 << 10,
            "m" => 1000 * 1000,
            "mb" => 1 << 20,
            "g" => 1000 * 1000 * 1000,
            "gb" => 1 << 30,
            _ => return Err(format!("argument must be a memory value: '{a}'")),
        };
        num.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mul))
            .map(Memory)
            .ok_or_else(|| format!("argument must be a memory value: '{a}'"))
    }
    fn show(&self) -> String {
        self.0.to_string()
    }
}

/// A directive of several words kept as written, space-separated (`oom-score-adj-values 0 200
/// 800`, `shutdown-on-sigterm save now`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words(pub String);

impl ConfigValue for Words {
    fn parse(args: &[String]) -> Result<Self, String> {
        Ok(Words(args.join(" ")))
    }
    fn show(&self) -> String {
        self.0.clone()
    }
}

/// `maxmemory-clients`: a byte size, or a percentage of `maxmemory` (`10%`); 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientsLimit {
    /// At most this many bytes (0: no limit).
    Bytes(u64),
    /// This percentage of `maxmemory` (no limit while `maxmemory` is 0).
    Percent(u64),
}

impl ClientsLimit {
    /// The limit in bytes under `maxmemory` (Redis's `getClientEvictionLimit`): 0 for none, and
    /// never below 128 KB, so that a bad setting still lets clients talk to the server.
    #[must_use]
    pub fn bytes(self, maxmemory: u64) -> u64 {
        let limit = match self {
            ClientsLimit::Bytes(b) => b,
            ClientsLimit::Percent(p) => (maxmemory as f64 * p as f64 / 100.0) as u64,
        };
        if limit == 0 {
            0
        } else {
            limit.max(128 << 10)
        }
    }
}

impl ConfigValue for ClientsLimit {
    fn parse(args: &[String]) -> Result<Self, String> {
        let a = one(args)?;
        match a.strip_suffix('%') {
            Some(p) => p
                .parse::<u64>()
                .ok()
                .filter(|p| *p <= 100)
                .map(ClientsLimit::Percent)
                .ok_or_else(|| format!("argument must be a memory or percent value: '{a}'")),
            None => Memory::parse(args)
                .map(|m| ClientsLimit::Bytes(m.0))
                .map_err(|_| format!("argument must be a memory or percent value: '{a}'")),
        }
    }
    fn show(&self) -> String {
        match self {
            ClientsLimit::Bytes(b) => b.to_string(),
            ClientsLimit::Percent(p) => format!("{p}%"),
        }
    }
}

/// `server-cpus`: the cpus executors are pinned to, e.g. `0,1` or `0-3`; empty means automatic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl ConfigValue for CpuList {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut cpus = Vec::new();
        for part in args.iter().flat_map(|a| a.split(',')).filter(|p| !p.is_empty()) {
            let bad = || format!("invalid cpu list item '{part}'");
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (usize, usize) =
                        (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                    if a > b {
                        return Err(bad());
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(part.parse().map_err(|_| bad())?),
            }
        }
        Ok(CpuList(cpus))
    }
    fn show(&self) -> String {
        self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }
}

/// One class's output buffer limit: disconnect past `hard` bytes, or past `soft` bytes for
/// `soft_secs` seconds; 0 disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    /// Hard limit in bytes.
    pub hard: u64,
    /// Soft limit in bytes.
    pub soft: u64,
    /// Seconds the soft limit may be exceeded.
    pub soft_secs: u64,
}

/// `client-output-buffer-limit`: per client class, as Redis (`normal`, `replica`, `pubsub`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Ordinary clients.
    pub normal: OutputLimit,
    /// Replicas (stored until replication arrives).
    pub replica: OutputLimit,
    /// Pub/sub subscribers.
    pub pubsub: OutputLimit,
}

impl Default for OutputLimits {
    fn default() -> OutputLimits {
        let limit = |hard, soft, soft_secs| OutputLimit { hard, soft, soft_secs };
        OutputLimits {
            normal: limit(0, 0, 0),
            replica: limit(256 << 20, 64 << 20, 60),
            pubsub: limit(32 << 20, 8 << 20, 60),
        }
    }
}

impl ConfigValue for OutputLimits {
    fn parse(args: &[String]) -> Result<Self, String> {
        OutputLimits::default().update(args)
    }

    fn update(&self, args: &[String]) -> Result<Self, String> {
        if args.is_empty() || args.len() % 4 != 0 {
            return Err("expected <class> <hard> <soft> <seconds> groups".into());
        }
        let mut next = *self;
        for group in args.chunks_exact(4) {
            let mem = |a: &String| Memory::parse(std::slice::from_ref(a)).map(|m| m.0);
            let limit = OutputLimit {
                hard: mem(&group[1])?,
                soft: mem(&group[2])?,
                soft_secs: group[3].parse().map_err(|_| format!("invalid seconds '{}'", group[3]))?,
            };
            match group[0].to_ascii_lowercase().as_str() {
                "normal" => next.normal = limit,
                "replica" | "slave" => next.replica = limit,
                "pubsub" => next.pubsub = limit,
                other => return Err(format!("invalid client class '{other}'")),
            }
        }
        Ok(next)
    }

    fn show(&self) -> String {
        let show = |l: &OutputLimit| format!("{} {} {}", l.hard, l.soft, l.soft_secs);
        format!("normal {} slave {} pubsub {}", show(&self.normal), show(&self.replica), show(&self.pubsub))
    }
}

macro_rules! keyword_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vdoc])* $variant),* }

        impl ConfigValue for $name {
            fn parse(args: &[String]) -> Result<Self, String> {
                let a = one(args)?;
                $( if a.eq_ignore_ascii_case($text) { return Ok($name::$variant); } )*
                Err(format!("argument(s) must be one of the following: {}",
                    [$($text),*].join(", ")))
            }
            fn show(&self) -> String {
                match self { $($name::$variant => $text.to_owned()),* }
            }
        }
    };
}

keyword_enum! {
    /// `tls-auth-clients`: whether TLS clients must present a certificate.
    TlsAuthClients {
        /// A client certificate is required and verified.
        Yes = "yes",
        /// No client certificate is asked for.
        No = "no",
        /// A client certificate is verified if presented.
        Optional = "optional",
    }
}

keyword_enum! {
    /// `tls-auth-clients-user`: which field of a verified client certificate names the ACL user
    /// the connection is authenticated as (Valkey 9.1, Redis 8.6).
    TlsAuthClientsUser {
        /// Certificates name no user.
        Off = "off",
        /// The subject's common name.
        Cn = "CN",
        /// The first subject alternative name URI that names an enabled user.
        Uri = "URI",
    }
}

keyword_enum! {
    /// `loglevel`: how much the server logs.
    LogLevel {
        /// Everything, for development.
        Debug = "debug",
        /// Much, but not everything.
        Verbose = "verbose",
        /// What matters in production.
        Notice = "notice",
        /// Only what is wrong.
        Warning = "warning",
        /// Nothing.
        Nothing = "nothing",
    }
}

keyword_enum! {
    /// `appendfsync`: when the append-only file is flushed to disk.
    AppendFsync {
        /// Before every reply that follows a write (group commit: one fsync per round).
        Always = "always",
        /// Once a second.
        Everysec = "everysec",
        /// When the kernel decides.
        No = "no",
    }
}

keyword_enum! {
    /// `maxmemory-policy`: which keys go when `maxmemory` is reached.
    MaxmemoryPolicy {
        /// The least recently used of the keys with a TTL.
        VolatileLru = "volatile-lru",
        /// The least recently used of all keys.
        AllkeysLru = "allkeys-lru",
        /// The least frequently used of the keys with a TTL.
        VolatileLfu = "volatile-lfu",
        /// The least frequently used of all keys.
        AllkeysLfu = "allkeys-lfu",
        /// Any key with a TTL.
        VolatileRandom = "volatile-random",
        /// Any key.
        AllkeysRandom = "allkeys-random",
        /// The key with a TTL that expires first.
        VolatileTtl = "volatile-ttl",
        /// None: writes that need memory get `-OOM`.
        Noeviction = "noeviction",
    }
}

impl MaxmemoryPolicy {
    /// Whether it ranks keys by recency or frequency (each value then keeps its own clock).
    #[must_use]
    pub fn lru_or_lfu(self) -> bool {
        matches!(
            self,
            MaxmemoryPolicy::AllkeysLru
                | MaxmemoryPolicy::VolatileLru
                | MaxmemoryPolicy::AllkeysLfu
                | MaxmemoryPolicy::VolatileLfu
        )
    }

    /// Whether it evicts only keys with a TTL.
    #[must_use]
    pub fn volatile(self) -> bool {
        matches!(
            self,
            MaxmemoryPolicy::VolatileLru
                | MaxmemoryPolicy::VolatileLfu
                | MaxmemoryPolicy::VolatileRandom
                | MaxmemoryPolicy::VolatileTtl
        )
    }

    /// Whether keys keep an access frequency (LFU) rather than an access time.
    #[must_use]
    pub fn lfu(self) -> bool {
        matches!(self, MaxmemoryPolicy::VolatileLfu | MaxmemoryPolicy::AllkeysLfu)
    }
}

keyword_enum! {
    /// `repl-diskless-load`: how a replica loads a full sync's snapshot.
    DisklessLoad {
        /// Written to the dump file first, then loaded from it.
        Disabled = "disabled",
        /// Loaded as it arrives when the dataset is empty, else through the dump file.
        OnEmptyDb = "on-empty-db",
        /// Parsed as it arrives while the old data serves, then swapped in whole.
        Swapdb = "swapdb",
    }
}

/// `notify-keyspace-events`: classes of keyspace events (Redis's `NOTIFY_*` flags), or a set
/// of them; kept as flags and shown as Redis shows them (`KEA` reads back as `AKE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyspaceEvents(u16);

impl KeyspaceEvents {
    /// `K`: `__keyspace@<db>__:<key>` channels.
    pub const KEYSPACE: KeyspaceEvents = KeyspaceEvents(1 << 0);
    /// `E`: `__keyevent@<db>__:<event>` channels.
    pub const KEYEVENT: KeyspaceEvents = KeyspaceEvents(1 << 1);
    /// `g`: DEL, EXPIRE, RENAME, ... (commands of any type).
    pub const GENERIC: KeyspaceEvents = KeyspaceEvents(1 << 2);
    /// `$`: string commands.
    pub const STRING: KeyspaceEvents = KeyspaceEvents(1 << 3);
    /// `l`: list commands.
    pub const LIST: KeyspaceEvents = KeyspaceEvents(1 << 4);
    /// `s`: set commands.
    pub const SET: KeyspaceEvents = KeyspaceEvents(1 << 5);
    /// `h`: hash commands.
    pub const HASH: KeyspaceEvents = KeyspaceEvents(1 << 6);
    /// `z`: sorted set commands.
    pub const ZSET: KeyspaceEvents = KeyspaceEvents(1 << 7);
    /// `x`: a key expired (when it was deleted for it).
    pub const EXPIRED: KeyspaceEvents = KeyspaceEvents(1 << 8);
    /// `e`: a key evicted for `maxmemory`.
    pub const EVICTED: KeyspaceEvents = KeyspaceEvents(1 << 9);
    /// `t`: stream commands.
    pub const STREAM: KeyspaceEvents = KeyspaceEvents(1 << 10);
    /// `m`: a read found no key.
    pub const KEY_MISS: KeyspaceEvents = KeyspaceEvents(1 << 11);
    /// `d`: modules (never emitted: ferrokey has none).
    pub const MODULE: KeyspaceEvents = KeyspaceEvents(1 << 12);
    /// `n`: a key was created.
    pub const NEW: KeyspaceEvents = KeyspaceEvents(1 << 13);
    /// `A`: `g$lshzxetd`.
    pub const ALL: KeyspaceEvents = KeyspaceEvents(
        KeyspaceEvents::GENERIC.0
            | KeyspaceEvents::STRING.0
            | KeyspaceEvents::LIST.0
            | KeyspaceEvents::SET.0
            | KeyspaceEvents::HASH.0
            | KeyspaceEvents::ZSET.0
            | KeyspaceEvents::EXPIRED.0
            | KeyspaceEvents::EVICTED.0
            | KeyspaceEvents::STREAM.0
            | KeyspaceEvents::MODULE.0,
    );

    /// Whether every class of `other` is in `self`.
    #[must_use]
    pub const fn contains(self, other: KeyspaceEvents) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a class.
    #[must_use]
    pub const fn intersects(self, other: KeyspaceEvents) -> bool {
        self.0 & other.0 != 0
    }

    /// The classes `notify-keyspace-events` names (`None` for a character that is not one).
    #[must_use]
    pub fn parse(text: &str) -> Option<KeyspaceEvents> {
        text.chars().try_fold(KeyspaceEvents(0), |flags, c| {
            let class = match c {
                'A' => KeyspaceEvents::ALL,
                'g' => KeyspaceEvents::GENERIC,
                '$' => KeyspaceEvents::STRING,
                'l' => KeyspaceEvents::LIST,
                's' => KeyspaceEvents::SET,
                'h' => KeyspaceEvents::HASH,
                'z' => KeyspaceEvents::ZSET,
                'x' => KeyspaceEvents::EXPIRED,
                'e' => KeyspaceEvents::EVICTED,
                'K' => KeyspaceEvents::KEYSPACE,
                'E' => KeyspaceEvents::KEYEVENT,
                't' => KeyspaceEvents::STREAM,
                'm' => KeyspaceEvents::KEY_MISS,
                'd' => KeyspaceEvents::MODULE,
                'n' => KeyspaceEvents::NEW,
                _ => return None,
            };
            Some(KeyspaceEvents(flags.0 | class.0))
        })
    }

    /// The setting as CONFIG GET shows it (`keyspaceEventsFlagsToString`).
    #[must_use]
    pub fn to_config(self) -> String {
        let mut out = String::new();
        if self.contains(KeyspaceEvents::ALL) {
            out.push('A');
        } else {
            let each = [
                (KeyspaceEvents::GENERIC, 'g'),
                (KeyspaceEvents::STRING, '$'),
                (KeyspaceEvents::LIST, 'l'),
                (KeyspaceEvents::SET, 's'),
                (KeyspaceEvents::HASH, 'h'),
                (KeyspaceEvents::ZSET, 'z'),
                (KeyspaceEvents::EXPIRED, 'x'),
                (KeyspaceEvents::EVICTED, 'e'),
                (KeyspaceEvents::STREAM, 't'),
                (KeyspaceEvents::MODULE, 'd'),
                (KeyspaceEvents::NEW, 'n'),
            ];
            out.extend(each.iter().filter(|(c, _)| self.contains(*c)).map(|(_, ch)| *ch));
        }
        for (c, ch) in [
            (KeyspaceEvents::KEYSPACE, 'K'),
            (KeyspaceEvents::KEYEVENT, 'E'),
            (KeyspaceEvents::KEY_MISS, 'm'),
        ] {
            if self.contains(c) {
                out.push(ch);
            }
        }
        out
    }

    /// What a shard emits under setting `self`: nothing unless a channel kind (K or E) is on.
    #[must_use]
    pub fn effective(self) -> KeyspaceEvents {
        if self.intersects(KeyspaceEvents(KeyspaceEvents::KEYSPACE.0 | KeyspaceEvents::KEYEVENT.0)) {
            self
        } else {
            KeyspaceEvents(0)
        }
    }
}

impl ConfigValue for KeyspaceEvents {
    fn parse(args: &[String]) -> Result<Self, String> {
        KeyspaceEvents::parse(one(args)?)
            .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_owned())
    }

    fn show(&self) -> String {
        self.to_config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn memory_units() {
        assert_eq!(Memory::parse(&a("512mb")), Ok(Memory(512 << 20)));
        assert_eq!(Memory::parse(&a("1GB")), Ok(Memory(1 << 30)));
        assert_eq!(Memory::parse(&a("1k")), Ok(Memory(1000)));
        assert!(Memory::parse(&a("12xb")).is_err());
        assert!(Memory::parse(&a("99999999999999gb")).is_err());
    }

    #[test]
    fn output_limits_merge_per_class() {
        let l = OutputLimits::parse(&a("pubsub 1mb 512kb 10")).unwrap();
        assert_eq!(l.pubsub, OutputLimit { hard: 1 << 20, soft: 512 << 10, soft_secs: 10 });
        assert_eq!(l.replica, OutputLimits::default().replica);
        let l = l.update(&a("normal 0 0 0")).unwrap();
        assert_eq!(l.pubsub.hard, 1 << 20, "a line naming another class keeps this one");
        assert_eq!(l.show(), "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 524288 10");
        assert!(OutputLimits::parse(&a("bogus 1 1 1")).is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(CpuList::parse(&a("0,2-4")), Ok(CpuList(vec![0, 2, 3, 4])));
        assert_eq!(CpuList::parse(&a("0 1")), Ok(CpuList(vec![0, 1])));
        assert!(CpuList::parse(&a("3-1")).is_err());
    }

    #[test]
    fn settings_read_and_print_as_redis() {
        let cases = [("KEA", "AKE"), ("Kg$", "g$K"), ("xE", "xE"), ("AKEmn", "AKEm"), ("", ""), ("g", "g")];
        for (given, shown) in cases {
            assert_eq!(
                KeyspaceEvents::parse(given).map(KeyspaceEvents::to_config).as_deref(),
                Some(shown),
                "{given}"
            );
        }
        assert_eq!(KeyspaceEvents::parse("Kq"), None);
    }

    #[test]
    fn keyspace_events_without_a_channel_kind_send_nothing() {
        assert_eq!(KeyspaceEvents::parse("g$lshz").map(KeyspaceEvents::effective), Some(KeyspaceEvents(0)));
    }
}

keyword_enum! {
    /// `acl-pubsub-default`: the channels a new ACL user may use.
    AclPubsubDefault {
        /// Every channel.
        Allchannels = "allchannels",
        /// None until granted.
        Resetchannels = "resetchannels",
    }
}

keyword_enum! {
    /// `cluster-preferred-endpoint-type`: how cluster nodes are named to clients.
    EndpointType {
        /// By IP address.
        Ip = "ip",
        /// By hostname.
        Hostname = "hostname",
        /// By "?".
        UnknownEndpoint = "unknown-endpoint",
    }
}

keyword_enum! {
    /// `enable-module-command`, `enable-protected-configs`: allowed from anywhere, from
    /// loopback clients only, or not at all.
    Allowed {
        /// Not allowed.
        No = "no",
        /// Allowed.
        Yes = "yes",
        /// Allowed to loopback clients.
        Local = "local",
    }
}

keyword_enum! {
    /// `oom-score-adj`: whether the server sets its processes' OOM score.
    OomScoreAdj {
        /// It does not.
        No = "no",
        /// Relative to the score it started with.
        Yes = "yes",
        /// Relative (as `yes`).
        Relative = "relative",
        /// The values as given.
        Absolute = "absolute",
    }
}

keyword_enum! {
    /// `supervised`: talking to a supervisor (systemd's readiness notification).
    Supervised {
        /// Upstart (a SIGSTOP when ready).
        Upstart = "upstart",
        /// systemd: READY=1 and STATUS= on `$NOTIFY_SOCKET`.
        Systemd = "systemd",
        /// systemd when `$NOTIFY_SOCKET` is set.
        Auto = "auto",
        /// None.
        No = "no",
    }
}

keyword_enum! {
    /// `syslog-facility`.
    SyslogFacility {
        /// user
        User = "user",
        /// local0
        Local0 = "local0",
        /// local1
        Local1 = "local1",
        /// local2
        Local2 = "local2",
        /// local3
        Local3 = "local3",
        /// local4
        Local4 = "local4",
        /// local5
        Local5 = "local5",
        /// local6
        Local6 = "local6",
        /// local7
        Local7 = "local7",
    }
}

keyword_enum! {
    /// `propagation-error-behavior`: what a replica does with a command from its primary that
    /// fails.
    PropagationErrors {
        /// Goes on.
        Ignore = "ignore",
        /// Stops.
        Panic = "panic",
        /// Stops only on replicas.
        PanicOnReplicas = "panic-on-replicas",
    }
}

keyword_enum! {
    /// `sanitize-dump-payload`: deep checks of RESTORE payloads and RDB files.
    SanitizePayload {
        /// Never.
        No = "no",
        /// Always.
        Yes = "yes",
        /// For clients' RESTORE only.
        Clients = "clients",
    }
}
