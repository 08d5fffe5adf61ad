//! The cluster bus's messages, byte for byte as Redis 7.0 writes them (`clusterMsg` in
//! `cluster.h`): a 2256-byte header (signature `RCmb`, lengths, ports, epochs, the sender's
//! name, slots and primary), then a body by type. Plain data: [`decode`] parses a whole frame
//! into a [`Message`] or says why it is refused, [`Message::encode`] writes one; nothing here
//! does I/O or trusts a length it has not checked.

use crate::engine::cluster::node::NodeId;

/// The header's size, and the smallest frame (`CLUSTERMSG_MIN_LEN`).
pub(crate) const HEADER_LEN: usize = 2256;
/// The slot bitmap's size.
pub(crate) const SLOT_BYTES: usize = 2048;
/// A gossip entry's size (`clusterMsgDataGossip`).
const GOSSIP_LEN: usize = 104;
/// The size of an IP field (`NET_IP_STR_LEN`).
const IP_LEN: usize = 46;
/// The protocol version.
const VERSION: u16 = 1;

/// Message types.
pub(crate) mod kind {
    pub(crate) const PING: u16 = 0;
    pub(crate) const PONG: u16 = 1;
    pub(crate) const MEET: u16 = 2;
    pub(crate) const FAIL: u16 = 3;
    pub(crate) const PUBLISH: u16 = 4;
    pub(crate) const AUTH_REQUEST: u16 = 5;
    pub(crate) const AUTH_ACK: u16 = 6;
    pub(crate) const UPDATE: u16 = 7;
    pub(crate) const MFSTART: u16 = 8;
    pub(crate) const MODULE: u16 = 9;
    pub(crate) const PUBLISHSHARD: u16 = 10;
    /// Their names in CLUSTER INFO's message counters, by type.
    pub(crate) const NAMES: [&str; 11] = [
        "ping",
        "pong",
        "meet",
        "fail",
        "publish",
        "auth-req",
        "auth-ack",
        "update",
        "mfstart",
        "module",
        "publishshard",
    ];
}

/// `mflags[0]` bits.
pub(crate) mod mflag {
    /// Ping extensions follow the gossip.
    pub(crate) const EXT_DATA: u8 = 4;
}

/// The hostname ping extension's type (the only one Redis 7.0 has).
const EXT_HOSTNAME: u16 = 0;

/// Why a frame is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WireError {
    /// Not `RCmb`, or shorter than a header: the link is closed, as Redis does.
    #[error("Bad message length or signature received on the Cluster bus")]
    Framing,
    /// A protocol version other than 1.
    #[error("cluster bus message of version {0}")]
    Version(u16),
    /// The length does not match what the type and its counts say.
    #[error("cluster bus message of type {kind} with length {len}, expected {expected}")]
    Length {
        /// The message type.
        kind: u16,
        /// Its `totlen`.
        len: usize,
        /// What its contents add up to.
        expected: usize,
    },
    /// A name or extension that does not parse.
    #[error("malformed cluster bus message: {0}")]
    Malformed(&'static str),
}

/// A node as a PING, PONG or MEET gossips about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gossip {
    /// Its name.
    pub(crate) id: NodeId,
    /// When the sender last pinged it (seconds).
    pub(crate) ping_sent: u32,
    /// When the sender last heard a PONG from it (seconds).
    pub(crate) pong_received: u32,
    /// Its address.
    pub(crate) ip: String,
    /// Its client port (TLS with `tls-cluster`).
    pub(crate) port: u16,
    /// Its bus port.
    pub(crate) cport: u16,
    /// Its flags as the sender sees them.
    pub(crate) flags: u16,
    /// Its other client port (plain with `tls-cluster`, else 0).
    pub(crate) pport: u16,
}

/// What follows the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// PING, PONG or MEET: gossip about other nodes, and the sender's hostname.
    Ping {
        /// The gossip entries.
        gossip: Vec<Gossip>,
        /// The hostname extension (empty: none sent).
        hostname: String,
    },
    /// FAIL: a node the sender found failing.
    Fail(NodeId),
    /// PUBLISH or PUBLISHSHARD.
    Publish {
        /// The channel.
        channel: Vec<u8>,
        /// The message.
        message: Vec<u8>,
    },
    /// UPDATE: a node's slots, at its epoch.
    Update {
        /// The node's configuration epoch.
        config_epoch: u64,
        /// The node.
        id: NodeId,
        /// Its slots.
        slots: Box<[u8; SLOT_BYTES]>,
    },
    /// FAILOVER_AUTH_REQUEST, FAILOVER_AUTH_ACK, MFSTART: the header says it all.
    Empty,
    /// MODULE, or a type this node does not know: kept, not interpreted.
    Other(Vec<u8>),
}

/// One bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// Its type ([`kind`]).
    pub(crate) kind: u16,
    /// The sender's client port (TLS with `tls-cluster`).
    pub(crate) port: u16,
    /// The highest epoch the sender knows.
    pub(crate) current_epoch: u64,
    /// The sender's configuration epoch (its primary's, for a replica).
    pub(crate) config_epoch: u64,
    /// The sender's replication offset.
    pub(crate) offset: u64,
    /// The sender's name (not yet checked: Redis looks unknown names up and finds nothing).
    pub(crate) sender: [u8; 40],
    /// The sender's slots (its primary's, for a replica).
    pub(crate) slots: Box<[u8; SLOT_BYTES]>,
    /// The sender's primary, for a replica.
    pub(crate) master: Option<NodeId>,
    /// The address the sender announces (empty: use the link's peer address).
    pub(crate) ip: String,
    /// The sender's other client port (plain with `tls-cluster`).
    pub(crate) pport: u16,
    /// The sender's bus port.
    pub(crate) cport: u16,
    /// The sender's flags.
    pub(crate) flags: u16,
    /// Whether the sender sees the cluster failing.
    pub(crate) fail: bool,
    /// [`mflag`] bits (but `EXT_DATA`, which [`Message::encode`] sets from the body).
    pub(crate) mflags: u8,
    /// The body.
    pub(crate) body: Body,
}

/// The total length of the frame whose first 8 bytes are `head` (`RCmb` and `totlen`).
///
/// # Errors
/// [`WireError::Framing`]: not a frame; the link must close.
pub(crate) fn frame_len(head: &[u8; 8]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if &head[..4] != b"RCmb" || len < HEADER_LEN {
        return Err(WireError::Framing);
    }
    Ok(len)
}

/// Whether slot `slot` is set in a bitmap (byte `slot / 8`, bit `slot % 8`, LSB first).
#[must_use]
pub(crate) fn has_slot(bits: &[u8; SLOT_BYTES], slot: u16) -> bool {
    bits[usize::from(slot / 8)] & (1 << (slot % 8)) != 0
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

/// A NUL-padded string field.
fn text_at(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A name field: `None` when all zero (no primary) or not a valid name.
fn name_at(b: &[u8]) -> Option<NodeId> {
    NodeId::parse(&b[..40])
}

/// Parses one whole frame (`frame.len()` is its `totlen`), checking every length as Redis's
/// `clusterProcessPacket` does before it reads a field.
///
/// # Errors
/// Why the frame is refused ([`WireError::Framing`] closes the link; the others drop the
/// message).
pub(crate) fn decode(frame: &[u8]) -> Result<Message, WireError> {
    if frame.len() < HEADER_LEN || &frame[..4] != b"RCmb" || u32_at(frame, 4) as usize != frame.len() {
        return Err(WireError::Framing);
    }
    let version = u16_at(frame, 8);
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let kind = u16_at(frame, 12);
    let count = usize::from(u16_at(frame, 14));
    let extensions = usize::from(u16_at(frame, 2214));
    let mflags = frame[2253];
    let len = frame.len();
    let data = &frame[HEADER_LEN..];
    let length = |expected: usize| {
        if expected == len {
            Ok(())
        } else {
            Err(WireError::Length { kind, len, expected })
        }
    };
    let body = match kind {
        kind::PING | kind::PONG | kind::MEET => {
            let gossip_end = count * GOSSIP_LEN;
            if HEADER_LEN + gossip_end > len {
                return Err(WireError::Length { kind, len, expected: HEADER_LEN + gossip_end });
            }
            let gossip =
                data[..gossip_end].chunks_exact(GOSSIP_LEN).map(gossip_entry).collect::<Result<_, _>>()?;
            let mut at = gossip_end;
            let mut hostname = String::new();
            let with_ext = mflags & mflag::EXT_DATA != 0;
            for _ in 0..if with_ext { extensions } else { 0 } {
                if at + 8 > data.len() {
                    return Err(WireError::Malformed("a ping extension past the end"));
                }
                let ext_len = u32_at(data, at) as usize;
                let ext_kind = u16_at(data, at + 4);
                if ext_len < 8 || ext_len % 8 != 0 || at + ext_len > data.len() {
                    return Err(WireError::Malformed("a ping extension of a bad length"));
                }
                if ext_kind == EXT_HOSTNAME {
                    hostname = text_at(&data[at + 8..at + ext_len]);
                }
                at += ext_len;
            }
            length(HEADER_LEN + at)?;
            Body::Ping { gossip, hostname }
        }
        kind::FAIL => {
            length(HEADER_LEN + 40)?;
            Body::Fail(name_at(data).ok_or(WireError::Malformed("a bad node name in FAIL"))?)
        }
        kind::PUBLISH | kind::PUBLISHSHARD => {
            if len < HEADER_LEN + 8 {
                return Err(WireError::Length { kind, len, expected: HEADER_LEN + 8 });
            }
            let (channel_len, message_len) = (u32_at(data, 0) as usize, u32_at(data, 4) as usize);
            length(HEADER_LEN + 8 + channel_len + message_len)?;
            Body::Publish {
                channel: data[8..8 + channel_len].to_vec(),
                message: data[8 + channel_len..8 + channel_len + message_len].to_vec(),
            }
        }
        kind::AUTH_REQUEST | kind::AUTH_ACK | kind::MFSTART => {
            length(HEADER_LEN)?;
            Body::Empty
        }
        kind::UPDATE => {
            length(HEADER_LEN + 8 + 40 + SLOT_BYTES)?;
            let mut slots = Box::new([0u8; SLOT_BYTES]);
            slots.copy_from_slice(&data[48..48 + SLOT_BYTES]);
            Body::Update {
                config_epoch: u64_at(data, 0),
                id: name_at(&data[8..]).ok_or(WireError::Malformed("a bad node name in UPDATE"))?,
                slots,
            }
        }
        kind::MODULE => {
            if len < HEADER_LEN + 13 {
                return Err(WireError::Length { kind, len, expected: HEADER_LEN + 13 });
            }
            length(HEADER_LEN + 13 + u32_at(data, 8) as usize)?;
            Body::Other(data.to_vec())
        }
        _ => Body::Other(data.to_vec()),
    };
    let mut sender = [0u8; 40];
    sender.copy_from_slice(&frame[40..80]);
    let mut slots = Box::new([0u8; SLOT_BYTES]);
    slots.copy_from_slice(&frame[80..80 + SLOT_BYTES]);
    Ok(Message {
        kind,
        port: u16_at(frame, 10),
        current_epoch: u64_at(frame, 16),
        config_epoch: u64_at(frame, 24),
        offset: u64_at(frame, 32),
        sender,
        slots,
        master: name_at(&frame[2128..]),
        ip: text_at(&frame[2168..2168 + IP_LEN]),
        pport: u16_at(frame, 2246),
        cport: u16_at(frame, 2248),
        flags: u16_at(frame, 2250),
        fail: frame[2252] != 0,
        // EXT_DATA says how the body is laid out; the body carries what it announced.
        mflags: mflags & !mflag::EXT_DATA,
        body,
    })
}

fn gossip_entry(g: &[u8]) -> Result<Gossip, WireError> {
    Ok(Gossip {
        id: name_at(g).ok_or(WireError::Malformed("a bad node name in gossip"))?,
        ping_sent: u32_at(g, 40),
        pong_received: u32_at(g, 44),
        ip: text_at(&g[48..48 + IP_LEN]),
        port: u16_at(g, 94),
        cport: u16_at(g, 96),
        flags: u16_at(g, 98),
        pport: u16_at(g, 100),
    })
}

impl Message {
    /// The sender's name, when it is a valid one.
    #[must_use]
    pub(crate) fn sender_id(&self) -> Option<NodeId> {
        NodeId::parse(&self.sender)
    }

    /// The frame, as Redis 7.0 writes it.
    #[must_use]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN];
        out[..4].copy_from_slice(b"RCmb");
        out[8..10].copy_from_slice(&VERSION.to_be_bytes());
        out[10..12].copy_from_slice(&self.port.to_be_bytes());
        out[12..14].copy_from_slice(&self.kind.to_be_bytes());
        out[16..24].copy_from_slice(&self.current_epoch.to_be_bytes());
        out[24..32].copy_from_slice(&self.config_epoch.to_be_bytes());
        out[32..40].copy_from_slice(&self.offset.to_be_bytes());
        out[40..80].copy_from_slice(&self.sender);
        out[80..80 + SLOT_BYTES].copy_from_slice(&self.slots[..]);
        if let Some(master) = &self.master {
            out[2128..2168].copy_from_slice(master.as_str().as_bytes());
        }
        put_text(&mut out[2168..2168 + IP_LEN], &self.ip);
        out[2246..2248].copy_from_slice(&self.pport.to_be_bytes());
        out[2248..2250].copy_from_slice(&self.cport.to_be_bytes());
        out[2250..2252].copy_from_slice(&self.flags.to_be_bytes());
        out[2252] = u8::from(self.fail);
        let mut mflags = self.mflags & !mflag::EXT_DATA;
        match &self.body {
            Body::Ping { gossip, hostname } => {
                out[14..16].copy_from_slice(&(gossip.len() as u16).to_be_bytes());
                for g in gossip {
                    let mut entry = [0u8; GOSSIP_LEN];
                    entry[..40].copy_from_slice(g.id.as_str().as_bytes());
                    entry[40..44].copy_from_slice(&g.ping_sent.to_be_bytes());
                    entry[44..48].copy_from_slice(&g.pong_received.to_be_bytes());
                    put_text(&mut entry[48..48 + IP_LEN], &g.ip);
                    entry[94..96].copy_from_slice(&g.port.to_be_bytes());
                    entry[96..98].copy_from_slice(&g.cport.to_be_bytes());
                    entry[98..100].copy_from_slice(&g.flags.to_be_bytes());
                    entry[100..102].copy_from_slice(&g.pport.to_be_bytes());
                    out.extend_from_slice(&entry);
                }
                if !hostname.is_empty() {
                    mflags |= mflag::EXT_DATA;
                    out[2214..2216].copy_from_slice(&1u16.to_be_bytes());
                    let padded = (hostname.len() + 1).div_ceil(8) * 8;
                    out.extend_from_slice(&((8 + padded) as u32).to_be_bytes());
                    out.extend_from_slice(&EXT_HOSTNAME.to_be_bytes());
                    out.extend_from_slice(&[0, 0]);
                    out.extend_from_slice(hostname.as_bytes());
                    out.resize(out.len() + padded - hostname.len(), 0);
                }
            }
            Body::Fail(id) => out.extend_from_slice(id.as_str().as_bytes()),
            Body::Publish { channel, message } => {
                out.extend_from_slice(&(channel.len() as u32).to_be_bytes());
                out.extend_from_slice(&(message.len() as u32).to_be_bytes());
                out.extend_from_slice(channel);
                out.extend_from_slice(message);
            }
            Body::Update { config_epoch, id, slots } => {
                out.extend_from_slice(&config_epoch.to_be_bytes());
                out.extend_from_slice(id.as_str().as_bytes());
                out.extend_from_slice(&slots[..]);
            }
            Body::Empty => {}
            Body::Other(data) => out.extend_from_slice(data),
        }
        out[2253] = mflags;
        let len = out.len() as u32;
        out[4..8].copy_from_slice(&len.to_be_bytes());
        out
    }
}

/// Writes `text` NUL-padded into `field` (cut to leave the NUL).
fn put_text(field: &mut [u8], text: &str) {
    let n = text.len().min(field.len() - 1);
    field[..n].copy_from_slice(&text.as_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_slot(bits: &mut [u8; SLOT_BYTES], slot: u16) {
        bits[usize::from(slot / 8)] |= 1 << (slot % 8);
    }

    fn ping() -> Message {
        let mut slots = Box::new([0u8; SLOT_BYTES]);
        set_slot(&mut slots, 0);
        set_slot(&mut slots, 16383);
        Message {
            kind: kind::PING,
            port: 7000,
            current_epoch: 7,
            config_epoch: 3,
            offset: 12345,
            sender: *b"07c37dfeb235213a872192d90877d0cd55635b91",
            slots,
            master: None,
            ip: "127.0.0.1".into(),
            pport: 0,
            cport: 17000,
            flags: 1,
            fail: false,
            mflags: 0,
            body: Body::Ping {
                gossip: vec![Gossip {
                    id: NodeId::random(),
                    ping_sent: 1,
                    pong_received: 2,
                    ip: "127.0.0.2".into(),
                    port: 7001,
                    cport: 17001,
                    flags: 2,
                    pport: 0,
                }],
                hostname: "node-1.example".into(),
            },
        }
    }

    #[test]
    fn frames_round_trip_with_redis_s_layout() {
        let m = ping();
        let frame = m.encode();
        // Header, one gossip entry, a hostname extension of 8 + 16 bytes (Redis's example).
        assert_eq!(frame.len(), HEADER_LEN + 104 + 24);
        assert_eq!(&frame[..4], b"RCmb");
        assert_eq!(frame[80], 1, "slot 0 is bit 0 of byte 0");
        assert_eq!(frame[80 + 2047], 0x80, "slot 16383 is bit 7 of the last byte");
        assert_eq!(frame[2253], mflag::EXT_DATA);
        assert_eq!(decode(&frame), Ok(m.clone()));
        let head: [u8; 8] = frame[..8].try_into().unwrap();
        assert_eq!(frame_len(&head), Ok(frame.len()));
        for body in [
            Body::Fail(NodeId::random()),
            Body::Publish { channel: b"ch".to_vec(), message: b"hello".to_vec() },
            Body::Update { config_epoch: 9, id: NodeId::random(), slots: Box::new([0xa5; SLOT_BYTES]) },
            Body::Empty,
        ] {
            let kind = match &body {
                Body::Fail(_) => kind::FAIL,
                Body::Publish { .. } => kind::PUBLISH,
                Body::Update { .. } => kind::UPDATE,
                _ => kind::AUTH_ACK,
            };
            let m = Message { kind, body, ..ping() };
            assert_eq!(decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn lengths_are_checked_before_fields_are_read() {
        let frame = ping().encode();
        assert_eq!(decode(&frame[..HEADER_LEN - 1]), Err(WireError::Framing));
        let mut bad = frame.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(WireError::Framing));
        let mut bad = frame.clone();
        bad[14..16].copy_from_slice(&500u16.to_be_bytes());
        assert!(matches!(decode(&bad), Err(WireError::Length { .. })));
        let mut bad = frame.clone();
        bad[8..10].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(decode(&bad), Err(WireError::Version(2)));
        let mut bad = frame.clone();
        bad[2214..2216].copy_from_slice(&9u16.to_be_bytes());
        assert!(decode(&bad).is_err());
        // Random bytes behind a valid header never panic.
        let mut rng = crate::storage::rng::Rng::new(7);
        for n in 0..2000 {
            let mut f = frame.clone();
            let at = HEADER_LEN - 50 + rng.below(f.len() - HEADER_LEN + 50);
            f[at] = rng.next_u64() as u8;
            if n % 3 == 0 {
                f.truncate(HEADER_LEN + rng.below(200));
                let len = f.len() as u32;
                f[4..8].copy_from_slice(&len.to_be_bytes());
            }
            let _ = decode(&f);
        }
    }
}
