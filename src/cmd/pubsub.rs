//! Pub/Sub commands: SUBSCRIBE, PSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH, PUBSUB.
//!
//! A subscription lives on the subscriber's own core, in that core's registry
//! ([`crate::engine::pubsub`]). PUBLISH reaches every core; messages from one publisher keep
//! their order: a PUBLISH completes on every core before the publisher's next command runs.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::cmd::args;
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::spec::flag;
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
        Command::session("publish", 3, |s, a| Box::pin(publish(s, a)))
            .flags(flag::PUBSUB | flag::LOADING | flag::STALE | flag::FAST)
            .may_replicate()
            .docs("pubsub", "2.0.0", "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).", "Post a message to a channel"),
        Command::container("pubsub", -2, vec![
            Command::session("channels", -2, |s, a| Box::pin(channels(s, a)))
                .flags(flag::PUBSUB | flag::LOADING | flag::STALE)
                .docs("pubsub", "2.8.0", "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)", "List active channels"),
            Command::session("numsub", -2, |s, a| Box::pin(numsub(s, a)))
                .flags(flag::PUBSUB | flag::LOADING | flag::STALE)
                .docs("pubsub", "2.8.0", "O(N) for the NUMSUB subcommand, where N is the number of requested channels", "Get the count of subscribers for channels"),
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
}

fn count(s: &Session) -> i64 {
    (s.channels.len() + s.patterns.len()) as i64
}

fn confirm(s: &Session, what: &'static str, name: Reply) -> Reply {
    Reply::Push(vec![Reply::bulk(what), name, Reply::Int(count(s))])
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
        };
        if new {
            let mut registry = s.core.local().pubsub.borrow_mut();
            match kind {
                Kind::Channel => registry.add_channel(&name, &s.client),
                Kind::Pattern => registry.add_pattern(&name, &s.client),
            }
        }
        let what = if kind == Kind::Channel { "subscribe" } else { "psubscribe" };
        replies.push(confirm(s, what, Reply::Bulk(name)));
    }
    sync_client(s);
    Reply::Several(replies)
}

/// UNSUBSCRIBE [channel ...], PUNSUBSCRIBE [pattern ...]: none named means all.
fn unsubscribe(s: &mut Session, args: &[Bytes], kind: Kind) -> Reply {
    let what = if kind == Kind::Channel { "unsubscribe" } else { "punsubscribe" };
    let names: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else if kind == Kind::Channel {
        s.channels.iter().cloned().collect()
    } else {
        s.patterns.iter().cloned().collect()
    };
    if names.is_empty() {
        return Reply::Several(vec![confirm(s, what, Reply::Nil)]);
    }
    let mut replies = Vec::with_capacity(names.len());
    for name in names {
        let removed = match kind {
            Kind::Channel => s.channels.remove(&name),
            Kind::Pattern => s.patterns.remove(&name),
        };
        if removed {
            let mut registry = s.core.local().pubsub.borrow_mut();
            match kind {
                Kind::Channel => registry.remove_channel(&name, s.client.id),
                Kind::Pattern => registry.remove_pattern(&name, s.client.id),
            }
        }
        replies.push(confirm(s, what, Reply::Bulk(name)));
    }
    sync_client(s);
    Reply::Several(replies)
}

/// PUBLISH channel message: delivered on every core; replies how many received it.
async fn publish(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let (channel, message) = (args[1].clone(), args[2].clone());
    let limit = s.core.config().client_output_buffer_limit.pubsub;
    let counts = s
        .core
        .router
        .each_core(move |local| local.pubsub.borrow().publish(&channel, &message, limit))
        .await
        .map_err(|_| CmdError::Unavailable)?;
    Ok(Reply::Int(counts.into_iter().sum()))
}

/// PUBSUB CHANNELS [pattern]
async fn channels(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::arity("pubsub|channels"));
    }
    let pattern = args.get(2).cloned();
    let found = s
        .core
        .router
        .each_core(move |local| {
            local
                .pubsub
                .borrow()
                .channels
                .keys()
                .filter(|c| pattern.as_ref().is_none_or(|p| glob::matches(p, c, false)))
                .cloned()
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    let all: BTreeSet<Bytes> = found.into_iter().flatten().collect();
    Ok(Reply::Array(all.into_iter().map(Reply::Bulk).collect()))
}

/// PUBSUB NUMSUB [channel ...]
async fn numsub(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let names: Vec<Bytes> = args[2..].to_vec();
    let query = names.clone();
    let counts = s
        .core
        .router
        .each_core(move |local| {
            let registry = local.pubsub.borrow();
            query.iter().map(|c| registry.channels.get(c).map_or(0, Vec::len) as i64).collect::<Vec<_>>()
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
        ],
    )
}
