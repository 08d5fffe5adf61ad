//! Where a command runs: the one planning rule. The pipeline, EXEC (what it locks and how it
//! runs each command), blocked clients' retries and every later caller ask [`plan`]; nothing
//! else decides where a command's keys are or how a command spanning shards runs.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::cmd::error::CmdError;
use crate::engine::command::{Command, Run};
use crate::engine::router::Router;
use crate::engine::slot::ShardId;

/// Where and how a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// On one shard: every key lives there (or it names none, and runs on this core's shard).
    Shard(ShardId),
    /// Split per shard (each shard's key positions, in request order), atomically across them,
    /// the replies merged.
    Split(BTreeMap<ShardId, Vec<usize>>),
    /// By the command's own protocol, in a transaction holding these shards (sorted).
    Across(Vec<ShardId>),
    /// By the session, touching these shards (sorted; every shard for a fan-out like KEYS,
    /// none for PING or SELECT).
    Session(Vec<ShardId>),
}

impl Plan {
    /// The shards a transaction must hold to run it (EXEC locks these).
    #[must_use]
    pub(crate) fn shards(&self) -> Vec<ShardId> {
        match self {
            Plan::Shard(s) => vec![*s],
            Plan::Split(parts) => parts.keys().copied().collect(),
            Plan::Across(shards) | Plan::Session(shards) => shards.clone(),
        }
    }
}

/// Plans `cmd` for `args` on `router`'s core.
///
/// # Errors
/// The arity error of a command whose keys come in groups (MSET's pairs) when the last group is
/// incomplete: checked when it runs, as Redis does, so that inside MULTI only it fails.
pub(crate) fn plan(cmd: &Command, args: &[Bytes], router: &Router) -> Result<Plan, CmdError> {
    if !cmd.groups_complete(args) {
        return Err(cmd.arity_error());
    }
    let keys = || cmd.key_positions(args).map(|p| &args[p][..]);
    let shards_of_keys = || {
        let mut shards: Vec<ShardId> = keys().map(|k| router.shard_of(k)).collect();
        shards.sort_unstable();
        shards.dedup();
        shards
    };
    Ok(match cmd.run {
        Run::Shard(_) => Plan::Shard(router.placement(keys()).0),
        Run::Split(..) | Run::Across(..) => {
            let (shard, together) = router.placement(keys());
            if together {
                Plan::Shard(shard)
            } else if matches!(cmd.run, Run::Split(..)) {
                let mut parts: BTreeMap<ShardId, Vec<usize>> = BTreeMap::new();
                for p in cmd.key_positions(args) {
                    parts.entry(router.shard_of(&args[p])).or_default().push(p);
                }
                Plan::Split(parts)
            } else {
                Plan::Across(shards_of_keys())
            }
        }
        Run::Session(_) | Run::Inline(_) | Run::Container if cmd.fans_out(args) => {
            Plan::Session((0..router.shards()).map(ShardId).collect())
        }
        Run::Session(_) | Run::Inline(_) | Run::Container => Plan::Session(shards_of_keys()),
    })
}
