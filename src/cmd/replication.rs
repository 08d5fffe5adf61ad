//! Replication commands: SYNC and PSYNC make the connection a replica's link (see
//! [`crate::engine::replication`]), REPLCONF records what the replica says of itself, ROLE
//! says what this server is.

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::repl_state::ReplicaState;
use crate::engine::session::Session;
use crate::engine::spec::{acl, flag};
use crate::engine::{replica, replication};
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::session("sync", 1, |s, a| Box::pin(async move { sync(s, a) }))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING | flag::NO_MULTI)
            .docs("server", "1.0.0", "", "Internal command used for replication"),
        Command::session("psync", -3, |s, a| Box::pin(async move { sync(s, a) }))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING | flag::NO_MULTI)
            .docs("server", "2.8.0", "", "Internal command used for replication"),
        Command::session("replconf", -1, |s, a| Box::pin(async move { replconf(s, a) }))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::ALLOW_BUSY)
            .docs("server", "3.0.0", "O(1)", "An internal command for configuring the replication stream")
            .syscmd(),
        Command::session("wait", 3, |s, a| Box::pin(wait(s, a)))
            .flags(flag::NOSCRIPT)
            .acl(acl::CONNECTION)
            .tips(&["request_policy:all_shards", "response_policy:agg_min"])
            .docs(
                "generic",
                "3.0.0",
                "O(1)",
                "Wait for the synchronous replication of all the write commands sent in the context of the current connection",
            ),
        Command::session("replicaof", 3, |s, a| Box::pin(replicaof(s, a)))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::STALE | flag::NO_ASYNC_LOADING)
            .docs("server", "5.0.0", "O(1)", "Make the server a replica of another instance, or promote it as master."),
        Command::session("slaveof", 3, |s, a| Box::pin(replicaof(s, a)))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::STALE | flag::NO_ASYNC_LOADING)
            .docs("server", "1.0.0", "O(1)", "Make the server a replica of another instance, or promote it as master.")
            .deprecated("5.0.0", "`REPLICAOF`"),
        Command::session("role", 1, |s, _| Box::pin(async move { Ok(role(s)) }))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST)
            .acl(acl::ADMIN | acl::DANGEROUS)
            .docs(
                "server",
                "2.8.12",
                "O(1)",
                "Return the role of the instance in the context of replication",
            ),
    ]
}

/// SYNC, PSYNC replid offset: no reply here; the link sends `+FULLRESYNC` or `+CONTINUE`.
fn sync(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if s.client.replica.get() {
        return Ok(Reply::Several(Vec::new()));
    }
    if args.len() > 3 {
        return Err(CmdError::WrongArity("psync".into()));
    }
    // A replica serves replicas only the data it follows, once it does.
    if s.core.global.following.load(std::sync::atomic::Ordering::Acquire) && !replica::link_up(&s.core) {
        return Err(CmdError::msg("NOMASTERLINK Can't SYNC while not connected with my master"));
    }
    s.handover = Some(replication::request(args, &s.replconf));
    Ok(Reply::Several(Vec::new()))
}

/// REPLCONF option value [option value ...]: `listening-port`, `ip-address`, `capa`,
/// `rdb-only`, `rdb-filter-only` before a sync; `ack` and `getack` (answered by nothing here).
fn replconf(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if args.len() % 2 == 0 {
        return Err(CmdError::Syntax);
    }
    for pair in args[1..].chunks_exact(2) {
        let (opt, value) = (&pair[0], &pair[1]);
        match () {
            () if is(opt, "listening-port") => {
                let port = args::int(value)?;
                s.replconf.port =
                    u16::try_from(port).map_err(|_| CmdError::msg("ERR value is out of range"))?;
            }
            () if is(opt, "ip-address") => {
                s.replconf.ip = Some(String::from_utf8_lossy(value).into_owned());
            }
            () if is(opt, "capa") => {
                if is(value, "psync2") {
                    s.replconf.psync2 = true;
                } else if is(value, "eof") {
                    s.replconf.eof = true;
                }
            }
            () if is(opt, "rdb-only") => match args::int(value)? {
                0 => s.replconf.rdb_only = false,
                1 => s.replconf.rdb_only = true,
                _ => return Err(CmdError::Syntax),
            },
            // Every key is sent: functions do not exist yet, so the filter has nothing to drop.
            () if is(opt, "rdb-filter-only") => {}
            // From a replica's link these are read by the link itself; a plain client gets no
            // reply, as Redis gives none.
            () if is(opt, "ack") || is(opt, "getack") => return Ok(Reply::Several(Vec::new())),
            () => {
                return Err(CmdError::text(format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(opt)
                )))
            }
        }
    }
    Ok(Reply::Ok)
}

/// WAIT numreplicas timeout (ms, 0 for none): inside EXEC it answers at once, as Redis does.
async fn wait(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let wanted = usize::try_from(args::int(&args[1])?).unwrap_or(0);
    let ms =
        args::int(&args[2]).map_err(|_| CmdError::msg("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    if s.in_exec() {
        let target = replication::offset(&s.core);
        return Ok(Reply::Int(s.core.global.replication().acked(target) as i64));
    }
    let timeout = (ms > 0).then(|| std::time::Duration::from_millis(ms as u64));
    Ok(Reply::Int(replication::wait_for_replicas(&s.core, wanted, timeout).await as i64))
}

/// REPLICAOF host port | NO ONE.
async fn replicaof(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if is(&args[1], "no") && is(&args[2], "one") {
        if s.core.global.following.load(std::sync::atomic::Ordering::Acquire) {
            replica::follow(&s.core, None);
            // The shards log already when the stream exists (see the replica's full sync); this
            // covers a stream started otherwise, once EXEC (Sentinel sends it inside one) has
            // let go of the gates.
            let core = s.core.clone();
            glommio::spawn_local(async move { replication::stream_from_shards(&core).await }).detach();
            replication::disconnect_replicas(&s.core).await;
        }
        return Ok(Reply::Ok);
    }
    let port = args::int(&args[2])?;
    let port = u16::try_from(port).map_err(|_| CmdError::msg("ERR Invalid master port"))?;
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    let same = s.core.global.replication().master.as_ref().is_some_and(|m| m.host == host && m.port == port);
    if same {
        return Ok(Reply::status("OK Already connected to specified master"));
    }
    replica::follow(&s.core, Some((host, port)));
    Ok(Reply::Ok)
}

/// ROLE: `master`, the replication offset, and each replica's address, port and acknowledged
/// offset.
fn role(s: &Session) -> Reply {
    let offset = replication::offset(&s.core);
    let bulk = |t: String| Reply::Bulk(Bytes::from(t));
    if let Some(m) = s.core.global.replication().master.clone() {
        return Reply::Array(vec![
            bulk("slave".into()),
            bulk(m.host),
            Reply::Int(i64::from(m.port)),
            bulk(replica::role_state(m.state).into()),
            Reply::Int(offset as i64),
        ]);
    }
    let replicas = s
        .core
        .global
        .replication()
        .replicas
        .iter()
        .filter(|r| r.state == ReplicaState::Online)
        .map(|r| {
            Reply::Array(vec![
                Reply::Bulk(Bytes::from(r.ip.clone())),
                Reply::Bulk(Bytes::from(r.port.to_string())),
                Reply::Bulk(Bytes::from(r.ack.to_string())),
            ])
        })
        .collect();
    Reply::Array(vec![
        Reply::Bulk(Bytes::from_static(b"master")),
        Reply::Int(offset as i64),
        Reply::Array(replicas),
    ])
}
