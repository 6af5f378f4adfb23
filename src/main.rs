//! The `gregor` command line: parsing only. Every subcommand hands its arguments to the
//! module that owns the concept.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gregor",
    version,
    about = "A Kafka-wire-compatible streaming broker"
)]
struct Cli {
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
    /// List and describe consumer groups (like kafka-consumer-groups).
    Groups(gregor::cli::groups::GroupsArgs),
}

fn main() -> std::process::ExitCode {
    gregor::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Zookeeper(args) => gregor::zookeeper::run(args),
        Command::Broker(args) => gregor::broker::run(args),
        Command::Cluster(args) => gregor::cluster::run(args),
        Command::Groups(args) => gregor::cli::groups::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
