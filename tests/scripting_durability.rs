//! Functions and scripts' effects outlive the process and reach replicas, as Redis 7.0 keeps
//! them: libraries in the RDB file (its function opcode, read by redis-check-rdb and Debian's
//! redis-server, and ferrokey reading redis-server's), in the AOF (its RDB base, or `FUNCTION
//! LOAD` commands without the preamble, and FUNCTION LOAD / DELETE / FLUSH / RESTORE in the
//! incremental file), and replicated both ways with redis-server, plain and TLS: in the
//! snapshot of a full sync and as commands in the stream. Scripts replicate their effects.

mod common;

use common::dataset::{connect_redis, info_field, TempDir};
use common::replication::{eventually, in_sync, redis_primary, redis_replica, tls_replica_opts};
use common::{key_on, resp, Mode, Opts, RedisServer, Server};
use redis::Connection;

const LIB_A: &str = "#!lua name=liba\nredis.register_function('fa', function(keys, args) \
                     redis.call('SET', keys[1], args[1]) return redis.call('INCR', keys[2]) end)";
const LIB_B: &str = "#!lua name=libb\nredis.register_function{function_name='fb', \
                     callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}";

/// The names of the libraries FUNCTION LIST shows, sorted.
fn libraries(c: &mut Connection) -> Vec<String> {
    let list: Vec<Vec<redis::Value>> = redis::cmd("FUNCTION").arg("LIST").query(c).unwrap();
    let mut names: Vec<String> = list
        .iter()
        .map(|lib| match &lib[1] {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("library name {other:?}"),
        })
        .collect();
    names.sort();
    names
}

fn load(c: &mut Connection, code: &str) {
    let _: String = redis::cmd("FUNCTION").arg("LOAD").arg("REPLACE").arg(code).query(c).unwrap();
}

/// Calls `fa` on two keys of different shards, then reads them back through `fb`.
fn use_functions(c: &mut Connection, tag: &str) -> i64 {
    let (a, b) = (key_on(&format!("{tag}a"), 0, 2), key_on(&format!("{tag}b"), 1, 2));
    let n: i64 = redis::cmd("FCALL").arg("fa").arg(2).arg(&a).arg(&b).arg("v").query(c).unwrap();
    let got: String = redis::cmd("FCALL_RO").arg("fb").arg(1).arg(&a).query(c).unwrap();
    assert_eq!(got, "v");
    n
}

#[test]
fn functions_survive_restarts_in_rdb_and_move_with_redis_server_files() {
    let dir = TempDir::new("fn-rdb");
    let opts = Opts::default().arg("dir", &dir.path()).arg("save", "").arg("appendonly", "no");
    let server = Server::with(opts.clone());
    let mut c = server.conn(Mode::Tls);
    load(&mut c, LIB_A);
    load(&mut c, LIB_B);
    use_functions(&mut c, "x");
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    drop(c);
    server.terminate();
    let dump = dir.file("dump.rdb");
    let check = std::process::Command::new("redis-check-rdb").arg(&dump).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && report.contains("RDB looks OK"), "{report}");

    // ferrokey again, from its own file.
    let server = Server::with(opts.clone());
    let mut c = server.conn(Mode::Plain);
    assert_eq!(libraries(&mut c), ["liba", "libb"]);
    assert_eq!(use_functions(&mut c, "x"), 2, "the keys came back with the functions");
    drop(c);
    server.terminate();

    // Debian's redis-server reads ferrokey's file, and ferrokey reads redis-server's.
    let redis = RedisServer::with(&["--dir", &dir.path(), "--dbfilename", "dump.rdb"]);
    let mut r = connect_redis(&redis);
    assert_eq!(libraries(&mut r), ["liba", "libb"]);
    assert_eq!(use_functions(&mut r, "x"), 2, "the file is the one saved first");
    let _: String = redis::cmd("FUNCTION").arg("DELETE").arg("liba").query(&mut r).unwrap();
    let lib_c = "#!lua name=libc\nredis.register_function('fc', function() return 'c' end)";
    load(&mut r, lib_c);
    let _: () = redis::cmd("SAVE").query(&mut r).unwrap();
    drop(r);
    drop(redis);
    let server = Server::with(opts);
    let mut c = server.conn(Mode::Tls);
    assert_eq!(libraries(&mut c), ["libb", "libc"]);
    let got: String = redis::cmd("FCALL").arg("fc").arg(0).query(&mut c).unwrap();
    assert_eq!(got, "c");
    let missing = redis::cmd("FCALL").arg("fa").arg(0).query::<()>(&mut c).unwrap_err();
    assert!(missing.to_string().contains("Function not found"), "{missing}");
}

#[test]
fn functions_survive_restarts_in_the_aof_with_and_without_the_rdb_preamble() {
    for preamble in ["yes", "no"] {
        let dir = TempDir::new("fn-aof");
        let opts = Opts::default()
            .arg("dir", &dir.path())
            .arg("save", "")
            .arg("appendonly", "yes")
            .arg("aof-use-rdb-preamble", preamble);
        let server = Server::with(opts.clone());
        let mut c = server.conn(Mode::Plain);
        load(&mut c, LIB_A);
        use_functions_a_only(&mut c);
        // The rewrite puts liba in the base; what follows goes to the incremental file.
        let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
        eventually("the rewrite to end", || {
            info_field(&mut c, "aof_rewrite_in_progress") == "0"
                && info_field(&mut c, "aof_rewrite_scheduled") == "0"
        });
        load(&mut c, LIB_B);
        let lib_c = "#!lua name=libc\nredis.register_function('fc', function() return 'c' end)";
        load(&mut c, lib_c);
        let _: String = redis::cmd("FUNCTION").arg("DELETE").arg("libc").query(&mut c).unwrap();
        let dump: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut c).unwrap();
        let _: String = redis::cmd("FUNCTION").arg("FLUSH").query(&mut c).unwrap();
        let _: String = redis::cmd("FUNCTION").arg("RESTORE").arg(&dump).query(&mut c).unwrap();
        use_functions(&mut c, "y");
        drop(c);
        server.terminate();
        let check = std::process::Command::new("redis-check-aof")
            .arg(dir.file("appendonlydir/appendonly.aof.manifest"))
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success(), "preamble {preamble}: {report}");
        if preamble == "no" {
            let base = std::fs::read_dir(dir.file("appendonlydir"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().contains(".base.aof"))
                .expect("a command-form base");
            let text = String::from_utf8_lossy(&std::fs::read(base).unwrap()).into_owned();
            assert!(text.starts_with("*3\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n"), "{text}");
        }

        let server = Server::with(opts);
        let mut c = server.conn(Mode::Tls);
        assert_eq!(libraries(&mut c), ["liba", "libb"], "preamble {preamble}");
        assert_eq!(use_functions(&mut c, "y"), 2, "preamble {preamble}");
        drop(c);
        server.terminate();

        // Debian's redis-server replays the same directory to the same functions.
        let redis = RedisServer::with(&["--dir", &dir.path(), "--appendonly", "yes"]);
        let mut r = connect_redis(&redis);
        assert_eq!(libraries(&mut r), ["liba", "libb"], "preamble {preamble}");
        assert_eq!(use_functions(&mut r, "y"), 3, "preamble {preamble}");
    }
}

/// The commands of an AOF file in command form, as text.
fn aof_commands(mut data: &[u8]) -> Vec<Vec<String>> {
    fn line(data: &mut &[u8]) -> String {
        let end = data.windows(2).position(|w| w == b"\r\n").expect("a line");
        let text = String::from_utf8_lossy(&data[..end]).into_owned();
        *data = &data[end + 2..];
        text
    }
    let mut commands = Vec::new();
    while !data.is_empty() {
        let count: usize = line(&mut data).strip_prefix('*').expect("a command").parse().unwrap();
        let command = (0..count)
            .map(|_| {
                let len: usize = line(&mut data).strip_prefix('$').expect("an argument").parse().unwrap();
                let arg = String::from_utf8_lossy(&data[..len]).into_owned();
                data = &data[len + 2..];
                arg
            })
            .collect();
        commands.push(command);
    }
    commands
}

/// Each script's effects are one transaction in the AOF, however its read is made: two
/// one-shard scripts and a SET pipelined in one read (each script run at once, on the
/// connection's shard) come out as MULTI, the first script's writes, EXEC, MULTI, the
/// second's, EXEC, then the SET.
#[test]
fn pipelined_scripts_are_each_one_transaction_in_the_aof() {
    let dir = TempDir::new("script-aof");
    let opts = Opts { threads: 1, ..Opts::default() }
        .arg("dir", &dir.path())
        .arg("save", "")
        .arg("appendonly", "yes");
    let server = Server::with(opts);
    let body = "redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[1]) return 1";
    let mut c = server.conn(Mode::Plain);
    // Its first runs learn that it keeps to its declared keys.
    for _ in 0..2 {
        let _: i64 =
            redis::cmd("EVAL").arg(body).arg(2).arg("w1").arg("w2").arg("warm").query(&mut c).unwrap();
    }
    let eval = |a: &str, b: &str, v: &str| {
        resp(&[b"EVAL", body.as_bytes(), b"2", a.as_bytes(), b.as_bytes(), v.as_bytes()])
    };
    let mut raw = server.raw(Mode::Plain);
    raw.send(&[eval("a1", "a2", "x"), eval("b1", "b2", "y"), resp(&[b"SET", b"c", b"z"])].concat());
    for _ in 0..3 {
        raw.reply();
    }
    drop((raw, c));
    assert_eq!(server.terminate(), Some(0));
    let commands = aof_commands(&std::fs::read(dir.file("appendonlydir/appendonly.aof.1.incr.aof")).unwrap());
    let named: Vec<String> = commands.iter().map(|c| c.join(" ").to_lowercase()).collect();
    let first = named.iter().position(|c| c == "set a1 x").expect("the first script's write");
    let expected =
        ["multi", "set a1 x", "set a2 x", "exec", "multi", "set b1 y", "set b2 y", "exec", "set c z"];
    assert_eq!(named[first - 1..].iter().take(expected.len()).collect::<Vec<_>>(), expected, "{named:?}");
}

fn use_functions_a_only(c: &mut Connection) {
    let (a, b) = (key_on("za", 0, 2), key_on("zb", 1, 2));
    let n: i64 = redis::cmd("FCALL").arg("fa").arg(2).arg(&a).arg(&b).arg("v").query(c).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn functions_and_script_effects_replicate_to_and_from_redis_server() {
    // ferrokey primary, redis-server replica (TLS): the full sync's snapshot carries liba, the
    // stream carries what follows.
    let primary = Server::with(Opts::default().arg("repl-diskless-sync-delay", "0"));
    let mut p = primary.conn(Mode::Plain);
    load(&mut p, LIB_A);
    use_functions_a_only(&mut p);
    let replica = redis_replica(&primary, Mode::Tls);
    let mut r = connect_redis(&replica);
    in_sync(&mut p, &mut r);
    assert_eq!(libraries(&mut r), ["liba"]);
    load(&mut p, LIB_B);
    let script = "redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', 'undeclared', ARGV[1]) \
                  return redis.call('INCRBY', KEYS[2], 5)";
    let (a, b) = (key_on("sa", 0, 2), key_on("sb", 1, 2));
    let _: i64 = redis::cmd("EVAL").arg(script).arg(2).arg(&a).arg(&b).arg("w").query(&mut p).unwrap();
    in_sync(&mut p, &mut r);
    assert_eq!(libraries(&mut r), ["liba", "libb"]);
    let got: Vec<Option<String>> =
        redis::cmd("MGET").arg(&a).arg("undeclared").arg(&b).query(&mut r).unwrap();
    assert_eq!(got, [Some("w".into()), Some("w".into()), Some("5".into())]);
    let _: String = redis::cmd("FUNCTION").arg("DELETE").arg("liba").query(&mut p).unwrap();
    in_sync(&mut p, &mut r);
    assert_eq!(libraries(&mut r), ["libb"]);
    let _: String = redis::cmd("FUNCTION").arg("FLUSH").query(&mut p).unwrap();
    in_sync(&mut p, &mut r);
    assert!(libraries(&mut r).is_empty());
    drop(r);
    drop(replica);

    // redis-server primary, ferrokey replica (TLS link): the same both ways, and a full sync
    // replaces the replica's own functions with the primary's.
    let (redis, tls_port) = redis_primary();
    let mut p = connect_redis(&redis);
    load(&mut p, LIB_A);
    let replica = Server::with(tls_replica_opts());
    let mut r = replica.conn(Mode::Plain);
    let lib_c = "#!lua name=libc\nredis.register_function('fc', function() return 'c' end)";
    load(&mut r, lib_c);
    let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(tls_port).query(&mut r).unwrap();
    in_sync(&mut p, &mut r);
    assert_eq!(libraries(&mut r), ["liba"], "the primary's functions replace the replica's");
    load(&mut p, LIB_B);
    use_functions(&mut p, "q");
    in_sync(&mut p, &mut r);
    assert_eq!(libraries(&mut r), ["liba", "libb"]);
    let got: String = redis::cmd("FCALL_RO").arg("fb").arg(1).arg(key_on("qa", 0, 2)).query(&mut r).unwrap();
    assert_eq!(got, "v", "the replica serves read-only functions");
    let refused = redis::cmd("FUNCTION").arg("LOAD").arg(LIB_A).query::<()>(&mut r).unwrap_err();
    assert_eq!(refused.code(), Some("READONLY"), "{refused}");
}
