//! The error codes the handlers answer with: Kafka's codes (`protocol::errors`) and the
//! mapping of partition failures to them (`replica::errors`), re-exported for the API
//! layer. Modules below the API import those two directly.

pub use crate::protocol::errors::{code, Error};
pub use crate::replica::errors::{append_error, partition_error};
