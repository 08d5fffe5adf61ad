//! ACL: users and their permissions (SETUSER, GETUSER, DELUSER, USERS, LIST, WHOAMI, CAT,
//! GENPASS, DRYRUN), in Redis 7.0's reply formats. The rules and checks are
//! [`crate::engine::acl`]'s; this family only parses requests and shapes replies.

use std::sync::Arc;

use bytes::Bytes;

use crate::cmd::args;
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::acl::{self, Reason, User};
use crate::engine::command::{registry, Command};
use crate::engine::session::Session;
use crate::engine::spec::{acl as cat, flag};
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    let admin = flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE;
    let open = flag::NOSCRIPT | flag::LOADING | flag::STALE;
    vec![Command::inline("acl", -2, |_, _| Err(CmdError::Syntax))
        .subcommands(vec![
            Command::inline("cat", -2, |s, a| category(s.core.global.users.catalog(), &a[1], &a[2..])).flags(open).docs(
                "server",
                "6.0.0",
                "O(1) since the categories and commands are a fixed set.",
                "List the ACL categories or the commands inside a category",
            ),
            Command::session("deluser", -3, |s, a| Box::pin(deluser(s, &a[2..]))).flags(admin).docs(
                "server",
                "6.0.0",
                "O(1) amortized time considering the typical user.",
                "Remove the specified ACL users and the associated rules",
            ),
            Command::inline("dryrun", -4, |s, a| dryrun(s, &a[2..])).flags(admin).docs(
                "server",
                "7.0.0",
                "O(1).",
                "Returns whether the user can execute the given command without executing the command.",
            ),
            Command::inline("genpass", -2, |_, a| genpass(&a[1], &a[2..])).flags(open).docs(
                "server",
                "6.0.0",
                "O(1)",
                "Generate a pseudorandom secure password to use for ACL users",
            ),
            Command::inline("getuser", 3, |s, a| Ok(getuser(s, &a[2]))).flags(admin).docs(
                "server",
                "6.0.0",
                "O(N). Where N is the number of password, command and pattern rules that the user has.",
                "Get the rules for a specific ACL user",
            )
            .history(&[
                ("6.2.0", "Added Pub/Sub channel patterns."),
                (
                    "7.0.0",
                    "Added selectors and changed the format of key and channel patterns from a list to their rule \
                     representation.",
                ),
            ]),
            Command::inline("help", 2, |_, _| Ok(help())).flags(flag::LOADING | flag::STALE).docs(
                "server",
                "6.0.0",
                "O(1)",
                "Show helpful text about the different subcommands",
            ),
            Command::inline("list", 2, |s, _| Ok(list(s))).flags(admin).docs(
                "server",
                "6.0.0",
                "O(N). Where N is the number of configured users.",
                "List the current ACL rules in ACL config file format",
            ),
            Command::session("load", 2, |s, _| Box::pin(load(s))).flags(admin).docs(
                "server",
                "6.0.0",
                "O(N). Where N is the number of configured users.",
                "Reload the ACLs from the configured ACL file",
            ),
            Command::inline("log", -2, |s, a| log(s, &a[1], &a[2..])).flags(admin).docs(
                "server",
                "6.0.0",
                "O(N) with N being the number of entries shown.",
                "List latest events denied because of ACLs in place",
            ),
            Command::inline("save", 2, |s, _| save(s)).flags(admin).docs(
                "server",
                "6.0.0",
                "O(N). Where N is the number of configured users.",
                "Save the current ACL rules in the configured ACL file",
            ),
            Command::session("setuser", -3, |s, a| Box::pin(setuser(s, &a[2], &a[3..]))).flags(admin).docs(
                "server",
                "6.0.0",
                "O(N). Where N is the number of rules provided.",
                "Modify or create the rules for a specific ACL user",
            )
            .history(&[
                ("6.2.0", "Added Pub/Sub channel patterns."),
                ("7.0.0", "Added selectors and key based permissions."),
            ]),
            Command::inline("users", 2, |s, _| Ok(users(s))).flags(admin).docs(
                "server",
                "6.0.0",
                "O(N). Where N is the number of configured users.",
                "List the username of all the configured ACL rules",
            ),
            Command::inline("whoami", 2, |s, _| Ok(Reply::Bulk(s.user.name.clone()))).flags(open).docs(
                "server",
                "6.0.0",
                "O(1)",
                "Return the name of the user associated to the current connection",
            ),
        ])
        .docs("server", "6.0.0", "Depends on subcommand.", "A container for Access List Control commands ")]
}

/// ACL SETUSER username [rule ...]: all the rules or none. The user's clients close if it was
/// turned off; those subscribed to channels it may no longer use close too, as Redis.
async fn setuser(s: &mut Session, name: &Bytes, rules: &[Bytes]) -> CmdResult {
    if acl::has_spaces(name) {
        return Err(CmdError::msg("ERR Usernames can't contain spaces or null characters"));
    }
    let rules = acl::merge_selectors(rules).map_err(|start| {
        CmdError::text(format!(
            "ERR Unmatched parenthesis in acl selector starting at '{}'.",
            String::from_utf8_lossy(&start)
        ))
    })?;
    let (before, after) =
        s.core.global.users.set_user(s.core.config().acl_all_channels(), name, &rules).map_err(
            |(rule, e)| {
                CmdError::text(format!(
                    "ERR Error in ACL SETUSER modifier '{}': {e}",
                    String::from_utf8_lossy(&rule)
                ))
            },
        )?;
    if let Some(before) = before {
        if before.enabled && !after.enabled {
            disconnect(s, vec![after.name.clone()]).await?;
        } else if after.channels_shrunk_from(&before) {
            drop_subscribers(s, after).await?;
        }
    }
    Ok(Reply::Ok)
}

/// ACL DELUSER username [username ...]: the users go, and so do their clients, on every core.
async fn deluser(s: &mut Session, names: &[Bytes]) -> CmdResult {
    if names.iter().any(|n| &n[..] == b"default") {
        return Err(CmdError::msg("ERR The 'default' user cannot be removed"));
    }
    let gone = s.core.global.users.delete(names);
    disconnect(s, names.to_vec()).await?;
    Ok(Reply::Int(gone as i64))
}

/// ACL LOAD: the users of the ACL file replace them all, or nothing changes. Clients of users
/// that are gone or changed close (those of unchanged users stay).
async fn load(s: &mut Session) -> CmdResult {
    let config = s.core.config();
    if config.aclfile.is_empty() {
        return Err(no_acl_file());
    }
    let changed = s.core.global.users.load_file(&config).map_err(|e| CmdError::text(format!("ERR {e}")))?;
    disconnect(s, changed).await?;
    Ok(Reply::Ok)
}

/// ACL SAVE: every user into the ACL file, replaced durably.
fn save(s: &Session) -> CmdResult {
    let config = s.core.config();
    if config.aclfile.is_empty() {
        return Err(no_acl_file());
    }
    s.core.global.users.save_file(&config).map_err(|e| {
        tracing::warn!("Saving the ACL file '{}': {e}", config.aclfile);
        CmdError::msg(
            "ERR There was an error trying to save the ACLs. Please check the server logs for more information",
        )
    })?;
    Ok(Reply::Ok)
}

/// ACL LOAD or SAVE without `aclfile`.
fn no_acl_file() -> CmdError {
    CmdError::msg(
        "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL \
         SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in \
         order to store users in the Redis configuration.",
    )
}

/// Closes every connection of the users `names`, on every core; the caller's own closes after
/// its reply.
async fn disconnect(s: &mut Session, names: Vec<Bytes>) -> Result<(), CmdError> {
    if names.is_empty() {
        return Ok(());
    }
    if names.contains(&s.user.name) {
        s.closing = true;
    }
    let me = s.client.id;
    s.core
        .router
        .each_core(move |local| {
            for c in local.clients.borrow().values() {
                if c.id != me && names.contains(&c.user.borrow()) {
                    c.kill();
                }
            }
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    Ok(())
}

/// Closes the connections of `user` subscribed to a channel, shard channel or pattern it no
/// longer allows, on every core (Redis's `ACLKillPubsubClientsIfNeeded`).
async fn drop_subscribers(s: &mut Session, user: Arc<User>) -> Result<(), CmdError> {
    if s.user.name == user.name
        && (s.channels.iter().any(|c| !user.may_subscribe(c, false))
            || s.patterns.iter().any(|p| !user.may_subscribe(p, true))
            || s.client.shard_channels.borrow().iter().any(|c| !user.may_subscribe(c, false)))
    {
        s.closing = true;
    }
    let me = s.client.id;
    s.core
        .router
        .each_core(move |local| {
            let ours = |c: &crate::engine::client::Client| c.id != me && *c.user.borrow() == user.name;
            let registry = local.pubsub.borrow();
            for (channel, clients) in registry.channels.iter().chain(&registry.shard) {
                if !user.may_subscribe(channel, false) {
                    clients.iter().filter(|c| ours(c)).for_each(|c| c.kill());
                }
            }
            for (pattern, c) in &registry.patterns {
                if ours(c) && !user.may_subscribe(pattern, true) {
                    c.kill();
                }
            }
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    Ok(())
}

/// ACL GETUSER username: its flags, passwords, commands, keys, channels and selectors.
fn getuser(s: &Session, name: &[u8]) -> Reply {
    let Some(user) = s.core.global.users.get(name) else {
        return Reply::Nil;
    };
    let commands = s.core.global.users.catalog();
    let text = |t: &str| Reply::bulk(t);
    let selector = |sel: &crate::engine::acl::Selector| {
        vec![
            (text("commands"), Reply::bulk(acl::command_rules(commands, sel))),
            (text("keys"), Reply::bulk(acl::keys(sel))),
            (text("channels"), Reply::bulk(acl::channels(sel))),
        ]
    };
    let mut fields = vec![
        (text("flags"), Reply::Set(acl::flags(&user).into_iter().map(text).collect())),
        (text("passwords"), Reply::Array(user.passwords.iter().map(|h| Reply::bulk(acl::hex(h))).collect())),
    ];
    let mut selectors = user.selectors();
    if let Some(root) = selectors.next() {
        fields.extend(selector(root));
    }
    fields.push((text("selectors"), Reply::Array(selectors.map(|sel| Reply::Map(selector(sel))).collect())));
    Reply::Map(fields)
}

/// ACL LIST: each user as a `user` line of an ACL file.
fn list(s: &Session) -> Reply {
    Reply::Array(s.core.global.users.lines().into_iter().map(Reply::bulk).collect())
}

/// ACL USERS
fn users(s: &Session) -> Reply {
    Reply::Array(s.core.global.users.all().iter().map(|u| Reply::Bulk(u.name.clone())).collect())
}

/// ACL CAT [category]
fn category(catalog: &acl::Catalog, sub: &Bytes, args: &[Bytes]) -> CmdResult {
    match args {
        [] => Ok(Reply::Array(cat::ALL.iter().map(|(_, name)| Reply::bulk(&name[1..])).collect())),
        [name] => {
            let wanted = std::str::from_utf8(name)
                .ok()
                .and_then(|n| crate::engine::spec::Acl::named(&format!("@{n}")))
                .ok_or_else(|| {
                    CmdError::text(format!(
                        "ERR Unknown category '{}'",
                        String::from_utf8_lossy(&name[..name.len().min(128)])
                    ))
                })?;
            Ok(Reply::Array(
                catalog
                    .iter()
                    .filter(|c| c.acl.contains(wanted))
                    .map(|c| Reply::bulk(&c.full_name))
                    .collect(),
            ))
        }
        _ => Err(wrong_args(sub)),
    }
}

/// ACL GENPASS [bits]: that many random bits (256 by default) as lowercase hex.
fn genpass(sub: &Bytes, args: &[Bytes]) -> CmdResult {
    let bits = match args {
        [] => 256,
        [n] => match args::int(n)? {
            n @ 1..=4096 => n as usize,
            _ => return Err(CmdError::msg(
                "ERR ACL GENPASS argument must be the number of bits for the output password, a positive \
                     number up to 4096",
            )),
        },
        _ => return Err(wrong_args(sub)),
    };
    let chars = bits.div_ceil(4);
    let mut random = vec![0u8; chars.div_ceil(2)];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .map_err(|e| CmdError::text(format!("ERR can't read random bytes: {e}")))?;
    }
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Reply::bulk(&hex[..chars]))
}

/// ACL LOG [count | RESET]: the newest entries first (10 by default).
fn log(s: &Session, sub: &Bytes, args: &[Bytes]) -> CmdResult {
    let users = &s.core.global.users;
    let count = match args {
        [] => 10,
        [reset] if args::is(reset, "reset") => {
            users.clear_log();
            return Ok(Reply::Ok);
        }
        [n] => args::int(n)?.max(0) as usize,
        _ => return Err(wrong_args(sub)),
    };
    let now = crate::engine::shard::now_ms();
    let text = |t: &str| Reply::bulk(t);
    Ok(Reply::Array(
        users
            .log_entries(count)
            .into_iter()
            .map(|e| {
                Reply::Map(vec![
                    (text("count"), Reply::Int(e.count as i64)),
                    (text("reason"), text(e.reason.name())),
                    (text("context"), text(e.context)),
                    (text("object"), Reply::Bulk(e.object)),
                    (text("username"), Reply::Bulk(e.username)),
                    (text("age-seconds"), Reply::Double(now.saturating_sub(e.at_ms) as f64 / 1000.0)),
                    (text("client-info"), Reply::bulk(&e.client_info)),
                ])
            })
            .collect(),
    ))
}

/// ACL DRYRUN username command [arg ...]: whether the user could run it, without running it.
fn dryrun(s: &Session, args: &[Bytes]) -> CmdResult {
    let lossy = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let user: Arc<User> = s
        .core
        .global
        .users
        .get(&args[0])
        .ok_or_else(|| CmdError::text(format!("ERR User '{}' not found", lossy(&args[0]))))?;
    let request = &args[1..];
    let cmd = registry()
        .resolve(request)
        .map_err(|_| CmdError::text(format!("ERR Command '{}' not found", lossy(&request[0]))))?;
    if !cmd.arity_ok(request.len()) {
        return Err(cmd.arity_error());
    }
    let keys = cmd.acl_keys(request);
    Ok(match acl::check(&user, &cmd.acl_request(request, &keys)) {
        Ok(()) => Reply::Ok,
        Err(d) => Reply::bulk(&match d.reason {
            Reason::Command => format!("This user has no permissions to run the '{}' command", cmd.full_name),
            Reason::Key => {
                format!("This user has no permissions to access the '{}' key", lossy(&request[d.pos]))
            }
            Reason::Channel => {
                format!("This user has no permissions to access the '{}' channel", lossy(&request[d.pos]))
            }
        }),
    })
}

/// The error for a subcommand (as typed) given arguments it does not take.
fn wrong_args(sub: &[u8]) -> CmdError {
    CmdError::subcommand_syntax("acl", sub)
}

/// ACL HELP
fn help() -> Reply {
    args::help(
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    )
}

#[cfg(test)]
mod tests;
