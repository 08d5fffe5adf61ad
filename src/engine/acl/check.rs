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

/// Which arguments of a command are channels, as Redis's `ACLCheckAllUserCommandPerm` picks
/// them; found once from the command's name when the registry is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channels {
    /// None.
    None,
    /// Every argument after the name (SUBSCRIBE, SSUBSCRIBE).
    All,
    /// Every argument after the name, each a pattern that must equal an allowed one
    /// (PSUBSCRIBE).
    AllLiteral,
    /// The first argument (PUBLISH, SPUBLISH).
    First,
}

impl Channels {
    /// The channel arguments of the command named `full_name`.
    #[must_use]
    pub(crate) fn of(full_name: &str) -> Channels {
        match full_name {
            "subscribe" | "ssubscribe" => Channels::All,
            "psubscribe" => Channels::AllLiteral,
            "publish" | "spublish" => Channels::First,
            _ => Channels::None,
        }
    }
}

/// A request as the check sees it.
pub(crate) struct Request<'a> {
    /// The command's registry id.
    pub(crate) id: usize,
    /// Whether it is a subcommand (its first argument comes after the subcommand's name).
    pub(crate) is_subcommand: bool,
    /// Which of its arguments are channels.
    pub(crate) channels: Channels,
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
    if user.extra.is_empty() {
        return check_selector(&user.root, req);
    }
    let mut worst: Option<Denial> = None;
    for selector in user.selectors() {
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
    if !req.no_auth && !s.allows_command(req.id, req.is_subcommand, args) {
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
    if !s.all_channels && req.channels != Channels::None {
        let literal = req.channels == Channels::AllLiteral;
        let to = if req.channels == Channels::First { 2.min(args.len()) } else { args.len() };
        for (pos, channel) in args.iter().enumerate().take(to).skip(1) {
            if !s.allows_channel(channel, literal) {
                return Err(Denial { reason: Reason::Channel, pos });
            }
        }
    }
    Ok(())
}
