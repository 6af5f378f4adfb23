//! The state machine thread: recovery at start, then one loop that owns the [`Core`],
//! the transaction log and snapshots.
//!
//! Each turn takes every input waiting on the channel (so many concurrent writes share
//! one fsync: group commit), expires sessions that are due, appends the batch's txns to
//! the log and fsyncs once, and only then sends the batch's replies and notifications.
//! Nothing a client can observe is ever ahead of the disk.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::config::Config;
use super::connection::Outlet;
use super::fourlw::{self, Stats};
use super::server::{Core, Input, Now, Outbound, Settings};
use super::session::{ConnId, SessionTable};
use super::snapshot;
use super::tree::DataTree;
use super::txn;
use super::txnlog::{self, TxnLog};

/// Messages from connection tasks to the state machine thread.
#[derive(Debug)]
pub enum Msg {
    /// Where to send a connection's frames; sent before its `Connect`.
    Register {
        conn: ConnId,
        outlet: Outlet,
    },
    Input(Input),
    FourLetter {
        cmd: String,
        /// The asking connection's peer address (it is listed among the clients).
        peer: String,
        reply: oneshot::Sender<String>,
    },
    /// The `mntr` rows for the metrics listener (whatever the 4lw whitelist says).
    Mntr {
        reply: oneshot::Sender<Vec<(&'static str, String)>>,
    },
}

/// Expiry bucket width: ZooKeeper uses the tick; we check more often so that a session
/// expires close to its timeout (never before it).
pub fn expiry_granularity(cfg: &Config) -> u64 {
    cfg.tick_time_ms.clamp(1, 100)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Everything needed to start serving, rebuilt from the data dir.
pub struct Recovered {
    pub core: Core,
    pub log: TxnLog,
    pub clock: Instant,
}

/// Loads the newest snapshot, replays the logs after it, takes a fresh snapshot if the
/// replay moved the state, and opens the log for new txns.
pub fn recover(cfg: &Config) -> anyhow::Result<Recovered> {
    let dir = &cfg.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data_dir {}", dir.display()))?;
    let clock = Instant::now();
    let loaded = snapshot::load_latest(dir)?;
    let had_snapshot = loaded.is_some();
    let (mut tree, saved, snap_zxid) = match loaded {
        Some(l) => (l.tree, l.sessions, l.zxid),
        None => (DataTree::new(), Vec::new(), 0),
    };
    let mut sessions = SessionTable::new(expiry_granularity(cfg));
    for s in saved {
        sessions.restore(s.id, s.timeout, s.password);
    }
    // Streamed: each record is applied as it is read, never all held at once.
    let mut zxid = snap_zxid;
    let replayed = txnlog::recover(dir, snap_zxid, |hdr, t| {
        if let Err(code) = txn::apply(
            &mut tree,
            &mut sessions,
            &hdr,
            &t,
            &mut Vec::new(),
            &mut Vec::new(),
        ) {
            warn!(
                zxid = hdr.zxid,
                "replayed txn did not apply cleanly: {code:?}"
            );
        }
        zxid = hdr.zxid;
    })?
    .count;
    // Sessions open at the crash get a full timeout to come back.
    sessions.set_now(0);
    sessions.touch_all(0);
    sessions.seed_ids(wall_ms());
    info!(
        zxid = format!("{zxid:#x}"),
        snapshot_zxid = format!("{snap_zxid:#x}"),
        replayed,
        nodes = tree.node_count(),
        sessions = sessions.len(),
        "recovered data dir {}",
        dir.display()
    );
    if !had_snapshot || zxid != snap_zxid {
        let bytes = snapshot::serialize(zxid, &tree, &sessions);
        let path = snapshot::write(dir, zxid, &bytes)?;
        info!(zxid = format!("{zxid:#x}"), file = %path.display(), "snapshot taken");
        snapshot::purge(dir, cfg.snapshot_retain_count)?;
    }
    let log = TxnLog::open(dir, zxid + 1)?;
    let settings = Settings {
        min_session_timeout: cfg.min_session_timeout_ms as i32,
        max_session_timeout: cfg.max_session_timeout_ms as i32,
        enforce_acl: cfg.enforce_acl,
        max_txn_bytes: cfg.max_txn_bytes(),
        max_reply_bytes: cfg.max_reply_bytes,
        max_outbound_bytes: cfg.connection_outbound_max_bytes,
        max_watch_bytes: cfg.max_watch_bytes_per_connection,
        max_auth_ids: cfg.max_auth_ids_per_connection,
        super_digest: cfg.super_digest.clone(),
    };
    let core = Core::new(settings, tree, sessions, zxid, Box::new(rand::rngs::OsRng));
    Ok(Recovered { core, log, clock })
}

/// Latency of requests from the moment the loop took them to their release.
#[derive(Default)]
struct Latency {
    min: u64,
    max: u64,
    total: u64,
    count: u64,
}

impl Latency {
    fn add(&mut self, ms: u64) {
        if self.count == 0 || ms < self.min {
            self.min = ms;
        }
        self.max = self.max.max(ms);
        self.total += ms;
        self.count += 1;
    }
}

fn stats_now(started: &Instant, latency: &Latency, connections: usize, peer: String) -> Stats {
    Stats {
        uptime_ms: started.elapsed().as_millis() as u64,
        latency_min: latency.min,
        latency_max: latency.max,
        latency_avg: if latency.count == 0 {
            0.0
        } else {
            latency.total as f64 / latency.count as f64
        },
        open_connections: connections,
        asking_peer: peer,
    }
}

/// Runs the state machine until every connection sender is gone (server shutdown).
/// An error (the log cannot be written) stops the server: it must not acknowledge
/// anything it cannot make durable.
pub fn run(rec: Recovered, cfg: Config, rx: Receiver<Msg>) -> anyhow::Result<()> {
    let Recovered {
        mut core,
        mut log,
        clock,
    } = rec;
    let now = || Now {
        mono: clock.elapsed().as_millis() as u64,
        wall: wall_ms(),
    };
    let started = Instant::now();
    let mut senders: HashMap<ConnId, Outlet> = HashMap::new();
    let mut since_snapshot: u64 = 0;
    let mut next_container_check = now().mono + cfg.container_check_interval_ms;
    let mut snapshotter: Option<JoinHandle<anyhow::Result<()>>> = None;
    let mut latency = Latency::default();
    const MAX_BATCH: usize = 10_000;

    loop {
        let t = now();
        let deadline = core
            .next_expiry()
            .unwrap_or(u64::MAX)
            .min(next_container_check);
        let wait = deadline.saturating_sub(t.mono).min(1000);
        let first = match rx.recv_timeout(Duration::from_millis(wait)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let batch_start = Instant::now();
        let mut requests = 0u64;
        let mut msg = first;
        let mut taken = 0;
        while let Some(m) = msg {
            match m {
                Msg::Register { conn, outlet } => {
                    senders.insert(conn, outlet);
                }
                Msg::Input(input) => {
                    if matches!(input, Input::Request { .. }) {
                        requests += 1;
                    }
                    if let Input::Disconnected { conn } = &input {
                        senders.remove(conn);
                    }
                    core.handle(input, now());
                }
                Msg::Mntr { reply } => {
                    let stats = stats_now(&started, &latency, senders.len(), String::new());
                    let _ = reply.send(fourlw::mntr_rows(&core, &stats));
                }
                Msg::FourLetter { cmd, peer, reply } => {
                    let stats = Stats {
                        uptime_ms: started.elapsed().as_millis() as u64,
                        latency_min: latency.min,
                        latency_max: latency.max,
                        latency_avg: if latency.count == 0 {
                            0.0
                        } else {
                            latency.total as f64 / latency.count as f64
                        },
                        // ZooKeeper counts the asking connection too.
                        open_connections: senders.len() + 1,
                        asking_peer: peer,
                    };
                    let _ = reply.send(fourlw::render(&cmd, &core, &stats, &cfg));
                }
            }
            taken += 1;
            msg = if taken < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let t = now();
        core.expire_sessions(t);
        if t.mono >= next_container_check {
            core.reap_containers(t);
            next_container_check = t.mono + cfg.container_check_interval_ms;
        }
        let txns = core.take_txns();
        if !txns.is_empty() {
            let mut written = Ok(());
            for (hdr, t) in &txns {
                written = written.and_then(|()| log.append(hdr, t));
            }
            let fsync = Instant::now();
            let written = written.and_then(|()| log.commit());
            crate::metrics::zookeeper::FSYNC.observe(fsync.elapsed());
            if let Err(e) = written {
                error!("cannot write the transaction log: {e}; stopping");
                return Err(e).context("writing the transaction log");
            }
            since_snapshot += txns.len() as u64;
        }
        let mut overflowed = Vec::new();
        for (conn, out) in core.take_outbox() {
            let close = out == Outbound::Close;
            if out == Outbound::Abort {
                if let Some(outlet) = senders.remove(&conn) {
                    outlet.abort();
                }
                continue;
            }
            if let Some(outlet) = senders.get(&conn) {
                if !outlet.push(out) {
                    warn!(
                        conn,
                        queued = outlet.queued(),
                        max = cfg.connection_outbound_max_bytes,
                        "client does not read its replies: outbound queue full; disconnecting it"
                    );
                    senders.remove(&conn);
                    overflowed.push(conn);
                    continue;
                }
            }
            if close {
                senders.remove(&conn);
            }
        }
        // Forget those connections now: nothing more is built or queued for them.
        for conn in overflowed {
            core.handle(Input::Disconnected { conn }, now());
        }
        if requests > 0 {
            let elapsed = batch_start.elapsed();
            let ms = elapsed.as_millis() as u64;
            for _ in 0..requests {
                latency.add(ms);
                crate::metrics::zookeeper::LATENCY.observe(elapsed);
            }
        }
        // ZooKeeper rolls on snapCount txns or zookeeper.snapSizeLimitInKb of log.
        let log_full = log.bytes >= cfg.snap_size_limit_kb.saturating_mul(1024);
        if (since_snapshot >= cfg.snapshot_interval_txns || log_full)
            && since_snapshot > 0
            && snapshotter.as_ref().is_none_or(|h| h.is_finished())
        {
            if let Some(h) = snapshotter.take() {
                match h.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!("previous snapshot failed: {e:#}"),
                    Err(_) => warn!("snapshot thread panicked"),
                }
            }
            let zxid = core.zxid();
            let bytes = snapshot::serialize(zxid, core.tree(), core.sessions());
            log.roll(zxid + 1)?;
            since_snapshot = 0;
            let dir = cfg.data_dir.clone();
            let keep = cfg.snapshot_retain_count;
            snapshotter = Some(std::thread::spawn(move || {
                let path = snapshot::write(&dir, zxid, &bytes)?;
                info!(zxid = format!("{zxid:#x}"), file = %path.display(), "snapshot taken");
                snapshot::purge(&dir, keep)
            }));
        }
    }
}
