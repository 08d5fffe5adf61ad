//! A node of the cluster as this node knows it: its name, addresses, role, epoch and flags,
//! and its line in CLUSTER NODES and nodes.conf (Redis's `clusterGenNodeDescription`).

use std::fmt;

/// Length of a node's name: 40 characters of `[a-z0-9]` (Redis's `CLUSTER_NAMELEN`).
pub(crate) const NAME_LEN: usize = 40;

/// A node's name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct NodeId([u8; NAME_LEN]);

impl NodeId {
    /// A name as Redis accepts one (`verifyClusterNodeId`): exactly 40 characters, each a
    /// lowercase letter or a digit.
    #[must_use]
    pub(crate) fn parse(name: &[u8]) -> Option<NodeId> {
        let name: [u8; NAME_LEN] = name.try_into().ok()?;
        name.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()).then_some(NodeId(name))
    }

    /// A new random name: 40 hex digits, as Redis's `getRandomHexChars`.
    #[must_use]
    pub(crate) fn random() -> NodeId {
        let mut rng = crate::storage::rng::Rng::seeded(u64::from(std::process::id()));
        let mut name = [0u8; NAME_LEN];
        for c in &mut name {
            *c = b"0123456789abcdef"[(rng.next_u64() >> 60) as usize];
        }
        NodeId(name)
    }

    /// The name as text.
    #[must_use]
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII letters and digits get in (`parse`, `random`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's flags, with the bit values of Redis's `CLUSTER_NODE_*` (the bus carries them).
pub(crate) mod flag {
    /// A primary.
    pub(crate) const MASTER: u16 = 1;
    /// A replica.
    pub(crate) const SLAVE: u16 = 2;
    /// Possibly failing: this node could not reach it in time.
    pub(crate) const PFAIL: u16 = 4;
    /// Failing, by a majority of primaries.
    pub(crate) const FAIL: u16 = 8;
    /// This node.
    pub(crate) const MYSELF: u16 = 16;
    /// Met but not yet greeted back: its real name is unknown.
    pub(crate) const HANDSHAKE: u16 = 32;
    /// Its address is unknown.
    pub(crate) const NOADDR: u16 = 64;
    /// To be sent a MEET rather than a PING (CLUSTER MEET).
    pub(crate) const MEET: u16 = 128;
    /// A primary that had replicas (eligible for replica migration).
    pub(crate) const MIGRATE_TO: u16 = 256;
    /// A replica that never fails over.
    pub(crate) const NOFAILOVER: u16 = 512;

    /// The flags CLUSTER NODES and nodes.conf show, with their names, in Redis's order.
    pub(crate) const NAMES: [(u16, &str); 8] = [
        (MYSELF, "myself"),
        (MASTER, "master"),
        (SLAVE, "slave"),
        (PFAIL, "fail?"),
        (FAIL, "fail"),
        (HANDSHAKE, "handshake"),
        (NOADDR, "noaddr"),
        (NOFAILOVER, "nofailover"),
    ];
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// Its name.
    pub(crate) id: NodeId,
    /// Its [`flag`]s.
    pub(crate) flags: u16,
    /// The address clients and the bus reach it at (empty until known).
    pub(crate) ip: String,
    /// Its plain TCP client port (0 when it has none, or it is not known).
    pub(crate) tcp_port: u16,
    /// Its TLS client port (0 when it has none, or it is not known).
    pub(crate) tls_port: u16,
    /// Its cluster bus port.
    pub(crate) cport: u16,
    /// The hostname it announces (empty when none).
    pub(crate) hostname: String,
    /// The primary it replicates, for a replica.
    pub(crate) master: Option<NodeId>,
    /// When the last PING to it was sent (unix ms; 0 when none is pending).
    pub(crate) ping_sent: u64,
    /// When its last PONG came (unix ms).
    pub(crate) pong_received: u64,
    /// Its configuration epoch.
    pub(crate) config_epoch: u64,
    /// Whether this node has a bus link to it.
    pub(crate) connected: bool,
    /// Its replication offset, as last heard.
    pub(crate) repl_offset: u64,
    /// How many slots it serves (kept by [`crate::engine::cluster::state::State`]'s slot
    /// changes: Redis's `numslots`).
    pub(crate) slot_count: u16,
}

impl Node {
    /// A node known only by name.
    #[must_use]
    pub(crate) fn new(id: NodeId, flags: u16) -> Node {
        Node {
            id,
            flags,
            ip: String::new(),
            tcp_port: 0,
            tls_port: 0,
            cport: 0,
            hostname: String::new(),
            master: None,
            ping_sent: 0,
            pong_received: 0,
            config_epoch: 0,
            connected: false,
            repl_offset: 0,
            slot_count: 0,
        }
    }

    /// Whether it has all of `flags`.
    #[must_use]
    pub(crate) fn is(&self, flags: u16) -> bool {
        self.flags & flags == flags
    }

    /// The client port for a client connected over TLS (`tls`) or not: the port of the same
    /// kind when the node has one (as Redis 7.2), else its other one.
    #[must_use]
    pub(crate) fn client_port(&self, tls: bool) -> u16 {
        let (same, other) = if tls { (self.tls_port, self.tcp_port) } else { (self.tcp_port, self.tls_port) };
        if same != 0 {
            same
        } else {
            other
        }
    }

    /// The flags' names, comma-separated (`noflags` for none).
    #[must_use]
    pub(crate) fn flag_names(&self) -> String {
        let names: Vec<&str> =
            flag::NAMES.iter().filter(|(bit, _)| self.flags & bit != 0).map(|(_, name)| *name).collect();
        if names.is_empty() {
            "noflags".into()
        } else {
            names.join(",")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_forty_lowercase_letters_or_digits() {
        let good = b"07c37dfeb235213a872192d90877d0cd55635b91";
        assert_eq!(NodeId::parse(good).map(|n| n.to_string()), Some(String::from_utf8_lossy(good).into()));
        // Any lowercase letter, as Redis's verifyClusterNodeId.
        assert!(NodeId::parse(b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").is_some());
        assert!(NodeId::parse(b"07C37DFEB235213A872192D90877D0CD55635B91").is_none());
        assert!(NodeId::parse(b"07c37dfeb235213a872192d90877d0cd55635b9").is_none());
        let random = NodeId::random();
        assert!(NodeId::parse(random.as_str().as_bytes()).is_some());
        assert_ne!(random, NodeId::random());
    }

    #[test]
    fn client_ports_match_the_client_s_connection() {
        let mut n = Node::new(NodeId::random(), flag::MASTER);
        n.tcp_port = 7000;
        n.tls_port = 8000;
        assert_eq!((n.client_port(false), n.client_port(true)), (7000, 8000));
        n.tls_port = 0;
        assert_eq!(n.client_port(true), 7000);
        assert_eq!(n.flag_names(), "master");
        n.flags = 0;
        assert_eq!(n.flag_names(), "noflags");
        n.flags = flag::MYSELF | flag::SLAVE | flag::PFAIL;
        assert_eq!(n.flag_names(), "myself,slave,fail?");
    }
}
