//! `gregor configs`: a topic's or a broker's configs, like `kafka-configs`.
//!
//! - `gregor configs describe --topic T | --broker ID | --broker-defaults [--all]`: the
//!   overrides (dynamic configs; with `--all`, every config), each with its synonyms, in
//!   `kafka-configs --describe`'s layout;
//! - `gregor configs alter --topic T | --broker ID | --broker-defaults [--set K=V]...
//!   [--delete K]...`: one IncrementalAlterConfigs, all changes or none.
//!
//! Broker configs that can change at runtime are Kafka's dynamic ones gregor implements
//! (the replication throttles); the broker refuses the rest, naming the key.

use crate::client::admin::{self, ConfigChange, ConfigResource};
use crate::config::ConfigSource;

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

/// Kafka's `kafka-configs --describe` layout (`ConfigCommand.describeResourceConfig`): a
/// heading, then `key=value sensitive=.. synonyms={SOURCE:key=value, ..}` lines sorted
/// by key; without `--all` only the entries set at the resource's own dynamic level.
fn render(resource: &ConfigResource, entries: &[admin::ConfigEntry], all: bool) -> String {
    let (heading, own_level) = match resource {
        ConfigResource::Topic(t) => (
            format!("{} configs for topic {t} are:", which(all)),
            ConfigSource::TopicConfig,
        ),
        ConfigResource::Broker(Some(id)) => (
            format!("{} configs for broker {id} are:", which(all)),
            ConfigSource::DynamicBrokerConfig,
        ),
        ConfigResource::Broker(None) => (
            "Default configs for brokers in the cluster are:".to_string(),
            ConfigSource::DynamicDefaultBrokerConfig,
        ),
    };
    let own_level = own_level.to_string();
    let mut out = heading + "\n";
    for e in entries.iter().filter(|e| all || e.source == own_level) {
        let synonyms: Vec<String> = e
            .synonyms
            .iter()
            .map(|y| format!("{}:{}={}", y.source, y.name, or_null(&y.value)))
            .collect();
        out.push_str(&format!(
            "  {}={} sensitive={} synonyms={{{}}}\n",
            e.name,
            or_null(&e.value),
            e.sensitive,
            synonyms.join(", ")
        ));
    }
    out
}

fn which(all: bool) -> &'static str {
    if all {
        "All"
    } else {
        "Dynamic"
    }
}

/// A value as Java prints a null string.
fn or_null(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("null")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str, levels: &[(&str, &str, &str)]) -> admin::ConfigEntry {
        admin::ConfigEntry {
            name: name.into(),
            value: Some(value.into()),
            source: levels[0].0.into(),
            sensitive: false,
            synonyms: levels
                .iter()
                .map(|(source, name, value)| admin::ConfigSynonym {
                    name: name.to_string(),
                    value: Some(value.to_string()),
                    source: source.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn describe_shows_overrides_unless_all_is_asked() {
        let entries = [
            entry(
                "cleanup.policy",
                "delete",
                &[("DEFAULT_CONFIG", "log.cleanup.policy", "delete")],
            ),
            entry(
                "retention.ms",
                "1000",
                &[
                    ("DYNAMIC_TOPIC_CONFIG", "retention.ms", "1000"),
                    ("DEFAULT_CONFIG", "log.retention.ms", "604800000"),
                ],
            ),
        ];
        let t = ConfigResource::Topic("t".into());
        assert_eq!(
            render(&t, &entries, false),
            "Dynamic configs for topic t are:\n  retention.ms=1000 sensitive=false \
             synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, DEFAULT_CONFIG:log.retention.ms=604800000}\n"
        );
        let all = render(&t, &entries, true);
        assert!(all.starts_with("All configs for topic t are:\n"));
        assert!(all.contains(
            "  cleanup.policy=delete sensitive=false synonyms={DEFAULT_CONFIG:log.cleanup.policy=delete}\n"
        ));
    }

    #[test]
    fn a_broker_shows_its_own_level_and_the_defaults_theirs() {
        let rate = "leader.replication.throttled.rate";
        let entries = [entry(
            rate,
            "10",
            &[
                ("DYNAMIC_BROKER_CONFIG", rate, "10"),
                ("DYNAMIC_DEFAULT_BROKER_CONFIG", rate, "20"),
            ],
        )];
        let one = render(&ConfigResource::Broker(Some(1)), &entries, false);
        assert!(
            one.starts_with("Dynamic configs for broker 1 are:\n"),
            "{one}"
        );
        assert!(one.contains(&format!("  {rate}=10 sensitive=false synonyms={{DYNAMIC_BROKER_CONFIG:{rate}=10, DYNAMIC_DEFAULT_BROKER_CONFIG:{rate}=20}}")), "{one}");
        let defaults = render(&ConfigResource::Broker(None), &entries, false);
        assert_eq!(
            defaults,
            "Default configs for brokers in the cluster are:\n"
        );
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
