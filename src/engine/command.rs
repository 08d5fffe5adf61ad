//! The command table: every command's name, arity, flags, key positions and where it executes.
//!
//! One row per command, as in Redis's `commands.def`; COMMAND INFO/DOCS read the same rows.

use std::sync::LazyLock;

use ahash::AHashMap;
use bytes::Bytes;

use crate::cmd::generic;
use crate::cmd::hash;
use crate::cmd::list;
use crate::cmd::set;
use crate::cmd::string;
use crate::cmd::zset;
use crate::engine::shard::ShardFn;

/// Where and how a command executes.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Runs on the shard owning its keys. When its keys span shards, `cross` says how the
    /// coordinator splits it.
    Keyed {
        /// The body, run once per shard with that shard's keys.
        run: ShardFn,
        /// How to combine per-shard results.
        cross: Cross,
    },
    /// Runs on the connection's core: connection state, server state, or a fan-out.
    Coord(Coord),
}

/// How a keyed command whose keys live on several shards is split and merged; every split runs
/// atomically across its shards.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cross {
    /// One key only: never splits.
    Never,
    /// Integer replies are added (DEL, EXISTS, TOUCH, UNLINK).
    Sum,
    /// Array replies are put back in key order (MGET).
    Positional,
    /// Every part replies OK (MSET).
    AllOk,
    /// Needs a coordinator protocol of its own (MSETNX, RENAME, RENAMENX).
    Custom(Coord),
}

/// Commands the coordinator runs itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub enum Coord {
    Ping,
    Echo,
    Hello,
    Auth,
    Select,
    Quit,
    Reset,
    Client,
    Command,
    Info,
    Config,
    DbSize,
    FlushDb,
    FlushAll,
    Time,
    Shutdown,
    Keys,
    Scan,
    RandomKey,
    MSetNx,
    Rename,
    RenameNx,
    LMove,
    SMove,
    SetAlgebra,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    LMPop,
    Copy,
    ZMPop,
    ZAlgebra,
    ZRangeStore,
    Block,
    Subscribe,
    Unsubscribe,
    Publish,
    PubSub,
}

impl Coord {
    /// Whether the command needs no shard at all (runs on the coordinator alone).
    #[must_use]
    pub fn shardless(self) -> bool {
        matches!(
            self,
            Coord::Ping
                | Coord::Echo
                | Coord::Time
                | Coord::Select
                | Coord::Hello
                | Coord::Auth
                | Coord::Command
                | Coord::Config
                | Coord::Quit
                | Coord::Reset
        )
    }
}

/// One command's row.
pub struct Command {
    /// The lowercase name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    /// Flags as COMMAND INFO shows them.
    pub flags: &'static [&'static str],
    /// First key position, 0 when keyless.
    pub first_key: i32,
    /// Last key position; negative counts from the end.
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// The documentation group (`string`, `generic`, `connection`, `server`).
    pub group: &'static str,
    /// One-line summary for COMMAND DOCS.
    pub summary: &'static str,
    /// The Redis version that introduced it.
    pub since: &'static str,
    /// Where it runs.
    pub kind: Kind,
}

impl Command {
    /// Whether `argc` arguments (name included) satisfy the arity: checked when a command
    /// is queued, so a failure aborts the transaction.
    #[must_use]
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Whether `argc` arguments make whole key/value groups (MSET, MSETNX): checked when the
    /// command runs, as Redis does, so inside MULTI only this command fails.
    #[must_use]
    pub fn groups_ok(&self, argc: usize) -> bool {
        self.last_key >= 0 || self.step <= 1 || (argc as i32 - self.first_key) % self.step == 0
    }

    /// Positions of the keys in `args`.
    ///
    /// A `movablekeys` command (SINTERCARD, ZUNIONSTORE, BZMPOP) has its fixed keys, if any, at
    /// `first_key..=last_key`, then a key count, then that many keys. The count comes right after
    /// the fixed keys, or at position 1 (2 for blocking forms, after the timeout). A bad count
    /// yields no counted keys and the command reports it.
    pub fn key_positions(&self, args: &[Bytes]) -> impl Iterator<Item = usize> {
        if self.flags.contains(&"movablekeys") {
            let at = match self.first_key {
                0 if self.flags.contains(&"blocking") => 2,
                0 => 1,
                _ => self.last_key as usize + 1,
            };
            let n = args.get(at).and_then(|n| crate::facade::resp::parse_i64(n)).unwrap_or(0).max(0) as usize;
            let fixed = if self.first_key > 0 { self.first_key as usize..at } else { 0..0 };
            return fixed.step_by(1).chain(at + 1..(at + 1 + n).min(args.len()));
        }
        let argc = args.len() as i32;
        let last = if self.last_key < 0 { argc + self.last_key } else { self.last_key.min(argc - 1) };
        let (first, step) = (self.first_key.max(1), self.step.max(1));
        let last = if self.first_key > 0 { last } else { 0 };
        (first as usize..(last + 1).max(first) as usize).step_by(step as usize).chain(0..0)
    }

    /// Whether this command may run before the client authenticates.
    #[must_use]
    pub fn no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }

    /// Whether the command writes (for INFO and future replication).
    #[must_use]
    pub fn is_write(&self) -> bool {
        self.flags.contains(&"write")
    }
}

macro_rules! commands {
    ($( $name:literal, $arity:expr, [$($flag:literal),*], ($f:expr, $l:expr, $s:expr),
        $group:literal, $since:literal, $kind:expr, $summary:literal; )*) => {
        /// Every command, in documentation order.
        pub static COMMANDS: &[Command] = &[ $( Command {
            name: $name, arity: $arity, flags: &[$($flag),*], first_key: $f, last_key: $l,
            step: $s, group: $group, summary: $summary, since: $since, kind: $kind,
        }, )* ];
    };
}

use Coord as C;
use Cross::{AllOk, Never, Positional, Sum};
const fn k(run: ShardFn) -> Kind {
    Kind::Keyed { run, cross: Never }
}
const fn kx(run: ShardFn, cross: Cross) -> Kind {
    Kind::Keyed { run, cross }
}

commands! {
    // connection
    "ping", -1, ["fast", "stale"], (0, 0, 0), "connection", "1.0.0", Kind::Coord(C::Ping), "Returns the server's liveliness response.";
    "echo", 2, ["fast"], (0, 0, 0), "connection", "1.0.0", Kind::Coord(C::Echo), "Returns the given string.";
    "hello", -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", "6.0.0", Kind::Coord(C::Hello), "Handshakes with the server.";
    "auth", -2, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", "1.0.0", Kind::Coord(C::Auth), "Authenticates the connection.";
    "select", 2, ["loading", "stale", "fast"], (0, 0, 0), "connection", "1.0.0", Kind::Coord(C::Select), "Changes the selected database.";
    "quit", -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", "1.0.0", Kind::Coord(C::Quit), "Closes the connection.";
    "reset", 1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", "6.2.0", Kind::Coord(C::Reset), "Resets the connection.";
    "client", -2, ["loading", "stale"], (0, 0, 0), "connection", "2.4.0", Kind::Coord(C::Client), "A container for client connection commands.";
    // transactions
    "multi", 1, ["noscript", "loading", "stale", "fast", "allow_busy"], (0, 0, 0), "transactions", "1.2.0", Kind::Coord(C::Multi), "Starts a transaction.";
    "exec", 1, ["noscript", "loading", "stale", "skip_slowlog"], (0, 0, 0), "transactions", "1.2.0", Kind::Coord(C::Exec), "Executes all commands in a transaction.";
    "discard", 1, ["noscript", "loading", "stale", "fast", "allow_busy"], (0, 0, 0), "transactions", "2.0.0", Kind::Coord(C::Discard), "Discards a transaction.";
    "watch", -2, ["noscript", "loading", "stale", "fast", "allow_busy"], (1, -1, 1), "transactions", "2.2.0", Kind::Coord(C::Watch), "Monitors changes to keys to determine the execution of a transaction.";
    "unwatch", 1, ["noscript", "loading", "stale", "fast", "allow_busy"], (0, 0, 0), "transactions", "2.2.0", Kind::Coord(C::Unwatch), "Forgets about watched keys of a transaction.";
    // pubsub
    "subscribe", -2, ["pubsub", "noscript", "loading", "stale"], (0, 0, 0), "pubsub", "2.0.0", Kind::Coord(C::Subscribe), "Listens for messages published to channels.";
    "psubscribe", -2, ["pubsub", "noscript", "loading", "stale"], (0, 0, 0), "pubsub", "2.0.0", Kind::Coord(C::Subscribe), "Listens for messages published to channels that match one or more patterns.";
    "unsubscribe", -1, ["pubsub", "noscript", "loading", "stale"], (0, 0, 0), "pubsub", "2.0.0", Kind::Coord(C::Unsubscribe), "Stops listening to messages posted to channels.";
    "punsubscribe", -1, ["pubsub", "noscript", "loading", "stale"], (0, 0, 0), "pubsub", "2.0.0", Kind::Coord(C::Unsubscribe), "Stops listening to messages published to channels that match one or more patterns.";
    "publish", 3, ["pubsub", "loading", "stale", "fast"], (0, 0, 0), "pubsub", "2.0.0", Kind::Coord(C::Publish), "Posts a message to a channel.";
    "pubsub", -2, ["loading", "stale"], (0, 0, 0), "pubsub", "2.8.0", Kind::Coord(C::PubSub), "A container for Pub/Sub commands.";
    // server
    "command", -1, ["loading", "stale"], (0, 0, 0), "server", "2.8.13", Kind::Coord(C::Command), "Returns detailed information about all commands.";
    "info", -1, ["loading", "stale"], (0, 0, 0), "server", "1.0.0", Kind::Coord(C::Info), "Returns information and statistics about the server.";
    "config", -2, ["admin", "noscript", "loading", "stale"], (0, 0, 0), "server", "2.0.0", Kind::Coord(C::Config), "A container for server configuration commands.";
    "dbsize", 1, ["readonly", "fast"], (0, 0, 0), "server", "1.0.0", Kind::Coord(C::DbSize), "Returns the number of keys in the database.";
    "flushdb", -1, ["write"], (0, 0, 0), "server", "1.0.0", Kind::Coord(C::FlushDb), "Removes all keys from the current database.";
    "flushall", -1, ["write"], (0, 0, 0), "server", "1.0.0", Kind::Coord(C::FlushAll), "Removes all keys from all databases.";
    "time", 1, ["loading", "stale", "fast"], (0, 0, 0), "server", "2.6.0", Kind::Coord(C::Time), "Returns the server time.";
    "shutdown", -1, ["admin", "noscript", "loading", "stale", "no_multi", "allow_busy"], (0, 0, 0), "server", "1.0.0", Kind::Coord(C::Shutdown), "Stops the server.";
    // string
    "get", 2, ["readonly", "fast"], (1, 1, 1), "string", "1.0.0", k(string::get), "Returns the string value of a key.";
    "set", -3, ["write", "denyoom"], (1, 1, 1), "string", "1.0.0", k(string::set), "Sets the string value of a key, ignoring its type.";
    "setnx", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", "1.0.0", k(string::setnx), "Sets the string value of a key only when the key doesn't exist.";
    "setex", 4, ["write", "denyoom"], (1, 1, 1), "string", "2.0.0", k(string::setex), "Sets the string value and expiration time of a key.";
    "psetex", 4, ["write", "denyoom"], (1, 1, 1), "string", "2.6.0", k(string::setex), "Sets both string value and expiration time in milliseconds of a key.";
    "getset", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", "1.0.0", k(string::getset), "Returns the previous string value of a key after setting it to a new value.";
    "getdel", 2, ["write", "fast"], (1, 1, 1), "string", "6.2.0", k(string::getdel), "Returns the string value of a key after deleting the key.";
    "getex", -2, ["write", "fast"], (1, 1, 1), "string", "6.2.0", k(string::getex), "Returns the string value of a key after setting its expiration time.";
    "append", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", "2.0.0", k(string::append), "Appends a string to the value of a key.";
    "strlen", 2, ["readonly", "fast"], (1, 1, 1), "string", "2.2.0", k(string::strlen), "Returns the length of a string value.";
    "incr", 2, ["write", "denyoom", "fast"], (1, 1, 1), "string", "1.0.0", k(string::incr), "Increments the integer value of a key by one.";
    "decr", 2, ["write", "denyoom", "fast"], (1, 1, 1), "string", "1.0.0", k(string::incr), "Decrements the integer value of a key by one.";
    "incrby", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", "1.0.0", k(string::incr), "Increments the integer value of a key by a number.";
    "decrby", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", "1.0.0", k(string::incr), "Decrements a number from the integer value of a key.";
    "incrbyfloat", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", "2.6.0", k(string::incrbyfloat), "Increment the floating point value of a key by a number.";
    "getrange", 4, ["readonly"], (1, 1, 1), "string", "2.4.0", k(string::getrange), "Returns a substring of the string stored at a key.";
    "setrange", 4, ["write", "denyoom"], (1, 1, 1), "string", "2.2.0", k(string::setrange), "Overwrites a part of a string value with another by an offset.";
    "mget", -2, ["readonly", "fast"], (1, -1, 1), "string", "1.0.0", kx(string::mget, Positional), "Atomically returns the string values of one or more keys.";
    "mset", -3, ["write", "denyoom"], (1, -1, 2), "string", "1.0.1", kx(string::mset, AllOk), "Atomically creates or modifies the string values of one or more keys.";
    "msetnx", -3, ["write", "denyoom"], (1, -1, 2), "string", "1.0.1", kx(string::msetnx, Cross::Custom(C::MSetNx)), "Atomically modifies the string values of one or more keys only when all keys don't exist.";
    // generic
    "del", -2, ["write"], (1, -1, 1), "generic", "1.0.0", kx(generic::del, Sum), "Deletes one or more keys.";
    "unlink", -2, ["write", "fast"], (1, -1, 1), "generic", "4.0.0", kx(generic::del, Sum), "Asynchronously deletes one or more keys.";
    "exists", -2, ["readonly", "fast"], (1, -1, 1), "generic", "1.0.0", kx(generic::exists, Sum), "Determines whether one or more keys exist.";
    "touch", -2, ["readonly", "fast"], (1, -1, 1), "generic", "3.2.1", kx(generic::exists, Sum), "Returns the number of existing keys out of those specified after updating the time they were last accessed.";
    "type", 2, ["readonly", "fast"], (1, 1, 1), "generic", "1.0.0", k(generic::type_of), "Determines the type of value stored at a key.";
    "keys", 2, ["readonly"], (0, 0, 0), "generic", "1.0.0", Kind::Coord(C::Keys), "Returns all key names that match a pattern.";
    "scan", -2, ["readonly"], (0, 0, 0), "generic", "2.8.0", Kind::Coord(C::Scan), "Iterates over the key names in the database.";
    "randomkey", 1, ["readonly"], (0, 0, 0), "generic", "1.0.0", Kind::Coord(C::RandomKey), "Returns a random key name from the database.";
    "rename", 3, ["write"], (1, 2, 1), "generic", "1.0.0", kx(generic::rename, Cross::Custom(C::Rename)), "Renames a key and overwrites the destination.";
    "renamenx", 3, ["write", "fast"], (1, 2, 1), "generic", "1.0.0", kx(generic::rename, Cross::Custom(C::RenameNx)), "Renames a key only when the target key name doesn't exist.";
    "expire", -3, ["write", "fast"], (1, 1, 1), "generic", "1.0.0", k(generic::expire), "Sets the expiration time of a key in seconds.";
    "pexpire", -3, ["write", "fast"], (1, 1, 1), "generic", "2.6.0", k(generic::expire), "Sets the expiration time of a key in milliseconds.";
    "expireat", -3, ["write", "fast"], (1, 1, 1), "generic", "1.2.0", k(generic::expire), "Sets the expiration time of a key to a Unix timestamp.";
    "pexpireat", -3, ["write", "fast"], (1, 1, 1), "generic", "2.6.0", k(generic::expire), "Sets the expiration time of a key to a Unix milliseconds timestamp.";
    "ttl", 2, ["readonly", "fast"], (1, 1, 1), "generic", "1.0.0", k(generic::ttl), "Returns the expiration time in seconds of a key.";
    "pttl", 2, ["readonly", "fast"], (1, 1, 1), "generic", "2.6.0", k(generic::ttl), "Returns the expiration time in milliseconds of a key.";
    "expiretime", 2, ["readonly", "fast"], (1, 1, 1), "generic", "7.0.0", k(generic::ttl), "Returns the expiration time of a key as a Unix timestamp.";
    "pexpiretime", 2, ["readonly", "fast"], (1, 1, 1), "generic", "7.0.0", k(generic::ttl), "Returns the expiration time of a key as a Unix milliseconds timestamp.";
    "persist", 2, ["write", "fast"], (1, 1, 1), "generic", "2.2.0", k(generic::persist), "Removes the expiration time of a key.";
    "copy", -3, ["write", "denyoom"], (1, 2, 1), "generic", "6.2.0", kx(generic::copy, Cross::Custom(C::Copy)), "Copies the value of a key to a new key.";
    "object", -2, ["readonly"], (2, 2, 1), "generic", "2.2.3", k(generic::object), "A container for object introspection commands.";
    // list
    "lpush", -3, ["write", "denyoom", "fast"], (1, 1, 1), "list", "1.0.0", k(list::push), "Prepends one or more elements to a list. Creates the key if it doesn't exist.";
    "rpush", -3, ["write", "denyoom", "fast"], (1, 1, 1), "list", "1.0.0", k(list::push), "Appends one or more elements to a list. Creates the key if it doesn't exist.";
    "lpushx", -3, ["write", "denyoom", "fast"], (1, 1, 1), "list", "2.2.0", k(list::push), "Prepends one or more elements to a list only when the list exists.";
    "rpushx", -3, ["write", "denyoom", "fast"], (1, 1, 1), "list", "2.2.0", k(list::push), "Appends an element to a list only when the list exists.";
    "lpop", -2, ["write", "fast"], (1, 1, 1), "list", "1.0.0", k(list::pop), "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.";
    "rpop", -2, ["write", "fast"], (1, 1, 1), "list", "1.0.0", k(list::pop), "Returns and removes the last elements of a list. Deletes the list if the last element was popped.";
    "llen", 2, ["readonly", "fast"], (1, 1, 1), "list", "1.0.0", k(list::llen), "Returns the length of a list.";
    "lrange", 4, ["readonly"], (1, 1, 1), "list", "1.0.0", k(list::lrange), "Returns a range of elements from a list.";
    "lindex", 3, ["readonly"], (1, 1, 1), "list", "1.0.0", k(list::lindex), "Returns an element from a list by its index.";
    "lset", 4, ["write", "denyoom"], (1, 1, 1), "list", "1.0.0", k(list::lset), "Sets the value of an element in a list by its index.";
    "linsert", 5, ["write", "denyoom"], (1, 1, 1), "list", "2.2.0", k(list::linsert), "Inserts an element before or after another element in a list.";
    "lrem", 4, ["write"], (1, 1, 1), "list", "1.0.0", k(list::lrem), "Removes elements from a list. Deletes the list if the last element was removed.";
    "ltrim", 4, ["write"], (1, 1, 1), "list", "1.0.0", k(list::ltrim), "Removes elements from both ends a list. Deletes the list if all elements were trimmed.";
    "lpos", -3, ["readonly"], (1, 1, 1), "list", "6.0.6", k(list::lpos), "Returns the index of matching elements in a list.";
    "lmove", 5, ["write", "denyoom"], (1, 2, 1), "list", "6.2.0", kx(list::lmove, Cross::Custom(C::LMove)), "Returns an element after popping it from one list and pushing it to another.";
    "blpop", -3, ["write", "noscript", "blocking"], (1, -2, 1), "list", "2.0.0", Kind::Coord(C::Block), "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.";
    "brpop", -3, ["write", "noscript", "blocking"], (1, -2, 1), "list", "2.0.0", Kind::Coord(C::Block), "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.";
    "blmpop", -5, ["write", "blocking", "movablekeys"], (0, 0, 0), "list", "7.0.0", Kind::Coord(C::Block), "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.";
    "blmove", 6, ["write", "denyoom", "noscript", "blocking"], (1, 2, 1), "list", "6.2.0", Kind::Coord(C::Block), "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.";
    "brpoplpush", 4, ["write", "denyoom", "noscript", "blocking"], (1, 2, 1), "list", "2.2.0", Kind::Coord(C::Block), "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.";
    "lmpop", -4, ["write", "movablekeys"], (0, 0, 0), "list", "7.0.0", kx(list::lmpop, Cross::Custom(C::LMPop)), "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.";
    "rpoplpush", 3, ["write", "denyoom"], (1, 2, 1), "list", "1.2.0", kx(list::lmove, Cross::Custom(C::LMove)), "Returns the last element of a list after removing and pushing it to another list.";
    // hash
    "hset", -4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", "2.0.0", k(hash::hset), "Creates or modifies the value of a field in a hash.";
    "hmset", -4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", "2.0.0", k(hash::hset), "Sets the values of multiple fields.";
    "hsetnx", 4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", "2.0.0", k(hash::hsetnx), "Sets the value of a field in a hash only when the field doesn't exist.";
    "hget", 3, ["readonly", "fast"], (1, 1, 1), "hash", "2.0.0", k(hash::hget), "Returns the value of a field in a hash.";
    "hmget", -3, ["readonly", "fast"], (1, 1, 1), "hash", "2.0.0", k(hash::hmget), "Returns the values of all fields in a hash.";
    "hdel", -3, ["write", "fast"], (1, 1, 1), "hash", "2.0.0", k(hash::hdel), "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.";
    "hlen", 2, ["readonly", "fast"], (1, 1, 1), "hash", "2.0.0", k(hash::hlen), "Returns the number of fields in a hash.";
    "hstrlen", 3, ["readonly", "fast"], (1, 1, 1), "hash", "3.2.0", k(hash::hstrlen), "Returns the length of the value of a field.";
    "hexists", 3, ["readonly", "fast"], (1, 1, 1), "hash", "2.0.0", k(hash::hexists), "Determines whether a field exists in a hash.";
    "hkeys", 2, ["readonly"], (1, 1, 1), "hash", "2.0.0", k(hash::hgetall), "Returns all fields in a hash.";
    "hvals", 2, ["readonly"], (1, 1, 1), "hash", "2.0.0", k(hash::hgetall), "Returns all values in a hash.";
    "hgetall", 2, ["readonly"], (1, 1, 1), "hash", "2.0.0", k(hash::hgetall), "Returns all fields and values in a hash.";
    "hincrby", 4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", "2.0.0", k(hash::hincrby), "Increments the integer value of a field in a hash by a number.";
    "hincrbyfloat", 4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", "2.6.0", k(hash::hincrbyfloat), "Increments the floating point value of a field by a number.";
    "hrandfield", -2, ["readonly"], (1, 1, 1), "hash", "6.2.0", k(hash::hrandfield), "Returns one or more random fields from a hash.";
    "hscan", -3, ["readonly"], (1, 1, 1), "hash", "2.8.0", k(hash::hscan), "Iterates over fields and values of a hash.";
    // set
    "sadd", -3, ["write", "denyoom", "fast"], (1, 1, 1), "set", "1.0.0", k(set::sadd), "Adds one or more members to a set. Creates the key if it doesn't exist.";
    "srem", -3, ["write", "fast"], (1, 1, 1), "set", "1.0.0", k(set::srem), "Removes one or more members from a set. Deletes the set if the last member was removed.";
    "scard", 2, ["readonly", "fast"], (1, 1, 1), "set", "1.0.0", k(set::scard), "Returns the number of members in a set.";
    "sismember", 3, ["readonly", "fast"], (1, 1, 1), "set", "1.0.0", k(set::sismember), "Determines whether a member belongs to a set.";
    "smismember", -3, ["readonly", "fast"], (1, 1, 1), "set", "6.2.0", k(set::sismember), "Determines whether multiple members belong to a set.";
    "smembers", 2, ["readonly"], (1, 1, 1), "set", "1.0.0", k(set::smembers), "Returns all members of a set.";
    "srandmember", -2, ["readonly"], (1, 1, 1), "set", "1.0.0", k(set::srandmember), "Get one or multiple random members from a set";
    "spop", -2, ["write", "fast"], (1, 1, 1), "set", "1.0.0", k(set::srandmember), "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.";
    "sscan", -3, ["readonly"], (1, 1, 1), "set", "2.8.0", k(set::sscan), "Iterates over members of a set.";
    "smove", 4, ["write", "fast"], (1, 2, 1), "set", "1.0.0", kx(set::smove, Cross::Custom(C::SMove)), "Moves a member from one set to another.";
    "sinter", -2, ["readonly"], (1, -1, 1), "set", "1.0.0", kx(set::algebra, Cross::Custom(C::SetAlgebra)), "Returns the intersect of multiple sets.";
    "sunion", -2, ["readonly"], (1, -1, 1), "set", "1.0.0", kx(set::algebra, Cross::Custom(C::SetAlgebra)), "Returns the union of multiple sets.";
    "sdiff", -2, ["readonly"], (1, -1, 1), "set", "1.0.0", kx(set::algebra, Cross::Custom(C::SetAlgebra)), "Returns the difference of multiple sets.";
    "sinterstore", -3, ["write", "denyoom"], (1, -1, 1), "set", "1.0.0", kx(set::algebra, Cross::Custom(C::SetAlgebra)), "Stores the intersect of multiple sets in a key.";
    "sunionstore", -3, ["write", "denyoom"], (1, -1, 1), "set", "1.0.0", kx(set::algebra, Cross::Custom(C::SetAlgebra)), "Stores the union of multiple sets in a key.";
    "sdiffstore", -3, ["write", "denyoom"], (1, -1, 1), "set", "1.0.0", kx(set::algebra, Cross::Custom(C::SetAlgebra)), "Stores the difference of multiple sets in a key.";
    "sintercard", -3, ["readonly", "movablekeys"], (0, 0, 0), "set", "7.0.0", kx(set::algebra, Cross::Custom(C::SetAlgebra)), "Returns the number of members of the intersect of multiple sets.";
    // sorted set
    "zadd", -4, ["write", "denyoom", "fast"], (1, 1, 1), "sorted-set", "1.2.0", k(zset::zadd), "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.";
    "zincrby", 4, ["write", "denyoom", "fast"], (1, 1, 1), "sorted-set", "1.2.0", k(zset::zadd), "Increments the score of a member in a sorted set.";
    "zrem", -3, ["write", "fast"], (1, 1, 1), "sorted-set", "1.2.0", k(zset::zrem), "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.";
    "zcard", 2, ["readonly", "fast"], (1, 1, 1), "sorted-set", "1.2.0", k(zset::zcard), "Returns the number of members in a sorted set.";
    "zcount", 4, ["readonly", "fast"], (1, 1, 1), "sorted-set", "2.0.0", k(zset::zcount), "Returns the count of members in a sorted set that have scores within a range.";
    "zlexcount", 4, ["readonly", "fast"], (1, 1, 1), "sorted-set", "2.8.9", k(zset::zcount), "Returns the number of members in a sorted set within a lexicographical range.";
    "zscore", 3, ["readonly", "fast"], (1, 1, 1), "sorted-set", "1.2.0", k(zset::zscore), "Returns the score of a member in a sorted set.";
    "zmscore", -3, ["readonly", "fast"], (1, 1, 1), "sorted-set", "6.2.0", k(zset::zmscore), "Returns the score of one or more members in a sorted set.";
    "zrank", 3, ["readonly", "fast"], (1, 1, 1), "sorted-set", "2.0.0", k(zset::zrank), "Returns the index of a member in a sorted set ordered by ascending scores.";
    "zrevrank", 3, ["readonly", "fast"], (1, 1, 1), "sorted-set", "2.0.0", k(zset::zrank), "Returns the index of a member in a sorted set ordered by descending scores.";
    "zrange", -4, ["readonly"], (1, 1, 1), "sorted-set", "1.2.0", k(zset::zrange), "Returns members in a sorted set within a range of indexes.";
    "zrangestore", -5, ["write", "denyoom"], (1, 2, 1), "sorted-set", "6.2.0", kx(zset::zrange, Cross::Custom(C::ZRangeStore)), "Stores a range of members from sorted set in a key.";
    "zrangebyscore", -4, ["readonly"], (1, 1, 1), "sorted-set", "1.0.5", k(zset::zrange), "Returns members in a sorted set within a range of scores.";
    "zrevrangebyscore", -4, ["readonly"], (1, 1, 1), "sorted-set", "2.2.0", k(zset::zrange), "Returns members in a sorted set within a range of scores in reverse order.";
    "zrangebylex", -4, ["readonly"], (1, 1, 1), "sorted-set", "2.8.9", k(zset::zrange), "Returns members in a sorted set within a lexicographical range.";
    "zrevrangebylex", -4, ["readonly"], (1, 1, 1), "sorted-set", "2.8.9", k(zset::zrange), "Returns members in a sorted set within a lexicographical range in reverse order.";
    "zrevrange", -4, ["readonly"], (1, 1, 1), "sorted-set", "1.2.0", k(zset::zrange), "Returns members in a sorted set within a range of indexes in reverse order.";
    "zremrangebyrank", 4, ["write"], (1, 1, 1), "sorted-set", "2.0.0", k(zset::zremrange), "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.";
    "zremrangebyscore", 4, ["write"], (1, 1, 1), "sorted-set", "1.2.0", k(zset::zremrange), "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.";
    "zremrangebylex", 4, ["write"], (1, 1, 1), "sorted-set", "2.8.9", k(zset::zremrange), "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.";
    "zpopmin", -2, ["write", "fast"], (1, 1, 1), "sorted-set", "5.0.0", k(zset::zpop), "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.";
    "zpopmax", -2, ["write", "fast"], (1, 1, 1), "sorted-set", "5.0.0", k(zset::zpop), "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.";
    "zmpop", -4, ["write", "movablekeys"], (0, 0, 0), "sorted-set", "7.0.0", kx(zset::zmpop, Cross::Custom(C::ZMPop)), "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.";
    "zrandmember", -2, ["readonly"], (1, 1, 1), "sorted-set", "6.2.0", k(zset::zrandmember), "Returns one or more random members from a sorted set.";
    "zscan", -3, ["readonly"], (1, 1, 1), "sorted-set", "2.8.0", k(zset::zscan), "Iterates over members and scores of a sorted set.";
    "zunion", -3, ["readonly", "movablekeys"], (0, 0, 0), "sorted-set", "6.2.0", kx(zset::algebra, Cross::Custom(C::ZAlgebra)), "Returns the union of multiple sorted sets.";
    "zinter", -3, ["readonly", "movablekeys"], (0, 0, 0), "sorted-set", "6.2.0", kx(zset::algebra, Cross::Custom(C::ZAlgebra)), "Returns the intersect of multiple sorted sets.";
    "zdiff", -3, ["readonly", "movablekeys"], (0, 0, 0), "sorted-set", "6.2.0", kx(zset::algebra, Cross::Custom(C::ZAlgebra)), "Returns the difference between multiple sorted sets.";
    "zunionstore", -4, ["write", "denyoom", "movablekeys"], (1, 1, 1), "sorted-set", "2.0.0", kx(zset::algebra, Cross::Custom(C::ZAlgebra)), "Stores the union of multiple sorted sets in a key.";
    "zinterstore", -4, ["write", "denyoom", "movablekeys"], (1, 1, 1), "sorted-set", "2.0.0", kx(zset::algebra, Cross::Custom(C::ZAlgebra)), "Stores the intersect of multiple sorted sets in a key.";
    "zdiffstore", -4, ["write", "denyoom", "movablekeys"], (1, 1, 1), "sorted-set", "6.2.0", kx(zset::algebra, Cross::Custom(C::ZAlgebra)), "Stores the difference of multiple sorted sets in a key.";
    "zintercard", -3, ["readonly", "movablekeys"], (0, 0, 0), "sorted-set", "7.0.0", kx(zset::algebra, Cross::Custom(C::ZAlgebra)), "Returns the number of members of the intersect of multiple sorted sets.";
    "bzpopmin", -3, ["write", "noscript", "blocking", "fast"], (1, -2, 1), "sorted-set", "5.0.0", Kind::Coord(C::Block), "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.";
    "bzpopmax", -3, ["write", "noscript", "blocking", "fast"], (1, -2, 1), "sorted-set", "5.0.0", Kind::Coord(C::Block), "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.";
    "bzmpop", -5, ["write", "blocking", "movablekeys"], (0, 0, 0), "sorted-set", "7.0.0", Kind::Coord(C::Block), "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.";
}

static BY_NAME: LazyLock<AHashMap<&'static [u8], &'static Command>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name.as_bytes(), c)).collect());

/// The command named `name`, in any letter case.
#[must_use]
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    BY_NAME.get(&*lower).copied()
}

/// What a request names inside the container at a key, for
/// [`crate::engine::shard::Shard::prefetch_members`] (see [`member_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRef<'a> {
    /// The container's key.
    pub key: &'a Bytes,
    /// HSET's first field, SADD's first member, ZADD's member.
    pub member: &'a Bytes,
    /// The score a plain ZADD gives the member (not yet parsed), for the tree nodes it will touch.
    pub score: Option<&'a Bytes>,
}

/// The member a request names inside the container at its key (HSET's first field, SADD's
/// first member, ZADD's member in its plain form), for
/// [`crate::engine::shard::Shard::prefetch_members`]; `None` for other commands. A hint only: a wrong
/// guess wastes a few prefetches.
#[must_use]
pub fn member_of(args: &[Bytes]) -> Option<MemberRef<'_>> {
    const AT_TWO: [&[u8]; 14] = [
        b"hset",
        b"hsetnx",
        b"hget",
        b"hexists",
        b"hincrby",
        b"hincrbyfloat",
        b"hdel",
        b"hstrlen",
        b"sadd",
        b"srem",
        b"sismember",
        b"zscore",
        b"zrank",
        b"zrem",
    ];
    let name = args.first()?;
    if args.len() < 3 || !matches!(name.first()? | 0x20, b'h' | b's' | b'z') {
        return None;
    }
    let (member, score) = if AT_TWO.iter().any(|n| name.eq_ignore_ascii_case(n)) {
        (args.get(2)?, None)
    } else if args.len() == 4 && name.eq_ignore_ascii_case(b"zadd") {
        (args.get(3)?, args.get(2))
    } else {
        return None;
    };
    Some(MemberRef { key: args.get(1)?, member, score })
}

/// The lowercase name `args[0]` of a request, for error messages.
#[must_use]
pub fn display_name(args: &[Bytes]) -> String {
    String::from_utf8_lossy(&args[0]).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_of_names_the_member_a_container_command_touches() {
        let args = |s: &str| s.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect::<Vec<_>>();
        let member = |s: &str| member_of(&args(s)).map(|m| m.member.to_vec());
        assert_eq!(member("HSET h f v"), Some(b"f".to_vec()));
        assert_eq!(member("sismember s m"), Some(b"m".to_vec()));
        assert_eq!(member("ZADD z 1.5 m"), Some(b"m".to_vec()));
        let zadd = args("ZADD z 1.5 m");
        let found = member_of(&zadd).unwrap();
        assert_eq!((&found.key[..], found.score.map(|s| &s[..])), (&b"z"[..], Some(&b"1.5"[..])));
        assert_eq!(member_of(&args("HSET h f v")).unwrap().score, None);
        // Flags or several pairs: no guess.
        assert_eq!(member("ZADD z NX 1 m"), None);
        assert_eq!(member("SET k v"), None);
        assert_eq!(member("HLEN h"), None);
        assert_eq!(member("HINCRBYFLOATANDMORE h f 1"), None);
    }

    #[test]
    fn lookup_ignores_case_and_positions_keys() {
        let mset = lookup(b"MsEt").unwrap();
        assert_eq!(mset.name, "mset");
        let args = |n: usize| vec![Bytes::from_static(b"2"); n];
        assert!(mset.arity_ok(5) && mset.groups_ok(5));
        assert!(mset.arity_ok(4) && !mset.groups_ok(4), "MSET needs whole key/value pairs");
        assert_eq!(mset.key_positions(&args(5)).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(lookup(b"del").unwrap().key_positions(&args(4)).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(lookup(b"rename").unwrap().key_positions(&args(3)).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(lookup(b"ping").unwrap().key_positions(&args(1)).count(), 0);
        // SINTERCARD 2 a b LIMIT 1: the keys are those the count names.
        assert_eq!(lookup(b"sintercard").unwrap().key_positions(&args(6)).collect::<Vec<_>>(), [2, 3]);
        // ZUNIONSTORE dest 2 a b WEIGHTS 1 1: the destination, then the counted keys.
        assert_eq!(lookup(b"zunionstore").unwrap().key_positions(&args(8)).collect::<Vec<_>>(), [1, 3, 4]);
        // BZMPOP 0 2 a b MIN: the count follows the timeout.
        assert_eq!(lookup(b"bzmpop").unwrap().key_positions(&args(6)).collect::<Vec<_>>(), [3, 4]);
        assert!(lookup(b"nosuchcommandwithaverylongnamepastthirtytwo").is_none());
    }

    #[test]
    fn names_are_unique_and_lowercase() {
        assert_eq!(BY_NAME.len(), COMMANDS.len());
        assert!(COMMANDS.iter().all(|c| c.name == c.name.to_lowercase()));
    }
}
