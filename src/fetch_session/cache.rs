//! The leader's side of KIP-227: the cache of incremental fetch sessions, as a pure state
//! machine (time passed in, no locks, no I/O). `api::fetch` holds it behind a mutex.
//!
//! A request is classified on arrival (`FetchSessionCache::begin`): sessionless, full (a
//! new session is created when the response is built, `finish_full`), incremental (the
//! session's partitions are updated from the request and read in full, and the answer
//! carries only the partitions that changed, `finish_incremental`), or an error
//! (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, FETCH_SESSION_TOPIC_ID_ERROR).
//! Kafka's rules (`FetchSession.scala`, `FetchManager.newContext`): any session named by
//! a full request is closed; epoch -1 never creates one; a session left with no partitions
//! is closed and the request served sessionless.
//!
//! Bounds: at most `max_sessions` sessions (`max.incremental.fetch.session.cache.slots`)
//! and at most `max_partitions` cached partitions over all of them (not a Kafka setting:
//! a fetch may name a million partitions, and the cache would keep them). When full, a
//! new session may evict one that is stale (unused for `EVICTION_MS`), else the least
//! valuable one created more than `EVICTION_MS` ago; followers' sessions (privileged)
//! outrank consumers', bigger sessions outrank smaller ones. Otherwise the request is
//! served without a session, which every client handles.

use std::collections::HashMap;

use indexmap::IndexMap;
use kafka_protocol::ResponseError as Error;

use super::{PartitionKey, PartitionParams, PartitionSummary, FINAL_EPOCH, INITIAL_EPOCH};

/// Kafka's `min.incremental.fetch.session.eviction.ms` (an internal 120 s constant).
pub const EVICTION_MS: i64 = 120_000;

/// Cached partitions over all sessions by default (see the module comment).
pub const DEFAULT_MAX_PARTITIONS: usize = 200_000;

/// What a session remembers of one partition: the last request's parameters and what
/// the last response told the client (so unchanged partitions can be left out).
#[derive(Debug, Clone, PartialEq)]
pub struct CachedPartition {
    pub params: PartitionParams,
    /// -1: never answered in this session (the next response includes it).
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

impl CachedPartition {
    fn new(params: PartitionParams) -> Self {
        CachedPartition {
            params,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
        }
    }

    /// Records what the response says and tells whether an incremental response must
    /// carry this partition (Kafka's `CachedPartition.maybeUpdateResponseData`).
    fn observe(&mut self, s: &PartitionSummary) -> bool {
        let changed = s.error_code != 0
            || s.has_records
            || s.has_other_news
            || s.high_watermark != self.high_watermark
            || s.last_stable_offset != self.last_stable_offset
            || s.log_start_offset != self.log_start_offset;
        self.high_watermark = s.high_watermark;
        self.last_stable_offset = s.last_stable_offset;
        self.log_start_offset = s.log_start_offset;
        changed
    }
}

#[derive(Debug)]
struct Session {
    /// The epoch the next incremental request must carry.
    epoch: i32,
    privileged: bool,
    uses_topic_ids: bool,
    created_ms: i64,
    last_used_ms: i64,
    /// In the order partitions are read: those that returned records move to the end,
    /// so a response cut short by `max_bytes` does not starve the later ones.
    partitions: IndexMap<PartitionKey, CachedPartition>,
}

impl Session {
    /// Kafka's `EvictableKey` order: privileged first, then size; a new session may
    /// evict an old one that ranks below it.
    fn rank(&self) -> (bool, usize) {
        (self.privileged, self.partitions.len())
    }
}

/// How a fetch request is served, decided when it arrives.
#[derive(Debug, PartialEq)]
pub enum FetchContext {
    /// Answer every requested partition, with session id 0.
    Sessionless,
    /// Answer every requested partition; try to create a session for them.
    Full,
    /// Read every partition of the session (in this order); answer those that changed.
    Incremental {
        session_id: i32,
        /// The epoch the session moved to (the response is checked against it).
        epoch: i32,
        partitions: Vec<(PartitionKey, PartitionParams)>,
    },
    /// A top-level error, nothing read.
    Error(Error),
}

/// The request's session fields and contents.
pub struct FetchRequestView<'a> {
    pub session_id: i32,
    pub epoch: i32,
    pub uses_topic_ids: bool,
    pub partitions: &'a [(PartitionKey, PartitionParams)],
    pub forgotten: &'a [PartitionKey],
}

#[derive(Debug)]
pub struct FetchSessionCache {
    max_sessions: usize,
    max_partitions: usize,
    sessions: HashMap<i32, Session>,
    cached_partitions: usize,
    evictions: u64,
    created: u64,
}

impl FetchSessionCache {
    pub fn new(max_sessions: usize, max_partitions: usize) -> Self {
        FetchSessionCache {
            max_sessions,
            max_partitions,
            sessions: HashMap::new(),
            cached_partitions: 0,
            evictions: 0,
            created: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Partitions cached over every session (`NumIncrementalFetchPartitionsCached`).
    pub fn cached_partitions(&self) -> usize {
        self.cached_partitions
    }

    /// Sessions evicted to make room so far (`IncrementalFetchSessionEvictionsPerSec`).
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Sessions created so far (a fetcher that keeps its session creates one).
    pub fn created(&self) -> u64 {
        self.created
    }

    /// Classifies a request on arrival and applies its changes to an incremental session.
    pub fn begin(&mut self, req: &FetchRequestView, now_ms: i64) -> FetchContext {
        let full = req.epoch == INITIAL_EPOCH || req.epoch == FINAL_EPOCH;
        if full {
            if req.session_id != 0 {
                self.remove(req.session_id);
            }
            return if req.epoch == FINAL_EPOCH {
                FetchContext::Sessionless
            } else {
                FetchContext::Full
            };
        }
        let Some(session) = self.sessions.get_mut(&req.session_id) else {
            return FetchContext::Error(Error::FetchSessionIdNotFound);
        };
        if session.epoch != req.epoch {
            return FetchContext::Error(Error::InvalidFetchSessionEpoch);
        }
        if session.uses_topic_ids != req.uses_topic_ids {
            return FetchContext::Error(Error::FetchSessionTopicIdError);
        }
        let before = session.partitions.len();
        for (key, params) in req.partitions {
            match session.partitions.get_mut(key) {
                Some(cached) => cached.params = params.clone(),
                None => {
                    session
                        .partitions
                        .insert(key.clone(), CachedPartition::new(params.clone()));
                }
            }
        }
        for key in req.forgotten {
            session.partitions.shift_remove(key);
        }
        let after = session.partitions.len();
        session.epoch = next_epoch(session.epoch);
        session.last_used_ms = now_ms;
        let context = FetchContext::Incremental {
            session_id: req.session_id,
            epoch: session.epoch,
            partitions: session
                .partitions
                .iter()
                .map(|(k, c)| (k.clone(), c.params.clone()))
                .collect(),
        };
        self.cached_partitions = self.cached_partitions - before + after;
        let context = if after == 0 {
            self.remove(req.session_id);
            FetchContext::Sessionless
        } else if self.cached_partitions > self.max_partitions {
            // Growing past the bound: drop the session; the client starts over with a
            // full request (and gets a session if there is room then).
            self.remove(req.session_id);
            FetchContext::Error(Error::FetchSessionIdNotFound)
        } else {
            context
        };
        self.check();
        context
    }

    /// After a full fetch: creates a session holding its partitions, if there is room
    /// (evicting one if the rules allow). Returns its id, or 0 (no session).
    pub fn finish_full(
        &mut self,
        privileged: bool,
        uses_topic_ids: bool,
        partitions: Vec<(PartitionKey, PartitionParams, PartitionSummary)>,
        now_ms: i64,
        new_id: &mut dyn FnMut() -> i32,
    ) -> i32 {
        let size = partitions.len();
        if size == 0 || size > self.max_partitions || self.max_sessions == 0 {
            return 0;
        }
        while self.sessions.len() >= self.max_sessions
            || self.cached_partitions + size > self.max_partitions
        {
            if !self.evict_one(privileged, size, now_ms) {
                return 0;
            }
        }
        let id = loop {
            let id = new_id();
            if id > 0 && !self.sessions.contains_key(&id) {
                break id;
            }
        };
        let mut cached = IndexMap::with_capacity(size);
        for (key, params, summary) in partitions {
            let mut c = CachedPartition::new(params);
            c.observe(&summary);
            cached.insert(key, c);
        }
        self.cached_partitions += cached.len();
        self.created += 1;
        self.sessions.insert(
            id,
            Session {
                epoch: 1,
                privileged,
                uses_topic_ids,
                created_ms: now_ms,
                last_used_ms: now_ms,
                partitions: cached,
            },
        );
        self.check();
        id
    }

    /// After an incremental fetch: records what each partition's answer says and returns,
    /// for each (in the order given), whether the response carries it. Fails with
    /// INVALID_FETCH_SESSION_EPOCH if the session moved on meanwhile (another request
    /// with the same session arrived) or is gone.
    pub fn finish_incremental(
        &mut self,
        session_id: i32,
        epoch: i32,
        summaries: &[(PartitionKey, PartitionSummary)],
    ) -> Result<Vec<bool>, Error> {
        let session = self
            .sessions
            .get_mut(&session_id)
            .filter(|s| s.epoch == epoch)
            .ok_or(Error::InvalidFetchSessionEpoch)?;
        let mut include = Vec::with_capacity(summaries.len());
        let mut with_records = Vec::new();
        for (key, summary) in summaries {
            let carried = session
                .partitions
                .get_mut(key)
                .is_some_and(|c| c.observe(summary));
            include.push(carried);
            if summary.has_records {
                with_records.push(key);
            }
        }
        // Fairness: partitions that returned data are read last next time.
        for key in with_records {
            if let Some((_, k, v)) = session.partitions.shift_remove_full(key) {
                session.partitions.insert(k, v);
            }
        }
        Ok(include)
    }

    /// A session's partitions and what it asks of them, in reading order.
    pub fn session_partitions(&self, id: i32) -> Option<Vec<(PartitionKey, PartitionParams)>> {
        self.sessions.get(&id).map(|s| {
            s.partitions
                .iter()
                .map(|(k, c)| (k.clone(), c.params.clone()))
                .collect()
        })
    }

    fn remove(&mut self, id: i32) {
        if let Some(s) = self.sessions.remove(&id) {
            self.cached_partitions -= s.partitions.len();
        }
    }

    /// Kafka's `FetchSessionCache.tryEvict`: a stale session goes first; else the lowest
    /// ranked session that is evictable by the newcomer, if it ranks below it.
    fn evict_one(&mut self, privileged: bool, size: usize, now_ms: i64) -> bool {
        let stale = self
            .sessions
            .iter()
            .filter(|(_, s)| now_ms - s.last_used_ms > EVICTION_MS)
            .min_by_key(|(id, s)| (s.last_used_ms, **id))
            .map(|(id, _)| *id);
        let victim = stale.or_else(|| {
            self.sessions
                .iter()
                .filter(|(_, s)| {
                    let old = now_ms - s.created_ms > EVICTION_MS;
                    // A follower may displace any consumer session; anything else only a
                    // session past its protected first EVICTION_MS.
                    old || (privileged && !s.privileged)
                })
                .min_by_key(|(id, s)| (s.rank(), **id))
                .filter(|(_, s)| s.rank() < (privileged, size))
                .map(|(id, _)| *id)
        });
        match victim {
            Some(id) => {
                self.remove(id);
                self.evictions += 1;
                true
            }
            None => false,
        }
    }

    /// The cache's invariants, checked after every change that adds a session.
    fn check(&self) {
        assert!(
            self.sessions.len() <= self.max_sessions,
            "fetch session cache over its slots"
        );
        let total: usize = self.sessions.values().map(|s| s.partitions.len()).sum();
        assert_eq!(
            total, self.cached_partitions,
            "cached partition count drifted"
        );
        assert!(
            total <= self.max_partitions,
            "fetch session cache over its partition bound"
        );
    }
}

/// Kafka's `FetchMetadata.nextEpoch`: 1, 2, ..., i32::MAX, 1, ...
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        // The final epoch stays final.
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}
