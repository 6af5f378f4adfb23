//! Durability: restarts keep the tree and the zxid moves only forward; snapshots bound the
//! log; a torn log tail is repaired; and a crash test that `kill -9`s the server at
//! random moments under acknowledged writes, 20 rounds, checking nothing acknowledged is
//! ever lost.

mod common_zk;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use common_zk::{client, four_letter, mode, open_acl, ZkServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zookeeper_client::{Client, CreateMode};

fn server_zxid(port: u16) -> i64 {
    let srvr = four_letter(port, "srvr").unwrap();
    let hex = srvr
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: 0x"))
        .expect("Zxid line in srvr");
    i64::from_str_radix(hex.trim(), 16).unwrap()
}

fn files(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_tree_stats_and_moves_zxid_forward() {
    let mut zk = ZkServer::start(&[]);
    let c = client(&zk.addr()).await;
    c.create("/d", b"root", &open_acl()).await.unwrap();
    c.create("/d/a", b"1", &open_acl()).await.unwrap();
    c.set_data("/d/a", b"2", None).await.unwrap();
    c.create("/d/s-", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    c.create("/d/gone", b"", &open_acl()).await.unwrap();
    c.delete("/d/gone", None).await.unwrap();
    let mut w = c.new_multi_writer();
    w.add_create("/d/m", b"multi", &open_acl()).unwrap();
    w.add_set_data("/d", b"root2", None).unwrap();
    w.commit().await.unwrap();
    let before: Vec<_> = {
        let mut v = Vec::new();
        for p in ["/", "/d", "/d/a", "/d/m", "/d/s-0000000001"] {
            v.push(c.get_data(p).await.unwrap());
        }
        v
    };
    let zxid_before = server_zxid(zk.port);
    drop(c);

    zk.restart();
    let c = client(&zk.addr()).await;
    for (i, p) in ["/", "/d", "/d/a", "/d/m", "/d/s-0000000001"]
        .iter()
        .enumerate()
    {
        assert_eq!(c.get_data(p).await.unwrap(), before[i], "{p}");
    }
    assert!(c.check_stat("/d/gone").await.unwrap().is_none());
    // The zxid survived (the close of the first session is a txn too) and keeps growing.
    assert!(server_zxid(zk.port) >= zxid_before);
    let (stat, seq) = c
        .create("/d/s-", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert!(stat.czxid > zxid_before);
    assert_eq!(seq.into_i64(), 4, "sequence numbers continue after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_the_log_and_restart_uses_them() {
    let mut zk = ZkServer::start(&["--snapshot-interval-txns", "50"]);
    let c = client(&zk.addr()).await;
    c.create("/n", b"", &open_acl()).await.unwrap();
    for i in 0..400 {
        c.set_data("/n", format!("{i}").as_bytes(), None)
            .await
            .unwrap();
    }
    let dir = zk.data_dir().to_path_buf();
    common_zk::wait_for(
        Duration::from_secs(10),
        "old snapshots to be purged",
        || (files(&dir, "snapshot.").len() <= 3).then_some(()),
    );
    let logs = files(&dir, "log.");
    assert!(logs.len() <= 4, "logs not purged: {logs:?}");
    zk.restart();
    let c = client(&zk.addr()).await;
    let (data, stat) = c.get_data("/n").await.unwrap();
    assert_eq!(data, b"399");
    assert_eq!(stat.version, 400);
    assert!(zk.log().contains("snapshot taken"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_log_tail_is_truncated_with_a_warning() {
    let mut zk = ZkServer::start(&[]);
    let c = client(&zk.addr()).await;
    c.create("/t", b"kept", &open_acl()).await.unwrap();
    drop(c);
    zk.kill();
    let dir = zk.data_dir().to_path_buf();
    let last = files(&dir, "log.").pop().unwrap();
    // A half-written record: length says 100 bytes, only 3 follow.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(&last))
        .unwrap();
    f.write_all(&[0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    drop(f);
    zk.restart();
    assert!(
        zk.log().contains("truncating transaction log tail"),
        "{}",
        zk.log()
    );
    let c = client(&zk.addr()).await;
    assert_eq!(c.get_data("/t").await.unwrap().0, b"kept");
    c.set_data("/t", b"after", None).await.unwrap();
    drop(c);
    zk.restart();
    let c = client(&zk.addr()).await;
    assert_eq!(c.get_data("/t").await.unwrap().0, b"after");
}

/// What the writer had acknowledged before a crash.
#[derive(Default)]
struct Acked {
    /// path → highest acknowledged version of `/crash/counter-*` (data is `v<version>`).
    versions: BTreeMap<String, i32>,
    /// Every acknowledged create.
    created: Vec<String>,
    max_zxid: i64,
}

async fn write_until_failure(c: &Client, rng_seed: u64, round: usize, acked: &mut Acked) {
    let mut rng = StdRng::seed_from_u64(rng_seed);
    let step = Duration::from_secs(3);
    for i in 0.. {
        let r = if rng.gen_bool(0.3) {
            let path = format!("/crash/r{round}-{i}");
            match tokio::time::timeout(step, c.create(&path, b"x", &open_acl())).await {
                Ok(Ok((stat, _))) => {
                    acked.created.push(path);
                    Ok(stat.czxid)
                }
                _ => Err(()),
            }
        } else {
            let path = format!("/crash/counter-{}", rng.gen_range(0..4));
            let want = acked.versions.get(&path).copied().unwrap_or(0) + 1;
            // The value is a function of the version, so any durable state is checkable.
            let data = format!("v{want}");
            match tokio::time::timeout(step, c.set_data(&path, data.as_bytes(), Some(want - 1)))
                .await
            {
                Ok(Ok(stat)) => {
                    assert_eq!(stat.version, want);
                    acked.versions.insert(path, want);
                    Ok(stat.mzxid)
                }
                _ => Err(()),
            }
        };
        match r {
            Ok(zxid) => {
                assert!(
                    zxid > acked.max_zxid,
                    "zxid went backwards: {zxid} after {}",
                    acked.max_zxid
                );
                acked.max_zxid = zxid;
            }
            Err(()) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_test_kill_9_under_acknowledged_writes() {
    let seed: u64 = std::env::var("ZK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test seed: {seed} (rerun with ZK_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut zk = ZkServer::start(&["--snapshot-interval-txns", "300"]);
    {
        let c = client(&zk.addr()).await;
        c.create("/crash", b"", &open_acl()).await.unwrap();
        for k in 0..4 {
            c.create(&format!("/crash/counter-{k}"), b"v0", &open_acl())
                .await
                .unwrap();
        }
    }
    let mut acked = Acked::default();
    for k in 0..4 {
        acked.versions.insert(format!("/crash/counter-{k}"), 0);
    }
    for round in 0..20 {
        let c = client(&zk.addr()).await;
        let kill_after = Duration::from_millis(rng.gen_range(20..400));
        let writer_seed = rng.gen();
        let port = zk.port;
        let pid_kill = async {
            tokio::time::sleep(kill_after).await;
        };
        // Write until the kill lands (the kill happens while writes are in flight).
        tokio::select! {
            _ = write_until_failure(&c, writer_seed, round, &mut acked) => {
                panic!("writer stopped before the kill in round {round} (seed {seed})");
            }
            _ = pid_kill => {}
        }
        zk.kill();
        // Let the writer observe the failure of whatever was in flight (not acknowledged).
        drop(c);
        zk.restart();
        assert_eq!(zk.port, port);

        let check = client(&zk.addr()).await;
        for p in &acked.created {
            assert!(
                check.check_stat(p).await.unwrap().is_some(),
                "acknowledged create {p} lost in round {round} (seed {seed})"
            );
        }
        for (p, v) in acked.versions.iter_mut() {
            let (data, stat) = check.get_data(p).await.unwrap();
            assert!(
                stat.version >= *v,
                "acknowledged version {v} of {p} lost: found {} (round {round}, seed {seed})",
                stat.version
            );
            assert_eq!(data, format!("v{}", stat.version).into_bytes());
            // An unacknowledged write may have made it: continue from what is there.
            *v = stat.version;
        }
        let z = server_zxid(zk.port);
        assert!(
            z >= acked.max_zxid,
            "server zxid {z} below acknowledged {}",
            acked.max_zxid
        );
        acked.max_zxid = z;
    }
    assert!(
        acked.created.len() + acked.versions.len() > 20,
        "too few writes to mean anything"
    );
    println!(
        "crash test: 20 rounds, {} creates acknowledged, {:?}",
        acked.created.len(),
        started.elapsed()
    );
}
