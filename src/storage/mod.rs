//! Kafka-format log storage: segments, indexes, recovery, retention. Not built yet.
