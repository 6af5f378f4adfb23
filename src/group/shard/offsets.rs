//! Committed offsets (commit, fetch, delete, expiry) and group administration (delete,
//! describe, list).

use super::*;

impl GroupShard {
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
                    commit_timestamp: p.commit_timestamp.unwrap_or(now),
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

    /// Every committed offset: (group, topic, partition, offset), for the lag metrics.
    pub fn all_committed(&self) -> Vec<(String, String, i32, i64)> {
        let mut out = Vec::new();
        for (group, offsets) in &self.offsets {
            for ((topic, partition), c) in offsets {
                out.push((group.clone(), topic.clone(), *partition, c.offset));
            }
        }
        out
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
            if all_expired
                && g.is(GroupState::Empty)
                && !self.pending_commits.contains_key(&gid)
                && !self.has_pending_txn_offsets(&gid)
            {
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
