//! Pub/Sub: SUBSCRIBE, PSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH, PUBSUB.
//!
//! A subscription lives on the subscriber's own core, in that core's registry. PUBLISH fans out
//! one hop per core; each core encodes the message into its subscribers' push buffers (in each
//! client's protocol) and wakes their connections. Messages from one publisher keep their order:
//! a PUBLISH completes on every core before the publisher's next command runs.

use std::collections::BTreeSet;
use std::rc::Rc;

use ahash::AHashMap;
use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::config::OutputLimit;
use crate::engine::client::Client;
use crate::engine::session::{Session, UNAVAILABLE};
use crate::facade::Reply;
use crate::glob;

/// One core's subscribers.
#[derive(Default)]
pub struct Registry {
    channels: AHashMap<Bytes, Vec<Rc<Client>>>,
    patterns: Vec<(Bytes, Rc<Client>)>,
}

impl Registry {
    fn add_channel(&mut self, channel: &Bytes, client: &Rc<Client>) {
        self.channels.entry(channel.clone()).or_default().push(client.clone());
    }

    fn remove_channel(&mut self, channel: &[u8], id: u64) {
        if let Some(subs) = self.channels.get_mut(channel) {
            subs.retain(|c| c.id != id);
            if subs.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    /// Forgets every subscription of client `id` (unsubscribe-all, RESET, disconnect).
    pub fn remove_client(&mut self, id: u64) {
        self.channels.retain(|_, subs| {
            subs.retain(|c| c.id != id);
            !subs.is_empty()
        });
        self.patterns.retain(|(_, c)| c.id != id);
    }

    /// Delivers a message to this core's subscribers; returns how many received it.
    pub fn publish(&self, channel: &Bytes, message: &Bytes, limit: OutputLimit) -> i64 {
        let mut n = 0;
        if let Some(subs) = self.channels.get(channel) {
            let push = Reply::Push(vec![
                Reply::bulk("message"),
                Reply::Bulk(channel.clone()),
                Reply::Bulk(message.clone()),
            ]);
            n += subs.iter().filter(|c| c.push(&push, limit)).count() as i64;
        }
        for (pattern, c) in &self.patterns {
            if glob::matches(pattern, channel, false) {
                let push = Reply::Push(vec![
                    Reply::bulk("pmessage"),
                    Reply::Bulk(pattern.clone()),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                n += i64::from(c.push(&push, limit));
            }
        }
        n
    }
}

/// Which kind of subscription a command names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
}

fn kind_of(args: &[Bytes]) -> Kind {
    if is(&args[0], "psubscribe") || is(&args[0], "punsubscribe") {
        Kind::Pattern
    } else {
        Kind::Channel
    }
}

fn count(s: &Session) -> i64 {
    (s.channels.len() + s.patterns.len()) as i64
}

fn confirm(s: &Session, what: &'static str, name: Reply) -> Reply {
    Reply::Push(vec![Reply::bulk(what), name, Reply::Int(count(s))])
}

fn sync_client(s: &Session) {
    s.client.subscriptions.set((s.channels.len(), s.patterns.len()));
}

/// SUBSCRIBE channel [channel ...], PSUBSCRIBE pattern [pattern ...]
pub fn subscribe(s: &mut Session, args: &[Bytes]) -> Reply {
    let kind = kind_of(args);
    let mut replies = Vec::with_capacity(args.len() - 1);
    for name in &args[1..] {
        let name = Bytes::copy_from_slice(name);
        let new = match kind {
            Kind::Channel => s.channels.insert(name.clone()),
            Kind::Pattern => s.patterns.insert(name.clone()),
        };
        if new {
            let mut shard = s.core.router.host().shard();
            match kind {
                Kind::Channel => shard.pubsub.add_channel(&name, &s.client),
                Kind::Pattern => shard.pubsub.patterns.push((name.clone(), s.client.clone())),
            }
        }
        let what = if kind == Kind::Channel { "subscribe" } else { "psubscribe" };
        replies.push(confirm(s, what, Reply::Bulk(name)));
    }
    sync_client(s);
    Reply::Several(replies)
}

/// UNSUBSCRIBE [channel ...], PUNSUBSCRIBE [pattern ...]: none named means all.
pub fn unsubscribe(s: &mut Session, args: &[Bytes]) -> Reply {
    let kind = kind_of(args);
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
            let mut shard = s.core.router.host().shard();
            match kind {
                Kind::Channel => shard.pubsub.remove_channel(&name, s.client.id),
                Kind::Pattern => shard.pubsub.patterns.retain(|(p, c)| !(c.id == s.client.id && *p == name)),
            }
        }
        replies.push(confirm(s, what, Reply::Bulk(name)));
    }
    sync_client(s);
    Reply::Several(replies)
}

/// Drops every subscription of the session (RESET, disconnect).
pub fn unsubscribe_all(s: &mut Session) {
    if s.channels.is_empty() && s.patterns.is_empty() {
        return;
    }
    s.core.router.host().shard().pubsub.remove_client(s.client.id);
    s.channels.clear();
    s.patterns.clear();
    sync_client(s);
}

/// PUBLISH channel message: delivered on every core; replies how many received it.
pub async fn publish(s: &Session, args: &[Bytes]) -> Reply {
    let (channel, message) = (args[1].clone(), args[2].clone());
    let limit = s.core.config().client_output_buffer_limit.pubsub;
    match s.each_shard(move |sh| sh.pubsub.publish(&channel, &message, limit)).await {
        Ok(counts) => Reply::Int(counts.into_iter().sum()),
        Err(_) => UNAVAILABLE,
    }
}

/// PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | HELP
pub async fn pubsub(s: &Session, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_lowercase();
    match (sub.as_str(), args.len()) {
        ("channels", 2 | 3) => {
            let pattern = args.get(2).cloned();
            let found = s
                .each_shard(move |sh| {
                    sh.pubsub
                        .channels
                        .keys()
                        .filter(|c| pattern.as_ref().map_or(true, |p| glob::matches(p, c, false)))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .await;
            let Ok(found) = found else { return UNAVAILABLE };
            let all: BTreeSet<Bytes> = found.into_iter().flatten().collect();
            Reply::Array(all.into_iter().map(Reply::Bulk).collect())
        }
        ("numsub", _) => {
            let names: Vec<Bytes> = args[2..].to_vec();
            let query = names.clone();
            let counts = s
                .each_shard(move |sh| {
                    query
                        .iter()
                        .map(|c| sh.pubsub.channels.get(c).map_or(0, Vec::len) as i64)
                        .collect::<Vec<_>>()
                })
                .await;
            let Ok(counts) = counts else { return UNAVAILABLE };
            Reply::Map(
                names
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| (Reply::Bulk(c), Reply::Int(counts.iter().map(|per| per[i]).sum())))
                    .collect(),
            )
        }
        ("numpat", 2) => {
            let found = s
                .each_shard(|sh| sh.pubsub.patterns.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
                .await;
            let Ok(found) = found else { return UNAVAILABLE };
            Reply::Int(found.into_iter().flatten().collect::<BTreeSet<_>>().len() as i64)
        }
        ("channels" | "numpat" | "help", _) => args::wrong_args(&format!("pubsub|{sub}")),
        _ => args::unknown_subcommand("PUBSUB", &args[1]),
    }
}
