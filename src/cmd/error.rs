//! Command errors: every error a command answers, each displayed as Redis's exact text (without
//! the leading `-` of the wire). The reply text is chosen here, once; handlers and the engine
//! return the variant.

use std::borrow::Cow;

use crate::facade::Reply;

/// Why a command failed, as its client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CmdError {
    /// The arguments do not parse.
    #[error("ERR syntax error")]
    Syntax,
    /// The key holds another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// An argument that must be an integer is not one, or does not fit in 64 bits.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An argument that must be a float is not one.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// A count that must not be negative is.
    #[error("ERR value is out of range, must be positive")]
    NotPositive,
    /// A number outside what the command accepts.
    #[error("ERR value is out of range")]
    OutOfRange,
    /// The key does not exist (RENAME).
    #[error("ERR no such key")]
    NoSuchKey,
    /// A string would outgrow `proto-max-bulk-len`.
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    TooBig,
    /// The argument count does not fit the command (`name` as Redis spells it, `client|kill`
    /// for a subcommand).
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// No such command.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The name as sent (at most 128 bytes of it).
        name: String,
        /// The arguments as Redis lists them: `'a' 'b' `.
        args: String,
    },
    /// No such subcommand of a container command.
    #[error("ERR unknown subcommand '{sub}'. Try {command} HELP.")]
    UnknownSubcommand {
        /// The container, uppercase (`CLIENT`).
        command: String,
        /// The subcommand as sent.
        sub: String,
    },
    /// An expiry that overflows, or is not positive where it must be.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    /// A password is required first.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// AUTH or HELLO AUTH with a wrong password, an unknown user or a user that is off.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// The user may not run this command (its full name, `client|kill` for a subcommand).
    #[error("NOPERM this user has no permissions to run the '{0}' command")]
    NoPermCommand(String),
    /// The user may not access one of the request's keys.
    #[error("NOPERM this user has no permissions to access one of the keys used as arguments")]
    NoPermKey,
    /// The user may not access one of the request's channels.
    #[error("NOPERM this user has no permissions to access one of the channels used as arguments")]
    NoPermChannel,
    /// EXEC found a queued command no longer allowed (the reason as Redis words it).
    #[error(
        "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This \
         command is no longer allowed for the following reason: {0}"
    )]
    NoPermChanged(&'static str),
    /// MULTI refuses this command.
    #[error("ERR Command not allowed inside a transaction")]
    NotInMulti,
    /// EVALSHA of a script the server does not know.
    #[error("NOSCRIPT No matching script. Please use EVAL.")]
    NoScript,
    /// EXEC after a command failed to queue.
    #[error("EXECABORT Transaction discarded because of previous errors.")]
    ExecAbort,
    /// The dataset is still being loaded (commands without the `loading` flag wait for it).
    #[error("LOADING Redis is loading the dataset in memory")]
    Loading,
    /// Memory is over `maxmemory` and nothing more may be evicted (`denyoom` commands).
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    Oom,
    /// Writes are refused because the last background save failed.
    #[error(
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. \
         Commands that may modify the data set are disabled, because this instance is configured to report \
         errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check \
         the Redis logs for details about the RDB error."
    )]
    Misconf,
    /// A replica whose link is down, with `replica-serve-stale-data no`.
    #[error("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")]
    MasterDown,
    /// A write sent to a replica (`replica-read-only yes`).
    #[error("READONLY You can't write against a read only replica.")]
    ReadOnly,
    /// `min-replicas-to-write` replicas are not attached with a lag of at most
    /// `min-replicas-max-lag`.
    #[error("NOREPLICAS Not enough good replicas to write.")]
    NoReplicas,
    /// A write to the append-only file failed (Redis's text, with the system's reason).
    #[error("MISCONF Errors writing to the AOF file: {0}")]
    AofMisconf(String),
    /// RESTORE onto an existing key without REPLACE.
    #[error("BUSYKEY Target key name already exists.")]
    BusyKey,
    /// Cluster mode: another node serves the keys' slot.
    #[error("MOVED {slot} {endpoint}:{port}")]
    Moved {
        /// The keys' slot.
        slot: u16,
        /// The node's preferred endpoint (`cluster-preferred-endpoint-type`).
        endpoint: String,
        /// Its client port, of the kind of the client's connection.
        port: u16,
    },
    /// Cluster mode: the slot is migrating and the keys are not here; ask the target (after
    /// ASKING).
    #[error("ASK {slot} {endpoint}:{port}")]
    Ask {
        /// The keys' slot.
        slot: u16,
        /// The target's preferred endpoint.
        endpoint: String,
        /// Its client port.
        port: u16,
    },
    /// Cluster mode: the keys are in different slots.
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossSlot,
    /// Cluster mode: some of the keys moved and some did not, while their slot migrates.
    #[error("TRYAGAIN Multiple keys request during rehashing of slot")]
    TryAgain,
    /// Cluster mode: the cluster is down.
    #[error("CLUSTERDOWN The cluster is down")]
    ClusterDown,
    /// Cluster mode: the cluster is down and serves reads only (`cluster-allow-reads-when-down`).
    #[error("CLUSTERDOWN The cluster is down and only accepts read commands")]
    ClusterDownReadOnly,
    /// Cluster mode: no node serves the keys' slot.
    #[error("CLUSTERDOWN Hash slot not served")]
    SlotNotServed,
    /// A cluster command on a server not in cluster mode.
    #[error("ERR This instance has cluster support disabled")]
    ClusterDisabled,
    /// The shard that owns the key cannot be reached: the server is shutting down.
    #[error("ERR shard unavailable: the server is shutting down")]
    Unavailable,
    /// A bug: the command panicked, and the log says where.
    #[error("ERR internal error")]
    Internal,
    /// Any other of Redis's texts, complete with its code (`ERR timeout is negative`).
    #[error("{0}")]
    Other(Cow<'static, str>),
}

impl CmdError {
    /// An error with a fixed text of Redis's (code included).
    #[must_use]
    pub(crate) const fn msg(text: &'static str) -> CmdError {
        CmdError::Other(Cow::Borrowed(text))
    }

    /// An error whose text is built at run time (code included).
    #[must_use]
    pub(crate) fn text(text: String) -> CmdError {
        CmdError::Other(Cow::Owned(text))
    }

    /// WRONG ARITY for `name` (lowercase; `container|sub` for a subcommand).
    #[must_use]
    pub(crate) fn arity(name: &str) -> CmdError {
        CmdError::WrongArity(name.to_owned())
    }

    /// An unknown subcommand of `command` (any case), as the client wrote it.
    #[must_use]
    pub(crate) fn unknown_subcommand(command: &str, sub: &[u8]) -> CmdError {
        CmdError::UnknownSubcommand {
            command: command.to_ascii_uppercase(),
            sub: String::from_utf8_lossy(sub).into_owned(),
        }
    }

    /// Whether this error sends the client to another node, or tells it the cluster cannot
    /// serve it (Redis's `clusterRedirectClient`): EXEC then drops its transaction.
    #[must_use]
    pub(crate) fn is_redirect(&self) -> bool {
        matches!(
            self,
            CmdError::Moved { .. }
                | CmdError::Ask { .. }
                | CmdError::CrossSlot
                | CmdError::TryAgain
                | CmdError::ClusterDown
                | CmdError::ClusterDownReadOnly
                | CmdError::SlotNotServed
        )
    }

    /// An unknown command, quoted as Redis 7 quotes it.
    /// Redis's `addReplySubcommandSyntaxError`: subcommand `sub` (as typed, at most 128 bytes)
    /// of `command` given arguments it does not take.
    #[must_use]
    pub(crate) fn subcommand_syntax(command: &str, sub: &[u8]) -> CmdError {
        CmdError::text(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(128)]),
            command.to_ascii_uppercase()
        ))
    }

    #[must_use]
    pub(crate) fn unknown_command(args: &[bytes::Bytes]) -> CmdError {
        let shown = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(128)]).into_owned();
        let name = args.first().map_or_else(String::new, |n| shown(n));
        let quoted: String = args.iter().skip(1).map(|a| format!("'{}' ", shown(a))).collect();
        CmdError::UnknownCommand { name, args: quoted }
    }
}

impl From<crate::storage::access::WrongType> for CmdError {
    fn from(_: crate::storage::access::WrongType) -> CmdError {
        CmdError::WrongType
    }
}

impl From<CmdError> for Reply {
    fn from(e: CmdError) -> Reply {
        match e {
            CmdError::Other(text) => Reply::Error(text),
            e => Reply::Error(Cow::Owned(e.to_string())),
        }
    }
}

/// What a command replies: its value, or its error.
pub(crate) type CmdResult = Result<Reply, CmdError>;

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn texts_are_redis_s() {
        assert_eq!(
            CmdError::WrongArity("client|kill".into()).to_string(),
            "ERR wrong number of arguments for 'client|kill' command"
        );
        assert_eq!(
            CmdError::unknown_subcommand("client", b"Nope").to_string(),
            "ERR unknown subcommand 'Nope'. Try CLIENT HELP."
        );
        let args = [Bytes::from_static(b"foo"), Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        assert_eq!(
            CmdError::unknown_command(&args).to_string(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            Reply::from(CmdError::msg("ERR timeout is negative")),
            Reply::Error("ERR timeout is negative".into())
        );
    }
}
