//! Mini-zookeeper benchmark: acknowledged writes/s and write latency (p50/p99) with 1 and
//! 16 concurrent clients, and reads/s, through the `zookeeper-client` crate.
//!
//! `cargo bench --bench zookeeper` starts `gregor zookeeper` itself (temp data dir, free
//! port); `cargo bench --bench zookeeper -- 127.0.0.1:2181` measures any server there
//! (e.g. a real ZooKeeper). Loopback only; every loop is bounded in count.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, CreateMode};

const WRITES_SINGLE: usize = 2_000;
const WRITES_PER_CLIENT: usize = 500;
const READS_PER_CLIENT: usize = 5_000;
const CLIENTS: usize = 16;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn connect(addr: &str) -> Client {
    Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(addr)
        .await
        .expect("connect")
}

/// Runs `clients` writers doing `per_client` acknowledged setData each; returns
/// (ops/s, sorted latencies).
async fn writes(addr: &str, clients: usize, per_client: usize) -> (f64, Vec<Duration>) {
    let mut conns = Vec::new();
    for i in 0..clients {
        let c = connect(addr).await;
        let path = format!("/bench/w{i}");
        let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
        let _ = c.create(&path, b"", &opts).await;
        conns.push((c, path));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, path) in conns {
        tasks.push(tokio::spawn(async move {
            let payload = vec![b'x'; 100];
            let mut lat = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                c.set_data(&path, &payload, None).await.expect("setData");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    ((clients * per_client) as f64 / secs, all)
}

async fn reads(addr: &str, clients: usize, per_client: usize) -> f64 {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(connect(addr).await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in conns {
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_client {
                c.get_data("/bench/w0").await.expect("getData");
            }
        }));
    }
    for t in tasks {
        t.await.expect("reader task");
    }
    (clients * per_client) as f64 / start.elapsed().as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut child = None;
    let _tmp;
    let addr = match arg {
        Some(a) => a,
        None => {
            let tmp = tempfile::tempdir().expect("temp dir");
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let c = Command::new(env!("CARGO_BIN_EXE_gregor"))
                .args(["zookeeper", "--port", &port.to_string(), "--data-dir"])
                .arg(tmp.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start gregor zookeeper");
            child = Some(c);
            _tmp = tmp;
            format!("127.0.0.1:{port}")
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Wait (bounded) for the server.
        let deadline = Instant::now() + Duration::from_secs(30);
        let c = loop {
            match tokio::time::timeout(Duration::from_secs(2), Client::connect(&addr)).await {
                Ok(Ok(c)) => break c,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => panic!("no server at {addr}"),
            }
        };
        let _ = c
            .create(
                "/bench",
                b"",
                &CreateMode::Persistent.with_acls(Acls::anyone_all()),
            )
            .await;
        println!("mini-zookeeper benchmark against {addr}");
        let (ops, lat) = writes(&addr, 1, WRITES_SINGLE).await;
        println!(
            "writes, 1 client:   {:>8.0} acked writes/s  p50 {}  p99 {}",
            ops,
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99))
        );
        let (ops, lat) = writes(&addr, CLIENTS, WRITES_PER_CLIENT).await;
        println!(
            "writes, {CLIENTS} clients: {:>8.0} acked writes/s  p50 {}  p99 {}",
            ops,
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99))
        );
        let r = reads(&addr, CLIENTS, READS_PER_CLIENT).await;
        println!("reads, {CLIENTS} clients:  {r:>8.0} reads/s");
    });
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}
