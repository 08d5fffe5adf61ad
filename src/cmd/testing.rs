//! A command context without a server, for the families' unit tests: the databases of one
//! shard, a clock the test sets, a random generator; commands resolve through the registry and
//! run as a shard runs them (arity checked, body called, errors turned into Redis's replies).
//!
//! Only commands that run on a shard can run here; connection-level ones (CLIENT, EXEC, BLPOP
//! that waits) need a session and are tested over the wire.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::engine::command::{Commands, Run};
use crate::engine::journal::Effects;
use crate::engine::notify::Notices;
use crate::engine::shard::Ctx;
use crate::facade::Reply;
use crate::storage::db::Db;
use crate::storage::rng::Rng;

/// One shard's databases, a clock and a random generator.
pub(crate) struct Fixture {
    dbs: Vec<Db>,
    rng: Rng,
    /// The time commands see, in Unix milliseconds; tests move it to expire keys.
    pub(crate) now: u64,
    /// The selected database.
    pub(crate) db: usize,
    effects: Effects,
    notices: Notices,
}

fn registry() -> &'static Commands {
    static COMMANDS: OnceLock<Commands> = OnceLock::new();
    COMMANDS.get_or_init(crate::cmd::commands)
}

impl Fixture {
    /// Sixteen empty databases at a fixed time.
    pub(crate) fn new() -> Fixture {
        Fixture {
            dbs: (0..16).map(|_| Db::default()).collect(),
            rng: Rng::seeded(7),
            now: 1_700_000_000_000,
            db: 0,
            effects: Effects::default(),
            notices: Notices::default(),
        }
    }

    /// The context a shard would give a command.
    pub(crate) fn ctx(&mut self) -> Ctx<'_> {
        Ctx::new(
            &mut self.dbs,
            self.db,
            self.now,
            512 << 20,
            &mut self.rng,
            &mut self.effects,
            &mut self.notices,
        )
    }

    /// Runs one command line, split on spaces.
    ///
    /// # Panics
    /// When the command does not run on a shard.
    pub(crate) fn run(&mut self, line: &str) -> Reply {
        let args: Vec<Bytes> = line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        self.run_args(&args)
    }

    /// Runs one command.
    pub(crate) fn run_args(&mut self, args: &[Bytes]) -> Reply {
        let cmd = match registry().resolve(args) {
            Ok(cmd) => cmd,
            Err(e) => return e.into(),
        };
        if !cmd.arity_ok(args.len()) {
            return cmd.arity_error().into();
        }
        let (Run::Shard(run) | Run::Split(run, _) | Run::Across(run, _)) = cmd.run else {
            panic!("{} does not run on a shard", cmd.full_name)
        };
        run(&mut self.ctx(), args).unwrap_or_else(Reply::from)
    }

    /// Starts logging effects, as a shard does with the AOF on.
    pub(crate) fn journal(&mut self) {
        self.effects.set_on(true);
        self.dbs.iter_mut().for_each(|db| db.report_expired(true));
    }

    /// What the commands run since the last call logged themselves (their effects, where they
    /// differ from the request), each as its arguments joined by spaces.
    pub(crate) fn logged(&mut self) -> Vec<String> {
        self.effects.take_text()
    }

    /// Runs one command line and returns its reply as RESP2 text, as a client would read it.
    pub(crate) fn resp(&mut self, line: &str) -> String {
        let mut out = bytes::BytesMut::new();
        self.run(line).encode(false, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}
