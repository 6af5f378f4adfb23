//! Replaying a coordinator partition's log when it is loaded (Kafka's
//! `GroupMetadataManager.doLoadGroupsAndOffsets`, `TransactionStateManager
//! .loadTransactionMetadata`): every batch from the log start to the end, as records or
//! as a transaction marker.

use std::sync::{Mutex, MutexGuard};

use crate::replica::Partition;
use crate::storage::batch::{decode_records, Batch, BatchIter, HeaderFields, OwnedRecord};
use crate::storage::control::{parse_marker, Marker};

/// One batch of the log, as a loader sees it.
pub enum Loaded<'a> {
    /// The records of a data batch; `producer` is (producer id, epoch) of a
    /// transactional batch.
    Records {
        producer: Option<(i64, i16)>,
        records: &'a [OwnedRecord],
    },
    /// A COMMIT or ABORT marker.
    Marker(Marker),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads `replica`'s log from its start to its end (as they were when called) and hands
/// every batch to `visit`, in order. Returns the number of records read. A batch that
/// cannot be decoded is skipped with an error line: the coordinator never writes one, and
/// failing would keep the coordinator loading forever.
pub fn replay(
    topic: &str,
    p: i32,
    replica: &Partition,
    mut visit: impl FnMut(Loaded<'_>, i64),
) -> Result<u64, String> {
    const READ_BYTES: usize = 4 * 1024 * 1024;
    let log = replica.log();
    let (mut offset, end, decompress_limit) = {
        let l = lock(log);
        (
            l.log_start_offset(),
            l.log_end_offset(),
            l.decompress_limit(),
        )
    };
    let mut records = 0u64;
    while offset < end {
        let read = {
            let l = lock(log);
            if offset < l.log_start_offset() {
                offset = l.log_start_offset();
            }
            l.read(offset, READ_BYTES, end, true)
                .map_err(|e| format!("read at offset {offset}: {e}"))?
        };
        if read.records.is_empty() {
            break;
        }
        let mut advanced = false;
        for item in BatchIter::new(&read.records) {
            let (_, batch) =
                item.map_err(|e| format!("corrupt batch near offset {offset}: {e}"))?;
            let next = batch.next_offset();
            if batch.last_offset() >= offset {
                records += visit_batch(topic, p, &batch, offset, decompress_limit, &mut visit);
            }
            offset = offset.max(next);
            advanced = true;
        }
        if !advanced {
            break;
        }
    }
    Ok(records)
}

fn visit_batch(
    topic: &str,
    p: i32,
    batch: &Batch<'_>,
    from: i64,
    decompress_limit: usize,
    visit: &mut impl FnMut(Loaded<'_>, i64),
) -> u64 {
    if batch.is_control() {
        match parse_marker(batch) {
            Ok(Some(m)) => visit(Loaded::Marker(m), batch.base_offset()),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(topic, partition = p, offset = batch.base_offset(), error = %e, "skipping an unreadable control batch")
            }
        }
        return 0;
    }
    let decoded = match decode_records(batch, decompress_limit) {
        Ok(decoded) => decoded,
        Err(e) => {
            // A client produced it (a bomb, or garbage under a valid CRC).
            tracing::error!(topic, partition = p, error = %e, "skipping an unreadable batch");
            return 0;
        }
    };
    let records: Vec<OwnedRecord> = decoded.into_iter().filter(|r| r.offset >= from).collect();
    let producer = (batch.is_transactional() && batch.has_producer_id())
        .then(|| (batch.producer_id(), batch.producer_epoch()));
    let n = records.len() as u64;
    visit(
        Loaded::Records {
            producer,
            records: &records,
        },
        batch.base_offset(),
    );
    n
}
