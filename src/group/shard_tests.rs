//! The group state machine driven by a fake clock: every rebalance, timeout and error
//! path without sockets, threads or sleeping.

use bytes::Bytes;
use kafka_protocol::ResponseError as Error;
use tokio::sync::oneshot;

use super::classic::{GroupState, JoinResult, SyncResult};
use super::consumer_protocol::tests::{assignment, subscription};
use super::records::{self, Record};
use super::shard::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn config() -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 1_800_000,
        max_size: 1000,
        initial_rebalance_delay_ms: 3_000,
        new_member_join_timeout_ms: NEW_MEMBER_JOIN_TIMEOUT_MS,
        offset_metadata_max_bytes: 16,
        offsets_retention_ms: 7 * 24 * 3600 * 1000,
    }
}

/// How appends complete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Appends {
    /// Replicated at once.
    Succeed,
    /// Held until the test completes them.
    Hold,
}

struct Harness {
    gs: GroupShard,
    now: i64,
    /// Every record "written", with its offset, for reload tests.
    log: Vec<(i64, Record)>,
    mode: Appends,
    held: Vec<Append>,
}

type JoinRx = oneshot::Receiver<JoinResult>;
type SyncRx = oneshot::Receiver<SyncResult>;

fn range(topics: &[&str]) -> Vec<(String, Bytes)> {
    vec![("range".to_string(), subscription(0, topics))]
}

impl Harness {
    fn new(config: GroupConfig) -> Harness {
        let mut gs = GroupShard::new(0, config);
        gs.use_sequential_member_ids();
        Harness {
            gs,
            now: 1_000_000,
            log: Vec::new(),
            mode: Appends::Succeed,
            held: Vec::new(),
        }
    }

    fn settle(&mut self, appends: Vec<Append>) {
        let mut work = appends;
        while let Some(a) = work.pop() {
            if self.mode == Appends::Hold {
                self.held.push(a);
                continue;
            }
            let base = self.log.len() as i64;
            for (i, r) in a.records.iter().enumerate() {
                self.log.push((base + i as i64, r.clone()));
            }
            work.extend((a.on_done)(&mut self.gs, Ok(base), self.now));
        }
    }

    /// Completes the held appends with `outcome`.
    fn release(&mut self, outcome: Result<(), Error>) {
        let held = std::mem::take(&mut self.held);
        self.mode = Appends::Succeed;
        for a in held {
            let result = match outcome {
                Ok(()) => {
                    let base = self.log.len() as i64;
                    for (i, r) in a.records.iter().enumerate() {
                        self.log.push((base + i as i64, r.clone()));
                    }
                    Ok(base)
                }
                Err(e) => Err(e),
            };
            let more = (a.on_done)(&mut self.gs, result, self.now);
            self.settle(more);
        }
    }

    /// Moves the clock forward by `ms`, firing every timer at its own deadline.
    fn advance(&mut self, ms: i64) {
        self.advance_to(self.now + ms);
    }

    /// Advances in steps to `target` so timers fire in order.
    fn advance_to(&mut self, target: i64) {
        while let Some(next) = self.gs.next_deadline() {
            if next > target {
                break;
            }
            self.now = self.now.max(next);
            let appends = self.gs.poll_timers(self.now);
            self.settle(appends);
        }
        self.now = self.now.max(target);
        let appends = self.gs.poll_timers(self.now);
        self.settle(appends);
    }

    fn join_req(
        &self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        protocols: Vec<(String, Bytes)>,
    ) -> JoinRequest {
        JoinRequest {
            group_id: group.into(),
            member_id: member.into(),
            group_instance_id: instance.map(str::to_string),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
            supports_skip_assignment: true,
            reason: None,
        }
    }

    fn join_with(&mut self, req: JoinRequest) -> JoinRx {
        let (tx, rx) = oneshot::channel();
        let appends = self.gs.join_group(req, tx, self.now);
        self.settle(appends);
        rx
    }

    fn join(&mut self, group: &str, member: &str, protocols: Vec<(String, Bytes)>) -> JoinRx {
        let req = self.join_req(group, member, None, protocols);
        self.join_with(req)
    }

    /// JoinGroup v4+ for a new dynamic member: MEMBER_ID_REQUIRED, then the real join.
    fn join_new(&mut self, group: &str, protocols: Vec<(String, Bytes)>) -> (String, JoinRx) {
        let mut first = self.join(group, "", protocols.clone());
        let r = first.try_recv().expect("MEMBER_ID_REQUIRED at once");
        assert_eq!(r.error, Some(Error::MemberIdRequired));
        assert!(!r.member_id.is_empty());
        let rx = self.join(group, &r.member_id, protocols);
        (r.member_id, rx)
    }

    fn sync(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncRx {
        let (tx, rx) = oneshot::channel();
        let appends = self.gs.sync_group(
            SyncRequest {
                group_id: group.into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments,
            },
            tx,
            self.now,
        );
        self.settle(appends);
        rx
    }

    fn heartbeat(&mut self, group: &str, member: &str, generation: i32) -> Option<Error> {
        self.gs.heartbeat(
            HeartbeatRequest {
                group_id: group.into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: None,
            },
            self.now,
        )
    }

    fn commit(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        parts: &[(&str, i32, i64)],
    ) -> oneshot::Receiver<CommitResult> {
        self.commit_with(group, member, generation, parts, None, -1)
    }

    fn commit_with(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        parts: &[(&str, i32, i64)],
        metadata: Option<&str>,
        retention: i64,
    ) -> oneshot::Receiver<CommitResult> {
        let (tx, rx) = oneshot::channel();
        let appends = self.gs.commit_offsets(
            CommitRequest {
                group_id: group.into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: None,
                retention_time_ms: retention,
                partitions: parts
                    .iter()
                    .map(|(t, p, o)| CommitPartition {
                        topic: t.to_string(),
                        partition: *p,
                        offset: *o,
                        leader_epoch: 3,
                        metadata: metadata.map(str::to_string),
                    })
                    .collect(),
                api_version: 8,
            },
            tx,
            self.now,
        );
        self.settle(appends);
        rx
    }

    fn fetch(&self, group: &str, topic: &str, partition: i32) -> i64 {
        let r = self
            .gs
            .fetch_offsets(group, Some(&[(topic.to_string(), vec![partition])]));
        r[0].1[0].offset
    }

    fn state(&self, group: &str) -> Option<GroupState> {
        self.gs.group(group).map(|g| g.state())
    }

    /// Two members through a full first rebalance (MEMBER_ID_REQUIRED, initial delay,
    /// join, sync). Returns (leader, follower, generation).
    fn stable_pair(&mut self, group: &str) -> (String, String, i32) {
        let (m1, mut j1) = self.join_new(group, range(&["t"]));
        let (m2, mut j2) = self.join_new(group, range(&["t"]));
        // The second member arrived during the initial delay: it is extended once.
        self.advance(6_000);
        let r1 = j1.try_recv().expect("join answered");
        let r2 = j2.try_recv().expect("join answered");
        assert_eq!(r1.error, None);
        assert_eq!(r2.error, None);
        let (leader, follower) = if r1.leader_id == m1 {
            (m1, m2)
        } else {
            (m2, m1)
        };
        let generation = r1.generation_id;
        let mut sf = self.sync(group, &follower, generation, vec![]);
        let mut sl = self.sync(
            group,
            &leader,
            generation,
            vec![
                (leader.clone(), assignment(0, &[("t", &[0])])),
                (follower.clone(), assignment(0, &[("t", &[1])])),
            ],
        );
        assert_eq!(sl.try_recv().unwrap().error, None);
        assert_eq!(sf.try_recv().unwrap().error, None);
        assert_eq!(self.state(group), Some(GroupState::Stable));
        (leader, follower, generation)
    }
}

#[test]
fn member_id_required_then_join_sync_and_heartbeat() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    assert!(m1.starts_with("client-"));
    // The first rebalance of an empty group waits group.initial.rebalance.delay.ms.
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    h.advance(2_999);
    assert!(j1.try_recv().is_err(), "answered before the initial delay");
    h.advance(1);
    let r = j1.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader_id, m1);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(
        r.members.len(),
        1,
        "the leader gets every member's metadata"
    );
    assert_eq!(r.members[0].metadata, subscription(0, &["t"]));
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(h.heartbeat("g", &m1, 1), None);

    let a = assignment(0, &[("t", &[0, 1])]);
    let mut s = h.sync("g", &m1, 1, vec![(m1.clone(), a.clone())]);
    let sr = s.try_recv().unwrap();
    assert_eq!(sr.error, None);
    assert_eq!(sr.assignment, a);
    assert_eq!(sr.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // The assignment is persisted in a GroupMetadataValue record.
    let (_, rec) = h.log.last().unwrap();
    let v = records::decode_group_metadata_value(rec.value.as_ref().unwrap()).unwrap();
    assert_eq!(v.generation, 1);
    assert_eq!(v.members[0].assignment, a);
    assert_eq!(h.heartbeat("g", &m1, 1), None);
    assert_eq!(h.heartbeat("g", &m1, 0), Some(Error::IllegalGeneration));
    assert_eq!(h.heartbeat("g", "nobody", 1), Some(Error::UnknownMemberId));
    assert_eq!(h.heartbeat("missing", &m1, 1), Some(Error::UnknownMemberId));
}

#[test]
fn pending_member_that_never_rejoins_expires() {
    let mut h = Harness::new(config());
    let mut first = h.join("g", "", range(&["t"]));
    let id = first.try_recv().unwrap().member_id;
    assert!(h.gs.group("g").unwrap().is_pending_member(&id));
    h.advance(SESSION as i64);
    assert!(!h.gs.group("g").unwrap().is_pending_member(&id));
    // Rejoining with the expired id is now an unknown member.
    let mut late = h.join("g", &id, range(&["t"]));
    assert_eq!(late.try_recv().unwrap().error, Some(Error::UnknownMemberId));
}

#[test]
fn joins_before_v4_skip_member_id_required() {
    let mut h = Harness::new(config());
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.require_known_member_id = false;
    let mut rx = h.join_with(req);
    h.advance(3_000);
    let r = rx.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
}

#[test]
fn initial_delay_extends_while_members_arrive_up_to_the_rebalance_timeout() {
    let mut h = Harness::new(config());
    let start = h.now;
    let (_, mut j1) = h.join_new("g", range(&["t"]));
    h.advance(1_000);
    let (_, mut j2) = h.join_new("g", range(&["t"]));
    // At 3s a member had arrived during the delay: wait another delay (to 6s).
    h.advance_to(start + 5_999);
    assert!(j1.try_recv().is_err());
    h.advance_to(start + 6_000);
    let (r1, r2) = (j1.try_recv().unwrap(), j2.try_recv().unwrap());
    assert_eq!((r1.error, r2.error), (None, None));
    assert_eq!(r1.generation_id, 1);
    assert_eq!(
        r1.members.len() + r2.members.len(),
        2,
        "only the leader gets the member list"
    );
}

#[test]
fn silent_member_is_removed_after_its_session_timeout() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    // The leader keeps heartbeating; the follower goes silent.
    for _ in 0..3 {
        h.advance(3_000);
        assert_eq!(h.heartbeat("g", &leader, generation), None);
    }
    assert!(h.gs.group("g").unwrap().has_member(&follower));
    h.advance(3_000);
    // 12s > 10s session: the follower is gone and a rebalance started.
    assert!(!h.gs.group("g").unwrap().has_member(&follower));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.heartbeat("g", &leader, generation),
        Some(Error::RebalanceInProgress)
    );
    // Offsets of the old generation are still accepted while preparing.
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 5)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    // The remaining member rejoins: everyone joined, next generation at once.
    let mut j = h.join("g", &leader, range(&["t"]));
    let r = j.try_recv().unwrap();
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_dropped() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    // The leader rejoins (forces a rebalance); the follower neither rejoins nor heartbeats.
    let mut j = h.join("g", &leader, range(&["t"]));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    h.advance(SESSION as i64 + 1);
    // Its session expired first: removed, and the join completes without it.
    let r = j.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
    assert!(!h.gs.group("g").unwrap().has_member(&follower));
}

#[test]
fn rebalance_timeout_completes_the_join_without_laggards() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    let mut j = h.join("g", &leader, range(&["t"]));
    // The follower keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    let deadline = h.now + REBALANCE as i64;
    while h.now + 3_000 < deadline {
        h.advance(3_000);
        assert_eq!(
            h.heartbeat("g", &follower, generation),
            Some(Error::RebalanceInProgress)
        );
        assert!(j.try_recv().is_err());
    }
    h.advance_to(deadline);
    let r = j.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        h.heartbeat("g", &follower, generation),
        Some(Error::UnknownMemberId)
    );
}

#[test]
fn followers_must_sync_within_the_rebalance_timeout() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    let (m2, mut j2) = h.join_new("g", range(&["t"]));
    h.advance(6_000);
    let r1 = j1.try_recv().unwrap();
    let _ = j2.try_recv().unwrap();
    let leader = r1.leader_id.clone();
    let other = if leader == m1 { m2 } else { m1 };
    let mut s = h.sync("g", &leader, 1, vec![]);
    assert_eq!(
        s.try_recv().unwrap().error,
        None,
        "leader's sync completes the group"
    );
    // The other member heartbeats but never syncs: after the rebalance timeout it is
    // removed.
    for _ in 0..9 {
        h.advance(3_000);
        assert_eq!(h.heartbeat("g", &leader, 1), None);
        assert_eq!(h.heartbeat("g", &other, 1), None);
    }
    assert!(h.gs.group("g").unwrap().has_member(&other));
    h.advance_to(h.now + 3_001);
    assert!(!h.gs.group("g").unwrap().has_member(&other));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn every_member_gets_a_valid_possibly_empty_assignment() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    let (m2, mut j2) = h.join_new("g", range(&["t"]));
    h.advance(6_000);
    let r1 = j1.try_recv().unwrap();
    let _ = j2.try_recv().unwrap();
    let leader = r1.leader_id.clone();
    let other = if leader == m1 { m2 } else { m1 };
    let mut so = h.sync("g", &other, 1, vec![]);
    assert!(so.try_recv().is_err(), "a follower waits for the leader");
    // The leader leaves the other member out: it gets the empty assignment.
    let mut sl = h.sync(
        "g",
        &leader,
        1,
        vec![(leader.clone(), assignment(0, &[("t", &[0, 1])]))],
    );
    assert_eq!(sl.try_recv().unwrap().error, None);
    let r = so.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert!(r.assignment.is_empty());
    // Later syncs in Stable return the stored assignment.
    let mut again = h.sync("g", &leader, 1, vec![]);
    assert_eq!(
        again.try_recv().unwrap().assignment,
        assignment(0, &[("t", &[0, 1])])
    );
}

#[test]
fn sync_errors() {
    let mut h = Harness::new(config());
    let (leader, _follower, generation) = h.stable_pair("g");
    let mut s = h.sync("g", &leader, generation + 1, vec![]);
    assert_eq!(s.try_recv().unwrap().error, Some(Error::IllegalGeneration));
    let mut s = h.sync("g", "stranger", generation, vec![]);
    assert_eq!(s.try_recv().unwrap().error, Some(Error::UnknownMemberId));
    let mut s = h.sync("missing", "x", 1, vec![]);
    assert_eq!(s.try_recv().unwrap().error, Some(Error::UnknownMemberId));
    let (tx, mut rx) = oneshot::channel();
    h.gs.sync_group(
        SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: leader.clone(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("roundrobin".into()),
            assignments: vec![],
        },
        tx,
        h.now,
    );
    assert_eq!(
        rx.try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    // During PreparingRebalance, SyncGroup says to rejoin.
    let _j = h.join("g", &leader, range(&["t"]));
    let mut s = h.sync("g", &leader, generation, vec![]);
    assert_eq!(
        s.try_recv().unwrap().error,
        Some(Error::RebalanceInProgress)
    );
}

#[test]
fn join_errors() {
    let mut h = Harness::new(config());
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.session_timeout_ms = 1_000;
    let mut rx = h.join_with(req);
    assert_eq!(
        rx.try_recv().unwrap().error,
        Some(Error::InvalidSessionTimeout)
    );
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.session_timeout_ms = 1_800_001;
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InvalidSessionTimeout)
    );
    let req = h.join_req("", "", None, range(&["t"]));
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InvalidGroupId)
    );
    // Empty protocol type or no protocols: inconsistent.
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.protocol_type = String::new();
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    let req = h.join_req("g", "", None, vec![]);
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    // A known member id for a group that does not exist.
    let mut rx = h.join("nope", "someone", range(&["t"]));
    assert_eq!(rx.try_recv().unwrap().error, Some(Error::UnknownMemberId));

    let (leader, _, _) = h.stable_pair("g");
    // Another protocol type, or no protocol in common with every member.
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.protocol_type = "connect".into();
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    let req = h.join_req(
        "g",
        "",
        None,
        vec![("roundrobin".into(), subscription(0, &["t"]))],
    );
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    let mut rx = h.join("g", &format!("{leader}-x"), range(&["t"]));
    assert_eq!(rx.try_recv().unwrap().error, Some(Error::UnknownMemberId));
}

#[test]
fn group_max_size() {
    let mut h = Harness::new(GroupConfig {
        max_size: 1,
        ..config()
    });
    let (_m1, mut j1) = h.join_new("g", range(&["t"]));
    // While preparing, awaiting members count against the limit.
    let mut j2 = h.join("g", "", range(&["t"]));
    let r2 = j2.try_recv().unwrap();
    assert_eq!(r2.error, Some(Error::GroupMaxSizeReached));
    assert_eq!(r2.member_id, "");
    h.advance(3_000);
    assert_eq!(j1.try_recv().unwrap().error, None);
}

#[test]
fn protocol_choice_is_the_common_protocol_with_most_votes() {
    let mut h = Harness::new(config());
    let both = vec![
        ("range".to_string(), subscription(0, &["t"])),
        ("cooperative-sticky".to_string(), subscription(1, &["t"])),
    ];
    let sticky_first = vec![
        ("cooperative-sticky".to_string(), subscription(1, &["t"])),
        ("range".to_string(), subscription(0, &["t"])),
    ];
    let (_, mut j1) = h.join_new("g", both.clone());
    let (_, mut j2) = h.join_new("g", sticky_first.clone());
    let (_, mut j3) = h.join_new("g", sticky_first);
    h.advance(6_000);
    let answers = [
        j1.try_recv().unwrap(),
        j2.try_recv().unwrap(),
        j3.try_recv().unwrap(),
    ];
    for r in &answers {
        assert_eq!(r.protocol_name.as_deref(), Some("cooperative-sticky"));
    }
    let leader = answers.iter().find(|r| !r.members.is_empty()).unwrap();
    assert!(
        leader
            .members
            .iter()
            .all(|m| m.metadata == subscription(1, &["t"])),
        "members' metadata for the chosen protocol"
    );
}

#[test]
fn cooperative_rounds_follower_rejoin_without_change_keeps_the_generation() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    // A follower rejoining with identical metadata gets the current generation back.
    let mut j = h.join("g", &follower, range(&["t"]));
    let r = j.try_recv().unwrap();
    assert_eq!((r.error, r.generation_id), (None, generation));
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // With changed metadata (cooperative: fewer owned partitions), a new round starts.
    let mut jf = h.join("g", &follower, range(&["t", "u"]));
    assert!(jf.try_recv().is_err());
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let mut jl = h.join("g", &leader, range(&["t"]));
    let (rf, rl) = (jf.try_recv().unwrap(), jl.try_recv().unwrap());
    assert_eq!(rf.generation_id, generation + 1);
    assert_eq!(rl.generation_id, generation + 1);
    assert_eq!(rl.members.len(), 2);
    // A second immediate round (the cooperative protocol's follow-up) works the same.
    let mut sf = h.sync("g", &follower, generation + 1, vec![]);
    let mut sl = h.sync("g", &leader, generation + 1, vec![]);
    assert_eq!(
        (sf.try_recv().unwrap().error, sl.try_recv().unwrap().error),
        (None, None)
    );
    let mut jl = h.join("g", &leader, range(&["t"]));
    let mut jf = h.join("g", &follower, range(&["t", "u"]));
    assert_eq!(jl.try_recv().unwrap().generation_id, generation + 2);
    assert_eq!(jf.try_recv().unwrap().generation_id, generation + 2);
}

#[test]
fn joining_member_during_completing_rebalance_restarts_it() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    let (m2, mut j2) = h.join_new("g", range(&["t"]));
    h.advance(6_000);
    let r1 = j1.try_recv().unwrap();
    let _ = j2.try_recv().unwrap();
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    let follower = if r1.leader_id == m1 {
        m2.clone()
    } else {
        m1.clone()
    };
    let mut sf = h.sync("g", &follower, 1, vec![]);
    assert!(
        sf.try_recv().is_err(),
        "parked until the leader's assignment"
    );
    // A new member arrives before the leader syncs: the parked sync is told to rejoin.
    let (_m3, mut j3) = h.join_new("g", range(&["t"]));
    assert_eq!(
        sf.try_recv().unwrap().error,
        Some(Error::RebalanceInProgress)
    );
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let mut j1 = h.join("g", &m1, range(&["t"]));
    let mut j2 = h.join("g", &m2, range(&["t"]));
    for r in [
        j1.try_recv().unwrap(),
        j2.try_recv().unwrap(),
        j3.try_recv().unwrap(),
    ] {
        assert_eq!((r.error, r.generation_id), (None, 2));
    }
}

#[test]
fn leader_sync_waits_for_the_record_and_a_failed_store_forces_a_rebalance() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    let (m2, mut j2) = h.join_new("g", range(&["t"]));
    h.advance(6_000);
    let r1 = j1.try_recv().unwrap();
    let _ = j2.try_recv().unwrap();
    let leader = r1.leader_id.clone();
    let follower = if leader == m1 { m2 } else { m1 };
    let mut sf = h.sync("g", &follower, 1, vec![]);
    h.mode = Appends::Hold;
    let mut sl = h.sync("g", &leader, 1, vec![]);
    assert!(
        sl.try_recv().is_err(),
        "answered before the group record was replicated"
    );
    assert!(sf.try_recv().is_err());
    h.release(Err(Error::NotLeaderOrFollower));
    assert_eq!(sl.try_recv().unwrap().error, Some(Error::NotCoordinator));
    assert_eq!(sf.try_recv().unwrap().error, Some(Error::NotCoordinator));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn static_member_restart_keeps_its_assignment_without_a_rebalance() {
    let mut h = Harness::new(config());
    let mut req = h.join_req("g", "", Some("instance-a"), range(&["t"]));
    req.client_id = "c".into();
    let mut j = h.join_with(req);
    h.advance(3_000);
    let r = j.try_recv().unwrap();
    assert_eq!(r.error, None, "static members skip MEMBER_ID_REQUIRED");
    let old_id = r.member_id.clone();
    assert!(old_id.starts_with("instance-a-"));
    let a = assignment(0, &[("t", &[0, 1, 2])]);
    let mut s = h.sync("g", &old_id, 1, vec![(old_id.clone(), a.clone())]);
    assert_eq!(s.try_recv().unwrap().error, None);
    let records_before = h.log.len();

    // Restart: same instance id, unknown member id, within the session timeout.
    h.advance(5_000);
    let req = h.join_req("g", "", Some("instance-a"), range(&["t"]));
    let mut j = h.join_with(req);
    let r = j.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1, "no new generation");
    assert!(
        r.skip_assignment,
        "v9: the static leader is told to skip the assignment"
    );
    let new_id = r.member_id.clone();
    assert_ne!(new_id, old_id);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert_eq!(
        h.log.len(),
        records_before + 1,
        "the new member id is persisted"
    );
    let mut s = h.sync("g", &new_id, 1, vec![]);
    assert_eq!(s.try_recv().unwrap().assignment, a);
    // The old incarnation is fenced.
    let fenced = h.gs.heartbeat(
        HeartbeatRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: old_id,
            group_instance_id: Some("instance-a".into()),
        },
        h.now,
    );
    assert_eq!(fenced, Some(Error::FencedInstanceId));
}

#[test]
fn static_member_leaving_by_instance_id_and_batched_leave() {
    let mut h = Harness::new(config());
    let (leader, follower, _) = h.stable_pair("g");
    let (result, _) = h.gs.leave_group(
        "g",
        vec![
            LeaveMember {
                member_id: follower.clone(),
                group_instance_id: None,
                reason: Some("closing".into()),
            },
            LeaveMember {
                member_id: "".into(),
                group_instance_id: Some("nobody".into()),
                reason: None,
            },
        ],
        h.now,
    );
    assert_eq!(result.error, None);
    assert_eq!(result.members[0].2, None);
    assert_eq!(result.members[1].2, Some(Error::UnknownMemberId));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    // The leader leaves too: nobody left, the group is Empty with a new generation.
    let (result, appends) = h.gs.leave_group(
        "g",
        vec![LeaveMember {
            member_id: leader,
            group_instance_id: None,
            reason: None,
        }],
        h.now,
    );
    h.settle(appends);
    assert_eq!(result.members[0].2, None);
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    let (_, rec) = h.log.last().unwrap();
    let v = records::decode_group_metadata_value(rec.value.as_ref().unwrap()).unwrap();
    assert!(v.members.is_empty());
    assert_eq!(v.generation, 2);
    let (missing, _) = h.gs.leave_group(
        "other",
        vec![LeaveMember {
            member_id: "x".into(),
            group_instance_id: None,
            reason: None,
        }],
        h.now,
    );
    assert_eq!(missing.members[0].2, Some(Error::UnknownMemberId));
}

#[test]
fn offset_commit_rules() {
    let mut h = Harness::new(config());
    // A simple consumer (generation -1, no member) may commit to an unknown group.
    let mut c = h.commit("simple", "", -1, &[("t", 0, 10), ("t", 1, 20)]);
    assert_eq!(
        c.try_recv().unwrap(),
        vec![("t".into(), 0, None), ("t".into(), 1, None)]
    );
    assert_eq!(h.fetch("simple", "t", 0), 10);
    assert_eq!(h.fetch("simple", "t", 1), 20);
    assert_eq!(h.fetch("simple", "t", 2), -1);
    assert_eq!(h.fetch("unknown-group", "t", 0), -1);
    // A known generation for a group that does not exist (v8: ILLEGAL_GENERATION).
    let mut c = h.commit("ghost", "m", 3, &[("t", 0, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::IllegalGeneration));

    let (leader, _f, generation) = h.stable_pair("g");
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 7)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let mut c = h.commit("g", &leader, generation - 1, &[("t", 0, 8)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::IllegalGeneration));
    let mut c = h.commit("g", "stranger", generation, &[("t", 0, 8)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::UnknownMemberId));
    // A non-member cannot commit to an active group.
    let mut c = h.commit("g", "", -1, &[("t", 0, 8)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::UnknownMemberId));
    assert_eq!(h.fetch("g", "t", 0), 7);
    // Oversized metadata fails that partition only.
    let mut c = h.commit_with(
        "g",
        &leader,
        generation,
        &[("t", 0, 9)],
        Some("x".repeat(17).as_str()),
        -1,
    );
    assert_eq!(
        c.try_recv().unwrap()[0].2,
        Some(Error::OffsetMetadataTooLarge)
    );
    let mut c = h.commit_with(
        "g",
        &leader,
        generation,
        &[("t", 0, 9)],
        Some("sixteen-bytes-ok"),
        -1,
    );
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let f = h.gs.fetch_offsets("g", None);
    assert_eq!(f[0].0, "t");
    assert_eq!(f[0].1[0].metadata, "sixteen-bytes-ok");
    assert_eq!(f[0].1[0].leader_epoch, 3);
    // During CompletingRebalance a commit must wait for the new generation.
    let mut j = h.join("g", &leader, range(&["t"]));
    let _follower_join = h.join("g", &_f, range(&["t"]));
    let r = j.try_recv().unwrap();
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    let mut c = h.commit("g", &leader, r.generation_id, &[("t", 0, 11)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::RebalanceInProgress));
}

#[test]
fn commits_become_visible_only_once_replicated() {
    let mut h = Harness::new(config());
    h.mode = Appends::Hold;
    let mut c = h.commit("simple", "", -1, &[("t", 0, 10)]);
    assert!(c.try_recv().is_err());
    assert_eq!(h.fetch("simple", "t", 0), -1);
    assert!(h
        .gs
        .has_pending_commits("simple", Some(&[("t".into(), vec![0])])));
    assert!(!h
        .gs
        .has_pending_commits("simple", Some(&[("t".into(), vec![1])])));
    h.release(Ok(()));
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    assert_eq!(h.fetch("simple", "t", 0), 10);
    assert!(!h.gs.has_pending_commits("simple", None));
    // A failed append answers with the coordinator error and changes nothing.
    h.mode = Appends::Hold;
    let mut c = h.commit("simple", "", -1, &[("t", 0, 11)]);
    h.release(Err(Error::NotLeaderOrFollower));
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::NotCoordinator));
    h.mode = Appends::Hold;
    let mut c = h.commit("simple", "", -1, &[("t", 0, 12)]);
    h.release(Err(Error::RequestTimedOut));
    assert_eq!(
        c.try_recv().unwrap()[0].2,
        Some(Error::CoordinatorNotAvailable)
    );
    assert_eq!(h.fetch("simple", "t", 0), 10);
}

#[test]
fn out_of_order_completions_keep_the_newest_commit() {
    let mut h = Harness::new(config());
    h.mode = Appends::Hold;
    let _c1 = h.commit("simple", "", -1, &[("t", 0, 1)]);
    let _c2 = h.commit("simple", "", -1, &[("t", 0, 2)]);
    // Complete the second append (offset 1) before the first (offset 0).
    let mut held = std::mem::take(&mut h.held);
    let second = held.pop().unwrap();
    let first = held.pop().unwrap();
    h.mode = Appends::Succeed;
    let _ = (second.on_done)(&mut h.gs, Ok(1), h.now);
    let _ = (first.on_done)(&mut h.gs, Ok(0), h.now);
    assert_eq!(h.fetch("simple", "t", 0), 2);
}

#[test]
fn offsets_of_empty_groups_expire_after_the_retention() {
    let mut h = Harness::new(GroupConfig {
        offsets_retention_ms: 60_000,
        ..config()
    });
    let (leader, follower, generation) = h.stable_pair("g");
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 5), ("other", 0, 9)]);
    assert_eq!(c.try_recv().unwrap()[1].2, None);
    // A simple group's offsets expire by commit time.
    let mut c = h.commit("simple", "", -1, &[("t", 0, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    // Members keep heartbeating past the retention: the subscribed topic's offset stays,
    // the unsubscribed one ("other") expires.
    for _ in 0..25 {
        h.advance(3_000);
        assert_eq!(h.heartbeat("g", &leader, generation), None);
        assert_eq!(h.heartbeat("g", &follower, generation), None);
    }
    let appends = h.gs.cleanup_expired_offsets(h.now);
    h.settle(appends);
    assert_eq!(h.fetch("g", "t", 0), 5);
    assert_eq!(h.fetch("g", "other", 0), -1);
    assert!(
        h.gs.group("simple").is_none(),
        "an emptied simple group is deleted"
    );
    assert!(h
        .log
        .iter()
        .any(|(_, r)| r.value.is_none() && r.key == records::offset_commit_key("g", "other", 0)));
    // Everyone leaves: the group is Empty; its offsets expire `retention` after that.
    let (_, a) = h.gs.leave_group(
        "g",
        vec![
            LeaveMember {
                member_id: leader,
                group_instance_id: None,
                reason: None,
            },
            LeaveMember {
                member_id: follower,
                group_instance_id: None,
                reason: None,
            },
        ],
        h.now,
    );
    h.settle(a);
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    h.advance(59_999);
    let appends = h.gs.cleanup_expired_offsets(h.now);
    h.settle(appends);
    assert_eq!(h.fetch("g", "t", 0), 5);
    h.advance(1);
    let appends = h.gs.cleanup_expired_offsets(h.now);
    h.settle(appends);
    assert_eq!(h.fetch("g", "t", 0), -1);
    assert!(h.gs.group("g").is_none());
    assert!(h
        .log
        .iter()
        .any(|(_, r)| r.value.is_none() && r.key == records::group_metadata_key("g")));
}

#[test]
fn explicit_retention_from_old_commit_versions() {
    let mut h = Harness::new(config());
    let mut c = h.commit_with("simple", "", -1, &[("t", 0, 3)], None, 10_000);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let (_, rec) = h.log.last().unwrap();
    let v = records::decode_offset_commit_value(rec.value.as_ref().unwrap()).unwrap();
    assert_eq!(v.expire_timestamp, Some(h.now + 10_000));
    h.advance(10_000);
    let appends = h.gs.cleanup_expired_offsets(h.now);
    h.settle(appends);
    assert_eq!(h.fetch("simple", "t", 0), -1);
}

#[test]
fn state_is_rebuilt_from_the_records() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 42), ("t", 1, 43)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let mut c = h.commit("simple", "", -1, &[("x", 0, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let mut del = h.commit("gone", "", -1, &[("x", 0, 1)]);
    assert_eq!(del.try_recv().unwrap()[0].2, None);
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_groups(vec!["gone".into()], tx);
    h.settle(a);
    assert_eq!(rx.try_recv().unwrap(), vec![("gone".to_string(), None)]);

    let mut reloaded = GroupShard::new(0, config());
    for (offset, r) in &h.log {
        reloaded.replay(&r.key, r.value.as_deref(), *offset, h.now);
    }
    let _ = reloaded.finish_loading(h.now);
    let g = reloaded.group("g").unwrap();
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.generation_id, generation);
    assert_eq!(g.leader_id(), Some(leader.as_str()));
    assert!(g.has_member(&follower));
    assert_eq!(
        g.member(&follower).unwrap().assignment,
        assignment(0, &[("t", &[1])])
    );
    assert_eq!(g.protocol_name.as_deref(), Some("range"));
    assert_eq!(reloaded.committed("g", "t", 1).unwrap().offset, 43);
    assert_eq!(reloaded.committed("simple", "x", 0).unwrap().offset, 1);
    assert!(reloaded.group("gone").is_none());
    assert!(reloaded.committed("gone", "x", 0).is_none());
    // Loaded members must heartbeat to the new coordinator within their session.
    let mut h2 = Harness::new(config());
    h2.gs = reloaded;
    h2.now = h.now;
    h2.advance(SESSION as i64 - 1);
    assert_eq!(h2.state("g"), Some(GroupState::Stable));
    h2.advance(1);
    let g = h2.gs.group("g").unwrap();
    assert_eq!(g.size(), 0, "nobody came back");
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation_id, generation + 1);
}

#[test]
fn delete_groups_and_offsets() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 1), ("u", 0, 2)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_groups(vec!["g".into(), "missing".into()], tx);
    h.settle(a);
    assert_eq!(
        rx.try_recv().unwrap(),
        vec![
            ("g".into(), Some(Error::NonEmptyGroup)),
            ("missing".into(), Some(Error::GroupIdNotFound))
        ]
    );
    // OffsetDelete on an active consumer group: subscribed topics are protected.
    let (tx, mut rx) = oneshot::channel();
    let a =
        h.gs.delete_offsets("g", vec![("t".into(), vec![0]), ("u".into(), vec![0])], tx);
    h.settle(a);
    let r = rx.try_recv().unwrap().unwrap();
    assert_eq!(r[0].1[0].1, Some(Error::GroupSubscribedToTopic));
    assert_eq!(r[1].1[0].1, None);
    assert_eq!(h.fetch("g", "u", 0), -1);
    assert_eq!(h.fetch("g", "t", 0), 1);
    // Once empty, the group and its offsets can be deleted.
    let (_, a) = h.gs.leave_group(
        "g",
        vec![
            LeaveMember {
                member_id: leader,
                group_instance_id: None,
                reason: None,
            },
            LeaveMember {
                member_id: follower,
                group_instance_id: None,
                reason: None,
            },
        ],
        h.now,
    );
    h.settle(a);
    h.mode = Appends::Hold;
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_groups(vec!["g".into()], tx);
    h.settle(a);
    // A failed write restores the group.
    h.release(Err(Error::NotLeaderOrFollower));
    assert_eq!(rx.try_recv().unwrap()[0].1, Some(Error::NotCoordinator));
    assert_eq!(h.fetch("g", "t", 0), 1);
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_groups(vec!["g".into()], tx);
    h.settle(a);
    assert_eq!(rx.try_recv().unwrap()[0].1, None);
    assert!(h.gs.group("g").is_none());
    assert_eq!(h.fetch("g", "t", 0), -1);
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_offsets("g", vec![("t".into(), vec![0])], tx);
    assert!(a.is_empty());
    assert_eq!(rx.try_recv().unwrap(), Err(Error::GroupIdNotFound));
}

#[test]
fn non_consumer_groups_reject_offset_delete_while_active() {
    let mut h = Harness::new(config());
    let mut req = h.join_req("c", "", None, vec![("v0".into(), Bytes::from_static(b"x"))]);
    req.protocol_type = "connect".into();
    req.require_known_member_id = false;
    let mut j = h.join_with(req);
    h.advance(3_000);
    let r = j.try_recv().unwrap();
    let (tx, mut s) = oneshot::channel();
    let a = h.gs.sync_group(
        SyncRequest {
            group_id: "c".into(),
            generation_id: r.generation_id,
            member_id: r.member_id,
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        },
        tx,
        h.now,
    );
    h.settle(a);
    assert_eq!(s.try_recv().unwrap().error, None);
    let (tx, mut rx) = oneshot::channel();
    h.gs.delete_offsets("c", vec![("t".into(), vec![0])], tx);
    assert_eq!(rx.try_recv().unwrap(), Err(Error::NonEmptyGroup));
}

#[test]
fn describe_and_list() {
    let mut h = Harness::new(config());
    let (leader, _, _) = h.stable_pair("g");
    let mut c = h.commit("simple", "", -1, &[("t", 0, 1)]);
    let _ = c.try_recv();
    let d = h.gs.describe_group("g");
    assert_eq!(d.state, "Stable");
    assert_eq!(d.protocol, "range");
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.members.len(), 2);
    let l = d.members.iter().find(|m| m.member_id == leader).unwrap();
    assert_eq!(l.client_host, "/127.0.0.1");
    assert_eq!(l.assignment, assignment(0, &[("t", &[0])]));
    assert_eq!(h.gs.describe_group("nope").state, "Dead");
    let all = h.gs.list_groups(&[]);
    assert_eq!(all.len(), 2);
    let stable = h.gs.list_groups(&["stable".into()]);
    assert_eq!(
        stable,
        vec![("g".to_string(), "consumer".to_string(), GroupState::Stable)]
    );
    let empty = h.gs.list_groups(&["Empty".into()]);
    assert_eq!(
        empty,
        vec![("simple".to_string(), String::new(), GroupState::Empty)]
    );
}

#[test]
fn unload_answers_parked_requests_with_not_coordinator() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    let mut j = h.join("g", &leader, range(&["t"]));
    let mut j2 = h.join("g", &follower, range(&["t"]));
    let _ = (j.try_recv(), j2.try_recv());
    let mut s = h.sync("g", &follower, generation + 1, vec![]);
    let (_m3, mut j3) = h.join_new("g", range(&["t"]));
    let _ = s.try_recv();
    h.gs.unload(h.now);
    assert_eq!(j3.try_recv().unwrap().error, Some(Error::NotCoordinator));
    assert_eq!(h.gs.group_count(), 0);
    assert_eq!(h.gs.next_deadline(), None);
}

#[test]
fn offsets_of_deleted_topics_are_removed() {
    let mut h = Harness::new(config());
    let mut c = h.commit(
        "simple",
        "",
        -1,
        &[("gone", 0, 1), ("gone", 1, 2), ("kept", 0, 3)],
    );
    assert_eq!(c.try_recv().unwrap().len(), 3);
    let appends = h.gs.remove_offsets_of_topics(&["gone".to_string()]);
    h.settle(appends);
    assert_eq!(h.fetch("simple", "gone", 0), -1);
    assert_eq!(h.fetch("simple", "gone", 1), -1);
    assert_eq!(h.fetch("simple", "kept", 0), 3);
    assert!(h.log.iter().any(
        |(_, r)| r.value.is_none() && r.key == records::offset_commit_key("simple", "gone", 1)
    ));
    assert!(h
        .gs
        .remove_offsets_of_topics(&["gone".to_string()])
        .is_empty());
}
