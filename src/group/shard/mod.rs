//! The group coordinator's state machine for one `__consumer_offsets` partition: every
//! group that hashes to it, their committed offsets, and the timers of their rebalances
//! and sessions. It follows Apache Kafka's classic group protocol
//! (`GroupMetadataManager`/`OffsetMetadataManager` for classic groups) step by step.
//!
//! It owns no sockets, no clock and no log. Every operation takes the current time
//! (`now`, ms) and answers through [`Reply`] channels; what must be persisted comes back
//! as [`Append`]s — records plus a continuation the runtime calls once the records are
//! replicated (or failed), with the shard again. Timers fire only when the runtime calls
//! [`GroupShard::poll_timers`]. A test drives all of it with a fake clock.
//!
//! Offsets become visible when their records are committed (Kafka's readers see the
//! last committed state); membership changes apply at once and the SyncGroup answers
//! wait for the group record, as in Kafka.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::ResponseError as Error;

use super::classic::{
    ClassicGroup, GroupDescription, GroupState, JoinResult, Member, Reply, SyncResult,
};
use super::records::{self, OffsetCommitValue, Record, RecordKey};
use super::timer::Timer;
use crate::config::BrokerConfig;

mod loading;
mod offsets;
mod rebalance;
mod txn_offsets;

pub use txn_offsets::TxnCommitRequest;
#[cfg(test)]
mod tests;

/// How long a new member's JoinGroup may stay parked before it is dropped (Kafka's
/// `classicGroupNewMemberJoinTimeoutMs`, 5 minutes).
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub initial_rebalance_delay_ms: i64,
    pub new_member_join_timeout_ms: i64,
    pub offset_metadata_max_bytes: usize,
    pub offsets_retention_ms: i64,
}

impl GroupConfig {
    pub fn from_broker(c: &BrokerConfig) -> GroupConfig {
        GroupConfig {
            min_session_timeout_ms: c.group_min_session_timeout_ms,
            max_session_timeout_ms: c.group_max_session_timeout_ms,
            max_size: c.group_max_size,
            initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms as i64,
            new_member_join_timeout_ms: NEW_MEMBER_JOIN_TIMEOUT_MS,
            offset_metadata_max_bytes: c.offset_metadata_max_bytes,
            offsets_retention_ms: c.offsets_retention_ms,
        }
    }
}

pub use crate::coordinator::AppendResult;

/// Continuation of an [`Append`]: runs with the shard once the records are replicated
/// (or failed); may ask for more appends.
pub type OnAppend = crate::coordinator::OnAppend<GroupShard>;

/// Records to append to this shard's `__consumer_offsets` partition.
pub type Append = crate::coordinator::Append<GroupShard>;

pub use crate::coordinator::coordinator_error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TimerKey {
    Heartbeat(String, String),
    Join(String),
    Sync(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimerTask {
    Heartbeat,
    CompleteJoin,
    InitialJoin { delay: i64, remaining: i64 },
    ExpireSync { generation: i32 },
}

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a new dynamic member first gets its id with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader may skip the assignment.
    pub supports_skip_assignment: bool,
    pub reason: Option<String>,
}

pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LeaveMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaveResult {
    pub error: Option<Error>,
    /// (member id, group instance id, error) per member of the request.
    pub members: Vec<(String, Option<String>, Option<Error>)>,
}

#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// OffsetCommit v1's explicit commit time (offsets then expire relative to it).
    pub commit_timestamp: Option<i64>,
}

pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// -1 = broker retention (OffsetCommit v2-v4 may ask for another).
    pub retention_time_ms: i64,
    pub partitions: Vec<CommitPartition>,
    pub api_version: i16,
}

/// (topic, partition, error) per committed partition.
pub type CommitResult = Vec<(String, i32, Option<Error>)>;

/// A committed offset as the shard keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    pub expire_timestamp: Option<i64>,
    /// Offset of its record in `__consumer_offsets`: the newest record wins.
    pub record_offset: i64,
}

/// An OffsetFetch answer for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// (topic, partition) → committed offset.
type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// Offsets taken out of the state, kept to restore them if their tombstones fail.
type RemovedOffsets = Vec<((String, i32), CommittedOffset)>;

/// The timestamp an offset's age counts from.
type AgeBase = Box<dyn Fn(&CommittedOffset) -> i64>;

/// A listed group: (group id, protocol type, state).
pub type ListedGroup = (String, String, GroupState);

/// (topic, [(partition, error)]) for OffsetDelete.
pub type OffsetDeleteResult = Vec<(String, Vec<(i32, Option<Error>)>)>;

pub struct GroupShard {
    pub partition: i32,
    config: GroupConfig,
    groups: BTreeMap<String, ClassicGroup>,
    offsets: HashMap<String, GroupOffsets>,
    /// Commits appended but not replicated yet, per group and partition.
    pending_commits: HashMap<String, HashMap<(String, i32), u32>>,
    /// Transactional offsets waiting for their marker, by producer id and group.
    pending_txn_offsets: HashMap<i64, txn_offsets::PendingTxnOffsets>,
    timer: Timer<TimerKey, TimerTask>,
    /// `None`: random member ids (uuid); `Some(n)`: sequential, for tests.
    id_counter: Option<u64>,
}

fn utf16_len(s: &str) -> usize {
    // Kafka compares String.length(): UTF-16 code units.
    s.encode_utf16().count()
}

impl GroupShard {
    pub fn new(partition: i32, config: GroupConfig) -> GroupShard {
        GroupShard {
            partition,
            config,
            groups: BTreeMap::new(),
            offsets: HashMap::new(),
            pending_commits: HashMap::new(),
            pending_txn_offsets: HashMap::new(),
            timer: Timer::default(),
            id_counter: None,
        }
    }

    /// Deterministic member ids (`<client>-<n>`), for tests.
    pub fn use_sequential_member_ids(&mut self) {
        self.id_counter = Some(0);
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&ClassicGroup> {
        self.groups.get(group_id)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn committed(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<&CommittedOffset> {
        self.offsets
            .get(group_id)?
            .get(&(topic.to_string(), partition))
    }

    fn generate_member_id(&mut self, client_id: &str, instance: Option<&str>) -> String {
        let prefix = instance.unwrap_or(client_id);
        match &mut self.id_counter {
            Some(n) => {
                *n += 1;
                format!("{prefix}-{n}")
            }
            None => format!("{prefix}-{}", uuid::Uuid::new_v4()),
        }
    }

    // ------------------------------------------------------------------ timers

    /// The earliest timer deadline, for the runtime's sleep.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timer.next_deadline()
    }

    /// Runs every timer due at `now`.
    pub fn poll_timers(&mut self, now: i64) -> Vec<Append> {
        let mut out = Vec::new();
        while let Some((key, task)) = self.timer.pop_expired(now) {
            out.extend(self.run_timer(key, task, now));
        }
        out
    }

    fn run_timer(&mut self, key: TimerKey, task: TimerTask, now: i64) -> Vec<Append> {
        match (key, task) {
            (TimerKey::Heartbeat(g, m), TimerTask::Heartbeat) => self.expire_heartbeat(&g, &m, now),
            (TimerKey::Join(g), TimerTask::CompleteJoin) => self.complete_join(&g, now),
            (TimerKey::Join(g), TimerTask::InitialJoin { delay, remaining }) => {
                self.initial_join_expired(&g, delay, remaining, now)
            }
            (TimerKey::Sync(g), TimerTask::ExpireSync { generation }) => {
                self.expire_pending_sync(&g, generation, now)
            }
            (key, task) => {
                tracing::error!(?key, ?task, "mismatched group timer");
                Vec::new()
            }
        }
    }

    fn reschedule_heartbeat(&mut self, group_id: &str, member_id: &str, timeout_ms: i64, now: i64) {
        self.timer.schedule(
            TimerKey::Heartbeat(group_id.to_string(), member_id.to_string()),
            now + timeout_ms,
            TimerTask::Heartbeat,
        );
    }

    fn reschedule_member_session(&mut self, group_id: &str, member_id: &str, now: i64) {
        let Some(timeout) = self
            .groups
            .get(group_id)
            .and_then(|g| g.member(member_id))
            .map(|m| m.session_timeout_ms as i64)
        else {
            return;
        };
        self.reschedule_heartbeat(group_id, member_id, timeout, now);
    }

    fn cancel_heartbeat(&mut self, group_id: &str, member_id: &str) {
        self.timer.cancel(&TimerKey::Heartbeat(
            group_id.to_string(),
            member_id.to_string(),
        ));
    }
}

impl crate::coordinator::CoordinatorShard for GroupShard {
    fn finish_loading(&mut self, now: i64) -> Vec<Append> {
        GroupShard::finish_loading(self, now)
    }
    fn unload(&mut self, now: i64) {
        GroupShard::unload(self, now)
    }
    fn next_deadline(&self) -> Option<i64> {
        GroupShard::next_deadline(self)
    }
    fn poll_timers(&mut self, now: i64) -> Vec<Append> {
        GroupShard::poll_timers(self, now)
    }
}
