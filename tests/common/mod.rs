//! Test harness: real `gregor zookeeper` (or Apache ZooKeeper) and `gregor broker`
//! processes on free loopback ports, each with its own data directory, plus a small
//! Kafka protocol client. Conditions are awaited by polling with deadlines, never by
//! fixed sleeps.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod authz;
pub mod kafka;
pub mod netns;
pub mod txn;

pub const GREGOR: &str = env!("CARGO_BIN_EXE_gregor");

/// A free TCP port on loopback (bind to 0, read, release), never one handed out before
/// in this test binary: the kernel may offer a released port again before the process it
/// was meant for has bound it (tests running in parallel, or brokers of one cluster).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Runs the `gregor` CLI to completion with `stdin` (if any) as its input: whether it
/// succeeded, and its stdout followed by its stderr.
pub fn run_cli(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(GREGOR)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gregor");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait for gregor");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Process {
    pub name: String,
    pub child: Option<Child>,
    pub log: PathBuf,
    /// `ulimit -n` for the process (soft and hard), applied at each start.
    pub nofile: Option<u64>,
    args: Vec<String>,
    program: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, program: &Path, args: &[String], log: PathBuf) -> Process {
        let mut p = Process {
            name: name.to_string(),
            child: None,
            log,
            nofile: None,
            args: args.to_vec(),
            program: program.to_path_buf(),
        };
        p.start();
        p
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let mut command = Command::new(&self.program);
        if let Some(limit) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                command.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("GREGOR_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Peak resident memory so far (VmHWM from /proc), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("process status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status");
        kb * 1024
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for exit.
    pub fn terminate(&mut self, timeout: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + timeout;
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!(
                        "{} did not exit within {timeout:?} after SIGTERM",
                        self.name
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which coordination service a test cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordinator {
    /// `gregor zookeeper`.
    Gregor,
    /// Apache ZooKeeper from Debian's `zookeeper` package.
    Apache,
}

pub struct ZooKeeper {
    pub port: u16,
    pub process: Process,
    /// The brokers' chroot (`host:port/chroot`), empty for none.
    pub chroot: String,
}

impl ZooKeeper {
    pub fn start(kind: Coordinator, dir: &Path) -> ZooKeeper {
        let port = free_port();
        let data = dir.join("zookeeper");
        std::fs::create_dir_all(&data).unwrap();
        let process = match kind {
            Coordinator::Gregor => {
                let config = dir.join("zookeeper.toml");
                std::fs::write(
                    &config,
                    format!("client_port = {port}\ndata_dir = \"{}\"\ntick_time_ms = 500\nmin_session_timeout_ms = 1000\n", data.display()),
                )
                .unwrap();
                Process::spawn(
                    "zookeeper",
                    Path::new(GREGOR),
                    &[
                        "zookeeper".into(),
                        "--config".into(),
                        config.display().to_string(),
                    ],
                    dir.join("zookeeper.log"),
                )
            }
            Coordinator::Apache => {
                let cfg = dir.join("zoo.cfg");
                std::fs::write(
                    &cfg,
                    format!("tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n", data.display()),
                )
                .unwrap();
                Process::spawn(
                    "zookeeper",
                    Path::new("java"),
                    &[
                        "-cp".into(),
                        "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar".into(),
                        "org.apache.zookeeper.server.ZooKeeperServerMain".into(),
                        cfg.display().to_string(),
                    ],
                    dir.join("zookeeper.log"),
                )
            }
        };
        let zk = ZooKeeper {
            port,
            process,
            chroot: String::new(),
        };
        wait_until(
            Duration::from_secs(30),
            "zookeeper to accept connections",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        zk
    }

    /// The brokers' `zookeeper.connect` (with the chroot, if any).
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}{}", self.port, self.chroot)
    }

    /// The server itself, without the chroot.
    pub fn server_address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

pub struct Broker {
    pub id: i32,
    pub port: u16,
    pub process: Process,
    pub data: PathBuf,
    pub config: PathBuf,
}

impl Broker {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A test cluster: one coordinator and `n` brokers. Dropping it kills everything; the
/// temp directory (data, configs, logs) is kept when the test panicked and
/// `GREGOR_KEEP_TEST_DIRS` is set.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub zk: ZooKeeper,
    pub brokers: Vec<Broker>,
}

impl Cluster {
    pub fn start(kind: Coordinator, n: usize, extra: &[(&str, &str)]) -> Cluster {
        Self::start_chrooted(kind, n, "", extra)
    }

    /// As [`Cluster::start`], the brokers under `chroot` (e.g. `/kafka`) in ZooKeeper.
    pub fn start_chrooted(
        kind: Coordinator,
        n: usize,
        chroot: &str,
        extra: &[(&str, &str)],
    ) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("gregor-test-")
            .tempdir()
            .unwrap();
        let mut zk = ZooKeeper::start(kind, dir.path());
        zk.chroot = chroot.to_string();
        let mut cluster = Cluster {
            dir,
            zk,
            brokers: Vec::new(),
        };
        for id in 1..=n as i32 {
            cluster.add_broker(id, extra);
        }
        for i in 0..n {
            cluster.wait_for_broker(i);
        }
        cluster
    }

    pub fn add_broker(&mut self, id: i32, extra: &[(&str, &str)]) {
        let port = free_port();
        let data = self.dir.path().join(format!("broker-{id}"));
        let config = self.dir.path().join(format!("broker-{id}.toml"));
        let mut text = format!(
            "broker.id = {id}\nlisteners = \"PLAINTEXT://127.0.0.1:{port}\"\nlog.dirs = \"{}\"\nzookeeper.connect = \"{}\"\nzookeeper.session.timeout.ms = 6000\noffsets.topic.replication.factor = 1\ngroup.initial.rebalance.delay.ms = 0\n",
            data.display(),
            self.zk.connect_string()
        );
        for (k, v) in extra {
            text.push_str(&format!("\"{k}\" = \"{v}\"\n"));
        }
        std::fs::write(&config, text).unwrap();
        let process = Process::spawn(
            &format!("broker-{id}"),
            Path::new(GREGOR),
            &[
                "broker".into(),
                "--config".into(),
                config.display().to_string(),
            ],
            self.dir.path().join(format!("broker-{id}.log")),
        );
        self.brokers.push(Broker {
            id,
            port,
            process,
            data,
            config,
        });
    }

    /// Waits until broker `i` accepts connections and answers Metadata listing itself.
    pub fn wait_for_broker(&mut self, i: usize) {
        let addr = self.brokers[i].addr();
        let id = self.brokers[i].id;
        let name = self.brokers[i].process.name.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut c) = kafka::Client::connect(&addr) {
                if let Ok(md) = c.metadata(None) {
                    if md.brokers.iter().any(|b| b.node_id.0 == id) {
                        return;
                    }
                }
            }
            if !self.brokers[i].process.is_running() {
                panic!("{name} exited:\n{}", self.brokers[i].process.log_tail(40));
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready:\n{}",
                self.brokers[i].process.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| b.addr())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn client(&self, i: usize) -> kafka::Client {
        kafka::Client::connect(&self.brokers[i].addr()).expect("connect")
    }

    pub fn broker_index(&self, id: i32) -> usize {
        self.brokers
            .iter()
            .position(|b| b.id == id)
            .expect("broker id")
    }

    pub fn dump_logs(&self) -> String {
        let mut out = format!("--- zookeeper ---\n{}\n", self.zk.process.log_tail(30));
        for b in &self.brokers {
            out.push_str(&format!(
                "--- broker {} ---\n{}\n",
                b.id,
                b.process.log_tail(60)
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.dump_logs());
        }
        for b in &mut self.brokers {
            b.process.kill();
        }
        self.zk.process.kill();
    }
}
