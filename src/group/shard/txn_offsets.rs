//! Transactional offset commits (TxnOffsetCommit, Kafka's `pendingTransactionalOffsetCommits`):
//! the offsets are written as a transactional batch of the committing producer and stay
//! pending until the transaction's marker reaches this partition — COMMIT makes them the
//! group's committed offsets (unless a newer commit exists), ABORT drops them. Until then
//! OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for them.

use crate::coordinator::record::BatchProducer;

use super::*;

/// A TxnOffsetCommit for the shard (topics and partitions known to exist).
pub struct TxnCommitRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation_id: i32,
    pub group_instance_id: Option<String>,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<CommitPartition>,
    /// The KIP-890 verification guard for this partition of `__consumer_offsets`.
    pub guard: Option<u64>,
}

/// An offset waiting for its transaction's marker; `record_offset` is -1 until its
/// record is replicated.
pub(super) type PendingTxnOffsets = HashMap<String, BTreeMap<(String, i32), CommittedOffset>>;

impl GroupShard {
    /// TxnOffsetCommit (Kafka's `doTxnCommitOffsets`): validates the member as Kafka
    /// does for transactional commits (KIP-447: member id, generation and instance id
    /// fence zombies when given), then appends the offsets as a transactional batch;
    /// the reply waits for the records.
    pub fn commit_txn_offsets(
        &mut self,
        req: TxnCommitRequest,
        reply: Reply<CommitResult>,
        now: i64,
    ) -> Vec<Append> {
        let fail_all = |e: Error| -> CommitResult {
            req.partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition, Some(e)))
                .collect()
        };
        let g = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| ClassicGroup::new(&req.group_id, now));
        if let Err(e) = validate_txn_offset_commit(g, &req) {
            let _ = reply.send(fail_all(e));
            return Vec::new();
        }
        let max = self.config.offset_metadata_max_bytes;
        let mut results: CommitResult = Vec::with_capacity(req.partitions.len());
        let mut staged: Vec<((String, i32), CommittedOffset)> = Vec::new();
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
                CommittedOffset {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata.clone().unwrap_or_default(),
                    commit_timestamp: now,
                    expire_timestamp: None,
                    record_offset: -1,
                },
            ));
        }
        if staged.is_empty() {
            let _ = reply.send(results);
            return Vec::new();
        }
        let gid = req.group_id.clone();
        let pid = req.producer_id;
        let pending = self
            .pending_txn_offsets
            .entry(pid)
            .or_default()
            .entry(gid.clone())
            .or_default();
        for (tp, c) in &staged {
            pending.insert(tp.clone(), c.clone());
        }
        let recs = staged
            .iter()
            .map(|((topic, partition), c)| Record {
                key: records::offset_commit_key(&gid, topic, *partition),
                value: Some(records::offset_commit_value(&OffsetCommitValue {
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata.clone(),
                    commit_timestamp: c.commit_timestamp,
                    expire_timestamp: None,
                })),
            })
            .collect();
        let producer = BatchProducer {
            producer_id: pid,
            producer_epoch: req.producer_epoch,
        };
        vec![Append::new(recs, move |shard, outcome, _| {
            match outcome {
                Ok(base) => {
                    // Kafka's onTxnOffsetCommitAppend: the pending offsets learn where
                    // their records are (a later commit of the same transaction wins).
                    if let Some(pending) = shard
                        .pending_txn_offsets
                        .get_mut(&pid)
                        .and_then(|g| g.get_mut(&gid))
                    {
                        for (i, (tp, _)) in staged.iter().enumerate() {
                            if let Some(c) = pending.get_mut(tp) {
                                c.record_offset = c.record_offset.max(base + i as i64);
                            }
                        }
                    }
                }
                Err(e) => {
                    // Kafka's failPendingTxnOffsetCommit.
                    shard.drop_pending_txn_offsets(pid, &gid, staged.iter().map(|(tp, _)| tp));
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
        })
        .transactional(producer, req.guard)]
    }

    fn drop_pending_txn_offsets<'a>(
        &mut self,
        pid: i64,
        gid: &str,
        tps: impl Iterator<Item = &'a (String, i32)>,
    ) {
        let Some(groups) = self.pending_txn_offsets.get_mut(&pid) else {
            return;
        };
        if let Some(pending) = groups.get_mut(gid) {
            for tp in tps {
                if pending.get(tp).is_some_and(|c| c.record_offset < 0) {
                    pending.remove(tp);
                }
            }
            if pending.is_empty() {
                groups.remove(gid);
            }
        }
        if groups.is_empty() {
            self.pending_txn_offsets.remove(&pid);
        }
    }

    /// Replays a transactional offset commit record (loading): pending until its marker.
    pub fn replay_txn_offset(
        &mut self,
        pid: i64,
        key: &[u8],
        value: Option<&[u8]>,
        record_offset: i64,
        now: i64,
    ) {
        let (Ok(RecordKey::Offset(k)), Some(v)) = (records::decode_key(key), value) else {
            tracing::warn!(
                partition = self.partition,
                offset = record_offset,
                "skipping a transactional record that is not an offset commit"
            );
            return;
        };
        let v = match records::decode_offset_commit_value(v) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(offset = record_offset, error = %e, "skipping undecodable transactional offset commit");
                return;
            }
        };
        self.groups
            .entry(k.group.clone())
            .or_insert_with(|| ClassicGroup::new(&k.group, now));
        self.pending_txn_offsets
            .entry(pid)
            .or_default()
            .entry(k.group)
            .or_default()
            .insert(
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

    /// The marker of `pid`'s transaction reached this partition (Kafka's
    /// `completePendingTxnOffsetCommit`): COMMIT materializes its offsets unless a
    /// newer commit (by record offset) exists, ABORT drops them.
    pub fn complete_txn_offsets(&mut self, pid: i64, commit: bool) {
        let Some(groups) = self.pending_txn_offsets.remove(&pid) else {
            return;
        };
        if !commit {
            tracing::debug!(producer_id = pid, "aborted transactional offsets dropped");
            return;
        }
        for (gid, pending) in groups {
            if !self.groups.contains_key(&gid) {
                continue; // deleted meanwhile
            }
            let offsets = self.offsets.entry(gid.clone()).or_default();
            for (tp, c) in pending {
                if c.record_offset < 0 {
                    tracing::warn!(group = %gid, producer_id = pid, "committing a transactional offset whose append never completed: skipped");
                    continue;
                }
                match offsets.get(&tp) {
                    Some(existing) if existing.record_offset > c.record_offset => {}
                    _ => {
                        offsets.insert(tp, c);
                    }
                }
            }
            tracing::debug!(group = %gid, producer_id = pid, "transactional offsets committed");
        }
    }

    /// The partitions of `group_id` with transactional offsets waiting for a marker.
    pub fn unstable_txn_offsets(&self, group_id: &str) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self
            .pending_txn_offsets
            .values()
            .filter_map(|groups| groups.get(group_id))
            .flat_map(|pending| pending.keys().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether `group_id` has transactional offsets waiting for a marker.
    pub fn has_pending_txn_offsets(&self, group_id: &str) -> bool {
        self.pending_txn_offsets
            .values()
            .any(|groups| groups.contains_key(group_id))
    }
}

/// Kafka's `validateOffsetCommit` with `isTransactional = true`.
fn validate_txn_offset_commit(g: &ClassicGroup, req: &TxnCommitRequest) -> Result<(), Error> {
    if g.is(GroupState::Dead) {
        return Err(Error::CoordinatorNotAvailable);
    }
    if req.generation_id < 0 && g.is(GroupState::Empty) {
        return Ok(());
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        g.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != g.generation_id {
            return Err(Error::IllegalGeneration);
        }
    }
    Ok(())
}
