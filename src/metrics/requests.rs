//! Kafka's `RequestMetrics` per API: requests by version, errors by code, and the time
//! histograms Total / RequestQueue / Local / Remote / ResponseSend (milliseconds).
//!
//! gregor's phases: *queue* is from the moment a request's frame is fully read until its
//! handler starts (decoding, SASL checks); *remote* is time the handler spends waiting on
//! other brokers (acks=all replication, a fetch's long poll), measured by [`remote`];
//! *local* is the handler's time minus remote; *send* is writing the response.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ResponseKind};

use super::histogram::Histogram;

/// Slots for API keys (Kafka 3.9's highest is below 80).
const API_SLOTS: usize = 96;
const VERSION_SLOTS: usize = 20;
/// Error codes -1..=ERROR_SLOTS-2; the last slot takes any other code.
const ERROR_SLOTS: usize = 136;

pub struct ApiStats {
    pub by_version: [AtomicU64; VERSION_SLOTS],
    pub errors: [AtomicU64; ERROR_SLOTS],
    pub total: Histogram,
    pub queue: Histogram,
    pub local: Histogram,
    pub remote: Histogram,
    pub send: Histogram,
}

impl ApiStats {
    const fn new() -> ApiStats {
        ApiStats {
            by_version: [const { AtomicU64::new(0) }; VERSION_SLOTS],
            errors: [const { AtomicU64::new(0) }; ERROR_SLOTS],
            total: Histogram::new(),
            queue: Histogram::new(),
            local: Histogram::new(),
            remote: Histogram::new(),
            send: Histogram::new(),
        }
    }
}

static APIS: [ApiStats; API_SLOTS] = [const { ApiStats::new() }; API_SLOTS];

pub fn api_stats(key: i16) -> Option<&'static ApiStats> {
    APIS.get(usize::try_from(key).ok()?)
}

/// Error code of an error slot.
pub fn slot_code(slot: usize) -> Option<i16> {
    (slot < ERROR_SLOTS - 1).then(|| slot as i16 - 1)
}

fn error_slot(code: i16) -> usize {
    usize::try_from(i32::from(code) + 1)
        .ok()
        .filter(|s| *s < ERROR_SLOTS - 1)
        .unwrap_or(ERROR_SLOTS - 1)
}

tokio::task_local! {
    static REMOTE_US: Cell<u64>;
}

/// Awaits `f`, counting its time as the current request's remote time.
pub async fn remote<F: Future>(f: F) -> F::Output {
    if !super::enabled() {
        return f.await;
    }
    let start = Instant::now();
    let out = f.await;
    let us = start.elapsed().as_micros() as u64;
    let _ = REMOTE_US.try_with(|c| c.set(c.get() + us));
    out
}

/// Runs a request handler, returning its output and the remote time it reported.
pub async fn measure<F: Future>(f: F) -> (F::Output, Duration) {
    if !super::enabled() {
        return (f.await, Duration::ZERO);
    }
    REMOTE_US
        .scope(Cell::new(0), async move {
            let out = f.await;
            let us = REMOTE_US.try_with(|c| c.get()).unwrap_or(0);
            (out, Duration::from_micros(us))
        })
        .await
}

/// The instants of one request, recorded once its response is written.
pub struct Timing {
    pub received: Instant,
    pub started: Instant,
    pub handled: Instant,
    pub remote: Duration,
}

/// Records one request (none if metrics are off).
pub fn record(key: ApiKey, version: i16, response: Option<&ResponseKind>, t: &Timing) {
    if !super::enabled() {
        return;
    }
    let Some(s) = api_stats(key as i16) else {
        return;
    };
    let v = usize::try_from(version).unwrap_or(0).min(VERSION_SLOTS - 1);
    s.by_version[v].fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    s.total.observe(now - t.received);
    s.queue.observe(t.started - t.received);
    let handler = t.handled - t.started;
    s.remote.observe(t.remote.min(handler));
    s.local.observe(handler.saturating_sub(t.remote));
    s.send.observe(now - t.handled);
    if let Some(r) = response {
        for_each_error(r, |code| {
            s.errors[error_slot(code)].fetch_add(1, Ordering::Relaxed)
        });
    }
}

/// Calls `f` with the error codes of a response as Kafka's `errorCounts()` counts them
/// (per partition where partitions carry the code, NONE included). APIs not listed count
/// their top-level code only where they have one in this list.
fn for_each_error(r: &ResponseKind, mut f: impl FnMut(i16) -> u64) {
    match r {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| {
                f(p.error_code);
            }),
        ResponseKind::Fetch(r) => {
            f(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| {
                    f(p.error_code);
                })
        }
        ResponseKind::ListOffsets(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| {
            f(p.error_code);
        }),
        ResponseKind::Metadata(r) => r.topics.iter().for_each(|t| {
            f(t.error_code);
        }),
        ResponseKind::OffsetCommit(r) => {
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| {
                f(p.error_code);
            })
        }
        ResponseKind::OffsetFetch(r) => {
            f(r.error_code);
        }
        ResponseKind::FindCoordinator(r) => {
            if r.coordinators.is_empty() {
                f(r.error_code);
            }
            r.coordinators.iter().for_each(|c| {
                f(c.error_code);
            })
        }
        ResponseKind::JoinGroup(r) => {
            f(r.error_code);
        }
        ResponseKind::SyncGroup(r) => {
            f(r.error_code);
        }
        ResponseKind::Heartbeat(r) => {
            f(r.error_code);
        }
        ResponseKind::LeaveGroup(r) => {
            f(r.error_code);
        }
        ResponseKind::ListGroups(r) => {
            f(r.error_code);
        }
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| {
            f(g.error_code);
        }),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| {
            f(t.error_code);
        }),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| {
            f(t.error_code);
        }),
        ResponseKind::ApiVersions(r) => {
            f(r.error_code);
        }
        ResponseKind::InitProducerId(r) => {
            f(r.error_code);
        }
        ResponseKind::SaslHandshake(r) => {
            f(r.error_code);
        }
        ResponseKind::SaslAuthenticate(r) => {
            f(r.error_code);
        }
        ResponseKind::ElectLeaders(r) => {
            f(r.error_code);
            r.replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .for_each(|p| {
                    f(p.error_code);
                })
        }
        ResponseKind::AlterPartitionReassignments(r) => {
            f(r.error_code);
        }
        ResponseKind::ListPartitionReassignments(r) => {
            f(r.error_code);
        }
        ResponseKind::DescribeLogDirs(r) => {
            f(r.error_code);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_slots_cover_kafka_codes_and_overflow() {
        assert_eq!(slot_code(error_slot(-1)), Some(-1));
        assert_eq!(slot_code(error_slot(0)), Some(0));
        assert_eq!(slot_code(error_slot(6)), Some(6));
        assert_eq!(slot_code(error_slot(i16::MAX)), None);
        assert_eq!(slot_code(error_slot(i16::MIN)), None);
    }
}
