//! A broker stopped with SIGTERM shuts down in Kafka's order: leadership moves away,
//! then it stops accepting and lets each connection finish the request it is serving,
//! then its background work stops, and only then do its logs close. So a client talking
//! to it the whole time sees answers or a closed connection (NOT_LEADER_OR_FOLLOWER only
//! for partitions whose leadership moved), never KAFKA_STORAGE_ERROR or a NOT_LEADER for a
//! partition it still leads (its only replica is there), as it did when the logs closed
//! while connections were still served.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::kafka::{batch, Client};
use common::{wait_until, Cluster, Coordinator};
use kafka_protocol::records::Compression;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;

#[test]
fn a_stopping_broker_answers_until_it_closes_the_connection() {
    // A short request timeout bounds the controlled shutdown's wait for leadership to
    // move (it cannot, for the single-replica partition).
    let mut cluster = Cluster::start(Coordinator::Gregor, 2, &[("request.timeout.ms", "3000")]);
    let mut admin = cluster.client(0);
    assert_eq!(admin.create_topic("solo", 2, 1, &[]), 0);
    assert_eq!(admin.create_topic("shared", 1, 2, &[]), 0);
    wait_until(Duration::from_secs(30), "leaders", || {
        admin.leader("solo", 0) >= 0
            && admin.leader("solo", 1) >= 0
            && admin.leader("shared", 0) >= 0
    });
    // The broker that leads a single-replica partition is the one stopped.
    let victim = admin.leader("solo", 0);
    let addr = cluster.brokers[cluster.broker_index(victim)].addr();

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(String, i16)>>> = Arc::default();
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, seen, answered, addr) =
                (stop.clone(), seen.clone(), answered.clone(), addr.clone());
            std::thread::spawn(move || {
                let mut client: Option<Client> = None;
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let Some(c) = client.as_mut() else {
                        client = Client::connect(&addr).ok();
                        if client.is_none() {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        continue;
                    };
                    i += 1;
                    let value = format!("w{w}-{i}");
                    // Produce and fetch, to both topics: answers or a dropped connection.
                    let body = || batch(&[value.as_bytes()], Compression::None);
                    let outcome = (|| {
                        let (p, _) = c.try_produce("solo", 0, body(), 1)?;
                        let (f, _, _) = c.try_fetch("solo", 0, 0, 0)?;
                        let (s, _) = c.try_produce("shared", 0, body(), 1)?;
                        Ok::<_, gregor::client::ClientError>([
                            ("produce solo", p),
                            ("fetch solo", f),
                            ("produce shared", s),
                        ])
                    })();
                    match outcome {
                        Ok(codes) => {
                            answered.fetch_add(1, Ordering::SeqCst);
                            let mut seen = seen.lock().unwrap();
                            for (what, code) in codes {
                                if code != 0 {
                                    seen.push((what.to_string(), code));
                                }
                            }
                        }
                        // The broker closed the connection: reconnect (or find it gone).
                        Err(_) => client = None,
                    }
                }
            })
        })
        .collect();
    wait_until(Duration::from_secs(30), "requests flowing", || {
        answered.load(Ordering::SeqCst) > 200
    });
    let index = cluster.broker_index(victim);
    cluster.brokers[index]
        .process
        .terminate(Duration::from_secs(60));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    eprintln!(
        "{} request rounds answered; errors seen: {:?}",
        answered.load(Ordering::SeqCst),
        seen.iter()
            .map(|(w, c)| format!("{w}: {c}"))
            .collect::<std::collections::BTreeSet<_>>()
    );
    // `solo` is led here until the process exits: every answer about it is a success
    // (a closed connection is how a client learns the broker is gone). `shared` moved
    // away first: NOT_LEADER_OR_FOLLOWER sends the client to the new leader.
    let wrong: Vec<_> = seen
        .iter()
        .filter(|(what, code)| what.ends_with("solo") || *code != NOT_LEADER_OR_FOLLOWER)
        .collect();
    assert!(
        wrong.is_empty(),
        "clients saw errors a stopping broker must not give: {} (first: {:?})",
        wrong.len(),
        wrong.first()
    );
    let log = cluster.brokers[index].process.log_tail(200);
    assert!(
        log.contains("shut down"),
        "the broker finished its shutdown:\n{log}"
    );
}
