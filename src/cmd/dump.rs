//! DUMP and RESTORE: a key's value in Redis's RDB form, so values move between ferrokey and
//! Redis (`redis-cli --cluster` migrations, `MIGRATE`-style tools, backups of single keys).

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::shard::Ctx;
use crate::engine::spec::{acl, flag, key, KeySpec};
use crate::facade::Reply;
use crate::storage::rdb::{self, PayloadError};

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::shard("dump", 2, dump)
            .flags(flag::READONLY)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("generic", "2.6.0", "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1).", "Return a serialized version of the value stored at the specified key."),
        Command::shard("restore", -4, restore)
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::KEYSPACE | acl::DANGEROUS)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .docs("generic", "2.6.0", "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).", "Create a key using the provided serialized value, previously obtained using DUMP.")
            .history(&[("3.0.0", "Added the `REPLACE` modifier."), ("5.0.0", "Added the `ABSTTL` modifier."), ("5.0.0", "Added the `IDLETIME` and `FREQ` options.")]),
        // What MIGRATE sends in cluster mode: served by a node importing the key's slot.
        Command::shard("restore-asking", -4, restore)
            .flags(flag::WRITE | flag::DENYOOM | flag::ASKING)
            .acl(acl::KEYSPACE | acl::DANGEROUS)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .docs("server", "3.0.0", "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).", "An internal command for migrating keys in a cluster")
            .history(&[("3.0.0", "Added the `REPLACE` modifier."), ("5.0.0", "Added the `ABSTTL` modifier."), ("5.0.0", "Added the `IDLETIME` and `FREQ` options.")])
            .syscmd(),
    ]
}

/// DUMP key
fn dump(c: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(match c.db.read(&args[1], c.now) {
        // Compressed, as Redis's default `rdbcompression yes` writes it.
        Some(entry) => Reply::Bulk(Bytes::from(rdb::dump(&entry.value, true))),
        None => Reply::Nil,
    })
}

/// What RESTORE's options ask for.
#[derive(Debug, Default)]
struct RestoreArgs {
    replace: bool,
    absttl: bool,
}

impl RestoreArgs {
    /// Parses the options after the payload, with Redis's checks in Redis's order. IDLETIME and
    /// FREQ are checked and accepted; ferrokey keeps no LRU or LFU data for them to set.
    fn parse(args: &[Bytes]) -> Result<RestoreArgs, CmdError> {
        let mut parsed = RestoreArgs::default();
        let (mut idle, mut freq) = (false, false);
        let mut j = 4;
        while j < args.len() {
            let more = j + 1 < args.len();
            if is(&args[j], "replace") {
                parsed.replace = true;
            } else if is(&args[j], "absttl") {
                parsed.absttl = true;
            } else if is(&args[j], "idletime") && more && !freq {
                if args::int(&args[j + 1])? < 0 {
                    return Err(CmdError::msg("ERR Invalid IDLETIME value, must be >= 0"));
                }
                idle = true;
                j += 1;
            } else if is(&args[j], "freq") && more && !idle {
                if !(0..=255).contains(&args::int(&args[j + 1])?) {
                    return Err(CmdError::msg("ERR Invalid FREQ value, must be >= 0 and <= 255"));
                }
                freq = true;
                j += 1;
            } else {
                return Err(CmdError::Syntax);
            }
            j += 1;
        }
        Ok(parsed)
    }
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
fn restore(c: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let opts = RestoreArgs::parse(args)?;
    let key = &args[1];
    if !opts.replace && c.db.live(key, c.now) {
        return Err(CmdError::BusyKey);
    }
    let ttl = args::int(&args[2])?;
    if ttl < 0 {
        return Err(CmdError::msg("ERR Invalid TTL value, must be >= 0"));
    }
    let value = match rdb::restore(&args[3]) {
        Ok(value) => value,
        Err(PayloadError::Footer) => {
            return Err(CmdError::msg("ERR DUMP payload version or checksum are wrong"))
        }
        Err(PayloadError::Data(e)) => {
            tracing::info!(error = %e, "RESTORE refused a payload");
            return Err(CmdError::msg("ERR Bad data format"));
        }
    };
    let deleted = opts.replace && c.db.remove(key).is_some();
    let expires_at = match ttl {
        0 => None,
        t if opts.absttl => Some(t as u64),
        t => Some((t as u64).saturating_add(c.now)),
    };
    // Already expired: nothing is stored (a replaced key stays deleted), as in Redis.
    if expires_at.is_some_and(|at| c.already_expired(at as i64)) {
        if opts.replace {
            c.log(&[b"DEL", key]);
        } else {
            c.log_nothing();
        }
        if deleted {
            c.notify(Class::GENERIC, "del", key);
        }
        return Ok(Reply::Ok);
    }
    c.db.set(key, value, expires_at);
    c.notify(Class::GENERIC, "restore", key);
    // A relative TTL replays as the absolute time it gave, as Redis propagates it.
    if let (Some(at), false, true) = (expires_at, opts.absttl, c.journaling()) {
        let mut at_text = itoa::Buffer::new();
        let at = at_text.format(at);
        let mut logged: Vec<&[u8]> = vec![b"RESTORE", key, at.as_bytes(), &args[3]];
        logged.extend(args[4..].iter().map(|a| &a[..]));
        logged.push(b"ABSTTL");
        c.log(&logged);
    }
    Ok(Reply::Ok)
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::Fixture;
    use crate::facade::Reply;

    fn payload(f: &mut Fixture, key: &str) -> bytes::Bytes {
        match f.run(&format!("DUMP {key}")) {
            Reply::Bulk(b) => b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restore_follows_redis_rules() {
        let mut f = Fixture::new();
        f.run("RPUSH l a b c");
        let p = payload(&mut f, "l");
        let restore = |f: &mut Fixture, rest: &[&[u8]]| {
            let mut args: Vec<bytes::Bytes> = vec![bytes::Bytes::from_static(b"RESTORE")];
            args.extend(rest.iter().map(|a| bytes::Bytes::copy_from_slice(a)));
            f.run_args(&args)
        };
        assert_eq!(
            restore(&mut f, &[b"l", b"0", &p]),
            Reply::Error("BUSYKEY Target key name already exists.".into())
        );
        assert_eq!(
            restore(&mut f, &[b"l2", b"-1", &p]),
            Reply::Error("ERR Invalid TTL value, must be >= 0".into())
        );
        assert_eq!(
            restore(&mut f, &[b"l2", b"0", b"junkjunkjunk"]),
            Reply::Error("ERR DUMP payload version or checksum are wrong".into())
        );
        assert_eq!(
            restore(&mut f, &[b"l2", b"0", &p, b"FREQ", b"300"]),
            Reply::Error("ERR Invalid FREQ value, must be >= 0 and <= 255".into())
        );
        assert_eq!(
            restore(&mut f, &[b"l2", b"0", &p, b"IDLETIME", b"1", b"FREQ", b"1"]),
            Reply::Error("ERR syntax error".into())
        );
        assert_eq!(restore(&mut f, &[b"l2", b"5000", &p, b"REPLACE"]), Reply::Ok);
        assert_eq!(f.resp("LRANGE l2 0 -1"), "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
        assert_eq!(f.resp("PTTL l2"), ":5000\r\n");
        // An absolute time already past: OK, and the replaced key is gone.
        assert_eq!(restore(&mut f, &[b"l2", b"1", &p, b"REPLACE", b"ABSTTL"]), Reply::Ok);
        assert_eq!(f.resp("EXISTS l2"), ":0\r\n");
        assert_eq!(f.resp("DUMP nosuchkey"), "$-1\r\n");
    }
}
