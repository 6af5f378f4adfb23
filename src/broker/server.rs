//! The listener: accepts connections within the connection limits (see `limits`) and
//! spawns a task for each.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::limits::{connection_cap, resolve_overrides, PerIpQuotas};
use super::{connection, Broker};

pub async fn accept_loop(broker: Arc<Broker>, listener: TcpListener, fd_limit: u64) {
    let config = &broker.config;
    let cap = connection_cap(config.max_connections, fd_limit).min(Semaphore::MAX_PERMITS);
    if cap < config.max_connections {
        tracing::info!(
            connections = cap,
            fd_limit,
            "max.connections lowered to what the file-descriptor limit allows"
        );
    }
    let permits = Arc::new(Semaphore::new(cap));
    let per_ip = PerIpQuotas::new(
        config.max_connections_per_ip,
        resolve_overrides(&config.max_connections_per_ip_overrides),
    );
    loop {
        // Like Kafka's Acceptor, wait for a free slot before accepting: connections past
        // the limit wait in the kernel's backlog and cost the broker nothing.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends: back off rather than spin.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match per_ip.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                // Kafka closes it at once (TooManyConnectionsException). Debug level: an
                // attacker must not be able to flood the log.
                tracing::debug!(%peer, max = refused.max, "max.connections.per.ip reached; closing connection");
                continue;
            }
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            connection::serve(broker, stream, peer).await;
            drop(slot);
            drop(permit);
        });
    }
}
