//! The small admin and client CLI a newcomer reaches for first: `gregor topics`,
//! `gregor produce`, `gregor consume` (and `gregor groups`, `gregor transactions`). Everything goes over the Kafka
//! protocol, so it works against any broker of the cluster (or Apache Kafka).

pub mod acls;
pub mod certs;
pub mod consume;
pub mod groups;
pub mod partitioner;
pub mod produce;
pub mod topics;
pub mod transactions;
pub mod users;

use crate::client::cluster::ClusterClient;

/// Where `gregor cluster` records the bootstrap address of the cluster it runs (under its
/// `--data` directory, removed when it stops).
pub const BOOTSTRAP_FILE: &str = "bootstrap";

/// Every client command's default `--bootstrap-server`: `GREGOR_BOOTSTRAP` if set, else
/// the bootstrap of a `gregor cluster` running from this directory (`gregor-data/bootstrap`),
/// else `127.0.0.1:9092`.
pub fn default_bootstrap() -> String {
    bootstrap_from(
        std::env::var("GREGOR_BOOTSTRAP").ok(),
        std::fs::read_to_string(std::path::Path::new("gregor-data").join(BOOTSTRAP_FILE)).ok(),
    )
}

fn bootstrap_from(env: Option<String>, running: Option<String>) -> String {
    [env, running]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string())
}

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

/// Turns a Kafka error code into a readable error.
pub fn check(code: i16, what: &str, message: Option<&str>) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = kafka_protocol::ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_default();
    match message {
        Some(m) if !m.is_empty() => anyhow::bail!("{what}: {name} ({code}): {m}"),
        _ => anyhow::bail!("{what}: {name} ({code})"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bootstrap_default_prefers_the_environment_then_a_running_cluster() {
        use super::bootstrap_from;
        assert_eq!(bootstrap_from(None, None), "127.0.0.1:9092");
        assert_eq!(bootstrap_from(None, Some("h:1\n".into())), "h:1");
        assert_eq!(
            bootstrap_from(Some("e:2".into()), Some("h:1".into())),
            "e:2"
        );
        assert_eq!(bootstrap_from(Some(" ".into()), Some("h:1".into())), "h:1");
    }
}
