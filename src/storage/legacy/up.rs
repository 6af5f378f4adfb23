//! Up-conversion on produce: a message format v0/v1 set (Produce v0-v2) becomes one v2
//! batch, as a Kafka 3.x broker (inter-broker protocol >= 3.0, message format always v2)
//! does in `UnifiedLog.analyzeAndValidateRecords` and `LogValidator`:
//!
//! - every shallow message: size within `max.message.bytes` (MESSAGE_TOO_LARGE), CRC
//!   (CORRUPT_MESSAGE), the same magic as the first (INVALID_RECORD);
//! - a compressed set is exactly one wrapper whose inner messages share its magic, carry
//!   no codec of their own (a record error) and valid CRCs (CORRUPT_MESSAGE); a magic 1
//!   wrapper's offset is zero or at least its last inner offset;
//! - per record (KIP-467 record errors, indexed within their shallow batch): a key on
//!   compacted topics, the timestamp within `message.timestamp.{before,after}.max.ms`,
//!   no LogAppendTime set by the producer;
//! - the records are written in one v2 batch with the topic's codec (`compression.type`,
//!   the producer's when `producer`): magic 0 records have no timestamp (-1), magic 1
//!   records keep theirs. Offsets are assigned by the log afterwards.

use super::super::builder::{self, BatchSpec, NewRecord};
use super::super::codec::{self, decompress_legacy};
use super::super::config::{Compression, LogConfig};
use super::super::error::{AppendError, RecordError};
use super::super::validate::check_record;
use super::message::{Message, MessageError, MessageIter};

fn from_message_error(e: MessageError) -> AppendError {
    match e {
        MessageError::Corrupt(m) => AppendError::CorruptMessage(m),
        MessageError::Invalid(m) => AppendError::InvalidRecord(m),
    }
}

/// The shallow messages of a v0/v1 set, checked as `analyzeAndValidateRecords` does.
fn shallow_messages<'a>(
    buf: &'a [u8],
    config: &LogConfig,
) -> Result<Vec<Message<'a>>, AppendError> {
    let mut out: Vec<Message<'a>> = Vec::new();
    for item in MessageIter::new(buf) {
        let m = item.map_err(from_message_error)?;
        if m.entry_size > config.max_message_bytes {
            return Err(AppendError::MessageTooLarge {
                size: m.entry_size,
                max: config.max_message_bytes,
            });
        }
        if !m.crc_ok() {
            return Err(AppendError::CorruptMessage(format!(
                "Record is corrupt (stored crc = {}, computed crc = {})",
                m.crc,
                m.computed_crc()
            )));
        }
        if let Some(first) = out.first() {
            if first.magic != m.magic {
                return Err(AppendError::InvalidRecord(format!(
                    "Batch magic {} is not the same as the first batch's magic byte {}",
                    m.magic, first.magic
                )));
            }
        }
        out.push(m);
    }
    if out.is_empty() {
        return Err(AppendError::InvalidRecord(
            "produce request contains no complete message".into(),
        ));
    }
    Ok(out)
}

/// The inner messages of a compressed wrapper (`AbstractLegacyRecordBatch.DeepRecordsIterator`).
fn inner_messages<'a>(
    wrapper: &Message<'_>,
    inflated: &'a [u8],
) -> Result<Vec<Message<'a>>, AppendError> {
    let mut inner = Vec::new();
    for item in MessageIter::new(inflated) {
        let m = item.map_err(from_message_error)?;
        if m.magic != wrapper.magic {
            return Err(AppendError::InvalidRecord(format!(
                "Compressed message magic {} does not match wrapper magic {}",
                m.magic, wrapper.magic
            )));
        }
        inner.push(m);
    }
    let Some(last) = inner.last() else {
        return Err(AppendError::InvalidRecord(
            "Found invalid compressed record set with no inner records".into(),
        ));
    };
    if wrapper.magic == 1 && wrapper.offset != 0 && wrapper.offset < last.offset {
        return Err(AppendError::InvalidRecord(format!(
            "Found invalid wrapper offset in compressed v1 message set, wrapper offset '{}' is less than the last inner message offset '{}' and it is not zero.",
            wrapper.offset, last.offset
        )));
    }
    Ok(inner)
}

/// Converts a produce request's v0/v1 message set for one partition into a single v2
/// batch (base offset 0), or refuses it with Kafka's error.
pub fn up_convert(buf: &[u8], config: &LogConfig, now_ms: i64) -> Result<Vec<u8>, AppendError> {
    let shallow = shallow_messages(buf, config)?;
    let source_codec = shallow
        .iter()
        .rev()
        .map(Message::codec)
        .find(|c| *c != 0)
        .unwrap_or(0);
    if source_codec > 3 {
        return Err(AppendError::InvalidRecord(format!(
            "Invalid wrapper compression codec {source_codec} in a magic {} message set",
            shallow[0].magic
        )));
    }
    if source_codec != 0 && shallow.len() > 1 {
        return Err(AppendError::InvalidRecord(
            "Compressed outer record has more than one batch".into(),
        ));
    }
    let (codec, level) = match config.compression {
        Compression::Producer => (source_codec, None),
        Compression::Codec { codec, level } => (codec, level),
    };
    let limit = codec::limit_for(config.max_message_bytes);
    let mut inflated = Vec::new();
    if source_codec != 0 {
        let wrapper = &shallow[0];
        let Some(value) = wrapper.value else {
            return Err(AppendError::InvalidRecord(format!(
                "Found invalid compressed record set with null value (magic = {})",
                wrapper.magic
            )));
        };
        inflated = decompress_legacy(source_codec, wrapper.magic, value, limit)
            .map_err(|e| AppendError::CorruptMessage(e.to_string()))?;
    }
    let mut records: Vec<NewRecord<'_>> = Vec::new();
    for batch in &shallow {
        let mut errors: Vec<(bool, RecordError)> = Vec::new();
        let batch_lat = batch.is_log_append_time();
        let inner = if batch.is_compressed() {
            inner_messages(batch, &inflated)?
        } else {
            vec![*batch]
        };
        for (index, m) in inner.iter().enumerate() {
            let error = if batch.is_compressed() && m.is_compressed() {
                Some((
                    false,
                    "Compressed outer record should not have an inner record with a compression attribute set".to_string(),
                ))
            } else {
                if batch.is_compressed() && !m.crc_ok() {
                    return Err(AppendError::CorruptMessage(format!(
                        "Record is corrupt (stored crc = {}, computed crc = {})",
                        m.crc,
                        m.computed_crc()
                    )));
                }
                // Inner magic 1 records take the wrapper's time when it is LogAppendTime.
                let timestamp = if batch.is_compressed() && batch_lat {
                    batch.timestamp
                } else {
                    m.timestamp
                };
                check_record(
                    m.key.is_none(),
                    timestamp,
                    m.offset,
                    batch_lat,
                    config,
                    now_ms,
                )
            };
            match error {
                Some((timestamp, message)) => errors.push((
                    timestamp,
                    RecordError {
                        batch_index: index as i32,
                        message,
                    },
                )),
                None => records.push(NewRecord {
                    timestamp: if m.magic == 0 {
                        -1
                    } else if batch.is_compressed() && batch_lat {
                        batch.timestamp
                    } else {
                        m.timestamp
                    },
                    key: m.key,
                    value: m.value,
                    headers: &[],
                }),
            }
        }
        if !errors.is_empty() {
            let timestamp = errors.iter().any(|(t, _)| *t);
            return Err(AppendError::rejected(
                errors.into_iter().map(|(_, e)| e).collect(),
                timestamp,
            ));
        }
    }
    builder::build(&BatchSpec::plain(codec, level), &records).map_err(AppendError::CorruptMessage)
}
