//! The listener: accepts connections within the connection limits (see `limits`) and
//! spawns a task for each.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::limits::{connection_cap, resolve_overrides, PerIpQuotas};
use super::{connection, Broker};
use crate::security::listener::ListenerSecurity;

/// The broker-wide connection limits every listener admits connections through
/// (`max.connections`, `max.connections.per.ip` count all listeners together).
#[derive(Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    per_ip: Arc<PerIpQuotas>,
}

impl Admission {
    pub fn new(config: &crate::config::BrokerConfig, fd_limit: u64) -> Self {
        let cap = connection_cap(config.max_connections, fd_limit).min(Semaphore::MAX_PERMITS);
        if cap < config.max_connections {
            tracing::info!(
                connections = cap,
                fd_limit,
                "max.connections lowered to what the file-descriptor limit allows"
            );
        }
        Admission {
            permits: Arc::new(Semaphore::new(cap)),
            per_ip: PerIpQuotas::new(
                config.max_connections_per_ip,
                resolve_overrides(&config.max_connections_per_ip_overrides),
            ),
        }
    }
}

pub async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    security: Arc<ListenerSecurity>,
    admission: Admission,
) {
    let Admission { permits, per_ip } = admission;
    let network = broker.network.clone();
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
        let security = security.clone();
        // Draining: at shutdown a connection finishes the request it is serving, then
        // closes (it watches the network group's stop signal between requests).
        network.spawn_draining(async move {
            connection::serve(broker, stream, peer, security).await;
            drop(slot);
            drop(permit);
        });
    }
}
