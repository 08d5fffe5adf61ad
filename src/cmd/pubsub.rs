//! Pub/Sub commands: SUBSCRIBE, PSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH, PUBSUB, and sharded
//! pub/sub (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH).
//!
//! A subscription lives on the subscriber's own core, in that core's registry
//! ([`crate::engine::pubsub`]). PUBLISH reaches every core; messages from one publisher keep
//! their order: a PUBLISH completes on every core before the publisher's next command runs.
//!
//! In cluster mode, as in Redis, PUBLISH also goes over the bus to every node, and SPUBLISH to
//! the nodes of this node's shard (its primary and that primary's replicas); a shard channel is
//! routed as a key, so a client subscribes on a node that serves the channel's slot.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::cmd::args;
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::cluster::Spread;
use crate::engine::command::Command;
use crate::engine::pubsub::Registry;
use crate::engine::session::Session;
use crate::engine::spec::{flag, key, KeySpec};
use crate::facade::Reply;
use crate::glob;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::session("subscribe", -2, |s, a| Box::pin(async move { Ok(subscribe(s, a, Kind::Channel)) }))
            .flags(flag::PUBSUB | flag::NOSCRIPT | flag::LOADING | flag::STALE)
            .docs("pubsub", "2.0.0", "O(N) where N is the number of channels to subscribe to.", "Listen for messages published to the given channels")
            .when_subscribed(),
        Command::session("psubscribe", -2, |s, a| Box::pin(async move { Ok(subscribe(s, a, Kind::Pattern)) }))
            .flags(flag::PUBSUB | flag::NOSCRIPT | flag::LOADING | flag::STALE)
            .docs("pubsub", "2.0.0", "O(N) where N is the number of patterns the client is already subscribed to.", "Listen for messages published to channels matching the given patterns")
            .when_subscribed(),
        Command::session("unsubscribe", -1, |s, a| Box::pin(async move { Ok(unsubscribe(s, a, Kind::Channel)) }))
            .flags(flag::PUBSUB | flag::NOSCRIPT | flag::LOADING | flag::STALE)
            .docs("pubsub", "2.0.0", "O(N) where N is the number of clients already subscribed to a channel.", "Stop listening for messages posted to the given channels")
            .when_subscribed(),
        Command::session("punsubscribe", -1, |s, a| Box::pin(async move { Ok(unsubscribe(s, a, Kind::Pattern)) }))
            .flags(flag::PUBSUB | flag::NOSCRIPT | flag::LOADING | flag::STALE)
            .docs("pubsub", "2.0.0", "O(N+M) where N is the number of patterns the client is already subscribed and M is the number of total patterns subscribed in the system (by any client).", "Stop listening for messages posted to channels matching the given patterns")
            .when_subscribed(),
        Command::session("ssubscribe", -2, |s, a| Box::pin(async move { ssubscribe(s, a) }))
            .flags(flag::PUBSUB | flag::NOSCRIPT | flag::LOADING | flag::STALE)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::NOT_KEY))
            .docs("pubsub", "7.0.0", "O(N) where N is the number of shard channels to subscribe to.", "Listen for messages published to the given shard channels")
            .when_subscribed(),
        Command::session("sunsubscribe", -1, |s, a| Box::pin(async move { Ok(unsubscribe(s, a, Kind::Shard)) }))
            .flags(flag::PUBSUB | flag::NOSCRIPT | flag::LOADING | flag::STALE)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::NOT_KEY))
            .docs("pubsub", "7.0.0", "O(N) where N is the number of clients already subscribed to a shard channel.", "Stop listening for messages posted to the given shard channels")
            .when_subscribed(),
        Command::session("spublish", 3, |s, a| Box::pin(publish(s, a, true)))
            .flags(flag::PUBSUB | flag::LOADING | flag::STALE | flag::FAST)
            .may_replicate()
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::NOT_KEY))
            .docs("pubsub", "7.0.0", "O(N) where N is the number of clients subscribed to the receiving shard channel.", "Post a message to a shard channel"),
        Command::session("publish", 3, |s, a| Box::pin(publish(s, a, false)))
            .flags(flag::PUBSUB | flag::LOADING | flag::STALE | flag::FAST)
            .may_replicate()
            .docs("pubsub", "2.0.0", "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).", "Post a message to a channel"),
        Command::container("pubsub", -2, vec![
            Command::session("channels", -2, |s, a| Box::pin(channels(s, a, "pubsub|channels", plain)))
                .flags(flag::PUBSUB | flag::LOADING | flag::STALE)
                .docs("pubsub", "2.8.0", "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)", "List active channels"),
            Command::session("numsub", -2, |s, a| Box::pin(numsub(s, a, plain)))
                .flags(flag::PUBSUB | flag::LOADING | flag::STALE)
                .docs("pubsub", "2.8.0", "O(N) for the NUMSUB subcommand, where N is the number of requested channels", "Get the count of subscribers for channels"),
            Command::session("shardchannels", -2, |s, a| Box::pin(channels(s, a, "pubsub|shardchannels", sharded)))
                .flags(flag::PUBSUB | flag::LOADING | flag::STALE)
                .docs("pubsub", "7.0.0", "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).", "List active shard channels"),
            Command::session("shardnumsub", -2, |s, a| Box::pin(numsub(s, a, sharded)))
                .flags(flag::PUBSUB | flag::LOADING | flag::STALE)
                .docs("pubsub", "7.0.0", "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels", "Get the count of subscribers for shard channels"),
            Command::session("numpat", 2, |s, _| Box::pin(numpat(s)))
                .flags(flag::PUBSUB | flag::LOADING | flag::STALE)
                .docs("pubsub", "2.8.0", "O(1)", "Get the count of unique patterns pattern subscriptions"),
            Command::inline("help", 2, |_, _| Ok(pubsub_help()))
                .flags(flag::LOADING | flag::STALE)
                .docs("pubsub", "6.2.0", "O(1)", "Show helpful text about the different subcommands"),
        ])
        .docs("pubsub", "2.8.0", "Depends on subcommand.", "A container for Pub/Sub commands"),
    ]
}

/// Which kind of subscription a command names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
    /// A shard channel (SSUBSCRIBE).
    Shard,
}

/// The count a confirmation carries: channels and patterns together, shard channels apart
/// (as Redis counts them).
fn count(s: &Session, kind: Kind) -> i64 {
    match kind {
        Kind::Shard => s.client.shard_channels.borrow().len() as i64,
        _ => (s.channels.len() + s.patterns.len()) as i64,
    }
}

fn confirm(s: &Session, kind: Kind, what: &'static str, name: Reply) -> Reply {
    Reply::Push(vec![Reply::bulk(what), name, Reply::Int(count(s, kind))])
}

fn sync_client(s: &Session) {
    s.client.subscriptions.set((s.channels.len(), s.patterns.len()));
    s.core.local().note_subscribers(&s.core.global, s.core.router.local().0);
}

/// SUBSCRIBE channel [channel ...], PSUBSCRIBE pattern [pattern ...]
fn subscribe(s: &mut Session, args: &[Bytes], kind: Kind) -> Reply {
    let mut replies = Vec::with_capacity(args.len() - 1);
    for name in &args[1..] {
        let name = Bytes::copy_from_slice(name);
        let new = match kind {
            Kind::Channel => s.channels.insert(name.clone()),
            Kind::Pattern => s.patterns.insert(name.clone()),
            Kind::Shard => s.client.shard_channels.borrow_mut().insert(name.clone()),
        };
        if new {
            let mut registry = s.core.local().pubsub.borrow_mut();
            match kind {
                Kind::Channel => registry.add_channel(&name, &s.client),
                Kind::Pattern => registry.add_pattern(&name, &s.client),
                Kind::Shard => registry.add_shard(&name, &s.client),
            }
        }
        let what = match kind {
            Kind::Channel => "subscribe",
            Kind::Pattern => "psubscribe",
            Kind::Shard => "ssubscribe",
        };
        replies.push(confirm(s, kind, what, Reply::Bulk(name)));
    }
    sync_client(s);
    Reply::Several(replies)
}

/// UNSUBSCRIBE [channel ...], PUNSUBSCRIBE [pattern ...]: none named means all.
fn unsubscribe(s: &mut Session, args: &[Bytes], kind: Kind) -> Reply {
    let what = match kind {
        Kind::Channel => "unsubscribe",
        Kind::Pattern => "punsubscribe",
        Kind::Shard => "sunsubscribe",
    };
    let names: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        match kind {
            Kind::Channel => s.channels.iter().cloned().collect(),
            Kind::Pattern => s.patterns.iter().cloned().collect(),
            Kind::Shard => s.client.shard_channels.borrow().iter().cloned().collect(),
        }
    };
    if names.is_empty() {
        return Reply::Several(vec![confirm(s, kind, what, Reply::Nil)]);
    }
    let mut replies = Vec::with_capacity(names.len());
    for name in names {
        let removed = match kind {
            Kind::Channel => s.channels.remove(&name),
            Kind::Pattern => s.patterns.remove(&name),
            Kind::Shard => s.client.shard_channels.borrow_mut().remove(&name),
        };
        if removed {
            let mut registry = s.core.local().pubsub.borrow_mut();
            match kind {
                Kind::Channel => registry.remove_channel(&name, s.client.id),
                Kind::Pattern => registry.remove_pattern(&name, s.client.id),
                Kind::Shard => registry.remove_shard(&name, s.client.id),
            }
        }
        replies.push(confirm(s, kind, what, Reply::Bulk(name)));
    }
    sync_client(s);
    Reply::Several(replies)
}

/// SSUBSCRIBE shardchannel [shardchannel ...]: never inside EXEC (Redis refuses it to a
/// client that may not block).
fn ssubscribe(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if s.in_exec() {
        return Err(CmdError::msg("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client"));
    }
    Ok(subscribe(s, args, Kind::Shard))
}

/// PUBLISH channel message (`shard` false: delivered on every core, and in cluster mode sent
/// to every node) and SPUBLISH shardchannel message (`shard`: to shard-channel subscribers,
/// and in cluster mode to the nodes of this node's shard); replies how many received it here.
async fn publish(s: &mut Session, args: &[Bytes], shard: bool) -> CmdResult {
    let (channel, message) = (args[1].clone(), args[2].clone());
    if let Some(cluster) = &s.core.global.cluster {
        let (channel, message) = (channel.clone(), message.clone());
        cluster.propagate(if shard {
            Spread::Shard { channel, message }
        } else {
            Spread::Publish { channel, message }
        });
    } else if !s.replaying {
        // Outside cluster mode the replicas' subscribers get it through the replication stream,
        // and not the AOF (Redis's `forceCommandPropagation(c, PROPAGATE_REPL)`): after the
        // writes before it, unless an EXEC or a script holds some of those.
        let journal = &s.core.global.journal;
        if journal.feeds_replicas() {
            if !s.in_exec() && !s.in_script {
                journal.in_stream(journal.last_ticket()).await;
            }
            journal.feed_now(&[&args[0], &channel, &message]);
        }
    }
    let limit = s.core.config().client_output_buffer_limit.pubsub;
    let counts = s
        .core
        .router
        .each_core(move |local| {
            let registry = local.pubsub.borrow();
            if shard {
                registry.publish_shard(&channel, &message, limit)
            } else {
                registry.publish(&channel, &message, limit)
            }
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    Ok(Reply::Int(counts.into_iter().sum()))
}

/// Subscribers by channel, of one namespace: channels, or shard channels.
type Subscribers = ahash::AHashMap<Bytes, Vec<std::rc::Rc<crate::engine::client::Client>>>;

/// The channels of [`Registry::channels`](crate::engine::pubsub::Registry).
fn plain(r: &Registry) -> &Subscribers {
    &r.channels
}

/// The shard channels of [`Registry::shard`](crate::engine::pubsub::Registry).
fn sharded(r: &Registry) -> &Subscribers {
    &r.shard
}

/// PUBSUB CHANNELS [pattern], PUBSUB SHARDCHANNELS [pattern] (`name`), over `pick`'s channels.
async fn channels(
    s: &mut Session,
    args: &[Bytes],
    name: &str,
    pick: fn(&Registry) -> &Subscribers,
) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::arity(name));
    }
    let pattern = args.get(2).cloned();
    let found = s
        .core
        .router
        .each_core(move |local| {
            let registry = local.pubsub.borrow();
            let matching = pick(&registry)
                .keys()
                .filter(|c| pattern.as_ref().is_none_or(|p| glob::matches(p, c, false)));
            matching.cloned().collect::<Vec<_>>()
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    let all: BTreeSet<Bytes> = found.into_iter().flatten().collect();
    Ok(Reply::Array(all.into_iter().map(Reply::Bulk).collect()))
}

/// PUBSUB NUMSUB [channel ...], PUBSUB SHARDNUMSUB [shardchannel ...], over `pick`'s channels.
async fn numsub(s: &mut Session, args: &[Bytes], pick: fn(&Registry) -> &Subscribers) -> CmdResult {
    let names: Vec<Bytes> = args[2..].to_vec();
    let query = names.clone();
    let counts = s
        .core
        .router
        .each_core(move |local| {
            let registry = local.pubsub.borrow();
            query.iter().map(|c| pick(&registry).get(c).map_or(0, Vec::len) as i64).collect::<Vec<_>>()
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    Ok(Reply::Map(
        names
            .into_iter()
            .enumerate()
            .map(|(i, c)| (Reply::Bulk(c), Reply::Int(counts.iter().map(|per| per[i]).sum())))
            .collect(),
    ))
}

/// PUBSUB NUMPAT
async fn numpat(s: &mut Session) -> CmdResult {
    let found = s
        .core
        .router
        .each_core(|local| local.pubsub.borrow().patterns.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
        .await
        .map_err(|_| CmdError::Unavailable)?;
    Ok(Reply::Int(found.into_iter().flatten().collect::<BTreeSet<_>>().len() as i64))
}

/// PUBSUB HELP
fn pubsub_help() -> Reply {
    args::help(
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    )
}
