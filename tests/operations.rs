//! Running the server: config files and overrides, startup errors, shutdown, and the tools that
//! talk to it (redis-cli, redis-benchmark).

mod common;

use std::process::Command;

use common::{Mode, Opts, Server, MODES};

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrokey-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_file_with_include_and_command_line_overrides() {
    let inc = temp_file("inc.conf", "databases 4\nhz 20\n");
    let main = temp_file(
        "main.conf",
        &format!("# ferrokey test\ninclude {}\nrequirepass \"pa ss\"\nmaxclients 77\n", inc.display()),
    );
    let server = Server::with(Opts { config_file: Some(main), ..Opts::default() }.arg("hz", "30"));
    for mode in MODES {
        let client = server.redis_client(mode);
        let mut c = client.get_connection().unwrap();
        assert!(
            redis::cmd("GET").arg("k").query::<Option<String>>(&mut c).is_err(),
            "requirepass from the file"
        );
        let _: () = redis::cmd("AUTH").arg("pa ss").query(&mut c).unwrap();
        let got: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("hz")
            .arg("databases")
            .arg("maxclients")
            .query(&mut c)
            .unwrap();
        assert_eq!(got, ["databases", "4", "maxclients", "77", "hz", "30"]);
        assert!(redis::cmd("SELECT").arg(4).query::<()>(&mut c).is_err());
    }
}

#[test]
fn bad_directive_stops_startup_with_file_and_line() {
    let path = temp_file("bad.conf", "port 7000\n\nbogus-directive 1\n");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server")).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.conf:3") && err.contains("unknown directive 'bogus-directive'"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server")).args(["--port", "abc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'port'"));
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--port", "0", "--tls-port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args([
            "--tls-port",
            "7001",
            "--tls-cert-file",
            "/nonexistent.crt",
            "--tls-key-file",
            "/nonexistent.key",
            "--tls-auth-clients",
            "no",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.crt"), "TLS errors name the file");
}

#[test]
fn a_taken_port_is_a_clean_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--bind", "127.0.0.1", "--port", &port, "--threads", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not bind"));
    // A port another ferrokey listens on: its cores bind with SO_REUSEPORT, which a second
    // server doing the same would join silently and take half the connections.
    let running = Server::start();
    let port = running.addr(Mode::Plain).port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--bind", "127.0.0.1", "--port", &port, "--threads", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("could not bind 127.0.0.1:{port}: Address already in use")), "{err}");
    assert_eq!(redis::cmd("PING").query::<String>(&mut running.conn(Mode::Plain)).unwrap(), "PONG");
    // The same port twice in one configuration.
    let port = common::free_port().to_string();
    let c = common::certs();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--bind", "127.0.0.1", "--port", &port, "--tls-port", &port])
        .args(["--tls-cert-file", &c.path("server.crt"), "--tls-key-file", &c.path("server.key")])
        .args(["--tls-ca-cert-file", &c.path("ca.crt")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Address already in use"), "{err}");
    // Neither port: nothing to serve (CONFIG SET may turn both off later; startup may not).
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--tls-port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Configured to not listen anywhere, exiting."), "{err}");
}

#[test]
fn sigterm_and_shutdown_exit_cleanly() {
    let server = Server::start();
    let mut c = server.conn(Mode::Tls);
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    assert_eq!(server.terminate(), Some(0));

    let mut server = Server::start();
    let mut c = server.conn(Mode::Plain);
    let idle = server.conn(Mode::Tls);
    assert!(redis::cmd("SHUTDOWN").query::<()>(&mut c).is_err(), "SHUTDOWN closes without a reply");
    assert_eq!(server.wait_exit(), Some(0));
    assert!(server.log().contains("User requested shutdown"));
    drop(idle);
}

#[test]
fn single_thread_server() {
    let server = Server::with(Opts { threads: 1, ..Opts::default() });
    for mode in MODES {
        let mut c = server.conn(mode);
        let keys: Vec<String> = (0..100).map(|i| format!("one:{i}")).collect();
        let pairs: Vec<(String, usize)> = keys.iter().cloned().zip(0..).collect();
        let _: () = redis::cmd("MSET").arg(&pairs).query(&mut c).unwrap();
        let values: Vec<usize> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
        assert_eq!(values, (0..100).collect::<Vec<_>>());
    }
}

/// The server's CPU time so far (user and system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let hz: f64 = String::from_utf8_lossy(&hz.stdout).trim().parse().unwrap();
    ticks as f64 / hz
}

/// `executor-idle-poll-us`: an executor polls for more work before it sleeps only while it is
/// busy. At a light load (a request every 2 ms) it sleeps at once; polling 1 ms after each
/// request, as upstream glommio's `spin_before_park` did before every sleep, would spend about
/// half of the server's time polling. The same holds for two executors on one cpu, whose polls
/// yield the cpu on each turn: a yield that finds nothing else to run, or only the other
/// executor polling too, is idleness. Each light phase follows a burst that makes the
/// executors busy: they must notice that the load fell.
#[test]
fn an_executor_polls_for_work_only_while_busy() {
    let own_cpu = Opts { threads: 1, ..Opts::default() };
    let shared_cpu = Opts { threads: 2, ..Opts::default() }.arg("server-cpus", "0,0");
    for opts in [own_cpu, shared_cpu] {
        let server = Server::with(opts.arg("executor-idle-poll-us", "1000"));
        for mode in MODES {
            let mut c = server.conn(mode);
            let polled: Vec<String> =
                redis::cmd("CONFIG").arg("GET").arg("executor-idle-poll-us").query(&mut c).unwrap();
            assert_eq!(polled, ["executor-idle-poll-us", "1000"]);
            // The burst: pipelines of SETs on both shards for 200 ms (at most 400 of them).
            let burst = std::time::Instant::now();
            for round in 0..400 {
                if burst.elapsed() > std::time::Duration::from_millis(200) {
                    break;
                }
                let mut pipe = redis::pipe();
                for i in 0..100 {
                    pipe.cmd("SET").arg(format!("burst{i}")).arg(round).ignore();
                }
                let () = pipe.query(&mut c).unwrap();
            }
            let (start, cpu) = (std::time::Instant::now(), cpu_seconds(server.pid()));
            for i in 0..250 {
                // Keys on both shards, when there are two.
                let () = redis::cmd("SET").arg(format!("light{}", i % 4)).arg(i).query(&mut c).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let (cpu, wall) = (cpu_seconds(server.pid()) - cpu, start.elapsed().as_secs_f64());
            assert!(cpu < wall / 4.0, "{mode:?}: {cpu:.3} s of CPU in {wall:.3} s at a light load");
        }
    }
}

#[test]
fn redis_cli_plain_and_tls() {
    let server = Server::start();
    for mode in MODES {
        assert_eq!(server.cli(mode, &["SET", "cli:k", "hello world"]).trim(), "OK");
        assert_eq!(server.cli(mode, &["GET", "cli:k"]).trim(), "hello world");
        // Not on a terminal, redis-cli prints raw replies unless told --no-raw.
        assert_eq!(server.cli(mode, &["INCRBY", "cli:n", "5"]).trim(), "5");
        assert_eq!(server.cli(mode, &["MGET", "cli:k", "nokey"]), "hello world\n\n");
        assert_eq!(
            server.cli(mode, &["--no-raw", "MGET", "cli:k", "nokey"]),
            "1) \"hello world\"\n2) (nil)\n"
        );
        assert_eq!(server.cli(mode, &["--no-raw", "TTL", "nokey"]).trim(), "(integer) -2");
        assert!(server.cli(mode, &["DEL", "cli:k", "cli:n"]).contains('2'));
        assert!(server.cli(mode, &["-3", "HELLO", "3"]).contains("proto"));
    }
}

/// redis-benchmark (plain and --tls) runs every test with no errors against ferrokey.
#[test]
fn redis_benchmark_completes_without_errors() {
    let server = Server::start();
    let c = common::certs();
    for mode in MODES {
        let mut cmd = Command::new("redis-benchmark");
        cmd.args(["-h", "127.0.0.1", "-p", &server.addr(mode).port().to_string()]).args([
            "-t",
            "ping,set,get,incr,mset",
            "-n",
            "2000",
            "-c",
            "8",
            "-P",
            "4",
            "--csv",
        ]);
        if mode == Mode::Tls {
            cmd.args(c.tool_args());
        }
        let out = cmd.output().expect("redis-benchmark must be installed (apt-get install redis-tools)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode:?}: {stderr}");
        assert!(!stderr.contains("Error") && !stdout.contains("Error"), "{mode:?}: {stdout}\n{stderr}");
        // redis-benchmark reads `save` and `appendonly` first, and warns when it cannot.
        assert!(!stdout.contains("WARNING") && !stderr.contains("WARNING"), "{mode:?}: {stdout}\n{stderr}");
        for test in ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"] {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("\"{test}\"")))
                .unwrap_or_else(|| panic!("{mode:?}: no {test} in\n{stdout}"));
            let rps: f64 = line.split(',').nth(1).unwrap().trim_matches('"').parse().unwrap();
            assert!(rps > 0.0, "{line}");
        }
    }
    let mut c = server.conn(Mode::Plain);
    let counter: i64 = redis::cmd("GET").arg("counter:__rand_int__").query(&mut c).unwrap();
    assert_eq!(counter, 2 * 2000, "every INCR of both runs landed");
}

/// `tcp-keepalive` reaches every accepted socket, plain and TLS: inherited from the listening
/// socket, or set on the socket itself once CONFIG SET has changed it. The kernel's keepalive
/// timer runs on the server's side of a connection exactly when it is on.
#[test]
fn tcp_keepalive_reaches_accepted_sockets() {
    let server = Server::with(Opts::default().arg("tcp-keepalive", "60"));
    let mut admin = server.conn(Mode::Plain);
    for mode in MODES {
        for (setting, on) in [("60", true), ("0", false), ("120", true), ("60", true)] {
            let _: () =
                redis::cmd("CONFIG").arg("SET").arg("tcp-keepalive").arg(setting).query(&mut admin).unwrap();
            let mut c = server.conn(mode);
            let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
            let addr = info.split(' ').find_map(|f| f.strip_prefix("addr=")).unwrap();
            let client_port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
            let timer = server_side_timer(server.addr(mode).port(), client_port);
            assert_eq!(timer == 2, on, "{mode:?} tcp-keepalive {setting}: timer {timer}");
        }
    }
}

#[test]
fn disable_thp_keeps_transparent_huge_pages_out_of_the_server() {
    for (setting, thp) in [("yes", "0"), ("no", "1")] {
        let server = Server::with(Opts::default().arg("disable-thp", setting));
        for mode in MODES {
            let mut c = server.conn(mode);
            let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("disable-thp").query(&mut c).unwrap();
            assert_eq!(got, ["disable-thp", setting], "{mode:?}");
            let err =
                redis::cmd("CONFIG").arg("SET").arg("disable-thp").arg("no").query::<()>(&mut c).unwrap_err();
            assert!(err.to_string().contains("can't set immutable config"), "{mode:?}: {err}");
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
        let enabled = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(str::trim);
        assert_eq!(enabled, Some(thp), "disable-thp {setting}");
    }
}

/// The timer running on the server's socket of the connection from `client_port` to
/// `server_port` (/proc/net/tcp's `tr`: 0 none, 1 retransmit, 2 keepalive), once the last reply
/// is acknowledged (a retransmit timer runs until then; waited for, at most 5 s).
fn server_side_timer(server_port: u16, client_port: u16) -> u32 {
    let (local, remote) = (format!(":{server_port:04X}"), format!(":{client_port:04X}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let timer = table
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 5 && f[1].ends_with(&local) && f[2].ends_with(&remote))
            .map(|f| u32::from_str_radix(f[5].split(':').next().unwrap(), 16).unwrap())
            .expect("the connection is in /proc/net/tcp");
        if timer != 1 || std::time::Instant::now() > deadline {
            return timer;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The directives a redis.conf sets (its uncommented lines), lowercase.
fn directives_of(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_ascii_lowercase))
        .filter(|n| n != "include")
        .collect();
    names.dedup();
    names
}

#[test]
fn debians_stock_redis_conf_loads_and_every_directive_is_in_config_get() {
    let stock = "/etc/redis/redis.conf";
    assert!(std::path::Path::new(stock).exists(), "redis-server's package installs {stock}");
    // As Debian's unit runs it (`--supervised systemd --daemonize no`), with the test's own
    // paths; the stock file comes in through an `include`, then a glob include of a directory.
    let dir = std::env::temp_dir().join(format!("ferrokey-debian-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(dir.join("conf.d/10-local.conf"), "maxmemory-clients 5%\nhash-max-ziplist-entries 100\n")
        .unwrap();
    let main =
        temp_file("debian.conf", &format!("include {stock}\ninclude {}/conf.d/*.conf\n", dir.display()));
    let pidfile = dir.join("redis.pid");
    let server = Server::with(
        Opts { config_file: Some(main), ..Opts::default() }
            .arg("daemonize", "no")
            .arg("supervised", "systemd")
            .arg("logfile", "")
            .arg("pidfile", pidfile.to_str().unwrap()),
    );
    let mut c = server.conn(Mode::Tls);
    for name in directives_of(stock) {
        let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(&name).query(&mut c).unwrap();
        assert_eq!(got.first(), Some(&name), "CONFIG GET {name}: {got:?}");
    }
    // The include after the stock file, through an alias; the alias is listed too.
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("hash-max-*-entries").query(&mut c).unwrap();
    assert_eq!(got, ["hash-max-listpack-entries", "100", "hash-max-ziplist-entries", "100"]);
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory-clients").query(&mut c).unwrap();
    assert_eq!(got[1], "5%");
    // What ferrokey has no use for loads with one notice each; supervision without systemd
    // says so, as Redis.
    assert!(server.wait_log("'lazyfree-lazy-eviction' is accepted for redis.conf compatibility"));
    assert_eq!(server.log().matches("'activerehashing' is accepted").count(), 1);
    assert!(server.wait_log("NOTIFY_SOCKET not found"));
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap().trim(), server.pid().to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn supervised_systemd_notifies_readiness_and_daemonize_detaches() {
    use std::os::unix::net::UnixDatagram;
    let dir = std::env::temp_dir().join(format!("ferrokey-supervise-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let (port, pidfile, logfile) = (common::free_port(), dir.join("ferrokey.pid"), dir.join("ferrokey.log"));
    // daemonize yes: the command returns at once (its parent exits); the daemon serves.
    let status = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--threads", "1", "--dir"])
        .arg(&dir)
        .args(["--daemonize", "yes", "--supervised", "systemd", "--pidfile"])
        .arg(&pidfile)
        .arg("--logfile")
        .arg(&logfile)
        .env("NOTIFY_SOCKET", &socket_path)
        .status()
        .unwrap();
    assert!(status.success());
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("no readiness notification from the daemon");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.contains("READY=1"), "{message}");
    // Ready means listening, and the pidfile names the daemon.
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut c = client.get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
    let gone = (0..1000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        // Gone, or a zombie its new parent has not reaped yet.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| stat.contains(") Z "))
    });
    assert!(gone, "the daemon did not exit");
    let n = socket.recv(&mut buf).expect("no stopping notification from the daemon");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.contains("STOPPING=1"), "{message}");
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(log.contains("Supervised by systemd"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `f` until it returns something (bounded).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn sighup_reopens_the_log_file_and_stops_nothing() {
    let dir = std::env::temp_dir().join(format!("ferrokey-logrotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("ferrokey.log");
    // Started by hand: with a log file, nothing is on standard output to wait for.
    let port = common::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--threads", "2", "--save", ""])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(&log)
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let _server = Stop(child);
    eventually("the first log file says ready", || {
        std::fs::read_to_string(&log).ok().filter(|l| l.contains("Ready to accept connections"))
    });
    // logrotate's create mode: the file is moved away, then the server is told.
    let rotated = dir.join("ferrokey.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    eventually("a new log file", || std::fs::read_to_string(&log).ok().filter(|l| l.contains("reopened")));
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut c = client.get_connection().unwrap();
    let () = redis::cmd("SAVE").query(&mut c).unwrap();
    let new = eventually("the save in the new file", || {
        std::fs::read_to_string(&log).ok().filter(|l| l.contains("DB saved on disk"))
    });
    assert!(!new.contains("Ready to accept"), "{new}");
    assert!(!std::fs::read_to_string(&rotated).unwrap().contains("DB saved on disk"));
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    drop(_server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn syslog_gets_each_line_with_its_facility_and_level() {
    use std::os::unix::net::UnixDatagram;
    let dir = std::env::temp_dir().join(format!("ferrokey-syslog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.sock");
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let opts = Opts::default()
        .arg("syslog-enabled", "yes")
        .arg("syslog-socket", path.to_str().unwrap())
        .arg("syslog-ident", "fk-test")
        .arg("syslog-facility", "local3");
    let server = Server::with(opts);
    let mut buf = [0u8; 4096];
    let ready = (0..500)
        .map_while(|_| socket.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()))
        .find(|line| line.contains("Ready to accept connections"))
        .expect("the ready line on syslog");
    // local3 (19) at notice (5): 19 * 8 + 5.
    let prefix = format!("<157>fk-test[{}]: ", server.pid());
    assert!(ready.starts_with(&prefix), "{ready}");
    // A warning (the stop a signal asks for): local3 at 4.
    let status = Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let stop = (0..500)
        .map_while(|_| socket.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()))
        .find(|line| line.contains("scheduling shutdown"))
        .expect("the shutdown warning on syslog");
    assert!(stop.starts_with(&format!("<156>fk-test[{}]: ", server.pid())), "{stop}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oom_score_adj_sets_the_score_for_the_role() {
    let read = |pid: u32| -> i32 {
        std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap().trim().parse().unwrap()
    };
    let base = read(std::process::id());
    let server = Server::with(
        Opts::default().arg("oom-score-adj", "absolute").arg("oom-score-adj-values", "100 200 800"),
    );
    let pid = server.pid();
    eventually("the absolute score", || (read(pid) == 100).then_some(()));
    let mut c = server.conn(Mode::Plain);
    let () =
        redis::cmd("CONFIG").arg("SET").arg("oom-score-adj-values").arg("300 400 800").query(&mut c).unwrap();
    assert_eq!(read(pid), 300);
    let refused: redis::RedisResult<()> =
        redis::cmd("CONFIG").arg("SET").arg("oom-score-adj-values").arg("1 2").query(&mut c);
    assert!(refused.unwrap_err().to_string().contains("oom-score-adj-values"));
    assert_eq!(read(pid), 300);
    let () = redis::cmd("CONFIG").arg("SET").arg("oom-score-adj").arg("relative").query(&mut c).unwrap();
    assert_eq!(read(pid), (base + 300).clamp(-1000, 1000));
    // A replica takes the second value.
    let primary = Server::start();
    let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(primary.port).query(&mut c).unwrap();
    eventually("the replica's score", || (read(pid) == (base + 400).clamp(-1000, 1000)).then_some(()));
    let () = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(&mut c).unwrap();
    eventually("the primary's score again", || (read(pid) == (base + 300).clamp(-1000, 1000)).then_some(()));
    let () = redis::cmd("CONFIG").arg("SET").arg("oom-score-adj").arg("no").query(&mut c).unwrap();
    assert_eq!(read(pid), base);
}

/// LOLWUT's text from `c` with `args`, its version written as `<v>`.
fn lolwut(c: &mut common::Raw, args: &[&str], version: &str) -> String {
    let mut request = vec![&b"LOLWUT"[..]];
    request.extend(args.iter().map(|a| a.as_bytes()));
    let reply = String::from_utf8_lossy(&c.request(&request)).into_owned();
    // A bulk string's body (its length depends on the version).
    let body = match reply.strip_prefix('$') {
        Some(rest) => rest.split_once("\r\n").map_or("", |(_, b)| b).trim_end_matches("\r\n").to_owned(),
        None => reply,
    };
    body.replace(&format!("Redis ver. {version}"), "Redis ver. <v>")
}

#[test]
fn lolwut_draws_what_redis_draws() {
    let redis = common::RedisServer::start();
    let mut theirs = redis.raw();
    let info = String::from_utf8_lossy(&theirs.request(&[b"INFO", b"server"])).into_owned();
    let their_version =
        info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap().trim().to_owned();
    let server = Server::start();
    for mode in MODES {
        let mut ours = server.raw(mode);
        // The version alone, and the errors.
        for args in [&[][..], &["VERSION", "7"], &["VERSION", "x"], &["VERSION", "5", "x"]] {
            assert_eq!(
                lolwut(&mut ours, args, "7.0.0"),
                lolwut(&mut theirs, args, &their_version),
                "{args:?}"
            );
        }
        // Schotter: the rows above the first displaced squares are the same, pixel for pixel;
        // the size and the caption too.
        for args in [&["VERSION", "5"][..], &["VERSION", "5", "40", "4", "6"]] {
            let (o, t) = (lolwut(&mut ours, args, "7.0.0"), lolwut(&mut theirs, args, &their_version));
            let (o, t): (Vec<&str>, Vec<&str>) = (o.lines().collect(), t.lines().collect());
            assert_eq!(o.len(), t.len(), "{args:?}");
            assert_eq!(o.last(), t.last());
            assert_eq!(o[..4], t[..4], "{args:?}");
            assert!(o.iter().zip(&t).all(|(a, b)| a.chars().count() == b.chars().count()));
        }
        // The skyline: the same size in cells of the same four grays, and the caption.
        let (o, t) = (
            lolwut(&mut ours, &["VERSION", "6", "30", "8"], "7.0.0"),
            lolwut(&mut theirs, &["VERSION", "6", "30", "8"], &their_version),
        );
        let cells = |s: &str| s.lines().map(|l| l.matches(" \x1b[0m").count()).collect::<Vec<_>>();
        assert_eq!(cells(&o), cells(&t));
        assert_eq!(o.lines().rev().take(2).collect::<Vec<_>>(), t.lines().rev().take(2).collect::<Vec<_>>());
        for gray in o.split("\x1b[").filter(|p| p.ends_with("m ")) {
            assert!(["0;30;40m ", "0;90;100m ", "0;37;47m ", "0;97;107m "].contains(&gray), "{gray:?}");
        }
    }
}
