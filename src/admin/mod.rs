//! Topic administration: validation, replica assignment and the ZooKeeper writes behind
//! CreateTopics, CreatePartitions, DeleteTopics, topic config changes and auto-creation.
//! Any broker may run these; the controller then initialises leaders for new partitions
//! and carries out deletions (see `controller`).

pub mod assignment;
pub mod topic_name;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::config::{BrokerConfig, ConfigError, TopicConfig};
use crate::coordination::znodes::*;
use crate::coordination::{ClusterImage, ZkSession};
use crate::protocol::errors::Error;
use assignment::{assign, AssignmentError, BrokerSlot};

/// A client-visible failure: the Kafka error and its message.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminError {
    pub error: Error,
    pub message: String,
}

impl AdminError {
    pub fn new(error: Error, message: impl Into<String>) -> Self {
        AdminError {
            error,
            message: message.into(),
        }
    }
}

impl From<ConfigError> for AdminError {
    fn from(err: ConfigError) -> Self {
        AdminError::new(Error::InvalidConfig, err.to_string())
    }
}

impl From<zk::Error> for AdminError {
    fn from(err: zk::Error) -> Self {
        AdminError::new(Error::UnknownServerError, format!("ZooKeeper: {err}"))
    }
}

impl From<AssignmentError> for AdminError {
    fn from(err: AssignmentError) -> Self {
        let error = match err {
            AssignmentError::NoPartitions => Error::InvalidPartitions,
            AssignmentError::NoReplicas | AssignmentError::NotEnoughBrokers { .. } => {
                Error::InvalidReplicationFactor
            }
        };
        AdminError::new(error, err.to_string())
    }
}

/// At most this many partitions are created by one CreateTopics or CreatePartitions
/// request, checked before anything is assigned. Kafka 3.9's KRaft controller refuses
/// bigger requests the same way (`MAX_RECORDS_PER_USER_OP`, POLICY_VIOLATION "Excessively
/// large number of partitions per request."): without it, 60 bytes asking for 2^31
/// partitions make the broker build an assignment of 2^31 rows.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// What a client asked for in CreateTopics (or auto-creation).
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// -1 = broker default (`num.partitions`).
    pub num_partitions: i32,
    /// -1 = broker default (`default.replication.factor`).
    pub replication_factor: i16,
    /// Manual assignment: partition → replicas. Empty = computed.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub topic_id: uuid::Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub config: TopicConfig,
}

/// Everything the admin operations need from the broker.
pub struct Admin<'a> {
    pub config: &'a BrokerConfig,
    pub session: &'a ZkSession,
    pub image: &'a watch::Receiver<Arc<ClusterImage>>,
}

impl Admin<'_> {
    fn image(&self) -> Arc<ClusterImage> {
        self.image.borrow().clone()
    }

    fn live_slots(&self, image: &ClusterImage) -> Vec<BrokerSlot> {
        image
            .brokers
            .values()
            .map(|b| BrokerSlot {
                id: b.id,
                rack: b.rack.clone(),
            })
            .collect()
    }

    /// Validates a topic spec and (unless `validate_only`) writes it to ZooKeeper.
    pub async fn create_topic(
        &self,
        spec: &TopicSpec,
        validate_only: bool,
    ) -> Result<CreatedTopic, AdminError> {
        let image = self.image();
        topic_name::validate(&spec.name)
            .map_err(|m| AdminError::new(Error::InvalidTopicException, m))?;
        if image.topics.contains_key(&spec.name) {
            return Err(AdminError::new(
                Error::TopicAlreadyExists,
                format!("Topic '{}' already exists.", spec.name),
            ));
        }
        if let Some(other) = image
            .topics
            .keys()
            .find(|t| topic_name::collides(t, &spec.name))
        {
            return Err(AdminError::new(
                Error::InvalidTopicException,
                format!(
                    "Topic '{}' collides with existing topic: {other}",
                    spec.name
                ),
            ));
        }
        let manual = !spec.assignments.is_empty();
        if manual && (spec.num_partitions != -1 || spec.replication_factor != -1) {
            return Err(AdminError::new(
                Error::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let config = TopicConfig::new(spec.configs.clone(), &self.config.topic_defaults)?;
        let assignment = if manual {
            validate_manual_assignment(&spec.assignments, &image, 0)?;
            spec.assignments.clone()
        } else {
            let partitions = if spec.num_partitions == -1 {
                self.config.num_partitions
            } else {
                spec.num_partitions
            };
            if partitions as i64 > MAX_PARTITIONS_PER_REQUEST {
                return Err(AdminError::new(
                    Error::InvalidPartitions,
                    format!("Number of partitions {partitions} is above the limit of {MAX_PARTITIONS_PER_REQUEST} per request."),
                ));
            }
            let rf = if spec.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                spec.replication_factor
            };
            let slots = self.live_slots(&image);
            let mut rng = rand::thread_rng();
            let n = slots.len().max(1);
            assign(
                &slots,
                partitions,
                rf as i32,
                0,
                rng.gen_range(0..n),
                rng.gen_range(0..n),
            )?
        };
        let created = CreatedTopic {
            topic_id: uuid::Uuid::new_v4(),
            num_partitions: assignment.len() as i32,
            replication_factor: assignment.values().next().map_or(0, |r| r.len() as i16),
            config,
        };
        if validate_only {
            return Ok(created);
        }
        self.write_new_topic(&spec.name, created.topic_id, &assignment, &spec.configs)
            .await?;
        tracing::info!(topic = %spec.name, partitions = created.num_partitions, rf = created.replication_factor, "topic created");
        Ok(created)
    }

    async fn write_new_topic(
        &self,
        name: &str,
        topic_id: uuid::Uuid,
        assignment: &BTreeMap<i32, Vec<i32>>,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        let handle = self.session.current().await;
        let client = handle.client.clone();
        let config_options =
            handle.create_options(zk::CreateMode::Persistent, &topic_config_path(name));
        let topic_options = handle.create_options(zk::CreateMode::Persistent, &topic_path(name));
        let config_data = TopicConfigZnode::new(configs.clone()).encode();
        let topic_data = TopicZnode::new(topic_id, assignment).encode();
        for attempt in 0..2 {
            let mut multi = client.new_multi_writer();
            multi.add_create(&topic_config_path(name), &config_data, &config_options)?;
            multi.add_create(&topic_path(name), &topic_data, &topic_options)?;
            match multi.commit().await {
                Ok(_) => return Ok(()),
                Err(zk::MultiWriteError::OperationFailed {
                    index: 1,
                    source: zk::Error::NodeExists,
                }) => {
                    return Err(AdminError::new(
                        Error::TopicAlreadyExists,
                        format!("Topic '{name}' already exists."),
                    ))
                }
                Err(zk::MultiWriteError::OperationFailed {
                    index: 0,
                    source: zk::Error::NodeExists,
                }) if attempt == 0 => {
                    // A config left by a deleted topic: remove it unless the topic exists.
                    if client.check_stat(&topic_path(name)).await?.is_some() {
                        return Err(AdminError::new(
                            Error::TopicAlreadyExists,
                            format!("Topic '{name}' already exists."),
                        ));
                    }
                    match client.delete(&topic_config_path(name), None).await {
                        Ok(()) | Err(zk::Error::NoNode) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                Err(err) => return Err(zk::Error::from(err).into()),
            }
        }
        Err(AdminError::new(
            Error::UnknownServerError,
            format!("could not create topic '{name}'"),
        ))
    }

    /// Marks a topic for deletion; the controller removes it.
    pub async fn delete_topic(&self, name: &str) -> Result<uuid::Uuid, AdminError> {
        if !self.config.delete_topic_enable {
            return Err(AdminError::new(
                Error::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            ));
        }
        let image = self.image();
        let Some(topic) = image.topic(name) else {
            return Err(AdminError::new(
                Error::UnknownTopicOrPartition,
                "This server does not host this topic-partition.",
            ));
        };
        let handle = self.session.current().await;
        let path = delete_topic_path(name);
        let options = handle.create_options(zk::CreateMode::Persistent, &path);
        match handle.client.create(&path, &[], &options).await {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(topic.id),
            Err(err) => Err(err.into()),
        }
    }

    /// Grows a topic to `count` partitions (CreatePartitions). The current assignment is
    /// read from the topic znode, not from this broker's image (which may not yet show
    /// partitions another broker just added), and written back only if unchanged since.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        manual: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let image = self.image();
        // Whether the topic exists is the znode's answer below: this broker's metadata
        // may not show a topic another broker created a moment ago.
        if image.topic(name).is_some_and(|t| t.deleting) {
            return Err(AdminError::new(
                Error::InvalidTopicException,
                format!("The topic '{name}' is queued for deletion."),
            ));
        }
        let client = self.session.current().await.client;
        let path = topic_path(name);
        let corrupt =
            |e: ZnodeDecodeError| AdminError::new(Error::UnknownServerError, e.to_string());
        for _ in 0..5 {
            let (data, stat) = match client.get_data(&path).await {
                Ok(read) => read,
                Err(zk::Error::NoNode) => return Err(unknown_topic(name)),
                Err(err) => return Err(err.into()),
            };
            let mut znode = TopicZnode::decode(&path, &data).map_err(corrupt)?;
            let mut full = znode.assignment(&path).map_err(corrupt)?;
            let added = self.new_partitions(&image, &full, count, manual.clone())?;
            if validate_only {
                return Ok(());
            }
            full.extend(added);
            znode.partitions = full
                .iter()
                .map(|(p, r)| (p.to_string(), r.clone()))
                .collect();
            match client
                .set_data(&path, &znode.encode(), Some(stat.version))
                .await
            {
                Ok(_) => {
                    tracing::info!(topic = %name, partitions = count, "partitions added");
                    return Ok(());
                }
                // Another CreatePartitions (or a reassignment) wrote meanwhile: read again.
                Err(zk::Error::BadVersion) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(AdminError::new(
            Error::UnknownServerError,
            format!("Topic '{name}' kept changing; partitions not added."),
        ))
    }

    /// The replicas of the partitions that grow a topic from `current` (its assignment)
    /// to `count`: the request's own (`manual`, validated) or placed as Kafka places them.
    fn new_partitions(
        &self,
        image: &ClusterImage,
        current: &BTreeMap<i32, Vec<i32>>,
        count: i32,
        manual: Option<Vec<Vec<i32>>>,
    ) -> Result<BTreeMap<i32, Vec<i32>>, AdminError> {
        let have = current.len() as i32;
        if count < have {
            return Err(AdminError::new(
                Error::InvalidPartitions,
                format!("Topic currently has {have} partitions, which is higher than the requested {count}."),
            ));
        }
        if count == have {
            return Err(AdminError::new(
                Error::InvalidPartitions,
                format!("Topic already has {have} partitions."),
            ));
        }
        let rf = current.values().next().map_or(1, Vec::len) as i32;
        let added = count - have;
        if added as i64 > MAX_PARTITIONS_PER_REQUEST {
            return Err(AdminError::new(
                Error::PolicyViolation,
                "Excessively large number of partitions per request.",
            ));
        }
        match manual {
            Some(rows) => {
                if rows.len() as i32 != added {
                    return Err(AdminError::new(
                        Error::InvalidReplicaAssignment,
                        format!("Increasing the number of partitions by {added} but {} assignments provided.", rows.len()),
                    ));
                }
                let map: BTreeMap<i32, Vec<i32>> = rows
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (have + i as i32, r))
                    .collect();
                validate_manual_assignment(&map, image, have)?;
                if map.values().any(|r| r.len() as i32 != rf) {
                    return Err(AdminError::new(
                        Error::InvalidReplicaAssignment,
                        format!("Inconsistent replication factor between partitions, partition 0 has {rf}."),
                    ));
                }
                Ok(map)
            }
            None => {
                let slots = self.live_slots(image);
                // Kafka starts from partition 0's leader so the layout continues evenly.
                let leader0 = current.get(&0).and_then(|r| r.first().copied());
                let mut ids: Vec<i32> = slots.iter().map(|s| s.id).collect();
                ids.sort_unstable();
                let start = leader0
                    .and_then(|l| ids.iter().position(|&i| i == l))
                    .unwrap_or(0);
                let shift = rand::thread_rng().gen_range(0..slots.len().max(1));
                Ok(assign(&slots, added, rf, have, start, shift)?)
            }
        }
    }

    /// Changes a topic's config overrides: `change` maps the overrides ZooKeeper holds now
    /// to the new set (AlterConfigs replaces them, IncrementalAlterConfigs edits them),
    /// which is validated before it is written.
    pub async fn update_topic_config(
        &self,
        name: &str,
        change: impl Fn(Overrides) -> Result<Overrides, AdminError>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        // Asked of ZooKeeper, as Kafka's `validateTopicConfig`: this broker's metadata may
        // not show a topic another broker created a moment ago.
        let client = self.session.current().await.client;
        if client.check_stat(&topic_path(name)).await?.is_none() {
            return Err(AdminError::new(
                Error::UnknownTopicOrPartition,
                format!("Topic {name} does not exist."),
            ));
        }
        let validate = |overrides: &Overrides| {
            TopicConfig::new(overrides.clone(), &self.config.topic_defaults)
                .map(drop)
                .map_err(AdminError::from)
        };
        self.update_config_znode(&topic_config_path(name), change, validate, validate_only)
            .await
    }

    /// Changes one dynamic broker config entity (`broker`: an id, `None` the cluster-wide
    /// default) as `update_topic_config` a topic's, checking every key is dynamic and
    /// every value valid. Brokers watch `/config/brokers` and apply it at once.
    pub async fn update_broker_config(
        &self,
        broker: Option<i32>,
        change: impl Fn(Overrides) -> Result<Overrides, AdminError>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let path = broker_config_path(&crate::config::dynamic::entity_name(broker));
        let validate = |overrides: &Overrides| {
            crate::config::dynamic::validate(overrides).map_err(AdminError::from)
        };
        self.update_config_znode(&path, change, validate, validate_only)
            .await
    }

    /// Read-modify-write of a config entity znode (Kafka's `AdminZkClient.changeEntityConfig`
    /// shape). The current overrides are read from ZooKeeper, not from this broker's
    /// image, which may not yet show a change another broker just wrote: two
    /// IncrementalAlterConfigs in a row through two brokers would lose the first. The
    /// new set is written only if the znode is unchanged since the read (its version),
    /// else it is read again.
    async fn update_config_znode(
        &self,
        path: &str,
        change: impl Fn(Overrides) -> Result<Overrides, AdminError>,
        validate: impl Fn(&Overrides) -> Result<(), AdminError>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        const ATTEMPTS: usize = 10;
        let handle = self.session.current().await;
        let client = &handle.client;
        for _ in 0..ATTEMPTS {
            let (current, version) = match client.get_data(path).await {
                Ok((data, stat)) => {
                    let znode = TopicConfigZnode::decode(path, &data)
                        .map_err(|e| AdminError::new(Error::UnknownServerError, e.to_string()))?;
                    (znode.config, Some(stat.version))
                }
                Err(zk::Error::NoNode) => (Overrides::new(), None),
                Err(err) => return Err(err.into()),
            };
            let overrides = change(current)?;
            validate(&overrides)?;
            if validate_only {
                return Ok(());
            }
            let data = TopicConfigZnode::new(overrides).encode();
            let written = match version {
                Some(v) => client.set_data(path, &data, Some(v)).await.map(drop),
                None => {
                    let options = handle.create_options(zk::CreateMode::Persistent, path);
                    client.create(path, &data, &options).await.map(drop)
                }
            };
            match written {
                Ok(()) => return Ok(()),
                // Written (or created, or deleted) by someone else since the read.
                Err(zk::Error::BadVersion | zk::Error::NodeExists | zk::Error::NoNode) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(AdminError::new(
            Error::UnknownServerError,
            format!("{path} kept changing; config not updated."),
        ))
    }
}

fn unknown_topic(name: &str) -> AdminError {
    AdminError::new(
        Error::UnknownTopicOrPartition,
        format!("The topic '{name}' does not exist."),
    )
}

/// A config entity's overrides, key to value.
pub type Overrides = BTreeMap<String, String>;

fn validate_manual_assignment(
    assignment: &BTreeMap<i32, Vec<i32>>,
    image: &ClusterImage,
    first_partition: i32,
) -> Result<(), AdminError> {
    let bad = |m: String| AdminError::new(Error::InvalidReplicaAssignment, m);
    let expected: Vec<i32> = (first_partition..first_partition + assignment.len() as i32).collect();
    if assignment.keys().copied().collect::<Vec<_>>() != expected {
        return Err(bad(
            "Partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    let rf = assignment.values().next().map_or(0, Vec::len);
    for (p, replicas) in assignment {
        if replicas.is_empty() {
            return Err(bad(format!("Replica list for partition {p} is empty")));
        }
        if replicas.len() != rf {
            return Err(bad(
                "All partitions should have the same number of replicas".into(),
            ));
        }
        if replicas.iter().collect::<BTreeSet<_>>().len() != replicas.len() {
            return Err(bad(format!(
                "Duplicate replica assignment found: {replicas:?}"
            )));
        }
        if let Some(unknown) = replicas.iter().find(|id| !image.is_alive(**id)) {
            return Err(bad(format!(
                "Unknown broker(s) in replica assignment: {unknown}."
            )));
        }
    }
    Ok(())
}

/// Waits until every partition of `topic` has a live leader in the image (or the topic
/// is gone, for `want_present == false`), and `locally_ready` agrees for each partition
/// (this broker serves the ones it leads). Returns whether it happened within `timeout`.
pub async fn wait_for_topic(
    image: &watch::Receiver<Arc<ClusterImage>>,
    topic: &str,
    want_present: bool,
    min_partitions: usize,
    timeout: Duration,
    locally_ready: impl Fn(i32, i32) -> bool,
) -> bool {
    let mut rx = image.clone();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let done = {
            let img = rx.borrow_and_update();
            match img.topic(topic) {
                None => !want_present,
                Some(t) => {
                    want_present
                        && t.partitions.len() >= min_partitions
                        && t.partitions.iter().all(|(p, info)| {
                            info.state.as_ref().is_some_and(|s| {
                                s.leader >= 0
                                    && img.is_alive(s.leader)
                                    && locally_ready(*p, s.leader)
                            })
                        })
                }
            }
        };
        if done {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        // Image changes wake us; local readiness has no signal, so re-check every 10 ms.
        let tick = (tokio::time::Instant::now() + Duration::from_millis(10)).min(deadline);
        let _ = tokio::time::timeout_at(tick, rx.changed()).await;
    }
}
