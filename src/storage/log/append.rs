//! Appends: client batches as the leader (validated, offsets and epochs assigned,
//! producer state and transactions checked) and the leader's batches as a follower
//! (kept as they are, checked for continuity).

use super::*;

impl Log {
    /// Appends client batches as the leader: validates (framing, size, CRC, structure),
    /// checks producer sequences, assigns offsets and the leader epoch in place (and the
    /// LogAppendTime timestamp if configured), then writes the bytes.
    pub fn append_as_leader(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        self.append_as_leader_with(records, leader_epoch, AppendOrigin::Client, None, now_ms)
    }

    /// [`Self::append_as_leader`] for `origin` (a coordinator's transactional offset
    /// commit gets no sequence checks), with the KIP-890 verification `guard` a
    /// transactional batch that opens a transaction here must bring.
    pub fn append_as_leader_with(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        origin: AppendOrigin,
        guard: Option<u64>,
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        let r = self.append_as_leader_unguarded(records, leader_epoch, origin, guard, now_ms);
        self.publish();
        self.guarded(r)
    }

    pub(super) fn append_as_leader_unguarded(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        origin: AppendOrigin,
        guard: Option<u64>,
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        self.check_open()?;
        self.touch(now_ms);
        // v0/v1 message sets up-converted, batches recompressed to compression.type.
        let prepared =
            crate::storage::convert::prepare_client_records(records, &self.config, now_ms)?;
        let records: &[u8] = &prepared;
        let batches = validate_client_batches(records, &self.config, now_ms)?;
        if records.len() as u64 > self.config.segment_bytes {
            return Err(AppendError::RecordListTooLarge {
                size: records.len(),
                max: self.config.segment_bytes,
            });
        }
        if let Some(latest) = self.epochs.latest_epoch() {
            if leader_epoch < latest {
                return Err(AppendError::FencedLeaderEpoch {
                    epoch: leader_epoch,
                    latest,
                });
            }
        }
        let log_append_time = self.config.timestamp_type == TimestampType::LogAppendTime;
        // Offsets each batch will get.
        let mut offset = self.next_offset;
        let mut producer_batches = Vec::new();
        let mut max_ts = i64::MIN;
        let mut record_count = 0u64;
        for b in &batches {
            let first = offset;
            let ts = if log_append_time {
                now_ms
            } else {
                b.max_timestamp
            };
            max_ts = max_ts.max(ts);
            if b.producer_id >= 0 {
                producer_batches.push(ProducerBatch {
                    producer_id: b.producer_id,
                    epoch: b.producer_epoch,
                    first_seq: b.base_sequence,
                    last_seq: b.last_sequence,
                    first_offset: first,
                    last_offset: first + b.last_offset_delta as i64,
                    max_timestamp: ts,
                    transactional: b.transactional,
                });
            }
            offset = first + b.last_offset_delta as i64 + 1;
            record_count += b.record_count as u64;
        }
        let update = match self
            .producers
            .check_leader_append(&producer_batches, origin, guard)?
        {
            LeaderCheck::Duplicate(dup) => {
                return Ok(LeaderAppend {
                    base_offset: dup.first_offset(),
                    last_offset: dup.last_offset,
                    log_append_time_ms: if log_append_time { dup.timestamp } else { -1 },
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                    record_count: (dup.last_offset - dup.first_offset() + 1) as u64,
                })
            }
            LeaderCheck::Ok(update) => update,
        };
        // Stamp offsets, epoch and timestamps into copies of the headers; the request's
        // record bytes are written as received (one vectored write, no copy).
        let base_offset = self.next_offset;
        let mut next = base_offset;
        let mut parts = Vec::with_capacity(batches.len());
        for b in &batches {
            let bytes = &records[b.pos..b.pos + b.size];
            let body = &bytes[BATCH_HEADER_SIZE..];
            let mut header = [0u8; BATCH_HEADER_SIZE];
            header.copy_from_slice(&bytes[..BATCH_HEADER_SIZE]);
            patch::set_base_offset(&mut header, next);
            patch::set_partition_leader_epoch(&mut header, leader_epoch);
            let crc_changed = if log_append_time {
                patch::header_set_log_append_time(&mut header, now_ms)
            } else if b.fix_max_timestamp {
                patch::header_set_max_timestamp(&mut header, b.max_timestamp)
            } else {
                false
            };
            if crc_changed {
                patch::header_rewrite_crc(&mut header, body);
            }
            parts.push((BatchHeader(header), body));
            next += b.last_offset_delta as i64 + 1;
        }
        let last_offset = next - 1;
        debug_assert_eq!(next, offset, "offsets are contiguous across the append");
        self.maybe_roll(
            records.len() as u64,
            max_ts,
            base_offset,
            last_offset,
            now_ms,
        )?;
        self.epochs.assign(leader_epoch, base_offset)?;
        self.active_mut()?.append_parts(&parts, now_ms)?;
        self.producers.apply(update, next);
        self.next_offset = next;
        self.after_append(record_count, now_ms)?;
        Ok(LeaderAppend {
            base_offset,
            last_offset,
            log_append_time_ms: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            duplicate: false,
            record_count,
        })
    }

    /// Appends batches replicated from the leader (offsets already assigned). CRCs are
    /// verified; the first batch must not start below the log end offset (a gap above it
    /// is allowed, as after compaction on the leader); the epoch cache learns each batch's
    /// partitionLeaderEpoch and producer state is updated without sequence checks.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<FollowerAppend, AppendError> {
        let r = self.append_as_follower_unguarded(records, now_ms);
        self.publish();
        self.guarded(r)
    }

    pub(super) fn append_as_follower_unguarded(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<FollowerAppend, AppendError> {
        self.check_open()?;
        self.touch(now_ms);
        if records.is_empty() {
            return Ok(FollowerAppend {
                first_offset: self.next_offset,
                last_offset: self.next_offset - 1,
            });
        }
        let mut first_offset = None;
        let mut expected_min = self.next_offset;
        let mut max_ts = i64::MIN;
        let mut epochs = Vec::new();
        let mut events = Vec::new();
        let mut count = 0u64;
        for item in BatchIter::new(records) {
            let (_, b) = item.map_err(|e| match e {
                BatchError::BadMagic(_) | BatchError::Invalid(_) => {
                    AppendError::InvalidRecord(e.to_string())
                }
                other => AppendError::CorruptMessage(other.to_string()),
            })?;
            b.verify_crc()
                .map_err(|e| AppendError::CorruptMessage(e.to_string()))?;
            if b.base_offset()
                .checked_add(b.last_offset_delta() as i64 + 1)
                .is_none()
            {
                return Err(AppendError::InvalidRecord(format!(
                    "batch offsets overflow: base {} delta {}",
                    b.base_offset(),
                    b.last_offset_delta()
                )));
            }
            if b.base_offset() < expected_min || b.last_offset_delta() < 0 {
                return Err(AppendError::UnexpectedAppendOffset {
                    expected: expected_min,
                    found: b.base_offset(),
                });
            }
            first_offset.get_or_insert(b.base_offset());
            expected_min = b.next_offset();
            max_ts = max_ts.max(b.max_timestamp());
            epochs.push((b.partition_leader_epoch(), b.base_offset()));
            if let Some(e) = ProducerEvent::of(&b).map_err(AppendError::CorruptMessage)? {
                events.push(e);
            }
            count += b.record_count().max(0) as u64;
        }
        // Invariant: `records` is non-empty and every iteration either returned an error
        // or set `first_offset`.
        let first = first_offset.expect("at least one batch");
        let last = expected_min - 1;
        self.maybe_roll(records.len() as u64, max_ts, first, last, now_ms)?;
        for (epoch, start) in epochs {
            if epoch >= 0 {
                self.epochs.assign(epoch, start)?;
            }
        }
        self.active_mut()?.append(records, now_ms)?;
        self.next_offset = expected_min;
        self.apply_events(&events)?;
        self.producers.update_map_end_offset(self.next_offset);
        self.after_append(count, now_ms)?;
        Ok(FollowerAppend {
            first_offset: first,
            last_offset: last,
        })
    }

    pub(in crate::storage) fn after_append(
        &mut self,
        records: u64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        self.unflushed_messages += records;
        if self.unflushed_messages >= self.config.flush_interval_messages {
            self.flush(now_ms)?;
        }
        Ok(())
    }

    /// Rolls when the active segment cannot take the append (Kafka's `maybeRoll`).
    pub(in crate::storage) fn maybe_roll(
        &mut self,
        size: u64,
        max_ts: i64,
        first_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let reason = self
            .active()?
            .should_roll(&self.config, size, max_ts, last_offset, now_ms);
        if let Some(reason) = reason {
            tracing::info!(partition = %self.tp, reason, "rolling segment");
            self.roll(Some(first_offset), now_ms)?;
        }
        Ok(())
    }
}
