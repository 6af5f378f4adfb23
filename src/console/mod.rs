//! The web console (in progress).
use std::sync::Arc;

pub fn embedded_router(
    _broker: &Arc<crate::broker::Broker>,
    _scrape: crate::metrics::http::ScrapeFn,
) -> anyhow::Result<axum::Router> {
    anyhow::bail!("console.listener: the console is not built yet")
}
