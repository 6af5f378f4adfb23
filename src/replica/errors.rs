//! The Kafka error code Apache Kafka returns for each partition-level failure.

use super::partition::PartitionError;
use crate::protocol::errors::Error;
use crate::storage::{AppendError, ReadError};

pub fn partition_error(err: &PartitionError) -> Error {
    match err {
        PartitionError::NotLeader => Error::NotLeaderOrFollower,
        PartitionError::FencedLeaderEpoch { .. } => Error::FencedLeaderEpoch,
        PartitionError::UnknownLeaderEpoch { .. } => Error::UnknownLeaderEpoch,
        PartitionError::NotEnoughReplicas { .. } => Error::NotEnoughReplicas,
        PartitionError::NotEnoughReplicasAfterAppend { .. } => Error::NotEnoughReplicasAfterAppend,
        PartitionError::Timeout => Error::RequestTimedOut,
        PartitionError::Append(e) => append_error(e),
        PartitionError::Read(ReadError::OffsetOutOfRange { .. }) => Error::OffsetOutOfRange,
        // WouldBlock is retried on an I/O thread before any answer; should one ever
        // escape, the client retries a storage error.
        PartitionError::Read(ReadError::Storage(_) | ReadError::WouldBlock)
        | PartitionError::Storage(_) => Error::KafkaStorageError,
    }
}

pub fn append_error(err: &AppendError) -> Error {
    match err {
        AppendError::CorruptMessage(_) => Error::CorruptMessage,
        AppendError::InvalidRecord(_) => Error::InvalidRecord,
        AppendError::MessageTooLarge { .. } => Error::MessageTooLarge,
        AppendError::RecordListTooLarge { .. } => Error::RecordListTooLarge,
        AppendError::OutOfOrderSequence { .. } => Error::OutOfOrderSequenceNumber,
        AppendError::InvalidProducerEpoch { .. } => Error::InvalidProducerEpoch,
        AppendError::InvalidTimestamp(_) => Error::InvalidTimestamp,
        AppendError::InvalidTxnState(_) => Error::InvalidTxnState,
        AppendError::TransactionCoordinatorFenced { .. } => Error::TransactionCoordinatorFenced,
        AppendError::RecordsRejected {
            timestamp: true, ..
        } => Error::InvalidTimestamp,
        AppendError::RecordsRejected { .. } => Error::InvalidRecord,
        AppendError::UnsupportedForMessageFormat(_) => Error::UnsupportedForMessageFormat,
        AppendError::UnsupportedCompressionType(_) => Error::UnsupportedCompressionType,
        AppendError::FencedLeaderEpoch { .. } => Error::FencedLeaderEpoch,
        AppendError::UnexpectedAppendOffset { .. } => Error::UnknownServerError,
        AppendError::Storage(_) => Error::KafkaStorageError,
    }
}
