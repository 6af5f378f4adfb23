//! Security: who a connection is and what it may do.
//!
//! A connection's [`KafkaPrincipal`] is fixed by its listener's security protocol: the
//! client certificate's name on SSL with client auth, the SASL user on SASL_*, and
//! `User:ANONYMOUS` otherwise (Kafka's `DefaultKafkaPrincipalBuilder`). Handlers see it in
//! `RequestContext` and ask the authorizer about it.

pub mod acl;
pub mod principal;

pub use principal::KafkaPrincipal;
