//! The Kafka wire protocol at the byte level: size-prefixed frames, request headers and
//! response encoding. Message bodies are `kafka-protocol`'s; this module never interprets
//! them.

pub mod errors;
pub mod frame;
pub mod header;
pub mod splice;

pub use frame::{read_frame, read_frame_body, read_frame_size, FrameError};
pub use header::{decode_request, encode_response, DecodedRequest, RequestError, ResponseFrame};
