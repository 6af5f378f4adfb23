//! Client-side subcommands of the `gregor` CLI that talk to a cluster over the Kafka
//! protocol.

pub mod groups;
