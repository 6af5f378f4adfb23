//! A cluster whose processes live in their own Linux network namespaces, joined by a
//! bridge, so a test can cut one broker off from its peers and the mini-zookeeper (while
//! test clients in the root namespace still reach it) and heal the cut.
//!
//! Addresses are in 10.203.0.0/24, inside namespaces this test creates and deletes:
//! test clients .1, mini-zookeeper .2, broker i .(10+i). The bridge lives in a namespace
//! of its own too, so nothing touches the machine's own network stack (whose firewall may
//! drop traffic to unknown subnets, as on CI machines with a closed network). Test
//! threads join the clients' namespace with `setns` (network namespaces are per thread).
//! A cut adds blackhole routes in both directions between the broker and everyone but
//! the clients. Needs root and iproute2.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{wait_until, Process, GREGOR};

const SUBNET: &str = "10.203.0";

/// One namespace cluster at a time per test binary: they share the subnet.
static NETNS: Mutex<()> = Mutex::new(());

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

pub struct Host {
    pub ns: String,
    pub addr: String,
}

/// Puts the calling thread into a network namespace until dropped. Threads spawned
/// meanwhile inherit it.
pub struct NamespaceGuard {
    previous: std::fs::File,
}

impl NamespaceGuard {
    pub fn enter(ns: &str) -> NamespaceGuard {
        let previous = std::fs::File::open("/proc/thread-self/ns/net").expect("own namespace");
        let target = std::fs::File::open(format!("/run/netns/{ns}"))
            .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
        set_thread_namespace(&target);
        NamespaceGuard { previous }
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        set_thread_namespace(&self.previous);
    }
}

fn set_thread_namespace(ns: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own; it changes only this thread.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

pub struct NetCluster {
    pub dir: tempfile::TempDir,
    /// The namespace holding the bridge that joins all the others.
    switch_ns: String,
    tag: String,
    pub clients: Host,
    pub zk_host: Host,
    pub zk: Process,
    pub hosts: Vec<Host>,
    pub brokers: Vec<Process>,
    cut: Vec<usize>,
    _exclusive: MutexGuard<'static, ()>,
}

impl NetCluster {
    /// Checks that namespaces can be made here (root, iproute2).
    pub fn available() -> Result<(), String> {
        static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = format!("gj-probe-{}-{n}", std::process::id());
        ip(&["netns", "add", &probe])?;
        ip(&["netns", "del", &probe])
    }

    pub fn start(brokers: usize, broker_extra: &[(&str, &str)]) -> NetCluster {
        Self::start_with(brokers, broker_extra, InterBroker::Plaintext)
    }

    /// Like `start`; with `InterBroker::SaslSsl` the brokers replicate over a second
    /// listener, INTERNAL (SASL_SSL, SCRAM-SHA-512 as `User:broker`, certificates for the
    /// brokers' addresses from a test CA), while clients keep PLAINTEXT on :9092. The
    /// brokers' SCRAM credential is stored in ZooKeeper before the first broker starts,
    /// as `kafka-configs --zookeeper` would.
    pub fn start_with(
        brokers: usize,
        broker_extra: &[(&str, &str)],
        inter_broker: InterBroker,
    ) -> NetCluster {
        // A test that panicked while holding the lock leaves nothing behind (Drop cleans
        // up), so a poisoned lock is still usable.
        let exclusive = NETNS.lock().unwrap_or_else(|e| e.into_inner());
        let tag = format!("{:x}", std::process::id() % 0xfff);
        let switch_ns = format!("gj{tag}-sw");
        // A leftover from a crashed run with the same tag would clash: clear it.
        let _ = ip(&["netns", "del", &switch_ns]);
        must(&["netns", "add", &switch_ns]);
        must(&["-n", &switch_ns, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &switch_ns, "link", "set", "br0", "up"]);
        let clients = make_host(&tag, "clients", 1, &switch_ns);
        let dir = tempfile::Builder::new()
            .prefix("gregor-jepsen-")
            .tempdir()
            .unwrap();
        let zk_host = make_host(&tag, "zk", 2, &switch_ns);
        let zk_data = dir.path().join("zookeeper");
        let zk_config = dir.path().join("zookeeper.toml");
        std::fs::write(
            &zk_config,
            format!(
                "client_port = 2181\nclient_address = \"{}\"\ndata_dir = \"{}\"\ntick_time_ms = 500\nmin_session_timeout_ms = 1000\n",
                zk_host.addr,
                zk_data.display()
            ),
        )
        .unwrap();
        let zk = spawn_in(
            &zk_host,
            "zookeeper",
            &[
                "zookeeper".into(),
                "--config".into(),
                zk_config.display().to_string(),
            ],
            dir.path(),
        );
        let mut c = NetCluster {
            dir,
            switch_ns,
            tag,
            clients,
            zk_host,
            zk,
            hosts: Vec::new(),
            brokers: Vec::new(),
            cut: Vec::new(),
            _exclusive: exclusive,
        };
        wait_until(
            Duration::from_secs(30),
            "zookeeper in its namespace",
            || {
                let _in = NamespaceGuard::enter(&c.clients.ns);
                std::net::TcpStream::connect((c.zk_host.addr.as_str(), 2181)).is_ok()
            },
        );
        let internal = match inter_broker {
            InterBroker::Plaintext => Vec::new(),
            InterBroker::SaslSsl => c.internal_listener_config(brokers),
        };
        for i in 1..=brokers {
            let host = make_host(&c.tag, &format!("b{i}"), 10 + i as u8, &c.switch_ns);
            let config = c.dir.path().join(format!("broker-{i}.toml"));
            let listeners = match inter_broker {
                InterBroker::Plaintext => format!("PLAINTEXT://{}:9092", host.addr),
                InterBroker::SaslSsl => format!(
                    "PLAINTEXT://{0}:9092,INTERNAL://{0}:{INTERNAL_PORT}",
                    host.addr
                ),
            };
            let mut text = format!(
                "broker.id = {i}\nlisteners = \"{listeners}\"\nlog.dirs = \"{}\"\nzookeeper.connect = \"{}:2181\"\nzookeeper.session.timeout.ms = 6000\n",
                c.dir.path().join(format!("broker-{i}")).display(),
                c.zk_host.addr
            );
            for (k, v) in broker_extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain(internal.iter().cloned())
            {
                text.push_str(&format!("\"{k}\" = \"{}\"\n", toml_escape(&v)));
            }
            std::fs::write(&config, text).unwrap();
            let p = spawn_in(
                &host,
                &format!("broker-{i}"),
                &[
                    "broker".into(),
                    "--config".into(),
                    config.display().to_string(),
                ],
                c.dir.path(),
            );
            c.hosts.push(host);
            c.brokers.push(p);
        }
        c
    }

    /// The INTERNAL listener's keys, after writing its certificates and storing the
    /// brokers' SCRAM credential in ZooKeeper.
    fn internal_listener_config(&self, brokers: usize) -> Vec<(String, String)> {
        use gregor::security::sasl::scram::{random_salt, ScramMechanism};
        let names: Vec<String> = (1..=brokers)
            .map(|i| format!("{SUBNET}.{}", 10 + i))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (_, ca, keystore) =
            gregor::security::certs::write_broker_set(&self.dir.path().join("certs"), &names)
                .expect("test certificates");
        let password = "broker-secret";
        let m = ScramMechanism::Sha512;
        let salt = random_salt();
        let credential = m.credential(
            &salt,
            &m.salted_password(password.as_bytes(), &salt, 4096),
            4096,
        );
        let zk = format!("{}:2181", self.zk_host.addr);
        let _in = NamespaceGuard::enter(&self.clients.ns);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let handle = gregor::coordination::session::connect_once(
                    &zk,
                    Duration::from_secs(10),
                    &Default::default(),
                )
                .await
                .expect("zookeeper");
                gregor::security::credentials::alter_user(
                    &handle,
                    "broker",
                    &[(m, credential)],
                    &[],
                )
                .await
                .expect("store the brokers' SCRAM credential");
            });
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        vec![
            kv("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL"),
            kv("inter.broker.listener.name", "INTERNAL"),
            kv("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
            kv("listener.name.internal.sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            kv("listener.name.internal.ssl.keystore.location", &keystore.display().to_string()),
            kv("listener.name.internal.ssl.truststore.location", &ca.display().to_string()),
            kv(
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
                &format!("org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"{password}\";"),
            ),
        ]
    }

    /// Established TCP connections broker `i` has open to `port` (on any peer).
    pub fn connections_to(&self, i: usize, port: u16) -> usize {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.hosts[i].ns,
                "ss",
                "-tnH",
                "state",
                "established",
            ])
            .arg(format!("( dport = :{port} )"))
            .output()
            .expect("ss");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    pub fn broker_addr(&self, i: usize) -> String {
        format!("{}:9092", self.hosts[i].addr)
    }

    pub fn bootstrap(&self) -> Vec<String> {
        (0..self.hosts.len()).map(|i| self.broker_addr(i)).collect()
    }

    /// Cuts broker `i` off from its peers and the mini-zookeeper, both directions.
    pub fn cut(&mut self, i: usize) {
        let victim = &self.hosts[i];
        for (j, other) in self
            .hosts
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .chain(std::iter::once((usize::MAX, &self.zk_host)))
        {
            let _ = j;
            must(&[
                "-n",
                &victim.ns,
                "route",
                "add",
                "blackhole",
                &format!("{}/32", other.addr),
            ]);
            must(&[
                "-n",
                &other.ns,
                "route",
                "add",
                "blackhole",
                &format!("{}/32", victim.addr),
            ]);
        }
        self.cut.push(i);
    }

    pub fn heal(&mut self) {
        for i in std::mem::take(&mut self.cut) {
            let victim = &self.hosts[i];
            for other in self
                .hosts
                .iter()
                .filter(|h| h.ns != victim.ns)
                .chain(std::iter::once(&self.zk_host))
            {
                let _ = ip(&[
                    "-n",
                    &victim.ns,
                    "route",
                    "del",
                    "blackhole",
                    &format!("{}/32", other.addr),
                ]);
                let _ = ip(&[
                    "-n",
                    &other.ns,
                    "route",
                    "del",
                    "blackhole",
                    &format!("{}/32", victim.addr),
                ]);
            }
        }
    }

    pub fn is_cut(&self, i: usize) -> bool {
        self.cut.contains(&i)
    }

    pub fn logs_tail(&self) -> String {
        let mut out = format!("--- zookeeper ---\n{}\n", self.zk.log_tail(20));
        for p in &self.brokers {
            out.push_str(&format!("--- {} ---\n{}\n", p.name, p.log_tail(40)));
        }
        out
    }
}

/// The brokers' replication listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterBroker {
    /// Replication over the clients' PLAINTEXT listener.
    Plaintext,
    /// Replication over INTERNAL (SASL_SSL, SCRAM-SHA-512) on this port.
    SaslSsl,
}

pub const INTERNAL_PORT: u16 = 9093;

fn toml_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A namespace with one veth: `eth0` inside it, `v-NAME` on the switch's bridge.
/// Link names are per namespace, so runs with different tags never clash.
fn make_host(tag: &str, name: &str, octet: u8, switch_ns: &str) -> Host {
    let ns = format!("gj{tag}-{name}");
    let port = format!("v-{name}");
    let _ = ip(&["netns", "del", &ns]);
    must(&["netns", "add", &ns]);
    must(&[
        "-n", switch_ns, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ]);
    must(&["-n", switch_ns, "link", "set", &port, "master", "br0"]);
    must(&["-n", switch_ns, "link", "set", &port, "up"]);
    let addr = format!("{SUBNET}.{octet}");
    must(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{addr}/24"),
        "dev",
        "eth0",
    ]);
    must(&["-n", &ns, "link", "set", "eth0", "up"]);
    must(&["-n", &ns, "link", "set", "lo", "up"]);
    Host { ns, addr }
}

fn spawn_in(host: &Host, name: &str, args: &[String], dir: &Path) -> Process {
    let mut full = vec![
        "netns".to_string(),
        "exec".to_string(),
        host.ns.clone(),
        GREGOR.to_string(),
    ];
    full.extend(args.iter().cloned());
    Process::spawn(
        name,
        &PathBuf::from("ip"),
        &full,
        dir.join(format!("{name}.log")),
    )
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs_tail());
            if std::env::var_os("GREGOR_KEEP_TEST_DIRS").is_some() {
                let kept =
                    std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir")).keep();
                eprintln!("test directory kept: {}", kept.display());
            }
        }
        for p in &mut self.brokers {
            p.kill();
        }
        self.zk.kill();
        for h in self.hosts.iter().chain([&self.zk_host, &self.clients]) {
            let _ = ip(&["netns", "del", &h.ns]);
        }
        let _ = ip(&["netns", "del", &self.switch_ns]);
    }
}
