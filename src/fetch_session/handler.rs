//! The fetching side of KIP-227 (Kafka's `FetchSessionHandler`), for followers: given
//! the partitions to fetch this round, decides the session id and epoch to send, which
//! partitions go in the request (all of them in a full request; only new or changed ones
//! in an incremental one) and which are forgotten; then learns from the answer.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError as Error;

use super::cache::next_epoch;
use super::{PartitionParams, INITIAL_EPOCH};
use crate::storage::TopicPartition;

/// The session fields and partitions of the next request.
#[derive(Debug, PartialEq)]
pub struct SessionRequest {
    pub session_id: i32,
    pub epoch: i32,
    pub partitions: Vec<(TopicPartition, PartitionParams)>,
    pub forgotten: Vec<TopicPartition>,
}

impl SessionRequest {
    pub fn is_full(&self) -> bool {
        self.epoch == INITIAL_EPOCH
    }
}

/// One fetcher's session with one leader.
#[derive(Debug, Default)]
pub struct FetchSessionHandler {
    /// 0: none.
    session_id: i32,
    /// The epoch of the next request (0: the next request is full).
    next_epoch: i32,
    /// What the leader's session holds, as of the last successful request.
    session: BTreeMap<TopicPartition, PartitionParams>,
    /// What the request in flight asked for (becomes `session` when it succeeds).
    in_flight: Option<BTreeMap<TopicPartition, PartitionParams>>,
}

impl FetchSessionHandler {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn session_id(&self) -> i32 {
        self.session_id
    }

    /// The request for this round, wanting exactly `wanted`.
    pub fn build(&mut self, wanted: BTreeMap<TopicPartition, PartitionParams>) -> SessionRequest {
        let request = if self.session_id == 0 || self.next_epoch == INITIAL_EPOCH {
            SessionRequest {
                // Naming the old session in a full request closes it on the leader.
                session_id: self.session_id,
                epoch: INITIAL_EPOCH,
                partitions: wanted.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                forgotten: Vec::new(),
            }
        } else {
            SessionRequest {
                session_id: self.session_id,
                epoch: self.next_epoch,
                partitions: wanted
                    .iter()
                    .filter(|(k, v)| self.session.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                forgotten: self
                    .session
                    .keys()
                    .filter(|k| !wanted.contains_key(*k))
                    .cloned()
                    .collect(),
            }
        };
        self.in_flight = Some(wanted);
        request
    }

    /// The leader answered with this top-level error code and session id.
    pub fn on_response(&mut self, error_code: i16, session_id: i32) {
        let sent = self.in_flight.take();
        match (error_code, sent) {
            (0, Some(sent)) if session_id != 0 => {
                if session_id != self.session_id || self.next_epoch == INITIAL_EPOCH {
                    // A new session: its first incremental request is epoch 1.
                    self.session_id = session_id;
                    self.next_epoch = 1;
                } else {
                    self.next_epoch = next_epoch(self.next_epoch);
                }
                self.session = sent;
            }
            (0, _) => self.reset(0),
            // FETCH_SESSION_ID_NOT_FOUND: start over. Anything else (a wrong epoch, ...):
            // a full request that closes the old session.
            (code, _) if code == Error::FetchSessionIdNotFound.code() => self.reset(0),
            _ => self.reset(self.session_id),
        }
    }

    /// The request failed without an answer (connection lost, timeout): the next one is
    /// full and closes the session, whose epoch is now unknown.
    pub fn on_failure(&mut self) {
        self.in_flight = None;
        self.reset(self.session_id);
    }

    fn reset(&mut self, close: i32) {
        self.session_id = close;
        self.next_epoch = INITIAL_EPOCH;
        self.session.clear();
    }
}
