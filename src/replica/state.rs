//! The partition state machine: what one replica knows of its partition (role, leader
//! epoch, ISR, high watermark, each follower's progress) and Kafka's rules for changing it
//! (ZooKeeper-mode `Partition`, `Replica` and `DelayedProduce`).
//!
//! Pure: no I/O, no clock, no locks. Every method takes what it needs of the log (its end
//! offset, or a [`LogView`] for epoch lookups) and the time as arguments and returns what
//! the caller must do (write an ISR, wake waiters, truncate to an offset). The shell,
//! `partition.rs`, owns the lock and the log and feeds events in; tests drive this state
//! machine directly (`state_tests.rs`) and a simulated cluster (`sim`).
//!
//! Invariants, checked with `assert!` (not `debug_assert!`, so every test run and CI
//! checks them) at every change, by [`PartitionState::check_invariants`]:
//! - HW ≤ LEO;
//! - a leader's HW never decreases within its epoch;
//! - the leader epoch never decreases (older states are refused before they apply);
//! - the ISR is a subset of the assigned replicas, and a pending ISR change too;
//! - an ISR this broker proposes as leader keeps the leader (never empty);
//! - when a leader's HW advances, it is at most the LEO of every member of the maximal
//!   ISR whose LEO it knows (a member may fall behind it later: a follower that lost its
//!   unflushed tail in a crash is lagging, not a broken invariant).

use std::collections::BTreeMap;

/// What the state machine needs to read of the log for epoch arithmetic.
pub trait LogView {
    fn log_end_offset(&self) -> i64;
    /// The largest epoch ≤ `epoch` this log has and where it ends (the next epoch's
    /// start, or the LEO); `None` if the log has no epoch ≤ `epoch`.
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower {
        leader: i32,
    },
    /// The controller knows no leader (offline partition).
    NoLeader,
}

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch. -1 = unknown.
    pub leo: i64,
    pub last_fetch_ms: i64,
    /// Last time the follower was known to have everything the leader had.
    pub last_caught_up_ms: i64,
    /// Leader LEO at the follower's previous fetch (Kafka's `lastFetchLeaderLogEndOffset`).
    pub leader_leo_at_last_fetch: i64,
}

/// A partition state as the controller wrote it (Kafka's `LeaderAndIsr` plus the
/// assignment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAndIsr {
    /// -1: no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub zk_version: i32,
    pub controller_epoch: i32,
}

/// What applying a [`LeaderAndIsr`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Older than the epoch this replica has: ignored (a broker never goes back in epochs).
    Stale,
    /// Same role and epoch; the ISR and versions were refreshed.
    Refreshed,
    /// A new leader term (the log must record `leader_epoch` starting at the LEO first).
    BecameLeader,
    /// A new follower term, or leaderless: fetchers restart for this partition.
    BecameFollower,
}

/// A partition-level refusal, mapped to a Kafka error code by the API layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("this broker is not the leader of the partition")]
    NotLeader,
    #[error("request leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("request leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("ISR has {isr} replicas, fewer than min.insync.replicas={min}")]
    NotEnoughReplicas { isr: usize, min: i32 },
    #[error("ISR shrank to {isr} replicas, below min.insync.replicas={min}, after the append")]
    NotEnoughReplicasAfterAppend { isr: usize, min: i32 },
}

/// Where an `acks=all` append stands (Kafka's `DelayedProduce.tryComplete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    Pending,
    Done,
    Failed(StateError),
}

/// What a follower fetch did to the leader's view.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FollowerUpdate {
    /// The follower is caught up and out of the ISR: write this ISR.
    pub expand_isr_to: Option<Vec<i32>>,
    pub hw_advanced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub broker_id: i32,
    pub role: Role,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// The ISR as last committed to ZooKeeper (or read from it).
    pub isr: Vec<i32>,
    /// An ISR change written but not yet confirmed.
    pub pending_isr: Option<Vec<i32>>,
    pub zk_version: i32,
    pub controller_epoch: i32,
    pub high_watermark: i64,
    pub followers: BTreeMap<i32, FollowerProgress>,
    /// LEO when this broker became leader of the current epoch.
    pub leader_epoch_start_offset: i64,
    /// The epoch that began this broker's current uninterrupted leadership. The
    /// controller also bumps the epoch of a leader that stays leader (an ISR change in
    /// ZooKeeper mode); its log is continuous through such bumps, so appends made since
    /// this epoch may still complete.
    pub leader_since_epoch: i32,
    pub min_insync_replicas: i32,
}

impl PartitionState {
    /// A replica that knows nothing yet: no leader, epoch -1, the checkpointed HW.
    pub fn new(broker_id: i32, hw_checkpoint: i64, leo: i64) -> Self {
        let state = PartitionState {
            broker_id,
            role: Role::NoLeader,
            leader_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending_isr: None,
            zk_version: -1,
            controller_epoch: -1,
            high_watermark: hw_checkpoint.clamp(0, leo.max(0)),
            followers: BTreeMap::new(),
            leader_epoch_start_offset: -1,
            leader_since_epoch: -1,
            min_insync_replicas: 1,
        };
        state.check_invariants(leo);
        state
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn set_min_insync_replicas(&mut self, min: i32) {
        self.min_insync_replicas = min.max(1);
    }

    /// Checks a client's `current_leader_epoch` (KIP-320); -1 means "not provided".
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), StateError> {
        if requested < 0 || requested == self.leader_epoch {
            Ok(())
        } else if requested < self.leader_epoch {
            Err(StateError::FencedLeaderEpoch {
                requested,
                current: self.leader_epoch,
            })
        } else {
            Err(StateError::UnknownLeaderEpoch {
                requested,
                current: self.leader_epoch,
            })
        }
    }

    pub fn check_leader(&self) -> Result<(), StateError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(StateError::NotLeader)
        }
    }

    // ---- role changes, driven by the state the controller wrote ----

    /// What applying `s` would do, without doing it: the shell writes the new epoch into
    /// the log before a new leader term applies.
    pub fn classify(&self, s: &LeaderAndIsr) -> Transition {
        if s.leader_epoch < self.leader_epoch {
            return Transition::Stale;
        }
        let same_epoch = s.leader_epoch == self.leader_epoch;
        if s.leader == self.broker_id {
            if self.is_leader() && same_epoch {
                Transition::Refreshed
            } else {
                Transition::BecameLeader
            }
        } else {
            let role = follower_role(s.leader);
            if self.role == role && same_epoch {
                Transition::Refreshed
            } else {
                Transition::BecameFollower
            }
        }
    }

    /// Applies the controller's state. `leo` is the log end offset now (after the shell
    /// recorded the new epoch for a [`Transition::BecameLeader`]).
    pub fn apply(&mut self, s: &LeaderAndIsr, leo: i64, now_ms: i64) -> Transition {
        let transition = self.classify(s);
        if transition == Transition::Stale {
            return transition;
        }
        self.checked(leo, |st| st.apply_unchecked(s, transition, leo, now_ms));
        transition
    }

    fn apply_unchecked(&mut self, s: &LeaderAndIsr, transition: Transition, leo: i64, now_ms: i64) {
        self.replicas = s.replicas.clone();
        // The ISR is the controller's, but never trusted beyond the assignment.
        self.isr = s
            .isr
            .iter()
            .copied()
            .filter(|r| s.replicas.contains(r))
            .collect();
        self.zk_version = s.zk_version;
        self.controller_epoch = s.controller_epoch;
        self.pending_isr = None;
        match transition {
            Transition::BecameLeader => self.start_leader_term(s.leader_epoch, leo, now_ms),
            Transition::BecameFollower => {
                self.role = follower_role(s.leader);
                self.leader_epoch = s.leader_epoch;
                self.followers.clear();
                self.leader_epoch_start_offset = -1;
            }
            Transition::Refreshed => {
                if self.is_leader() {
                    self.sync_followers_with_replicas();
                }
            }
            Transition::Stale => {}
        }
        if self.is_leader() {
            self.advance_hw_unchecked(leo);
        }
    }

    /// Stops serving the partition (deleted, or its log directory failed): every waiter
    /// ends with NotLeader and no later state applies.
    pub fn retire(&mut self, leo: i64) {
        self.checked(leo, |st| {
            st.role = Role::NoLeader;
            st.leader_epoch = i32::MAX;
            st.followers.clear();
            st.pending_isr = None;
        })
    }

    fn start_leader_term(&mut self, epoch: i32, leo: i64, now_ms: i64) {
        if !self.is_leader() {
            self.leader_since_epoch = epoch;
        }
        self.role = Role::Leader;
        self.leader_epoch = epoch;
        self.leader_epoch_start_offset = leo;
        // Kafka resets follower state on election: ISR members count as caught up now, so
        // they are not dropped before they have had a chance to fetch.
        let me = self.broker_id;
        let isr = &self.isr;
        self.followers = self
            .replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| {
                let caught_up = if isr.contains(&r) { now_ms } else { 0 };
                (
                    r,
                    FollowerProgress {
                        leo: -1,
                        last_fetch_ms: 0,
                        last_caught_up_ms: caught_up,
                        leader_leo_at_last_fetch: -1,
                    },
                )
            })
            .collect();
    }

    /// The assignment changed within a term (a reassignment adding or removing
    /// replicas): track the new replicas from scratch, forget the removed ones.
    fn sync_followers_with_replicas(&mut self) {
        let me = self.broker_id;
        let replicas = &self.replicas;
        self.followers.retain(|r, _| replicas.contains(r));
        for &r in replicas.iter().filter(|&&r| r != me) {
            self.followers.entry(r).or_insert(FollowerProgress {
                leo: -1,
                last_fetch_ms: 0,
                last_caught_up_ms: 0,
                leader_leo_at_last_fetch: -1,
            });
        }
    }

    // ---- leader: produce ----

    /// May a produce with `acks` append now? Returns the epoch to append under. Kafka
    /// checks min.insync.replicas up front for acks=all.
    pub fn check_append(&self, acks: i16) -> Result<i32, StateError> {
        self.check_leader()?;
        if acks == -1 && (self.isr.len() as i32) < self.min_insync_replicas {
            return Err(StateError::NotEnoughReplicas {
                isr: self.isr.len(),
                min: self.min_insync_replicas,
            });
        }
        Ok(self.leader_epoch)
    }

    /// Whether an `acks=all` append under `epoch` that needs the HW at `required_offset`
    /// is complete (Kafka's `DelayedProduce`): replicated once the HW passes it, but
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below min.insync.replicas
    /// meanwhile; NotLeader once this broker's leadership it was appended in is over.
    /// An epoch bump that keeps this broker leader does not end it: as Kafka's
    /// `checkEnoughReplicasReachOffset`, what counts is still leading, and the HW.
    pub fn replication(&self, required_offset: i64, epoch: i32) -> Replication {
        let same_leadership = self.leader_since_epoch <= epoch && epoch <= self.leader_epoch;
        if !self.is_leader() || !same_leadership {
            return Replication::Failed(StateError::NotLeader);
        }
        if self.high_watermark < required_offset {
            return Replication::Pending;
        }
        if (self.isr.len() as i32) < self.min_insync_replicas {
            return Replication::Failed(StateError::NotEnoughReplicasAfterAppend {
                isr: self.isr.len(),
                min: self.min_insync_replicas,
            });
        }
        Replication::Done
    }

    // ---- leader: fetch ----

    /// Checks a read (consumer or follower) may go ahead; returns (epoch, HW) it was
    /// checked against.
    pub fn check_read(&self, current_leader_epoch: i32) -> Result<(i32, i64), StateError> {
        self.check_leader()?;
        self.check_leader_epoch(current_leader_epoch)?;
        Ok((self.leader_epoch, self.high_watermark))
    }

    /// Records a follower's fetch at `fetch_offset`, made while the leader's log ended at
    /// `leader_leo`, if the term it was checked in (`epoch`) is still this one. Proposes an
    /// ISR expansion when the follower caught up, and advances the HW.
    pub fn on_follower_fetch(
        &mut self,
        epoch: i32,
        replica: i32,
        fetch_offset: i64,
        leader_leo: i64,
        now_ms: i64,
    ) -> Result<FollowerUpdate, StateError> {
        if !self.is_leader() || self.leader_epoch != epoch {
            return Err(StateError::NotLeader);
        }
        Ok(self.checked(leader_leo, |st| {
            st.record_follower_fetch(replica, fetch_offset, leader_leo, now_ms)
        }))
    }

    fn record_follower_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_leo: i64,
        now_ms: i64,
    ) -> FollowerUpdate {
        let mut update = FollowerUpdate::default();
        let Some(p) = self.followers.get_mut(&replica) else {
            return update; // not an assigned replica of this partition
        };
        // Kafka's Replica.updateFetchState: caught up if it fetched from the leader's LEO
        // now, or from the LEO the leader had at its previous fetch.
        if fetch_offset >= leader_leo {
            p.last_caught_up_ms = now_ms;
        } else if fetch_offset >= p.leader_leo_at_last_fetch {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.leo = fetch_offset.min(leader_leo);
        p.last_fetch_ms = now_ms;
        p.leader_leo_at_last_fetch = leader_leo;
        let follower_leo = p.leo;
        // ISR expansion (Kafka's isFollowerInSync): caught up to the HW and to the start of
        // the current leader epoch. One change in flight at a time.
        let in_isr = self.isr.contains(&replica)
            || self
                .pending_isr
                .as_ref()
                .is_some_and(|p| p.contains(&replica));
        if !in_isr
            && self.pending_isr.is_none()
            && follower_leo >= self.high_watermark
            && follower_leo >= self.leader_epoch_start_offset
        {
            let mut isr = self.isr.clone();
            isr.push(replica);
            self.pending_isr = Some(isr.clone());
            update.expand_isr_to = Some(isr);
        }
        update.hw_advanced = self.advance_hw_unchecked(leader_leo);
        update
    }

    /// ISR shrink check: followers in the ISR not caught up for `lag_ms` are proposed out
    /// (Kafka's `getOutOfSyncReplicas`). The leader itself always stays.
    pub fn isr_shrink_proposal(&mut self, leo: i64, lag_ms: i64, now_ms: i64) -> Option<Vec<i32>> {
        if !self.is_leader() || self.pending_isr.is_some() {
            return None;
        }
        let me = self.broker_id;
        let followers = &self.followers;
        let out_of_sync = |r: &i32| {
            *r != me
                && followers.get(r).is_some_and(|p| {
                    // A follower with everything the leader has is in sync however long
                    // ago it fetched.
                    p.leo < leo && now_ms - p.last_caught_up_ms > lag_ms
                })
        };
        if !self.isr.iter().any(out_of_sync) {
            return None;
        }
        let isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| !out_of_sync(r))
            .collect();
        assert!(
            isr.contains(&me) || !self.isr.contains(&me),
            "an ISR shrink keeps the leader"
        );
        self.checked(leo, |st| st.pending_isr = Some(isr.clone()));
        Some(isr)
    }

    /// The ISR write for `epoch` landed with `zk_version`. Returns whether the HW advanced.
    pub fn isr_committed(&mut self, epoch: i32, isr: Vec<i32>, zk_version: i32, leo: i64) -> bool {
        if !self.is_leader() || self.leader_epoch != epoch {
            return false;
        }
        self.checked(leo, |st| {
            st.isr = isr
                .into_iter()
                .filter(|r| st.replicas.contains(r))
                .collect();
            st.zk_version = zk_version;
            st.pending_isr = None;
            st.advance_hw_unchecked(leo)
        })
    }

    /// The proposal `isr` did not land: allow new proposals (unless a newer one is
    /// pending). The maximal ISR may have lost a member that held the HW back: returns
    /// whether the HW advanced.
    pub fn isr_change_failed(&mut self, isr: &[i32], leo: i64) -> bool {
        if self.pending_isr.as_deref() != Some(isr) {
            return false;
        }
        self.checked(leo, |st| {
            st.pending_isr = None;
            st.advance_hw_unchecked(leo)
        })
    }

    /// Recomputes the leader's high watermark: the minimum LEO over the maximal ISR (the
    /// committed ISR plus a pending expansion, KIP-497). A member whose LEO is not known
    /// yet holds the HW where it is. Returns whether it advanced.
    pub fn advance_hw(&mut self, leader_leo: i64) -> bool {
        self.checked(leader_leo, |st| st.advance_hw_unchecked(leader_leo))
    }

    fn advance_hw_unchecked(&mut self, leader_leo: i64) -> bool {
        if !self.is_leader() {
            return false;
        }
        let mut candidate = leader_leo;
        for r in self.maximal_isr() {
            if let Some(p) = self.followers.get(&r) {
                candidate = if p.leo < 0 {
                    candidate.min(self.high_watermark)
                } else {
                    candidate.min(p.leo)
                };
            }
        }
        if candidate <= self.high_watermark {
            return false;
        }
        for r in self.maximal_isr() {
            if let Some(p) = self.followers.get(&r) {
                assert!(
                    p.leo >= candidate,
                    "HW advancing to {candidate} past ISR member {r}'s LEO {}",
                    p.leo
                );
            }
        }
        self.high_watermark = candidate;
        true
    }

    /// The committed ISR plus the members a pending change adds (KIP-497).
    fn maximal_isr(&self) -> Vec<i32> {
        let mut members = self.isr.clone();
        for r in self.pending_isr.iter().flatten() {
            if !members.contains(r) {
                members.push(*r);
            }
        }
        members
    }

    // ---- follower ----

    pub fn check_follower(&self) -> Result<(), StateError> {
        if matches!(self.role, Role::Follower { .. }) {
            Ok(())
        } else {
            Err(StateError::NotLeader)
        }
    }

    /// After a follower append: adopt the leader's HW, bounded by our LEO.
    pub fn on_follower_append(&mut self, leader_hw: i64, leo: i64) {
        self.checked(leo, |st| {
            let hw = leader_hw.min(leo).max(0);
            if hw > st.high_watermark || st.high_watermark > leo {
                st.high_watermark = hw;
            }
        })
    }

    /// After the log was truncated (or restarted) to end at `leo`.
    pub fn on_truncated(&mut self, leo: i64) {
        self.checked(leo, |st| {
            st.high_watermark = st.high_watermark.min(leo.max(0))
        })
    }

    /// After the log was emptied and restarted at `offset` (the leader's log start is
    /// past everything we had).
    pub fn on_restarted_at(&mut self, offset: i64) {
        self.checked(offset, |st| st.high_watermark = offset.max(0))
    }

    // ---- invariants ----

    /// Runs a change and asserts the invariants around it (always on: a violation in any
    /// test run fails it): the state invariants after it, and that the leader epoch did
    /// not go back and a leader's HW did not go back within its term.
    fn checked<R>(&mut self, leo: i64, change: impl FnOnce(&mut Self) -> R) -> R {
        let (role, epoch, hw) = (self.role, self.leader_epoch, self.high_watermark);
        let result = change(self);
        assert!(
            self.leader_epoch >= epoch,
            "leader epoch went back from {epoch} to {}",
            self.leader_epoch
        );
        if role == Role::Leader && self.is_leader() && self.leader_epoch == epoch {
            assert!(
                self.high_watermark >= hw,
                "leader HW went back from {hw} to {} in epoch {epoch}",
                self.high_watermark
            );
        }
        self.check_invariants(leo);
        result
    }

    /// Asserts the state invariants listed in the module doc.
    pub fn check_invariants(&self, leo: i64) {
        assert!(
            self.high_watermark <= leo.max(0),
            "HW {} > LEO {leo} ({self:?})",
            self.high_watermark
        );
        assert!(
            self.isr.iter().all(|r| self.replicas.contains(r)),
            "ISR {:?} ⊄ replicas {:?}",
            self.isr,
            self.replicas
        );
        if self.is_leader() {
            assert!(
                self.leader_since_epoch <= self.leader_epoch,
                "leadership began at epoch {} after the current epoch {}",
                self.leader_since_epoch,
                self.leader_epoch
            );
        }
        if let Some(p) = &self.pending_isr {
            assert!(self.is_leader(), "only a leader has a pending ISR change");
            assert!(
                p.iter().all(|r| self.replicas.contains(r)),
                "pending ISR {p:?} ⊄ replicas {:?}",
                self.replicas
            );
            assert!(!p.is_empty(), "a proposed ISR is never empty");
        }
    }
}

fn follower_role(leader: i32) -> Role {
    if leader >= 0 {
        Role::Follower { leader }
    } else {
        Role::NoLeader
    }
}

/// Where a follower truncates when its leader answers a fetch with a diverging epoch
/// (`epoch` ends at `end_offset` on the leader): Kafka's
/// `AbstractFetcherThread.getOffsetTruncationState`. If we have `epoch`, to the smaller of
/// both ends of it; if not, to our end of the largest epoch below it (the next fetch, with
/// that epoch as the last fetched one, narrows it further).
pub fn diverging_truncation_offset(log: &dyn LogView, epoch: i32, end_offset: i64) -> i64 {
    let leo = log.log_end_offset();
    match log.end_offset_for_epoch(epoch) {
        Some((ours, our_end)) if ours == epoch => our_end.min(end_offset).min(leo),
        Some((_, our_end)) => our_end.min(leo),
        None => end_offset.min(leo),
    }
}

/// The leader's diverging-epoch check (KIP-595, Fetch v12+): if the fetcher's last epoch
/// ends earlier on this leader than its fetch offset (or is unknown here), the epoch and
/// end offset it must truncate to.
pub fn diverging_epoch(
    log: &dyn LogView,
    fetch_offset: i64,
    last_fetched_epoch: i32,
) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch)?;
    (epoch < last_fetched_epoch || end < fetch_offset).then_some((epoch, end))
}
