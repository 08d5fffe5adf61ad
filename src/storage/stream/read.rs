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
    // One buffer for the entry, each field and value a slice of it: one allocation, not two per
    // pair.
    let mut buf = Vec::new();
    let mut ends = Vec::with_capacity(2 * e.pairs.len());
    e.pairs.for_each(|(f, v)| {
        for part in [f, v] {
            buf.extend_from_slice(part);
            ends.push(buf.len());
        }
    });
    let buf = Bytes::from(buf);
    let mut start = 0;
    let flat = ends
        .into_iter()
        .map(|end| {
            let part = buf.slice(start..end);
            start = end;
            part
        })
        .collect();
    (e.id, Some(flat))
}

/// A pending entry claimed, as Redis propagates it.
pub(crate) struct Claim<'a> {
    /// The consumer it went to.
    pub(crate) consumer: &'a [u8],
    /// Its ID, as the request wrote it (XCLAIM) or formatted.
    pub(crate) id: &'a [u8],
    /// Its delivery time.
    pub(crate) time: i64,
    /// Its delivery count.
    pub(crate) count: u64,
    /// The group's last ID then.
    pub(crate) last: StreamId,
}

/// Logs `XCLAIM key group consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID LASTID last`, Redis's
/// form for a delivery or claim (`streamPropagateXCLAIM`).
pub(crate) fn log_claim(log: &mut dyn FnMut(&[&[u8]]), key: &[u8], group: &[u8], c: &Claim<'_>) {
    let (time, count, last) = (c.time.to_string(), c.count.to_string(), c.last.to_string());
    log(&[
        b"XCLAIM",
        key,
        group,
        c.consumer,
        b"0",
        c.id,
        b"TIME",
        time.as_bytes(),
        b"RETRYCOUNT",
        count.as_bytes(),
        b"FORCE",
        b"JUSTID",
        b"LASTID",
        last.as_bytes(),
    ]);
}

/// Logs `XGROUP SETID key group last ENTRIESREAD n` (`streamPropagateGroupID`).
pub(crate) fn log_setid(log: &mut dyn FnMut(&[&[u8]]), key: &[u8], group: &[u8], last: StreamId, read: i64) {
    let (last, read) = (last.to_string(), read.to_string());
    log(&[b"XGROUP", b"SETID", key, group, last.as_bytes(), b"ENTRIESREAD", read.as_bytes()]);
}

/// `count` as a bound: 0 is none.
#[must_use]
pub(crate) fn bound(count: usize) -> usize {
    if count == 0 {
        usize::MAX
    } else {
        count
    }
}

/// Up to `count` (0: all) live entries after `after`.
#[must_use]
pub(crate) fn after(s: &Stream, after: StreamId, count: usize) -> Vec<Copied> {
    let Some(start) = after.next() else { return Vec::new() };
    s.range(start, StreamId::MAX).take(bound(count)).map(copy).collect()
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
    /// Whether the effects are wanted (the journal records them): a read with none to log
    /// formats none.
    pub(crate) effects: bool,
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
    let Reader { key, group, consumer, noack, now, effects } = r;
    let g = s.groups.get(group)?;
    let entries = after(s, g.last_id, count);
    // The group's read counter, entry by entry (Redis's `streamReplyWithRange` with a group),
    // and each entry's delivery logged with the group's last ID as of that entry.
    let mut read = g.entries_read;
    for (id, _) in &entries {
        read = match read.checked_add(1) {
            Some(next) if read != UNKNOWN_READ && !s.has_tombstones_from(*id) => next,
            _ if s.entries_added != 0 => {
                s.entries_up_to(*id).and_then(|n| i64::try_from(n).ok()).unwrap_or(UNKNOWN_READ)
            }
            _ => read,
        };
    }
    let g = s.groups.get_mut(group)?;
    let (name, created) = g.seen(consumer, now);
    if created && noack && effects {
        log(&[b"XGROUP", b"CREATECONSUMER", key, group, consumer]);
    }
    let Some(last) = entries.last().map(|(id, _)| *id) else { return Some(entries) };
    g.last_id = last;
    g.entries_read = read;
    if noack {
        if effects {
            log_setid(log, key, group, last, read);
        }
        return Some(entries);
    }
    for (id, _) in &entries {
        g.deliver_new(*id, &name, now);
        if effects {
            let text = id.to_string();
            log_claim(
                log,
                key,
                group,
                &Claim { consumer, id: text.as_bytes(), time: now, count: 1, last: *id },
            );
        }
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
    let Reader { key, group, consumer, noack, now, effects } = r;
    let g = s.groups.get_mut(group)?;
    let (_, created) = g.seen(consumer, now);
    if created && noack && effects {
        log(&[b"XGROUP", b"CREATECONSUMER", key, group, consumer]);
    }
    // After the largest ID, Redis's increment wraps to 0-0: the whole history.
    let start = after.next().unwrap_or(StreamId::MIN);
    let pel = g.consumers.get(consumer).map(|c| &c.pel);
    let ids: Vec<StreamId> =
        pel.map(|p| p.range(start..).take(bound(count)).copied().collect()).unwrap_or_default();
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
