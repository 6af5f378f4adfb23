//! The `gregor` command line: parsing only. Every subcommand hands its arguments to the
//! module that owns the concept.

use clap::{Parser, Subcommand};

/// See Cargo.toml: large per-request buffers are reused rather than faulted in anew.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gregor",
    version,
    about = "A Kafka-wire-compatible streaming broker"
)]
struct Cli {
    /// Kafka client properties for the CLI's connections (security.protocol, ssl.*,
    /// sasl.mechanism, sasl.jaas.config), as kafka-topics' --command-config.
    #[arg(long, global = true, value_name = "FILE")]
    command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mini-zookeeper coordination service.
    Zookeeper(gregor::zookeeper::ServerArgs),
    /// Run a Kafka-compatible broker.
    Broker(gregor::broker::BrokerArgs),
    /// Run a local cluster: a mini-zookeeper and N brokers as child processes.
    Cluster(gregor::cluster::ClusterArgs),
    /// Create, list, describe and delete topics.
    Topics(gregor::cli::topics::TopicsArgs),
    /// Produce stdin lines to a topic.
    Produce(gregor::cli::produce::ProduceArgs),
    /// Print a topic's records.
    Consume(gregor::cli::consume::ConsumeArgs),
    /// List and describe consumer groups (like kafka-consumer-groups).
    Groups(gregor::cli::groups::GroupsArgs),
    /// List and describe transactions (like kafka-transactions).
    Transactions(gregor::cli::transactions::TransactionsArgs),
    /// Add, list and remove ACLs (like kafka-acls).
    Acls(gregor::cli::acls::AclsArgs),
    /// Write a CA and broker/client certificates it signs (PEM) for TLS listeners.
    Certs(gregor::cli::certs::CertsArgs),
    /// Add, list and remove SCRAM users (AlterUserScramCredentials / DescribeUserScramCredentials).
    Users(gregor::cli::users::UsersArgs),
    /// Describe and alter topic and broker configs (like kafka-configs).
    Configs(gregor::cli::configs::ConfigsArgs),
    /// Move partitions between brokers (like kafka-reassign-partitions).
    Reassign(gregor::cli::reassign::ReassignArgs),
    /// Elect preferred or unclean leaders (like kafka-leader-election).
    ElectLeaders(gregor::cli::elect_leaders::ElectLeadersArgs),
    /// Serve the web console for a cluster (brokers serve it too: console.listener).
    Console(gregor::console::ConsoleArgs),
}

fn main() -> std::process::ExitCode {
    gregor::logging::init();
    let cli = Cli::parse();
    if let Some(path) = &cli.command_config {
        match gregor::client::ClientSecurity::from_properties_file(path) {
            Ok(security) => gregor::client::security::set_process_default(security),
            Err(err) => {
                eprintln!("error: {err:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let result = match cli.command {
        Command::Zookeeper(args) => gregor::zookeeper::run(args),
        Command::Broker(args) => gregor::broker::run(args),
        Command::Cluster(args) => gregor::cluster::run(args),
        Command::Topics(args) => gregor::cli::topics::run(args),
        Command::Produce(args) => gregor::cli::produce::run(args),
        Command::Consume(args) => gregor::cli::consume::run(args),
        Command::Groups(args) => gregor::cli::groups::run(args),
        Command::Transactions(args) => gregor::cli::transactions::run(args),
        Command::Acls(args) => gregor::cli::acls::run(args),
        Command::Certs(args) => gregor::cli::certs::run(args),
        Command::Users(args) => gregor::cli::users::run(args),
        Command::Configs(args) => gregor::cli::configs::run(args),
        Command::Reassign(args) => gregor::cli::reassign::run(args),
        Command::ElectLeaders(args) => gregor::cli::elect_leaders::run(args),
        Command::Console(args) => gregor::console::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
