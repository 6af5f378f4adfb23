//! `gregor transactions`: a cluster's transactions, like Kafka's `kafka-transactions.sh`.
//!
//! - `gregor transactions list --bootstrap-server HOST:PORT [--state S]... [--producer-id P]...
//!   [--duration-filter MS]`: ListTransactions on every broker (each answers for the
//!   `__transaction_state` partitions it leads): transactional id, coordinator, producer
//!   id, state;
//! - `gregor transactions describe --transactional-id ID --bootstrap-server HOST:PORT`:
//!   FindCoordinator(TRANSACTION), then DescribeTransactions on the coordinator: the
//!   producer id and epoch, state, timeout, start time, duration and partitions.

use std::fmt::Write;

use anyhow::bail;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{check, connect};

#[derive(clap::Args, Debug)]
pub struct TransactionsArgs {
    #[command(subcommand)]
    pub command: TransactionsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum TransactionsCommand {
    /// List the transactional ids of every transaction coordinator.
    List {
        /// A broker to start from (host:port; comma-separated list accepted).
        #[arg(long = "bootstrap-server", default_value_t = super::default_bootstrap())]
        bootstrap_server: String,
        /// Only transactions in this state (Ongoing, PrepareCommit, ...); repeatable.
        #[arg(long = "state")]
        states: Vec<String>,
        /// Only this producer id; repeatable.
        #[arg(long = "producer-id")]
        producer_ids: Vec<i64>,
        /// Only transactions running longer than this (ms).
        #[arg(long = "duration-filter")]
        duration_filter: Option<i64>,
    },
    /// Describe one transactional id's current transaction.
    Describe {
        #[arg(long = "transactional-id")]
        transactional_id: String,
        /// A broker to start from (host:port; comma-separated list accepted).
        #[arg(long = "bootstrap-server", default_value_t = super::default_bootstrap())]
        bootstrap_server: String,
    },
}

pub fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    super::block_on(async move {
        let mut out = String::new();
        match args.command {
            TransactionsCommand::List {
                bootstrap_server,
                states,
                producer_ids,
                duration_filter,
            } => {
                list(
                    &bootstrap_server,
                    &states,
                    &producer_ids,
                    duration_filter,
                    &mut out,
                )
                .await?
            }
            TransactionsCommand::Describe {
                transactional_id,
                bootstrap_server,
            } => describe(&bootstrap_server, &transactional_id, &mut out).await?,
        }
        print!("{out}");
        Ok(())
    })
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Left-aligned columns separated by two spaces, as Kafka's tools print tables.
fn table(rows: &[Vec<String>], out: &mut String) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
}

pub async fn list(
    bootstrap: &str,
    states: &[String],
    producer_ids: &[i64],
    duration_filter: Option<i64>,
    out: &mut String,
) -> anyhow::Result<()> {
    let mut c = connect(bootstrap).await?;
    let brokers: Vec<i32> = c.metadata.brokers.iter().map(|b| b.node_id.0).collect();
    let req = ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|x| s(x)).collect())
        .with_producer_id_filters(producer_ids.iter().map(|p| ProducerId(*p)).collect())
        .with_duration_filter(duration_filter.unwrap_or(-1));
    let version = if duration_filter.is_some() { 1 } else { 0 };
    let mut rows = vec![vec![
        "TransactionalId".to_string(),
        "Coordinator".to_string(),
        "ProducerId".to_string(),
        "TransactionState".to_string(),
    ]];
    for b in brokers {
        let r = c.send_to(b, &req, version).await?;
        check(
            r.error_code,
            &format!("ListTransactions on broker {b}"),
            None,
        )?;
        if !r.unknown_state_filters.is_empty() {
            let names: Vec<&str> = r.unknown_state_filters.iter().map(|x| x.as_str()).collect();
            bail!("unknown transaction states: {}", names.join(", "));
        }
        let mut listed: Vec<_> = r.transaction_states.into_iter().collect();
        listed.sort_by(|a, b| a.transactional_id.0.cmp(&b.transactional_id.0));
        for t in listed {
            rows.push(vec![
                t.transactional_id.0.to_string(),
                b.to_string(),
                t.producer_id.0.to_string(),
                t.transaction_state.to_string(),
            ]);
        }
    }
    table(&rows, out);
    Ok(())
}

pub async fn describe(bootstrap: &str, id: &str, out: &mut String) -> anyhow::Result<()> {
    let mut c = connect(bootstrap).await?;
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![s(id)]);
    let found = c.send_any(&find, 4).await?;
    let Some(coordinator) = found.coordinators.first() else {
        bail!("FindCoordinator answered no coordinator");
    };
    check(
        coordinator.error_code,
        &format!("coordinator of {id}"),
        coordinator.error_message.as_deref(),
    )?;
    let node = coordinator.node_id.0;
    let req =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]);
    let r = c.send_to(node, &req, 0).await?;
    let Some(t) = r.transaction_states.first() else {
        bail!("DescribeTransactions answered nothing for {id}");
    };
    check(t.error_code, &format!("transactional id {id}"), None)?;
    let now = crate::clock::now_ms();
    let (start, duration) = if t.transaction_start_time_ms >= 0 {
        (
            t.transaction_start_time_ms.to_string(),
            (now - t.transaction_start_time_ms).max(0).to_string(),
        )
    } else {
        ("None".to_string(), "None".to_string())
    };
    let mut partitions: Vec<String> = t
        .topics
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| format!("{}-{p}", tp.topic.0))
        })
        .collect();
    partitions.sort();
    let rows = vec![
        [
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions",
        ]
        .map(str::to_string)
        .to_vec(),
        vec![
            node.to_string(),
            id.to_string(),
            t.producer_id.0.to_string(),
            t.producer_epoch.to_string(),
            t.transaction_state.to_string(),
            t.transaction_timeout_ms.to_string(),
            start,
            duration,
            partitions.join(","),
        ],
    ];
    table(&rows, out);
    Ok(())
}
