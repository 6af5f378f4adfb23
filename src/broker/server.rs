//! The listener: accepts connections up to `max.connections` and spawns a task for each.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{connection, Broker};

pub async fn accept_loop(broker: Arc<Broker>, listener: TcpListener) {
    let permits = Arc::new(Semaphore::new(
        broker.config.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends: back off rather than spin.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "max.connections reached; refusing connection");
            drop(stream);
            continue;
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            connection::serve(broker, stream, peer).await;
            drop(permit);
        });
    }
}
