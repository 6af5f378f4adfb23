//! `gregor elect-leaders`: ElectLeaders, like `kafka-leader-election`. Preferred (the
//! first replica becomes leader where it is in sync) or unclean (a leaderless partition
//! takes any live replica, possibly losing acknowledged records), for one partition, a
//! topic's partitions, or every partition.

use anyhow::bail;

use crate::client::admin::{self, ElectionOutcome, ElectionType, TopicPartition};

use super::{block_on, connect};

#[derive(clap::Args, Debug)]
pub struct ElectLeadersArgs {
    /// Broker(s) to bootstrap from (default: see `gregor::cli::default_bootstrap`).
    #[arg(long, default_value_t = super::default_bootstrap())]
    pub bootstrap_server: String,
    /// Which election.
    #[arg(long = "election-type", value_enum, default_value_t = ElectionType::Preferred)]
    pub election_type: ElectionType,
    /// Shorthand for `--election-type unclean`.
    #[arg(long, conflicts_with = "election_type")]
    pub unclean: bool,
    /// Only this topic's partitions (default: every partition).
    #[arg(long)]
    pub topic: Option<String>,
    /// Only this partition of `--topic`.
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
}

pub fn run(args: ElectLeadersArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = connect(&args.bootstrap_server).await?;
        let election = if args.unclean {
            ElectionType::Unclean
        } else {
            args.election_type
        };
        let partitions: Option<Vec<TopicPartition>> = match (&args.topic, args.partition) {
            (Some(t), Some(p)) => Some(vec![(t.clone(), p)]),
            (Some(t), None) => {
                c.refresh(Some(std::slice::from_ref(t))).await?;
                let n = super::partition_count(&c, t)?;
                Some((0..n).map(|p| (t.clone(), p)).collect())
            }
            _ => None,
        };
        let results = admin::elect_leaders(&mut c, election, partitions.as_deref()).await?;
        print!("{}", render(election, &results));
        if results
            .iter()
            .any(|(_, o)| matches!(o, ElectionOutcome::Failed(_)))
        {
            bail!("the election failed for some partitions");
        }
        Ok(())
    })
}

/// `kafka-leader-election`'s summary: elected, already elected, failed (with why).
fn render(election: ElectionType, results: &[(TopicPartition, ElectionOutcome)]) -> String {
    let name = |tp: &TopicPartition| format!("{}-{}", tp.0, tp.1);
    let of = |want: fn(&ElectionOutcome) -> bool| {
        results
            .iter()
            .filter(|(_, o)| want(o))
            .map(|(tp, _)| name(tp))
            .collect::<Vec<_>>()
    };
    let mut out = String::new();
    let elected = of(|o| *o == ElectionOutcome::Elected);
    if !elected.is_empty() {
        let kind = match election {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        };
        out.push_str(&format!(
            "Successfully completed leader election ({kind}) for partitions {}\n",
            elected.join(", ")
        ));
    }
    let not_needed = of(|o| *o == ElectionOutcome::NotNeeded);
    if !not_needed.is_empty() {
        out.push_str(&format!(
            "Valid replica already elected for partitions {}\n",
            not_needed.join(", ")
        ));
    }
    for (tp, o) in results {
        if let ElectionOutcome::Failed(why) = o {
            out.push_str(&format!(
                "Election for partition {} failed: {why}\n",
                name(tp)
            ));
        }
    }
    if results.is_empty() {
        out.push_str("No partitions to elect.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_separates_elected_from_already_elected_and_failed() {
        let results = vec![
            (("t".to_string(), 0), ElectionOutcome::Elected),
            (("t".to_string(), 1), ElectionOutcome::NotNeeded),
            (
                ("t".to_string(), 2),
                ElectionOutcome::Failed("no live replica".into()),
            ),
        ];
        assert_eq!(
            render(ElectionType::Preferred, &results),
            "Successfully completed leader election (PREFERRED) for partitions t-0\n\
             Valid replica already elected for partitions t-1\n\
             Election for partition t-2 failed: no live replica\n"
        );
    }
}
