//! The floor under a cross-core hop, with no server around it: two glommio executors pinned to
//! two cpus, the first ticking at a fixed rate (a timer wakes it, as a request's arrival wakes a
//! lightly loaded core) and, in the second round, sending the other a message at each tick and
//! awaiting its reply, both parking between ticks as ferrokey's cores do at a light load. It
//! prints the process's CPU µs per tick for each round: the difference is what one hop there
//! and back costs between parked cores on this machine, whatever a server does around it.
//! The same two rounds run again with two bare threads (a sleep for the tick, futex wake and
//! wait for the hop: `thread::unpark` and `thread::park`), the kernel's own floor under any
//! executor's park and wake. Last, hops flat out between executors that poll and yield the
//! cpu (ferrokey's on a shared cpu), against bare threads handing a token over with
//! `sched_yield`.
//!
//! ```text
//! cargo run --release --example hop_floor -- [TICKS_PER_SEC] [SECONDS] [CPU_A,CPU_B] [yielding]
//! ```
//! (6250 ticks/s is the rate of P=16 pipelines at 100k SET/s.)

use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::timer::Timer;
use glommio::{LocalExecutorBuilder, Placement};
use nix::sys::resource::{getrusage, UsageWho};

fn cpu_secs() -> f64 {
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |v: nix::sys::time::TimeVal| v.tv_sec() as f64 + v.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// Ticks at a fixed rate for a bounded time and count.
struct Pacer {
    start: Instant,
    next: Instant,
    period: Duration,
    left: u64,
    secs: u64,
}

impl Pacer {
    fn new(rate: u64, secs: u64) -> Pacer {
        let start = Instant::now();
        let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
        Pacer { start, next: start, period, left: rate * secs, secs }
    }

    /// `None` when done; otherwise how long to sleep before the next tick, if at all.
    fn next(&mut self) -> Option<Option<Duration>> {
        if self.left == 0 || self.start.elapsed() >= Duration::from_secs(self.secs) {
            return None;
        }
        self.left -= 1;
        self.next += self.period;
        Some(self.next.checked_duration_since(Instant::now()))
    }
}

/// The far executor: answers each message with itself until the channel closes.
fn echo(
    builder: LocalExecutorBuilder,
    from_a: shared_channel::SharedReceiver<u64>,
    to_a: shared_channel::SharedSender<u64>,
) -> glommio::ExecutorJoinHandle<()> {
    builder
        .spawn(move || async move {
            let (rx, tx) = (from_a.connect().await, to_a.connect().await);
            while let Some(m) = rx.recv().await {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        })
        .expect("executor b")
}

/// One round: `rate` ticks a second for `secs` on `cpus.0`; with `hop`, each tick is a message
/// to `cpus.1` and its reply. Returns (ticks, CPU µs per tick).
fn round(rate: u64, secs: u64, cpus: (usize, usize), hop: bool) -> (u64, f64) {
    let (to_b, from_a) = shared_channel::new_bounded::<u64>(1024);
    let (to_a, from_b) = shared_channel::new_bounded::<u64>(1024);
    let before = cpu_secs();
    let b = echo(LocalExecutorBuilder::new(Placement::Fixed(cpus.1)), from_a, to_a);
    let a = LocalExecutorBuilder::new(Placement::Fixed(cpus.0))
        .spawn(move || async move {
            let (tx, rx) = (to_b.connect().await, from_b.connect().await);
            let (mut pacer, mut ticks) = (Pacer::new(rate, secs), 0u64);
            while let Some(wait) = pacer.next() {
                if let Some(wait) = wait {
                    Timer::new(wait).await;
                }
                if hop && (tx.send(ticks).await.is_err() || rx.recv().await.is_none()) {
                    break;
                }
                ticks += 1;
            }
            ticks
        })
        .expect("executor a");
    let ticks = a.join().unwrap_or(0);
    let _ = b.join();
    (ticks, (cpu_secs() - before) * 1e6 / ticks.max(1) as f64)
}

/// The same round with bare threads: the tick is a `thread::sleep`, the hop an `unpark` of the
/// other thread (a futex wake) and a `park` (a futex wait) until it answers the same way.
fn round_threads(rate: u64, secs: u64, cpus: (usize, usize), hop: bool) -> (u64, f64) {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    let pin = |cpu| {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    };
    // `asked` counts ticks sent to b, `answered` the ticks b has answered; u64::MAX stops b.
    let (asked, answered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let a_thread = std::thread::current();
    let before = cpu_secs();
    let b = {
        let (asked, answered) = (asked.clone(), answered.clone());
        std::thread::spawn(move || {
            pin(cpus.1);
            let mut seen = 0;
            loop {
                let now = asked.load(SeqCst);
                if now == u64::MAX {
                    break;
                }
                if now == seen {
                    std::thread::park();
                    continue;
                }
                seen = now;
                answered.store(now, SeqCst);
                a_thread.unpark();
            }
        })
    };
    pin(cpus.0);
    let (mut pacer, mut ticks) = (Pacer::new(rate, secs), 0u64);
    while let Some(wait) = pacer.next() {
        if let Some(wait) = wait {
            std::thread::sleep(wait);
        }
        ticks += 1;
        if hop {
            asked.store(ticks, SeqCst);
            b.thread().unpark();
            while answered.load(SeqCst) != ticks {
                std::thread::park();
            }
        }
    }
    asked.store(u64::MAX, SeqCst);
    b.thread().unpark();
    let _ = b.join();
    (ticks, (cpu_secs() - before) * 1e6 / ticks.max(1) as f64)
}

/// Hops flat out between two executors that poll for work and yield the cpu on each turn of
/// the poll (ferrokey's executors sharing a cpu: `spin_yields`): `n` messages, each awaited
/// before the next. Returns CPU µs per hop there and back.
fn round_yielding(n: u64, cpus: (usize, usize)) -> f64 {
    let (to_b, from_a) = shared_channel::new_bounded::<u64>(1024);
    let (to_a, from_b) = shared_channel::new_bounded::<u64>(1024);
    let builder = |cpu| {
        LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .spin_before_park(Duration::from_micros(100))
            .spin_yields(cpus.0 == cpus.1)
    };
    let before = cpu_secs();
    let b = echo(builder(cpus.1), from_a, to_a);
    let a = builder(cpus.0)
        .spawn(move || async move {
            let (tx, rx) = (to_b.connect().await, from_b.connect().await);
            for i in 0..n {
                if tx.send(i).await.is_err() || rx.recv().await.is_none() {
                    return i;
                }
            }
            n
        })
        .expect("executor a");
    let hops = a.join().unwrap_or(0);
    let _ = b.join();
    (cpu_secs() - before) * 1e6 / hops.max(1) as f64
}

/// The same with bare threads handing a token back and forth, each calling `sched_yield` until
/// it has it: the kernel's floor under a hand-over on a shared cpu.
fn round_yielding_threads(n: u64, cpus: (usize, usize)) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    let turn = Arc::new(AtomicU64::new(0));
    let before = cpu_secs();
    let player = |me: u64, cpu: usize| {
        let turn = turn.clone();
        std::thread::spawn(move || {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
            for i in 0..n {
                while turn.load(SeqCst) != 2 * i + me {
                    std::thread::yield_now();
                }
                turn.store(2 * i + me + 1, SeqCst);
            }
        })
    };
    let (a, b) = (player(0, cpus.0), player(1, cpus.1));
    let _ = (a.join(), b.join());
    (cpu_secs() - before) * 1e6 / n.max(1) as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(6250);
    let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let cpus = args
        .get(3)
        .and_then(|s| s.split_once(','))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((0, 1));
    // `yielding` as a fourth argument: only the flat-out round between executors (to profile
    // an executor's turn alone).
    if args.get(4).is_some_and(|a| a == "yielding") {
        let n = rate * secs;
        println!(
            "flat out, {n} hops, executors polling and yielding: {:.2} CPU µs per hop",
            round_yielding(n, cpus)
        );
        return;
    }
    let (n0, tick) = round(rate, secs, cpus, false);
    let (n1, hop) = round(rate, secs, cpus, true);
    println!("cpus {cpus:?}, {rate} ticks/s for {secs} s");
    println!("timer tick alone:          {tick:.2} CPU µs per tick ({n0} ticks)");
    println!("tick + hop there and back: {hop:.2} CPU µs per tick ({n1} ticks)");
    println!("the hop:                   {:.2} CPU µs", hop - tick);
    let (t0, tick) = round_threads(rate, secs, cpus, false);
    let (t1, hop) = round_threads(rate, secs, cpus, true);
    println!("bare threads (sleep, futex wake and wait):");
    println!("timer tick alone:          {tick:.2} CPU µs per tick ({t0} ticks)");
    println!("tick + hop there and back: {hop:.2} CPU µs per tick ({t1} ticks)");
    println!("the hop:                   {:.2} CPU µs", hop - tick);
    let n = rate * secs;
    println!(
        "flat out, {n} hops, executors polling and yielding: {:.2} CPU µs per hop",
        round_yielding(n, cpus)
    );
    println!(
        "flat out, {n} hand-overs and back, bare threads yielding: {:.2} CPU µs",
        round_yielding_threads(n, cpus)
    );
    println!(
        "flat out, {n} hand-overs and back, ferrokey's script hand-over (engine::handoff): {:.2} CPU µs",
        ferrokey::internals::handoff_round_trips(n, cpus, cpu_secs)
    );
}
