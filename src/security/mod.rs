//! Security: who a connection is and what it may do.
//!
//! A connection's [`KafkaPrincipal`] is fixed by its listener's security protocol: the
//! client certificate's name on SSL with client auth, the SASL user on SASL_*, and
//! `User:ANONYMOUS` otherwise (Kafka's `DefaultKafkaPrincipalBuilder`). Handlers see it in
//! `RequestContext` and ask the authorizer about it.

pub mod acl;
pub mod certs;
pub mod config;
pub mod credentials;
pub mod dn;
pub mod listener;
pub mod mapping;
pub mod principal;
pub mod protocol;
pub mod sasl;
pub mod tls;

pub use principal::KafkaPrincipal;
pub use protocol::SecurityProtocol;
