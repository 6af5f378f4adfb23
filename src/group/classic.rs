//! One classic-protocol group: its members, the state of its rebalance, and the parked
//! JoinGroup/SyncGroup replies. This is the data structure (Kafka's `ClassicGroup` /
//! `ClassicGroupMember`); the transitions that span requests and timers live in
//! [`super::shard`].
//!
//! ```text
//!            join (first member)             all joined / rebalance timeout
//!   Empty ───────────────────────► Preparing ─────────────────────────────► Completing
//!     ▲                            Rebalance ◄──── member joins/leaves/fails ─ Rebalance
//!     │  everyone left                ▲   ▲                                     │ leader's
//!     └───────────────────────────────┘   └──── leader rejoins, member changes ─┤ SyncGroup
//!                                                 metadata, leaves, fails        ▼ stored
//!   Dead: unloaded (leadership moved) or deleted                              Stable
//! ```

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::ResponseError as Error;
use tokio::sync::oneshot;

use super::consumer_protocol;
use super::records::{GroupMetadataValue, MemberMetadataRecord};

/// A parked reply: the request handler awaits the receiving end.
pub type Reply<T> = oneshot::Sender<T>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports (DescribeGroups, ListGroups).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    fn valid_previous(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    /// Every member's metadata for the selected protocol; only the leader gets them.
    pub members: Vec<JoinMember>,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub skip_assignment: bool,
    pub error: Option<Error>,
}

impl JoinResult {
    pub fn error(member_id: &str, error: Error) -> JoinResult {
        JoinResult {
            members: Vec::new(),
            member_id: member_id.to_string(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            skip_assignment: false,
            error: Some(error),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
    pub error: Option<Error>,
}

impl SyncResult {
    pub fn error(error: Error) -> SyncResult {
        SyncResult {
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
            error: Some(error),
        }
    }
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// Supported protocols in the member's order of preference, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<Reply<JoinResult>>,
    pub awaiting_sync: Option<Reply<SyncResult>>,
    /// Joined but not yet part of a completed generation: its join may time out.
    pub is_new: bool,
}

impl Member {
    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    pub fn is_awaiting_sync(&self) -> bool {
        self.awaiting_sync.is_some()
    }

    pub fn is_static(&self) -> bool {
        self.group_instance_id.is_some()
    }

    /// Kafka's `hasSatisfiedHeartbeat`: a new member must complete its join; others are
    /// alive while parked in a join or sync.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.is_awaiting_join() || self.is_awaiting_sync())
    }

    /// Same protocols, same order, same metadata.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    /// The member's most preferred protocol among `candidates`.
    fn vote(&self, candidates: &HashSet<String>) -> Option<&str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(*name))
    }
}

pub struct ClassicGroup {
    pub group_id: String,
    state: GroupState,
    previous_state: GroupState,
    /// When the group entered its current state (ms); `None` for groups loaded from
    /// records older than GroupMetadataValue v2.
    pub current_state_timestamp: Option<i64>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation_id: i32,
    leader_id: Option<String>,
    members: IndexMap<String, Member>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending_members: HashSet<String>,
    num_awaiting_join: usize,
    /// Protocol name → number of members supporting it.
    supported_protocols: HashMap<String, usize>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync_members: HashSet<String>,
    /// For `consumer` groups: the union of the members' subscribed topics.
    subscribed_topics: Option<HashSet<String>>,
    /// A member joined during the initial (delayed) rebalance.
    pub new_member_added: bool,
}

impl ClassicGroup {
    pub fn new(group_id: &str, now: i64) -> ClassicGroup {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            current_state_timestamp: Some(now),
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashSet::new(),
            num_awaiting_join: 0,
            supported_protocols: HashMap::new(),
            pending_sync_members: HashSet::new(),
            subscribed_topics: None,
            new_member_added: false,
        }
    }

    /// A group rebuilt from its `GroupMetadataValue` record: Stable with its members, or
    /// Empty without.
    pub fn from_record(group_id: &str, v: &GroupMetadataValue) -> ClassicGroup {
        let mut g = ClassicGroup::new(group_id, 0);
        g.state = if v.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g.previous_state = g.state;
        g.generation_id = v.generation;
        g.protocol_type = Some(v.protocol_type.clone()).filter(|t| !t.is_empty());
        g.protocol_name = v.protocol.clone();
        g.current_state_timestamp = Some(v.current_state_timestamp).filter(|t| *t != -1);
        for m in &v.members {
            let member = Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout,
                session_timeout_ms: m.session_timeout,
                protocol_type: v.protocol_type.clone(),
                protocols: vec![(
                    v.protocol.clone().unwrap_or_default(),
                    m.subscription.clone(),
                )],
                assignment: m.assignment.clone(),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
            };
            g.add(member);
        }
        // add() made the first member leader; the record names the real one.
        if let Some(leader) = &v.leader {
            if g.members.contains_key(leader) {
                g.leader_id = Some(leader.clone());
            }
        }
        g.subscribed_topics = g.compute_subscribed_topics();
        g
    }

    // ---- state ----

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn previous_state(&self) -> GroupState {
        self.previous_state
    }

    pub fn is(&self, s: GroupState) -> bool {
        self.state == s
    }

    pub fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance
            .valid_previous()
            .contains(&self.state)
    }

    pub fn transition_to(&mut self, target: GroupState, now: i64) {
        assert!(
            target.valid_previous().contains(&self.state),
            "group {}: invalid transition {:?} -> {:?}",
            self.group_id,
            self.state,
            target
        );
        self.previous_state = self.state;
        self.state = target;
        self.current_state_timestamp = Some(now);
    }

    // ---- members ----

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    pub fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.get_mut(member_id)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member_ids(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.num_awaiting_join
    }

    pub fn static_member_id(&self, instance_id: &str) -> Option<&str> {
        self.static_members.get(instance_id).map(String::as_str)
    }

    pub fn static_member_count(&self) -> usize {
        self.static_members.len()
    }

    pub fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_members.contains(member_id)
    }

    pub fn add_pending_member(&mut self, member_id: &str) {
        debug_assert!(!self.has_member(member_id));
        self.pending_members.insert(member_id.to_string());
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join && self.pending_members.is_empty()
    }

    pub fn not_yet_rejoined_dynamic_members(&self) -> Vec<String> {
        self.members
            .values()
            .filter(|m| !m.is_awaiting_join() && !m.is_static())
            .map(|m| m.member_id.clone())
            .collect()
    }

    /// The largest rebalance timeout of the members (Kafka's group rebalance timeout).
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    /// Adds a member (its JoinGroup reply parked in `awaiting_join`, if any).
    pub fn add(&mut self, member: Member) {
        if let Some(instance) = &member.group_instance_id {
            debug_assert!(!self.static_members.contains_key(instance));
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        for (name, _) in &member.protocols {
            *self.supported_protocols.entry(name.clone()).or_default() += 1;
        }
        if member.is_awaiting_join() {
            self.num_awaiting_join += 1;
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member (or a pending member id). Parked replies are dropped: callers
    /// answer them first.
    pub fn remove(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.shift_remove(member_id);
        if let Some(m) = &removed {
            for (name, _) in &m.protocols {
                if let Some(n) = self.supported_protocols.get_mut(name) {
                    *n -= 1;
                    if *n == 0 {
                        self.supported_protocols.remove(name);
                    }
                }
            }
            if m.is_awaiting_join() {
                self.num_awaiting_join -= 1;
            }
            if let Some(instance) = &m.group_instance_id {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync_members.remove(member_id);
        removed
    }

    /// Replaces a member's protocols and timeouts and parks (or clears) its join reply.
    pub fn update_member(
        &mut self,
        member_id: &str,
        protocols: Vec<(String, Bytes)>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        reply: Option<Reply<JoinResult>>,
    ) {
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        for (name, _) in &m.protocols {
            if let Some(n) = self.supported_protocols.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    self.supported_protocols.remove(name);
                }
            }
        }
        for (name, _) in &protocols {
            *self.supported_protocols.entry(name.clone()).or_default() += 1;
        }
        m.protocols = protocols;
        m.rebalance_timeout_ms = rebalance_timeout_ms;
        m.session_timeout_ms = session_timeout_ms;
        let was_awaiting = m.is_awaiting_join();
        let will_await = reply.is_some();
        if let Some(old) = m.awaiting_join.take() {
            // A duplicate join from the same member: the older request gets nothing
            // useful any more; the client sees it superseded.
            let _ = old.send(JoinResult::error(member_id, Error::UnknownMemberId));
        }
        m.awaiting_join = reply;
        match (was_awaiting, will_await) {
            (false, true) => self.num_awaiting_join += 1,
            (true, false) => self.num_awaiting_join -= 1,
            _ => {}
        }
    }

    /// Answers a member's parked JoinGroup, if any.
    pub fn complete_join(&mut self, member_id: &str, result: JoinResult) -> bool {
        let Some(m) = self.members.get_mut(member_id) else {
            return false;
        };
        match m.awaiting_join.take() {
            Some(reply) => {
                self.num_awaiting_join -= 1;
                let _ = reply.send(result);
                true
            }
            None => false,
        }
    }

    /// Takes a member's parked JoinGroup reply without answering it.
    pub fn take_join_reply(&mut self, member_id: &str) -> Option<Reply<JoinResult>> {
        let reply = self.members.get_mut(member_id)?.awaiting_join.take()?;
        self.num_awaiting_join -= 1;
        Some(reply)
    }

    /// Answers a member's parked SyncGroup, if any.
    pub fn complete_sync(&mut self, member_id: &str, result: SyncResult) -> bool {
        match self
            .members
            .get_mut(member_id)
            .and_then(|m| m.awaiting_sync.take())
        {
            Some(reply) => {
                let _ = reply.send(result);
                true
            }
            None => false,
        }
    }

    /// Static membership: the member known as `old_id` comes back as `new_id`. Anyone
    /// still parked under the old id is fenced.
    pub fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) {
        let Some(mut m) = self.members.shift_remove(old_id) else {
            return;
        };
        if let Some(reply) = m.awaiting_join.take() {
            self.num_awaiting_join -= 1;
            let _ = reply.send(JoinResult::error(old_id, Error::FencedInstanceId));
        }
        if let Some(reply) = m.awaiting_sync.take() {
            let _ = reply.send(SyncResult::error(Error::FencedInstanceId));
        }
        m.member_id = new_id.to_string();
        self.members.insert(new_id.to_string(), m);
        if self.is_leader(old_id) {
            self.leader_id = Some(new_id.to_string());
        }
        if self.pending_sync_members.remove(old_id) {
            self.pending_sync_members.insert(new_id.to_string());
        }
        self.static_members
            .insert(instance_id.to_string(), new_id.to_string());
    }

    /// Kafka's `validateMember`: a static member's instance id must map to its member
    /// id (FENCED_INSTANCE_ID otherwise), and the member must exist.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), Error> {
        if let Some(instance) = instance_id {
            match self.static_member_id(instance) {
                None => return Err(Error::UnknownMemberId),
                Some(current) if current != member_id => return Err(Error::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.has_member(member_id) {
            return Err(Error::UnknownMemberId);
        }
        Ok(())
    }

    /// Whether a joining member's protocols fit the group: an empty group takes any
    /// non-empty protocol type with at least one protocol; otherwise the type must match
    /// and one of the protocols must be supported by every member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.is(GroupState::Empty) {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|(name, _)| {
                    self.supported_protocols.get(name).copied().unwrap_or(0) == self.members.len()
                })
        }
    }

    /// The protocol every member supports that gets the most first-choice votes. Ties go
    /// to the protocol the leader prefers (Kafka leaves ties to hash order).
    pub fn select_protocol(&self) -> Option<String> {
        let n = self.members.len();
        let candidates: HashSet<String> = self
            .supported_protocols
            .iter()
            .filter(|(_, count)| **count == n)
            .map(|(name, _)| name.clone())
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some(p) = m.vote(&candidates) {
                *votes.entry(p).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        let preference = self
            .leader_id
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())?;
        preference
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| votes.get(name) == Some(&best))
            .or_else(|| {
                votes
                    .iter()
                    .filter(|(_, v)| **v == best)
                    .map(|(k, _)| *k)
                    .min()
            })
            .map(str::to_string)
    }

    /// If the leader did not rejoin, picks any member that did. False when nobody did.
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(|m| m.is_awaiting_join())
        {
            return true;
        }
        match self.members.values().find(|m| m.is_awaiting_join()) {
            Some(m) => {
                tracing::info!(group = %self.group_id, old = %leader, new = %m.member_id, "group leader failed to rejoin; new leader elected");
                self.leader_id = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Next generation: CompletingRebalance with a selected protocol, or Empty.
    pub fn init_next_generation(&mut self, now: i64) {
        self.generation_id += 1;
        if !self.members.is_empty() {
            self.protocol_name = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::CompletingRebalance, now);
        } else {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::Empty, now);
        }
        self.pending_sync_members.clear();
    }

    /// The members' metadata for the selected protocol (the leader's JoinGroup answer).
    pub fn current_join_members(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(&protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    pub fn add_pending_sync_member(&mut self, member_id: &str) {
        if self.has_member(member_id) {
            self.pending_sync_members.insert(member_id.to_string());
        }
    }

    pub fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync_members.remove(member_id);
    }

    pub fn has_received_sync_from_all_members(&self) -> bool {
        self.pending_sync_members.is_empty()
    }

    pub fn pending_sync_members(&self) -> Vec<String> {
        let mut v: Vec<String> = self.pending_sync_members.iter().cloned().collect();
        v.sort();
        v
    }

    pub fn clear_pending_sync_members(&mut self) {
        self.pending_sync_members.clear();
    }

    // ---- consumer protocol ----

    pub fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some(consumer_protocol::PROTOCOL_TYPE)
    }

    /// Kafka's `computeSubscribedTopics`: known only for `consumer` groups whose members'
    /// metadata parses.
    fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if !self.uses_consumer_protocol() {
            return None;
        }
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol_name.as_ref()?;
        let mut all = HashSet::new();
        for m in self.members.values() {
            let topics = consumer_protocol::subscribed_topics(m.metadata(protocol)?)?;
            all.extend(topics);
        }
        Some(all)
    }

    pub fn subscribed_topics(&self) -> Option<&HashSet<String>> {
        self.subscribed_topics.as_ref()
    }

    /// Kafka's `isSubscribedToTopic`: unknown subscriptions count as subscribed for
    /// consumer groups.
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => self.uses_consumer_protocol(),
        }
    }

    // ---- views ----

    pub fn describe(&self) -> GroupDescription {
        let stable = self.is(GroupState::Stable);
        let protocol = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        GroupDescription {
            group_id: self.group_id.clone(),
            state: self.state.as_str().to_string(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol).cloned().unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// The group's `GroupMetadataValue` with the given assignment.
    pub fn to_record(&self, assignment: &HashMap<String, Bytes>, now: i64) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: protocol.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp: self.current_state_timestamp.unwrap_or(now),
            members: self
                .members
                .values()
                .map(|m| MemberMetadataRecord {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata(p))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: assignment.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Every member's current assignment.
    pub fn assignments(&self) -> HashMap<String, Bytes> {
        self.members
            .values()
            .map(|m| (m.member_id.clone(), m.assignment.clone()))
            .collect()
    }

    pub fn set_assignment(&mut self, member_id: &str, assignment: Bytes) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.assignment = assignment;
        }
    }
}
