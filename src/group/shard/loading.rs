//! Loading a partition's groups from its `__consumer_offsets` records, and unloading them
//! when this broker stops leading it.

use super::*;

impl GroupShard {
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
        self.pending_txn_offsets.clear();
        self.timer.clear();
    }
}
