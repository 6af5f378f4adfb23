//! The small admin and client CLI a newcomer reaches for first: `gregor topics`,
//! `gregor produce`, `gregor consume` (and `gregor groups`, `gregor transactions`). Everything goes over the Kafka
//! protocol, so it works against any broker of the cluster (or Apache Kafka).

pub mod acls;
pub mod certs;
pub mod configs;
pub mod consume;
pub mod elect_leaders;
pub mod groups;
pub mod partitioner;
pub mod produce;
pub mod progress;
pub mod reassign;
pub mod topics;
pub mod transactions;
pub mod users;

use crate::client::cluster::ClusterClient;

pub use crate::client::tools::{check, default_bootstrap, BOOTSTRAP_FILE};

/// Runs an async CLI body on a small runtime.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

pub async fn connect(bootstrap: &str) -> anyhow::Result<ClusterClient> {
    ClusterClient::connect(bootstrap, "gregor-cli")
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the cluster at {bootstrap}: {e}"))
}

/// The partition count of `topic` from the client's last metadata: "does not exist", or
/// the error Metadata answered for it (TOPIC_AUTHORIZATION_FAILED with an authorizer).
pub fn partition_count(c: &ClusterClient, topic: &str) -> anyhow::Result<i32> {
    if let Some(n) = c.partitions(topic) {
        return Ok(n);
    }
    let code = c
        .metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .map_or(3, |t| t.error_code);
    if code == 3 || code == 0 {
        anyhow::bail!("topic {topic} does not exist");
    }
    check(code, &format!("topic {topic}"), None)?;
    anyhow::bail!("topic {topic}: no metadata")
}
