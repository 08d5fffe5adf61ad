//! The floor under a cross-core hop, with no server around it: two glommio executors pinned to
//! two cpus, the first ticking at a fixed rate (a timer wakes it, as a request's arrival wakes a
//! lightly loaded core) and, in the second round, sending the other a message at each tick and
//! awaiting its reply, both parking between ticks as ferrokey's cores do at a light load. It
//! prints the process's CPU µs per tick for each round: the difference is what one hop there
//! and back costs between parked cores on this machine, whatever a server does around it.
//!
//! ```text
//! cargo run --release --example hop_floor -- [TICKS_PER_SEC] [SECONDS] [CPU_A,CPU_B]
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

/// One round: `rate` ticks a second for `secs` on `cpus.0`; with `hop`, each tick is a message
/// to `cpus.1` and its reply. Returns (ticks, CPU µs per tick).
fn round(rate: u64, secs: u64, cpus: (usize, usize), hop: bool) -> (u64, f64) {
    let (to_b, from_a) = shared_channel::new_bounded::<u64>(1024);
    let (to_a, from_b) = shared_channel::new_bounded::<u64>(1024);
    let before = cpu_secs();
    let b = LocalExecutorBuilder::new(Placement::Fixed(cpus.1))
        .spawn(move || async move {
            let (rx, tx) = (from_a.connect().await, to_a.connect().await);
            while let Some(m) = rx.recv().await {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        })
        .expect("executor b");
    let a = LocalExecutorBuilder::new(Placement::Fixed(cpus.0))
        .spawn(move || async move {
            let (tx, rx) = (to_b.connect().await, from_b.connect().await);
            let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
            let (start, mut ticks) = (Instant::now(), 0u64);
            let mut next = start;
            while start.elapsed() < Duration::from_secs(secs) && ticks < rate * secs {
                next += period;
                let now = Instant::now();
                if next > now {
                    Timer::new(next - now).await;
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(6250);
    let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let cpus = args
        .get(3)
        .and_then(|s| s.split_once(','))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((0, 1));
    let (n0, tick) = round(rate, secs, cpus, false);
    let (n1, hop) = round(rate, secs, cpus, true);
    println!("cpus {cpus:?}, {rate} ticks/s for {secs} s");
    println!("timer tick alone:          {tick:.2} CPU µs per tick ({n0} ticks)");
    println!("tick + hop there and back: {hop:.2} CPU µs per tick ({n1} ticks)");
    println!("the hop:                   {:.2} CPU µs", hop - tick);
}
