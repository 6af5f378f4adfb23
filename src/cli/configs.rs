//! `gregor configs`: a topic's or a broker's configs, like `kafka-configs`.
//!
//! - `gregor configs describe --topic T | --broker ID | --broker-defaults [--all]`: the
//!   overrides (dynamic configs; with `--all`, every config with its source);
//! - `gregor configs alter --topic T | --broker ID | --broker-defaults [--set K=V]...
//!   [--delete K]...`: one IncrementalAlterConfigs, all changes or none.
//!
//! Broker configs that can change at runtime are Kafka's dynamic ones gregor implements
//! (the replication throttles); the broker refuses the rest, naming the key.

use crate::client::admin::{self, ConfigChange, ConfigResource};

use super::{block_on, connect};

#[derive(clap::Args, Debug)]
pub struct ConfigsArgs {
    /// Broker(s) to bootstrap from (default: see `gregor::cli::default_bootstrap`).
    #[arg(long, global = true, default_value_t = super::default_bootstrap())]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: ConfigsCommand,
}

/// Which entity's configs.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Entity {
    /// A topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// One broker, by id.
    #[arg(long)]
    pub broker: Option<i32>,
    /// The cluster-wide default of every broker (`<default>`).
    #[arg(long)]
    pub broker_defaults: bool,
}

impl Entity {
    fn resource(&self) -> ConfigResource {
        match (&self.topic, self.broker) {
            (Some(t), _) => ConfigResource::Topic(t.clone()),
            (None, Some(id)) => ConfigResource::Broker(Some(id)),
            (None, None) => ConfigResource::Broker(None),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigsCommand {
    /// Show the overrides (or every config with `--all`).
    Describe {
        #[command(flatten)]
        entity: Entity,
        /// Every config with its source, not only the overrides.
        #[arg(long)]
        all: bool,
    },
    /// Set and delete configs.
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// `KEY=VALUE` to set (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A key to remove, back to its default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

pub fn run(args: ConfigsArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = connect(&args.bootstrap_server).await?;
        match args.command {
            ConfigsCommand::Describe { entity, all } => {
                let resource = entity.resource();
                let entries = admin::describe_configs(&mut c, &resource).await?;
                print!("{}", render(&resource, &entries, all));
            }
            ConfigsCommand::Alter {
                entity,
                set,
                delete,
            } => {
                let resource = entity.resource();
                let changes = changes(&set, &delete)?;
                admin::alter_configs(&mut c, &resource, &changes).await?;
                println!("Completed updating config for {}.", resource.describe());
            }
        }
        Ok(())
    })
}

/// The operations of `--set` and `--delete`; at least one.
pub fn changes(set: &[String], delete: &[String]) -> anyhow::Result<Vec<ConfigChange>> {
    let mut out = set
        .iter()
        .map(|kv| ConfigChange::parse_set(kv))
        .collect::<anyhow::Result<Vec<_>>>()?;
    out.extend(
        delete
            .iter()
            .map(|k| ConfigChange::Delete(k.trim().to_string())),
    );
    if out.is_empty() {
        anyhow::bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
    }
    Ok(out)
}

/// Kafka's `kafka-configs --describe` layout: a heading, then `key=value` lines
/// (`sensitive=true` values hidden), each with its source under `--all`.
fn render(resource: &ConfigResource, entries: &[admin::ConfigEntry], all: bool) -> String {
    let dynamic = |e: &&admin::ConfigEntry| e.source.starts_with("DYNAMIC_");
    let shown: Vec<&admin::ConfigEntry> = entries.iter().filter(|e| all || dynamic(e)).collect();
    let mut out = format!(
        "{} configs for {}:\n",
        if all { "All" } else { "Dynamic" },
        resource.describe()
    );
    for e in shown {
        let value = if e.sensitive {
            "(sensitive)".to_string()
        } else {
            e.value.clone().unwrap_or_else(|| "null".into())
        };
        if all {
            out.push_str(&format!("  {}={value}\tsource={}\n", e.name, e.source));
        } else {
            out.push_str(&format!("  {}={value}\n", e.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str, source: &str) -> admin::ConfigEntry {
        admin::ConfigEntry {
            name: name.into(),
            value: Some(value.into()),
            source: source.into(),
            sensitive: false,
        }
    }

    #[test]
    fn describe_shows_overrides_unless_all_is_asked() {
        let entries = [
            entry("cleanup.policy", "delete", "DEFAULT_CONFIG"),
            entry("retention.ms", "1000", "DYNAMIC_TOPIC_CONFIG"),
        ];
        let t = ConfigResource::Topic("t".into());
        assert_eq!(
            render(&t, &entries, false),
            "Dynamic configs for topic t:\n  retention.ms=1000\n"
        );
        let all = render(&t, &entries, true);
        assert!(all.contains("cleanup.policy=delete\tsource=DEFAULT_CONFIG"));
        assert!(all.contains("retention.ms=1000\tsource=DYNAMIC_TOPIC_CONFIG"));
    }

    #[test]
    fn alter_needs_at_least_one_change() {
        assert!(changes(&[], &[]).is_err());
        assert_eq!(
            changes(&["a=1".into()], &["b".into()]).unwrap(),
            vec![
                ConfigChange::Set("a".into(), "1".into()),
                ConfigChange::Delete("b".into())
            ]
        );
    }
}
