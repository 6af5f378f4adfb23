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

/// Outcome of an append: the base offset of the records, or the partition error.
pub type AppendResult = Result<i64, Error>;

/// Continuation of an [`Append`]: runs with the shard once the records are replicated
/// (or failed); may ask for more appends.
pub type OnAppend = Box<dyn FnOnce(&mut GroupShard, AppendResult, i64) -> Vec<Append> + Send>;

/// Records to append to this shard's `__consumer_offsets` partition.
pub struct Append {
    pub records: Vec<Record>,
    pub on_done: OnAppend,
}

impl Append {
    fn new(
        records: Vec<Record>,
        on_done: impl FnOnce(&mut GroupShard, AppendResult, i64) -> Vec<Append> + Send + 'static,
    ) -> Append {
        Append {
            records,
            on_done: Box::new(on_done),
        }
    }
}

/// Maps a failed append to the error Kafka's coordinator answers with.
pub fn coordinator_error(e: Error) -> Error {
    match e {
        Error::UnknownTopicOrPartition
        | Error::NotEnoughReplicas
        | Error::NotEnoughReplicasAfterAppend
        | Error::RequestTimedOut => Error::CoordinatorNotAvailable,
        Error::NotLeaderOrFollower | Error::KafkaStorageError => Error::NotCoordinator,
        Error::MessageTooLarge | Error::RecordListTooLarge | Error::InvalidFetchSize => {
            Error::UnknownServerError
        }
        other => other,
    }
}

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

    // ------------------------------------------------------------------ JoinGroup

    pub fn join_group(
        &mut self,
        req: JoinRequest,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        if req.group_id.is_empty() {
            let _ = reply.send(JoinResult::error(&req.member_id, Error::InvalidGroupId));
            return Vec::new();
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            let _ = reply.send(JoinResult::error(
                &req.member_id,
                Error::InvalidSessionTimeout,
            ));
            return Vec::new();
        }
        let unknown_member = req.member_id.is_empty();
        if !self.groups.contains_key(&req.group_id) {
            if !unknown_member {
                let _ = reply.send(JoinResult::error(&req.member_id, Error::UnknownMemberId));
                return Vec::new();
            }
            self.groups
                .insert(req.group_id.clone(), ClassicGroup::new(&req.group_id, now));
        }
        let max_size = self.config.max_size;
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return Vec::new();
        };
        let accept = match g.state() {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                g.member(&req.member_id)
                    .is_some_and(Member::is_awaiting_join)
                    || g.num_awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                g.has_member(&req.member_id) || g.size() < max_size
            }
        };
        if !accept {
            g.remove(&req.member_id);
            let _ = reply.send(JoinResult::error("", Error::GroupMaxSizeReached));
            return Vec::new();
        }
        if unknown_member {
            self.join_new_member(req, reply, now)
        } else {
            self.join_existing_member(req, reply, now)
        }
    }

    fn join_new_member(
        &mut self,
        req: JoinRequest,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        let Some(g) = self.groups.get(&req.group_id) else {
            return Vec::new();
        };
        if g.is(GroupState::Dead) {
            let _ = reply.send(JoinResult::error("", Error::CoordinatorNotAvailable));
            return Vec::new();
        }
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            let _ = reply.send(JoinResult::error("", Error::InconsistentGroupProtocol));
            return Vec::new();
        }
        let existing_static = req
            .group_instance_id
            .as_deref()
            .and_then(|i| g.static_member_id(i))
            .map(str::to_string);
        let new_id = self.generate_member_id(&req.client_id, req.group_instance_id.as_deref());
        match (&req.group_instance_id, existing_static) {
            (Some(_), Some(old_id)) => {
                tracing::info!(group = %req.group_id, instance = ?req.group_instance_id, old = %old_id, new = %new_id, "static member rejoins with an unknown member id; replacing the previous member id");
                self.update_static_member(req, old_id, new_id, reply, now)
            }
            (Some(_), None) => self.add_member_and_rebalance(req, new_id, reply, now),
            (None, _) if req.require_known_member_id => {
                if let Some(g) = self.groups.get_mut(&req.group_id) {
                    g.add_pending_member(&new_id);
                }
                self.reschedule_heartbeat(
                    &req.group_id,
                    &new_id,
                    req.session_timeout_ms as i64,
                    now,
                );
                let _ = reply.send(JoinResult::error(&new_id, Error::MemberIdRequired));
                Vec::new()
            }
            (None, _) => self.add_member_and_rebalance(req, new_id, reply, now),
        }
    }

    fn join_existing_member(
        &mut self,
        req: JoinRequest,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        let gid = req.group_id.clone();
        let mid = req.member_id.clone();
        let Some(g) = self.groups.get(&gid) else {
            return Vec::new();
        };
        if g.is(GroupState::Dead) {
            let _ = reply.send(JoinResult::error(&mid, Error::CoordinatorNotAvailable));
            return Vec::new();
        }
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            let _ = reply.send(JoinResult::error(&mid, Error::InconsistentGroupProtocol));
            return Vec::new();
        }
        if g.is_pending_member(&mid) {
            if req.group_instance_id.is_some() {
                // A pending member id was handed out to a dynamic member only.
                let _ = reply.send(JoinResult::error(&mid, Error::InvalidRequest));
                return Vec::new();
            }
            return self.add_member_and_rebalance(req, mid, reply, now);
        }
        if let Err(e) = g.validate_member(&mid, req.group_instance_id.as_deref()) {
            let _ = reply.send(JoinResult::error(&mid, e));
            return Vec::new();
        }
        let matches = g.member(&mid).is_some_and(|m| m.matches(&req.protocols));
        let reason = req.reason.clone().unwrap_or_else(|| "not provided".into());
        match g.state() {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(req, reply, &format!("member {mid} joining group during PreparingRebalance; client reason: {reason}"), now)
            }
            GroupState::CompletingRebalance if matches => {
                // The member lost its JoinGroup answer: send the current generation again.
                let _ = reply.send(current_generation_answer(g, &mid, g.is_leader(&mid)));
                Vec::new()
            }
            GroupState::CompletingRebalance => self.update_member_and_rebalance(
                req,
                reply,
                &format!("updating metadata for member {mid} during CompletingRebalance; client reason: {reason}"),
                now,
            ),
            GroupState::Stable if g.is_leader(&mid) => self.update_member_and_rebalance(
                req,
                reply,
                &format!("leader {mid} re-joining group during Stable; client reason: {reason}"),
                now,
            ),
            GroupState::Stable if !matches => self.update_member_and_rebalance(
                req,
                reply,
                &format!("updating metadata for member {mid} during Stable; client reason: {reason}"),
                now,
            ),
            GroupState::Stable => {
                let _ = reply.send(current_generation_answer(g, &mid, false));
                Vec::new()
            }
            GroupState::Empty | GroupState::Dead => {
                tracing::warn!(group = %gid, member = %mid, state = ?g.state(), "rejoining member in an unexpected group state");
                let _ = reply.send(JoinResult::error(&mid, Error::UnknownMemberId));
                Vec::new()
            }
        }
    }

    fn update_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        reply: Reply<JoinResult>,
        reason: &str,
        now: i64,
    ) -> Vec<Append> {
        if let Some(g) = self.groups.get_mut(&req.group_id) {
            g.update_member(
                &req.member_id,
                req.protocols,
                req.rebalance_timeout_ms,
                req.session_timeout_ms,
                Some(reply),
            );
        }
        self.maybe_prepare_rebalance_or_complete_join(&req.group_id, reason, now)
    }

    fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        member_id: String,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        let gid = req.group_id.clone();
        let Some(g) = self.groups.get_mut(&gid) else {
            return Vec::new();
        };
        if g.is(GroupState::PreparingRebalance) && g.previous_state() == GroupState::Empty {
            g.new_member_added = true;
        }
        let reason = format!(
            "adding new member {member_id} with group instance id {:?}; client reason: {}",
            req.group_instance_id,
            req.reason.as_deref().unwrap_or("not provided")
        );
        g.add(Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(reply),
            awaiting_sync: None,
            is_new: true,
        });
        // A new member cannot heartbeat before its join completes; bound the wait instead.
        let timeout = self.config.new_member_join_timeout_ms;
        self.reschedule_heartbeat(&gid, &member_id, timeout, now);
        self.maybe_prepare_rebalance_or_complete_join(&gid, &reason, now)
    }

    /// A known static member (by group.instance.id) rejoined with an unknown member id.
    fn update_static_member(
        &mut self,
        req: JoinRequest,
        old_id: String,
        new_id: String,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        let gid = req.group_id.clone();
        let Some(instance) = req.group_instance_id.clone() else {
            return Vec::new();
        };
        let Some(g) = self.groups.get_mut(&gid) else {
            return Vec::new();
        };
        let old_leader = g.leader_id().unwrap_or_default().to_string();
        g.replace_static_member(&instance, &old_id, &new_id);
        let (old_protocols, old_rebalance, old_session) = match g.member(&new_id) {
            Some(m) => (
                m.protocols.clone(),
                m.rebalance_timeout_ms,
                m.session_timeout_ms,
            ),
            None => return Vec::new(),
        };
        g.update_member(
            &new_id,
            req.protocols.clone(),
            req.rebalance_timeout_ms,
            req.session_timeout_ms,
            Some(reply),
        );
        let state = g.state();
        self.reschedule_member_session(&gid, &new_id, now);
        let reason = format!(
            "static member {new_id} with instance id {instance} rejoined; client reason: {}",
            req.reason.as_deref().unwrap_or("not provided")
        );
        match state {
            GroupState::Stable => {
                let Some(g) = self.groups.get(&gid) else {
                    return Vec::new();
                };
                if g.select_protocol() != g.protocol_name {
                    return self.maybe_prepare_rebalance_or_complete_join(&gid, &reason, now);
                }
                tracing::info!(group = %gid, member = %new_id, "static member rejoined during Stable without changing the selected protocol: no rebalance");
                let assignment = g.assignments();
                let record = records::group_metadata_value(&g.to_record(&assignment, now));
                let skip = req.supports_skip_assignment;
                vec![Append::new(
                    vec![Record {
                        key: records::group_metadata_key(&gid),
                        value: Some(record),
                    }],
                    move |shard, result, now| {
                        let Some(g) = shard.groups.get_mut(&gid) else {
                            return Vec::new();
                        };
                        match result {
                            Err(e) => {
                                tracing::warn!(group = %gid, member = %new_id, error = ?e, "cannot persist the static member's new id; reverting to the old one");
                                let reply = g.take_join_reply(&new_id);
                                g.update_member(
                                    &new_id,
                                    old_protocols,
                                    old_rebalance,
                                    old_session,
                                    None,
                                );
                                g.replace_static_member(&instance, &new_id, &old_id);
                                if let Some(reply) = reply {
                                    let mut r = JoinResult::error("", coordinator_error(e));
                                    r.generation_id = g.generation_id;
                                    r.protocol_type = g.protocol_type.clone();
                                    r.protocol_name = g.protocol_name.clone();
                                    r.leader_id = old_leader;
                                    let _ = reply.send(r);
                                }
                                shard.reschedule_member_session(&gid, &old_id, now);
                            }
                            Ok(_) if skip => {
                                let is_leader = g.is_leader(&new_id);
                                let mut r = current_generation_answer(g, &new_id, is_leader);
                                r.skip_assignment = is_leader;
                                g.complete_join(&new_id, r);
                            }
                            Ok(_) => {
                                // Before JoinGroup v9 the old leader id is returned so the
                                // rejoining member does not run a pointless assignment.
                                let mut r = current_generation_answer(g, &new_id, false);
                                r.leader_id = old_leader;
                                g.complete_join(&new_id, r);
                            }
                        }
                        Vec::new()
                    },
                )]
            }
            GroupState::CompletingRebalance => self.prepare_rebalance(&gid, &reason, now),
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(&gid, now),
            GroupState::Empty | GroupState::Dead => {
                tracing::error!(group = %gid, state = ?state, "static member rejoined a group without members");
                Vec::new()
            }
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        gid: &str,
        reason: &str,
        now: i64,
    ) -> Vec<Append> {
        match self.groups.get(gid) {
            Some(g) if g.can_rebalance() => self.prepare_rebalance(gid, reason, now),
            Some(_) => self.maybe_complete_join_phase(gid, now),
            None => Vec::new(),
        }
    }

    fn maybe_complete_join_phase(&mut self, gid: &str, now: i64) -> Vec<Append> {
        match self.groups.get(gid) {
            Some(g)
                if g.is(GroupState::PreparingRebalance)
                    && g.has_all_members_joined()
                    && g.previous_state() != GroupState::Empty =>
            {
                self.complete_join(gid, now)
            }
            _ => Vec::new(),
        }
    }

    fn prepare_rebalance(&mut self, gid: &str, reason: &str, now: i64) -> Vec<Append> {
        if self
            .groups
            .get(gid)
            .is_some_and(|g| g.is(GroupState::CompletingRebalance))
        {
            self.reset_and_propagate_assignment_error(gid, Error::RebalanceInProgress, now);
        }
        self.remove_sync_expiration(gid);
        let delay = self.config.initial_rebalance_delay_ms;
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        let initial = g.is(GroupState::Empty);
        let remaining = (g.rebalance_timeout_ms() - delay).max(0);
        g.transition_to(GroupState::PreparingRebalance, now);
        tracing::info!(group = %gid, generation = g.generation_id, members = g.size(), %reason, "preparing to rebalance group");
        if initial {
            self.timer.schedule(
                TimerKey::Join(gid.to_string()),
                now + delay,
                TimerTask::InitialJoin { delay, remaining },
            );
            Vec::new()
        } else {
            self.maybe_complete_join_else_schedule(gid, now)
        }
    }

    fn maybe_complete_join_else_schedule(&mut self, gid: &str, now: i64) -> Vec<Append> {
        let Some(g) = self.groups.get(gid) else {
            return Vec::new();
        };
        if g.has_all_members_joined() {
            self.complete_join(gid, now)
        } else {
            let timeout = g.rebalance_timeout_ms();
            self.timer.schedule(
                TimerKey::Join(gid.to_string()),
                now + timeout,
                TimerTask::CompleteJoin,
            );
            Vec::new()
        }
    }

    fn initial_join_expired(
        &mut self,
        gid: &str,
        delay: i64,
        remaining: i64,
        now: i64,
    ) -> Vec<Append> {
        let configured = self.config.initial_rebalance_delay_ms;
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        if g.new_member_added && remaining != 0 {
            // Members are still arriving: wait a little longer, up to the rebalance timeout.
            g.new_member_added = false;
            let new_delay = configured.min(remaining);
            let new_remaining = (remaining - delay).max(0);
            self.timer.schedule(
                TimerKey::Join(gid.to_string()),
                now + new_delay,
                TimerTask::InitialJoin {
                    delay: new_delay,
                    remaining: new_remaining,
                },
            );
            Vec::new()
        } else {
            self.complete_join(gid, now)
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, a new generation
    /// starts, and every parked JoinGroup gets its answer (the leader with all members).
    fn complete_join(&mut self, gid: &str, now: i64) -> Vec<Append> {
        self.timer.cancel(&TimerKey::Join(gid.to_string()));
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        let gone = g.not_yet_rejoined_dynamic_members();
        for m in &gone {
            g.remove(m);
        }
        if !gone.is_empty() {
            tracing::info!(group = %gid, members = ?gone, "removed dynamic members that did not rejoin");
        }
        for m in &gone {
            self.cancel_heartbeat(gid, m);
        }
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        if g.is(GroupState::Dead) {
            return Vec::new();
        }
        if !g.maybe_elect_new_joined_leader() && g.size() > 0 {
            // Nobody rejoined: wait another rebalance timeout for the sessions to expire.
            tracing::error!(group = %gid, "group could not complete rebalance because no members rejoined");
            let timeout = g.rebalance_timeout_ms();
            self.timer.schedule(
                TimerKey::Join(gid.to_string()),
                now + timeout,
                TimerTask::CompleteJoin,
            );
            return Vec::new();
        }
        g.init_next_generation(now);
        if g.is(GroupState::Empty) {
            tracing::info!(group = %gid, generation = g.generation_id, "group is now empty");
            let record = records::group_metadata_value(&g.to_record(&HashMap::new(), now));
            let gid = gid.to_string();
            return vec![Append::new(
                vec![Record {
                    key: records::group_metadata_key(&gid),
                    value: Some(record),
                }],
                move |_, result, _| {
                    if let Err(e) = result {
                        // Harmless: no member depends on it; a reload sees the previous
                        // generation, whose members then time out.
                        tracing::warn!(group = %gid, error = ?e, "cannot write the empty group's metadata");
                    }
                    Vec::new()
                },
            )];
        }
        tracing::info!(group = %gid, generation = g.generation_id, members = g.size(), protocol = ?g.protocol_name, "group rebalanced: join phase complete");
        let generation = g.generation_id;
        let timeout = g.rebalance_timeout_ms();
        let ids = g.member_ids();
        for id in &ids {
            let is_leader = g.is_leader(id);
            let answer = current_generation_answer(g, id, is_leader);
            g.complete_join(id, answer);
            if let Some(m) = g.member_mut(id) {
                m.is_new = false;
            }
            g.add_pending_sync_member(id);
        }
        for id in &ids {
            self.reschedule_member_session(gid, id, now);
        }
        self.timer.schedule(
            TimerKey::Sync(gid.to_string()),
            now + timeout,
            TimerTask::ExpireSync { generation },
        );
        Vec::new()
    }

    fn expire_heartbeat(&mut self, gid: &str, mid: &str, now: i64) -> Vec<Append> {
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        if g.is(GroupState::Dead) {
            return Vec::new();
        }
        if g.is_pending_member(mid) {
            tracing::info!(group = %gid, member = %mid, "pending member removed after its session timeout");
            g.remove(mid);
            return self.maybe_complete_join_if_all_joined(gid, now);
        }
        match g.member(mid) {
            Some(m) if !m.has_satisfied_heartbeat() => {
                tracing::info!(group = %gid, member = %mid, "member session expired; removing it from the group");
                self.remove_member_and_update(
                    gid,
                    mid,
                    &format!("removing member {mid} on heartbeat expiration"),
                    now,
                )
            }
            _ => Vec::new(),
        }
    }

    fn maybe_complete_join_if_all_joined(&mut self, gid: &str, now: i64) -> Vec<Append> {
        match self.groups.get(gid) {
            Some(g) if g.is(GroupState::PreparingRebalance) && g.has_all_members_joined() => {
                self.complete_join(gid, now)
            }
            _ => Vec::new(),
        }
    }

    /// Removes a member (session expiry, LeaveGroup) and moves the group on.
    fn remove_member_and_update(
        &mut self,
        gid: &str,
        mid: &str,
        reason: &str,
        now: i64,
    ) -> Vec<Append> {
        self.remove_member(gid, mid);
        match self.groups.get(gid).map(ClassicGroup::state) {
            Some(GroupState::Stable) | Some(GroupState::CompletingRebalance) => {
                self.maybe_prepare_rebalance_or_complete_join(gid, reason, now)
            }
            Some(GroupState::PreparingRebalance) => {
                self.maybe_complete_join_if_all_joined(gid, now)
            }
            _ => Vec::new(),
        }
    }

    /// Drops a member, answering its parked requests with UNKNOWN_MEMBER_ID so a live
    /// client rejoins.
    fn remove_member(&mut self, gid: &str, mid: &str) {
        self.cancel_heartbeat(gid, mid);
        if let Some(g) = self.groups.get_mut(gid) {
            g.complete_join(mid, JoinResult::error("", Error::UnknownMemberId));
            g.complete_sync(mid, SyncResult::error(Error::UnknownMemberId));
            g.remove(mid);
        }
    }

    // ------------------------------------------------------------------ SyncGroup

    pub fn sync_group(
        &mut self,
        req: SyncRequest,
        reply: Reply<SyncResult>,
        now: i64,
    ) -> Vec<Append> {
        if req.group_id.is_empty() {
            let _ = reply.send(SyncResult::error(Error::InvalidGroupId));
            return Vec::new();
        }
        let gid = req.group_id.clone();
        let mid = req.member_id.clone();
        let Some(g) = self.groups.get_mut(&gid) else {
            let _ = reply.send(SyncResult::error(Error::UnknownMemberId));
            return Vec::new();
        };
        if g.is(GroupState::Empty) {
            let _ = reply.send(SyncResult::error(Error::UnknownMemberId));
            return Vec::new();
        }
        let invalid = if g.is(GroupState::Dead) {
            Some(Error::CoordinatorNotAvailable)
        } else if let Err(e) = g.validate_member(&mid, req.group_instance_id.as_deref()) {
            Some(e)
        } else if req.generation_id != g.generation_id {
            Some(Error::IllegalGeneration)
        } else if inconsistent(&req.protocol_type, &g.protocol_type)
            || inconsistent(&req.protocol_name, &g.protocol_name)
        {
            Some(Error::InconsistentGroupProtocol)
        } else {
            None
        };
        if let Some(e) = invalid {
            let _ = reply.send(SyncResult::error(e));
            return Vec::new();
        }
        match g.state() {
            GroupState::PreparingRebalance => {
                let _ = reply.send(SyncResult::error(Error::RebalanceInProgress));
                Vec::new()
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = g.member_mut(&mid) {
                    if let Some(old) = m.awaiting_sync.replace(reply) {
                        let _ = old.send(SyncResult::error(Error::RebalanceInProgress));
                    }
                }
                self.remove_pending_sync_member(&gid, &mid);
                let Some(g) = self.groups.get(&gid) else {
                    return Vec::new();
                };
                if !g.is_leader(&mid) {
                    return Vec::new();
                }
                tracing::info!(group = %gid, leader = %mid, generation = g.generation_id, members = g.size(), static_members = g.static_member_count(), "assignment received from the group leader");
                let mut assignment: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                for id in g.member_ids() {
                    assignment.entry(id).or_default();
                }
                // Assignments for ids that are not members are not stored (Kafka writes
                // only the members' entries).
                let record = records::group_metadata_value(&g.to_record(&assignment, now));
                let generation = g.generation_id;
                vec![Append::new(
                    vec![Record {
                        key: records::group_metadata_key(&gid),
                        value: Some(record),
                    }],
                    move |shard, result, now| {
                        let current = shard.groups.get(&gid).is_some_and(|g| {
                            g.is(GroupState::CompletingRebalance) && g.generation_id == generation
                        });
                        if !current {
                            return Vec::new();
                        }
                        match result {
                            Err(e) => {
                                let e = coordinator_error(e);
                                shard.reset_and_propagate_assignment_error(&gid, e, now);
                                shard.maybe_prepare_rebalance_or_complete_join(
                                    &gid,
                                    &format!("error {e:?} when storing group assignment during SyncGroup (member {mid})"),
                                    now,
                                )
                            }
                            Ok(_) => {
                                if let Some(g) = shard.groups.get_mut(&gid) {
                                    for id in g.member_ids() {
                                        let a = assignment.get(&id).cloned().unwrap_or_default();
                                        g.set_assignment(&id, a);
                                    }
                                }
                                shard.propagate_assignment(&gid, None, now);
                                if let Some(g) = shard.groups.get_mut(&gid) {
                                    g.transition_to(GroupState::Stable, now);
                                    tracing::info!(group = %gid, generation, "group is stable");
                                }
                                Vec::new()
                            }
                        }
                    },
                )]
            }
            GroupState::Stable => {
                let answer = SyncResult {
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: g
                        .member(&mid)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default(),
                    error: None,
                };
                self.remove_pending_sync_member(&gid, &mid);
                let _ = reply.send(answer);
                Vec::new()
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = reply.send(SyncResult::error(Error::UnknownMemberId));
                Vec::new()
            }
        }
    }

    fn remove_pending_sync_member(&mut self, gid: &str, mid: &str) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        g.remove_pending_sync_member(mid);
        let cancel = match g.state() {
            GroupState::CompletingRebalance | GroupState::Stable => {
                g.has_received_sync_from_all_members()
            }
            _ => true,
        };
        if cancel {
            self.timer.cancel(&TimerKey::Sync(gid.to_string()));
        }
    }

    fn remove_sync_expiration(&mut self, gid: &str) {
        if let Some(g) = self.groups.get_mut(gid) {
            g.clear_pending_sync_members();
        }
        self.timer.cancel(&TimerKey::Sync(gid.to_string()));
    }

    fn expire_pending_sync(&mut self, gid: &str, generation: i32, now: i64) -> Vec<Append> {
        let Some(g) = self.groups.get(gid) else {
            return Vec::new();
        };
        if g.generation_id != generation
            || !matches!(
                g.state(),
                GroupState::CompletingRebalance | GroupState::Stable
            )
            || g.has_received_sync_from_all_members()
        {
            return Vec::new();
        }
        let pending = g.pending_sync_members();
        for m in &pending {
            self.remove_member(gid, m);
        }
        tracing::info!(group = %gid, members = ?pending, "removed members that did not send SyncGroup in time");
        self.prepare_rebalance(
            gid,
            &format!("removing {pending:?} on pending sync request expiration"),
            now,
        )
    }

    fn reset_and_propagate_assignment_error(&mut self, gid: &str, error: Error, now: i64) {
        if let Some(g) = self.groups.get_mut(gid) {
            debug_assert!(g.is(GroupState::CompletingRebalance));
            for id in g.member_ids() {
                g.set_assignment(&id, Bytes::new());
            }
        }
        self.propagate_assignment(gid, Some(error), now);
    }

    /// Answers every parked SyncGroup with the member's assignment (or `error`).
    fn propagate_assignment(&mut self, gid: &str, error: Option<Error>, now: i64) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let (ptype, pname) = match error {
            None => (g.protocol_type.clone(), g.protocol_name.clone()),
            Some(_) => (None, None),
        };
        let mut answered = Vec::new();
        for id in g.member_ids() {
            let assignment = g
                .member(&id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            let result = SyncResult {
                protocol_type: ptype.clone(),
                protocol_name: pname.clone(),
                assignment,
                error,
            };
            if g.complete_sync(&id, result) {
                answered.push(id);
            }
        }
        // The session restarts once the member has its answer.
        for id in answered {
            self.reschedule_member_session(gid, &id, now);
        }
    }

    // ------------------------------------------------------------------ Heartbeat

    pub fn heartbeat(&mut self, req: HeartbeatRequest, now: i64) -> Option<Error> {
        if req.group_id.is_empty() {
            return Some(Error::InvalidGroupId);
        }
        let Some(g) = self.groups.get(&req.group_id) else {
            return Some(Error::UnknownMemberId);
        };
        if g.is(GroupState::Dead) {
            return Some(Error::CoordinatorNotAvailable);
        }
        if let Err(e) = g.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
            return Some(e);
        }
        if req.generation_id != g.generation_id {
            return Some(Error::IllegalGeneration);
        }
        match g.state() {
            GroupState::Empty | GroupState::Dead => Some(Error::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.reschedule_member_session(&req.group_id, &req.member_id, now);
                Some(Error::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.reschedule_member_session(&req.group_id, &req.member_id, now);
                None
            }
        }
    }

    // ------------------------------------------------------------------ LeaveGroup

    pub fn leave_group(
        &mut self,
        group_id: &str,
        members: Vec<LeaveMember>,
        now: i64,
    ) -> (LeaveResult, Vec<Append>) {
        let unknown_all = |members: &[LeaveMember]| LeaveResult {
            error: None,
            members: members
                .iter()
                .map(|m| {
                    (
                        m.member_id.clone(),
                        m.group_instance_id.clone(),
                        Some(Error::UnknownMemberId),
                    )
                })
                .collect(),
        };
        if group_id.is_empty() {
            return (
                LeaveResult {
                    error: Some(Error::InvalidGroupId),
                    members: Vec::new(),
                },
                Vec::new(),
            );
        }
        let Some(g) = self.groups.get(group_id) else {
            return (unknown_all(&members), Vec::new());
        };
        if g.is(GroupState::Dead) {
            return (
                LeaveResult {
                    error: Some(Error::CoordinatorNotAvailable),
                    members: Vec::new(),
                },
                Vec::new(),
            );
        }
        let mut results = Vec::with_capacity(members.len());
        let mut left = Vec::new();
        for m in &members {
            let reason = m.reason.as_deref().unwrap_or("not provided");
            let outcome = match self.groups.get(group_id) {
                None => Some(Error::UnknownMemberId),
                Some(g) if m.member_id.is_empty() => {
                    // Administrative removal by group.instance.id.
                    match m
                        .group_instance_id
                        .as_deref()
                        .and_then(|i| g.static_member_id(i))
                    {
                        Some(id) => {
                            let id = id.to_string();
                            tracing::info!(group = %group_id, member = %id, %reason, "static member removed by LeaveGroup");
                            self.remove_member(group_id, &id);
                            left.push(id);
                            None
                        }
                        None => Some(Error::UnknownMemberId),
                    }
                }
                Some(g) if g.is_pending_member(&m.member_id) => {
                    if let Some(g) = self.groups.get_mut(group_id) {
                        g.remove(&m.member_id);
                    }
                    self.cancel_heartbeat(group_id, &m.member_id);
                    left.push(m.member_id.clone());
                    None
                }
                Some(g) => match g.validate_member(&m.member_id, m.group_instance_id.as_deref()) {
                    Ok(()) => {
                        tracing::info!(group = %group_id, member = %m.member_id, %reason, "member left the group");
                        self.remove_member(group_id, &m.member_id);
                        left.push(m.member_id.clone());
                        None
                    }
                    Err(e) => Some(e),
                },
            };
            results.push((m.member_id.clone(), m.group_instance_id.clone(), outcome));
        }
        let mut appends = Vec::new();
        if !left.is_empty() {
            let reason = format!("explicit LeaveGroup request for {left:?}");
            appends = match self.groups.get(group_id).map(ClassicGroup::state) {
                Some(GroupState::Stable) | Some(GroupState::CompletingRebalance) => {
                    self.maybe_prepare_rebalance_or_complete_join(group_id, &reason, now)
                }
                Some(GroupState::PreparingRebalance) => {
                    self.maybe_complete_join_phase(group_id, now)
                }
                _ => Vec::new(),
            };
        }
        (
            LeaveResult {
                error: None,
                members: results,
            },
            appends,
        )
    }

    // ------------------------------------------------------------------ offsets

    /// OffsetCommit: validates the member and generation, then appends one record per
    /// partition; the reply waits for the records to be replicated.
    pub fn commit_offsets(
        &mut self,
        req: CommitRequest,
        reply: Reply<CommitResult>,
        now: i64,
    ) -> Vec<Append> {
        let fail_all = |e: Error| -> CommitResult {
            req.partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition, Some(e)))
                .collect()
        };
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id < 0 {
                // A simple consumer (no group management) committing: an empty group
                // without protocol holds its offsets.
                self.groups
                    .insert(req.group_id.clone(), ClassicGroup::new(&req.group_id, now));
            } else {
                let e = if req.api_version >= 9 {
                    Error::GroupIdNotFound
                } else {
                    Error::IllegalGeneration
                };
                let _ = reply.send(fail_all(e));
                return Vec::new();
            }
        }
        let Some(g) = self.groups.get(&req.group_id) else {
            return Vec::new();
        };
        if let Err(e) = validate_offset_commit(g, &req) {
            let _ = reply.send(fail_all(e));
            return Vec::new();
        }
        if matches!(
            g.state(),
            GroupState::Stable | GroupState::PreparingRebalance
        ) {
            // A commit keeps the member's session alive.
            self.reschedule_member_session(&req.group_id, &req.member_id, now);
        }
        let expire_timestamp = (req.retention_time_ms != -1).then(|| now + req.retention_time_ms);
        let max = self.config.offset_metadata_max_bytes;
        let mut results: CommitResult = Vec::with_capacity(req.partitions.len());
        let mut staged: Vec<((String, i32), OffsetCommitValue)> = Vec::new();
        for p in &req.partitions {
            if p.metadata.as_deref().is_some_and(|m| utf16_len(m) > max) {
                results.push((
                    p.topic.clone(),
                    p.partition,
                    Some(Error::OffsetMetadataTooLarge),
                ));
                continue;
            }
            results.push((p.topic.clone(), p.partition, None));
            staged.push((
                (p.topic.clone(), p.partition),
                OffsetCommitValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata.clone().unwrap_or_default(),
                    commit_timestamp: now,
                    expire_timestamp,
                },
            ));
        }
        if staged.is_empty() {
            let _ = reply.send(results);
            return Vec::new();
        }
        let gid = req.group_id.clone();
        let pending = self.pending_commits.entry(gid.clone()).or_default();
        for (tp, _) in &staged {
            *pending.entry(tp.clone()).or_default() += 1;
        }
        let recs = staged
            .iter()
            .map(|((topic, partition), v)| Record {
                key: records::offset_commit_key(&gid, topic, *partition),
                value: Some(records::offset_commit_value(v)),
            })
            .collect();
        vec![Append::new(recs, move |shard, result, _| {
            if let Some(pending) = shard.pending_commits.get_mut(&gid) {
                for (tp, _) in &staged {
                    if let Some(n) = pending.get_mut(tp) {
                        *n -= 1;
                        if *n == 0 {
                            pending.remove(tp);
                        }
                    }
                }
                if pending.is_empty() {
                    shard.pending_commits.remove(&gid);
                }
            }
            match result {
                Ok(base) => {
                    let offsets = shard.offsets.entry(gid.clone()).or_default();
                    for (i, (tp, v)) in staged.into_iter().enumerate() {
                        let committed = CommittedOffset {
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_timestamp: v.commit_timestamp,
                            expire_timestamp: v.expire_timestamp,
                            record_offset: base + i as i64,
                        };
                        match offsets.get(&tp) {
                            Some(existing) if existing.record_offset > committed.record_offset => {}
                            _ => {
                                offsets.insert(tp, committed);
                            }
                        }
                    }
                }
                Err(e) => {
                    let e = coordinator_error(e);
                    for r in results.iter_mut() {
                        if r.2.is_none() {
                            r.2 = Some(e);
                        }
                    }
                }
            }
            let _ = reply.send(results);
            Vec::new()
        })]
    }

    /// Whether a commit for any of `partitions` (all of the group's if `None`) is still
    /// being replicated (OffsetFetch with `require_stable` waits for these).
    pub fn has_pending_commits(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> bool {
        let Some(pending) = self.pending_commits.get(group_id) else {
            return false;
        };
        match partitions {
            None => !pending.is_empty(),
            Some(topics) => topics
                .iter()
                .any(|(t, ps)| ps.iter().any(|p| pending.contains_key(&(t.clone(), *p)))),
        }
    }

    /// OffsetFetch: committed offsets of `partitions` (every committed partition when
    /// `None`). Unknown groups and partitions answer -1, as in Kafka.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, Vec<FetchedOffset>)> {
        let live = self
            .groups
            .get(group_id)
            .is_some_and(|g| !g.is(GroupState::Dead));
        let offsets = if live {
            self.offsets.get(group_id)
        } else {
            None
        };
        match partitions {
            Some(topics) => topics
                .iter()
                .map(|(topic, parts)| {
                    let fetched = parts
                        .iter()
                        .map(
                            |&p| match offsets.and_then(|o| o.get(&(topic.clone(), p))) {
                                Some(c) => FetchedOffset {
                                    partition: p,
                                    offset: c.offset,
                                    leader_epoch: c.leader_epoch,
                                    metadata: c.metadata.clone(),
                                },
                                None => FetchedOffset {
                                    partition: p,
                                    offset: -1,
                                    leader_epoch: -1,
                                    metadata: String::new(),
                                },
                            },
                        )
                        .collect();
                    (topic.clone(), fetched)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
                for ((topic, p), c) in offsets.into_iter().flatten() {
                    by_topic
                        .entry(topic.clone())
                        .or_default()
                        .push(FetchedOffset {
                            partition: *p,
                            offset: c.offset,
                            leader_epoch: c.leader_epoch,
                            metadata: c.metadata.clone(),
                        });
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// OffsetDelete: removes committed offsets of topics the group does not consume.
    /// The group-level error comes first; per-partition errors otherwise. The reply
    /// waits for the tombstones.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
        reply: Reply<Result<OffsetDeleteResult, Error>>,
    ) -> Vec<Append> {
        if group_id.is_empty() {
            let _ = reply.send(Err(Error::InvalidGroupId));
            return Vec::new();
        }
        let Some(g) = self.groups.get(group_id) else {
            let _ = reply.send(Err(Error::GroupIdNotFound));
            return Vec::new();
        };
        match g.state() {
            GroupState::Dead => {
                let _ = reply.send(Err(Error::GroupIdNotFound));
                return Vec::new();
            }
            GroupState::Stable
            | GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
                if !g.uses_consumer_protocol() =>
            {
                let _ = reply.send(Err(Error::NonEmptyGroup));
                return Vec::new();
            }
            _ => {}
        }
        let mut result: OffsetDeleteResult = Vec::new();
        let mut removed: RemovedOffsets = Vec::new();
        for (topic, parts) in topics {
            if g.is_subscribed_to_topic(&topic) {
                let errs = parts
                    .iter()
                    .map(|p| (*p, Some(Error::GroupSubscribedToTopic)))
                    .collect();
                result.push((topic, errs));
                continue;
            }
            for p in &parts {
                let key = (topic.clone(), *p);
                if let Some(c) = self.offsets.get_mut(group_id).and_then(|o| o.remove(&key)) {
                    removed.push((key, c));
                }
            }
            result.push((topic, parts.iter().map(|p| (*p, None)).collect()));
        }
        if removed.is_empty() {
            let _ = reply.send(Ok(result));
            return Vec::new();
        }
        let gid = group_id.to_string();
        let recs = removed
            .iter()
            .map(|((t, p), _)| Record {
                key: records::offset_commit_key(&gid, t, *p),
                value: None,
            })
            .collect();
        vec![Append::new(recs, move |shard, outcome, _| {
            match outcome {
                Ok(_) => {
                    tracing::info!(group = %gid, offsets = removed.len(), "offsets deleted");
                    let _ = reply.send(Ok(result));
                }
                Err(e) => {
                    shard.restore_offsets(&gid, removed);
                    let _ = reply.send(Err(coordinator_error(e)));
                }
            }
            Vec::new()
        })]
    }

    /// Puts back offsets whose tombstones failed, unless newer ones arrived meanwhile.
    fn restore_offsets(&mut self, gid: &str, removed: RemovedOffsets) {
        if removed.is_empty() {
            return;
        }
        if !self.groups.contains_key(gid) {
            return;
        }
        let offsets = self.offsets.entry(gid.to_string()).or_default();
        for (tp, c) in removed {
            offsets.entry(tp).or_insert(c);
        }
    }

    // ------------------------------------------------------------------ groups

    /// DeleteGroups: each Empty group and its offsets are removed (tombstones); the
    /// reply waits for the records. Errors per group: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP.
    pub fn delete_groups(
        &mut self,
        group_ids: Vec<String>,
        reply: Reply<Vec<(String, Option<Error>)>>,
    ) -> Vec<Append> {
        let mut results = Vec::new();
        let mut recs = Vec::new();
        let mut removed: Vec<(String, ClassicGroup, GroupOffsets)> = Vec::new();
        for gid in group_ids {
            let state = self.groups.get(&gid).map(ClassicGroup::state);
            match state {
                None | Some(GroupState::Dead) => results.push((gid, Some(Error::GroupIdNotFound))),
                Some(GroupState::Empty) => {
                    let offsets = self.offsets.remove(&gid).unwrap_or_default();
                    for (t, p) in offsets.keys() {
                        recs.push(Record {
                            key: records::offset_commit_key(&gid, t, *p),
                            value: None,
                        });
                    }
                    recs.push(Record {
                        key: records::group_metadata_key(&gid),
                        value: None,
                    });
                    if let Some(g) = self.groups.remove(&gid) {
                        removed.push((gid.clone(), g, offsets));
                    }
                    results.push((gid, None));
                }
                Some(_) => results.push((gid, Some(Error::NonEmptyGroup))),
            }
        }
        if recs.is_empty() {
            let _ = reply.send(results);
            return Vec::new();
        }
        vec![Append::new(recs, move |shard, outcome, _| {
            match outcome {
                Ok(_) => {
                    let names: Vec<&str> = removed.iter().map(|(g, _, _)| g.as_str()).collect();
                    tracing::info!(groups = ?names, "groups deleted");
                }
                Err(e) => {
                    let e = coordinator_error(e);
                    let failed: Vec<String> = removed.iter().map(|(g, _, _)| g.clone()).collect();
                    shard.restore_groups(removed);
                    for r in results.iter_mut() {
                        if failed.contains(&r.0) {
                            r.1 = Some(e);
                        }
                    }
                }
            }
            let _ = reply.send(results);
            Vec::new()
        })]
    }

    fn restore_groups(&mut self, removed: Vec<(String, ClassicGroup, GroupOffsets)>) {
        for (gid, g, offsets) in removed {
            if self.groups.contains_key(&gid) {
                continue; // recreated meanwhile: the new group wins
            }
            self.groups.insert(gid.clone(), g);
            let current = self.offsets.entry(gid).or_default();
            for (tp, c) in offsets {
                current.entry(tp).or_insert(c);
            }
        }
    }

    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        match self.groups.get(group_id) {
            Some(g) => g.describe(),
            None => GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead.as_str().to_string(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// Groups in any of `states` (lower-case names; empty = all).
    pub fn list_groups(&self, states: &[String]) -> Vec<ListedGroup> {
        self.groups
            .values()
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.trim().eq_ignore_ascii_case(g.state().as_str()))
            })
            .map(|g| {
                (
                    g.group_id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state(),
                )
            })
            .collect()
    }

    // ------------------------------------------------------------------ expiration

    /// Kafka's periodic cleanup: expires committed offsets past `offsets.retention.minutes`
    /// (for Empty groups counted from when the group became Empty, for simple groups and
    /// for unsubscribed topics of Stable consumer groups from the commit), writing
    /// tombstones; deletes Empty groups left without offsets.
    pub fn cleanup_expired_offsets(&mut self, now: i64) -> Vec<Append> {
        let retention = self.config.offsets_retention_ms;
        let mut recs = Vec::new();
        let mut expired_offsets: Vec<(String, (String, i32), CommittedOffset)> = Vec::new();
        let mut deleted_groups: Vec<(String, ClassicGroup)> = Vec::new();
        let gids: Vec<String> = self.groups.keys().cloned().collect();
        for gid in gids {
            let Some(g) = self.groups.get(&gid) else {
                continue;
            };
            let mut all_expired = true;
            if let Some(offsets) = self.offsets.get(&gid) {
                // The base timestamp an offset's age counts from, if it may expire at all.
                let base: Option<AgeBase> = match &g.protocol_type {
                    Some(_) if g.is(GroupState::Empty) => {
                        let state_ts = g.current_state_timestamp;
                        Some(Box::new(move |c: &CommittedOffset| {
                            state_ts.unwrap_or(c.commit_timestamp)
                        }))
                    }
                    Some(_)
                        if g.uses_consumer_protocol()
                            && g.subscribed_topics().is_some()
                            && g.is(GroupState::Stable) =>
                    {
                        Some(Box::new(|c: &CommittedOffset| c.commit_timestamp))
                    }
                    Some(_) => None,
                    None => Some(Box::new(|c: &CommittedOffset| c.commit_timestamp)),
                };
                match base {
                    None => all_expired = false,
                    Some(base) => {
                        let pending = self.pending_commits.get(&gid);
                        for (tp, c) in offsets {
                            if g.is_subscribed_to_topic(&tp.0) {
                                all_expired = false;
                                continue;
                            }
                            let expired = match c.expire_timestamp {
                                Some(expire) => now >= expire,
                                None => now - base(c) >= retention,
                            };
                            if expired && !pending.is_some_and(|p| p.contains_key(tp)) {
                                expired_offsets.push((gid.clone(), tp.clone(), c.clone()));
                            } else {
                                all_expired = false;
                            }
                        }
                    }
                }
            }
            if all_expired && g.is(GroupState::Empty) && !self.pending_commits.contains_key(&gid) {
                if let Some(g) = self.groups.remove(&gid) {
                    deleted_groups.push((gid.clone(), g));
                }
            }
        }
        for (gid, tp, _) in &expired_offsets {
            if let Some(o) = self.offsets.get_mut(gid) {
                o.remove(tp);
                if o.is_empty() {
                    self.offsets.remove(gid);
                }
            }
            recs.push(Record {
                key: records::offset_commit_key(gid, &tp.0, tp.1),
                value: None,
            });
        }
        for (gid, _) in &deleted_groups {
            recs.push(Record {
                key: records::group_metadata_key(gid),
                value: None,
            });
        }
        if recs.is_empty() {
            return Vec::new();
        }
        tracing::info!(
            partition = self.partition,
            offsets = expired_offsets.len(),
            groups = deleted_groups.len(),
            "expired committed offsets and empty groups"
        );
        vec![Append::new(recs, move |shard, outcome, _| {
            if let Err(e) = outcome {
                tracing::warn!(error = ?e, "cannot write expiration tombstones; restoring");
                let mut by_group: HashMap<String, RemovedOffsets> = HashMap::new();
                for (gid, tp, c) in expired_offsets {
                    by_group.entry(gid).or_default().push((tp, c));
                }
                shard.restore_groups(
                    deleted_groups
                        .into_iter()
                        .map(|(gid, g)| (gid, g, GroupOffsets::new()))
                        .collect(),
                );
                for (gid, offsets) in by_group {
                    shard.restore_offsets(&gid, offsets);
                }
            }
            Vec::new()
        })]
    }

    /// Kafka's `onPartitionsDeleted`: committed offsets of deleted topics are removed
    /// (tombstones), whatever the group's state.
    pub fn remove_offsets_of_topics(&mut self, deleted: &[String]) -> Vec<Append> {
        let mut recs = Vec::new();
        let mut removed: Vec<(String, RemovedOffsets)> = Vec::new();
        for (gid, offsets) in self.offsets.iter_mut() {
            let gone: Vec<(String, i32)> = offsets
                .keys()
                .filter(|(t, _)| deleted.contains(t))
                .cloned()
                .collect();
            let mut group_removed = Vec::new();
            for tp in gone {
                if let Some(c) = offsets.remove(&tp) {
                    recs.push(Record {
                        key: records::offset_commit_key(gid, &tp.0, tp.1),
                        value: None,
                    });
                    group_removed.push((tp, c));
                }
            }
            if !group_removed.is_empty() {
                removed.push((gid.clone(), group_removed));
            }
        }
        self.offsets.retain(|_, o| !o.is_empty());
        if recs.is_empty() {
            return Vec::new();
        }
        tracing::info!(partition = self.partition, offsets = recs.len(), topics = ?deleted, "removed committed offsets of deleted topics");
        vec![Append::new(recs, move |shard, outcome, _| {
            if let Err(e) = outcome {
                tracing::warn!(error = ?e, "cannot write tombstones for deleted topics' offsets; restoring");
                for (gid, offsets) in removed {
                    shard.restore_offsets(&gid, offsets);
                }
            }
            Vec::new()
        })]
    }

    // ------------------------------------------------------------------ load / unload

    /// Replays one record of the partition's log (loading). Later records win.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>, record_offset: i64, now: i64) {
        let key = match records::decode_key(key) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(partition = self.partition, offset = record_offset, error = %e, "skipping undecodable __consumer_offsets record");
                return;
            }
        };
        match key {
            RecordKey::Offset(k) => match value {
                Some(v) => match records::decode_offset_commit_value(v) {
                    Ok(v) => {
                        self.groups
                            .entry(k.group.clone())
                            .or_insert_with(|| ClassicGroup::new(&k.group, now));
                        self.offsets.entry(k.group).or_default().insert(
                            (k.topic, k.partition),
                            CommittedOffset {
                                offset: v.offset,
                                leader_epoch: v.leader_epoch,
                                metadata: v.metadata,
                                commit_timestamp: v.commit_timestamp,
                                expire_timestamp: v.expire_timestamp,
                                record_offset,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(offset = record_offset, error = %e, "skipping undecodable offset commit")
                    }
                },
                None => {
                    if let Some(o) = self.offsets.get_mut(&k.group) {
                        o.remove(&(k.topic, k.partition));
                        if o.is_empty() {
                            self.offsets.remove(&k.group);
                        }
                    }
                }
            },
            RecordKey::Group(gid) => match value {
                Some(v) => match records::decode_group_metadata_value(v) {
                    Ok(v) => {
                        self.groups
                            .insert(gid.clone(), ClassicGroup::from_record(&gid, &v));
                    }
                    Err(e) => {
                        tracing::warn!(offset = record_offset, error = %e, "skipping undecodable group metadata")
                    }
                },
                None => {
                    self.groups.remove(&gid);
                }
            },
            RecordKey::Other(version) => {
                tracing::debug!(
                    version,
                    offset = record_offset,
                    "skipping a record type gregor does not use"
                );
            }
        }
    }

    /// Loading done: every loaded member must heartbeat within its session timeout;
    /// a group above `group.max.size` rebalances.
    pub fn finish_loading(&mut self, now: i64) -> Vec<Append> {
        let mut out = Vec::new();
        let gids: Vec<String> = self.groups.keys().cloned().collect();
        for gid in gids {
            let Some(g) = self.groups.get(&gid) else {
                continue;
            };
            tracing::info!(group = %gid, members = g.size(), generation = g.generation_id, state = g.state().as_str(), "loaded group");
            let ids = g.member_ids();
            let over = g.size() > self.config.max_size;
            for id in ids {
                self.reschedule_member_session(&gid, &id, now);
            }
            if over {
                out.extend(self.prepare_rebalance(
                    &gid,
                    "freshly-loaded group is over capacity",
                    now,
                ));
            }
        }
        out
    }

    /// Leadership moved away: every parked request gets NOT_COORDINATOR, the state goes.
    pub fn unload(&mut self, now: i64) {
        for (gid, g) in self.groups.iter_mut() {
            let previous = g.state();
            g.transition_to(GroupState::Dead, now);
            for id in g.member_ids() {
                match previous {
                    GroupState::PreparingRebalance => {
                        g.complete_join(&id, JoinResult::error(&id, Error::NotCoordinator));
                    }
                    GroupState::CompletingRebalance | GroupState::Stable => {
                        g.complete_sync(&id, SyncResult::error(Error::NotCoordinator));
                    }
                    _ => {}
                }
                // Anything else still parked (a join during CompletingRebalance).
                g.complete_join(&id, JoinResult::error(&id, Error::NotCoordinator));
            }
            tracing::debug!(group = %gid, "group unloaded");
        }
        self.groups.clear();
        self.offsets.clear();
        self.pending_commits.clear();
        self.timer.clear();
    }
}

fn inconsistent(requested: &Option<String>, current: &Option<String>) -> bool {
    requested
        .as_ref()
        .is_some_and(|r| Some(r) != current.as_ref())
}

/// Kafka's `ClassicGroup.validateOffsetCommit` for plain (non-transactional) commits.
fn validate_offset_commit(g: &ClassicGroup, req: &CommitRequest) -> Result<(), Error> {
    if g.is(GroupState::Dead) {
        return Err(Error::CoordinatorNotAvailable);
    }
    if req.generation_id < 0 && g.is(GroupState::Empty) {
        // The admin client or a consumer without group management.
        return Ok(());
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        g.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != g.generation_id {
            return Err(Error::IllegalGeneration);
        }
    } else if !g.is(GroupState::Empty) {
        return Err(Error::UnknownMemberId);
    }
    if g.is(GroupState::CompletingRebalance) {
        return Err(Error::RebalanceInProgress);
    }
    Ok(())
}

/// The JoinGroup answer describing the group's current generation.
fn current_generation_answer(g: &ClassicGroup, member_id: &str, with_members: bool) -> JoinResult {
    JoinResult {
        members: if with_members {
            g.current_join_members()
        } else {
            Vec::new()
        },
        member_id: member_id.to_string(),
        generation_id: g.generation_id,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        leader_id: g.leader_id().unwrap_or_default().to_string(),
        skip_assignment: false,
        error: None,
    }
}
