//! Kafka API handlers, one module per API family. Each handler's served versions are
//! declared (`VERSIONS`) next to it; the dispatch table below is built
//! from those declarations and is the single source of the ApiVersions answer, so the
//! broker never advertises a version it does not serve.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::broker::Broker;
use crate::security::KafkaPrincipal;

pub mod acls;
pub mod api_versions;
pub mod authz;
pub mod cluster;
pub mod configs;
pub mod coordinator;
pub mod describe_producers;
pub mod elect_leaders;
pub mod errors;
pub mod fetch;
pub mod groups;
pub mod log_dirs;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer;
pub mod reassign;
pub mod sasl;
pub mod scram;
pub mod topics;
pub mod txn;
pub mod txn_markers;
pub mod txn_produce;
pub mod zk_offsets;

/// What a handler knows about the request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    pub peer: SocketAddr,
    pub connection_id: u64,
    /// Who sent the request (`User:ANONYMOUS` until a listener authenticates).
    pub principal: Arc<KafkaPrincipal>,
    /// The listener the request arrived on, by name (`PLAINTEXT`, `SASL_SSL`, `INTERNAL`...).
    pub listener_name: Arc<str>,
}

/// Runs storage work that may block for a while (segment scans, bounded decompression:
/// ListOffsets by time, DeleteRecords). On the broker's multi-thread runtime the worker
/// first hands its queued tasks to another thread (`block_in_place`), so one slow lookup
/// cannot stall every connection; elsewhere (a current-thread runtime) it simply runs
/// `f`. Not used for Produce and Fetch: measured, the hand-off doubled produce CPU per GB
/// (kafka_bench, 100 B records: 2.0 -> 4.0 CPU-s/GB).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// An inclusive range of served versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub min: i16,
    pub max: i16,
}

impl Versions {
    pub const fn new(min: i16, max: i16) -> Self {
        Versions { min, max }
    }
}

/// Declares every served API once: `Variant => module`. Generates the version table and
/// the dispatch `match`, so the two cannot disagree.
macro_rules! dispatch_table {
    ($($variant:ident => $handler:path [$versions:path]),* $(,)?) => {
        /// Every API this broker serves with its version range (ApiVersions' answer).
        pub const SERVED_APIS: &[(ApiKey, Versions)] = &[
            $((ApiKey::$variant, $versions)),*
        ];

        async fn dispatch(broker: &Broker, ctx: &RequestContext, body: RequestKind) -> Option<ResponseKind> {
            match body {
                $(RequestKind::$variant(req) => $handler(broker, ctx, req).await.map(ResponseKind::$variant),)*
                other => {
                    // decode_request only decodes served APIs, so this is unreachable in
                    // practice; answering nothing closes no connection and panics nothing.
                    tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a decoded request");
                    None
                }
            }
        }
    };
}

dispatch_table! {
    Produce => produce::handle [produce::VERSIONS],
    Fetch => fetch::handle [fetch::VERSIONS],
    ListOffsets => offsets::list_offsets [offsets::list_offsets::VERSIONS],
    OffsetForLeaderEpoch => offsets::offset_for_leader_epoch [offsets::offset_for_leader_epoch::VERSIONS],
    DeleteRecords => offsets::delete_records [offsets::delete_records::VERSIONS],
    InitProducerId => producer::init_producer_id [producer::VERSIONS],
    AddPartitionsToTxn => txn::add_partitions_to_txn [txn::add_partitions::VERSIONS],
    AddOffsetsToTxn => txn::add_offsets_to_txn [txn::add_offsets::VERSIONS],
    EndTxn => txn::end_txn [txn::end_txn::VERSIONS],
    WriteTxnMarkers => txn_markers::write_txn_markers [txn_markers::VERSIONS],
    TxnOffsetCommit => txn::txn_offset_commit [txn::txn_offset_commit::VERSIONS],
    DescribeTransactions => txn::describe_transactions [txn::describe::VERSIONS],
    ListTransactions => txn::list_transactions [txn::list::VERSIONS],
    ApiVersions => api_versions::handle [api_versions::VERSIONS],
    Metadata => metadata::handle [metadata::VERSIONS],
    CreateTopics => topics::create_topics [topics::create_topics::VERSIONS],
    DeleteTopics => topics::delete_topics [topics::delete_topics::VERSIONS],
    CreatePartitions => topics::create_partitions [topics::create_partitions::VERSIONS],
    DescribeConfigs => configs::describe_configs [configs::describe_configs::VERSIONS],
    AlterConfigs => configs::alter_configs [configs::alter_configs::VERSIONS],
    IncrementalAlterConfigs => configs::incremental_alter_configs [configs::incremental_alter_configs::VERSIONS],
    DescribeCluster => cluster::describe_cluster [cluster::describe_cluster::VERSIONS],
    FindCoordinator => coordinator::find_coordinator [coordinator::VERSIONS],
    JoinGroup => groups::join_group [groups::join_group::VERSIONS],
    SyncGroup => groups::sync_group [groups::sync_group::VERSIONS],
    Heartbeat => groups::heartbeat [groups::heartbeat::VERSIONS],
    LeaveGroup => groups::leave_group [groups::leave_group::VERSIONS],
    OffsetCommit => groups::offset_commit [groups::offset_commit::VERSIONS],
    OffsetFetch => groups::offset_fetch [groups::offset_fetch::VERSIONS],
    DescribeGroups => groups::describe_groups [groups::describe_groups::VERSIONS],
    ListGroups => groups::list_groups [groups::list_groups::VERSIONS],
    DeleteGroups => groups::delete_groups [groups::delete_groups::VERSIONS],
    OffsetDelete => groups::offset_delete [groups::offset_delete::VERSIONS],
    DescribeAcls => acls::describe_acls [acls::describe_acls::VERSIONS],
    CreateAcls => acls::create_acls [acls::create_acls::VERSIONS],
    DeleteAcls => acls::delete_acls [acls::delete_acls::VERSIONS],
    SaslHandshake => sasl::sasl_handshake [sasl::handshake::VERSIONS],
    SaslAuthenticate => sasl::sasl_authenticate [sasl::authenticate::VERSIONS],
    DescribeUserScramCredentials => scram::describe_user_scram_credentials [scram::describe::VERSIONS],
    AlterUserScramCredentials => scram::alter_user_scram_credentials [scram::alter::VERSIONS],
    ElectLeaders => elect_leaders::handle [elect_leaders::VERSIONS],
    AlterPartitionReassignments => reassign::alter_partition_reassignments [reassign::alter::VERSIONS],
    ListPartitionReassignments => reassign::list_partition_reassignments [reassign::list::VERSIONS],
    DescribeLogDirs => log_dirs::handle [log_dirs::VERSIONS],
    DescribeProducers => describe_producers::handle [describe_producers::VERSIONS],
}

/// The versions of `key` this broker serves, if any.
pub fn served_versions(key: ApiKey) -> Option<(i16, i16)> {
    SERVED_APIS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| (v.min, v.max))
}

/// Handles one request. `body` is `None` only for an ApiVersions request of a version we
/// do not serve (KIP-511). Returns `None` when the request gets no response (acks=0).
pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    body: Option<RequestKind>,
) -> Option<ResponseKind> {
    match body {
        None => Some(ResponseKind::ApiVersions(
            api_versions::unsupported_version(),
        )),
        Some(body) => dispatch(broker, ctx, body).await,
    }
}
