//! The session cache and handler on their own, and the two talking to each other under
//! random requests, lost answers and evictions (proptest).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError as Error;
use proptest::prelude::*;

use super::cache::{FetchContext, FetchRequestView, FetchSessionCache, EVICTION_MS};
use super::handler::FetchSessionHandler;
use super::*;
use crate::storage::TopicPartition;

fn key(p: i32) -> PartitionKey {
    (TopicRef::Name("t".into()), p)
}

fn params(offset: i64) -> PartitionParams {
    PartitionParams {
        fetch_offset: offset,
        current_leader_epoch: 0,
        last_fetched_epoch: -1,
        log_start_offset: -1,
        max_bytes: 1024,
    }
}

fn quiet(hw: i64) -> PartitionSummary {
    PartitionSummary {
        error_code: 0,
        has_records: false,
        has_other_news: false,
        high_watermark: hw,
        last_stable_offset: hw,
        log_start_offset: 0,
    }
}

fn with_records(hw: i64) -> PartitionSummary {
    PartitionSummary {
        has_records: true,
        ..quiet(hw)
    }
}

fn view<'a>(
    session_id: i32,
    epoch: i32,
    partitions: &'a [(PartitionKey, PartitionParams)],
    forgotten: &'a [PartitionKey],
) -> FetchRequestView<'a> {
    FetchRequestView {
        session_id,
        epoch,
        uses_topic_ids: false,
        partitions,
        forgotten,
    }
}

/// A cache with one session over partitions 0..n (all answered with HW 10).
fn cache_with_session(n: i32, privileged: bool, now: i64) -> (FetchSessionCache, i32) {
    let mut cache = FetchSessionCache::new(10, 1000);
    let id = create(&mut cache, n, privileged, now);
    (cache, id)
}

fn create(cache: &mut FetchSessionCache, n: i32, privileged: bool, now: i64) -> i32 {
    let parts: Vec<_> = (0..n).map(|p| (key(p), params(0), quiet(10))).collect();
    // Ids never reused within a test, so an evicted session's id stays unknown.
    static NEXT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);
    let mut ids = || NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    cache.finish_full(privileged, false, parts, now, &mut ids)
}

#[test]
fn a_full_request_creates_a_session_and_incremental_ones_carry_only_changes() {
    let (mut cache, id) = cache_with_session(3, false, 0);
    assert!(id > 0);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.cached_partitions(), 3);

    // Epoch 1: partition 1 moved its fetch offset.
    let changed = [(key(1), params(5))];
    let ctx = cache.begin(&view(id, 1, &changed, &[]), 10);
    let FetchContext::Incremental {
        epoch, partitions, ..
    } = ctx
    else {
        panic!("{ctx:?}")
    };
    assert_eq!(epoch, 2);
    assert_eq!(
        partitions,
        vec![
            (key(0), params(0)),
            (key(1), params(5)),
            (key(2), params(0))
        ]
    );
    // Only partition 1 returned records; partition 2's HW moved; 0 is quiet.
    let include = cache
        .finish_incremental(
            id,
            epoch,
            &[
                (key(0), quiet(10)),
                (key(1), with_records(12)),
                (key(2), quiet(11)),
            ],
        )
        .unwrap();
    assert_eq!(include, vec![false, true, true]);
    // Fairness: the partition that returned data is read last next time.
    let order: Vec<i32> = cache
        .session_partitions(id)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k.1)
        .collect();
    assert_eq!(order, vec![0, 2, 1]);
}

#[test]
fn errors_on_unknown_sessions_wrong_epochs_and_topic_id_changes() {
    let (mut cache, id) = cache_with_session(2, false, 0);
    let none: [(PartitionKey, PartitionParams); 0] = [];
    assert_eq!(
        cache.begin(&view(id + 1, 1, &none, &[]), 0),
        FetchContext::Error(Error::FetchSessionIdNotFound)
    );
    // Session id 0 with an incremental epoch names no session (Kafka's answer too).
    assert_eq!(
        cache.begin(&view(0, 3, &none, &[]), 0),
        FetchContext::Error(Error::FetchSessionIdNotFound)
    );
    assert_eq!(
        cache.begin(&view(id, 2, &none, &[]), 0),
        FetchContext::Error(Error::InvalidFetchSessionEpoch)
    );
    let mut with_ids = view(id, 1, &none, &[]);
    with_ids.uses_topic_ids = true;
    assert_eq!(
        cache.begin(&with_ids, 0),
        FetchContext::Error(Error::FetchSessionTopicIdError)
    );
    // None of these moved the session: epoch 1 still works.
    assert!(matches!(
        cache.begin(&view(id, 1, &none, &[]), 0),
        FetchContext::Incremental { epoch: 2, .. }
    ));
}

#[test]
fn full_requests_close_the_session_they_name() {
    let none: [(PartitionKey, PartitionParams); 0] = [];
    let (mut cache, id) = cache_with_session(2, false, 0);
    assert_eq!(
        cache.begin(&view(id, FINAL_EPOCH, &none, &[]), 0),
        FetchContext::Sessionless
    );
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.cached_partitions(), 0);

    let (mut cache, id) = cache_with_session(2, false, 0);
    assert_eq!(
        cache.begin(&view(id, INITIAL_EPOCH, &none, &[]), 0),
        FetchContext::Full
    );
    assert_eq!(
        cache.len(),
        0,
        "the old session is closed before a new one is made"
    );
}

#[test]
fn forgetting_every_partition_closes_the_session() {
    let (mut cache, id) = cache_with_session(2, false, 0);
    let forget = [key(0)];
    assert!(matches!(
        cache.begin(&view(id, 1, &[], &forget), 0),
        FetchContext::Incremental { ref partitions, .. } if partitions.len() == 1
    ));
    assert_eq!(cache.cached_partitions(), 1);
    let forget = [key(1)];
    assert_eq!(
        cache.begin(&view(id, 2, &[], &forget), 0),
        FetchContext::Sessionless
    );
    assert!(cache.is_empty());
    assert_eq!(cache.cached_partitions(), 0);
}

#[test]
fn a_response_for_an_epoch_that_moved_on_is_refused() {
    let (mut cache, id) = cache_with_session(1, false, 0);
    let FetchContext::Incremental { epoch, .. } = cache.begin(&view(id, 1, &[], &[]), 0) else {
        panic!()
    };
    // A second request with the next epoch arrives before the first is answered.
    assert!(matches!(
        cache.begin(&view(id, epoch, &[], &[]), 0),
        FetchContext::Incremental { .. }
    ));
    assert_eq!(
        cache.finish_incremental(id, epoch, &[(key(0), quiet(10))]),
        Err(Error::InvalidFetchSessionEpoch)
    );
}

#[test]
fn eviction_follows_kafkas_rules() {
    // One slot. A young consumer session is safe from another consumer.
    let mut cache = FetchSessionCache::new(1, 1000);
    let consumer = create(&mut cache, 5, false, 0);
    assert!(consumer > 0);
    assert_eq!(create(&mut cache, 50, false, 1_000), 0);
    assert_eq!(cache.evictions(), 0);
    // A follower displaces a consumer at any age.
    let follower = create(&mut cache, 2, true, 2_000);
    assert!(follower > 0);
    assert_eq!(cache.evictions(), 1);
    assert!(cache.session_partitions(consumer).is_none());
    // A young follower session is safe from a consumer and from a smaller follower...
    assert_eq!(create(&mut cache, 100, false, 3_000), 0);
    assert_eq!(create(&mut cache, 1, true, 3_000), 0);
    // ... but past EVICTION_MS a bigger follower session wins (and it is in use, so not
    // stale).
    let none: [(PartitionKey, PartitionParams); 0] = [];
    let later = 2_000 + EVICTION_MS + 1;
    assert!(matches!(
        cache.begin(&view(follower, 1, &none, &[]), later),
        FetchContext::Incremental { .. }
    ));
    assert_eq!(
        create(&mut cache, 2, true, later),
        0,
        "same rank: no eviction"
    );
    let bigger = create(&mut cache, 3, true, later);
    assert!(bigger > 0);
    assert_eq!(cache.evictions(), 2);
    // Unused for EVICTION_MS, a session is stale: anyone may take its slot.
    let consumer = create(&mut cache, 1, false, later + EVICTION_MS + 1);
    assert!(consumer > 0);
    assert_eq!(cache.evictions(), 3);
}

#[test]
fn the_cached_partition_bound_holds() {
    let mut cache = FetchSessionCache::new(10, 10);
    assert_eq!(
        create(&mut cache, 11, true, 0),
        0,
        "bigger than the whole bound"
    );
    let id = create(&mut cache, 8, false, 0);
    assert!(id > 0);
    // A young consumer session is not displaced to make room.
    assert_eq!(create(&mut cache, 3, false, 0), 0);
    // Growing past the bound drops the session: the client starts over.
    let more: Vec<_> = (8..11).map(|p| (key(p), params(0))).collect();
    assert_eq!(
        cache.begin(&view(id, 1, &more, &[]), 0),
        FetchContext::Error(Error::FetchSessionIdNotFound)
    );
    assert!(cache.is_empty());
    assert_eq!(cache.cached_partitions(), 0);
}

#[test]
fn epochs_wrap_to_one() {
    assert_eq!(cache::next_epoch(1), 2);
    assert_eq!(cache::next_epoch(i32::MAX), 1);
    assert_eq!(cache::next_epoch(FINAL_EPOCH), FINAL_EPOCH);
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition {
        topic: "t".into(),
        partition: p,
    }
}

fn wanted(offsets: &[(i32, i64)]) -> BTreeMap<TopicPartition, PartitionParams> {
    offsets.iter().map(|(p, o)| (tp(*p), params(*o))).collect()
}

#[test]
fn the_handler_sends_everything_once_then_only_changes() {
    let mut h = FetchSessionHandler::new();
    let first = h.build(wanted(&[(0, 0), (1, 0), (2, 0)]));
    assert!(first.is_full());
    assert_eq!((first.session_id, first.partitions.len()), (0, 3));
    h.on_response(0, 7);

    let second = h.build(wanted(&[(0, 0), (1, 4)]));
    assert_eq!((second.session_id, second.epoch), (7, 1));
    assert_eq!(second.partitions, vec![(tp(1), params(4))]);
    assert_eq!(second.forgotten, vec![tp(2)]);
    h.on_response(0, 7);

    let third = h.build(wanted(&[(0, 0), (1, 4)]));
    assert_eq!((third.epoch, third.partitions.len()), (2, 0));
    // A wrong epoch: the next request is full and closes session 7.
    h.on_response(Error::InvalidFetchSessionEpoch.code(), 0);
    let fourth = h.build(wanted(&[(0, 0)]));
    assert!(fourth.is_full());
    assert_eq!((fourth.session_id, fourth.partitions.len()), (7, 1));
    // The leader had no room: sessionless; the next request asks again.
    h.on_response(0, 0);
    let fifth = h.build(wanted(&[(0, 0)]));
    assert!(fifth.is_full());
    assert_eq!(fifth.session_id, 0);
    h.on_response(0, 9);
    // A lost answer: full again, closing 9.
    let _ = h.build(wanted(&[(0, 1)]));
    h.on_failure();
    let sixth = h.build(wanted(&[(0, 1)]));
    assert!(sixth.is_full());
    assert_eq!(sixth.session_id, 9);
}

/// One round between a handler and the cache, as `api::fetch` serves it. Returns the
/// response's (error, session id).
fn serve(
    cache: &mut FetchSessionCache,
    req: &super::handler::SessionRequest,
    privileged: bool,
    now: i64,
    next_id: &mut i32,
) -> (i16, i32) {
    let parts: Vec<_> = req
        .partitions
        .iter()
        .map(|(t, p)| ((TopicRef::Name(t.topic.clone()), t.partition), p.clone()))
        .collect();
    let forgotten: Vec<_> = req
        .forgotten
        .iter()
        .map(|t| (TopicRef::Name(t.topic.clone()), t.partition))
        .collect();
    let v = FetchRequestView {
        session_id: req.session_id,
        epoch: req.epoch,
        uses_topic_ids: false,
        partitions: &parts,
        forgotten: &forgotten,
    };
    match cache.begin(&v, now) {
        FetchContext::Error(e) => (e.code(), 0),
        FetchContext::Sessionless => (0, 0),
        FetchContext::Full => {
            let with: Vec<_> = parts.into_iter().map(|(k, p)| (k, p, quiet(1))).collect();
            let mut ids = || {
                *next_id += 1;
                *next_id
            };
            (0, cache.finish_full(privileged, false, with, now, &mut ids))
        }
        FetchContext::Incremental {
            session_id,
            epoch,
            partitions,
        } => {
            let summaries: Vec<_> = partitions.into_iter().map(|(k, _)| (k, quiet(1))).collect();
            match cache.finish_incremental(session_id, epoch, &summaries) {
                Ok(_) => (0, session_id),
                Err(e) => (e.code(), 0),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever happens (changing partition sets, lost answers, other fetchers crowding a
    /// two-slot cache), after every answered request with a session the leader's session
    /// holds exactly what the fetcher wanted, and the cache's bounds hold.
    #[test]
    fn the_handler_and_the_cache_agree(
        rounds in proptest::collection::vec(
            (proptest::collection::btree_map(0i32..8, 0i64..4, 0..6), 0u8..10),
            1..60,
        )
    ) {
        let mut cache = FetchSessionCache::new(2, 12);
        let mut handler = FetchSessionHandler::new();
        let mut next_id = 0;
        let mut now = 0;
        for (want, event) in rounds {
            now += 1_000;
            let want: BTreeMap<_, _> = want.into_iter().map(|(p, o)| (tp(p), params(o))).collect();
            let req = handler.build(want.clone());
            match event {
                // The answer is lost, after the leader served the request or before.
                0 | 1 => {
                    if event == 0 {
                        serve(&mut cache, &req, true, now, &mut next_id);
                    }
                    handler.on_failure();
                    continue;
                }
                // Another fetcher creates a session, maybe evicting ours.
                2 => {
                    let other = FetchSessionHandler::new().build(wanted(&[(0, 0), (1, 0), (2, 0)]));
                    serve(&mut cache, &other, true, now + EVICTION_MS * 3, &mut next_id);
                    now += EVICTION_MS * 3;
                }
                _ => {}
            }
            let (error, id) = serve(&mut cache, &req, true, now, &mut next_id);
            handler.on_response(error, id);
            prop_assert!(cache.len() <= 2);
            prop_assert!(cache.cached_partitions() <= 12);
            if error == 0 && id != 0 {
                let held: BTreeMap<_, _> = cache
                    .session_partitions(id)
                    .unwrap()
                    .into_iter()
                    .map(|((t, p), params)| {
                        let TopicRef::Name(topic) = t else { unreachable!() };
                        (TopicPartition { topic, partition: p }, params)
                    })
                    .collect();
                prop_assert_eq!(held, want);
            }
        }
    }
}
