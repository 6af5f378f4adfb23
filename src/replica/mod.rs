//! Partition replicas on this broker: leading (appends, high watermark, ISR), following
//! (fetching from the leader, truncating divergent tails), and the manager that applies
//! the controller's decisions.

pub mod errors;
pub mod fetcher;
pub mod log_config;
pub mod manager;
pub mod model_log;
pub mod partition;
#[cfg(test)]
mod sim;
pub mod state;
#[cfg(test)]
mod state_tests;
pub mod throttle;

pub use manager::ReplicaManager;
pub use partition::{Partition, PartitionError, Role};
