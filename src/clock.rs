//! The broker's one clock: wall-clock milliseconds since the epoch, the unit of every
//! Kafka timestamp, timeout and deadline field. Logic that depends on time takes `now_ms`
//! as an argument (the partition state machine, the group shard, the controller's
//! decisions); only the shells at the edges read this clock.

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
