//! Kafka's error codes, a wire concept below every module that answers a client or reads
//! a peer's answer (`kafka_protocol::ResponseError`). Which internal failure maps to which
//! code lives with the failure: `replica::errors` for partition and append failures.

pub use kafka_protocol::ResponseError as Error;

/// The numeric code of an error, for response fields.
pub fn code(err: Error) -> i16 {
    err.code()
}
