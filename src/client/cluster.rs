//! A cluster-aware client for the CLI: bootstraps from any listed broker, keeps one
//! connection per broker, routes partition requests to leaders from Metadata, and refreshes
//! metadata when a leader moves.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use super::{ClientError, KafkaConnection};

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct ClusterClient {
    bootstrap: Vec<String>,
    client_id: String,
    connections: HashMap<i32, KafkaConnection>,
    bootstrap_conn: Option<KafkaConnection>,
    pub metadata: MetadataResponse,
}

impl ClusterClient {
    pub async fn connect(bootstrap: &str, client_id: &str) -> Result<ClusterClient, ClientError> {
        let mut c = ClusterClient {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            client_id: client_id.to_string(),
            connections: HashMap::new(),
            bootstrap_conn: None,
            metadata: MetadataResponse::default(),
        };
        c.refresh(None).await?;
        Ok(c)
    }

    /// Any live connection: the bootstrap one, re-established from the list if needed.
    async fn any(&mut self) -> Result<&mut KafkaConnection, ClientError> {
        if self.bootstrap_conn.is_none() {
            let mut last = None;
            for addr in &self.bootstrap {
                match KafkaConnection::connect(addr, &self.client_id, Duration::from_secs(5)).await
                {
                    Ok(c) => {
                        self.bootstrap_conn = Some(c);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if self.bootstrap_conn.is_none() {
                return Err(last.unwrap_or(ClientError::Timeout {
                    addr: "no bootstrap servers".into(),
                }));
            }
        }
        // Just ensured above.
        Ok(self.bootstrap_conn.as_mut().expect("bootstrap connection"))
    }

    /// Refreshes metadata (all topics, or the given ones).
    pub async fn refresh(&mut self, topics: Option<&[String]>) -> Result<(), ClientError> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let result = self.send_any(&req, 12).await;
        match result {
            Ok(md) => {
                self.metadata = md;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Sends to any broker (admin requests that any broker serves).
    pub async fn send_any<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let result = self.any().await?.send(req, version, TIMEOUT).await;
        if result.is_err() {
            self.bootstrap_conn = None;
        }
        result
    }

    /// Sends to broker `id`, connecting from metadata if needed.
    pub async fn send_to<R: Request>(
        &mut self,
        id: i32,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        if !self.connections.contains_key(&id) {
            let broker = self
                .metadata
                .brokers
                .iter()
                .find(|b| b.node_id.0 == id)
                .ok_or_else(|| ClientError::Protocol {
                    addr: format!("broker {id}"),
                    reason: "not in metadata".into(),
                })?;
            let addr = format!("{}:{}", broker.host, broker.port);
            let conn =
                KafkaConnection::connect(&addr, &self.client_id, Duration::from_secs(5)).await?;
            self.connections.insert(id, conn);
        }
        let conn = self.connections.get_mut(&id).expect("inserted above");
        let result = conn.send(req, version, TIMEOUT).await;
        if result.is_err() {
            self.connections.remove(&id);
        }
        result
    }

    /// The leader of `topic`-`partition`, or None if unknown / leaderless.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let t = self
            .metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)?;
        (p.leader_id.0 >= 0).then_some(p.leader_id.0)
    }

    /// Partition count of `topic` (None if unknown).
    pub fn partitions(&self, topic: &str) -> Option<i32> {
        let t = self
            .metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))?;
        (t.error_code == 0).then_some(t.partitions.len() as i32)
    }
}
