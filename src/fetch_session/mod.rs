//! Incremental fetch sessions (KIP-227). A consumer or follower fetching many partitions
//! sends them all once (a full request, epoch 0), gets a session id, and from then on
//! sends only the partitions whose fetch position changed (epoch 1, 2, ...), naming the
//! ones it stopped fetching as "forgotten"; the leader answers only the partitions with
//! something new (records, a moved high watermark, log start or last stable offset, an
//! error). Both sides are pure state machines here:
//!
//! - `cache`: the leader's session cache (`api::fetch` consults it per request);
//! - `handler`: the fetching side's bookkeeping (`replica::fetcher` uses it).

pub mod cache;
pub mod handler;

#[cfg(test)]
mod tests;

/// Epoch of a full request that asks for a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// Epoch of a full request that wants no session (and closes the one it names).
pub const FINAL_EPOCH: i32 = -1;

/// A topic as the fetch request names it: by name below v13, by id from v13.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicRef {
    Name(String),
    Id(uuid::Uuid),
}

/// One partition of a session.
pub type PartitionKey = (TopicRef, i32);

/// What a fetch request asks of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionParams {
    pub fetch_offset: i64,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    /// The fetcher's own log start offset (followers), -1 for consumers.
    pub log_start_offset: i64,
    pub max_bytes: i32,
}

impl PartitionSummary {
    /// What a session needs to know of one partition's Fetch answer.
    pub fn of(data: &kafka_protocol::messages::fetch_response::PartitionData) -> Self {
        PartitionSummary {
            error_code: data.error_code,
            has_records: data.records.as_ref().is_some_and(|r| !r.is_empty()),
            has_other_news: data.diverging_epoch.epoch >= 0
                || data.preferred_read_replica.0 >= 0
                || data
                    .aborted_transactions
                    .as_ref()
                    .is_some_and(|a| !a.is_empty()),
            high_watermark: data.high_watermark,
            last_stable_offset: data.last_stable_offset,
            log_start_offset: data.log_start_offset,
        }
    }
}

/// What the answer for one partition says, as far as a session cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSummary {
    pub error_code: i16,
    pub has_records: bool,
    /// A diverging epoch, aborted transactions, a preferred read replica: always carried.
    pub has_other_news: bool,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}
