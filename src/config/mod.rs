//! Server configuration: the directive table, redis.conf files, command-line overrides, and the
//! CONFIG GET/SET view of them. Knows nothing of sockets or the keyspace.

mod file;
mod value;

use std::path::Path;

pub use file::Line;
pub use value::{
    trim_double, AclPubsubDefault, Allowed, AppendFsync, ClientsLimit, ConfigValue, CpuList, DisklessLoad,
    EndpointType, KeyspaceEvents, LogLevel, MaxmemoryPolicy, Memory, OomScoreAdj, OutputLimit, OutputLimits,
    Percentiles, PropagationErrors, SanitizePayload, SavePoints, Supervised, SyslogFacility, TlsAuthClients,
    TlsAuthClientsUser, Words,
};

/// A configuration problem, found at startup or by CONFIG SET.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A config file (or one it includes) could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A line of a config file (or of the command line) is wrong.
    #[error("{origin}: {reason} (in '{line}')")]
    Line {
        /// `file:line`, or `command line`.
        origin: String,
        /// The offending line as written.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `include` nests too deep (a file including itself).
    #[error("{0}: include nesting too deep")]
    IncludeDepth(String),
    /// CONFIG SET or CONFIG GET named a directive that does not exist.
    #[error("Unknown option or number of arguments for CONFIG SET - '{0}'")]
    Unknown(String),
    /// CONFIG SET tried to change a directive that is fixed at startup.
    #[error("CONFIG SET failed (possibly related to argument '{0}') - can't set immutable config")]
    Immutable(String),
    /// CONFIG SET gave a value the directive does not accept.
    #[error("CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    Invalid {
        /// The directive.
        name: String,
        /// What is wrong with the value.
        reason: String,
    },
}

/// One directive: its name, whether CONFIG SET may change it, and how to read and show it.
pub struct Directive {
    /// The name, as in redis.conf.
    pub name: &'static str,
    /// Whether CONFIG SET may change it while the server runs.
    pub mutable: bool,
    set: fn(&mut Config, &[String]) -> Result<(), String>,
    get: fn(&Config) -> String,
}

macro_rules! directives {
    ($( $name:literal => $field:ident : $ty:ty = $default:expr, $mutable:literal; )*) => {
        /// Every setting of the server, one field per directive.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $(
                #[doc = concat!("The `", $name, "` directive.")]
                pub $field: $ty,
            )*
            /// The `user` directives, in order: each a user name, then its ACL rules (they can
            /// repeat, so they are no [`Directive`]; the ACL code applies them at startup).
            pub users: Vec<Vec<String>>,
        }

        impl Default for Config {
            fn default() -> Config {
                Config { $( $field: $default, )* users: Vec::new() }
            }
        }

        /// The directive table, in the order `config/ferrokey.conf` documents them.
        pub static DIRECTIVES: &[Directive] = &[
            $( Directive {
                name: $name,
                mutable: $mutable,
                set: |c, args| { c.$field = <$ty as ConfigValue>::update(&c.$field, args)?; Ok(()) },
                get: |c| c.$field.show(),
            }, )*
        ];
    };
}

directives! {
    "bind" => bind: Vec<String> = vec!["127.0.0.1".into()], false;
    "port" => port: u16 = 6379, true;
    "tls-port" => tls_port: u16 = 0, true;
    "tls-cert-file" => tls_cert_file: String = String::new(), true;
    "tls-key-file" => tls_key_file: String = String::new(), true;
    "tls-key-file-pass" => tls_key_file_pass: String = String::new(), true;
    "tls-client-cert-file" => tls_client_cert_file: String = String::new(), true;
    "tls-client-key-file" => tls_client_key_file: String = String::new(), true;
    "tls-client-key-file-pass" => tls_client_key_file_pass: String = String::new(), true;
    "tls-ca-cert-file" => tls_ca_cert_file: String = String::new(), true;
    "tls-ca-cert-dir" => tls_ca_cert_dir: String = String::new(), true;
    "tls-auth-clients" => tls_auth_clients: TlsAuthClients = TlsAuthClients::Yes, true;
    "tls-auth-clients-user" => tls_auth_clients_user: TlsAuthClientsUser = TlsAuthClientsUser::Off, true;
    "tls-protocols" => tls_protocols: Vec<String> = Vec::new(), true;
    "tls-ciphers" => tls_ciphers: String = String::new(), true;
    "tls-ciphersuites" => tls_ciphersuites: String = String::new(), true;
    "tls-prefer-server-ciphers" => tls_prefer_server_ciphers: bool = true, true;
    "tls-session-caching" => tls_session_caching: bool = true, true;
    "tls-session-cache-size" => tls_session_cache_size: u64 = 20480, true;
    "tls-session-cache-timeout" => tls_session_cache_timeout: u64 = 300, true;
    "tls-replication" => tls_replication: bool = false, true;
    "repl-backlog-size" => repl_backlog_size: Memory = Memory(1 << 20), true;
    "repl-diskless-sync" => repl_diskless_sync: bool = true, true;
    "repl-diskless-sync-delay" => repl_diskless_sync_delay: u64 = 5, true;
    "repl-diskless-load" => repl_diskless_load: DisklessLoad = DisklessLoad::Disabled, true;
    "repl-ping-replica-period" => repl_ping_replica_period: u64 = 10, true;
    "repl-timeout" => repl_timeout: u64 = 60, true;
    "replicaof" => replicaof: Vec<String> = Vec::new(), false;
    "masterauth" => masterauth: String = String::new(), true;
    "masteruser" => masteruser: String = String::new(), true;
    "replica-read-only" => replica_read_only: bool = true, true;
    "replica-serve-stale-data" => replica_serve_stale_data: bool = true, true;
    "repl-backlog-ttl" => repl_backlog_ttl: u64 = 3600, true;
    "replica-announce-ip" => replica_announce_ip: String = String::new(), true;
    "replica-announce-port" => replica_announce_port: u16 = 0, true;
    "replica-priority" => replica_priority: u64 = 100, true;
    "replica-announced" => replica_announced: bool = true, true;
    "min-replicas-to-write" => min_replicas_to_write: usize = 0, true;
    "min-replicas-max-lag" => min_replicas_max_lag: u64 = 10, true;
    "tls-cluster" => tls_cluster: bool = false, true;
    "tls-dh-params-file" => tls_dh_params_file: String = String::new(), true;
    "tls-auto-reload-interval" => tls_auto_reload_interval: u64 = 0, true;
    "max-new-tls-connections-per-cycle" => max_new_tls_connections_per_cycle: u64 = 1, true;
    "threads" => threads: usize = 0, false;
    "server-cpus" => server_cpus: CpuList = CpuList::default(), false;
    "migrate-connections" => migrate_connections: bool = true, true;
    "executor-io-memory" => executor_io_memory: Memory = Memory(2 << 20), false;
    "executor-idle-poll-us" => executor_idle_poll_us: u64 = 50, false;
    "disable-thp" => disable_thp: bool = true, false;
    "databases" => databases: usize = 16, false;
    "requirepass" => requirepass: String = String::new(), true;
    "maxclients" => maxclients: u64 = 10000, true;
    "timeout" => timeout: u64 = 0, true;
    "tcp-keepalive" => tcp_keepalive: u64 = 300, true;
    "proto-max-bulk-len" => proto_max_bulk_len: Memory = Memory(512 << 20), true;
    "client-query-buffer-limit" => client_query_buffer_limit: Memory = Memory(1 << 30), true;
    "client-output-buffer-limit" => client_output_buffer_limit: OutputLimits = OutputLimits::default(), true;
    "hz" => hz: u64 = 10, true;
    "maxmemory" => maxmemory: Memory = Memory(0), true;
    "maxmemory-policy" => maxmemory_policy: MaxmemoryPolicy = MaxmemoryPolicy::Noeviction, true;
    "maxmemory-samples" => maxmemory_samples: u64 = 5, true;
    "maxmemory-eviction-tenacity" => maxmemory_eviction_tenacity: u64 = 10, true;
    "maxmemory-clients" => maxmemory_clients: ClientsLimit = ClientsLimit::Bytes(0), true;
    "lfu-log-factor" => lfu_log_factor: u64 = 10, true;
    "lfu-decay-time" => lfu_decay_time: u64 = 1, true;
    "replica-ignore-maxmemory" => replica_ignore_maxmemory: bool = true, true;
    "active-expire-effort" => active_expire_effort: u64 = 1, true;
    "hash-max-listpack-entries" => hash_max_listpack_entries: u64 = 512, true;
    "hash-max-listpack-value" => hash_max_listpack_value: Memory = Memory(64), true;
    "set-max-intset-entries" => set_max_intset_entries: u64 = 512, true;
    "zset-max-listpack-entries" => zset_max_listpack_entries: u64 = 128, true;
    "zset-max-listpack-value" => zset_max_listpack_value: Memory = Memory(64), true;
    "list-max-listpack-size" => list_max_listpack_size: i64 = -2, true;
    "list-compress-depth" => list_compress_depth: u64 = 0, true;
    "hll-sparse-max-bytes" => hll_sparse_max_bytes: Memory = Memory(3000), true;
    "stream-node-max-bytes" => stream_node_max_bytes: Memory = Memory(4096), true;
    "stream-node-max-entries" => stream_node_max_entries: u64 = 100, true;
    "activerehashing" => activerehashing: bool = true, true;
    "jemalloc-bg-thread" => jemalloc_bg_thread: bool = true, true;
    "lazyfree-lazy-eviction" => lazyfree_lazy_eviction: bool = false, true;
    "lazyfree-lazy-expire" => lazyfree_lazy_expire: bool = false, true;
    "lazyfree-lazy-server-del" => lazyfree_lazy_server_del: bool = false, true;
    "lazyfree-lazy-user-del" => lazyfree_lazy_user_del: bool = false, true;
    "lazyfree-lazy-user-flush" => lazyfree_lazy_user_flush: bool = false, true;
    "replica-lazy-flush" => replica_lazy_flush: bool = false, true;
    "activedefrag" => activedefrag: bool = false, true;
    "active-defrag-ignore-bytes" => active_defrag_ignore_bytes: Memory = Memory(100 << 20), true;
    "active-defrag-threshold-lower" => active_defrag_threshold_lower: u64 = 10, true;
    "active-defrag-threshold-upper" => active_defrag_threshold_upper: u64 = 100, true;
    "active-defrag-cycle-min" => active_defrag_cycle_min: u64 = 1, true;
    "active-defrag-cycle-max" => active_defrag_cycle_max: u64 = 25, true;
    "active-defrag-max-scan-fields" => active_defrag_max_scan_fields: u64 = 1000, true;
    "latency-tracking" => latency_tracking: bool = true, true;
    "latency-tracking-info-percentiles" => latency_tracking_info_percentiles: Percentiles = Percentiles(vec![50.0, 99.0, 99.9]), true;
    "save" => save: SavePoints = SavePoints::default(), true;
    "enable-debug-command" => enable_debug_command: String = "no".into(), false;
    "stop-writes-on-bgsave-error" => stop_writes_on_bgsave_error: bool = true, true;
    "dir" => dir: String = ".".into(), true;
    "dbfilename" => dbfilename: String = "dump.rdb".into(), true;
    "rdbcompression" => rdbcompression: bool = true, true;
    "rdbchecksum" => rdbchecksum: bool = true, true;
    "appendonly" => appendonly: bool = false, true;
    "appendfilename" => appendfilename: String = "appendonly.aof".into(), false;
    "appenddirname" => appenddirname: String = "appendonlydir".into(), false;
    "appendfsync" => appendfsync: AppendFsync = AppendFsync::Everysec, true;
    "no-appendfsync-on-rewrite" => no_appendfsync_on_rewrite: bool = false, true;
    "auto-aof-rewrite-percentage" => auto_aof_rewrite_percentage: u64 = 100, true;
    "auto-aof-rewrite-min-size" => auto_aof_rewrite_min_size: Memory = Memory(64 << 20), true;
    "aof-load-truncated" => aof_load_truncated: bool = true, true;
    "aof-use-rdb-preamble" => aof_use_rdb_preamble: bool = true, true;
    "aof-timestamp-enabled" => aof_timestamp_enabled: bool = false, true;
    "aof-disable-auto-gc" => aof_disable_auto_gc: bool = false, true;
    "aof-rewrite-incremental-fsync" => aof_rewrite_incremental_fsync: bool = true, true;
    "rdb-del-sync-files" => rdb_del_sync_files: bool = false, true;
    "rdb-save-incremental-fsync" => rdb_save_incremental_fsync: bool = true, true;
    "sanitize-dump-payload" => sanitize_dump_payload: SanitizePayload = SanitizePayload::No, true;
    "repl-diskless-sync-max-replicas" => repl_diskless_sync_max_replicas: u64 = 0, true;
    "repl-disable-tcp-nodelay" => repl_disable_tcp_nodelay: bool = false, true;
    "replica-ignore-disk-write-errors" => replica_ignore_disk_write_errors: bool = false, true;
    "propagation-error-behavior" => propagation_error_behavior: PropagationErrors = PropagationErrors::Ignore, true;
    "protected-mode" => protected_mode: bool = true, true;
    "tcp-backlog" => tcp_backlog: u64 = 511, false;
    "unixsocket" => unixsocket: String = String::new(), false;
    "unixsocketperm" => unixsocketperm: u64 = 0, false;
    "socket-mark-id" => socket_mark_id: u64 = 0, false;
    "bind-source-addr" => bind_source_addr: String = String::new(), true;
    "io-threads" => io_threads: u64 = 1, false;
    "io-threads-do-reads" => io_threads_do_reads: bool = false, false;
    "dynamic-hz" => dynamic_hz: bool = true, true;
    "slowlog-log-slower-than" => slowlog_log_slower_than: i64 = 10000, true;
    "slowlog-max-len" => slowlog_max_len: u64 = 128, true;
    "latency-monitor-threshold" => latency_monitor_threshold: u64 = 0, true;
    "notify-keyspace-events" => notify_keyspace_events: KeyspaceEvents = KeyspaceEvents::default(), true;
    "tracking-table-max-keys" => tracking_table_max_keys: u64 = 1_000_000, true;
    "aclfile" => aclfile: String = String::new(), false;
    "acllog-max-len" => acllog_max_len: u64 = 128, true;
    "acl-pubsub-default" => acl_pubsub_default: AclPubsubDefault = AclPubsubDefault::Resetchannels, true;
    "busy-reply-threshold" => busy_reply_threshold: u64 = 5000, true;
    "lua-strict-keys" => lua_strict_keys: bool = false, true;
    "cluster-enabled" => cluster_enabled: bool = false, false;
    "cluster-config-file" => cluster_config_file: String = "nodes.conf".into(), false;
    "cluster-port" => cluster_port: u16 = 0, false;
    "cluster-node-timeout" => cluster_node_timeout: u64 = 15000, true;
    "cluster-announce-ip" => cluster_announce_ip: String = String::new(), true;
    "cluster-announce-hostname" => cluster_announce_hostname: String = String::new(), true;
    "cluster-announce-port" => cluster_announce_port: u16 = 0, true;
    "cluster-announce-tls-port" => cluster_announce_tls_port: u16 = 0, true;
    "cluster-announce-bus-port" => cluster_announce_bus_port: u16 = 0, true;
    "cluster-preferred-endpoint-type" => cluster_preferred_endpoint_type: EndpointType = EndpointType::Ip, true;
    "cluster-require-full-coverage" => cluster_require_full_coverage: bool = true, true;
    "cluster-allow-reads-when-down" => cluster_allow_reads_when_down: bool = false, true;
    "cluster-allow-pubsubshard-when-down" => cluster_allow_pubsubshard_when_down: bool = true, true;
    "cluster-replica-validity-factor" => cluster_replica_validity_factor: u64 = 10, true;
    "cluster-migration-barrier" => cluster_migration_barrier: u64 = 1, true;
    "cluster-allow-replica-migration" => cluster_allow_replica_migration: bool = true, true;
    "cluster-replica-no-failover" => cluster_replica_no_failover: bool = false, true;
    "cluster-link-sendbuf-limit" => cluster_link_sendbuf_limit: Memory = Memory(0), true;
    "daemonize" => daemonize: bool = false, false;
    "supervised" => supervised: Supervised = Supervised::No, false;
    "always-show-logo" => always_show_logo: bool = false, false;
    "set-proc-title" => set_proc_title: bool = true, false;
    "proc-title-template" => proc_title_template: String = "{title} {listen-addr} {server-mode}".into(), true;
    "crash-log-enabled" => crash_log_enabled: bool = true, true;
    "crash-memcheck-enabled" => crash_memcheck_enabled: bool = true, true;
    "enable-module-command" => enable_module_command: Allowed = Allowed::No, false;
    "enable-protected-configs" => enable_protected_configs: Allowed = Allowed::No, false;
    "ignore-warnings" => ignore_warnings: String = String::new(), true;
    "oom-score-adj" => oom_score_adj: OomScoreAdj = OomScoreAdj::No, true;
    "oom-score-adj-values" => oom_score_adj_values: Words = Words("0 200 800".into()), true;
    "server_cpulist" => server_cpulist: String = String::new(), false;
    "bio_cpulist" => bio_cpulist: String = String::new(), false;
    "aof_rewrite_cpulist" => aof_rewrite_cpulist: String = String::new(), false;
    "bgsave_cpulist" => bgsave_cpulist: String = String::new(), false;
    "shutdown-timeout" => shutdown_timeout: u64 = 10, true;
    "shutdown-on-sigint" => shutdown_on_sigint: Words = Words("default".into()), true;
    "shutdown-on-sigterm" => shutdown_on_sigterm: Words = Words("default".into()), true;
    "syslog-enabled" => syslog_enabled: bool = false, false;
    "syslog-ident" => syslog_ident: String = "redis".into(), false;
    "syslog-facility" => syslog_facility: SyslogFacility = SyslogFacility::Local0, false;
    "syslog-socket" => syslog_socket: String = "/dev/log".into(), false;
    "loglevel" => loglevel: LogLevel = LogLevel::Notice, true;
    "logfile" => logfile: String = String::new(), false;
    "pidfile" => pidfile: String = String::new(), false;
    "metrics-port" => metrics_port: u16 = 0, false;
    "metrics-tls" => metrics_tls: bool = false, false;
}

/// Redis's other names for directives (7.0 still accepts its pre-5.0 `slave` names and the
/// `ziplist` names of the encoding thresholds); CONFIG GET lists them too, as Redis 7.0 does.
const ALIASES: &[(&str, &str)] = &[
    ("slaveof", "replicaof"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-read-only", "replica-read-only"),
    ("slave-announce-ip", "replica-announce-ip"),
    ("slave-announce-port", "replica-announce-port"),
    ("slave-priority", "replica-priority"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("lua-time-limit", "busy-reply-threshold"),
    ("cluster-slave-validity-factor", "cluster-replica-validity-factor"),
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
];

/// Directives Redis no longer uses and ignores in a config file (with one argument).
const DEPRECATED: &[&str] = &["list-max-ziplist-entries", "list-max-ziplist-value", "lua-replicate-commands"];

/// Directives of features ferrokey does not have yet, or has no use for, by name prefix, with
/// why: accepted so that a redis.conf loads, shown and set by CONFIG GET/SET, and noted once
/// each when a config file names them.
const INERT: &[(&str, &str)] = &[
    ("lazyfree-lazy-", "ferrokey frees memory as it goes; there is no lazy-free thread"),
    ("replica-lazy-flush", "ferrokey frees memory as it goes; there is no lazy-free thread"),
    ("activerehashing", "ferrokey's hash tables grow and shrink incrementally on their own"),
    ("jemalloc-bg-thread", "ferrokey allocates with mimalloc"),
    ("activedefrag", "there is no active defragmentation (mimalloc)"),
    ("active-defrag-", "there is no active defragmentation (mimalloc)"),
    ("list-max-listpack-size", "lists have one form in ferrokey"),
    ("list-compress-depth", "lists have one form in ferrokey"),
    ("always-show-logo", "ferrokey shows no logo"),
    ("set-proc-title", "ferrokey does not retitle its process"),
    ("proc-title-template", "ferrokey does not retitle its process"),
    ("crash-", "ferrokey writes no crash report"),
    ("enable-module-command", "there are no modules"),
    ("enable-protected-configs", "every config may be set"),
    ("ignore-warnings", "ferrokey has no such startup warnings"),
    ("server_cpulist", "use server-cpus"),
    ("bio_cpulist", "ferrokey has no bio threads"),
    ("aof_rewrite_cpulist", "AOF rewrites run on the executors"),
    ("bgsave_cpulist", "saves run on the executors"),
    ("shutdown-", "signals shut down as by default"),
    ("tcp-backlog", "the listen backlog is the kernel's maximum"),
    ("unixsocket", "there is no unix socket listener yet"),
    ("socket-mark-id", "sockets are not marked"),
    ("bind-source-addr", "outgoing links use the kernel's choice"),
    ("io-threads", "use threads: every executor does its own I/O"),
    ("dynamic-hz", "hz is fixed"),
    ("rdb-del-sync-files", "dump files made for replicas are kept"),
    ("rdb-save-incremental-fsync", "saves fsync once, at the end"),
    ("sanitize-dump-payload", "every RDB and RESTORE payload is checked whole"),
    ("repl-diskless-sync-max-replicas", "each replica gets its own snapshot"),
    ("repl-disable-tcp-nodelay", "replication links keep TCP_NODELAY"),
    ("replica-ignore-disk-write-errors", "a replica stops on a disk write error"),
    ("propagation-error-behavior", "a replica ignores failing commands from its primary"),
];

/// The note for a config file that sets an inert directive.
fn inert(name: &str) -> Option<String> {
    INERT
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, why)| format!("'{name}' is accepted for redis.conf compatibility and has no effect: {why}"))
}

impl Config {
    /// Whether protected mode refuses a client from `ip`: it is on, the default user has no
    /// password, and the client is not on the loopback interface (Redis 7.0's rule).
    #[must_use]
    pub fn protected(&self, ip: std::net::IpAddr) -> bool {
        let loopback = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(v6.is_loopback(), |v4| v4.is_loopback()),
            v4 => v4.is_loopback(),
        };
        self.protected_mode && self.requirepass.is_empty() && !loopback
    }

    /// Reads `file` (if any), then applies `overrides` (redis-server style `--name value ...`).
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
        Config::load_noting(file, overrides).map(|(config, _)| config)
    }

    /// As [`Config::load`], with a note for each directive the file names that has no effect in
    /// ferrokey (for the log).
    pub fn load_noting(
        file: Option<&Path>,
        overrides: &[String],
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut config = Config::default();
        let mut notices = Vec::new();
        if let Some(path) = file {
            for line in file::read(path)? {
                if let Some(name) = config.apply(&line)? {
                    if let Some(note) = inert(name).filter(|n| !notices.contains(n)) {
                        notices.push(note);
                    }
                }
            }
        }
        for line in file::from_args(overrides)? {
            config.apply(&line)?;
        }
        config.validate().and_then(|()| config.validate_dir()).map_err(|reason| ConfigError::Line {
            origin: "configuration".into(),
            line: String::new(),
            reason,
        })?;
        Ok((config, notices))
    }

    /// Applies one line; returns the directive's name (`None` for a deprecated one, ignored).
    fn apply(&mut self, line: &Line) -> Result<Option<&'static str>, ConfigError> {
        let fail = |reason: String| ConfigError::Line {
            origin: line.origin.clone(),
            line: line.text.clone(),
            reason,
        };
        let name = line.args[0].to_ascii_lowercase();
        if name == "user" {
            if line.args.len() < 2 {
                return Err(fail("'user': expected a user name and its rules".into()));
            }
            self.users.push(line.args[1..].to_vec());
            return Ok(Some("user"));
        }
        if DEPRECATED.contains(&name.as_str()) && line.args.len() == 2 {
            return Ok(None);
        }
        let directive = directive(&name).ok_or_else(|| fail(format!("unknown directive '{name}'")))?;
        (directive.set)(self, &line.args[1..]).map_err(|e| fail(format!("'{name}': {e}")))?;
        Ok(Some(directive.name))
    }

    /// CONFIG REWRITE: `path` keeps its comments, blank lines, unknown lines and order; the
    /// first line of each directive takes the running value and its later lines go; directives
    /// the file lacks are appended when they differ from their default. The `user` lines become
    /// `users` (whole lines, `user name rules...`), where the first one was or at the end.
    /// Written to a temp file, fsynced and renamed over `path`, then the directory fsynced.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn rewrite(&self, path: &Path, users: &[String]) -> std::io::Result<()> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let line_for = |d: &Directive| {
            let value = (d.get)(self);
            format!("{} {}\n", d.name, if value.is_empty() { "\"\"".to_owned() } else { value })
        };
        let mut seen = std::collections::HashSet::new();
        let mut out = String::with_capacity(text.len() + 256);
        let mut users_written = false;
        for raw in text.lines() {
            let name = raw.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
            if name == "user" {
                if !std::mem::replace(&mut users_written, true) {
                    users.iter().for_each(|u| out.extend([u.as_str(), "\n"]));
                }
                continue;
            }
            match directive(&name).filter(|_| !raw.trim_start().starts_with('#')) {
                Some(d) if seen.insert(d.name) => out.push_str(&line_for(d)),
                Some(_) => {}
                None => {
                    out.push_str(raw);
                    out.push('\n');
                }
            }
        }
        let defaults = Config::default();
        let mut appended = false;
        for d in DIRECTIVES {
            if !seen.contains(d.name) && (d.get)(self) != (d.get)(&defaults) {
                if !appended {
                    out.push_str("# Generated by CONFIG REWRITE\n");
                    appended = true;
                }
                out.push_str(&line_for(d));
            }
        }
        if !users_written {
            users.iter().for_each(|u| out.extend([u.as_str(), "\n"]));
        }
        crate::durable::replace(path, out.as_bytes())
    }

    /// Whether `acl-pubsub-default` gives new users and selectors every channel.
    #[must_use]
    pub fn acl_all_channels(&self) -> bool {
        self.acl_pubsub_default == AclPubsubDefault::Allchannels
    }

    /// The ACL file's path: `aclfile`, relative to `dir` (Redis reads it after moving there).
    #[must_use]
    pub fn aclfile_path(&self) -> std::path::PathBuf {
        Path::new(&self.dir).join(&self.aclfile)
    }

    /// Whether a failed background save stops writes (`-MISCONF`): save points are set and
    /// `stop-writes-on-bgsave-error` is on.
    #[must_use]
    pub fn refuses_writes(&self) -> bool {
        self.stop_writes_on_bgsave_error && !self.save.points.is_empty()
    }

    /// Whether `other` differs in anything the TLS server configuration is built from.
    #[must_use]
    pub fn tls_differs(&self, other: &Config) -> bool {
        fn key(c: &Config) -> impl PartialEq + '_ {
            (
                [
                    &c.tls_cert_file,
                    &c.tls_key_file,
                    &c.tls_key_file_pass,
                    &c.tls_ca_cert_file,
                    &c.tls_ca_cert_dir,
                ],
                [&c.tls_ciphers, &c.tls_ciphersuites],
                c.tls_protocols.clone(),
                (c.tls_auth_clients, c.tls_prefer_server_ciphers, c.tls_session_caching),
                (c.tls_session_cache_size, c.tls_session_cache_timeout, c.tls_port != 0),
            )
        }
        key(self) != key(other)
    }

    /// Checks that `dir` is a directory.
    fn validate_dir(&self) -> Result<(), String> {
        if Path::new(&self.dir).is_dir() {
            Ok(())
        } else {
            Err(format!("dir '{}' is not a directory", self.dir))
        }
    }

    /// Checks what no single directive can check alone.
    fn validate(&self) -> Result<(), String> {
        if self.tls_port != 0 && (self.tls_cert_file.is_empty() || self.tls_key_file.is_empty()) {
            return Err("tls-port needs tls-cert-file and tls-key-file".into());
        }
        if self.tls_port != 0
            && self.tls_auth_clients != TlsAuthClients::No
            && self.tls_ca_cert_file.is_empty()
            && self.tls_ca_cert_dir.is_empty()
        {
            return Err("tls-auth-clients yes|optional needs tls-ca-cert-file or tls-ca-cert-dir \
                        (or set tls-auth-clients no)"
                .into());
        }
        if self.max_new_tls_connections_per_cycle == 0 {
            return Err("max-new-tls-connections-per-cycle must be at least 1".into());
        }
        if self.databases == 0 || self.databases > 1 << 16 {
            return Err("databases must be between 1 and 65536".into());
        }
        if !(1..=500).contains(&self.hz) {
            return Err("hz must be between 1 and 500".into());
        }
        if !(1..=64).contains(&self.maxmemory_samples) {
            return Err("maxmemory-samples must be between 1 and 64".into());
        }
        if self.maxmemory_eviction_tenacity > 100 {
            return Err("maxmemory-eviction-tenacity must be between 0 and 100".into());
        }
        if self.lfu_log_factor > i32::MAX as u64 || self.lfu_decay_time > i32::MAX as u64 {
            return Err("lfu-log-factor and lfu-decay-time must be between 0 and 2147483647".into());
        }
        let int_max = i64::from(i32::MAX);
        let bounded: [(&str, i64, i64, i64); 15] = [
            ("cluster-node-timeout", self.cluster_node_timeout as i64, 0, i64::MAX),
            ("active-expire-effort", self.active_expire_effort as i64, 1, 10),
            ("list-compress-depth", self.list_compress_depth as i64, 0, int_max),
            ("list-max-listpack-size", self.list_max_listpack_size, i64::from(i32::MIN), int_max),
            ("active-defrag-cycle-min", self.active_defrag_cycle_min as i64, 1, 99),
            ("active-defrag-cycle-max", self.active_defrag_cycle_max as i64, 1, 99),
            ("active-defrag-threshold-lower", self.active_defrag_threshold_lower as i64, 0, 1000),
            ("active-defrag-threshold-upper", self.active_defrag_threshold_upper as i64, 0, 1000),
            ("slowlog-log-slower-than", self.slowlog_log_slower_than, -1, i64::MAX),
            ("io-threads", self.io_threads as i64, 1, 128),
            ("cluster-replica-validity-factor", self.cluster_replica_validity_factor as i64, 0, int_max),
            ("cluster-migration-barrier", self.cluster_migration_barrier as i64, 0, int_max),
            ("shutdown-timeout", self.shutdown_timeout as i64, 0, int_max),
            ("repl-diskless-sync-max-replicas", self.repl_diskless_sync_max_replicas as i64, 0, int_max),
            ("unixsocketperm", self.unixsocketperm as i64, 0, 0o777),
        ];
        for (name, value, lo, hi) in bounded {
            if !(lo..=hi).contains(&value) {
                return Err(format!("{name}: argument must be between {lo} and {hi} inclusive"));
            }
        }
        let oom: Vec<Option<i64>> = self.oom_score_adj_values.0.split(' ').map(|v| v.parse().ok()).collect();
        if oom.len() != 3 || oom.iter().any(|v| !v.is_some_and(|v| (-2000..=2000).contains(&v))) {
            return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into());
        }
        for (name, flags) in [
            ("shutdown-on-sigint", &self.shutdown_on_sigint),
            ("shutdown-on-sigterm", &self.shutdown_on_sigterm),
        ] {
            let words: Vec<String> = flags.0.split(' ').map(str::to_ascii_lowercase).collect();
            if words.iter().any(|w| !["default", "save", "nosave", "now", "force"].contains(&w.as_str())) {
                return Err(format!(
                    "{name}: argument(s) must be one of the following: default, save, nosave, now, force"
                ));
            }
            if words.iter().any(|w| w == "save") && words.iter().any(|w| w == "nosave") {
                return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
            }
        }
        if !["no", "yes", "local"].contains(&self.enable_debug_command.as_str()) {
            return Err("enable-debug-command must be yes, no or local".into());
        }
        if self.dbfilename.is_empty() || self.dbfilename.contains('/') {
            return Err("dbfilename can't be a path, just a filename".into());
        }
        for (name, value, what) in [
            ("appendfilename", &self.appendfilename, "filename"),
            ("appenddirname", &self.appenddirname, "dirname"),
        ] {
            if value.is_empty() {
                return Err(format!("{name} can't be empty"));
            }
            if value.contains('/') || value.contains('\\') {
                return Err(format!("{name} can't be a path, just a {what}"));
            }
        }
        Ok(())
    }

    /// CONFIG GET: every directive, and every alias, whose name matches one of `patterns`
    /// (glob, case-insensitive).
    #[must_use]
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(&'static str, String)> {
        let matches = |name: &str| patterns.iter().any(|p| crate::glob::matches(p, name.as_bytes(), true));
        let names = DIRECTIVES
            .iter()
            .map(|d| (d.name, d))
            .chain(ALIASES.iter().filter_map(|(alias, name)| directive(name).map(|d| (*alias, d))));
        names.filter(|(name, _)| matches(name)).map(|(name, d)| (name, (d.get)(self))).collect()
    }

    /// CONFIG SET: applies every `(name, value)` pair or none of them.
    pub fn set(&mut self, pairs: &[(String, String)]) -> Result<(), ConfigError> {
        let mut next = self.clone();
        for (name, value) in pairs {
            let lname = name.to_ascii_lowercase();
            let d = directive(&lname).ok_or_else(|| ConfigError::Unknown(name.clone()))?;
            if !d.mutable {
                return Err(ConfigError::Immutable(lname));
            }
            let args: Vec<String> = if value.is_empty() {
                vec![String::new()]
            } else {
                value.split_ascii_whitespace().map(str::to_owned).collect()
            };
            // CONFIG SET replaces the save points; only config file lines add to them.
            next.save.appending = false;
            (d.set)(&mut next, &args)
                .map_err(|reason| ConfigError::Invalid { name: lname.clone(), reason })?;
        }
        // The directory is checked when it changes: one removed under a running server must
        // not make every other CONFIG SET fail.
        let dir_changed = next.dir != self.dir;
        next.validate().and_then(|()| if dir_changed { next.validate_dir() } else { Ok(()) }).map_err(
            |reason| ConfigError::Invalid {
                name: pairs.first().map(|p| p.0.clone()).unwrap_or_default(),
                reason,
            },
        )?;
        *self = next;
        Ok(())
    }
}

/// The directive `name` (lowercase) names, itself or by an alias.
fn directive(name: &str) -> Option<&'static Directive> {
    let name = ALIASES.iter().find(|(alias, _)| *alias == name).map_or(name, |(_, n)| n);
    DIRECTIVES.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn file_then_overrides() {
        let dir = std::env::temp_dir().join(format!("ferrokey-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inc.conf"), "hz 20\n").unwrap();
        std::fs::write(
            dir.join("main.conf"),
            format!(
                "# comment\nport 7000\n\ninclude {}\nrequirepass \"a b\"\nproto-max-bulk-len 1mb\n",
                dir.join("inc.conf").display()
            ),
        )
        .unwrap();
        let c = Config::load(Some(&dir.join("main.conf")), &args(&["--port", "7001"])).unwrap();
        assert_eq!(c.port, 7001);
        assert_eq!(c.hz, 20);
        assert_eq!(c.requirepass, "a b");
        assert_eq!(c.proto_max_bulk_len, Memory(1 << 20));
    }

    #[test]
    fn bad_directive_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("ferrokey-cfg-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.conf");
        std::fs::write(&path, "port 7000\nportt 7001\n").unwrap();
        let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.contains("bad.conf:2"), "{err}");
        assert!(err.contains("unknown directive 'portt'"), "{err}");
        std::fs::write(&path, "port notanumber\n").unwrap();
        let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.contains("bad.conf:1") && err.contains("'port'"), "{err}");
    }

    #[test]
    fn the_sample_config_documents_every_directive_and_loads() {
        let text = include_str!("../../config/ferrokey.conf");
        for d in DIRECTIVES {
            let line = format!("\n{} ", d.name);
            let commented = format!("\n# {} ", d.name);
            assert!(
                text.contains(&line) || text.contains(&commented),
                "config/ferrokey.conf lacks {}",
                d.name
            );
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ferrokey.conf");
        let mut c = Config::default();
        file::read(&path).unwrap().iter().for_each(|l| {
            c.apply(l).unwrap();
        });
        assert_eq!(c.tls_port, 6380);
    }

    #[test]
    fn config_set_is_all_or_nothing() {
        let mut c = Config::default();
        let pairs = vec![("hz".to_owned(), "50".to_owned()), ("maxclients".into(), "x".into())];
        assert!(matches!(c.set(&pairs), Err(ConfigError::Invalid { .. })));
        assert_eq!(c.hz, 10);
        let err = c.set(&[("databases".into(), "1".into())]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config"
        );
        c.set(&[
            ("tls-protocols".into(), "TLSv1.2 TLSv1.3".into()),
            ("tls-replication".into(), "yes".into()),
        ])
        .unwrap();
        assert_eq!(c.get(&[b"tls-protocols"]), vec![("tls-protocols", "TLSv1.2 TLSv1.3".to_owned())]);
        assert!(c.tls_replication);
        assert!(c.set(&[("tls-cluster".into(), "maybe".into())]).is_err());
        c.set(&[("HZ".into(), "50".into())]).unwrap();
        assert_eq!(c.hz, 50);
        assert_eq!(c.get(&[b"h?"]), vec![("hz", "50".to_owned())]);
    }

    #[test]
    fn save_points_follow_redis_rules() {
        let mut c = Config::default();
        assert_eq!(c.get(&[b"save"]), vec![("save", "3600 1 300 100 60 10000".to_owned())]);
        // The first config line replaces the defaults, later ones add.
        c.apply(&Line {
            origin: "f:1".into(),
            text: String::new(),
            args: vec!["save".into(), "900".into(), "1".into()],
        })
        .unwrap();
        c.apply(&Line {
            origin: "f:2".into(),
            text: String::new(),
            args: vec!["save".into(), "300".into(), "10".into()],
        })
        .unwrap();
        assert_eq!(c.save.points, vec![(900, 1), (300, 10)]);
        // CONFIG SET replaces; "" clears.
        c.set(&[("save".into(), "60 5".into())]).unwrap();
        assert_eq!(c.save.points, vec![(60, 5)]);
        c.set(&[("save".into(), String::new())]).unwrap();
        assert!(c.save.points.is_empty());
        assert_eq!(c.get(&[b"save"]), vec![("save", String::new())]);
        assert!(c.set(&[("save".into(), "60".into())]).is_err());
        assert!(c.set(&[("save".into(), "x 1".into())]).is_err());
    }

    #[test]
    fn aof_names_follow_redis_rules() {
        let mut c = Config::default();
        assert_eq!(c.get(&[b"appendfsync"]), vec![("appendfsync", "everysec".to_owned())]);
        c.set(&[("appendfsync".into(), "always".into())]).unwrap();
        assert_eq!(c.appendfsync, AppendFsync::Always);
        assert!(matches!(
            c.set(&[("appendfilename".into(), "x.aof".into())]),
            Err(ConfigError::Immutable(_))
        ));
        c.appenddirname = "a/b".into();
        assert_eq!(c.validate(), Err("appenddirname can't be a path, just a dirname".into()));
        c.appenddirname = "d".into();
        c.appendfilename = String::new();
        assert_eq!(c.validate(), Err("appendfilename can't be empty".into()));
    }

    #[test]
    fn config_rewrite_keeps_the_file_and_changes_what_changed() {
        let dir = std::env::temp_dir().join(format!("ferrokey-rewrite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.conf");
        std::fs::write(&path, "# a comment\nport 7000\n\nmaxclients 10\nmaxclients 20\nsave 900 1\n")
            .unwrap();
        let mut c = Config::load(Some(&path), &[]).unwrap();
        c.maxclients = 123;
        c.timeout = 30;
        c.rewrite(&path, &[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# a comment\nport 7000\n\nmaxclients 123\nsave 900 1\n"), "{text}");
        assert!(
            text.contains("# Generated by CONFIG REWRITE\n") && text.contains("\ntimeout 30\n"),
            "{text}"
        );
        assert_eq!(Config::load(Some(&path), &[]).unwrap(), c);

        // `user` lines: read in order; a rewrite puts the users where the first one was.
        std::fs::write(&path, "port 7000\nuser alice on >p (+get ~x)\nhz 10\nuser bob off\n").unwrap();
        let c = Config::load(Some(&path), &[]).unwrap();
        assert_eq!(c.users, vec![args(&["alice", "on", ">p", "(+get", "~x)"]), args(&["bob", "off"])]);
        c.rewrite(&path, &["user a x".into(), "user b y".into()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("port 7000\nuser a x\nuser b y\nhz 10\n"), "{text}");
        assert!(!text.contains("bob"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
