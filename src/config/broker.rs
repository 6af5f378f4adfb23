//! The broker's static configuration (`gregor broker --config FILE`), with Apache Kafka's
//! key names and defaults. An unknown or invalid key stops start-up with a message that
//! names it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::keys::{
    flatten_toml, parse_bool, split_list, ConfigError, ConfigKey, ConfigType as T, Validator as V,
};
use super::topic;

/// Every broker key gregor understands besides the defaults of topic configs (`log.*` and
/// friends, in `log_keys.rs`; `topic.rs` maps topic keys onto them).
pub const BROKER_KEYS: &[ConfigKey] = &[
    ConfigKey::required("broker.id", T::Int, "The broker id of this server.").check(V::AtLeast(0)),
    ConfigKey::new(
        "listeners",
        T::List,
        "PLAINTEXT://:9092",
        "Comma-separated listener URIs.",
    ),
    ConfigKey::optional(
        "advertised.listeners",
        T::List,
        "Listeners published to clients; defaults to `listeners`.",
    ),
    ConfigKey::new(
        "listener.security.protocol.map",
        T::List,
        super::listeners::DEFAULT_PROTOCOL_MAP,
        "Listener name to security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), `NAME:PROTOCOL,...`.",
    ),
    ConfigKey::optional(
        "inter.broker.listener.name",
        T::String,
        "The listener brokers use to reach each other (replica fetches); exclusive with security.inter.broker.protocol.",
    ),
    ConfigKey::optional(
        "security.inter.broker.protocol",
        T::String,
        "The inter-broker listener by protocol: the listener named like it (default PLAINTEXT).",
    ),
    ConfigKey::new(
        "sasl.mechanism.inter.broker.protocol",
        T::String,
        "GSSAPI",
        "SASL mechanism the broker's own client uses on a SASL inter-broker listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; GSSAPI is not supported).",
    ),
    ConfigKey::new(
        "connections.max.reauth.ms",
        T::Long,
        "0",
        "SASL session lifetime (KIP-368): a SASL connection not re-authenticated within it is closed; 0 = sessions never expire.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.dirs",
        T::List,
        "/tmp/kafka-logs",
        "Directories holding partition logs.",
    ),
    ConfigKey::optional(
        "log.dir",
        T::String,
        "Single log directory, used when log.dirs is unset.",
    ),
    ConfigKey::required(
        "zookeeper.connect",
        T::String,
        "ZooKeeper connect string host:port[,host:port][/chroot].",
    ),
    ConfigKey::new(
        "zookeeper.session.timeout.ms",
        T::Int,
        "18000",
        "ZooKeeper session timeout.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "zookeeper.connection.timeout.ms",
        T::Int,
        "18000",
        "Max wait to establish the ZooKeeper connection.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "zookeeper.set.acl",
        T::Bool,
        "false",
        "Create every znode with secure ACLs, as Kafka's ZkData.defaultAcls: the brokers' \
         ZooKeeper identity has ALL, everyone else READ, and nothing at all under \
         /config/users, /config/brokers and /delegation_token. Needs \
         zookeeper.digest.credentials.file.",
    ),
    ConfigKey::optional(
        "zookeeper.digest.credentials.file",
        T::String,
        "A file holding `user:password` (one line): every ZooKeeper session of the broker \
         authenticates with `addauth digest user:password`. gregor's replacement for \
         the JAAS `Client` section (SASL) Kafka uses; all brokers of a cluster share it.",
    ),
    ConfigKey::optional(
        "broker.rack",
        T::String,
        "Rack of the broker, used for rack-aware replica assignment.",
    ),
    ConfigKey::new(
        "num.partitions",
        T::Int,
        "1",
        "Default partition count for auto-created topics.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "default.replication.factor",
        T::Int,
        "1",
        "Default replication factor for auto-created topics.",
    )
    .check(V::Between(1, 32767)),
    ConfigKey::new(
        "auto.create.topics.enable",
        T::Bool,
        "true",
        "Create topics on first metadata request or produce.",
    ),
    ConfigKey::new(
        "delete.topic.enable",
        T::Bool,
        "true",
        "Allow DeleteTopics.",
    ),
    ConfigKey::new(
        "message.max.bytes",
        T::Int,
        "1048588",
        "Largest record batch size allowed.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "socket.request.max.bytes",
        T::Int,
        "104857600",
        "Largest request frame accepted.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "max.connections",
        T::Int,
        "2147483647",
        "Maximum concurrent client connections.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "max.connections.per.ip",
        T::Int,
        "2147483647",
        "Maximum concurrent connections from one IP address (more are closed at once).",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "max.connections.per.ip.overrides",
        T::String,
        "",
        "Per-IP or hostname overrides of max.connections.per.ip, e.g. `127.0.0.1:200,10.0.0.9:5`.",
    ),
    ConfigKey::new(
        "metrics.listener",
        T::String,
        "",
        "host:port of the HTTP listener serving Prometheus metrics at /metrics (empty: off).",
    ),
    ConfigKey::new(
        "console.listener",
        T::String,
        "",
        "host:port of the HTTP listener serving the web console at / (empty: off; may equal metrics.listener).",
    ),
    ConfigKey::new(
        "connections.max.idle.ms",
        T::Long,
        "600000",
        "Idle connections (nothing read or written) are closed after this long.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "queued.max.request.bytes",
        T::Long,
        "-1",
        "Bytes of request frames held in memory at once across all connections (-1: unbounded); a connection waits for room before reading a frame's body.",
    ),
    ConfigKey::new(
        "num.io.threads",
        T::Int,
        "8",
        "Threads that run request storage work (produce appends, fetch reads) off the async workers.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "queued.max.requests",
        T::Int,
        "500",
        "Requests that may wait for an I/O thread; when the queue is full, connections wait before their request is queued.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "fetch.max.bytes",
        T::Int,
        "57671680",
        "Maximum bytes returned for one fetch request.",
    )
    .check(V::AtLeast(1024)),
    ConfigKey::new(
        "replica.lag.time.max.ms",
        T::Long,
        "30000",
        "A follower not caught up for this long leaves the ISR.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "max.incremental.fetch.session.cache.slots",
        T::Int,
        "1000",
        "Incremental fetch sessions (KIP-227) a broker keeps at most.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "replica.fetch.max.bytes",
        T::Int,
        "1048576",
        "Bytes per partition a follower fetches.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "leader.replication.throttled.rate",
        T::Long,
        "9223372036854775807",
        "Bytes/s this broker sends as leader to throttled replicas (KIP-73); dynamic.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "follower.replication.throttled.rate",
        T::Long,
        "9223372036854775807",
        "Bytes/s this broker fetches as follower for throttled replicas (KIP-73); dynamic.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "replica.fetch.wait.max.ms",
        T::Int,
        "500",
        "Follower fetch long-poll wait.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "replica.fetch.min.bytes",
        T::Int,
        "1",
        "Follower fetch min bytes.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "replica.fetch.response.max.bytes",
        T::Int,
        "10485760",
        "Bytes a follower fetch response carries at most.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "replica.fetch.backoff.ms",
        T::Int,
        "1000",
        "Follower back-off after a fetch error.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "replica.high.watermark.checkpoint.interval.ms",
        T::Long,
        "5000",
        "How often high watermarks are checkpointed.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "auto.leader.rebalance.enable",
        T::Bool,
        "true",
        "Move leadership back to preferred replicas.",
    ),
    ConfigKey::new(
        "leader.imbalance.check.interval.seconds",
        T::Long,
        "300",
        "How often preferred leaders are checked.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "leader.imbalance.per.broker.percentage",
        T::Int,
        "10",
        "Imbalance tolerated per broker.",
    )
    .check(V::Between(0, 100)),
    ConfigKey::new(
        "controlled.shutdown.enable",
        T::Bool,
        "true",
        "Move leadership away before shutting down.",
    ),
    ConfigKey::new(
        "controller.socket.timeout.ms",
        T::Int,
        "30000",
        "Timeout of controller requests.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "offsets.topic.num.partitions",
        T::Int,
        "50",
        "Partitions of __consumer_offsets.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "offsets.topic.replication.factor",
        T::Int,
        "3",
        "Replication factor of __consumer_offsets (capped by live brokers).",
    )
    .check(V::Between(1, 32767)),
    ConfigKey::new(
        "offsets.topic.segment.bytes",
        T::Int,
        "104857600",
        "Segment size of __consumer_offsets.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "offsets.retention.minutes",
        T::Int,
        "10080",
        "Committed offsets of empty groups expire after this.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "offsets.retention.check.interval.ms",
        T::Long,
        "600000",
        "How often expired offsets are removed.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "offsets.commit.timeout.ms",
        T::Int,
        "5000",
        "How long a group coordinator write (offset commit, group metadata) waits for replication.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "offset.metadata.max.bytes",
        T::Int,
        "4096",
        "Maximum size of a commit's metadata string.",
    ),
    ConfigKey::new(
        "group.initial.rebalance.delay.ms",
        T::Int,
        "3000",
        "Delay of the first rebalance of an empty group.",
    ),
    ConfigKey::new(
        "group.min.session.timeout.ms",
        T::Int,
        "6000",
        "Smallest session timeout a member may ask for.",
    ),
    ConfigKey::new(
        "group.max.session.timeout.ms",
        T::Int,
        "1800000",
        "Largest session timeout a member may ask for.",
    ),
    ConfigKey::new(
        "group.max.size",
        T::Int,
        "2147483647",
        "Maximum members in one group.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "producer.id.expiration.ms",
        T::Int,
        "86400000",
        "Idle producer ids are forgotten after this.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "request.timeout.ms",
        T::Int,
        "30000",
        "Timeout of requests this broker sends to peers.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "authorizer.class.name",
        T::String,
        "",
        "The ACL authorizer: `kafka.security.authorizer.AclAuthorizer` (Kafka's name) or `gregor.security.AclAuthorizer`, both Kafka's AclAuthorizer semantics with ACLs in ZooKeeper; empty = no authorization (every request allowed).",
    )
    .check(V::OneOf(&["", KAFKA_ACL_AUTHORIZER, GREGOR_ACL_AUTHORIZER])),
    ConfigKey::new(
        "super.users",
        T::String,
        "",
        "Principals allowed everything whatever the ACLs say, separated by ';' (e.g. `User:admin;User:broker`).",
    ),
    ConfigKey::new(
        "allow.everyone.if.no.acl.found",
        T::Bool,
        "false",
        "With an authorizer: allow a resource that has no ACL at all to everyone (Kafka's default: deny).",
    ),
];

/// Kafka's ZooKeeper-mode ACL authorizer class, accepted as is.
pub const KAFKA_ACL_AUTHORIZER: &str = "kafka.security.authorizer.AclAuthorizer";
/// gregor's own name for the same authorizer.
pub const GREGOR_ACL_AUTHORIZER: &str = "gregor.security.AclAuthorizer";

pub use super::listeners::Listener;

/// Listener security keys: each may also be set for one listener as
/// `listener.name.<listener>.<key>` (listener name lower-cased), as in Kafka. Not part of
/// DescribeConfigs (they include keys and passwords). `<mechanism>.sasl.jaas.config`
/// (e.g. `listener.name.sasl_ssl.plain.sasl.jaas.config`) is accepted too: see
/// `security::config`.
pub const SECURITY_KEYS: &[ConfigKey] = &[
    ConfigKey::new(
        "ssl.keystore.type",
        T::String,
        "PEM",
        "Only PEM (Kafka's default JKS and PKCS12 need Java keystores).",
    )
    .check(V::OneOf(&["PEM"])),
    ConfigKey::optional(
        "ssl.keystore.location",
        T::String,
        "PEM file with the private key and certificate chain of this server (or client).",
    ),
    ConfigKey::optional(
        "ssl.keystore.certificate.chain",
        T::String,
        "Certificate chain in PEM, inline (instead of ssl.keystore.location).",
    ),
    ConfigKey::optional(
        "ssl.keystore.key",
        T::String,
        "Private key in PEM (PKCS#8, PKCS#1 or SEC1), inline (instead of ssl.keystore.location).",
    ),
    ConfigKey::optional(
        "ssl.key.password",
        T::String,
        "Password of an encrypted private key: not supported (use an unencrypted PEM key); start-up fails if set.",
    ),
    ConfigKey::new(
        "ssl.truststore.type",
        T::String,
        "PEM",
        "Only PEM.",
    )
    .check(V::OneOf(&["PEM"])),
    ConfigKey::optional(
        "ssl.truststore.location",
        T::String,
        "PEM file of trusted CA certificates (client certificates on the broker, broker certificates on clients).",
    ),
    ConfigKey::optional(
        "ssl.truststore.certificates",
        T::String,
        "Trusted CA certificates in PEM, inline.",
    ),
    ConfigKey::new(
        "ssl.enabled.protocols",
        T::List,
        "TLSv1.2,TLSv1.3",
        "TLS versions accepted.",
    )
    .check(V::ListOf(&["TLSv1.2", "TLSv1.3"])),
    ConfigKey::new(
        "ssl.client.auth",
        T::String,
        "none",
        "Client certificates: none, requested (verified if sent) or required (mTLS).",
    )
    .check(V::OneOf(&["none", "requested", "required"])),
    ConfigKey::new(
        "ssl.principal.mapping.rules",
        T::String,
        "DEFAULT",
        "Rules mapping a client certificate's subject DN (RFC 2253) to a user name: `RULE:pattern/replacement/[LU],...,DEFAULT`.",
    ),
    ConfigKey::new(
        "ssl.endpoint.identification.algorithm",
        T::String,
        "https",
        "`https`: the broker's client checks a peer's host name against its certificate; empty: it does not.",
    ),
    ConfigKey::new(
        "sasl.enabled.mechanisms",
        T::List,
        "GSSAPI",
        "SASL mechanisms of SASL listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (Kafka's default GSSAPI is not supported, so SASL listeners must set this).",
    ),
    ConfigKey::new(
        "sasl.server.max.receive.size",
        T::Int,
        "524288",
        "Largest SASL token accepted before authentication.",
    )
    .check(V::AtLeast(1)),
];

/// The broker's resolved static configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub broker_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    /// The name of the listener replica fetchers connect to (`inter.broker.listener.name`).
    pub inter_broker_listener: String,
    pub sasl_mechanism_inter_broker_protocol: String,
    pub connections_max_reauth_ms: u64,
    pub log_dirs: Vec<PathBuf>,
    pub zookeeper_connect: String,
    pub zookeeper_session_timeout_ms: u64,
    pub zookeeper_connection_timeout_ms: u64,
    /// `zookeeper.set.acl`.
    pub zookeeper_set_acl: bool,
    /// `zookeeper.digest.credentials.file`.
    pub zookeeper_digest_credentials_file: Option<PathBuf>,
    pub rack: Option<String>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`, by IP address or host name as written.
    pub max_connections_per_ip_overrides: Vec<(String, usize)>,
    pub connections_max_idle_ms: u64,
    pub queued_max_request_bytes: i64,
    pub num_io_threads: usize,
    pub queued_max_requests: usize,
    pub fetch_max_bytes: i32,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_scheduler_interval_ms: u64,
    pub log_flush_offset_checkpoint_interval_ms: u64,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    pub log_cleaner_dedupe_buffer_size: usize,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_max_bytes: i32,
    pub max_incremental_fetch_session_cache_slots: usize,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_min_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_backoff_ms: u64,
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_ms: u64,
    pub leader_imbalance_per_broker_percentage: u32,
    pub controlled_shutdown_enable: bool,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_segment_bytes: i32,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: u64,
    pub offsets_commit_timeout_ms: u64,
    pub offset_metadata_max_bytes: usize,
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: usize,
    pub producer_id_expiration_ms: i64,
    pub request_timeout_ms: u64,
    /// The transaction coordinator's keys (`config::txn`).
    pub txn: super::txn::TxnConfig,
    /// `authorizer.class.name` set: the ACL authorizer's settings; `None`: allow everything.
    pub authorizer: Option<crate::security::acl::AuthorizerConfig>,
    /// The topic-level defaults these broker keys imply (`log.retention.ms` → `retention.ms`, ...).
    pub topic_defaults: TopicDefaults,
    /// Values set explicitly in the file, for DescribeConfigs' `config_source`.
    explicit: BTreeMap<String, String>,
}

/// Broker-level defaults for every topic-level key, as strings keyed by topic key name.
pub type TopicDefaults = BTreeMap<&'static str, String>;

impl BrokerConfig {
    pub fn load(path: &Path) -> Result<BrokerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let values = flatten_toml(&text).map_err(|reason| ConfigError::File {
            path: path.display().to_string(),
            reason,
        })?;
        Self::from_values(values)
    }

    /// Builds the config from dotted keys; every key must be known and valid.
    pub fn from_values(values: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        for (key, value) in &values {
            if crate::security::config::is_security_key(key) {
                crate::security::config::validate_key(key, value)?;
                continue;
            }
            let def = key_def(key).ok_or_else(|| ConfigError::Unknown(key.clone()))?;
            def.validate(value)?;
        }
        let r = Resolver { values: &values };
        let protocols = super::listeners::parse_protocol_map(
            "listener.security.protocol.map",
            &r.string("listener.security.protocol.map")?,
        )?;
        let listeners = super::listeners::parse_listeners(
            "listeners",
            &r.string("listeners")?,
            &protocols,
            true,
        )?;
        let advertised_listeners = if values.contains_key("advertised.listeners") {
            let advertised = super::listeners::parse_listeners(
                "advertised.listeners",
                &r.string("advertised.listeners")?,
                &protocols,
                false,
            )?;
            for a in &advertised {
                if !listeners.iter().any(|l| l.name == a.name) {
                    return Err(ConfigError::Invalid {
                        key: "advertised.listeners".into(),
                        value: a.uri(),
                        reason: "every advertised listener must be one of listeners".into(),
                    });
                }
            }
            advertised
        } else {
            listeners.clone()
        };
        let inter_broker_listener = super::listeners::inter_broker_listener_name(
            values.get("inter.broker.listener.name").map(String::as_str),
            values
                .get("security.inter.broker.protocol")
                .map(String::as_str),
            &advertised_listeners,
        )?;
        let log_dirs = if values.contains_key("log.dirs") || !values.contains_key("log.dir") {
            split_list(&r.string("log.dirs")?)
                .map(PathBuf::from)
                .collect()
        } else {
            vec![PathBuf::from(r.string("log.dir")?)]
        };
        let topic_defaults = topic::defaults_from_broker(&r)?;
        let config = BrokerConfig {
            broker_id: r.int("broker.id")? as i32,
            listeners,
            advertised_listeners,
            inter_broker_listener,
            sasl_mechanism_inter_broker_protocol: r
                .string("sasl.mechanism.inter.broker.protocol")?,
            connections_max_reauth_ms: r.int("connections.max.reauth.ms")? as u64,
            log_dirs,
            zookeeper_connect: r.string("zookeeper.connect")?,
            zookeeper_session_timeout_ms: r.int("zookeeper.session.timeout.ms")? as u64,
            zookeeper_connection_timeout_ms: r.int("zookeeper.connection.timeout.ms")? as u64,
            zookeeper_set_acl: r.bool("zookeeper.set.acl")?,
            zookeeper_digest_credentials_file: values
                .get("zookeeper.digest.credentials.file")
                .map(PathBuf::from),
            rack: values.get("broker.rack").cloned(),
            num_partitions: r.int("num.partitions")? as i32,
            default_replication_factor: r.int("default.replication.factor")? as i16,
            auto_create_topics_enable: r.bool("auto.create.topics.enable")?,
            delete_topic_enable: r.bool("delete.topic.enable")?,
            message_max_bytes: r.int("message.max.bytes")? as i32,
            socket_request_max_bytes: r.int("socket.request.max.bytes")? as usize,
            max_connections: r.int("max.connections")? as usize,
            max_connections_per_ip: r.int("max.connections.per.ip")? as usize,
            max_connections_per_ip_overrides: r.ip_overrides("max.connections.per.ip.overrides")?,
            connections_max_idle_ms: r.int("connections.max.idle.ms")? as u64,
            queued_max_request_bytes: r.int("queued.max.request.bytes")?,
            num_io_threads: r.int("num.io.threads")? as usize,
            queued_max_requests: r.int("queued.max.requests")? as usize,
            fetch_max_bytes: r.int("fetch.max.bytes")? as i32,
            log_retention_check_interval_ms: r.int("log.retention.check.interval.ms")? as u64,
            log_flush_scheduler_interval_ms: r.int("log.flush.scheduler.interval.ms")? as u64,
            log_flush_offset_checkpoint_interval_ms: r
                .int("log.flush.offset.checkpoint.interval.ms")?
                as u64,
            log_cleaner_enable: r.bool("log.cleaner.enable")?,
            log_cleaner_backoff_ms: r.int("log.cleaner.backoff.ms")? as u64,
            log_cleaner_dedupe_buffer_size: r.int("log.cleaner.dedupe.buffer.size")? as usize,
            replica_lag_time_max_ms: r.int("replica.lag.time.max.ms")? as u64,
            replica_fetch_max_bytes: r.int("replica.fetch.max.bytes")? as i32,
            max_incremental_fetch_session_cache_slots: r
                .int("max.incremental.fetch.session.cache.slots")?
                as usize,
            replica_fetch_wait_max_ms: r.int("replica.fetch.wait.max.ms")? as i32,
            replica_fetch_min_bytes: r.int("replica.fetch.min.bytes")? as i32,
            replica_fetch_response_max_bytes: r.int("replica.fetch.response.max.bytes")? as i32,
            replica_fetch_backoff_ms: r.int("replica.fetch.backoff.ms")? as u64,
            replica_high_watermark_checkpoint_interval_ms: r
                .int("replica.high.watermark.checkpoint.interval.ms")?
                as u64,
            auto_leader_rebalance_enable: r.bool("auto.leader.rebalance.enable")?,
            leader_imbalance_check_interval_ms: r.int("leader.imbalance.check.interval.seconds")?
                as u64
                * 1000,
            leader_imbalance_per_broker_percentage: r
                .int("leader.imbalance.per.broker.percentage")?
                as u32,
            controlled_shutdown_enable: r.bool("controlled.shutdown.enable")?,
            offsets_topic_num_partitions: r.int("offsets.topic.num.partitions")? as i32,
            offsets_topic_replication_factor: r.int("offsets.topic.replication.factor")? as i16,
            offsets_topic_segment_bytes: r.int("offsets.topic.segment.bytes")? as i32,
            offsets_retention_ms: r.int("offsets.retention.minutes")? * 60_000,
            offsets_retention_check_interval_ms: r.int("offsets.retention.check.interval.ms")?
                as u64,
            offsets_commit_timeout_ms: r.int("offsets.commit.timeout.ms")? as u64,
            offset_metadata_max_bytes: r.int("offset.metadata.max.bytes")?.max(0) as usize,
            group_initial_rebalance_delay_ms: r.int("group.initial.rebalance.delay.ms")?.max(0)
                as u64,
            group_min_session_timeout_ms: r.int("group.min.session.timeout.ms")? as i32,
            group_max_session_timeout_ms: r.int("group.max.session.timeout.ms")? as i32,
            group_max_size: r.int("group.max.size")? as usize,
            producer_id_expiration_ms: r.int("producer.id.expiration.ms")?,
            request_timeout_ms: r.int("request.timeout.ms")? as u64,
            txn: super::txn::TxnConfig::resolve(&r)?,
            authorizer: r.authorizer()?,
            topic_defaults,
            explicit: values.clone(),
        };
        config.check_consistency()?;
        Ok(config)
    }

    fn check_consistency(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError::Invalid {
                key: "listeners".into(),
                value: String::new(),
                reason: "at least one listener is required".into(),
            });
        }
        if self.log_dirs.is_empty() {
            return Err(ConfigError::Invalid {
                key: "log.dirs".into(),
                value: String::new(),
                reason: "at least one log directory is required".into(),
            });
        }
        if self.zookeeper_set_acl && self.zookeeper_digest_credentials_file.is_none() {
            // Kafka refuses the same: secure ACLs without a ZooKeeper identity would lock
            // the brokers out of their own znodes.
            return Err(ConfigError::Invalid {
                key: "zookeeper.set.acl".into(),
                value: "true".into(),
                reason: "needs zookeeper.digest.credentials.file (the brokers' ZooKeeper identity)"
                    .into(),
            });
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(ConfigError::Invalid {
                key: "group.min.session.timeout.ms".into(),
                value: self.group_min_session_timeout_ms.to_string(),
                reason: "must not exceed group.max.session.timeout.ms".into(),
            });
        }
        Ok(())
    }

    /// The listener clients are told to use (the first advertised one).
    pub fn advertised(&self) -> &Listener {
        // check_consistency guarantees a listener; advertised defaults to listeners.
        &self.advertised_listeners[0]
    }

    /// A security key's value for `listener`: `listener.name.<listener>.<key>` first
    /// (Kafka's per-listener override, listener name lower-cased), then `<key>`, then
    /// the key's default.
    pub fn listener_value(&self, listener: &str, key: &str) -> Option<String> {
        let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        self.explicit
            .get(&prefixed)
            .or_else(|| self.explicit.get(key))
            .cloned()
            .or_else(|| crate::security::config::default_of(key).map(str::to_string))
    }

    /// A replication throttle rate from the config file (`None`: unlimited).
    pub fn replication_throttled_rate(&self, key: &str) -> Option<u64> {
        self.value(key)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v < i64::MAX as u64)
    }

    /// A key's effective value as written (explicit or default), for keys without a field.
    pub fn value(&self, key: &str) -> Option<String> {
        self.explicit
            .get(key)
            .cloned()
            .or_else(|| key_def(key).and_then(|k| k.default.map(str::to_string)))
    }

    /// The value the config file gives a key, if it sets it (DescribeConfigs'
    /// STATIC_BROKER_CONFIG level).
    pub fn file_value(&self, key: &str) -> Option<&str> {
        self.explicit.get(key).map(String::as_str)
    }
}

pub fn key_def(name: &str) -> Option<&'static ConfigKey> {
    all_keys().find(|k| k.name == name)
}

/// Every broker key: the general ones, the transaction ones and the defaults of topic
/// configs (`log_keys`).
pub fn all_keys() -> impl Iterator<Item = &'static ConfigKey> {
    BROKER_KEYS
        .iter()
        .chain(super::txn::TXN_KEYS)
        .chain(super::log_keys::LOG_KEYS)
}

/// Reads typed values: the explicit one if set, else the key's default.
pub(crate) struct Resolver<'a> {
    values: &'a BTreeMap<String, String>,
}

impl Resolver<'_> {
    pub(crate) fn raw(&self, key: &str) -> Option<String> {
        let def = key_def(key)?;
        self.values
            .get(key)
            .cloned()
            .or_else(|| def.default.map(str::to_string))
    }

    pub(crate) fn string(&self, key: &str) -> Result<String, ConfigError> {
        self.raw(key)
            .ok_or_else(|| ConfigError::Missing(key.to_string()))
    }

    pub(crate) fn int(&self, key: &str) -> Result<i64, ConfigError> {
        let value = self.string(key)?;
        value.trim().parse().map_err(|_| ConfigError::Invalid {
            key: key.to_string(),
            value,
            reason: "expected an integer".into(),
        })
    }

    pub(crate) fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        let value = self.string(key)?;
        parse_bool(&value).ok_or(ConfigError::Invalid {
            key: key.to_string(),
            value,
            reason: "expected true or false".into(),
        })
    }

    /// Kafka's `host:count` list (`max.connections.per.ip.overrides`).
    fn ip_overrides(&self, key: &str) -> Result<Vec<(String, usize)>, ConfigError> {
        split_list(&self.string(key)?)
            .map(|entry| {
                let bad = || ConfigError::Invalid {
                    key: key.to_string(),
                    value: entry.to_string(),
                    reason: "expected host:count".into(),
                };
                let (host, count) = entry.rsplit_once(':').ok_or_else(bad)?;
                let count: usize = count.trim().parse().map_err(|_| bad())?;
                Ok((host.trim().to_string(), count))
            })
            .collect()
    }

    /// The authorizer settings, when `authorizer.class.name` names one.
    fn authorizer(&self) -> Result<Option<crate::security::acl::AuthorizerConfig>, ConfigError> {
        if self.string("authorizer.class.name")?.trim().is_empty() {
            return Ok(None);
        }
        let super_users = self.string("super.users")?;
        Ok(Some(crate::security::acl::AuthorizerConfig {
            super_users: crate::security::acl::AuthorizerConfig::parse_super_users(&super_users)
                .map_err(|reason| ConfigError::Invalid {
                    key: "super.users".into(),
                    value: super_users.clone(),
                    reason,
                })?,
            allow_everyone_if_no_acl_found: self.bool("allow.everyone.if.no.acl.found")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("broker.id".to_string(), "1".to_string()),
            (
                "zookeeper.connect".to_string(),
                "127.0.0.1:2181".to_string(),
            ),
        ])
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = BrokerConfig::from_values(minimal()).unwrap();
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.listeners[0].port, 9092);
        assert_eq!(c.topic_defaults["retention.ms"], "604800000");
        assert_eq!(c.topic_defaults["segment.ms"], "604800000");
    }

    #[test]
    fn zookeeper_set_acl_needs_credentials() {
        let c = BrokerConfig::from_values(minimal()).unwrap();
        assert!(!c.zookeeper_set_acl);
        assert_eq!(c.zookeeper_digest_credentials_file, None);
        let mut v = minimal();
        v.insert("zookeeper.set.acl".into(), "true".into());
        let err = BrokerConfig::from_values(v.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains("zookeeper.digest.credentials.file"), "{err}");
        v.insert(
            "zookeeper.digest.credentials.file".into(),
            "/etc/gregor/zk-digest".into(),
        );
        let c = BrokerConfig::from_values(v).unwrap();
        assert!(c.zookeeper_set_acl);
        assert_eq!(
            c.zookeeper_digest_credentials_file,
            Some(PathBuf::from("/etc/gregor/zk-digest"))
        );
    }

    #[test]
    fn unknown_and_invalid_keys_are_named() {
        let mut v = minimal();
        v.insert("log.segmnet.bytes".into(), "1".into());
        let err = BrokerConfig::from_values(v).unwrap_err();
        assert_eq!(err, ConfigError::Unknown("log.segmnet.bytes".into()));

        let mut v = minimal();
        v.insert("num.partitions".into(), "zero".into());
        let err = BrokerConfig::from_values(v).unwrap_err().to_string();
        assert!(err.contains("num.partitions"), "{err}");

        let mut v = minimal();
        v.remove("broker.id");
        assert_eq!(
            BrokerConfig::from_values(v).unwrap_err(),
            ConfigError::Missing("broker.id".into())
        );
    }

    #[test]
    fn retention_synonyms_follow_kafka_precedence() {
        let mut v = minimal();
        v.insert("log.retention.hours".into(), "1".into());
        let c = BrokerConfig::from_values(v.clone()).unwrap();
        assert_eq!(c.topic_defaults["retention.ms"], "3600000");
        v.insert("log.retention.minutes".into(), "2".into());
        let c = BrokerConfig::from_values(v.clone()).unwrap();
        assert_eq!(c.topic_defaults["retention.ms"], "120000");
        v.insert("log.retention.ms".into(), "5".into());
        let c = BrokerConfig::from_values(v).unwrap();
        assert_eq!(c.topic_defaults["retention.ms"], "5");
    }

    #[test]
    fn authorizer_keys() {
        assert_eq!(
            BrokerConfig::from_values(minimal()).unwrap().authorizer,
            None
        );
        let mut v = minimal();
        v.insert("authorizer.class.name".into(), KAFKA_ACL_AUTHORIZER.into());
        v.insert("super.users".into(), "User:admin;User:ANONYMOUS".into());
        let a = BrokerConfig::from_values(v.clone())
            .unwrap()
            .authorizer
            .unwrap();
        assert_eq!(a.super_users.len(), 2);
        assert!(!a.allow_everyone_if_no_acl_found);
        v.insert("super.users".into(), "admin".into());
        assert!(BrokerConfig::from_values(v.clone()).is_err());
        v.insert("authorizer.class.name".into(), "com.example.Other".into());
        assert!(BrokerConfig::from_values(v).is_err());
    }

    #[test]
    fn listeners_parse_and_reject_other_protocols() {
        let mut v = minimal();
        v.insert("listeners".into(), "PLAINTEXT://127.0.0.1:19092".into());
        let c = BrokerConfig::from_values(v.clone()).unwrap();
        assert_eq!(c.advertised().host, "127.0.0.1");
        assert_eq!(c.advertised().port, 19092);
        v.insert("listeners".into(), "TLS://127.0.0.1:19092".into());
        assert!(BrokerConfig::from_values(v.clone()).is_err());
        v.insert(
            "listeners".into(),
            "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19093".into(),
        );
        v.insert("security.inter.broker.protocol".into(), "SASL_SSL".into());
        v.insert(
            "listener.name.sasl_ssl.ssl.client.auth".into(),
            "required".into(),
        );
        let c = BrokerConfig::from_values(v.clone()).unwrap();
        assert_eq!(c.inter_broker_listener, "SASL_SSL");
        assert_eq!(
            c.listener_value("SASL_SSL", "ssl.client.auth").as_deref(),
            Some("required")
        );
        assert_eq!(
            c.listener_value("PLAINTEXT", "ssl.client.auth").as_deref(),
            Some("none")
        );
        v.insert(
            "listener.name.sasl_ssl.ssl.client.auth".into(),
            "maybe".into(),
        );
        assert!(BrokerConfig::from_values(v.clone()).is_err());
        v.insert("advertised.listeners".into(), "SSL://h:1".into());
        assert!(BrokerConfig::from_values(v).is_err());
    }
}
