//! Reading a stream for a consumer group (XREADGROUP, from a request or for a blocked client):
//! new entries delivered and recorded as pending, or a consumer's history read again, with
//! the effects Redis propagates for them (XCLAIM per delivery, XGROUP SETID and
//! CREATECONSUMER under NOACK).

use bytes::Bytes;

use crate::storage::stream::{Entry, Stream, StreamId, UNKNOWN_READ};

/// An entry copied out for a reply: its ID and its fields and values, flattened; `None` for a
/// pending entry no longer in the stream.
pub(crate) type Copied = (StreamId, Option<Vec<Bytes>>);

/// Copies an entry out.
#[must_use]
pub(crate) fn copy(e: Entry<'_>) -> Copied {
    let mut flat = Vec::with_capacity(2 * e.pairs.len());
    e.pairs.for_each(|(f, v)| {
        flat.push(Bytes::copy_from_slice(f));
        flat.push(Bytes::copy_from_slice(v));
    });
    (e.id, Some(flat))
}

/// Up to `count` (0: all) live entries after `after`.
#[must_use]
pub(crate) fn after(s: &Stream, after: StreamId, count: usize) -> Vec<Copied> {
    let Some(start) = after.next() else { return Vec::new() };
    let limit = if count == 0 { usize::MAX } else { count };
    s.range(start, StreamId::MAX).take(limit).map(copy).collect()
}

/// Who reads for a group: the key, the group, the consumer, NOACK, and the time.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    /// The stream's key (for the effects).
    pub(crate) key: &'a [u8],
    /// The group.
    pub(crate) group: &'a [u8],
    /// The consumer.
    pub(crate) consumer: &'a [u8],
    /// NOACK: entries delivered are not pending.
    pub(crate) noack: bool,
    /// Unix ms.
    pub(crate) now: i64,
}

/// The group read `>` of `consumer` in `group`: up to `count` (0: all) entries after the
/// group's last ID, pending for the consumer unless `noack`; `None` when there is no such
/// group. The consumer is created if missing and its seen time set to `now`. `log` gets the
/// effects, as Redis propagates them.
pub(crate) fn deliver(
    s: &mut Stream,
    r: Reader<'_>,
    count: usize,
    log: &mut dyn FnMut(&[&[u8]]),
) -> Option<Vec<Copied>> {
    let Reader { key, group, consumer, noack, now } = r;
    let g = s.groups.get(group)?;
    let entries = after(s, g.last_id, count);
    // The group's read counter, entry by entry (Redis's `streamReplyWithRange` with a group).
    let mut read = g.entries_read;
    for (id, _) in &entries {
        if read != UNKNOWN_READ && !s.has_tombstones_from(*id) {
            read += 1;
        } else if s.entries_added != 0 {
            read = s.entries_up_to(*id).map_or(UNKNOWN_READ, |n| n as i64);
        }
    }
    let g = s.groups.get_mut(group)?;
    let (c, created) = g.consumer(consumer, now);
    c.seen = now;
    let name = g.consumer_name(consumer).unwrap_or_default();
    if created && noack {
        log(&[b"XGROUP", b"CREATECONSUMER", key, group, consumer]);
    }
    let Some(last) = entries.last().map(|(id, _)| *id) else { return Some(entries) };
    g.last_id = last;
    g.entries_read = read;
    let last_text = last.to_string();
    let time = now.to_string();
    for (id, _) in &entries {
        if !noack {
            g.deliver_new(*id, &name, now);
            let id = id.to_string();
            log(&[
                b"XCLAIM",
                key,
                group,
                consumer,
                b"0",
                id.as_bytes(),
                b"TIME",
                time.as_bytes(),
                b"RETRYCOUNT",
                b"1",
                b"FORCE",
                b"JUSTID",
                b"LASTID",
                last_text.as_bytes(),
            ]);
        }
    }
    if noack {
        let read = read.to_string();
        log(&[b"XGROUP", b"SETID", key, group, last_text.as_bytes(), b"ENTRIESREAD", read.as_bytes()]);
    }
    Some(entries)
}

/// The group read of `consumer`'s history after `after`: its pending entries, up to `count`
/// (0: all), each delivered once more (a deleted one comes back as its ID alone and stays
/// pending); `None` when there is no such group. Nothing is propagated, as in Redis.
pub(crate) fn history(
    s: &mut Stream,
    r: Reader<'_>,
    after: StreamId,
    count: usize,
    log: &mut dyn FnMut(&[&[u8]]),
) -> Option<Vec<Copied>> {
    let Reader { key, group, consumer, noack, now } = r;
    let g = s.groups.get_mut(group)?;
    let (c, created) = g.consumer(consumer, now);
    c.seen = now;
    if created && noack {
        log(&[b"XGROUP", b"CREATECONSUMER", key, group, consumer]);
    }
    let limit = if count == 0 { usize::MAX } else { count };
    let ids: Vec<StreamId> = match after.next() {
        Some(start) => c.pel.range(start..).take(limit).copied().collect(),
        None => Vec::new(),
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match s.get(id) {
            Some(e) => {
                out.push(copy(e));
                if let Some(nack) = s.groups.get_mut(group).and_then(|g| g.pel.get_mut(&id)) {
                    nack.delivered = now;
                    nack.deliveries += 1;
                }
            }
            None => out.push((id, None)),
        }
    }
    Some(out)
}
