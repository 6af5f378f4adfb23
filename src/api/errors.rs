//! Kafka error codes used by the handlers, by name (`kafka_protocol::ResponseError`).

pub use kafka_protocol::ResponseError as Error;

pub const NONE: i16 = 0;

/// The numeric code of an error, for response fields.
pub fn code(err: Error) -> i16 {
    err.code()
}
