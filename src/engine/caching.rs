//! CLIENT TRACKING, a client's side (Redis's server-assisted client-side caching): its mode
//! and which of its reads the shards remember. `engine::invalidation` delivers what the
//! shards send back.
//!
//! The shards keep the tables ([`crate::engine::tracking`]). A read a shard runs for a
//! tracking client is remembered in the same step as the read, so no write falls between
//! them. A read that spans shards in several steps (a cross-shard SINTER, XREAD) is remembered
//! first, on each key's shard, then run: a write in between costs the client an invalidation
//! it did not need, never one it needed. Invalidations leave a shard at the end of its piece of
//! work, before its replies, and a connection writes pushes after the replies of the call
//! under way: a client never gets a value after the invalidation that outdates it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::cmd::error::CmdError;
use crate::engine::client::TrackingMode;
use crate::engine::command::Command;
use crate::engine::router::Tx;
use crate::engine::session::Session;
use crate::engine::shard::Shard;
use crate::engine::slot::ShardId;
use crate::engine::spec::flag;
use crate::engine::tracking::{Reader, Track};

/// What CLIENT TRACKING ON asks for.
#[derive(Debug, Default)]
pub(crate) struct Request {
    /// REDIRECT: the client to send invalidations to, and its core.
    pub(crate) redirect: Option<(u64, u32)>,
    /// BCAST.
    pub(crate) bcast: bool,
    /// OPTIN.
    pub(crate) optin: bool,
    /// OPTOUT.
    pub(crate) optout: bool,
    /// NOLOOP.
    pub(crate) noloop: bool,
    /// PREFIX, each.
    pub(crate) prefixes: Vec<Bytes>,
}

/// Whether two prefixes would invalidate some key twice (one starts the other).
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

impl Session {
    /// The reader to remember for `cmd`, when this client tracks the keys it reads: tracking on
    /// in default mode, a read-only command (not EVAL_RO and the like, whose keys Redis
    /// remembers only when the script reads), and OPTIN/OPTOUT agreeing.
    /// A script's own calls remember nothing themselves (see [`Session::script_reader`]).
    pub(crate) fn reader(&self, cmd: &Command) -> Option<Reader> {
        if self.in_script
            || !cmd.flags.contains(flag::READONLY)
            || cmd.flags.contains(flag::PUBSUB)
            || matches!(cmd.name, "eval_ro" | "evalsha_ro" | "fcall_ro")
        {
            return None;
        }
        self.script_reader()
    }

    /// The reader a script run by this client remembers its declared keys for, at its first
    /// read (Redis's `trackingRememberKeys` of the script's caller): tracking on in default
    /// mode, OPTIN/OPTOUT agreeing.
    pub(crate) fn script_reader(&self) -> Option<Reader> {
        let mode = self.client.tracking.get();
        if !mode.on || mode.bcast || (mode.optin && !self.caching) || (mode.optout && self.caching) {
            return None;
        }
        Some(Reader { id: self.client.id, core: self.client.core as u32 })
    }

    /// Remembers `keys` as read by `reader`, on their shards, through the transaction the
    /// session holds them in (a script holding every shard).
    pub(crate) async fn remember_held(&self, keys: &[Bytes], reader: Reader) {
        self.remember(keys.iter(), reader, None).await;
    }

    /// Remembers `keys` as read by `reader`, one hop per shard they are on: through `tx` when
    /// given, else as the session runs hops.
    async fn remember<'a>(&self, keys: impl Iterator<Item = &'a Bytes>, reader: Reader, tx: Option<&Tx>) {
        let mut by_shard: BTreeMap<ShardId, Vec<Bytes>> = BTreeMap::new();
        for key in keys {
            by_shard.entry(self.core.router.shard_of(key)).or_default().push(key.clone());
        }
        let hops = by_shard.into_iter().map(|(shard, keys)| async move {
            let remember = move |sh: &mut Shard| sh.remember(&keys, reader);
            let _ = match tx {
                Some(tx) => tx.run(shard, remember).await,
                None => self.run_on(shard, remember).await,
            };
        });
        futures::future::join_all(hops).await;
    }

    /// What a shard remembers of `cmd` run with `args`, when this client tracks its keys.
    pub(crate) fn track_of(&self, cmd: &Command, args: &[Bytes]) -> Option<Track> {
        let reader = self.reader(cmd)?;
        let keys: Vec<usize> = cmd.key_positions(args).collect();
        (!keys.is_empty()).then_some(Track { reader, keys })
    }

    /// Remembers `cmd`'s keys on their shards before it runs, when this client tracks them
    /// (for a read the shards do not run in one step; see the module's header).
    /// Through `tx` when it holds the shards (a cross-shard command's own transaction).
    pub(crate) async fn remember_first(&self, cmd: &Command, args: &[Bytes], tx: Option<&Tx>) {
        let Some(reader) = self.reader(cmd) else { return };
        self.remember(cmd.key_positions(args).map(|p| &args[p]), reader, tx).await;
    }

    /// CLIENT TRACKING ON: checks `req` against the client's mode as Redis does, then turns
    /// tracking on (BCAST: the prefixes reach every shard before the reply).
    pub(crate) async fn track(&mut self, req: Request) -> Result<(), CmdError> {
        let mode = self.client.tracking.get();
        if !req.bcast && !req.prefixes.is_empty() {
            return Err(CmdError::msg("ERR PREFIX option requires BCAST mode to be enabled"));
        }
        if mode.on && mode.bcast != req.bcast {
            return Err(CmdError::msg(
                "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then \
                 re-enabling it with a different mode.",
            ));
        }
        if req.bcast && (req.optin || req.optout) {
            return Err(CmdError::msg("ERR OPTIN and OPTOUT are not compatible with BCAST"));
        }
        if req.optin && req.optout {
            return Err(CmdError::msg("ERR You can't specify both OPTIN mode and OPTOUT mode"));
        }
        if (req.optin && mode.optout) || (req.optout && mode.optin) {
            return Err(CmdError::msg(
                "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then \
                 re-enabling it with a different mode.",
            ));
        }
        if req.bcast {
            check_prefixes(&self.tracking_prefixes, &req.prefixes)?;
        }
        if !mode.on {
            self.core.global.tracking_clients.fetch_add(1, Ordering::AcqRel);
        }
        self.client.tracking.set(TrackingMode {
            on: true,
            bcast: req.bcast,
            optin: req.optin,
            optout: req.optout,
            noloop: req.noloop,
            broken: false,
            redirect: req.redirect.unwrap_or_default(),
        });
        if req.bcast {
            let prefixes = if req.prefixes.is_empty() { vec![Bytes::new()] } else { req.prefixes };
            self.tracking_prefixes.extend(prefixes.iter().cloned());
            let reader = Reader { id: self.client.id, core: self.client.core as u32 };
            self.each_shard(move |sh: &mut Shard| sh.follow(&prefixes, reader)).await?;
        }
        Ok(())
    }

    /// CLIENT TRACKING OFF (and RESET): the client's prefixes leave every shard before the
    /// reply. What the tables remember of its reads goes when those keys change.
    pub(crate) async fn untrack(&mut self) {
        let bcast = self.stop_tracking();
        if bcast {
            let id = self.client.id;
            let _ = self.each_shard(move |sh: &mut Shard| sh.unfollow(id)).await;
        }
    }

    /// Turns tracking off on this core; whether the client followed prefixes, which the
    /// caller removes from the shards.
    pub(crate) fn stop_tracking(&mut self) -> bool {
        let mode = self.client.tracking.replace(TrackingMode::default());
        self.caching = false;
        self.tracking_prefixes.clear();
        if mode.on {
            self.core.global.tracking_clients.fetch_sub(1, Ordering::AcqRel);
        }
        mode.on && mode.bcast
    }
}

/// Redis's `checkPrefixCollisionsOrReply`: no new prefix may start, or be the start of, one
/// the client has or another new one.
fn check_prefixes(existing: &BTreeSet<Bytes>, new: &[Bytes]) -> Result<(), CmdError> {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    for (i, p) in new.iter().enumerate() {
        if let Some(old) = existing.iter().find(|old| overlap(old, p)) {
            return Err(CmdError::text(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not \
                 overlap.",
                text(p),
                text(old)
            )));
        }
        if let Some(other) = new[i + 1..].iter().find(|other| overlap(p, other)) {
            return Err(CmdError::text(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must \
                 not overlap.",
                text(p),
                text(other)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_overlap_when_one_starts_the_other() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert!(check_prefixes(&BTreeSet::new(), &[b("a"), b("b")]).is_ok());
        let e = check_prefixes(&BTreeSet::new(), &[b("ab"), b("a")]).unwrap_err();
        assert!(format!("{e}").contains("'ab' overlaps with another provided prefix 'a'"), "{e}");
        let e = check_prefixes(&[b("")].into_iter().collect(), &[b("x")]).unwrap_err();
        assert!(format!("{e}").contains("'x' overlaps with an existing prefix ''"), "{e}");
    }
}
