//! Whether a user may run a request: the command, every key with the access its key spec
//! asks, every channel, tried selector by selector as Redis 7.0's `ACLCheckAllUserCommandPerm`.

use bytes::Bytes;

use crate::engine::acl::selector::{KeyPerm, Selector};
use crate::engine::acl::user::User;
use crate::engine::spec::{key, KeyFlags};

/// What a denied request was denied for, in Redis's order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reason {
    /// The command or subcommand.
    Command,
    /// A key.
    Key,
    /// A channel.
    Channel,
}

/// A denial: why, and the argument at fault (0, the command, for [`Reason::Command`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Denial {
    /// Why.
    pub(crate) reason: Reason,
    /// The argument denied.
    pub(crate) pos: usize,
}

/// A request as the check sees it.
pub(crate) struct Request<'a> {
    /// The command's registry id.
    pub(crate) id: usize,
    /// Its full name (`publish`, `client|kill`).
    pub(crate) full_name: &'a str,
    /// Whether it runs before authentication (`no-auth`: no command check).
    pub(crate) no_auth: bool,
    /// The request.
    pub(crate) args: &'a [Bytes],
    /// Its keys' positions and flags, as the key specs find them.
    pub(crate) keys: &'a [(usize, KeyFlags)],
}

/// Checks a request against every selector of `user`; the first that allows all of it lets it
/// through. Otherwise the denial reported is the gravest, then the one furthest into the
/// request, as Redis.
///
/// # Errors
/// The denial.
pub(crate) fn check(user: &User, req: &Request<'_>) -> Result<(), Denial> {
    let mut worst: Option<Denial> = None;
    for selector in &user.selectors {
        match check_selector(selector, req) {
            Ok(()) => return Ok(()),
            Err(d) => {
                if worst.is_none_or(|w| (d.reason, d.pos) > (w.reason, w.pos)) {
                    worst = Some(d);
                }
            }
        }
    }
    Err(worst.unwrap_or(Denial { reason: Reason::Command, pos: 0 }))
}

#[inline]
fn check_selector(s: &Selector, req: &Request<'_>) -> Result<(), Denial> {
    let args = req.args;
    if !req.no_auth && !s.allows_command(req.id, req.full_name, args) {
        return Err(Denial { reason: Reason::Command, pos: 0 });
    }
    if !s.all_keys {
        for &(pos, flags) in req.keys {
            let need = KeyPerm {
                read: flags.contains(key::ACCESS),
                write: flags.intersects(key::INSERT | key::DELETE | key::UPDATE),
            };
            if !s.allows_key(&args[pos], need) {
                return Err(Denial { reason: Reason::Key, pos });
            }
        }
    }
    if !s.all_channels {
        let (from, literal) = match req.full_name {
            "subscribe" | "ssubscribe" => (1, false),
            "psubscribe" => (1, true),
            "publish" | "spublish" => (1, false),
            _ => return Ok(()),
        };
        let to = if req.full_name.ends_with("publish") { 2.min(args.len()) } else { args.len() };
        for (pos, channel) in args.iter().enumerate().take(to).skip(from) {
            if !s.allows_channel(channel, literal) {
                return Err(Denial { reason: Reason::Channel, pos });
            }
        }
    }
    Ok(())
}
