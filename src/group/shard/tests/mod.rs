//! The group state machine driven by a fake clock: every rebalance, timeout and error
//! path without sockets, threads or sleeping. This module is the harness; the tests are in
//! `rebalance` and `offsets`.

use bytes::Bytes;
use kafka_protocol::ResponseError as Error;
use tokio::sync::oneshot;

use super::*;
use crate::group::classic::{GroupState, JoinResult, SyncResult};
use crate::group::consumer_protocol::tests::{assignment, subscription};
use crate::group::records::{self, Record};

mod offsets;
mod rebalance;
mod txn_offsets;

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
                        commit_timestamp: None,
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
