//! DescribeLogDirs (key 35, v0-v4, v0 being v1 without throttling; `kafka-log-dirs`):
//! every log directory of this broker with the replicas it holds (size in bytes, offset
//! lag = max(HW - LEO, 0) as Kafka's `getLogEndOffsetLag` for a current replica) and,
//! from v4, the file system's total and
//! usable bytes. An offline directory answers KAFKA_STORAGE_ERROR. Cluster DESCRIBE is
//! required (CLUSTER_AUTHORIZATION_FAILED, top-level from v3).

use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::security::acl::AclOperation;

pub const VERSIONS: Versions = Versions::new(0, 4);

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeLogDirsRequest,
) -> Option<DescribeLogDirsResponse> {
    if !broker.authorize_cluster(ctx, AclOperation::Describe) {
        return Some(
            DescribeLogDirsResponse::default()
                .with_error_code(code(Error::ClusterAuthorizationFailed)),
        );
    }
    let wanted = |topic: &str, p: i32| match &req.topics {
        None => true,
        Some(ts) => ts
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&p)),
    };
    let logs = &broker.replicas.logs;
    let live = logs.live_log_dirs();
    let results = super::blocking(|| {
        broker
            .config
            .log_dirs
            .iter()
            .map(|dir| {
                let name = StrBytes::from_string(dir.display().to_string());
                if !live.contains(dir) {
                    return DescribeLogDirsResult::default()
                        .with_log_dir(name)
                        .with_error_code(code(Error::KafkaStorageError))
                        .with_total_bytes(-1)
                        .with_usable_bytes(-1);
                }
                let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
                let mut tps = logs.partitions_in(dir);
                tps.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                for tp in tps.into_iter().filter(|tp| wanted(&tp.topic, tp.partition)) {
                    let Some(log) = logs.get(&tp) else { continue };
                    let (size, leo) = {
                        let log = crate::sync::lock(&log);
                        (log.size_bytes(), log.log_end_offset())
                    };
                    let hw = broker
                        .replicas
                        .partition(&tp.topic, tp.partition)
                        .map_or(leo, |p| p.high_watermark());
                    let partition = DescribeLogDirsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_partition_size(size as i64)
                        .with_offset_lag((hw - leo).max(0))
                        .with_is_future_key(false);
                    match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                        Some(t) => t.partitions.push(partition),
                        None => topics.push(
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                                .with_partitions(vec![partition]),
                        ),
                    }
                }
                let (total, usable) = disk_space(dir).unwrap_or((-1, -1));
                DescribeLogDirsResult::default()
                    .with_log_dir(name)
                    .with_error_code(0)
                    .with_topics(topics)
                    .with_total_bytes(total)
                    .with_usable_bytes(usable)
            })
            .collect()
    });
    Some(DescribeLogDirsResponse::default().with_results(results))
}

/// (total, usable) bytes of the file system holding `dir` (statvfs).
fn disk_space(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `st` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as i64;
    Some((st.f_blocks as i64 * frsize, st.f_bavail as i64 * frsize))
}
