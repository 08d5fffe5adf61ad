//! The random request generator shared by the differential fuzz test (tests/commands.rs) and
//! the concurrent stress test (tests/stress.rs).

/// Random requests over every data type, sent in pipelined batches, compared with Redis.
///
/// A handful of keys (spread over shards) and members means types collide (WRONGTYPE), ranges
/// hit and miss, and containers cross their small-encoding thresholds both ways. Arguments are
/// drawn valid or not, so error replies are compared too. Commands whose replies depend on
/// randomness or the clock (SPOP, *RANDMEMBER, TTL...) are left out. `FUZZ_SEED` and
/// `FUZZ_REQUESTS` widen the search: `FUZZ_REQUESTS=200000 cargo test --test commands fuzz`.
pub struct Fuzz {
    /// The generator's state: the same seed draws the same requests.
    pub seed: u64,
}

impl Fuzz {
    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.seed >> 33) % n as u64) as usize
    }
    fn pick(&mut self, from: &[&str]) -> String {
        from[self.below(from.len())].to_string()
    }
    fn key(&mut self) -> String {
        self.pick(&["k1", "k2", "k3", "{t}a", "{t}b", "{t}c", "k4"])
    }
    /// A sorted set whose members all score 0: Redis leaves lexicographic ranges over mixed
    /// scores unspecified, so they are only asked of these, which nothing else writes.
    fn lex_key(&mut self) -> String {
        self.pick(&["lex", "{t}lex"])
    }
    fn keys(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.key()).collect()
    }
    /// `least` keys and up to `more - 1` more.
    fn some_keys(&mut self, least: usize, more: usize) -> Vec<String> {
        let n = least + self.below(more);
        self.keys(n)
    }
    /// A member, field or value: mostly a few short ones, sometimes one of hundreds (so
    /// containers grow past their small forms), numbers, the empty string, or a long one.
    fn member(&mut self) -> String {
        match self.below(10) {
            0..=4 => self.pick(&["a", "b", "c", "d", "e"]),
            5 | 6 => format!("m{}", self.below(300)),
            7 => self.pick(&["1", "-2", "10", "3.5", "0"]),
            8 => self.pick(&["", " ", "A"]),
            _ => "x".repeat(60 + self.below(10)),
        }
    }
    /// A stream ID as a client writes one: mostly increasing explicit IDs, some partial or
    /// invalid.
    fn stream_id(&mut self) -> String {
        self.pick(&[
            "1-1",
            "1-2",
            "2",
            "2-*",
            "3-0",
            "4-*",
            "5-5",
            "9-9",
            "0-1",
            "0-0",
            "x",
            "18446744073709551615-*",
        ])
    }
    fn group(&mut self) -> String {
        self.pick(&["g1", "g2"])
    }
    fn consumer(&mut self) -> String {
        self.pick(&["alice", "bob"])
    }
    fn int(&mut self) -> String {
        match self.below(12) {
            0..=7 => (self.below(9) as i64 - 3).to_string(),
            8 => self.pick(&["100", "-100", "50"]),
            9 => self.pick(&["9223372036854775807", "-9223372036854775808", "99999999999999999999"]),
            _ => self.pick(&["abc", "1.5", ""]),
        }
    }
    fn float(&mut self) -> String {
        self.pick(&[
            "0", "1", "-1", "2.5", "1e2", "-0.1", "0.2", "inf", "-inf", "+inf", "nan", "x", "3", "1e400",
            "-0", "1e15", "0x1p-3",
        ])
    }
    fn longitude(&mut self) -> String {
        self.pick(&["0", "0.5", "1", "13.361389", "-179.9", "180", "-180", "181", "12.5", "x", "1e-3"])
    }
    fn latitude(&mut self) -> String {
        self.pick(&["0", "0.5", "-1", "38.115556", "85.05112878", "-85.06", "84.9", "41", "y"])
    }
    fn radius(&mut self) -> String {
        self.pick(&["0", "1", "100", "1000", "20000", "-1", "x", "250.5"])
    }
    fn unit(&mut self) -> String {
        self.pick(&["m", "km", "KM", "mi", "ft", "parsec"])
    }
    fn score_bound(&mut self) -> String {
        let f = self.float();
        if self.below(3) == 0 {
            format!("({f}")
        } else {
            f
        }
    }
    fn lex_bound(&mut self) -> String {
        match self.below(6) {
            0 => "-".into(),
            1 => "+".into(),
            2 => "x".into(),
            _ => {
                let m = self.member();
                format!("{}{m}", if self.below(2) == 0 { "[" } else { "(" })
            }
        }
    }
    fn end(&mut self) -> String {
        self.pick(&["LEFT", "RIGHT"])
    }
    /// Appends `n` members (or pairs built by `item`).
    fn many(&mut self, req: &mut Vec<String>, n: usize, item: fn(&mut Fuzz) -> Vec<String>) {
        for _ in 0..n {
            req.extend(item(self));
        }
    }
    /// A bit offset: mostly within a few bytes, sometimes far, bad, or past the limit.
    fn bit_offset(&mut self) -> String {
        match self.below(8) {
            0..=4 => self.below(64).to_string(),
            5 => self.pick(&["100", "1000", "4095"]),
            6 => self.pick(&["-1", "x", "4294967296", "#1"]),
            _ => self.below(300).to_string(),
        }
    }
    /// A BITFIELD type, valid or not.
    fn field_type(&mut self) -> String {
        self.pick(&["u8", "i8", "u1", "i1", "i5", "u16", "i64", "u63", "u64", "i65", "x", "i0", "U8"])
    }
    /// A BITFIELD offset: bits, `#` units, or bad.
    fn field_offset(&mut self) -> String {
        match self.below(6) {
            0..=2 => self.below(40).to_string(),
            3 => format!("#{}", self.below(4)),
            4 => self.pick(&["100", "-1", "x", "#-1"]),
            _ => self.below(8).to_string(),
        }
    }
    fn count(&mut self) -> usize {
        if self.below(8) == 0 {
            10 + self.below(30)
        } else {
            1 + self.below(3)
        }
    }

    /// One random request: now and then a script (see [`Fuzz::script`]).
    pub fn request(&mut self) -> Vec<String> {
        if self.below(24) == 0 {
            self.script()
        } else {
            self.plain_request()
        }
    }

    /// EVAL of a script running a random request through `redis.call` or `redis.pcall` (or
    /// Lua's `pcall`), its reply converted into Lua and back (RESP3 conversions too, with
    /// `redis.setresp(3)`), its keys declared in KEYS or not: every type, errors raised and
    /// caught, keys of both shards. A script marked `declared` always declares its keys, so
    /// its later runs are on one shard when its keys are.
    pub fn script(&mut self) -> Vec<String> {
        const BODIES: &[&str] = &[
            "return redis.call(unpack(ARGV))",
            "return redis.pcall(unpack(ARGV))",
            "redis.setresp(3) return redis.call(unpack(ARGV))",
            "redis.setresp(3) local r = redis.pcall(unpack(ARGV)) return {r, type(r)}",
            "local ok, r = pcall(redis.call, unpack(ARGV)) if ok then return {'ok', r} end return {'no', r.err}",
            // A declared key (ARGV[2] may be no key: ZMPOP's numkeys), or k1 when none is.
            "local r = redis.call(unpack(ARGV)) return {type(r), r, redis.call('EXISTS', KEYS[1] or 'k1')}",
        ];
        // Unordered replies are compared sorted, which a script's reply is not.
        const UNORDERED: &[&str] =
            &["SMEMBERS", "SINTER", "SUNION", "SDIFF", "HGETALL", "HKEYS", "HVALS", "KEYS"];
        const KEYS: &[&str] = &["k1", "k2", "k3", "k4", "{t}a", "{t}b", "{t}c", "lex", "{t}lex"];
        let inner = loop {
            let r = self.plain_request();
            if !UNORDERED.contains(&r[0].as_str()) {
                break r;
            }
        };
        let body = BODIES[self.below(BODIES.len())];
        let (body, keys) = if self.below(2) == 0 {
            let mut keys: Vec<String> = Vec::new();
            for a in &inner[1..] {
                if KEYS.contains(&a.as_str()) && !keys.contains(a) {
                    keys.push(a.clone());
                }
            }
            (format!("{body} -- declared"), keys)
        } else {
            (body.to_string(), Vec::new())
        };
        [vec!["EVAL".to_string(), body, keys.len().to_string()], keys, inner].concat()
    }

    /// One random request, never a script.
    fn plain_request(&mut self) -> Vec<String> {
        let s = |x: &str| x.to_string();
        let k = self.key();
        let mut r = match self.below(158) {
            // Strings and keys.
            0 => vec![s("SET"), k, self.member()],
            1 => vec![s("GET"), k],
            2 => vec![s("APPEND"), k, self.member()],
            3 => vec![s("INCRBY"), k, self.int()],
            4 => vec![s("INCRBYFLOAT"), k, self.float()],
            5 => vec![s("GETRANGE"), k, self.int(), self.int()],
            6 => vec![s("SETRANGE"), k, self.int(), self.member()],
            7 => vec![s("STRLEN"), k],
            8 => [vec![s("DEL")], self.some_keys(1, 3)].concat(),
            9 => vec![s("TYPE"), k],
            10 => vec![s("RENAME"), k, self.key()],
            11 => vec![s("COPY"), k, self.key(), self.pick(&["REPLACE", "DB", ""])],
            // The encoding Redis names depends on the value's history: which writes made it,
            // under which limits (see 156).
            12 => vec![s("OBJECT"), s("ENCODING"), k],
            13 => [vec![s("EXISTS")], self.keys(2)].concat(),
            14 => vec![s("RENAMENX"), k, self.key()],
            // GT and LT compare with absolute times only: two relative ones set in the same
            // millisecond tie in one run and not in the other.
            15 => match self.below(2) {
                0 => vec![s("EXPIRE"), k, self.pick(&["1000", "-1", "x"]), self.pick(&["NX", "XX", ""])],
                _ => vec![
                    s("PEXPIREAT"),
                    k,
                    self.pick(&["9999999999990", "9999999999999", "-1"]),
                    self.pick(&["NX", "XX", "GT", "LT", ""]),
                ],
            },
            16 => vec![s("PERSIST"), k],
            // Lists.
            17..=19 => {
                let mut r = vec![self.pick(&["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), k];
                let n = self.count();
                self.many(&mut r, n, |f| vec![f.member()]);
                r
            }
            20 => vec![self.pick(&["LPOP", "RPOP"]), k],
            21 => vec![self.pick(&["LPOP", "RPOP"]), k, self.int()],
            22 => vec![s("LRANGE"), k, self.int(), self.int()],
            23 => vec![s("LINDEX"), k, self.int()],
            24 => vec![s("LSET"), k, self.int(), self.member()],
            25 => vec![s("LINSERT"), k, self.pick(&["BEFORE", "AFTER", "UP"]), self.member(), self.member()],
            26 => vec![s("LREM"), k, self.int(), self.member()],
            27 => vec![s("LTRIM"), k, self.int(), self.int()],
            28 => {
                let mut r = vec![s("LPOS"), k, self.member()];
                for opt in ["RANK", "COUNT", "MAXLEN"] {
                    if self.below(2) == 0 {
                        r.extend([s(opt), self.int()]);
                    }
                }
                r
            }
            29 => vec![s("LMOVE"), k, self.key(), self.end(), self.end()],
            30 => vec![s("RPOPLPUSH"), k, self.key()],
            31 => {
                let n = 1 + self.below(2);
                [vec![s("LMPOP"), n.to_string()], self.keys(n), vec![self.end(), s("COUNT"), self.int()]]
                    .concat()
            }
            32 => vec![s("LLEN"), k],
            // Hashes.
            33..=35 => {
                let mut r = vec![self.pick(&["HSET", "HMSET"]), k];
                let n = self.count();
                self.many(&mut r, n, |f| vec![f.member(), f.member()]);
                r
            }
            36 => vec![s("HSETNX"), k, self.member(), self.member()],
            37 => vec![s("HGET"), k, self.member()],
            38 => vec![s("HMGET"), k, self.member(), self.member()],
            39 => vec![s("HDEL"), k, self.member(), self.member()],
            40 => vec![self.pick(&["HLEN", "HKEYS", "HVALS", "HGETALL"]), k],
            41 => vec![s("HSTRLEN"), k, self.member()],
            42 => vec![s("HEXISTS"), k, self.member()],
            43 => vec![s("HINCRBY"), k, self.member(), self.int()],
            44 => vec![s("HINCRBYFLOAT"), k, self.member(), self.float()],
            // Sets.
            45..=47 => {
                let mut r = vec![s("SADD"), k];
                let n = self.count();
                self.many(&mut r, n, |f| vec![f.member()]);
                r
            }
            48 => vec![s("SREM"), k, self.member(), self.member()],
            49 => vec![self.pick(&["SCARD", "SMEMBERS"]), k],
            50 => vec![s("SISMEMBER"), k, self.member()],
            51 => vec![s("SMISMEMBER"), k, self.member(), self.member()],
            52 => vec![s("SMOVE"), k, self.key(), self.member()],
            53 => [vec![self.pick(&["SINTER", "SUNION", "SDIFF"])], self.some_keys(1, 3)].concat(),
            54 => [vec![self.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"])], self.some_keys(2, 2)]
                .concat(),
            55 => {
                let n = 1 + self.below(3);
                let mut r = [vec![s("SINTERCARD"), n.to_string()], self.keys(n)].concat();
                if self.below(2) == 0 {
                    r.extend([s("LIMIT"), self.int()]);
                }
                r
            }
            // Sorted sets.
            56..=60 => {
                let mut r = vec![s("ZADD"), k];
                for opt in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
                    if self.below(8) == 0 {
                        r.push(s(opt));
                    }
                }
                let n = self.count();
                self.many(&mut r, n, |f| vec![f.float(), f.member()]);
                r
            }
            61 => vec![s("ZINCRBY"), k, self.float(), self.member()],
            62 => vec![s("ZREM"), k, self.member(), self.member()],
            63 => vec![s("ZCARD"), k],
            64 => vec![s("ZCOUNT"), k, self.score_bound(), self.score_bound()],
            65 => vec![s("ZLEXCOUNT"), self.lex_key(), self.lex_bound(), self.lex_bound()],
            66 => vec![s("ZSCORE"), k, self.member()],
            67 => vec![s("ZMSCORE"), k, self.member(), self.member()],
            68 => vec![self.pick(&["ZRANK", "ZREVRANK"]), k, self.member()],
            69..=72 => {
                let mut r = vec![s("ZRANGE")];
                match self.below(3) {
                    0 => r.extend([k, self.int(), self.int()]),
                    1 => r.extend([k, self.score_bound(), self.score_bound(), s("BYSCORE")]),
                    _ => r.extend([self.lex_key(), self.lex_bound(), self.lex_bound(), s("BYLEX")]),
                }
                if self.below(3) == 0 {
                    r.push(s("REV"));
                }
                if self.below(3) == 0 {
                    r.extend([s("LIMIT"), self.int(), self.int()]);
                }
                if self.below(2) == 0 {
                    r.push(s("WITHSCORES"));
                }
                r
            }
            73 => vec![s("ZRANGESTORE"), self.key(), k, self.int(), self.int()],
            74 => vec![
                self.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]),
                k,
                self.score_bound(),
                self.score_bound(),
            ],
            75 => {
                vec![
                    self.pick(&["ZRANGEBYLEX", "ZREVRANGEBYLEX"]),
                    self.lex_key(),
                    self.lex_bound(),
                    self.lex_bound(),
                ]
            }
            76 => vec![s("ZREVRANGE"), k, self.int(), self.int(), s("WITHSCORES")],
            77 => vec![s("ZREMRANGEBYRANK"), k, self.int(), self.int()],
            78 => vec![s("ZREMRANGEBYSCORE"), k, self.score_bound(), self.score_bound()],
            79 => vec![s("ZREMRANGEBYLEX"), self.lex_key(), self.lex_bound(), self.lex_bound()],
            80 => vec![self.pick(&["ZPOPMIN", "ZPOPMAX"]), k, self.int()],
            81 => {
                let n = 1 + self.below(2);
                [
                    vec![s("ZMPOP"), n.to_string()],
                    self.keys(n),
                    vec![self.pick(&["MIN", "MAX"]), s("COUNT"), self.int()],
                ]
                .concat()
            }
            82..=84 => {
                let n = 1 + self.below(3);
                let store = self.below(2) == 0;
                let op = self.pick(&["UNION", "INTER", "DIFF"]);
                let mut r = if store {
                    vec![format!("Z{op}STORE"), self.key(), n.to_string()]
                } else {
                    vec![format!("Z{op}"), n.to_string()]
                };
                r.extend(self.keys(n));
                if op != "DIFF" && self.below(2) == 0 {
                    r.push(s("WEIGHTS"));
                    self.many(&mut r, n, |f| vec![f.float()]);
                }
                if op != "DIFF" && self.below(2) == 0 {
                    r.extend([s("AGGREGATE"), self.pick(&["SUM", "MIN", "MAX", "AVG"])]);
                }
                if !store && self.below(2) == 0 {
                    r.push(s("WITHSCORES"));
                }
                r
            }
            85 => {
                let n = 1 + self.below(3);
                [vec![s("ZINTERCARD"), n.to_string()], self.keys(n), vec![s("LIMIT"), self.int()]].concat()
            }
            86 => vec![s("ZRANGE"), k, s("0"), s("-1"), s("WITHSCORES")],
            87 => vec![s("LRANGE"), k, s("0"), s("-1")],
            88 => vec![s("MSET"), k, self.member(), self.key(), self.member()],
            89 => [vec![s("MGET")], self.keys(3)].concat(),
            90 => vec![s("GETDEL"), k],
            91 => vec![s("SETNX"), k, self.member()],
            92 => vec![s("SET"), k, self.member(), self.pick(&["NX", "XX", "GET", "KEEPTTL"])],
            93 => vec![s("HGETALL"), k],
            94 => vec![s("SMEMBERS"), k],
            95 => vec![s("DBSIZE")],
            96 => vec![s("LPOS"), k, self.member(), s("COUNT"), s("0")],
            97 => {
                let mut r = vec![s("ZADD"), self.lex_key()];
                let n = self.count();
                // Never an empty member: dropping it (below) would pair a member with a score.
                self.many(&mut r, n, |f| vec!["0".to_string(), format!("{}_", f.member())]);
                r
            }
            98 => vec![self.pick(&["ZREM", "ZRANK", "ZSCORE"]), self.lex_key(), self.member()],
            99 => vec![
                s("GETEX"),
                k,
                self.pick(&["PERSIST", "EX", "PX", "EXAT", ""]),
                self.pick(&["100000", "0", "-1", "x"]),
            ],
            100 => vec![
                self.pick(&["SETEX", "PSETEX"]),
                k,
                self.pick(&["100000", "0", "-5", "x"]),
                self.member(),
            ],
            101 => vec![
                self.pick(&["PEXPIRE", "EXPIREAT", "PEXPIREAT"]),
                k,
                self.pick(&["9999999999999", "-1", "0"]),
            ],
            102 => vec![self.pick(&["HRANDFIELD", "SRANDMEMBER", "ZRANDMEMBER"]), k, s("0")],
            103 => vec![s("SPOP"), k, s("0")],
            104 => [vec![self.pick(&["UNLINK", "TOUCH"])], self.some_keys(1, 3)].concat(),
            105 => vec![s("MSETNX"), k, self.member(), self.key(), self.member()],
            106 => vec![s("GETSET"), k, self.member()],
            107 => vec![self.pick(&["INCR", "DECR"]), k],
            108 => vec![s("DECRBY"), k, self.int()],
            109 => [vec![s("BLPOP")], self.some_keys(1, 2), vec![self.pick(&["0.01", "-1", "x"])]].concat(),
            110 => vec![s("BLMOVE"), k, self.key(), self.end(), self.end(), s("0.01")],
            111 => {
                [vec![self.pick(&["BZPOPMIN", "BZPOPMAX"])], self.some_keys(1, 2), vec![s("0.01")]].concat()
            }
            112 => vec![s("ZADD"), k, self.pick(&["GT", "LT"]), s("INCR"), self.float(), self.member()],
            113 => vec![s("RENAME"), k.clone(), k],
            114 => vec![s("COPY"), k.clone(), k],
            115 => vec![s("LPOS"), k, self.member(), s("RANK"), self.int(), s("COUNT"), self.int()],
            116 => vec![s("SETRANGE"), k, self.pick(&["536870912", "-1", "10", "1000"]), self.member()],
            117 => vec![self.pick(&["SINTERCARD", "ZINTERCARD"]), self.int(), self.key()],
            118 => vec![s("HSTRLEN"), k, self.member()],
            // Databases: the same keys in another one, and copies between them.
            119 | 120 => vec![s("SELECT"), self.pick(&["0", "0", "1", "2", "16", "-1", "x"])],
            121 => vec![
                s("COPY"),
                k,
                self.key(),
                s("DB"),
                self.pick(&["0", "1", "x", "99"]),
                self.pick(&["REPLACE", ""]),
            ],
            122 => vec![s("KEYS"), self.pick(&["*", "k*", "{t}?", "*[ab]", "lex"])],
            // Rarely: an empty database keeps containers from growing.
            123 => vec![s(if self.below(8) == 0 { "FLUSHDB" } else { "DBSIZE" })],
            124 => vec![s("ECHO"), self.member()],
            // Bitmaps: bits of strings, at offsets within and past a value, bad ones too.
            125 => vec![s("SETBIT"), k, self.bit_offset(), self.pick(&["0", "1", "1", "2", "x", "-1"])],
            126 => vec![s("GETBIT"), k, self.bit_offset()],
            127 => {
                let mut r = vec![s("BITCOUNT"), k];
                if self.below(4) != 0 {
                    r.extend([self.int(), self.int()]);
                    if self.below(2) == 0 {
                        r.push(self.pick(&["BIT", "BYTE", "bit", "WORD"]));
                    }
                }
                r
            }
            128 => {
                let mut r = vec![s("BITPOS"), k, self.pick(&["0", "1", "1", "2", "x"])];
                for _ in 0..self.below(4) {
                    r.push(self.int());
                }
                if r.len() == 6 {
                    r[5] = self.pick(&["BIT", "BYTE", "bit", "WORD"]);
                }
                r
            }
            129 => [
                vec![s("BITOP"), self.pick(&["AND", "OR", "XOR", "NOT", "not", "NAND"]), self.key()],
                self.some_keys(1, 3),
            ]
            .concat(),
            130 | 131 => {
                let mut r = vec![s(if self.below(4) == 0 { "BITFIELD_RO" } else { "BITFIELD" }), k];
                for _ in 0..1 + self.below(4) {
                    match self.below(9) {
                        0..=2 => r.extend([s("GET"), self.field_type(), self.field_offset()]),
                        3 | 4 => r.extend([s("SET"), self.field_type(), self.field_offset(), self.int()]),
                        5 | 6 => r.extend([s("INCRBY"), self.field_type(), self.field_offset(), self.int()]),
                        7 => r.extend([s("OVERFLOW"), self.pick(&["WRAP", "SAT", "FAIL", "fail", "NONE"])]),
                        _ => r.push(self.pick(&["GET", "BAD"])),
                    }
                }
                r
            }
            132 => {
                let mut r = vec![s("LCS"), k, self.key()];
                for _ in 0..self.below(4) {
                    match self.below(6) {
                        0 => r.push(s("LEN")),
                        1 | 2 => r.push(s("IDX")),
                        3 => r.extend([s("MINMATCHLEN"), self.int()]),
                        4 => r.push(s("WITHMATCHLEN")),
                        _ => r.push(self.pick(&["MINMATCHLEN", "LONGEST"])),
                    }
                }
                r
            }
            133 => vec![s("SUBSTR"), k, self.int(), self.int()],
            134 => vec![s("MOVE"), k, self.pick(&["0", "1", "1", "2", "16", "-1", "x", "4294967297"])],
            // Streams, with explicit IDs only (`*` takes the time, which differs between runs);
            // nothing that shows an idle time or a delivery time.
            135 => {
                let mut r = vec![s("XADD"), k];
                if self.below(4) == 0 {
                    r.push(s("NOMKSTREAM"));
                }
                if self.below(3) == 0 {
                    r.push(self.pick(&["MAXLEN", "MINID", "maxlen"]));
                    r.push(self.pick(&["~", "=", ""]));
                    r.push(self.pick(&["0", "1", "2", "5", "3-0", "-1", "x"]));
                    if self.below(4) == 0 {
                        r.extend([s("LIMIT"), self.pick(&["0", "1", "10", "-1"])]);
                    }
                }
                r.push(self.stream_id());
                for _ in 0..1 + self.below(2) {
                    r.extend([self.pick(&["f", "g", "h"]), self.member()]);
                }
                if self.below(20) == 0 {
                    r.pop();
                }
                r
            }
            136 => vec![
                self.pick(&["XRANGE", "XREVRANGE"]),
                k,
                self.pick(&["-", "1", "(1-1", "2-0", "+", "x", "("]),
                self.pick(&["+", "5", "(5-5", "2", "-", "(0-0"]),
                self.pick(&["COUNT", "", ""]),
                self.pick(&["1", "2", "0", "-1", "x"]),
            ],
            137 => match self.below(2) {
                0 => vec![s("XLEN"), k],
                _ => vec![s("XDEL"), k, self.stream_id(), self.stream_id()],
            },
            138 => vec![
                s("XTRIM"),
                k,
                self.pick(&["MAXLEN", "MINID", "FOO"]),
                self.pick(&["~", "=", ""]),
                self.pick(&["0", "1", "2", "3-0", "-1"]),
                self.pick(&["LIMIT", "", "", ""]),
                self.pick(&["0", "1", "100"]),
            ],
            139 => match self.below(5) {
                0 => vec![
                    s("XGROUP"),
                    s("CREATE"),
                    k,
                    self.group(),
                    self.pick(&["0", "$", "2-0", "x"]),
                    self.pick(&["MKSTREAM", "", ""]),
                    self.pick(&["ENTRIESREAD", "", ""]),
                    self.pick(&["0", "2", "-1", "-2"]),
                ],
                1 => vec![s("XGROUP"), s("SETID"), k, self.group(), self.pick(&["0", "$", "1-1", "+", "-"])],
                2 => vec![s("XGROUP"), s("DESTROY"), k, self.group()],
                3 => vec![s("XGROUP"), s("CREATECONSUMER"), k, self.group(), self.consumer()],
                _ => vec![s("XGROUP"), s("DELCONSUMER"), k, self.group(), self.consumer()],
            },
            140 => {
                let mut r = vec![s("XREADGROUP"), s("GROUP"), self.group(), self.consumer()];
                if self.below(2) == 0 {
                    r.extend([s("COUNT"), self.pick(&["1", "2", "0"])]);
                }
                if self.below(3) == 0 {
                    r.push(s("NOACK"));
                }
                r.extend([s("STREAMS"), k]);
                let two = self.below(3) == 0;
                if two {
                    r.push(self.key());
                }
                r.push(self.pick(&[">", ">", "0", "1-1", "$"]));
                if two {
                    r.push(self.pick(&[">", "0"]));
                }
                r
            }
            141 => {
                let mut r = vec![s("XREAD")];
                if self.below(2) == 0 {
                    r.extend([s("COUNT"), self.pick(&["1", "2", "0"])]);
                }
                r.extend([s("STREAMS"), k, self.key()]);
                r.push(self.pick(&["0", "1-1", "$", "2"]));
                r.push(self.pick(&["0", "(", "1"]));
                r
            }
            142 => vec![s("XACK"), k, self.group(), self.stream_id(), self.stream_id()],
            143 => vec![s("XPENDING"), k, self.group()],
            144 => {
                let mut r = vec![s("XCLAIM"), k, self.group(), self.consumer(), self.pick(&["0", "0", "x"])];
                r.push(self.stream_id());
                r.push(self.pick(&["FORCE", "JUSTID", "RETRYCOUNT", "LASTID", "", "FOO"]));
                r.push(self.pick(&["JUSTID", "3", "2-0", ""]));
                r
            }
            145 => vec![
                s("XAUTOCLAIM"),
                k,
                self.group(),
                self.consumer(),
                s("0"),
                self.pick(&["0", "-", "(1-1", "x"]),
                self.pick(&["COUNT", "JUSTID", ""]),
                self.pick(&["1", "2", "0", ""]),
            ],
            146 => match self.below(3) {
                0 => vec![s("XINFO"), s("STREAM"), k],
                1 => vec![s("XINFO"), s("GROUPS"), k],
                _ => vec![
                    s("XSETID"),
                    k,
                    self.pick(&["9-9", "1-1", "0-0", "x"]),
                    self.pick(&["ENTRIESADDED", "MAXDELETEDID", ""]),
                    self.pick(&["5", "1-0", "-1"]),
                ],
            },
            // HyperLogLog: its bytes show through GET, so every register write must be Redis's.
            147 => {
                let mut r = vec![s("PFADD"), k];
                let n = if self.below(4) == 0 { 40 } else { self.below(4) };
                (0..n).for_each(|_| r.push(format!("e{}", self.below(5000))));
                r
            }
            148 => [vec![s("PFCOUNT")], self.some_keys(1, 3)].concat(),
            149 => [vec![s("PFMERGE")], self.some_keys(1, 3)].concat(),
            // Geo, over any sorted set: scores that are no geohashes decode as Redis's do.
            150 => {
                let mut r = vec![s("GEOADD"), k];
                while self.below(3) == 0 {
                    r.push(self.pick(&["NX", "XX", "CH"]));
                }
                for _ in 0..1 + self.below(3) {
                    r.extend([self.longitude(), self.latitude(), self.member()]);
                }
                r
            }
            151 => {
                let mut r = vec![self.pick(&["GEOPOS", "GEOHASH"]), k];
                (0..self.below(4)).for_each(|_| r.push(self.member()));
                r
            }
            152 => vec![
                s("GEODIST"),
                k,
                self.member(),
                self.member(),
                self.pick(&["m", "KM", "mi", "ft", "", "x"]),
            ],
            153 => {
                let mut r = match self.below(4) {
                    0 => vec![s("GEOSEARCHSTORE"), self.key(), k],
                    1 => {
                        vec![s("GEORADIUS"), k, self.longitude(), self.latitude(), self.radius(), self.unit()]
                    }
                    2 => vec![s("GEORADIUSBYMEMBER"), k, self.member(), self.radius(), self.unit()],
                    _ => vec![s("GEOSEARCH"), k],
                };
                if r[0].starts_with("GEOSEARCH") {
                    if self.below(2) == 0 {
                        r.extend([s("FROMLONLAT"), self.longitude(), self.latitude()]);
                    } else {
                        r.extend([s("FROMMEMBER"), self.member()]);
                    }
                    if self.below(2) == 0 {
                        r.extend([s("BYRADIUS"), self.radius(), self.unit()]);
                    } else {
                        r.extend([s("BYBOX"), self.radius(), self.radius(), self.unit()]);
                    }
                }
                for _ in 0..self.below(4) {
                    match self.below(6) {
                        0 => r.push(self.pick(&["WITHDIST", "WITHHASH", "WITHCOORD"])),
                        1 => r.push(self.pick(&["ASC", "DESC", "ANY"])),
                        2 | 3 => r.extend([s("COUNT"), self.pick(&["1", "2", "5", "0"])]),
                        4 if r[0] == "GEOSEARCHSTORE" => r.push(s("STOREDIST")),
                        _ if r[0].starts_with("GEORADIUS") => {
                            r.extend([self.pick(&["STORE", "STOREDIST"]), self.key()])
                        }
                        _ => r.push(s("ASC")),
                    }
                }
                r
            }
            154 if self.below(8) == 0 => {
                vec![s("SWAPDB"), self.pick(&["0", "1", "2"]), self.pick(&["0", "1", "x"])]
            }
            154 => vec![s("ZRANGE"), k, s("0"), s("-1"), s("WITHSCORES")],
            // SORT, always ALPHA: Redis's numeric SORT reads `errno` without clearing it, so an
            // earlier overflow in the same pipeline (a `1e400`) fails it at random; and never
            // BY, whose ties among a set's members come out in Redis's hash-table order. The
            // focused `sort_matches_redis_server` covers numeric sorts and BY.
            155 => {
                let mut r = vec![self.pick(&["SORT", "SORT", "SORT_RO"]), k, s("ALPHA")];
                for _ in 0..self.below(4) {
                    match self.below(6) {
                        0 => r.push(self.pick(&["ASC", "DESC"])),
                        1 => r.extend([s("LIMIT"), self.int(), self.int()]),
                        2 | 3 => r.extend([s("GET"), self.pick(&["#", "k*", "*", "{t}*->b", "nostar"])]),
                        _ => r.extend([s("STORE"), self.key()]),
                    }
                }
                r
            }
            156 => vec![s("OBJECT"), s("ENCODING"), k],
            // The compact encodings' limits, low enough that the fuzz's values cross them both
            // ways: values already made keep their encoding, new writes decide by the new ones.
            157 => vec![
                s("CONFIG"),
                s("SET"),
                s("hash-max-listpack-entries"),
                self.pick(&["2", "8", "512"]),
                s("hash-max-listpack-value"),
                self.pick(&["4", "64"]),
                s("set-max-intset-entries"),
                self.pick(&["2", "8", "512"]),
                s("zset-max-listpack-entries"),
                self.pick(&["2", "8", "128"]),
                s("zset-max-listpack-value"),
                self.pick(&["4", "64"]),
            ],
            _ => vec![s("EXISTS"), k],
        };
        r.retain(|a| !a.is_empty() || self.below(4) == 0);
        r
    }
}
