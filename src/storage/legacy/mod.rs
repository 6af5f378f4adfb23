//! Message formats v0 and v1 (magic 0 and 1), which clients from before Kafka 0.11 speak
//! (Produce v0-v2, Fetch v0-v3). Storage holds v2 batches only, as a Kafka 3.x broker
//! does: [`up`] converts what such producers send, [`down`] serves v2 batches to such
//! consumers, [`message`] is the format itself and [`offsets`] the ListOffsets v0 lookup
//! over segment times.

pub mod down;
pub mod message;
pub mod offsets;
pub mod up;

#[cfg(test)]
mod tests;
