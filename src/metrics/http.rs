//! The HTTP listeners: `/metrics` (Prometheus text) and, where configured on the same or
//! another address, the web console (`crate::console`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

/// Produces the text of one scrape.
pub type ScrapeFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// OpenMetrics text, which Prometheus negotiates and parses.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn metrics_router(scrape: ScrapeFn) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let scrape = scrape.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], scrape().await).into_response() }
        }),
    )
}

/// Binds `addr` (`host:port`), failing start-up with a clear message.
pub async fn bind(key: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{key}: cannot listen on {addr}"))
}

/// Serves `router` on `listener`: the returned future runs the server; its owner spawns
/// it (the broker's network group, the mini-zookeeper's runtime).
pub fn serve(
    listener: TcpListener,
    router: Router,
    what: &'static str,
) -> impl Future<Output = ()> + Send + 'static {
    let local = listener.local_addr().ok();
    tracing::info!(address = ?local, "{what} listening on http://{}/", local.map(|a| a.to_string()).unwrap_or_default());
    async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(error = %err, "{what} HTTP listener stopped");
        }
    }
}

/// The broker's HTTP listeners (`metrics.listener`, `console.listener`): one server when
/// both name the same address.
pub async fn start_broker(broker: &Arc<crate::broker::Broker>) -> anyhow::Result<()> {
    let metrics_addr = broker.config.value("metrics.listener").unwrap_or_default();
    let console_addr = broker.config.value("console.listener").unwrap_or_default();
    if metrics_addr.is_empty() && console_addr.is_empty() {
        return Ok(());
    }
    super::enable();
    broker.background.spawn(super::broker::zookeeper_probe(
        broker.session.clone(),
        std::time::Duration::from_secs(10),
    ));
    let b = broker.clone();
    let scrape: ScrapeFn = Arc::new(move || {
        let b = b.clone();
        Box::pin(async move { super::broker::collect(&b).await })
    });
    let metrics = metrics_router(scrape.clone());
    let console = || crate::console::embedded_router(broker, scrape.clone());
    if !metrics_addr.is_empty() && metrics_addr == console_addr {
        let listener = bind("metrics.listener", &metrics_addr).await?;
        broker.network.spawn(serve(
            listener,
            metrics.merge(console()?),
            "metrics and console",
        ));
        return Ok(());
    }
    if !metrics_addr.is_empty() {
        broker.network.spawn(serve(
            bind("metrics.listener", &metrics_addr).await?,
            metrics,
            "metrics",
        ));
    }
    if !console_addr.is_empty() {
        let router = console()?.merge(metrics_router(scrape));
        broker.network.spawn(serve(
            bind("console.listener", &console_addr).await?,
            router,
            "console",
        ));
    }
    Ok(())
}
