//! The web console: server-rendered pages (no JS build step; a small static script only
//! refreshes the sparklines) over gregor's own Kafka client, so every action goes through
//! the same API handlers and admin code as any Kafka client's: cluster overview, topics
//! (create / delete / alter config, partitions with leader, replicas, ISR, leader epoch,
//! log start/end and size), a message browser, consumer groups with lag and offset reset
//! of an inactive group, and live throughput sparklines from the metrics.
//!
//! Served by a broker (`console.listener`) or on its own (`gregor console`).

mod actions;
mod html;
mod pages;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::metrics::http::ScrapeFn;

/// What every page handler shares.
pub struct Console {
    pub bootstrap: String,
    /// Throughput samples (messages in, bytes in, bytes out per second), newest last.
    samples: Mutex<VecDeque<[f64; 3]>>,
}

const SAMPLES: usize = 60;

type Shared = State<Arc<Console>>;

/// The console of a broker: it talks to the broker's own first listener.
pub fn embedded_router(
    broker: &Arc<crate::broker::Broker>,
    scrape: ScrapeFn,
) -> anyhow::Result<Router> {
    let listener = broker
        .config
        .listeners
        .first()
        .ok_or_else(|| anyhow::anyhow!("console.listener: the broker has no listener"))?;
    let host = match listener.host.as_str() {
        "" | "0.0.0.0" | "::" => "127.0.0.1",
        h => h,
    };
    Ok(router(format!("{host}:{}", listener.port), vec![scrape]))
}

/// The console over a cluster at `bootstrap`, sampling throughput from `scrapes`.
pub fn router(bootstrap: String, scrapes: Vec<ScrapeFn>) -> Router {
    let console = Arc::new(Console {
        bootstrap,
        samples: Mutex::new(VecDeque::new()),
    });
    // The loop holds the console weakly: it ends when the router (its server) is gone.
    tokio::spawn(sample_loop(Arc::downgrade(&console), scrapes));
    Router::new()
        .route("/", get(overview))
        .route("/topics", get(topics).post(create_topic))
        .route("/topics/:name", get(topic))
        .route("/topics/:name/delete", post(delete_topic))
        .route("/topics/:name/config", post(alter_config))
        .route("/topics/:name/messages", get(messages))
        .route("/groups", get(groups))
        .route("/groups/:id", get(group))
        .route("/groups/:id/reset", post(reset_offsets))
        .route("/sparkline.svg", get(sparkline))
        .route(
            "/static/console.js",
            get(|| async { static_file("text/javascript", include_str!("static/console.js")) }),
        )
        .route(
            "/static/console.css",
            get(|| async { static_file("text/css", include_str!("static/console.css")) }),
        )
        .with_state(console)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Sums a counter's unlabelled samples (the all-topics value) over scrapes.
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

const RATES: [&str; 3] = [
    "kafka_server_brokertopicmetrics_messagesin_total",
    "kafka_server_brokertopicmetrics_bytesin_total",
    "kafka_server_brokertopicmetrics_bytesout_total",
];

async fn sample_loop(console: std::sync::Weak<Console>, scrapes: Vec<ScrapeFn>) {
    const EVERY: Duration = Duration::from_secs(2);
    let mut last: Option<[f64; 3]> = None;
    loop {
        let Some(console) = console.upgrade() else {
            return;
        };
        let mut now = [0.0; 3];
        for s in &scrapes {
            let text = s().await;
            for (i, name) in RATES.iter().enumerate() {
                now[i] += counter(&text, name);
            }
        }
        if let Some(prev) = last {
            let rate = [0, 1, 2].map(|i| ((now[i] - prev[i]) / EVERY.as_secs_f64()).max(0.0));
            let mut samples = crate::sync::lock(&console.samples);
            samples.push_back(rate);
            while samples.len() > SAMPLES {
                samples.pop_front();
            }
        }
        last = Some(now);
        drop(console);
        tokio::time::sleep(EVERY).await;
    }
}

#[derive(serde::Deserialize)]
struct SparkQuery {
    metric: String,
}

async fn sparkline(State(c): Shared, Query(q): Query<SparkQuery>) -> Response {
    let i = match q.metric.as_str() {
        "bytesin" => 1,
        "bytesout" => 2,
        _ => 0,
    };
    let values: Vec<f64> = c
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|s| s[i])
        .collect();
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html::sparkline(&values),
    )
        .into_response()
}

fn render(title: &str, body: Result<String, String>) -> Html<String> {
    Html(html::page(
        title,
        &body.unwrap_or_else(|e| html::message(&Err(e))),
    ))
}

async fn overview(State(c): Shared) -> Html<String> {
    render("Cluster", pages::overview(&c).await)
}

async fn topics(State(c): Shared) -> Html<String> {
    render("Topics", pages::topics(&c, Ok(String::new())).await)
}

async fn create_topic(State(c): Shared, Form(f): Form<actions::CreateTopic>) -> Html<String> {
    let result = actions::create_topic(&c, &f).await;
    render("Topics", pages::topics(&c, result).await)
}

async fn topic(State(c): Shared, Path(name): Path<String>) -> Html<String> {
    render(
        &format!("Topic {name}"),
        pages::topic(&c, &name, Ok(String::new())).await,
    )
}

async fn delete_topic(State(c): Shared, Path(name): Path<String>) -> Response {
    match actions::delete_topic(&c, &name).await {
        Ok(()) => Redirect::to("/topics").into_response(),
        Err(e) => render(
            &format!("Topic {name}"),
            pages::topic(&c, &name, Err(e)).await,
        )
        .into_response(),
    }
}

async fn alter_config(
    State(c): Shared,
    Path(name): Path<String>,
    Form(f): Form<actions::AlterConfig>,
) -> Html<String> {
    let result = actions::alter_config(&c, &name, &f).await;
    render(
        &format!("Topic {name}"),
        pages::topic(&c, &name, result).await,
    )
}

async fn messages(
    State(c): Shared,
    Path(name): Path<String>,
    Query(q): Query<pages::Browse>,
) -> Html<String> {
    render(
        &format!("Messages of {name}"),
        pages::messages(&c, &name, &q).await,
    )
}

async fn groups(State(c): Shared) -> Html<String> {
    render("Consumer groups", pages::groups(&c).await)
}

async fn group(State(c): Shared, Path(id): Path<String>) -> Html<String> {
    render(
        &format!("Group {id}"),
        pages::group(&c, &id, Ok(String::new())).await,
    )
}

async fn reset_offsets(
    State(c): Shared,
    Path(id): Path<String>,
    Form(f): Form<actions::ResetOffsets>,
) -> Html<String> {
    let result = actions::reset_offsets(&c, &id, &f).await;
    render(&format!("Group {id}"), pages::group(&c, &id, result).await)
}

/// `gregor console`: the console on its own, against any cluster.
#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    /// Broker(s) to bootstrap from.
    #[arg(long, default_value_t = crate::client::tools::default_bootstrap())]
    pub bootstrap_server: String,
    /// Address to serve the console on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A broker's /metrics URL to draw throughput from (repeatable; one per broker).
    #[arg(long = "metrics-url")]
    pub metrics_urls: Vec<String>,
}

pub fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let scrapes = args
            .metrics_urls
            .iter()
            .map(|u| http_scrape(u.clone()))
            .collect();
        let listener = crate::metrics::http::bind("--listen", &args.listen).await?;
        println!("console: http://{}/", listener.local_addr()?);
        axum::serve(listener, router(args.bootstrap_server, scrapes)).await?;
        Ok(())
    })
}

/// Scrapes a `/metrics` URL (plain HTTP/1.1 GET; empty text on any failure).
fn http_scrape(url: String) -> ScrapeFn {
    Arc::new(move || {
        let url = url.clone();
        Box::pin(async move { actions::http_get(&url).await.unwrap_or_default() })
    })
}
