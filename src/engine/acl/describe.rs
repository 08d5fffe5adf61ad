//! Users as rules again: the `ACL LIST` line, `ACL GETUSER`'s fields and `ACL SAVE`'s file,
//! with the command rules compacted as Redis 7.0's `ACLDescribeSelectorCommandRules` does
//! (`+@all -@dangerous`, not every command one by one).

use crate::engine::acl::catalog::{Catalog, Entry};
use crate::engine::acl::selector::{KeyPerm, Selector};
use crate::engine::acl::user::{hex, User};
use crate::engine::spec::{acl, Acl};

/// The user's flags in Redis's order: on/off, nopass, the payload sanitizing flag.
#[must_use]
pub(crate) fn flags(user: &User) -> Vec<&'static str> {
    let mut out = vec![if user.enabled { "on" } else { "off" }];
    if user.nopass {
        out.push("nopass");
    }
    match user.sanitize_payload {
        Some(false) => out.push("skip-sanitize-payload"),
        Some(true) => out.push("sanitize-payload"),
        None => {}
    }
    out
}

/// Everything after `user <name> ` in `ACL LIST`.
#[must_use]
pub(crate) fn user(commands: &Catalog, user: &User) -> String {
    let mut out = String::new();
    for flag in flags(user) {
        out.push_str(flag);
        out.push(' ');
    }
    for h in &user.passwords {
        out.push('#');
        out.push_str(&hex(h));
        out.push(' ');
    }
    let mut selectors = user.selectors();
    if let Some(root) = selectors.next() {
        out.push_str(&selector(commands, root));
    }
    for s in selectors {
        out.push_str(" (");
        out.push_str(&selector(commands, s));
        out.push(')');
    }
    out
}

/// A selector's keys, channels and commands, as in `ACL LIST`.
#[must_use]
pub(crate) fn selector(commands: &Catalog, s: &Selector) -> String {
    let mut out = String::new();
    if s.all_keys {
        out.push_str("~* ");
    } else {
        for (pattern, perm) in &s.keys {
            out.push_str(&key_rule(pattern, *perm));
            out.push(' ');
        }
    }
    if s.all_channels {
        out.push_str("&* ");
    } else {
        out.push_str("resetchannels ");
        for c in &s.channels {
            out.push('&');
            out.push_str(&String::from_utf8_lossy(c));
            out.push(' ');
        }
    }
    out.push_str(&command_rules(commands, s));
    out
}

/// `~pat`, `%R~pat` or `%W~pat`.
#[must_use]
pub(crate) fn key_rule(pattern: &[u8], perm: KeyPerm) -> String {
    let prefix = match (perm.read, perm.write) {
        (true, true) => "~",
        (true, false) => "%R~",
        _ => "%W~",
    };
    format!("{prefix}{}", String::from_utf8_lossy(pattern))
}

/// GETUSER's `keys`: `~*`, or the patterns joined by spaces.
#[must_use]
pub(crate) fn keys(s: &Selector) -> String {
    if s.all_keys {
        return "~*".into();
    }
    s.keys.iter().map(|(p, perm)| key_rule(p, *perm)).collect::<Vec<_>>().join(" ")
}

/// GETUSER's `channels`: `&*`, or the patterns joined by spaces.
#[must_use]
pub(crate) fn channels(s: &Selector) -> String {
    if s.all_channels {
        return "&*".into();
    }
    s.channels.iter().map(|c| format!("&{}", String::from_utf8_lossy(c))).collect::<Vec<_>>().join(" ")
}

/// Every command and subcommand, each container before its subcommands.
fn every(commands: &Catalog) -> impl Iterator<Item = &Entry> {
    commands.iter()
}

/// The command rules: `+@all` or `-@all`, then the categories that describe the rest with the
/// fewest exceptions (greedily), then single commands and first arguments.
#[must_use]
pub(crate) fn command_rules(commands: &Catalog, s: &Selector) -> String {
    let additive = !s.future_commands;
    let mut rules = vec![if additive { "-@all".to_owned() } else { "+@all".to_owned() }];
    let mut working = Selector::new(commands, false);
    if !additive {
        let _ = working.apply(commands, b"+@all");
    }
    let mut remaining = s.clone();
    let mut used: Vec<Acl> = Vec::new();
    loop {
        let mut best: Option<(usize, usize, Acl, &str)> = None;
        for &(cat, name) in acl::ALL {
            if used.contains(&cat) {
                continue;
            }
            let (mut on, mut off) = (0, 0);
            for c in every(commands).filter(|c| c.acl.contains(cat)) {
                if remaining.allowed.get(c.id) {
                    on += 1;
                } else {
                    off += 1;
                }
            }
            let (diff, same) = if additive { (off, on) } else { (on, off) };
            if same <= diff {
                continue;
            }
            let better = match best {
                None => true,
                Some((d, sm, _, _)) => diff < d || (diff == d && same > sm),
            };
            if better {
                best = Some((diff, same, cat, name));
            }
        }
        let Some((_, _, cat, name)) = best else { break };
        used.push(cat);
        let (sign, inverse) = if additive { ('+', '-') } else { ('-', '+') };
        let _ = working.apply(commands, format!("{sign}{name}").as_bytes());
        let _ = remaining.apply(commands, format!("{inverse}{name}").as_bytes());
        rules.push(format!("{sign}{name}"));
    }
    for c in every(commands) {
        let want = s.allowed.get(c.id);
        let have = working.allowed.get(c.id);
        if want != have {
            let sign = if want { '+' } else { '-' };
            let _ = working.apply(commands, format!("{sign}{}", c.full_name).as_bytes());
            rules.push(format!("{sign}{}", c.full_name));
        }
    }
    for (id, args) in &s.first_args {
        if let Some(c) = commands.by_id(*id) {
            for a in args {
                rules.push(format!("+{}|{}", c.full_name, String::from_utf8_lossy(a)));
            }
        }
    }
    rules.join(" ")
}
