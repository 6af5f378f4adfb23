//! Loading a partition directory (Kafka's `LogLoader`): removes leftovers of interrupted
//! operations (`.deleted`, `.cleaned`, temp files; completes `.swap` renames), opens every
//! segment, recovers segments past the recovery point (or with missing/inconsistent
//! indexes) by re-reading and CRC-checking every batch, truncates a torn or corrupt tail
//! (and deletes any later segments), then restores the leader-epoch cache (truncated to
//! the log end offset) and the producer state (newest snapshot at or below the log end
//! offset + replay of the batch headers after it).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::batch::HeaderFields;
use super::checkpoint::read_partition_metadata;
use super::config::LogConfig;
use super::error::{IoContext, StorageError};
use super::index_file::remove_if_exists;
use super::leader_epoch::LeaderEpochCache;
use super::log::Log;
use super::producer_state::ProducerStateManager;
use super::segment::{
    parse_segment_file, segment_file, Segment, CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_EXT, LOG_EXT,
    SWAP_SUFFIX, TIME_INDEX_EXT,
};
use super::txn_index::TXN_INDEX_EXT;
use super::TopicPartition;

/// Deletes leftovers and finishes interrupted swaps. Returns the base offsets of the
/// `.log` segments present afterwards.
fn clean_directory(dir: &Path, config: &LogConfig, now_ms: i64) -> Result<Vec<i64>, StorageError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).ctx(dir)? {
        let entry = entry.ctx(dir)?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        } else {
            tracing::warn!(dir = %dir.display(), "ignoring a file with a non UTF-8 name");
        }
    }
    // 1. Files of deleted or half-cleaned segments, temp files.
    for name in &names {
        if name.ends_with(DELETED_SUFFIX)
            || name.ends_with(CLEANED_SUFFIX)
            || name.ends_with(".tmp")
        {
            remove_if_exists(&dir.join(name))?;
        }
    }
    // 2. Swap files: the cleaner finished writing them; complete the replacement of the
    //    segments they cover (Kafka's LogLoader swap handling).
    let mut swaps: Vec<i64> = names
        .iter()
        .filter_map(|n| parse_segment_file(n, LOG_EXT, SWAP_SUFFIX))
        .collect();
    swaps.sort();
    for name in &names {
        if parse_segment_file(name, INDEX_EXT, SWAP_SUFFIX).is_some()
            || parse_segment_file(name, TIME_INDEX_EXT, SWAP_SUFFIX).is_some()
        {
            remove_if_exists(&dir.join(name))?; // indexes are rebuilt
        }
    }
    let mut logs: Vec<i64> = names
        .iter()
        .filter_map(|n| parse_segment_file(n, LOG_EXT, ""))
        .collect();
    for base in swaps {
        let (mut swap, _) = Segment::open(dir, base, config, SWAP_SUFFIX, now_ms)?;
        swap.recover(0, &mut |_| {})?;
        let end = swap.next_offset();
        for &old in logs
            .iter()
            .filter(|&&o| o >= base && (o < end || o == base))
        {
            // The swap's own `.txnindex.swap` (the cleaner copied the entries) replaces
            // the old one below.
            for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT] {
                remove_if_exists(&segment_file(dir, old, ext, ""))?;
            }
        }
        logs.retain(|&o| !(o >= base && (o < end || o == base)));
        // `recover` rebuilt the swap's indexes; rename all three into place.
        swap.change_suffix("")?;
        tracing::info!(dir = %dir.display(), base_offset = base, "completed interrupted segment swap");
        logs.push(base);
    }
    // 3. Orphan index files.
    for name in &names {
        for ext in [INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT] {
            if let Some(base) = parse_segment_file(name, ext, "") {
                if !logs.contains(&base) {
                    remove_if_exists(&dir.join(name))?;
                }
            }
        }
        if name.ends_with(LOG_EXT) && parse_segment_file(name, LOG_EXT, "").is_none() {
            return Err(StorageError::Corrupt(format!(
                "unrecognized segment file name {} in {}",
                name,
                dir.display()
            )));
        }
    }
    logs.sort();
    logs.dedup();
    Ok(logs)
}

/// Opens and recovers the log in partition directory `dir`.
pub fn load_log(
    dir: &Path,
    tp: &TopicPartition,
    config: LogConfig,
    recovery_point: i64,
    log_start_offset_hint: i64,
    had_clean_shutdown: bool,
    now_ms: i64,
) -> Result<Log, StorageError> {
    if !dir.is_dir() {
        return Err(StorageError::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "partition directory does not exist",
            ),
        ));
    }
    let topic_id = read_partition_metadata(dir)?;
    let bases = clean_directory(dir, &config, now_ms)?;

    // Leader epoch cache: a corrupt checkpoint is rebuilt from the batches.
    let (mut epochs, epochs_from_log) = match LeaderEpochCache::load(dir) {
        Ok(c) => (c, false),
        Err(StorageError::Corrupt(why)) => {
            tracing::warn!(partition = %tp, %why, "leader epoch checkpoint unreadable; rebuilding from the log");
            (LeaderEpochCache::empty(dir), true)
        }
        Err(e) => return Err(e),
    };

    // Open segments; the segment containing the recovery point and all later ones are
    // recovered unless the shutdown was clean.
    let recover_from = if had_clean_shutdown {
        i64::MAX
    } else {
        bases
            .iter()
            .copied()
            .rfind(|&b| b <= recovery_point.max(0))
            .unwrap_or(i64::MIN)
    };
    let mut segments: BTreeMap<i64, Segment> = BTreeMap::new();
    // The first segment whose transaction index must be rebuilt from the log (it was
    // recovered, or its `.txnindex` was unreadable).
    let mut txn_index_from = i64::MAX;
    let mut prev_next: i64 = 0;
    let mut truncated = false;
    let mut recovered_any = false;
    for &base in &bases {
        if truncated {
            // Everything after a corrupt tail is unreachable: delete it (Kafka does too).
            tracing::warn!(partition = %tp, base_offset = base, "deleting segment after a corrupt tail");
            for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT] {
                remove_if_exists(&segment_file(dir, base, ext, ""))?;
            }
            continue;
        }
        if base < prev_next {
            return Err(StorageError::Corrupt(format!(
                "segment {} in {} overlaps the previous segment (which ends at {prev_next})",
                base,
                dir.display()
            )));
        }
        let (mut seg, mut needs_recovery) = Segment::open(dir, base, &config, "", now_ms)?;
        needs_recovery |= base >= recover_from;
        if seg.txn_index_lost() {
            txn_index_from = txn_index_from.min(base);
        }
        if !needs_recovery {
            if let Err(e) = seg.load_tail_state() {
                tracing::warn!(partition = %tp, base_offset = base, error = %e, "index inconsistent with log; rebuilding");
                needs_recovery = true;
            }
        }
        if needs_recovery {
            let mut visit = |b: &super::batch::Batch<'_>| {
                let e = b.partition_leader_epoch();
                if e >= 0 && epochs.latest_epoch().is_none_or(|l| e > l) {
                    epochs.assign_in_memory(e, b.base_offset());
                }
            };
            let out = seg.recover(prev_next, &mut visit)?;
            recovered_any = true;
            txn_index_from = txn_index_from.min(base);
            if out.truncated_bytes > 0 {
                truncated = true;
            }
        }
        prev_next = if seg.is_empty() {
            base.max(prev_next)
        } else {
            seg.next_offset()
        };
        segments.insert(base, seg);
    }
    if segments.is_empty() {
        let base = log_start_offset_hint.max(0);
        segments.insert(base, Segment::create(dir, base, &config, "", now_ms)?);
        prev_next = base;
    }
    let (Some(&first_base), Some(last)) = (segments.keys().next(), segments.values().next_back())
    else {
        // Unreachable: an empty map got a segment just above.
        return Err(StorageError::Corrupt(format!(
            "{}: no segment",
            dir.display()
        )));
    };
    let mut next_offset = if last.is_empty() {
        last.base_offset().max(prev_next)
    } else {
        last.next_offset()
    };
    let mut log_start = log_start_offset_hint.max(first_base);

    let producers = ProducerStateManager::new(dir, log_start, config.producer_id_expiration_ms)?;
    let mut log = Log {
        dir: dir.to_path_buf(),
        tp: tp.clone(),
        config,
        segments,
        log_start_offset: log_start,
        next_offset,
        recovery_point: next_offset,
        epochs: LeaderEpochCache::empty(dir),
        producers,
        topic_id,
        unflushed_messages: 0,
        last_flush_ms: now_ms,
        last_now_ms: now_ms,
        pending_deletes: Vec::new(),
        dir_dirty: false,
        closed: false,
        first_dirty_offset: log_start,
        truncations: 0,
        failure: None,
        reader: std::sync::Arc::new(super::read_view::LogReader::new(
            super::read_view::ReadView::unpublished(&tp.to_string()),
        )),
    };
    if log_start > next_offset {
        // The data up to the (checkpointed) log start offset is gone: start empty there.
        tracing::warn!(partition = %tp, log_start, next_offset, "log start offset beyond recovered end; restarting log at log start");
        log.truncate_fully_and_start_at(log_start)?;
        next_offset = log_start;
        log_start = log.log_start_offset;
        epochs = LeaderEpochCache::empty(dir);
    }

    if epochs_from_log {
        for seg in log.segments.values() {
            seg.headers_from(0).for_each(|_, h| {
                epochs.assign_in_memory(h.partition_leader_epoch(), h.base_offset());
            })?;
        }
    }
    epochs.truncate_from_end(next_offset)?;
    epochs.truncate_from_start(log_start)?;
    epochs.write()?;
    log.epochs = epochs;

    log.rebuild_producer_state(now_ms, txn_index_from)?;
    if recovered_any {
        // Recovered data is now verified: make it durable so it is not scanned again.
        log.flush(now_ms)?;
    }
    log.recovery_point = next_offset;
    assert!(log.log_start_offset <= log.next_offset);
    log.publish();
    tracing::info!(
        partition = %tp,
        log_start_offset = log.log_start_offset,
        log_end_offset = log.next_offset,
        segments = log.segments.len(),
        clean = had_clean_shutdown,
        "loaded log"
    );
    Ok(log)
}
