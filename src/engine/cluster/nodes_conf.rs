//! nodes.conf (`cluster-config-file`): the cluster as this node last saw it, in Redis's format
//! (one CLUSTER NODES line per node, then `vars currentEpoch N lastVoteEpoch N`), read at
//! startup and written after every change.
//!
//! Redis rewrites the file in place, padded, to keep the `flock` it holds on it, and fsyncs it
//! when an epoch moved. ferrokey does the same for changes that move no epoch (slots, nodes,
//! flags); when an epoch moved it replaces the file durably (temporary file, fsync, rename,
//! directory fsync) and then locks the new file before letting the old lock go, so a second
//! server pointed at the same file is refused at any time.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::engine::cluster::node::{flag, NodeId};
use crate::engine::cluster::state::State;
use crate::engine::slot::SLOTS;

/// Why nodes.conf cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ConfError {
    /// Another server holds the file.
    #[error(
        "Sorry, the cluster configuration file {0} is already used by a different Redis Cluster node. Please \
         make sure that different nodes use different cluster configuration files."
    )]
    Locked(String),
    /// The file cannot be opened, read or written.
    #[error("{what} {path}: {why}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The system's reason.
        why: String,
    },
    /// A line that does not parse.
    #[error("Unrecoverable error: corrupted cluster config file ({path} line {line}: {why}).")]
    Corrupt {
        /// The file.
        path: String,
        /// 1-based.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

/// The locked nodes.conf.
#[derive(Debug)]
pub(crate) struct NodesFile {
    path: PathBuf,
    /// Holds the `flock`.
    lock: nix::fcntl::Flock<File>,
    /// The epochs last saved (current, last vote, this node's configuration epoch).
    epochs: Option<(u64, u64, u64)>,
}

impl NodesFile {
    /// Locks `path` (creating it empty when it does not exist) and reads it: `None` when it is
    /// empty, meaning a new node.
    ///
    /// # Errors
    /// [`ConfError::Locked`] when another process holds it, or an I/O error.
    pub(crate) fn open(path: &Path) -> Result<(NodesFile, Option<String>), ConfError> {
        let lock = Self::lock(path)?;
        let text = std::fs::read(path).map_err(|e| io("Loading the cluster node config from", path, &e))?;
        let text = (!text.is_empty()).then(|| String::from_utf8_lossy(&text).into_owned());
        Ok((NodesFile { path: path.to_owned(), lock, epochs: None }, text))
    }

    fn lock(path: &Path) -> Result<nix::fcntl::Flock<File>, ConfError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("Can't open in order to acquire a lock", path, &e))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(lock),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(ConfError::Locked(path.display().to_string())),
            Err((_, e)) => Err(io("Impossible to lock", path, &std::io::Error::from(e))),
        }
    }

    /// Saves `state`. When an epoch moved (a vote, a promotion, a bump, a collision) a new
    /// file is fsynced and renamed over the old one (then locked), as Redis's
    /// `CLUSTER_TODO_FSYNC_CONFIG` asks; other changes (slots, nodes, flags) are written over
    /// the locked file in place without fsync, as Redis writes them: they survive the process,
    /// and cost no disk flush per slot while resharding.
    ///
    /// # Errors
    /// The step that failed (the old file and its lock stay).
    pub(crate) fn save(&mut self, state: &State, tls_cluster: bool) -> Result<(), ConfError> {
        self.write(state, tls_cluster, false)
    }

    /// [`NodesFile::save`], fsynced whatever changed (CLUSTER SAVECONFIG).
    ///
    /// # Errors
    /// The step that failed (the old file and its lock stay).
    pub(crate) fn save_synced(&mut self, state: &State, tls_cluster: bool) -> Result<(), ConfError> {
        self.write(state, tls_cluster, true)
    }

    fn write(&mut self, state: &State, tls_cluster: bool, sync: bool) -> Result<(), ConfError> {
        let epochs = (state.current_epoch, state.last_vote_epoch, state.me().config_epoch);
        let sync = sync || self.epochs != Some(epochs);
        let text = render(state, tls_cluster);
        if !sync {
            // In place through the locked descriptor, as Redis's clusterSaveConfig writes.
            self.overwrite(text.as_bytes())
                .map_err(|e| io("error saving the cluster node config", &self.path, &e))?;
            return Ok(());
        }
        crate::durable::replace(&self.path, text.as_bytes())
            .map_err(|e| io("error saving the cluster node config", &self.path, &e))?;
        self.lock = Self::lock(&self.path)?;
        self.epochs = Some(epochs);
        Ok(())
    }

    /// Writes `text` over the locked file, then cuts what is left of the old one. As Redis's
    /// clusterSaveConfig, a text shorter than the old file is padded with newlines to its
    /// length first, so that a crash before the cut leaves blank lines (which loading skips),
    /// not the tail of an older line.
    fn overwrite(&mut self, text: &[u8]) -> std::io::Result<()> {
        use std::io::{Seek, Write};
        let file: &mut File = &mut self.lock;
        let old = file.metadata()?.len();
        let mut padded = text.to_vec();
        padded.resize(padded.len().max(usize::try_from(old).unwrap_or(usize::MAX)), b'\n');
        file.seek(std::io::SeekFrom::Start(0))?;
        file.write_all(&padded)?;
        file.set_len(text.len() as u64)
    }
}

fn io(what: &'static str, path: &Path, e: &std::io::Error) -> ConfError {
    ConfError::Io { what, path: path.display().to_string(), why: crate::durable::strerror(e) }
}

/// The file's text for `state`: every node but those in handshake, then the epochs.
#[must_use]
pub(crate) fn render(state: &State, tls_cluster: bool) -> String {
    let mut text: String = state
        .nodes()
        .filter(|n| !n.is(flag::HANDSHAKE))
        .map(|n| state.describe(n, tls_cluster) + "\n")
        .collect();
    text.push_str(&format!(
        "vars currentEpoch {} lastVoteEpoch {}\n",
        state.current_epoch, state.last_vote_epoch
    ));
    text
}

/// Reads a nodes.conf's text (Redis's `clusterLoadConfig`). The port on each line is the TLS
/// port with `tls_cluster`, as Redis writes it.
///
/// # Errors
/// The first line that does not parse, or a file naming no `myself`.
pub(crate) fn parse(text: &str, path: &Path, tls_cluster: bool) -> Result<State, ConfError> {
    let corrupt =
        |line: usize, why: String| ConfError::Corrupt { path: path.display().to_string(), line, why };
    let mut myself: Option<NodeId> = None;
    let mut vars: (u64, u64) = (0, 0);
    let mut lines: Vec<(usize, Vec<String>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let words = crate::splitargs::split(line.as_bytes())
            .map_err(|_| corrupt(n + 1, "unbalanced quotes".into()))?
            .into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect::<Vec<_>>();
        if words.first().is_some_and(|w| w.eq_ignore_ascii_case("vars")) {
            if words.len() % 2 == 0 {
                return Err(corrupt(n + 1, "vars without a value".into()));
            }
            for pair in words[1..].chunks(2) {
                let value = pair[1].parse::<u64>().unwrap_or(0);
                if pair[0].eq_ignore_ascii_case("currentEpoch") {
                    vars.0 = value;
                } else if pair[0].eq_ignore_ascii_case("lastVoteEpoch") {
                    vars.1 = value;
                } else {
                    tracing::warn!("Skipping unknown cluster config variable '{}'", pair[0]);
                }
            }
            continue;
        }
        if words.len() < 8 {
            return Err(corrupt(n + 1, "fewer than 8 fields".into()));
        }
        if words[2].split(',').any(|f| f.eq_ignore_ascii_case("myself")) {
            if myself.is_some() {
                return Err(corrupt(n + 1, "a second myself".into()));
            }
            myself =
                Some(NodeId::parse(words[0].as_bytes()).ok_or_else(|| corrupt(n + 1, "bad node id".into()))?);
        }
        lines.push((n + 1, words));
    }
    let me = myself.ok_or_else(|| corrupt(0, "no node is myself".into()))?;
    let mut st = State::alone(crate::engine::cluster::node::Node::new(me, 0));
    for (line, words) in lines {
        node_line(&mut st, &words, tls_cluster).map_err(|why| corrupt(line, why))?;
    }
    st.set_myself(&me);
    st.current_epoch = vars.0.max(st.max_epoch());
    st.last_vote_epoch = vars.1;
    Ok(st)
}

/// One node's line.
fn node_line(state: &mut State, words: &[String], tls_cluster: bool) -> Result<(), String> {
    let id = NodeId::parse(words[0].as_bytes()).ok_or("bad node id")?;
    // `ip:port@cport[,hostname[,aux=value...]]` (Redis 7.2 adds the aux fields).
    let mut addr_parts = words[1].split(',');
    let addr = addr_parts.next().unwrap_or_default();
    let hostname = addr_parts.next().filter(|h| !h.contains('=')).unwrap_or_default().to_owned();
    let aux: Vec<(&str, &str)> = words[1].split(',').skip(1).filter_map(|a| a.split_once('=')).collect();
    let (ip, ports) = addr.rsplit_once(':').ok_or("no port in the address")?;
    let (port, cport) = match ports.split_once('@') {
        Some((p, c)) => (p, Some(c)),
        None => (ports, None),
    };
    let port: u16 = port.parse().map_err(|_| "bad port")?;
    let cport: u16 = match cport {
        Some(c) => c.parse().map_err(|_| "bad bus port")?,
        None => port.wrapping_add(10000),
    };
    let mut flags = 0;
    for name in words[2].split(',') {
        flags |= match name.to_ascii_lowercase().as_str() {
            "noflags" => 0,
            known => flag::NAMES
                .iter()
                .find(|(_, n)| *n == known)
                .map(|(bit, _)| *bit)
                .ok_or_else(|| format!("unknown flag {name}"))?,
        };
    }
    let master = match words[3].as_str() {
        "-" => None,
        m => Some(NodeId::parse(m.as_bytes()).ok_or("bad primary id")?),
    };
    let now = super::unix_ms();
    let stamp = |w: &str| if w.parse::<u64>().unwrap_or(0) != 0 { now } else { 0 };
    let node = state.node_or_add(id);
    node.flags = flags;
    node.ip = ip.to_owned();
    node.hostname = hostname;
    node.cport = cport;
    if tls_cluster {
        node.tls_port = port;
    } else {
        node.tcp_port = port;
    }
    for (key, value) in aux {
        match key {
            "tls-port" => node.tls_port = value.parse().unwrap_or(0),
            "tcp-port" => node.tcp_port = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    node.master = master;
    node.ping_sent = stamp(&words[4]);
    node.pong_received = stamp(&words[5]);
    node.config_epoch = words[6].parse().unwrap_or(0);
    if node.is(flag::SLAVE) && master.is_some() {
        node.config_epoch = 0;
    }
    if let Some(m) = master {
        state.node_or_add(m);
    }
    for word in &words[8..] {
        if let Some(open) = word.strip_prefix('[') {
            let open = open.strip_suffix(']').ok_or("an open slot without ]")?;
            let (slot, rest) = open.split_once('-').ok_or("a bad open slot")?;
            let slot = parse_slot(slot)?;
            let (dir, other) = (rest.get(..2).ok_or("a bad open slot")?, rest.get(2..).unwrap_or_default());
            let other = NodeId::parse(other.as_bytes()).ok_or("a bad node in an open slot")?;
            state.node_or_add(other);
            match dir {
                "<-" => state.importing.insert(slot, other),
                ">-" => state.migrating.insert(slot, other),
                _ => return Err("a bad open slot".into()),
            };
            continue;
        }
        let (a, b) = match word.split_once('-') {
            Some((a, b)) => (parse_slot(a)?, parse_slot(b)?),
            None => (parse_slot(word)?, parse_slot(word)?),
        };
        for slot in a..=b {
            state.add_slot(slot, &id);
        }
    }
    Ok(())
}

fn parse_slot(word: &str) -> Result<u16, String> {
    word.parse::<u16>().ok().filter(|&s| s < SLOTS).ok_or_else(|| format!("bad slot {word}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cluster::node::Node;

    const ME: &str = "07c37dfeb235213a872192d90877d0cd55635b91";
    const OTHER: &str = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca";

    #[test]
    fn redis_s_file_loads_and_saves_back_the_same() {
        let text = format!(
            "{OTHER} 127.0.0.1:30002@31002,host-b master - 0 1426238316232 2 connected 5461-10922\n\
             {ME} 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [77->-{OTHER}] \
             [6000-<-{OTHER}]\n\
             vars currentEpoch 6 lastVoteEpoch 0\n"
        );
        let state = parse(&text, Path::new("nodes.conf"), false).unwrap();
        assert_eq!(state.me().id.as_str(), ME);
        assert_eq!(state.current_epoch, 6);
        assert_eq!(state.count_of(&state.me().id), 5461);
        let other = state.node(&NodeId::parse(OTHER.as_bytes()).unwrap()).unwrap();
        assert_eq!((other.hostname.as_str(), other.tcp_port, other.cport), ("host-b", 30002, 31002));
        assert_ne!(other.pong_received, 0);
        let saved = render(&state, false);
        assert!(saved.contains(&format!(
            "{ME} 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [77->-{OTHER}] [6000-<-{OTHER}]\n"
        )), "{saved}");
        assert!(saved.ends_with("vars currentEpoch 6 lastVoteEpoch 0\n"));
        // Open slots are shown on myself's line only.
        assert!(saved.contains(" 5461-10922\n"));
        assert_eq!(parse(&saved, Path::new("n"), false).unwrap().count_of(&state.me().id), 5461);
    }

    #[test]
    fn damaged_files_are_refused_with_their_line() {
        for bad in [
            format!("{ME} 127.0.0.1:30001@31001 myself,master - 0 0 1\n"),
            format!("{ME} 127.0.0.1@31001 myself,master - 0 0 1 connected\n"),
            format!("{ME} 127.0.0.1:1@2 myself,bogus - 0 0 1 connected\n"),
            format!("{ME} 127.0.0.1:1@2 myself,master - 0 0 1 connected 16384\n"),
            format!("{ME} 127.0.0.1:1@2 myself,master - 0 0 1 connected [5->-abc]\n"),
            format!("{ME} 127.0.0.1:1@2 myself,master - 0 0 1 connected [5-\u{e9}{OTHER}]\n"),
            format!("{OTHER} 127.0.0.1:1@2 master - 0 0 1 connected\n"),
            "vars currentEpoch\n".to_owned(),
        ] {
            assert!(matches!(parse(&bad, Path::new("n"), false), Err(ConfError::Corrupt { .. })), "{bad}");
        }
    }

    #[test]
    fn a_second_server_cannot_take_the_file() {
        let dir = std::env::temp_dir().join(format!("ferrokey-nodes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nodes.conf");
        let (mut file, text) = NodesFile::open(&path).unwrap();
        assert!(text.is_none());
        assert!(matches!(NodesFile::open(&path), Err(ConfError::Locked(_))));
        let me = Node::new(NodeId::random(), flag::MYSELF | flag::MASTER);
        file.save(&State::alone(me), false).unwrap();
        assert!(matches!(NodesFile::open(&path), Err(ConfError::Locked(_))), "the new file is locked too");
        drop(file);
        let (_file, text) = NodesFile::open(&path).unwrap();
        assert!(text.unwrap().contains("myself,master"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
