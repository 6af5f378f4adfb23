//! README's first command: `gregor cluster` starts a mini-zookeeper and brokers, the CLI
//! creates, describes, produces and consumes, and Ctrl-C stops everything cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, run_cli as gregor, GREGOR};

/// True when every port can be bound on loopback right now.
fn all_free(ports: &[i32]) -> bool {
    let mut held = Vec::new();
    for &p in ports {
        let Some(p) = u16::try_from(p).ok().filter(|p| *p > 0) else {
            return false;
        };
        match std::net::TcpListener::bind(("127.0.0.1", p)) {
            Ok(l) => held.push(l),
            Err(_) => return false,
        }
    }
    true
}

/// A mini-zookeeper port and a broker base port such that every port `gregor cluster`
/// derives from them is free: the brokers' ports, their metrics (9404 + base - 9092 + i)
/// and console (8080 + base - 9092 + i) ports, the mini-zookeeper's metrics port
/// (7000 + zk - 2181).
fn cluster_ports(brokers: i32) -> (u16, u16) {
    for _ in 0..200 {
        let (zk, base) = (i32::from(free_port()), i32::from(free_port()));
        let mut ports = vec![zk, zk - 2181 + 7000];
        for i in 0..brokers {
            ports.extend([base + i, base + i - 9092 + 9404, base + i - 9092 + 8080]);
        }
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() == ports.len() && all_free(&ports) {
            return (zk as u16, base as u16);
        }
    }
    panic!("no free set of ports for a cluster");
}

#[test]
fn cluster_command_serves_the_cli_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (zk_port, base) = cluster_ports(3);
    let zk_port = zk_port.to_string();
    let mut cluster = Command::new(GREGOR)
        .args(["cluster", "--brokers", "3", "--data"])
        .arg(dir.path())
        .args([
            "--zookeeper-port",
            &zk_port,
            "--base-port",
            &base.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(cluster.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut bootstrap = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("gregor cluster exited before it was up");
        }
        if let Some(rest) = line.trim().strip_prefix("bootstrap servers:") {
            bootstrap = rest.trim().to_string();
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert_eq!(
        bootstrap.split(',').count(),
        3,
        "bootstrap line: {bootstrap}"
    );
    let b = bootstrap.split(',').next().unwrap();

    let (ok, text) = gregor(
        &[
            "topics",
            "--bootstrap-server",
            b,
            "create",
            "cli",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
        None,
    );
    assert!(ok, "{text}");
    let input: String = (0..30)
        .map(|i| format!("key{}:value{i}\n", i % 5))
        .collect();
    let (ok, text) = gregor(
        &[
            "produce",
            "--bootstrap-server",
            b,
            "--topic",
            "cli",
            "--key-separator",
            ":",
        ],
        Some(&input),
    );
    assert!(ok, "{text}");
    let (ok, text) = gregor(
        &[
            "consume",
            "--bootstrap-server",
            b,
            "--topic",
            "cli",
            "--from-beginning",
            "--max-messages",
            "30",
            "--print-key",
        ],
        None,
    );
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("key")).collect();
    assert_eq!(lines.len(), 30, "{text}");
    for i in 0..30 {
        assert!(
            lines.contains(&format!("key{}\tvalue{i}", i % 5).as_str()),
            "value{i} missing"
        );
    }
    let (ok, text) = gregor(
        &["topics", "--bootstrap-server", b, "describe", "cli"],
        None,
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("PartitionCount: 3") && text.contains("ReplicationFactor: 3"),
        "{text}"
    );
    assert!(text.contains("Configs: retention.ms=3600000"), "{text}");
    assert_eq!(text.matches("Isr: ").count(), 3, "{text}");
    assert!(text.contains("Under-replicated partitions: none"), "{text}");

    // Ctrl-C: everything stops, brokers first.
    Command::new("kill")
        .args(["-INT", &cluster.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = cluster.try_wait().unwrap() {
            assert!(status.success(), "cluster exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "gregor cluster did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut cluster.stderr.take().unwrap(), &mut rest).unwrap();
    for name in ["broker-1", "broker-2", "broker-3", "zookeeper"] {
        assert!(
            rest.contains(&format!("{name} stopped")),
            "{name} not stopped cleanly: {rest}"
        );
    }
    assert!(
        std::net::TcpStream::connect(b).is_err(),
        "broker still listening"
    );
}
