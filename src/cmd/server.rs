//! Server commands: INFO (see [`crate::cmd::info`]), CONFIG, DBSIZE, FLUSHDB, FLUSHALL, TIME,
//! SHUTDOWN.

use std::time::Duration;

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::info;
use crate::engine::command::Command;
use crate::engine::local::CoreStats;
use crate::engine::session::Session;
use crate::engine::shard::Shard;
use crate::engine::slot::ShardId;
use crate::engine::snapshot::{self, OnRunning};
use crate::engine::spec::{acl, flag};
use crate::engine::stats::Stats;
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::session("info", -1, |s, a| Box::pin(info::info(s, a)))
            .flags(flag::LOADING | flag::STALE)
            .acl(acl::DANGEROUS)
            .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
            .docs("server", "1.0.0", "O(1)", "Get information and statistics about the server")
            .history(&[("7.0.0", "Added support for taking multiple section arguments.")]),
        Command::session("dbsize", 1, |s, _| Box::pin(dbsize(s)))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::KEYSPACE)
            .tips(&["request_policy:all_shards", "response_policy:agg_sum"])
            .docs("server", "1.0.0", "O(1)", "Return the number of keys in the selected database")
            .fan_out(),
        Command::session("flushdb", -1, |s, a| Box::pin(flush(s, a, false)))
            .flags(flag::WRITE)
            .acl(acl::KEYSPACE | acl::DANGEROUS)
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
            .docs("server", "1.0.0", "O(N) where N is the number of keys in the selected database", "Remove all keys from the current database")
            .history(&[("4.0.0", "Added the `ASYNC` flushing mode modifier."), ("6.2.0", "Added the `SYNC` flushing mode modifier.")])
            .fan_out(),
        Command::session("flushall", -1, |s, a| Box::pin(flush(s, a, true)))
            .flags(flag::WRITE)
            .acl(acl::KEYSPACE | acl::DANGEROUS)
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
            .docs("server", "1.0.0", "O(N) where N is the total number of keys in all databases", "Remove all keys from all databases")
            .history(&[("4.0.0", "Added the `ASYNC` flushing mode modifier."), ("6.2.0", "Added the `SYNC` flushing mode modifier.")])
            .fan_out(),
        Command::session("swapdb", 3, |s, a| Box::pin(swapdb(s, a)))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::KEYSPACE | acl::DANGEROUS)
            .docs("server", "4.0.0", "O(N) where N is the count of clients watching or blocking on keys from both databases.", "Swaps two Redis databases")
            .fan_out(),
        Command::inline("time", 1, |_, _| Ok(time()))
            .flags(flag::LOADING | flag::STALE | flag::FAST)
            .tips(&["nondeterministic_output"])
            .docs("server", "2.6.0", "O(1)", "Return the current server time"),
        Command::session("shutdown", -1, |s, a| Box::pin(shutdown(s, a)))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::NO_MULTI | flag::ALLOW_BUSY)
            .docs("server", "1.0.0", "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)", "Synchronously save the dataset to disk and then shut down the server")
            .history(&[("7.0.0", "Added the `NOW`, `FORCE` and `ABORT` modifiers.")]),
        Command::container("config", -2, vec![
            Command::session("get", -3, |s, a| Box::pin(async move { config_get(s, a) }))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .docs("server", "2.0.0", "O(N) when N is the number of configuration parameters provided", "Get the values of configuration parameters")
                .history(&[("7.0.0", "Added the ability to pass multiple pattern parameters in one call")]),
            Command::session("set", -4, |s, a| Box::pin(config_set(s, a)))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
                .docs("server", "2.0.0", "O(N) when N is the number of configuration parameters provided", "Set configuration parameters to the given values")
                .history(&[("7.0.0", "Added the ability to set multiple parameters in one call.")]),
            Command::session("rewrite", 2, |s, _| Box::pin(async move { config_rewrite(s) }))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .docs("server", "2.8.0", "O(1)", "Rewrite the configuration file with the in memory configuration"),
            Command::session("resetstat", 2, |s, _| Box::pin(config_resetstat(s)))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .docs("server", "2.0.0", "O(1)", "Reset the stats returned by INFO"),
            Command::inline("help", 2, |_, _| Ok(config_help()))
                .flags(flag::LOADING | flag::STALE)
                .docs("server", "5.0.0", "O(1)", "Show helpful text about the different subcommands"),
        ])
        .docs("server", "2.0.0", "Depends on subcommand.", "A container for server configuration commands"),
    ]
}

/// TIME: Unix seconds and microseconds, as two bulk strings.
fn time() -> Reply {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Reply::Array(vec![Reply::bulk(now.as_secs().to_string()), Reply::bulk(now.subsec_micros().to_string())])
}

/// DBSIZE: keys in the selected database, on every shard.
async fn dbsize(s: &mut Session) -> CmdResult {
    let db = s.db;
    let sizes = s.each_shard(move |shard| shard.dbs()[db].len()).await?;
    Ok(Reply::Int(sizes.into_iter().sum::<usize>() as i64))
}

/// FLUSHDB / FLUSHALL (`all`) [ASYNC | SYNC]: atomic across shards (every gate is held at
/// once).
async fn flush(s: &mut Session, args: &[Bytes], all: bool) -> CmdResult {
    if args.len() > 2 || args.get(1).is_some_and(|a| !is(a, "async") && !is(a, "sync")) {
        return Err(CmdError::Syntax);
    }
    let db = (!all).then_some(s.db);
    if all {
        // As Redis kills its child: a background save of what is about to go stops (each
        // shard's flush ends its snapshot).
        snapshot::cancel_background(&s.core.global);
    }
    // As Redis, logged even when there was nothing to flush.
    let flushed = on_every_shard(s, Some((db, args)), |_| move |sh: &mut Shard| sh.flush(db)).await;
    // Told even if a shard failed: the others forgot what their clients may cache.
    crate::engine::invalidation::flushed(&s.core);
    flushed?;
    if all {
        // As Redis: with save points the empty dataset is saved at once (a restart must not
        // bring the keys back).
        if !s.core.config().save.points.is_empty() {
            if let Err(e) = snapshot::save(&s.core, s.exec_tx.as_deref(), OnRunning::Cancel).await {
                tracing::warn!("FLUSHALL could not save the empty dataset: {e}");
            }
        }
    }
    Ok(Reply::Ok)
}

/// SWAPDB index1 index2: the two databases trade their keys on every shard at once (one
/// transaction holding them all), so no client sees one shard swapped and another not. Clients
/// stay in their database; those watching a key the swap touches fail their EXEC, and those
/// blocked on a key the swap brings are served, as in Redis.
async fn swapdb(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if s.core.global.cluster.is_some() {
        return Err(CmdError::msg("ERR SWAPDB is not allowed in cluster mode"));
    }
    let index = |arg: &[u8], invalid: &'static str| {
        args::int(arg).ok().and_then(|i| i32::try_from(i).ok()).ok_or(CmdError::msg(invalid))
    };
    let a = index(&args[1], "ERR invalid first DB index")?;
    let b = index(&args[2], "ERR invalid second DB index")?;
    let databases = s.core.config().databases;
    let in_range = |i: i32| usize::try_from(i).ok().filter(|&i| i < databases);
    let (Some(a), Some(b)) = (in_range(a), in_range(b)) else {
        return Err(CmdError::msg("ERR DB index is out of range"));
    };
    on_every_shard(s, Some((None, args)), |shard| {
        move |sh: &mut Shard| sh.swap_dbs(a, b, shard == ShardId(0))
    })
    .await?;
    Ok(Reply::Ok)
}

/// Runs `work(shard)` on every shard as one atomic step, logged (if `logged`) as its arguments
/// against its database (FLUSHDB, FLUSHALL, SWAPDB; DEBUG SLEEP logs nothing): through the
/// running EXEC's transaction, which holds every shard already, or a transaction of its own.
pub(crate) async fn on_every_shard<F>(
    s: &Session,
    logged: Option<(Option<usize>, &[Bytes])>,
    work: impl Fn(ShardId) -> F,
) -> Result<(), CmdError>
where
    F: FnOnce(&mut Shard) + Send + 'static,
{
    let logged = logged.map(|(db, args)| (db, args.iter().map(|a| &a[..]).collect::<Vec<&[u8]>>()));
    let shards: Vec<ShardId> = (0..s.core.router.shards()).map(ShardId).collect();
    let done = if let Some(tx) = &s.exec_tx {
        if let Some((db, args)) = &logged {
            tx.log(*db, args);
        }
        futures::future::join_all(shards.into_iter().map(|shard| s.run_on(shard, work(shard)))).await
    } else {
        let tx = s.core.router.begin(shards).await.map_err(|_| CmdError::Unavailable)?;
        if let Some((db, args)) = &logged {
            tx.log(*db, args);
        }
        let jobs = tx.shards().iter().map(|&shard| (shard, work(shard))).collect();
        tx.finish(jobs).await
    };
    if done.iter().any(Result::is_err) {
        return Err(CmdError::Unavailable);
    }
    Ok(())
}

/// SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]: saves a snapshot when asked (SAVE; save
/// points would ask too), then stops every core. On success the client gets no reply: Redis
/// just closes the connection. A failed save stops nothing unless FORCE.
async fn shutdown(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let (mut save, mut nosave, mut force) = (false, false, false);
    for a in &args[1..] {
        if is(a, "abort") {
            return Err(CmdError::msg("ERR No shutdown in progress."));
        } else if is(a, "save") {
            save = true;
        } else if is(a, "nosave") {
            nosave = true;
        } else if is(a, "force") {
            force = true;
        } else if !is(a, "now") {
            return Err(CmdError::Syntax);
        }
    }
    if save && nosave {
        return Err(CmdError::Syntax);
    }
    // A busy script: only NOSAVE shuts down (its writes may be half done).
    if !nosave {
        if let Some(busy) = crate::engine::script::busy::refusal() {
            return Err(busy);
        }
    }
    tracing::warn!(client = s.client.id, "User requested shutdown...");
    if !nosave && (save || !s.core.config().save.points.is_empty()) {
        tracing::info!("Saving the final RDB snapshot before exiting.");
        if let Err(e) = snapshot::save(&s.core, None, OnRunning::Cancel).await {
            tracing::warn!("Error trying to save the DB, can't exit: {e}");
            if !force {
                return Err(CmdError::msg("ERR Errors trying to SHUTDOWN. Check logs."));
            }
        }
    }
    s.core.global.request_shutdown();
    s.closing = true;
    Ok(Reply::Several(Vec::new()))
}

/// CONFIG GET parameter [parameter ...]
fn config_get(s: &Session, args: &[Bytes]) -> CmdResult {
    let patterns: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
    let config = s.core.config();
    Ok(Reply::Map(
        config
            .get(&patterns)
            .into_iter()
            .map(|(name, value)| (Reply::bulk(name), Reply::bulk(value)))
            .collect(),
    ))
}

/// CONFIG SET parameter value [parameter value ...]: all of them, or none.
async fn config_set(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if args.len() % 2 != 0 {
        return Err(CmdError::arity("config|set"));
    }
    let pairs: Vec<(String, String)> = args[2..]
        .chunks_exact(2)
        .map(|p| (String::from_utf8_lossy(&p[0]).into_owned(), String::from_utf8_lossy(&p[1]).into_owned()))
        .collect();
    let global = &s.core.global;
    let before = global.listen_generation();
    let appendonly = s.core.config().appendonly;
    global.set_config(&pairs).map_err(|e| CmdError::text(format!("ERR {e}")))?;
    // The next command sees the change, as in Redis. Shards read the configuration before each
    // hop they run and each connection's batch; this client's next command may be in this
    // core's current batch (a write deciding an encoding by the old limits), so the local
    // shard reads it now. (No hop: inside EXEC, the transaction may not hold the shards.)
    s.core.router.try_local(Shard::tick);
    let config = global.config();
    global.journal.set_waits(config.appendfsync == crate::config::AppendFsync::Always);
    // Inside EXEC the gates it needs are held: the cron applies the change once EXEC is over.
    if config.appendonly != appendonly && !s.in_exec() {
        if let Err(why) = crate::engine::aof::set_appendonly(&s.core, config.appendonly).await {
            let _ = global.set_config(&[("appendonly".into(), if appendonly { "yes" } else { "no" }.into())]);
            return Err(CmdError::text(format!(
                "ERR CONFIG SET failed (possibly related to argument 'appendonly') - {why}"
            )));
        }
    }
    // As in Redis, the new ports listen once OK is sent. The cores rebind on their own loop
    // turn (within 20 ms); a core that takes longer than a second is left to it.
    let generation = global.listen_generation();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while generation != before && !global.all_bound(generation) && std::time::Instant::now() < deadline {
        glommio::timer::Timer::new(Duration::from_millis(1)).await;
    }
    Ok(Reply::Ok)
}

/// CONFIG REWRITE: the running configuration into the file the server started with.
fn config_rewrite(s: &mut Session) -> CmdResult {
    let path = &s.core.global.config_file;
    if path.is_empty() {
        return Err(CmdError::msg("ERR The server is running without a config file"));
    }
    let config = s.core.config();
    // Users go into the config file unless an ACL file keeps them (ACL SAVE writes that).
    let users = if config.aclfile.is_empty() { s.core.global.users.lines() } else { Vec::new() };
    match config.rewrite(std::path::Path::new(path), &users) {
        Ok(()) => {
            tracing::info!("CONFIG REWRITE executed with success.");
            Ok(Reply::Ok)
        }
        Err(e) => {
            tracing::warn!("CONFIG REWRITE failed: {e}");
            Err(CmdError::text(format!("ERR Rewriting config file: {e}")))
        }
    }
}

/// CONFIG RESETSTAT: counters restart from zero on every core; gauges (connected clients) stay.
async fn config_resetstat(s: &mut Session) -> CmdResult {
    s.core
        .router
        .each_core(|local| {
            let mut stats = local.stats.borrow_mut();
            *stats =
                CoreStats { clients: stats.clients, tls_clients: stats.tls_clients, ..CoreStats::default() };
            *local.commands.borrow_mut() = Stats::default();
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    s.each_shard(Shard::reset_stats).await?;
    s.core.global.users.reset_denials();
    Ok(Reply::Ok)
}

/// CONFIG HELP
fn config_help() -> Reply {
    args::help(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    )
}
