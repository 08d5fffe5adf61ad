//! Replication commands: SYNC and PSYNC make the connection a replica's link (see
//! [`crate::engine::replication`]), REPLCONF records what the replica says of itself,
//! REPLICAOF follows a primary ([`crate::engine::replica`]), FAILOVER hands the primary's role
//! to a replica ([`crate::engine::failover`]), ROLE says what this server is.

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::repl_state::{Failover, FailoverPhase, ReplicaState};
use crate::engine::session::Session;
use crate::engine::spec::{acl, flag};
use crate::engine::{failover, replica, replication};
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::session("sync", 1, |s, a| Box::pin(sync(s, a)))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING | flag::NO_MULTI)
            .docs("server", "1.0.0", "", "Internal command used for replication"),
        Command::session("psync", -3, |s, a| Box::pin(sync(s, a)))
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
        Command::session("failover", -1, |s, a| Box::pin(failover(s, a)))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::STALE)
            .docs(
                "server",
                "6.2.0",
                "O(1)",
                "Start a coordinated failover between this server and one of its replicas.",
            ),
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

/// SYNC, PSYNC replid offset [FAILOVER]: no reply here; the link sends `+FULLRESYNC` or
/// `+CONTINUE`. A primary failing over to this replica adds `FAILOVER`: this server becomes
/// the primary first, when the primary's replication id is still ours.
async fn sync(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if s.client.replica.get() {
        return Ok(Reply::Several(Vec::new()));
    }
    if args.len() > 3 && is(&args[3], "failover") {
        tracing::warn!("Failover request received for replid {}.", String::from_utf8_lossy(&args[1]));
        if !s.core.global.following.load(std::sync::atomic::Ordering::Acquire) {
            return Err(CmdError::msg("ERR PSYNC FAILOVER can't be sent to a master."));
        }
        if args[1] != s.core.global.replication().replid.as_bytes() {
            return Err(CmdError::msg("ERR PSYNC FAILOVER replid must match my replid."));
        }
        replica::promote(&s.core).await;
        tracing::info!("MASTER MODE enabled (failover request from '{}')", s.client.info_line());
    }
    if s.core.global.replication().failover.is_some() {
        return Err(CmdError::msg("NOMASTERLINK Can't SYNC while failing over"));
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
    // What this read's inline commands wrote (a SET or a one-shard script run on this core's
    // shard) is in the stream before the offset to wait for is read.
    s.core.router.publish_local();
    Ok(Reply::Int(replication::wait_for_replicas(&s.core, wanted, timeout).await as i64))
}

/// REPLICAOF host port | NO ONE.
async fn replicaof(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if s.core.global.cluster.is_some() {
        return Err(CmdError::msg("ERR REPLICAOF not allowed in cluster mode."));
    }
    if s.core.global.replication().failover.is_some() {
        return Err(CmdError::msg("ERR REPLICAOF not allowed while failing over."));
    }
    if is(&args[1], "no") && is(&args[2], "one") {
        replica::promote(&s.core).await;
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

/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]: see [`crate::engine::failover`].
async fn failover(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if s.core.global.cluster.is_some() {
        return Err(CmdError::msg(
            "ERR FAILOVER not allowed in cluster mode. Use CLUSTER FAILOVER command instead.",
        ));
    }
    if args.len() == 2 && is(&args[1], "abort") {
        if s.core.global.replication().failover.is_none() {
            return Err(CmdError::msg("ERR No failover in progress."));
        }
        failover::abort(&s.core, "Failover manually aborted").await;
        return Ok(Reply::Ok);
    }
    let (mut timeout, mut force, mut target) = (0i64, false, None);
    let mut j = 1;
    while j < args.len() {
        if is(&args[j], "timeout") && j + 1 < args.len() && timeout == 0 {
            timeout = args::int(&args[j + 1])?;
            if timeout <= 0 {
                return Err(CmdError::msg("ERR FAILOVER timeout must be greater than 0"));
            }
            j += 2;
        } else if is(&args[j], "to") && j + 2 < args.len() && target.is_none() {
            let port = args::int(&args[j + 2])?;
            target = Some((String::from_utf8_lossy(&args[j + 1]).into_owned(), port));
            j += 3;
        } else if is(&args[j], "force") && !force {
            force = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    {
        let st = s.core.global.replication();
        if st.failover.is_some() {
            return Err(CmdError::msg("ERR FAILOVER already in progress."));
        }
        if st.master.is_some() {
            return Err(CmdError::msg("ERR FAILOVER is not valid when server is a replica."));
        }
        if st.replicas.is_empty() {
            return Err(CmdError::msg("ERR FAILOVER requires connected replicas."));
        }
        if force && (timeout == 0 || target.is_none()) {
            return Err(CmdError::msg(
                "ERR FAILOVER with force option requires both a timeout and target HOST and IP.",
            ));
        }
        if let Some((host, port)) = &target {
            let found =
                st.replicas.iter().find(|r| r.ip.eq_ignore_ascii_case(host) && i64::from(r.port) == *port);
            match found {
                None => return Err(CmdError::msg("ERR FAILOVER target HOST and PORT is not a replica.")),
                Some(r) if r.state != ReplicaState::Online => {
                    return Err(CmdError::msg("ERR FAILOVER target replica is not online."))
                }
                Some(_) => {}
            }
        }
    }
    let target = target.map(|(h, p)| (h, u16::try_from(p).unwrap_or(0)));
    let until =
        (timeout > 0).then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout as u64));
    let failover = Failover { phase: FailoverPhase::WaitForSync, target, until, force, answer: None };
    if !failover::start(&s.core, failover) {
        return Err(CmdError::msg("ERR FAILOVER already in progress."));
    }
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
