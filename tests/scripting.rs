//! Lua scripts against the real binary: EVAL and its family answer byte for byte as Debian's
//! redis-server does (RESP2 and RESP3 callers, plain and TLS), scripts stay atomic across
//! shards, and a script's keys decide where it runs without changing what it does.

mod common;

use std::time::{Duration, Instant};

use common::{key_on, resp, Mode, Opts, RedisServer, Server, MODES};

/// A request as its arguments.
fn req(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// EVAL of `body` with `keys` and `argv`.
fn eval(body: &str, keys: &[&str], argv: &[&str]) -> Vec<Vec<u8>> {
    let n = keys.len().to_string();
    let mut args = vec!["EVAL", body, n.as_str()];
    args.extend_from_slice(keys);
    args.extend_from_slice(argv);
    req(&args)
}

/// Sends every request in order, returning each reply's bytes.
fn replies(raw: &mut common::Raw, requests: &[Vec<Vec<u8>>], resp3: bool) -> Vec<Vec<u8>> {
    if resp3 {
        raw.request(&[b"HELLO", b"3"]);
    }
    requests
        .iter()
        .map(|q| {
            let args: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
            raw.request(&args)
        })
        .collect()
}

/// Runs `requests` on redis-server and on `server` (plain and TLS, RESP2 and RESP3), and
/// fails with every reply that differs.
fn compare(server: &Server, requests: &[Vec<Vec<u8>>]) {
    let reference = RedisServer::start();
    for resp3 in [false, true] {
        let expected = replies(&mut reference.raw(), requests, resp3);
        for mode in MODES {
            let got = replies(&mut server.raw(mode), requests, resp3);
            let diffs: Vec<String> = requests
                .iter()
                .zip(expected.iter().zip(&got))
                .filter(|(_, (e, g))| e != g)
                .map(|(q, (e, g))| {
                    let q: Vec<String> = q.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
                    format!(
                        "{q:?}\n  redis:    {:?}\n  ferrokey: {:?}",
                        String::from_utf8_lossy(e),
                        String::from_utf8_lossy(g)
                    )
                })
                .collect();
            assert!(
                diffs.is_empty(),
                "{mode:?} resp3={resp3}: {} differences:\n{}",
                diffs.len(),
                diffs.join("\n")
            );
        }
    }
}

/// Scripts over every reply type and error path, on keys of both shards.
fn script_requests() -> Vec<Vec<Vec<u8>>> {
    let (a, b) = (key_on("a", 0, 2), key_on("b", 1, 2));
    let (a, b) = (a.as_str(), b.as_str());
    let mut q = vec![req(&["FLUSHALL"]), req(&["SCRIPT", "FLUSH"]), req(&["FUNCTION", "FLUSH"])];
    let plain: &[&str] = &[
        "return 1",
        "return 'str'",
        "return 3.99",
        "return -3.99",
        "return true",
        "return false",
        "return nil",
        "return {1, 2, 3, 'x', {4, 5, {6}}}",
        "return {1, nil, 3}",
        "return {}",
        "return {err='My Error'}",
        "return {err='-dash'}",
        "return {ok='FINE'}",
        "return {ok='multi\\r\\nline'}",
        "return redis.error_reply('MY_CODE custom message')",
        "return redis.error_reply('plain')",
        "return redis.error_reply('')",
        "return redis.error_reply(1)",
        "return redis.status_reply('STATUS')",
        "return {double=3.14}",
        "return {double=-0.5}",
        "return {map={a=1}}",
        "return {set={x=true}}",
        "return redis.sha1hex('')",
        "return redis.sha1hex('hello')",
        "return redis.sha1hex()",
        "return type(redis.REDIS_VERSION)",
        "return redis.replicate_commands()",
        "return redis.breakpoint()",
        "return redis.setresp(4)",
        "return redis.setresp()",
        "return redis.set_repl(redis.REPL_ALL)",
        "return redis.set_repl(9)",
        "return redis.log(redis.LOG_WARNING, 'from a script')",
        "return redis.log(9, 'x')",
        "return redis.log(1)",
        "error('raised')",
        "error({err='TABLE raised'})",
        "a = 10",
        "return undefined_global",
        "return loadfile",
        "return dofile",
        "return print",
        "return os",
        "return io",
        "return debug",
        "string.rep = nil",
        "redis.call = nil",
        "return string.rep('ab', 3)",
        "return ('x'):rep(2)",
        "return tostring(1.5) .. tostring(10)",
        "return tonumber('0x10')",
        "return table.concat({1, 2, 3}, ',')",
        "return math.floor(2.5)",
        "return select('#', 1, 2, 3)",
        "return unpack({1, 2})",
        "return _G == _G",
        "return type(getfenv(1))",
        "return 1 +",
        "return redis.call()",
        "return redis.call('nosuchcommand')",
        "return redis.call('get')",
        "return redis.call('get', {})",
        "return redis.call('get', nil)",
        "return redis.call('client', 'nosuchsub')",
        "return redis.call('blpop', 'l', 0)",
        "return redis.call('multi')",
        "return redis.call('eval', 'return 1', 0)",
        "return redis.call('subscribe', 'c')",
        "return redis.pcall('nosuchcommand')",
        "return pcall(redis.call, 'nosuchcommand')",
        "local ok, e = pcall(redis.call, 'nosuchcommand') return e",
        "local ok, e = pcall(error, {err='X y'}) return e",
        "local ok, e = pcall(error, 'plain') return e",
        "local ok, e = pcall(function() local x = nil + 1 end) return {tostring(ok), e}",
        "return xpcall(function() error({err='Z'}) end, function(e) return type(e) end)",
        "return redis.call('ping')",
        "return redis.call('echo', 'hi')",
        "return redis.call('select', 1)",
        "redis.call('select', 9) return redis.call('set', 'in9', 'x')",
        "return redis.call('exists', 'in9')",
        "return #redis.call('time')",
        "return redis.call('dbsize')",
        "return redis.call('blmpop', 0, 1, 'nolist', 'left')",
        // The libraries Redis bundles.
        "return {bit.tobit(0xffffffff), bit.tohex(65535), bit.tohex(-1, -4), bit.bswap(0x12345678)}",
        "return {bit.rol(0x12345678, 12), bit.band(0xff, 0x0f, 3), bit.bor(1.7, 2), bit.bxor(-1, 5)}",
        "return {bit.lshift(1, 31), bit.arshift(-256, 4), bit.rshift(-256, 4), bit.tobit(2^53 + 3)}",
        "return bit.band()",
        "return bit.band('x')",
        "return {struct.pack('>I2', 258), struct.size('i'), struct.size('>lTd')}",
        "return {struct.unpack('<h', string.char(255, 255))}",
        "return {struct.unpack('>i4d', struct.pack('>i4d', -5, 2.5))}",
        "return {struct.unpack('Bc0', string.char(2) .. 'abc')}",
        "return struct.pack('z')",
        "return struct.unpack('i4', 'ab')",
        "return {cjson.encode({1, 2, 3, 'a'}), cjson.encode({a = 1}), cjson.encode({}), cjson.encode('a/b\\\"c')}",
        "return {cjson.encode(3.14159265358979), cjson.encode({[1] = 1, [3] = 3}), cjson.encode(cjson.null)}",
        "return cjson.encode({[1] = 1, [30] = 3})",
        "return cjson.encode(function() end)",
        "local t = {} t[1] = t return cjson.encode(t)",
        "return cjson.decode('{\\\"a\\\":[1,2,{\\\"b\\\":\\\"c\\\"}]}').a[3].b",
        "return cjson.decode('[1,2')",
        "return cjson.decode('nul')",
        "return cjson.decode(string.rep('[', 1100))",
        "return {cmsgpack.pack(1, 'a', {1, 2}, {a = 1}, true, 1.5, -1, 2^40)}",
        "return {cmsgpack.unpack(cmsgpack.pack(1, 'a', {1, 2}, true, 1.5, -1, 2^40))}",
        "return cmsgpack.unpack('')",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}",
    ];
    for body in plain {
        q.push(eval(body, &[], &[]));
    }
    let keyed: &[(&str, &[&str], &[&str])] = &[
        ("return redis.call('set', KEYS[1], ARGV[1])", &[a], &["va"]),
        ("return redis.call('get', KEYS[1])", &[a], &[]),
        ("return redis.call('incr', KEYS[1])", &[a], &[]),
        ("return redis.pcall('incr', KEYS[1])", &[a], &[]),
        ("local v = redis.call('incr', KEYS[1]) return v", &[a], &[]),
        ("return redis.call('set', KEYS[1], 'x', 'bad')", &[a], &[]),
        ("return redis.call('set', KEYS[1], 10)", &[b], &[]),
        ("return redis.call('incrbyfloat', KEYS[1], 1.5)", &[b], &[]),
        ("return redis.call('incrbyfloat', KEYS[1], 0.1)", &[b], &[]),
        // Numbers as arguments: Redis writes them with `%.17g`.
        ("redis.call('set', KEYS[1], 1e17) return redis.call('get', KEYS[1])", &[a], &[]),
        ("redis.call('set', KEYS[1], 1e20) return redis.call('get', KEYS[1])", &[a], &[]),
        ("redis.call('set', KEYS[1], -(0/1)) return redis.call('get', KEYS[1])", &[a], &[]),
        ("redis.call('set', KEYS[1], 2^53 + 1) return redis.call('get', KEYS[1])", &[b], &[]),
        ("redis.call('set', KEYS[1], -123456789.125) return redis.call('get', KEYS[1])", &[b], &[]),
        ("redis.call('set', KEYS[1], 1/0) return redis.call('get', KEYS[1])", &[b], &[]),
        ("redis.call('set', KEYS[1], 0/0) return redis.call('get', KEYS[1])", &[b], &[]),
        ("redis.call('set', KEYS[1], 0/0) return redis.call('get', KEYS[1])", &[b], &[]),
        // Numbers a script returns: Redis's `(long long)` cast on x86-64.
        ("return 2^63", &[], &[]),
        ("return -2^63 - 4096", &[], &[]),
        ("return 0/0", &[], &[]),
        ("return {1e300, -1e300, 2^62}", &[], &[]),
        ("return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], #KEYS, #ARGV}", &[a, b], &["x", "y"]),
        ("return redis.call('mget', KEYS[1], KEYS[2], 'nokey')", &[a, b], &[]),
        ("return redis.call('mset', KEYS[1], 1, KEYS[2], 2)", &[a, b], &[]),
        ("redis.call('del', KEYS[1]) return redis.call('rpush', KEYS[1], 1, 2, 3)", &[a], &[]),
        ("return redis.call('lrange', KEYS[1], 0, -1)", &[a], &[]),
        ("return redis.call('lpop', KEYS[1], 2)", &[a], &[]),
        ("return redis.call('lpop', 'nolist')", &[], &[]),
        ("return redis.call('lpop', 'nolist', 2)", &[], &[]),
        ("redis.call('del', KEYS[1]) return redis.call('hset', KEYS[1], 'f', 'v', 'g', 'w')", &[b], &[]),
        ("return redis.call('hgetall', KEYS[1])", &[b], &[]),
        ("redis.setresp(3) return redis.call('hgetall', KEYS[1])", &[b], &[]),
        ("redis.setresp(3) return redis.call('hget', KEYS[1], 'nofield')", &[b], &[]),
        ("return redis.call('hget', KEYS[1], 'nofield')", &[b], &[]),
        ("return redis.call('zadd', 'z', 1.5, 'm', 2, 'n')", &[], &[]),
        ("return redis.call('zscore', 'z', 'm')", &[], &[]),
        ("redis.setresp(3) return redis.call('zscore', 'z', 'm')", &[], &[]),
        ("redis.setresp(3) return redis.call('zrange', 'z', 0, -1, 'withscores')", &[], &[]),
        ("return redis.call('zrange', 'z', 0, -1, 'withscores')", &[], &[]),
        ("redis.setresp(3) return redis.call('smembers', 'noset')", &[], &[]),
        ("redis.setresp(3) return redis.call('sadd', 's', 'only')", &[], &[]),
        ("redis.setresp(3) return redis.call('smembers', 's')", &[], &[]),
        ("redis.setresp(3) return redis.call('sismember', 's', 'only')", &[], &[]),
        ("redis.setresp(3) return redis.call('get', 'nokey')", &[], &[]),
        ("redis.setresp(3) return {redis.call('get', 'nokey'), 1}", &[], &[]),
        ("redis.setresp(3) return true", &[], &[]),
        ("redis.setresp(3) return false", &[], &[]),
        ("return redis.call('type', KEYS[1])", &[b], &[]),
        ("return redis.call('object', 'encoding', KEYS[1])", &[b], &[]),
        ("return redis.call('expire', KEYS[1], 100)", &[b], &[]),
        ("return redis.call('ttl', KEYS[1])", &[b], &[]),
        ("return redis.call('rename', KEYS[1], KEYS[2])", &[b, a], &[]),
        ("return redis.call('exists', KEYS[1], KEYS[2])", &[a, b], &[]),
        // redis.call inside xpcall, on both shards (a run holding every shard yields there).
        (
            "return {xpcall(function() return redis.call('incr', KEYS[1]) end, function(e) return e end)}",
            &[a, b],
            &[],
        ),
        (
            "return {xpcall(function() return redis.call('nosuch') end, function(e) return type(e) end)}",
            &[a, b],
            &[],
        ),
        (
            "return {xpcall(function() return redis.call('incr', KEYS[2]) end, function(e) return e end)}",
            &[a, b],
            &[],
        ),
        ("return {xpcall(function() error('x') end, function(e) error('y') end)}", &[a, b], &[]),
        // -0 keeps its sign, as an argument and as a double (mlua reads integral numbers as
        // integers).
        ("redis.call('set', KEYS[1], 0/-1) return redis.call('get', KEYS[1])", &[a, b], &[]),
        ("return {double = 0/-1}", &[a, b], &[]),
        ("redis.setresp(3) return {double = 0/-1}", &[a, b], &[]),
        // redis.call where a run holding every shard cannot yield to its task: inside a C
        // function's callback, a metamethod, a coroutine the script made.
        (
            "redis.call('set', KEYS[1], '2') redis.call('set', KEYS[2], '1') local t = {KEYS[1], KEYS[2]} \
             table.sort(t, function(x, y) return redis.call('get', x) < redis.call('get', y) end) return t",
            &[a, b],
            &[],
        ),
        ("return (string.gsub('k-k', 'k', function() return redis.call('incr', KEYS[2]) end))", &[a, b], &[]),
        (
            "local t = setmetatable({}, {__index = function(_, k) return redis.call('get', k) end}) \
             return {t[KEYS[1]], t[KEYS[2]]}",
            &[a, b],
            &[],
        ),
        (
            "local n = {} table.sort({KEYS[1], KEYS[2]}, function(x, y) \
             n[#n + 1] = redis.pcall('nosuch').err return x < y end) return n",
            &[a, b],
            &[],
        ),
        ("table.sort({KEYS[1], KEYS[2]}, function(x, y) return redis.call('nosuch') end)", &[a, b], &[]),
        (
            "local co = coroutine.create(function() return redis.call('incr', KEYS[2]) end) \
             return {coroutine.resume(co)}",
            &[a, b],
            &[],
        ),
        ("return {xpcall(function() return 1, 2 end, function(e) return e end)}", &[a, b], &[]),
        // A group of keys cut short is refused on the keys' shard too (the second run is there).
        ("return redis.call('msetnx', KEYS[1], 'a', KEYS[2])", &["{t}a", "{t}c"], &[]),
        ("return redis.call('msetnx', KEYS[1], 'a', KEYS[2])", &["{t}a", "{t}c"], &[]),
        ("return redis.call('mset', KEYS[1], 'a', KEYS[2])", &["{t}a", "{t}c"], &[]),
    ];
    for (body, keys, argv) in keyed {
        q.push(eval(body, keys, argv));
    }
    let load = "return {KEYS[1], ARGV[1]}";
    let sha = "2bc3a2e0aa7fdfcbec1ccba82b3b9b6d1ba3d3fc";
    q.extend([
        req(&["SCRIPT", "LOAD", load]),
        req(&["EVALSHA", sha, "1", "k", "v"]),
        req(&["EVALSHA", &sha.to_uppercase(), "1", "k", "v"]),
        req(&["EVALSHA_RO", sha, "1", "k", "v"]),
        req(&["SCRIPT", "EXISTS", sha, &sha.to_uppercase(), "0000000000000000000000000000000000000000"]),
        req(&["EVALSHA", "short", "0"]),
        req(&["EVALSHA", "0000000000000000000000000000000000000000", "0"]),
        req(&["SCRIPT", "LOAD", "return 1 +"]),
        req(&["SCRIPT", "LOAD", "#!python\nreturn 1"]),
        req(&["SCRIPT", "FLUSH", "bad"]),
        req(&["SCRIPT", "FLUSH", "ASYNC"]),
        req(&["SCRIPT", "EXISTS", sha]),
        req(&["EVALSHA", sha, "0"]),
        req(&["SCRIPT", "KILL"]),
        req(&["SCRIPT", "NOSUCH"]),
        req(&["SCRIPT", "LOAD"]),
        req(&["SCRIPT", "HELP"]),
        req(&["EVAL", "return 1", "-1"]),
        req(&["EVAL", "return 1", "3", "a"]),
        req(&["EVAL", "return 1", "x"]),
        req(&["EVAL", "return 1"]),
        req(&["EVAL_RO", "return redis.call('set', 'a', 'b')", "0"]),
        req(&["EVAL_RO", "return redis.call('get', 'a')", "0"]),
        req(&["EVAL_RO", "#!lua\nreturn 1", "0"]),
        req(&["EVAL_RO", "#!lua flags=no-writes\nreturn 1", "0"]),
        req(&["EVAL", "#!lua flags=no-writes\nreturn redis.call('set', 'a', 'b')", "0"]),
        req(&["EVAL", "#!lua flags=no-writes\nreturn redis.call('publish', 'c', 'm')", "0"]),
        req(&["EVAL", "#!lua flags=allow-oom,allow-stale\nreturn 2", "0"]),
        req(&["EVAL", "#!lua flags=nosuchflag\nreturn 2", "0"]),
        req(&["EVAL", "#!lua name=x\nreturn 2", "0"]),
        req(&["EVAL", "#!lua", "0"]),
        req(&["EVAL", "#!lua\n\nerror('line three')", "0"]),
        req(&["FUNCTION", "FLUSH"]),
        req(&["FUNCTION", "LOAD", "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return {keys[1], args[1]} end)"]),
        req(&["FCALL", "myfunc", "1", a, "x"]),
        req(&["FCALL_RO", "myfunc", "1", a, "x"]),
        req(&["FUNCTION", "LOAD", "#!lua name=mylib\nredis.register_function('other', function() return 1 end)"]),
        req(&["FUNCTION", "LOAD", "REPLACE", "#!lua name=mylib\nredis.register_function('myfunc', function(keys) return redis.call('incr', keys[1]) end)"]),
        req(&["FCALL", "myfunc", "1", "fcount"]),
        req(&["FCALL", "myfunc", "1", "fcount"]),
        req(&["FCALL", "nosuch", "0"]),
        req(&["FCALL", "myfunc", "x"]),
        req(&["FCALL", "myfunc", "-1"]),
        req(&["FCALL", "myfunc", "5", "a"]),
        req(&["FUNCTION", "LIST", "WITHCODE"]),
        req(&["FUNCTION", "LIST", "LIBRARYNAME"]),
        req(&["FUNCTION", "LIST", "BAD"]),
        req(&["FUNCTION", "STATS"]),
        req(&["FUNCTION", "DELETE", "mylib"]),
        req(&["FUNCTION", "LOAD", "#!lua name=ro\nredis.register_function{function_name='rofn', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}"]),
        req(&["FCALL_RO", "rofn", "1", "fcount"]),
        req(&["FUNCTION", "LIST"]),
        req(&["FUNCTION", "LOAD", "#!lua name=w\nredis.register_function{function_name='fw', callback=function(keys) return redis.call('set', keys[1], 'x') end}"]),
        req(&["FCALL_RO", "fw", "1", "k"]),
        req(&["FUNCTION", "LOAD", "#!lua name=e\nredis.register_function('fe', function() return redis.call('nosuch') end)"]),
        req(&["FCALL", "fe", "0"]),
        req(&["FCALL", "fe", "0"]),
        req(&["FUNCTION", "LOAD", "return 1"]),
        req(&["FUNCTION", "LOAD", "#!lua\nreturn 1"]),
        req(&["FUNCTION", "LOAD", "#!lua name=x y=z\nreturn 1"]),
        req(&["FUNCTION", "LOAD", "#!python name=x\nreturn 1"]),
        req(&["FUNCTION", "LOAD", "#!lua name=bad-name\nreturn 1"]),
        req(&["FUNCTION", "LOAD", "#!lua name=empty\nlocal x = 1"]),
        req(&["FUNCTION", "LOAD", "#!lua name=err\nerror('boom')"]),
        req(&["FUNCTION", "LOAD", "#!lua name=err2\nreturn 1 +"]),
        req(&["FUNCTION", "LOAD", "#!lua name=err3\nredis.register_function('a')"]),
        req(&["FUNCTION", "LOAD", "#!lua name=err5\nredis.register_function{function_name='x', callback=function() end, flags={'bad'}}"]),
        req(&["FUNCTION", "LOAD", "#!lua name=err6\nredis.register_function{name='x'}"]),
        req(&["FUNCTION", "LOAD", "#!lua name=err8\nredis.register_function('f', function() end) redis.register_function('f', function() end)"]),
        req(&["FUNCTION", "LOAD", "#!lua name=err9\nredis.register_function('fe', function() end)"]),
        req(&["FUNCTION", "LOAD", "#!lua name=err10\nreturn string.len('x')"]),
        req(&["FUNCTION", "LOAD", "#!lua name=err11\nredis.call('ping')"]),
        req(&["FUNCTION", "LOAD", "BAD", "#!lua name=x\nreturn 1"]),
        req(&["FUNCTION", "DELETE", "nosuch"]),
        req(&["FUNCTION", "KILL"]),
        req(&["FUNCTION", "FLUSH", "BAD"]),
        req(&["FUNCTION", "FLUSH"]),
        req(&["FUNCTION", "LIST"]),
        req(&["FUNCTION", "HELP"]),
        req(&["MULTI"]),
        req(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "counter"]),
        req(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "counter"]),
        req(&["EXEC"]),
        req(&["GET", "counter"]),
    ]);
    // Many arguments and many return values cross between Lua and Rust whole (a script's reply
    // is its first return value).
    let members: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let mut many = vec!["SADD", "manyargs"];
    many.extend(members.iter().map(String::as_str));
    for _ in 0..2 {
        q.push(eval("return redis.pcall(unpack(ARGV))", &[], &many));
        q.push(eval("return redis.call(unpack(ARGV))", &["manyargs"], &many));
        q.push(eval(
            "return 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24",
            &[],
            &[],
        ));
        q.push(eval("return redis.call('ECHO', unpack(ARGV))", &[], &many));
    }
    q.push(req(&["SCARD", "manyargs"]));
    // A script's own coroutine.yield outside a coroutine it made is refused, never taken for a
    // redis.call; inside one, it is the script's.
    for _ in 0..2 {
        q.push(eval("coroutine.yield('SET', 'yielded', 'v') return 1", &[], &[]));
        q.push(eval(
            "local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end) \
             local _, x = coroutine.resume(co, 1) local _, y = coroutine.resume(co, 10) \
             local w = coroutine.wrap(function() coroutine.yield('w1') return 'w2' end) \
             return {x, y, w(), w(), coroutine.status(co), tostring(coroutine.running() == nil)}",
            &[],
            &[],
        ));
    }
    q.push(req(&["GET", "yielded"]));
    q
}

#[test]
fn scripts_answer_as_redis_server_does() {
    compare(&Server::start(), &script_requests());
}

#[test]
fn scripts_answer_as_redis_server_does_on_one_shard() {
    compare(&Server::with(Opts { threads: 1, ..Opts::default() }), &script_requests());
}

/// A script's keys decide only where it runs: undeclared keys on another shard work (the
/// first run finds them), declared keys spanning shards work, in every order of first runs.
#[test]
fn undeclared_and_spanning_keys_work_on_every_run() {
    let server = Server::start();
    let (a, b) = (key_on("ua", 0, 2), key_on("ub", 1, 2));
    let mut c = server.conn(Mode::Plain);
    // Writes a declared key, then one it did not declare on the other shard.
    let body = "redis.call('set', KEYS[1], ARGV[1]) redis.call('set', ARGV[2], ARGV[1]) \
                return redis.call('mget', KEYS[1], ARGV[2])";
    for round in 0..5 {
        let v = format!("v{round}");
        let got: Vec<String> =
            redis::cmd("EVAL").arg(body).arg(1).arg(&a).arg(&v).arg(&b).query(&mut c).unwrap();
        assert_eq!(got, vec![v.clone(), v.clone()], "round {round}");
    }
    // Declared keys on both shards; then the same script with both keys on one shard.
    let swap = "local x = redis.call('get', KEYS[1]) redis.call('set', KEYS[1], redis.call('get', KEYS[2])) \
                redis.call('set', KEYS[2], x) return {redis.call('get', KEYS[1]), redis.call('get', KEYS[2])}";
    let _: () = redis::cmd("MSET").arg(&a).arg("1").arg(&b).arg("2").query(&mut c).unwrap();
    let got: Vec<String> = redis::cmd("EVAL").arg(swap).arg(2).arg(&a).arg(&b).query(&mut c).unwrap();
    assert_eq!(got, vec!["2", "1"]);
    let (x, y) = ("{t}x", "{t}y");
    let _: () = redis::cmd("MSET").arg(x).arg("3").arg(y).arg("4").query(&mut c).unwrap();
    for _ in 0..3 {
        let _: Vec<String> = redis::cmd("EVAL").arg(swap).arg(2).arg(x).arg(y).query(&mut c).unwrap();
    }
    let got: Vec<String> = redis::cmd("MGET").arg(x).arg(y).query(&mut c).unwrap();
    assert_eq!(got, vec!["4", "3"]);
    // The strict mode refuses what the script did not declare.
    let _: () = redis::cmd("CONFIG").arg("SET").arg("lua-strict-keys").arg("yes").query(&mut c).unwrap();
    let err =
        redis::cmd("EVAL").arg("return redis.call('get', 'nodecl')").arg(0).query::<()>(&mut c).unwrap_err();
    assert!(err.to_string().contains("not declared"), "{err}");
    let got: Option<String> =
        redis::cmd("EVAL").arg("return redis.call('get', KEYS[1])").arg(1).arg(&a).query(&mut c).unwrap();
    assert_eq!(got.as_deref(), Some("2"));
}

/// Scripts moving value between keys on both shards, against readers on both cores: every
/// read sees the whole sum, never a script's half.
#[test]
fn scripts_across_shards_are_atomic_under_concurrent_readers() {
    let server = Server::start();
    let (a, b) = (key_on("sa", 0, 2), key_on("sb", 1, 2));
    let mut c = server.conn(Mode::Plain);
    let _: () = redis::cmd("MSET").arg(&a).arg(1000).arg(&b).arg(0).query(&mut c).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|core| {
            let mut r = server.conn_on_core(Mode::Plain, core);
            let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                    let (x, y): (i64, i64) = redis::cmd("MGET").arg(&a).arg(&b).query(&mut r).unwrap();
                    assert_eq!(x + y, 1000, "a reader saw half a script");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mover = "local n = tonumber(ARGV[1]) redis.call('decrby', KEYS[1], n) redis.call('incrby', KEYS[2], n) return 1";
    for i in 0..400 {
        let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let _: i64 =
            redis::cmd("EVAL").arg(mover).arg(2).arg(from).arg(to).arg(i % 7 + 1).query(&mut c).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let (x, y): (i64, i64) = redis::cmd("MGET").arg(&a).arg(&b).query(&mut c).unwrap();
    assert_eq!(x + y, 1000);
}

/// Sends every request at once (one pipeline), then reads each reply.
fn pipelined(raw: &mut common::Raw, requests: &[Vec<Vec<u8>>]) -> Vec<String> {
    let bytes: Vec<u8> =
        requests.iter().flat_map(|q| resp(&q.iter().map(Vec::as_slice).collect::<Vec<_>>())).collect();
    raw.send(&bytes);
    requests.iter().map(|_| String::from_utf8_lossy(&raw.reply()).into_owned()).collect()
}

#[test]
fn pipelined_scripts_across_shards_serve_a_blocked_client_between_them_as_redis_does() {
    // Scripts of one read holding every shard keep the gates from one to the next while no
    // client waits for a key; a client blocked on a key the first one fills is served before
    // the second runs, as Redis serves it after each command. Against redis-server, plain and
    // TLS, with a command between two scripts.
    let server = Server::start();
    let reference = RedisServer::start();
    let (list, count) = (key_on("pl", 0, 2), key_on("pc", 1, 2));
    let push =
        eval("redis.call('RPUSH', KEYS[1], 'x') return redis.call('INCR', KEYS[2])", &[&list, &count], &[]);
    let pop = eval("redis.call('INCR', KEYS[2]) return redis.call('LPOP', KEYS[1])", &[&list, &count], &[]);
    let read = [push.clone(), pop.clone(), push.clone(), req(&["GET", &count]), pop.clone(), push, pop];
    let run = |raw: &mut dyn FnMut() -> common::Raw, blocked: bool| {
        let mut admin = raw();
        admin.request(&[b"DEL", list.as_bytes(), count.as_bytes()]);
        let blocker = blocked.then(|| {
            let mut b = raw();
            b.send(&resp(&[b"BLPOP", list.as_bytes(), b"0"]));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !String::from_utf8_lossy(&admin.request(&[b"CLIENT", b"LIST"])).contains("cmd=blpop") {
                assert!(Instant::now() < deadline, "the client never blocked");
                std::thread::yield_now();
            }
            b
        });
        // A large request first: the connection's reads grow, so that the whole pipeline
        // comes in one read (one call of the session).
        let mut client = raw();
        let big = vec![b'v'; 256 * 1024];
        client.request(&[b"SET", b"warm", &big]);
        let replies = pipelined(&mut client, &read);
        let served = blocker.map(|mut b| String::from_utf8_lossy(&b.reply()).into_owned());
        (replies, served)
    };
    for blocked in [false, true] {
        let expected = run(&mut || reference.raw(), blocked);
        for mode in MODES {
            assert_eq!(
                run(&mut || server.raw(mode), blocked),
                expected,
                "{mode:?}, a client blocked: {blocked}"
            );
        }
    }
}

/// What INFO's `Cores` section says of core `core`'s `field`.
/// One-shard scripts run at once between the commands of their read (`Command::now`) when
/// nothing for another shard is queued ahead of them, and after what is: a read mixing them
/// with commands for both shards, errors included, answers and leaves the keys as
/// redis-server does, from a connection on either core, plain and TLS.
#[test]
fn one_shard_scripts_keep_their_place_in_a_pipeline() {
    let server = Server::start();
    let reference = RedisServer::start();
    let (a, b) = (key_on("na", 0, 2), key_on("nb", 1, 2));
    let incr = "return redis.call('INCR', KEYS[1])";
    let append = "return redis.call('APPEND', KEYS[1], ARGV[1])";
    let get = "return redis.call('GET', KEYS[1])";
    let read = [
        req(&["DEL", &a, &b]),
        eval(incr, &[&a], &[]),
        req(&["SET", &b, "5"]),
        eval(incr, &[&b], &[]),
        eval(incr, &[&a], &[]),
        req(&["APPEND", &a, "x"]),
        eval(append, &[&a], &["y"]),
        req(&["GET", &a]),
        eval(get, &[&b], &[]),
        eval(incr, &[&a], &[]),
        req(&["SET", &b, "x"]),
        eval(append, &[&b], &["z"]),
        eval(append, &[&a], &["w"]),
        eval(get, &[&a], &[]),
        req(&["MGET", &a, &b]),
    ];
    let run = |mut client: common::Raw| {
        // A large request first: the connection's reads grow, so that the whole pipeline
        // comes in one read (one call of the session).
        client.request(&[b"SET", b"warm", &vec![b'v'; 256 * 1024]]);
        pipelined(&mut client, &read)
    };
    // The first runs learn that each script keeps to its declared keys; then they run at once.
    run(server.raw(Mode::Plain));
    run(reference.raw());
    let expected = run(reference.raw());
    for mode in MODES {
        for core in 0..2 {
            assert_eq!(
                run(server.raw_on_core(mode, core)),
                expected,
                "{mode:?}, a connection on core {core}"
            );
        }
    }
}

fn core_stat(c: &mut redis::Connection, core: usize, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("cores").query(c).unwrap();
    let line = info.lines().find(|l| l.starts_with(&format!("core{core}:"))).unwrap_or_default();
    let value = line.split(',').find_map(|kv| kv.strip_prefix(&format!("{field}=")));
    value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {field} for core {core} in {info}"))
}

/// A script holding every shard borrows the other core's thread for its hops, and keeps it
/// for the next script of the same read; the core comes back to its own clients once the
/// scripts are over, whatever ends them (the read's end, another command between two
/// scripts). Plain and TLS, from a client on each core.
#[test]
fn scripts_across_shards_borrow_the_other_core_and_give_it_back() {
    let server = Server::start();
    let (a, b) = (key_on("la", 0, 2), key_on("lb", 1, 2));
    let mut admin = server.conn(Mode::Plain);
    let both = eval("redis.call('INCR', KEYS[1]) return redis.call('INCR', KEYS[2])", &[&a, &b], &[]);
    let mut expected = 0;
    for mode in MODES {
        for core in 0..2 {
            let other = 1 - core;
            let lent = core_stat(&mut admin, other, "lends");
            let mut client = server.raw_on_core(mode, core);
            // The whole pipeline in one read (see the test above).
            client.request(&[b"SET", b"warm", &vec![b'v'; 256 * 1024]]);
            // Scripts, a command for the other shard between two of them, scripts again.
            let mut read = vec![both.clone(); 20];
            read.insert(10, req(&["GET", &b]));
            let replies = pipelined(&mut client, &read);
            let counts: Vec<String> = (1..=20).map(|n| format!(":{}\r\n", expected + n)).collect();
            let got: Vec<&String> =
                replies.iter().enumerate().filter(|(i, _)| *i != 10).map(|(_, r)| r).collect();
            assert_eq!(got, counts.iter().collect::<Vec<_>>(), "{mode:?}, client on core {core}");
            assert_eq!(
                replies[10],
                format!("${}\r\n{}\r\n", (expected + 10).to_string().len(), expected + 10)
            );
            expected += 20;
            assert!(core_stat(&mut admin, other, "lends") > lent, "{mode:?}: core {other} was never lent");
            // The other core serves its own clients again, keys and all.
            let mut there = server.conn_on_core(mode, other);
            let _: () = redis::cmd("PING").query(&mut there).unwrap();
            let got: (i64, i64) = redis::cmd("MGET").arg(&a).arg(&b).query(&mut there).unwrap();
            assert_eq!(got, (expected, expected), "{mode:?}");
        }
    }
}

/// Sessions of one core whose scripts hold every shard take turns at the gates: each hands them,
/// still held, to the next one waiting, up to 16 times in a row before releasing them for the
/// other core's turn. Held by CLIENT PAUSE, 20 clients of each core get their pipelines of
/// scripts to the core at once; unpaused, every script still runs whole (no count twice, each
/// pipeline's consecutive: one read's scripts keep the gates from one to the next), the gates
/// went from session to session, and both cores serve everyone afterwards. Plain and TLS.
#[test]
fn sessions_of_one_core_take_turns_at_every_gate() {
    let server = Server::start();
    let (a, b) = (key_on("ta", 0, 2), key_on("tb", 1, 2));
    let mut admin = server.conn(Mode::Plain);
    let both = eval("redis.call('INCR', KEYS[1]) return redis.call('INCR', KEYS[2])", &[&a, &b], &[]);
    let read: Vec<u8> =
        vec![both; 10].iter().flat_map(|q| resp(&q.iter().map(Vec::as_slice).collect::<Vec<_>>())).collect();
    let mut expected = 0;
    for mode in MODES {
        for core in 0..2 {
            let handed = core_stat(&mut admin, core, "gate_handovers");
            let mut clients: Vec<common::Raw> = (0..20).map(|_| server.raw_on_core(mode, core)).collect();
            for client in &mut clients {
                // Each pipeline in one read (see `scripts_across_shards_borrow_the_other_core_and_give_it_back`).
                client.request(&[b"SET", b"warm", &vec![b'v'; 256 * 1024]]);
            }
            let () = redis::cmd("CLIENT").arg("PAUSE").arg(60_000).arg("WRITE").query(&mut admin).unwrap();
            for client in &mut clients {
                client.send(&read);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let info: String = redis::cmd("INFO").arg("clients").query(&mut admin).unwrap();
                if info.contains("blocked_clients:20\r\n") {
                    break;
                }
                assert!(Instant::now() < deadline, "the clients were never held by the pause");
                std::thread::sleep(Duration::from_millis(5));
            }
            let () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut admin).unwrap();
            let mut counts = Vec::new();
            for client in &mut clients {
                let got: Vec<i64> = (0..10)
                    .map(|_| {
                        let reply = String::from_utf8_lossy(&client.reply()).into_owned();
                        reply.trim().trim_start_matches(':').parse().unwrap_or_else(|_| panic!("{reply:?}"))
                    })
                    .collect();
                assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{mode:?}, core {core}: {got:?}");
                counts.extend(got);
            }
            counts.sort_unstable();
            assert_eq!(counts, (expected + 1..=expected + 200).collect::<Vec<_>>(), "{mode:?}, core {core}");
            expected += 200;
            // Twenty sessions ready in one pass: the first locks the gates, the others get them
            // handed on (16 in a row at most).
            let handovers = core_stat(&mut admin, core, "gate_handovers") - handed;
            assert!(handovers >= 16, "{mode:?}, core {core}: {handovers} hand-overs");
            for core in 0..2 {
                let mut there = server.conn_on_core(mode, core);
                let got: (i64, i64) = redis::cmd("MGET").arg(&a).arg(&b).query(&mut there).unwrap();
                assert_eq!(got, (expected, expected), "{mode:?}");
            }
        }
    }
}

/// A script holding every shard may call MIGRATE, which waits for the network: it runs with
/// its calls yielding to its task. Found in its text, or (a name the text hides) by starting
/// again when it has not written yet; a run that wrote first gets an error once, then the
/// script is known. Against Debian's redis-server as the target.
#[test]
fn scripts_across_shards_can_migrate_keys() {
    let server = Server::start();
    let target = RedisServer::start();
    let mut c = server.conn(Mode::Plain);
    let mut t =
        redis::Client::open(format!("redis://127.0.0.1:{}", target.port)).unwrap().get_connection().unwrap();
    let port = target.port.to_string();
    let migrate =
        |c: &mut redis::Connection, body: &str, moved: &str, counter: &str| -> redis::RedisResult<String> {
            redis::cmd("EVAL").arg(body).arg(2).arg(moved).arg(counter).arg("127.0.0.1").arg(&port).query(c)
        };
    let counter = key_on("mc", 1, 2);
    let named =
        "redis.call('INCR', KEYS[2]) return redis.call('MIGRATE', ARGV[1], ARGV[2], KEYS[1], 0, 5000)";
    let hidden = "local c = 'MIG' .. 'RATE' return redis.call(c, ARGV[1], ARGV[2], KEYS[1], 0, 5000)";
    let hidden_after_write =
        "redis.call('INCR', KEYS[2]) local c = 'MIG' .. 'RATE' return redis.call(c, ARGV[1], ARGV[2], KEYS[1], 0, 5000)";
    for (round, body) in [named, named, hidden, hidden].into_iter().enumerate() {
        let key = key_on(&format!("mk{round}x"), 0, 2);
        let _: () = redis::cmd("SET").arg(&key).arg(round).query(&mut c).unwrap();
        assert_eq!(migrate(&mut c, body, &key, &counter).unwrap(), "OK", "round {round}");
        let here: Option<String> = redis::cmd("GET").arg(&key).query(&mut c).unwrap();
        let there: Option<String> = redis::cmd("GET").arg(&key).query(&mut t).unwrap();
        assert_eq!((here, there), (None, Some(round.to_string())), "round {round}");
    }
    let first = key_on("mw0x", 0, 2);
    let _: () = redis::cmd("SET").arg(&first).arg("w").query(&mut c).unwrap();
    let err = migrate(&mut c, hidden_after_write, &first, &counter).unwrap_err();
    assert!(err.to_string().contains("after writing"), "{err}");
    assert_eq!(migrate(&mut c, hidden_after_write, &first, &counter).unwrap(), "OK");
    let there: Option<String> = redis::cmd("GET").arg(&first).query(&mut t).unwrap();
    assert_eq!(there.as_deref(), Some("w"));
    // Two named runs, and two of the script that wrote: each INCR ran once.
    let n: i64 = redis::cmd("GET").arg(&counter).query(&mut c).unwrap();
    assert_eq!(n, 4);
}

/// Scripts that fail in every way a peer can make them fail leave the server serving.
#[test]
fn bad_scripts_never_take_the_server_down() {
    let server = Server::start();
    let mut raw = server.raw(Mode::Tls);
    let bodies: &[&str] = &[
        "local function f() return f() + 1 end return f()",
        "local s = string.rep('x', 1048576) local t = {} for i = 1, 1e9 do t[i] = s .. i end",
        "local t = {} t[1] = t return t",
        "local s = string.rep('x', 1e9) return #s",
        "return string.rep('x', -1)",
        "return redis.call('set', string.rep('k', 100), string.rep('v', 1e6))",
        "while true do local ok = pcall(error, 'x') if not ok then break end end return 1",
        "return coroutine.wrap(function() coroutine.yield(redis.call('ping')) end)()",
        "return setmetatable({}, {__index = function() error('meta') end}).x",
    ];
    for body in bodies {
        let reply = raw.request(&[b"EVAL", body.as_bytes(), b"0"]);
        assert!(!reply.is_empty(), "{body}");
    }
    // Deeply nested tables come back bounded, not as a crash.
    let nest = "local t = {} local c = t for i = 1, 10000 do c[1] = {} c = c[1] end return t";
    let reply = raw.request(&[b"EVAL", nest.as_bytes(), b"0"]);
    assert!(
        String::from_utf8_lossy(&reply).contains("reached lua stack limit"),
        "{:?}",
        &reply[..40.min(reply.len())]
    );
    raw.roundtrip(&resp(&[b"PING"]), b"+PONG\r\n");
}

/// redis-py's own Lua helpers (Script objects, Lock) work against ferrokey, plain and TLS.
#[test]
fn redis_py_scripts_and_locks_work_plain_and_tls() {
    let server = Server::start();
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/redis_py_scripts.py");
    for mode in MODES {
        let mut cmd = std::process::Command::new("/usr/bin/python3");
        cmd.arg(program);
        match mode {
            Mode::Plain => cmd.arg(server.port.to_string()),
            Mode::Tls => cmd.arg(server.tls_port.to_string()).arg(common::certs().path("ca.crt")),
        };
        let out = cmd.output().expect("running python3 (apt-get install python3-redis)");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
            "{mode:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// BullMQ, a Node job queue that is all Lua scripts and streams, runs jobs end to end against
/// ferrokey, plain and TLS: plain, delayed, retried, failed and prioritized jobs, with a
/// QueueEvents listener following the events stream (XREAD BLOCK). `scripts/test.sh` installs
/// Node and the pinned BullMQ (`tests/clients/bullmq/package-lock.json`).
#[test]
fn bullmq_runs_jobs_end_to_end_plain_and_tls() {
    let server = Server::start();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/bullmq");
    for mode in MODES {
        let mut cmd = std::process::Command::new("node");
        cmd.current_dir(dir).arg("run.js");
        match mode {
            Mode::Plain => cmd.arg(server.port.to_string()),
            Mode::Tls => cmd.arg(server.tls_port.to_string()).arg(common::certs().path("ca.crt")),
        };
        let out = cmd.output().expect("running node (scripts/test.sh installs it and BullMQ)");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ok "),
            "{mode:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// FUNCTION DUMP payloads move both ways between ferrokey and redis-server, and RESTORE's
/// policies and errors answer as Redis's.
#[test]
fn function_dumps_move_both_ways_with_redis_server() {
    let reference = RedisServer::start();
    let server = Server::start();
    let load = |raw: &mut common::Raw| {
        raw.request(&[b"FUNCTION", b"FLUSH"]);
        let code = "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return 'one' end)";
        let reply = raw.request(&[b"FUNCTION", b"LOAD", code.as_bytes()]);
        assert_eq!(reply, b"$4\r\nlib1\r\n".to_vec());
    };
    let payload = |raw: &mut common::Raw| {
        let reply = raw.request(&[b"FUNCTION", b"DUMP"]);
        let at = reply.iter().position(|&c| c == b'\n').unwrap() + 1;
        reply[at..reply.len() - 2].to_vec()
    };
    let mut redis = reference.raw();
    let mut ours = server.raw(Mode::Tls);
    load(&mut redis);
    load(&mut ours);
    let (theirs_payload, ours_payload) = (payload(&mut redis), payload(&mut ours));
    for (from, to) in [(theirs_payload, &mut ours), (ours_payload, &mut redis)] {
        to.request(&[b"FUNCTION", b"FLUSH"]);
        assert_eq!(to.request(&[b"FUNCTION", b"RESTORE", &from]), b"+OK\r\n".to_vec());
        assert_eq!(to.request(&[b"FCALL", b"f1", b"0"]), b"$3\r\none\r\n".to_vec());
    }
    let p = payload(&mut ours);
    let mut bad = p.clone();
    bad[0] ^= 1;
    for args in [
        vec![&b"FUNCTION"[..], b"RESTORE", &p],
        vec![b"FUNCTION", b"RESTORE", &p, b"REPLACE"],
        vec![b"FUNCTION", b"RESTORE", &p, b"BAD"],
        vec![b"FUNCTION", b"RESTORE", &bad],
        vec![b"FUNCTION", b"RESTORE", b"garbage"],
        vec![b"FUNCTION", b"RESTORE", &p, b"FLUSH", b"x"],
        vec![b"FUNCTION", b"RESTORE", &p, b"FLUSH"],
    ] {
        assert_eq!(
            ours.request(&args),
            redis.request(&args),
            "{:?}",
            String::from_utf8_lossy(args[3.min(args.len() - 1)])
        );
    }
}

/// A script runs with its caller's ACL rules: a denied command, key or channel inside it
/// fails as in redis-server, and ACL LOG records it with the context `lua`.
#[test]
fn scripts_run_with_the_callers_acl_rules_as_redis_server_does() {
    let reference = RedisServer::start();
    let server = Server::start();
    let requests: Vec<Vec<Vec<u8>>> = vec![
        eval("return redis.call('get', 'k1')", &[], &[]),
        eval("return redis.call('set', 'k1', 'v')", &[], &[]),
        eval("return redis.call('get', 'other')", &[], &[]),
        eval("return redis.pcall('get', 'other')", &[], &[]),
        eval("return redis.call('publish', 'news', 'm')", &[], &[]),
        eval("return redis.call('publish', 'secret', 'm')", &[], &[]),
        eval("return redis.call('hset', 'k2', 'f', 'v')", &[], &[]),
    ];
    let run = |raw: &mut common::Raw| -> (Vec<Vec<u8>>, Vec<u8>) {
        raw.request(&[
            b"ACL", b"SETUSER", b"app", b"reset", b"on", b">pw", b"+@all", b"-set", b"~k*", b"&news",
        ]);
        raw.request(&[b"ACL", b"LOG", b"RESET"]);
        raw.request(&[b"AUTH", b"app", b"pw"]);
        let got = requests
            .iter()
            .map(|q| {
                let args: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
                raw.request(&args)
            })
            .collect();
        raw.request(&[b"AUTH", b"default", b""]);
        (got, raw.request(&[b"ACL", b"LOG"]))
    };
    let (expected, their_log) = run(&mut reference.raw());
    let (got, our_log) = run(&mut server.raw(Mode::Tls));
    for ((q, e), g) in requests.iter().zip(&expected).zip(&got) {
        assert_eq!(
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(e),
            "{:?}",
            String::from_utf8_lossy(&q[1])
        );
    }
    let contexts = |log: &[u8]| String::from_utf8_lossy(log).matches("\r\nlua\r\n").count();
    assert_eq!(contexts(&our_log), contexts(&their_log), "{}", String::from_utf8_lossy(&our_log));
    assert!(contexts(&our_log) >= 3);
}
