//! One core's pub/sub subscribers: a subscription lives on the subscriber's own core. PUBLISH
//! reaches every core (a core hop each), which encodes the message into its subscribers' push
//! buffers and wakes their connections.
//!
//! Shard channels (SSUBSCRIBE, SPUBLISH) are a namespace of their own, without patterns; a
//! client's set of them lives in its [`Client`], so that a core can drop them when the cluster
//! moves their slot away (Redis's `removeChannelsInSlot`).

use std::rc::Rc;

use ahash::AHashMap;
use bytes::Bytes;

use crate::config::OutputLimit;
use crate::engine::client::Client;
use crate::facade::Reply;
use crate::glob;

/// One core's subscribers.
#[derive(Default)]
pub(crate) struct Registry {
    /// Subscribers by channel.
    pub(crate) channels: AHashMap<Bytes, Vec<Rc<Client>>>,
    /// Pattern subscriptions.
    pub(crate) patterns: Vec<(Bytes, Rc<Client>)>,
    /// Subscribers by shard channel.
    pub(crate) shard: AHashMap<Bytes, Vec<Rc<Client>>>,
}

/// Removes client `id` from `channel`'s subscribers in `map`, and the channel once nobody is left.
fn unsubscribe(map: &mut AHashMap<Bytes, Vec<Rc<Client>>>, channel: &[u8], id: u64) {
    if let Some(subs) = map.get_mut(channel) {
        subs.retain(|c| c.id != id);
        if subs.is_empty() {
            map.remove(channel);
        }
    }
}

impl Registry {
    /// Subscribes `client` to `channel`.
    pub(crate) fn add_channel(&mut self, channel: &Bytes, client: &Rc<Client>) {
        self.channels.entry(channel.clone()).or_default().push(client.clone());
    }

    /// Unsubscribes client `id` from `channel`.
    pub(crate) fn remove_channel(&mut self, channel: &[u8], id: u64) {
        unsubscribe(&mut self.channels, channel, id);
    }

    /// Whether nobody on this core subscribes to a channel or a pattern (which keyspace
    /// notifications may reach; shard channels never get them).
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty()
    }

    /// Subscribes `client` to shard channel `channel`.
    pub(crate) fn add_shard(&mut self, channel: &Bytes, client: &Rc<Client>) {
        self.shard.entry(channel.clone()).or_default().push(client.clone());
    }

    /// Unsubscribes client `id` from shard channel `channel`.
    pub(crate) fn remove_shard(&mut self, channel: &[u8], id: u64) {
        unsubscribe(&mut self.shard, channel, id);
    }

    /// Delivers a message to this core's subscribers of shard channel `channel`; returns how
    /// many received it.
    pub(crate) fn publish_shard(&self, channel: &Bytes, message: &Bytes, limit: OutputLimit) -> i64 {
        let Some(subs) = self.shard.get(channel) else { return 0 };
        let push = Reply::Push(vec![
            Reply::bulk("smessage"),
            Reply::Bulk(channel.clone()),
            Reply::Bulk(message.clone()),
        ]);
        subs.iter().filter(|c| c.push(&push, limit)).count() as i64
    }

    /// Unsubscribes everyone from the shard channels `lost` says this node no longer serves
    /// (their slot moved away): each subscriber gets `sunsubscribe` with its remaining count,
    /// channels in byte order, subscribers in the order they came. Returns whether any was.
    pub(crate) fn drop_shard_channels(&mut self, lost: impl Fn(&[u8]) -> bool, limit: OutputLimit) -> bool {
        let mut gone: Vec<Bytes> = self.shard.keys().filter(|c| lost(c)).cloned().collect();
        gone.sort();
        for channel in &gone {
            for client in self.shard.remove(channel).unwrap_or_default() {
                let left = {
                    let mut mine = client.shard_channels.borrow_mut();
                    mine.remove(channel);
                    mine.len()
                };
                let push = Reply::Push(vec![
                    Reply::bulk("sunsubscribe"),
                    Reply::Bulk(channel.clone()),
                    Reply::Int(left as i64),
                ]);
                client.push(&push, limit);
            }
        }
        !gone.is_empty()
    }

    /// Forgets every subscription of client `id` (unsubscribe-all, RESET, disconnect).
    pub(crate) fn remove_client(&mut self, id: u64) {
        self.channels.retain(|_, subs| {
            subs.retain(|c| c.id != id);
            !subs.is_empty()
        });
        self.patterns.retain(|(_, c)| c.id != id);
        self.shard.retain(|_, subs| {
            subs.retain(|c| c.id != id);
            !subs.is_empty()
        });
    }

    /// Delivers a message to this core's subscribers; returns how many received it.
    pub(crate) fn publish(&self, channel: &Bytes, message: &Bytes, limit: OutputLimit) -> i64 {
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

    /// Adds a pattern subscription.
    pub(crate) fn add_pattern(&mut self, pattern: &Bytes, client: &Rc<Client>) {
        self.patterns.push((pattern.clone(), client.clone()));
    }

    /// Removes client `id`'s subscription to `pattern`.
    pub(crate) fn remove_pattern(&mut self, pattern: &[u8], id: u64) {
        self.patterns.retain(|(p, c)| !(c.id == id && p == pattern));
    }
}
