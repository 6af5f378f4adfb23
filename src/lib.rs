//! gregor: a Kafka-wire-compatible streaming broker and its mini-zookeeper.
//!
//! See `../shared/DESIGN.md` for the architecture; each module owns one concept.

pub mod admin;
pub mod api;
pub mod broker;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console;
pub mod controller;
pub mod coordination;
pub mod coordinator;
pub mod fetch_session;
pub mod group;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod replica;
pub mod security;
pub mod storage;
pub mod sync;
pub mod tasks;
pub mod txn;
pub mod zookeeper;
