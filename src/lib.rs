//! ferrokey: a Redis-compatible, thread-per-core in-memory data server where TLS is never the
//! bottleneck.
//!
//! # Layout
//! - [`benchmark`]: `ferrokey-benchmark`, the load generator, on the same I/O stack.
//! - [`config`]: directives, redis.conf files, command-line overrides, CONFIG GET/SET.
//! - [`facade`]: listeners, TLS, the stream type, the RESP parser and reply encoder, the
//!   connection loop. Knows nothing of the keyspace.
//! - [`storage`]: the keyspace and value structures; pure data, never awaits.
//! - [`engine`]: shards (one per core), the router (the only code that talks between cores),
//!   transactions, sessions that coordinate commands, blocked clients.
//! - [`cmd`]: the command families, argument parsing, Redis's error texts.
//! - [`runtime`]: executors, startup, shutdown; plugs server sessions into facade connections.
//! - [`durable`]: replacing a file durably (temporary file, fsync, rename), for config rewrites
//!   and ACL files.
//! - [`glob`]: Redis glob patterns, for KEYS, SCAN MATCH and CONFIG GET.
//! - [`logging`]: the `tracing` subscriber, whose level CONFIG SET loglevel changes.
//! - [`memory`]: the counting allocator behind INFO's `used_memory`.
//! - [`metrics`]: the Prometheus endpoint (`metrics-port`).
//! - [`num`]: Redis's number syntax (`strtod`), for storage and commands alike.
//! - [`splitargs`]: Redis's argument splitter, shared by inline commands and config files.
//!
//! See ARCHITECTURE.md for the life of a command and the invariants.

#![deny(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(missing_docs)]

pub mod benchmark;
mod cmd;
pub mod config;
mod durable;
mod engine;
mod facade;
mod glob;
pub mod logging;
pub mod memory;
mod metrics;
mod num;
pub mod runtime;
mod splitargs;
mod storage;
pub mod supervise;

/// What the benchmarks and the integration tests reach inside the server. Not an API: it
/// follows the code.
#[doc(hidden)]
pub mod internals {
    pub use crate::engine::slot::Slot;
    pub use crate::facade::reply::Reply;
    pub use crate::facade::resp::{Limits, RequestParser};
    pub use crate::num::splitmix;
    pub use crate::storage::zset::ZSet;

    /// Finds the key a request is routed by, as the server does (for the routing benchmark).
    pub struct Routing(crate::engine::command::Commands);

    impl Routing {
        /// Every command, as the server registers them.
        #[must_use]
        pub fn new() -> Routing {
            Routing(crate::cmd::commands())
        }

        /// The position of the first key of `args`, if the command is known and names one.
        #[must_use]
        pub fn first_key(&self, args: &[bytes::Bytes]) -> Option<usize> {
            self.0.get(&args[0])?.key_positions(args).next()
        }
    }

    /// Per-command statistics as a shard keeps them (for the statistics benchmark).
    #[derive(Default)]
    pub struct CommandStats(crate::engine::stats::Stats);

    impl CommandStats {
        /// What `Shard::exec` adds around every command: two clock reads, and the call recorded
        /// for command `id` (with its latency histogram when `latency`). Returns the time taken.
        pub fn record(&mut self, id: usize, latency: bool) -> u64 {
            let started = crate::engine::stats::Started::now();
            let nanos = started.elapsed_ns();
            self.0.called(id, nanos, &Reply::Ok, latency);
            nanos
        }
    }

    /// The ACL check a session runs before each command of a user that is not unrestricted
    /// (for the ACL benchmark): the command looked up, its keys found, every selector tried.
    pub struct AclCheck {
        commands: crate::engine::command::Commands,
        user: crate::engine::acl::User,
        keys: Vec<(usize, crate::engine::spec::KeyFlags)>,
    }

    impl AclCheck {
        /// A user with `rules` (as ACL SETUSER takes them, one rule per word).
        ///
        /// # Panics
        /// If a rule is not valid.
        #[must_use]
        pub fn new(rules: &str) -> AclCheck {
            let commands = crate::cmd::commands();
            let catalog = commands.acl_catalog();
            let mut user =
                crate::engine::acl::User::new(bytes::Bytes::from_static(b"bench"), &catalog, false);
            let rules: Vec<bytes::Bytes> =
                rules.split(' ').map(|r| bytes::Bytes::from(r.to_owned())).collect();
            let rules = crate::engine::acl::merge_selectors(&rules).expect("balanced selectors");
            user.apply_all(&catalog, false, &rules).expect("valid rules");
            AclCheck { commands, user, keys: Vec::new() }
        }

        /// Only the command lookup [`AclCheck::allows`] starts with, which every request pays
        /// for any user: the check's own cost is the difference.
        #[must_use]
        pub fn lookup(&self, args: &[bytes::Bytes]) -> bool {
            self.commands.get(&args[0]).is_some()
        }

        /// Whether the user may run `args`.
        pub fn allows(&mut self, args: &[bytes::Bytes]) -> bool {
            let Some(cmd) = self.commands.get(&args[0]) else { return false };
            cmd.acl_keys_into(args, &mut self.keys);
            crate::engine::acl::check(&self.user, &cmd.acl_request(args, &self.keys)).is_ok()
        }
    }

    /// A one-key script run on a shard as the server runs EVALSHA there (for the scripts'
    /// benchmark): the interpreter, the `redis.call`s and the shard's commands, no network.
    pub struct ScriptRun {
        shard: std::rc::Rc<std::cell::RefCell<crate::engine::shard::Shard>>,
        source: std::sync::Arc<crate::engine::script::store::Source>,
    }

    impl ScriptRun {
        /// A shard of a server with the default configuration, and `body` loaded.
        ///
        /// # Panics
        /// If the server's state cannot be built or `body` does not compile.
        #[must_use]
        pub fn new(body: &str) -> ScriptRun {
            let config = crate::config::Config::default();
            let _ = crate::engine::command::install(crate::cmd::commands());
            let users = crate::engine::acl::Users::at_startup(
                crate::engine::command::registry().acl_catalog(),
                &config,
            )
            .expect("default users");
            let tls = std::sync::Arc::new(crate::facade::tls::TlsSlot::new().expect("TLS slot"));
            let cores = vec![crate::engine::global::CoreInfo { shard: 0, cpu: 0 }];
            let global = std::sync::Arc::new(crate::engine::global::Global::new(config, cores, tls, users));
            let shard = crate::engine::shard::Shard::new(crate::engine::slot::ShardId(0), global);
            let source = crate::engine::script::store::Source::new(bytes::Bytes::from(body.to_owned()))
                .expect("a valid script");
            let source = crate::engine::script::store::Store::get().add(source);
            ScriptRun { shard: std::rc::Rc::new(std::cell::RefCell::new(shard)), source }
        }

        /// Runs the script with `keys` and `argv`: its reply.
        pub fn run(&self, keys: &[bytes::Bytes], argv: &[bytes::Bytes]) -> Option<Reply> {
            use crate::engine::script::run::{Rules, Script, Target};
            let script = Script {
                target: Target::Eval(self.source.clone()),
                keys: keys.to_vec(),
                argv: argv.to_vec(),
                rules: Rules { busy_after: std::time::Duration::from_secs(5), ..Rules::default() },
                command: Vec::new(),
            };
            let reply = crate::engine::script::run::run_here(&self.shard, script);
            self.shard.borrow_mut().publish();
            reply
        }
    }

    impl Default for Routing {
        fn default() -> Routing {
            Routing::new()
        }
    }

    /// Hand-overs there and back between two threads pinned to `cpus`, as a script holding
    /// every shard and a peer lent to it make them (`engine::handoff`, both waits yielding
    /// first when the cpus are one): `n` of them. Returns the CPU µs of the process per round
    /// trip, as measured by `cpu_secs`.
    pub fn handoff_round_trips(n: u64, cpus: (usize, usize), cpu_secs: fn() -> f64) -> f64 {
        use crate::engine::handoff;
        let shares = cpus.0 == cpus.1;
        let (feed, drain) = handoff::queue::<handoff::Give<u64>>();
        let before = cpu_secs();
        let peer = std::thread::spawn(move || {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpus.1 });
            handoff::share_cpu(shares);
            while let Some(give) = drain.next() {
                give.give(1);
            }
        });
        core_affinity::set_for_current(core_affinity::CoreId { id: cpus.0 });
        handoff::share_cpu(shares);
        let mut done = 0;
        for _ in 0..n {
            let (give, take) = handoff::answer();
            if feed.give(give).is_err() || take.wait().is_none() {
                break;
            }
            done += 1;
        }
        drop(feed);
        let _ = peer.join();
        (cpu_secs() - before) * 1e6 / f64::from(u32::try_from(done.max(1)).unwrap_or(u32::MAX))
    }
}

/// The Redis version whose behaviour ferrokey follows, as HELLO and INFO report it.
pub const REDIS_VERSION: &str = "7.0.0";
