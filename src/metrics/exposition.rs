//! INFO as Prometheus's text exposition format (version 0.0.4), named as oliver006's
//! redis_exporter names it, so that its Grafana dashboards and alerts work unchanged: the
//! same field-to-metric table, the same labelled families (`redis_commands_total{cmd}`,
//! `redis_errors_total{err}`, `redis_db_keys{db}`, `redis_latency_percentiles_usec`,
//! `redis_commands_latencies_usec`, `redis_instance_info`, ...), the same conversions (µs to
//! seconds for command time, ms to seconds for TTLs, `ok` to 1). Fields the exporter drops are
//! dropped. Beyond it, ferrokey's own `# Cores` and `# TLS` sections become `ferrokey_core_*`
//! series labelled by core, and `ferrokey_tls_*`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    Summary,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
        }
    }
}

use Kind::{Counter, Gauge};

/// redis_exporter's `metricMapGauges` and `metricMapCounters`, the fields Redis 7 reports:
/// INFO field, metric name (after `redis_`), type.
const FIELDS: &[(&str, &str, Kind)] = &[
    ("uptime_in_seconds", "uptime_in_seconds", Gauge),
    ("process_id", "process_id", Gauge),
    ("io_threads_active", "io_threads_active", Gauge),
    ("connected_clients", "connected_clients", Gauge),
    ("blocked_clients", "blocked_clients", Gauge),
    ("maxclients", "max_clients", Gauge),
    ("tracking_clients", "tracking_clients", Gauge),
    ("clients_in_timeout_table", "clients_in_timeout_table", Gauge),
    ("client_recent_max_output_buffer", "client_recent_max_output_buffer_bytes", Gauge),
    ("client_recent_max_input_buffer", "client_recent_max_input_buffer_bytes", Gauge),
    ("allocator_active", "allocator_active_bytes", Gauge),
    ("allocator_allocated", "allocator_allocated_bytes", Gauge),
    ("allocator_resident", "allocator_resident_bytes", Gauge),
    ("allocator_frag_ratio", "allocator_frag_ratio", Gauge),
    ("allocator_frag_bytes", "allocator_frag_bytes", Gauge),
    ("allocator_rss_ratio", "allocator_rss_ratio", Gauge),
    ("allocator_rss_bytes", "allocator_rss_bytes", Gauge),
    ("used_memory", "memory_used_bytes", Gauge),
    ("used_memory_rss", "memory_used_rss_bytes", Gauge),
    ("used_memory_peak", "memory_used_peak_bytes", Gauge),
    ("used_memory_lua", "memory_used_lua_bytes", Gauge),
    ("used_memory_vm_eval", "memory_used_vm_eval_bytes", Gauge),
    ("used_memory_scripts_eval", "memory_used_scripts_eval_bytes", Gauge),
    ("used_memory_overhead", "memory_used_overhead_bytes", Gauge),
    ("used_memory_startup", "memory_used_startup_bytes", Gauge),
    ("used_memory_dataset", "memory_used_dataset_bytes", Gauge),
    ("number_of_cached_scripts", "number_of_cached_scripts", Gauge),
    ("number_of_functions", "number_of_functions", Gauge),
    ("number_of_libraries", "number_of_libraries", Gauge),
    ("used_memory_vm_functions", "memory_used_vm_functions_bytes", Gauge),
    ("used_memory_scripts", "memory_used_scripts_bytes", Gauge),
    ("used_memory_functions", "memory_used_functions_bytes", Gauge),
    ("used_memory_vm_total", "memory_used_vm_total", Gauge),
    ("maxmemory", "memory_max_bytes", Gauge),
    ("mem_fragmentation_ratio", "mem_fragmentation_ratio", Gauge),
    ("mem_fragmentation_bytes", "mem_fragmentation_bytes", Gauge),
    ("mem_clients_slaves", "mem_clients_slaves", Gauge),
    ("mem_clients_normal", "mem_clients_normal", Gauge),
    ("mem_cluster_links", "mem_cluster_links_bytes", Gauge),
    ("mem_aof_buffer", "mem_aof_buffer_bytes", Gauge),
    ("mem_replication_backlog", "mem_replication_backlog_bytes", Gauge),
    ("expired_stale_perc", "expired_stale_percentage", Gauge),
    ("mem_not_counted_for_evict", "mem_not_counted_for_eviction_bytes", Gauge),
    ("mem_total_replication_buffers", "mem_total_replication_buffers_bytes", Gauge),
    ("lazyfree_pending_objects", "lazyfree_pending_objects", Gauge),
    ("lazyfreed_objects", "lazyfreed_objects", Gauge),
    ("active_defrag_running", "active_defrag_running", Gauge),
    ("migrate_cached_sockets", "migrate_cached_sockets_total", Gauge),
    ("active_defrag_hits", "defrag_hits", Gauge),
    ("active_defrag_misses", "defrag_misses", Gauge),
    ("active_defrag_key_hits", "defrag_key_hits", Gauge),
    ("active_defrag_key_misses", "defrag_key_misses", Gauge),
    ("loading", "loading_dump_file", Gauge),
    ("async_loading", "async_loading", Gauge),
    ("rdb_changes_since_last_save", "rdb_changes_since_last_save", Gauge),
    ("rdb_bgsave_in_progress", "rdb_bgsave_in_progress", Gauge),
    ("rdb_last_save_time", "rdb_last_save_timestamp_seconds", Gauge),
    ("rdb_last_bgsave_status", "rdb_last_bgsave_status", Gauge),
    ("rdb_last_bgsave_time_sec", "rdb_last_bgsave_duration_sec", Gauge),
    ("rdb_current_bgsave_time_sec", "rdb_current_bgsave_duration_sec", Gauge),
    ("rdb_saves", "rdb_saves_total", Gauge),
    ("rdb_last_cow_size", "rdb_last_cow_size_bytes", Gauge),
    ("rdb_last_load_keys_expired", "rdb_last_load_expired_keys", Gauge),
    ("rdb_last_load_keys_loaded", "rdb_last_load_loaded_keys", Gauge),
    ("aof_enabled", "aof_enabled", Gauge),
    ("aof_rewrite_in_progress", "aof_rewrite_in_progress", Gauge),
    ("aof_rewrite_scheduled", "aof_rewrite_scheduled", Gauge),
    ("aof_last_rewrite_time_sec", "aof_last_rewrite_duration_sec", Gauge),
    ("aof_current_rewrite_time_sec", "aof_current_rewrite_duration_sec", Gauge),
    ("aof_last_cow_size", "aof_last_cow_size_bytes", Gauge),
    ("aof_current_size", "aof_current_size_bytes", Gauge),
    ("aof_base_size", "aof_base_size_bytes", Gauge),
    ("aof_pending_rewrite", "aof_pending_rewrite", Gauge),
    ("aof_buffer_length", "aof_buffer_length", Gauge),
    ("aof_rewrite_buffer_length", "aof_rewrite_buffer_length", Gauge),
    ("aof_pending_bio_fsync", "aof_pending_bio_fsync", Gauge),
    ("aof_delayed_fsync", "aof_delayed_fsync", Gauge),
    ("aof_last_bgrewrite_status", "aof_last_bgrewrite_status", Gauge),
    ("aof_last_write_status", "aof_last_write_status", Gauge),
    ("module_fork_in_progress", "module_fork_in_progress", Gauge),
    ("module_fork_last_cow_size", "module_fork_last_cow_size", Gauge),
    ("current_eviction_exceeded_time", "current_eviction_exceeded_time_ms", Gauge),
    ("pubsub_channels", "pubsub_channels", Gauge),
    ("pubsub_patterns", "pubsub_patterns", Gauge),
    ("pubsubshard_channels", "pubsubshard_channels", Gauge),
    ("latest_fork_usec", "latest_fork_usec", Gauge),
    ("tracking_total_keys", "tracking_total_keys", Gauge),
    ("tracking_total_items", "tracking_total_items", Gauge),
    ("tracking_total_prefixes", "tracking_total_prefixes", Gauge),
    ("instantaneous_eventloop_cycles_per_sec", "instantaneous_eventloop_cycles_per_sec", Gauge),
    ("instantaneous_eventloop_duration_usec", "instantaneous_eventloop_duration_usec", Gauge),
    ("connected_slaves", "connected_slaves", Gauge),
    ("repl_backlog_size", "replication_backlog_bytes", Gauge),
    ("repl_backlog_active", "repl_backlog_is_active", Gauge),
    ("repl_backlog_first_byte_offset", "repl_backlog_first_byte_offset", Gauge),
    ("repl_backlog_histlen", "repl_backlog_history_bytes", Gauge),
    ("master_repl_offset", "master_repl_offset", Gauge),
    ("second_repl_offset", "second_repl_offset", Gauge),
    ("slave_expires_tracked_keys", "slave_expires_tracked_keys", Gauge),
    ("slave_priority", "slave_priority", Gauge),
    ("sync_full", "replica_resyncs_full", Gauge),
    ("sync_partial_ok", "replica_partial_resync_accepted", Gauge),
    ("sync_partial_err", "replica_partial_resync_denied", Gauge),
    ("cluster_stats_messages_sent", "cluster_messages_sent_total", Gauge),
    ("cluster_stats_messages_received", "cluster_messages_received_total", Gauge),
    ("total_connections_received", "connections_received_total", Counter),
    ("total_commands_processed", "commands_processed_total", Counter),
    ("rejected_connections", "rejected_connections_total", Counter),
    ("total_net_input_bytes", "net_input_bytes_total", Counter),
    ("total_net_output_bytes", "net_output_bytes_total", Counter),
    ("total_net_repl_input_bytes", "net_repl_input_bytes_total", Counter),
    ("total_net_repl_output_bytes", "net_repl_output_bytes_total", Counter),
    ("expired_keys", "expired_keys_total", Counter),
    ("expired_time_cap_reached_count", "expired_time_cap_reached_total", Counter),
    ("expire_cycle_cpu_milliseconds", "expire_cycle_cpu_time_ms_total", Counter),
    ("evicted_keys", "evicted_keys_total", Counter),
    ("evicted_clients", "evicted_clients_total", Counter),
    ("total_eviction_exceeded_time", "eviction_exceeded_time_ms_total", Counter),
    ("keyspace_hits", "keyspace_hits_total", Counter),
    ("keyspace_misses", "keyspace_misses_total", Counter),
    ("eventloop_cycles", "eventloop_cycles_total", Counter),
    ("eventloop_duration_sum", "eventloop_duration_sum_usec_total", Counter),
    ("eventloop_duration_cmd_sum", "eventloop_duration_cmd_sum_usec_total", Counter),
    ("used_cpu_sys", "cpu_sys_seconds_total", Counter),
    ("used_cpu_user", "cpu_user_seconds_total", Counter),
    ("used_cpu_sys_children", "cpu_sys_children_seconds_total", Counter),
    ("used_cpu_user_children", "cpu_user_children_seconds_total", Counter),
    ("used_cpu_sys_main_thread", "cpu_sys_main_thread_seconds_total", Counter),
    ("used_cpu_user_main_thread", "cpu_user_main_thread_seconds_total", Counter),
    ("unexpected_error_replies", "unexpected_error_replies", Counter),
    ("total_error_replies", "total_error_replies", Counter),
    ("dump_payload_sanitizations", "dump_payload_sanitizations", Counter),
    ("total_reads_processed", "total_reads_processed", Counter),
    ("total_writes_processed", "total_writes_processed", Counter),
    ("io_threaded_reads_processed", "io_threaded_reads_processed", Counter),
    ("io_threaded_writes_processed", "io_threaded_writes_processed", Counter),
    ("client_query_buffer_limit_disconnections", "client_query_buffer_limit_disconnections_total", Counter),
    ("client_output_buffer_limit_disconnections", "client_output_buffer_limit_disconnections_total", Counter),
    ("reply_buffer_shrinks", "reply_buffer_shrinks_total", Counter),
    ("reply_buffer_expands", "reply_buffer_expands_total", Counter),
    ("acl_access_denied_auth", "acl_access_denied_auth_total", Counter),
    ("acl_access_denied_cmd", "acl_access_denied_cmd_total", Counter),
    ("acl_access_denied_key", "acl_access_denied_key_total", Counter),
    ("acl_access_denied_channel", "acl_access_denied_channel_total", Counter),
];

/// ferrokey's per-core fields (`# Cores`, and `# TLS`'s per-core lines): field, metric name
/// (after `ferrokey_core_`), type.
const CORE_FIELDS: &[(&str, &str, Kind)] = &[
    ("cpu", "cpu", Gauge),
    ("clients", "connected_clients", Gauge),
    ("keys", "keys", Gauge),
    ("commands", "commands_processed_total", Counter),
    ("ops_per_sec", "instantaneous_ops_per_sec", Gauge),
    ("used_cpu_user", "cpu_user_seconds_total", Counter),
    ("used_cpu_sys", "cpu_sys_seconds_total", Counter),
    ("used_memory", "memory_used_bytes", Gauge),
    ("hop_messages", "hop_messages_sent_total", Counter),
    ("hops", "hops_sent_total", Counter),
    ("hop_messages_received", "hop_messages_received_total", Counter),
    ("hops_received", "hops_received_total", Counter),
    ("gate_waits", "gate_waits_total", Counter),
    ("lends", "threads_lent_total", Counter),
    ("gate_handovers", "gate_handovers_total", Counter),
    ("moved_in", "connections_moved_in_total", Counter),
    ("moved_out", "connections_moved_out_total", Counter),
    ("tls_clients", "tls_connected_clients", Gauge),
    ("handshakes_ok", "tls_handshakes_ok_total", Counter),
    ("handshakes_failed", "tls_handshakes_failed_total", Counter),
    ("handshakes_resumed", "tls_handshakes_resumed_total", Counter),
    ("buffered_bytes", "tls_buffered_bytes", Gauge),
];

/// `# TLS`'s server-wide fields: field, metric name (after `ferrokey_`), type.
const TLS_FIELDS: &[(&str, &str, Kind)] = &[
    ("tls_connected_clients", "tls_connected_clients", Gauge),
    ("tls_handshakes_ok", "tls_handshakes_ok_total", Counter),
    ("tls_handshakes_failed", "tls_handshakes_failed_total", Counter),
    ("tls_handshakes_resumed", "tls_handshakes_resumed_total", Counter),
    ("tls_cert_not_after", "tls_cert_not_after_timestamp_seconds", Gauge),
    ("tls_config_installs", "tls_config_installs_total", Counter),
    ("tls_buffered_bytes", "tls_buffered_bytes", Gauge),
];

/// One command's latency histogram: name, calls, cumulative counts by bucket top (µs).
pub(crate) type Histogram = (String, u64, Vec<(u64, u64)>);

/// The families being written, in first-seen order, each with its samples.
#[derive(Default)]
struct Families {
    order: Vec<String>,
    by_name: BTreeMap<String, (String, Kind, Vec<String>)>,
}

impl Families {
    /// Adds a sample of family `name` (its HELP `help`, type `kind`): `suffix` (`_sum`, `_bucket`
    /// or nothing), labels, value.
    fn add(&mut self, name: &str, help: &str, kind: Kind, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let family = self.by_name.entry(name.to_owned()).or_insert_with(|| {
            self.order.push(name.to_owned());
            (help.to_owned(), kind, Vec::new())
        });
        let mut line = format!("{name}{suffix}");
        if !labels.is_empty() {
            line.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{k}=\"{}\"", escape(v));
            }
            line.push('}');
        }
        let _ = write!(line, " {}", number(value));
        family.2.push(line);
    }

    /// A family whose HELP is redis_exporter's default (`<name without prefix> metric`).
    fn plain(&mut self, prefix: &str, name: &str, kind: Kind, labels: &[(&str, &str)], value: f64) {
        let full = format!("{prefix}{name}");
        self.add(&full, &format!("{name} metric"), kind, "", labels, value);
    }

    fn write(self) -> String {
        let mut out = String::new();
        for name in &self.order {
            let (help, kind, samples) = &self.by_name[name];
            let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
            let _ = writeln!(out, "# TYPE {name} {}", kind.name());
            for s in samples {
                out.push_str(s);
                out.push('\n');
            }
        }
        out
    }
}

/// A label value, escaped as the format asks (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value: integers without a fraction, others as Rust prints them, and the format's
/// spellings of the infinities and NaN.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A field's value as the exporter reads it: `ok`/`true` 1, `err`/`fail`/`false` 0, else a
/// number; anything else is dropped.
fn value(v: &str) -> Option<f64> {
    match v {
        "ok" | "true" => Some(1.0),
        "err" | "fail" | "false" => Some(0.0),
        _ => v.parse().ok(),
    }
}

/// `a=1,b=2` as pairs.
fn pairs(v: &str) -> Vec<(&str, &str)> {
    v.split(',').filter_map(|p| p.split_once('=')).collect()
}

/// An INFO value's `a=1,b=2` fields, looked up by name.
struct Fields<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Fields<'a> {
    fn of(v: &'a str) -> Fields<'a> {
        Fields(pairs(v))
    }

    fn text(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    fn number(&self, name: &str) -> Option<f64> {
        self.text(name)?.parse().ok()
    }
}

/// The exposition of `info` (INFO everything's text), with `databases` databases (empty ones
/// report 0 keys, as the exporter's default), the latency `histograms`, at Unix time `now`.
pub(crate) fn render(info: &str, databases: usize, histograms: &[Histogram], now: u64) -> String {
    let mut f = Families::default();
    f.add("redis_up", "Information about the Redis instance", Gauge, "", &[], 1.0);
    let mut section = String::new();
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    let mut cmd_usec: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut latency: Vec<(&str, Vec<(&str, f64)>)> = Vec::new();
    let mut dbs_seen = Vec::new();
    let (mut master_host, mut master_port) = ("", "");
    for line in info.lines().map(str::trim) {
        if let Some(title) = line.strip_prefix("# ") {
            section = title.to_lowercase();
            continue;
        }
        let Some((key, v)) = line.split_once(':') else { continue };
        fields.insert(key, v);
        match section.as_str() {
            "commandstats" => {
                let Some(cmd) = key.strip_prefix("cmdstat_") else { continue };
                let p = Fields::of(v);
                let get = |name: &str| p.number(name);
                let (Some(calls), Some(usec)) = (get("calls"), get("usec")) else { continue };
                cmd_usec.insert(cmd, (calls, usec));
                let labels = [("cmd", cmd)];
                f.add(
                    "redis_commands_total",
                    "Total number of calls per command",
                    Counter,
                    "",
                    &labels,
                    calls,
                );
                f.add(
                    "redis_commands_duration_seconds_total",
                    "Total amount of time in seconds spent per command",
                    Counter,
                    "",
                    &labels,
                    usec / 1e6,
                );
                if let (Some(rejected), Some(failed)) = (get("rejected_calls"), get("failed_calls")) {
                    let help = "Total number of errors within command execution per command";
                    f.add("redis_commands_rejected_calls_total", help, Counter, "", &labels, rejected);
                    let help = "Total number of errors prior command execution per command";
                    f.add("redis_commands_failed_calls_total", help, Counter, "", &labels, failed);
                }
            }
            "errorstats" => {
                let (Some(err), Some(("count", n))) = (key.strip_prefix("errorstat_"), v.split_once('='))
                else {
                    continue;
                };
                if let Ok(n) = n.parse() {
                    f.add(
                        "redis_errors_total",
                        "Total number of errors per error type",
                        Counter,
                        "",
                        &[("err", err)],
                        n,
                    );
                }
            }
            "latencystats" => {
                let Some(cmd) = key.strip_prefix("latency_percentiles_usec_") else { continue };
                let quantiles: Option<Vec<(&str, f64)>> = pairs(v)
                    .into_iter()
                    .map(|(q, n)| Some((q.strip_prefix('p')?, n.parse().ok()?)))
                    .collect();
                if let Some(q) = quantiles {
                    latency.push((cmd, q));
                }
            }
            "keyspace" => {
                let Some(index) = key.strip_prefix("db") else { continue };
                let p = Fields::of(v);
                let get = |name: &str| p.number(name);
                let labels = [("db", key)];
                if let (Some(keys), Some(expires)) = (get("keys"), get("expires")) {
                    dbs_seen.push(index.to_owned());
                    f.add("redis_db_keys", "Total number of keys by DB", Gauge, "", &labels, keys);
                    f.add(
                        "redis_db_keys_expiring",
                        "Total number of expiring keys by DB",
                        Gauge,
                        "",
                        &labels,
                        expires,
                    );
                    if let Some(ttl) = get("avg_ttl") {
                        f.add(
                            "redis_db_avg_ttl_seconds",
                            "Avg TTL in seconds",
                            Gauge,
                            "",
                            &labels,
                            ttl / 1000.0,
                        );
                    }
                }
            }
            "cores" => {
                let Some(core) = key.strip_prefix("core") else { continue };
                core_fields(&mut f, core, v);
            }
            "tls" => {
                if let Some(core) = key.strip_prefix("core") {
                    core_fields(&mut f, core, v);
                } else if key == "tls_clients_by_session" {
                    let p = Fields::of(v);
                    let get = |name: &str| p.text(name).unwrap_or("");
                    if let Ok(n) = get("clients").parse() {
                        let labels = [("version", get("version")), ("cipher", get("cipher"))];
                        f.add(
                            "ferrokey_tls_clients",
                            "TLS clients by protocol version and cipher",
                            Gauge,
                            "",
                            &labels,
                            n,
                        );
                    }
                } else if let Some((_, name, kind)) = TLS_FIELDS.iter().find(|(field, ..)| *field == key) {
                    if let Some(n) = value(v) {
                        f.plain("ferrokey_", name, *kind, &[], n);
                    }
                }
            }
            "replication" if key == "master_host" => master_host = v,
            "replication" if key == "master_port" => master_port = v,
            "replication" if key == "master_link_status" => {
                let labels = [("master_host", master_host), ("master_port", master_port)];
                let up = f64::from(u8::from(v == "up"));
                f.add("redis_master_link_up", "Master link status on Redis slave", Gauge, "", &labels, up);
            }
            "replication"
                if matches!(
                    key,
                    "master_last_io_seconds_ago" | "master_sync_in_progress" | "slave_repl_offset"
                ) =>
            {
                let labels = [("master_host", master_host), ("master_port", master_port)];
                let help = match key {
                    "master_last_io_seconds_ago" => "Master last io seconds ago",
                    "master_sync_in_progress" => "Master sync in progress",
                    _ => "Slave replication offset",
                };
                f.add(&format!("redis_{key}"), help, Gauge, "", &labels, v.parse().unwrap_or(0.0));
            }
            "replication" if key.starts_with("slave") && key[5..].bytes().all(|b| b.is_ascii_digit()) => {
                let p = Fields::of(v);
                let get = |name: &str| p.text(name);
                let labels = [
                    ("slave_ip", get("ip").unwrap_or("")),
                    ("slave_port", get("port").unwrap_or("")),
                    ("slave_state", get("state").unwrap_or("")),
                ];
                if let Some(offset) = get("offset").and_then(|o| o.parse().ok()) {
                    f.add(
                        "redis_connected_slave_offset_bytes",
                        "Offset of connected slave",
                        Gauge,
                        "",
                        &labels,
                        offset,
                    );
                }
                if let Some(lag) = get("lag").and_then(|l| l.parse().ok()) {
                    f.add(
                        "redis_connected_slave_lag_seconds",
                        "Lag of connected slave",
                        Gauge,
                        "",
                        &labels,
                        lag,
                    );
                }
            }
            _ => {
                if section == "server" {
                    if key == "uptime_in_seconds" {
                        if let Ok(up) = v.parse::<f64>() {
                            let help = "Start time of the Redis instance since unix epoch in seconds.";
                            f.add("redis_start_time_seconds", help, Gauge, "", &[], now as f64 - up);
                        }
                    } else if matches!(key, "configured_hz" | "hz") {
                        if let Ok(hz) = v.parse() {
                            f.plain("redis_", key, Gauge, &[], hz);
                        }
                    }
                }
                let Some(n) = value(v) else { continue };
                let Some((_, name, kind)) = FIELDS.iter().find(|(field, ..)| *field == key) else {
                    // The exporter keeps every `cluster_*` field under its own name.
                    if key.starts_with("cluster_") {
                        f.plain("redis_", key, Gauge, &[], n);
                    }
                    continue;
                };
                if *name == "latest_fork_usec" {
                    f.plain("redis_", "latest_fork_seconds", Gauge, &[], n / 1e6);
                } else {
                    f.plain("redis_", name, *kind, &[], n);
                }
            }
        }
    }
    for db in 0..databases {
        if !dbs_seen.iter().any(|d| *d == db.to_string()) {
            let name = format!("db{db}");
            let labels = [("db", name.as_str())];
            f.add("redis_db_keys", "Total number of keys by DB", Gauge, "", &labels, 0.0);
            f.add("redis_db_keys_expiring", "Total number of expiring keys by DB", Gauge, "", &labels, 0.0);
        }
    }
    for (cmd, quantiles) in &latency {
        let Some(&(calls, usec)) = cmd_usec.get(cmd) else { continue };
        let help = "A summary of latency percentile distribution per command";
        for (q, n) in quantiles {
            let labels = [("cmd", *cmd), ("quantile", *q)];
            f.add("redis_latency_percentiles_usec", help, Kind::Summary, "", &labels, *n);
        }
        f.add("redis_latency_percentiles_usec", help, Kind::Summary, "_sum", &[("cmd", cmd)], usec);
        f.add("redis_latency_percentiles_usec", help, Kind::Summary, "_count", &[("cmd", cmd)], calls);
    }
    for (cmd, calls, buckets) in histograms {
        let help = "A histogram of latencies per command";
        let name = "redis_commands_latencies_usec";
        for (top, n) in buckets {
            let le = top.to_string();
            f.add(name, help, Kind::Histogram, "_bucket", &[("cmd", cmd), ("le", &le)], *n as f64);
        }
        f.add(name, help, Kind::Histogram, "_bucket", &[("cmd", cmd), ("le", "+Inf")], *calls as f64);
        // The sum is the time INFO counts for the command and its subcommands, in µs.
        let sub = format!("{cmd}|");
        let usec: f64 = cmd_usec
            .iter()
            .filter(|(c, _)| **c == cmd.as_str() || c.starts_with(&sub))
            .map(|(_, (_, u))| *u)
            .sum();
        f.add(name, help, Kind::Histogram, "_sum", &[("cmd", cmd)], usec);
        f.add(name, help, Kind::Histogram, "_count", &[("cmd", cmd)], *calls as f64);
    }
    let info_labels = [
        "role",
        "redis_version",
        "redis_build_id",
        "redis_mode",
        "os",
        "maxmemory_policy",
        "tcp_port",
        "run_id",
        "process_id",
        "master_replid",
    ];
    let labels: Vec<(&str, &str)> =
        info_labels.iter().map(|k| (*k, fields.get(k).copied().unwrap_or(""))).collect();
    f.plain("redis_", "instance_info", Gauge, &labels, 1.0);
    if fields.get("role") == Some(&"slave") {
        let labels = [
            ("master_host", fields.get("master_host").copied().unwrap_or("")),
            ("master_port", fields.get("master_port").copied().unwrap_or("")),
            ("read_only", fields.get("slave_read_only").copied().unwrap_or("")),
        ];
        f.add("redis_slave_info", "Information about the Redis slave", Gauge, "", &labels, 1.0);
    }
    f.write()
}

/// One core's `key=value` fields as `ferrokey_core_*{core="N"}` series.
fn core_fields(f: &mut Families, core: &str, v: &str) {
    if !core.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    for (field, n) in pairs(v) {
        let Some((_, name, kind)) = CORE_FIELDS.iter().find(|(k, ..)| *k == field) else { continue };
        let Ok(n) = n.parse() else { continue };
        f.add(
            &format!("ferrokey_core_{name}"),
            &format!("{name} metric, per core"),
            *kind,
            "",
            &[("core", core)],
            n,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.0\r\nuptime_in_seconds:10\r\nhz:10\r\nrole:master\r\n\
        # Clients\r\nconnected_clients:3\r\n\
        # Persistence\r\nrdb_last_bgsave_status:ok\r\n\
        # Stats\r\nlatest_fork_usec:2000\r\ninstantaneous_ops_per_sec:5\r\nkeyspace_hits:7\r\n\
        # Commandstats\r\ncmdstat_get:calls=4,usec=20,usec_per_call=5.00,rejected_calls=0,failed_calls=1\r\n\
        cmdstat_client|list:calls=1,usec=3,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\
        # Errorstats\r\nerrorstat_WRONGTYPE:count=1\r\n\
        # Latencystats\r\nlatency_percentiles_usec_get:p50=1.003,p99=5.001,p99.9=5.001\r\n\
        # Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=1500\r\n\
        # Cluster\r\ncluster_enabled:0\r\n\
        # Cores\r\ncore0:cpu=0,clients=2,hops=9,gate_waits=1\r\n\
        # TLS\r\ntls_handshakes_ok:4\r\ntls_clients_by_session:version=TLSv1_3,cipher=X,clients=1\r\n";

    #[test]
    fn fields_become_redis_exporter_s_series() {
        let out = render(INFO, 2, &[("get".into(), 4, vec![(1, 3), (2, 4)])], 1000);
        for line in [
            "redis_up 1",
            "# TYPE redis_connected_clients gauge",
            "redis_connected_clients 3",
            "redis_rdb_last_bgsave_status 1",
            "redis_latest_fork_seconds 0.002",
            "# TYPE redis_keyspace_hits_total counter",
            "redis_keyspace_hits_total 7",
            "redis_start_time_seconds 990",
            "redis_hz 10",
            "redis_commands_total{cmd=\"get\"} 4",
            "redis_commands_duration_seconds_total{cmd=\"get\"} 0.00002",
            "redis_commands_failed_calls_total{cmd=\"get\"} 1",
            "redis_commands_total{cmd=\"client|list\"} 1",
            "redis_errors_total{err=\"WRONGTYPE\"} 1",
            "redis_latency_percentiles_usec{cmd=\"get\",quantile=\"99.9\"} 5.001",
            "redis_latency_percentiles_usec_sum{cmd=\"get\"} 20",
            "redis_latency_percentiles_usec_count{cmd=\"get\"} 4",
            "redis_commands_latencies_usec_bucket{cmd=\"get\",le=\"2\"} 4",
            "redis_commands_latencies_usec_bucket{cmd=\"get\",le=\"+Inf\"} 4",
            "redis_db_keys{db=\"db0\"} 2",
            "redis_db_avg_ttl_seconds{db=\"db0\"} 1.5",
            "redis_db_keys{db=\"db1\"} 0",
            "ferrokey_core_hops_sent_total{core=\"0\"} 9",
            "ferrokey_core_gate_waits_total{core=\"0\"} 1",
            "ferrokey_tls_handshakes_ok_total 4",
            "redis_cluster_enabled 0",
            "ferrokey_tls_clients{version=\"TLSv1_3\",cipher=\"X\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        assert!(out.contains("redis_instance_info{role=\"master\",redis_version=\"7.0.0\","), "{out}");
        // The exporter drops what it has no name for.
        assert!(!out.contains("instantaneous_ops_per_sec "), "{out}");
        // Every family has its HELP and TYPE once, before its samples.
        let types = out.lines().filter(|l| l.starts_with("# TYPE redis_commands_total ")).count();
        assert_eq!(types, 1);
    }

    #[test]
    fn label_values_are_escaped() {
        let out = render("# Errorstats\r\nerrorstat_A\"B:count=1\r\n", 0, &[], 0);
        assert!(out.contains("redis_errors_total{err=\"A\\\"B\"} 1"), "{out}");
    }
}
