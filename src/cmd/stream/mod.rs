//! Streams (Redis 7.0's `t_stream.c`): entries (`entries.rs`), reads and blocking reads
//! across shards (`read.rs`), consumer groups (`group.rs`), XINFO (`info.rs`), and what they
//! share (`args.rs`). The data structure is `storage::stream`.

mod args;
mod entries;
mod group;
mod info;
mod read;

use bytes::Bytes;

use crate::engine::command::Command;
use crate::engine::spec::KeyFlags;
use crate::engine::spec::{acl, flag, key, KeySpec};
use group::Sub;

/// XREAD's and XREADGROUP's keys as Redis's `xreadGetKeys` finds them: after STREAMS, the
/// first half of what follows (options before it skipped with their arguments).
fn xread_keys(a: &[Bytes], keys: &mut Vec<(usize, KeyFlags)>) {
    let mut i = 1;
    let mut streams = None;
    while i < a.len() {
        let arg = &a[i];
        if crate::cmd::args::is(arg, "block") || crate::cmd::args::is(arg, "count") {
            i += 2;
        } else if crate::cmd::args::is(arg, "group") {
            i += 3;
        } else if crate::cmd::args::is(arg, "noack") {
            i += 1;
        } else if crate::cmd::args::is(arg, "streams") {
            streams = Some(i);
            break;
        } else {
            break;
        }
    }
    let Some(at) = streams else { return };
    let n = a.len() - at - 1;
    if n == 0 || n % 2 != 0 {
        return;
    }
    keys.extend((at + 1..=at + n / 2).map(|p| (p, key::RO | key::ACCESS)));
}

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    let one = |flags| KeySpec::index(1).range(0, 1, 0).flags(flags);
    let two = |flags| KeySpec::index(2).range(0, 1, 0).flags(flags);
    vec![
        Command::shard("xadd", -5, entries::xadd)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STREAM)
            .key(one(key::RW | key::UPDATE).notes("UPDATE instead of INSERT because of the optional trimming feature"))
            .tips(&["nondeterministic_output"])
            .docs("stream", "5.0.0", "O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted.", "Appends a new entry to a stream")
            .history(&[
                ("6.2.0", "Added the `NOMKSTREAM` option, `MINID` trimming strategy and the `LIMIT` option."),
                ("7.0.0", "Added support for the `<ms>-*` explicit ID form."),
            ]),
        Command::shard("xrange", -4, |c, a| entries::xrange(c, a, false))
            .flags(flag::READONLY)
            .acl(acl::STREAM)
            .key(one(key::RO | key::ACCESS))
            .docs("stream", "5.0.0", "O(N) with N being the number of elements being returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).", "Return a range of elements in a stream, with IDs matching the specified IDs interval")
            .history(&[("6.2.0", "Added exclusive ranges.")]),
        Command::shard("xrevrange", -4, |c, a| entries::xrange(c, a, true))
            .flags(flag::READONLY)
            .acl(acl::STREAM)
            .key(one(key::RO | key::ACCESS))
            .docs("stream", "5.0.0", "O(N) with N being the number of elements returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).", "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE")
            .history(&[("6.2.0", "Added exclusive ranges.")]),
        Command::shard("xlen", 2, entries::xlen)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::STREAM)
            .key(one(key::RO))
            .docs("stream", "5.0.0", "O(1)", "Return the number of entries in a stream"),
        Command::shard("xdel", -3, entries::xdel)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::STREAM)
            .key(one(key::RW | key::DELETE))
            .docs("stream", "5.0.0", "O(1) for each single item to delete in the stream, regardless of the stream size.", "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist."),
        Command::shard("xtrim", -4, entries::xtrim)
            .flags(flag::WRITE)
            .acl(acl::STREAM)
            .key(one(key::RW | key::DELETE))
            .tips(&["nondeterministic_output"])
            .docs("stream", "5.0.0", "O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation.", "Trims the stream to (approximately if '~' is passed) a certain size")
            .history(&[("6.2.0", "Added the `MINID` trimming strategy and the `LIMIT` option.")]),
        Command::session("xread", -4, |s, a| Box::pin(read::xread(s, a)))
            .flags(flag::READONLY | flag::BLOCKING)
            .acl(acl::STREAM)
            .key(KeySpec::keyword("STREAMS", 1).range(-1, 1, 2).flags(key::RO | key::ACCESS))
            .getkeys(xread_keys)
            .docs("stream", "5.0.0", "For each stream mentioned: O(N) with N being the number of elements being returned, it means that XREAD-ing with a fixed COUNT is O(1). Note that when the BLOCK option is used, XADD will pay O(M) time in order to serve the M clients blocked on the stream getting new data.", "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block."),
        Command::session("xreadgroup", -7, |s, a| Box::pin(read::xread(s, a)))
            .flags(flag::WRITE | flag::BLOCKING)
            .acl(acl::STREAM)
            .key(KeySpec::keyword("STREAMS", 4).range(-1, 1, 2).flags(key::RO | key::ACCESS))
            .getkeys(xread_keys)
            .docs("stream", "5.0.0", "For each stream mentioned: O(M) with M being the number of elements returned. If M is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in order to serve the N clients blocked on the stream getting new data.", "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block."),
        Command::container("xgroup", -2, vec![
            Command::shard("create", -5, |c, a| group::xgroup(c, a, Sub::Create))
                .flags(flag::WRITE | flag::DENYOOM)
                .acl(acl::STREAM)
                .key(two(key::RW | key::INSERT))
                .docs("stream", "5.0.0", "O(1)", "Create a consumer group.")
                .history(&[("7.0.0", "Added the `entries_read` named argument.")]),
            Command::shard("setid", -5, |c, a| group::xgroup(c, a, Sub::SetId))
                .flags(flag::WRITE)
                .acl(acl::STREAM)
                .key(two(key::RW | key::UPDATE))
                .docs("stream", "5.0.0", "O(1)", "Set a consumer group to an arbitrary last delivered ID value.")
                .history(&[("7.0.0", "Added the optional `entries_read` argument.")]),
            Command::shard("destroy", 4, |c, a| group::xgroup(c, a, Sub::Destroy))
                .flags(flag::WRITE)
                .acl(acl::STREAM)
                .key(two(key::RW | key::DELETE))
                .docs("stream", "5.0.0", "O(N) where N is the number of entries in the group's pending entries list (PEL).", "Destroy a consumer group."),
            Command::shard("createconsumer", 5, |c, a| group::xgroup(c, a, Sub::CreateConsumer))
                .flags(flag::WRITE | flag::DENYOOM)
                .acl(acl::STREAM)
                .key(two(key::RW | key::INSERT))
                .docs("stream", "6.2.0", "O(1)", "Create a consumer in a consumer group."),
            Command::shard("delconsumer", 5, |c, a| group::xgroup(c, a, Sub::DelConsumer))
                .flags(flag::WRITE)
                .acl(acl::STREAM)
                .key(two(key::RW | key::DELETE))
                .docs("stream", "5.0.0", "O(1)", "Delete a consumer from a consumer group."),
            Command::inline("help", 2, |_, _| Ok(group::xgroup_help()))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::STREAM)
                .docs("stream", "5.0.0", "O(1)", "Show helpful text about the different subcommands"),
        ])
            .docs("stream", "5.0.0", "Depends on subcommand.", "A container for consumer groups commands"),
        Command::shard("xack", -4, group::xack)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::STREAM)
            .key(one(key::RW | key::UPDATE))
            .docs("stream", "5.0.0", "O(1) for each message ID processed.", "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL."),
        Command::shard("xpending", -3, group::xpending)
            .flags(flag::READONLY)
            .acl(acl::STREAM)
            .key(one(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("stream", "5.0.0", "O(N) with N being the number of elements returned, so asking for a small fixed number of entries per call is O(1). O(M), where M is the total number of entries scanned when used with the IDLE filter. When the command returns just the summary and the list of consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for iterating every consumer.", "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged.")
            .history(&[("6.2.0", "Added the `IDLE` option and exclusive range intervals.")]),
        Command::shard("xclaim", -6, group::xclaim)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::STREAM)
            .key(one(key::RW | key::UPDATE))
            .tips(&["nondeterministic_output"])
            .docs("stream", "5.0.0", "O(log N) with N being the number of messages in the PEL of the consumer group.", "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer."),
        Command::shard("xautoclaim", -6, group::xautoclaim)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::STREAM)
            .key(one(key::RW | key::DELETE))
            .tips(&["nondeterministic_output"])
            .docs("stream", "6.2.0", "O(1) if COUNT is small.", "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer.")
            .history(&[("7.0.0", "Added an element to the reply array, containing deleted entries the command cleared from the PEL")]),
        Command::container("xinfo", -2, vec![
            Command::shard("consumers", 4, info::xinfo_consumers)
                .flags(flag::READONLY)
                .acl(acl::STREAM)
                .key(two(key::RO | key::ACCESS))
                .tips(&["nondeterministic_output"])
                .docs("stream", "5.0.0", "O(1)", "List the consumers in a consumer group"),
            Command::shard("groups", 3, info::xinfo_groups)
                .flags(flag::READONLY)
                .acl(acl::STREAM)
                .key(two(key::RO | key::ACCESS))
                .docs("stream", "5.0.0", "O(1)", "List the consumer groups of a stream")
                .history(&[("7.0.0", "Added the `entries-read` and `lag` fields")]),
            Command::shard("stream", -3, info::xinfo_stream)
                .flags(flag::READONLY)
                .acl(acl::STREAM)
                .key(two(key::RO | key::ACCESS))
                .docs("stream", "5.0.0", "O(1)", "Get information about a stream")
                .history(&[
                    ("6.0.0", "Added the `FULL` modifier."),
                    ("7.0.0", "Added the `max-deleted-entry-id`, `entries-added`, `recorded-first-entry-id`, `entries-read` and `lag` fields"),
                ]),
            Command::inline("help", 2, |_, _| Ok(info::xinfo_help()))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::STREAM)
                .docs("stream", "5.0.0", "O(1)", "Show helpful text about the different subcommands"),
        ])
            .docs("stream", "5.0.0", "Depends on subcommand.", "A container for stream introspection commands"),
        Command::shard("xsetid", -3, entries::xsetid)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STREAM)
            .key(one(key::RW | key::UPDATE))
            .docs("stream", "5.0.0", "O(1)", "An internal command for replicating stream values")
            .history(&[("7.0.0", "Added the `entries_added` and `max_deleted_entry_id` arguments.")]),
    ]
}
