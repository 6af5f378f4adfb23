//! Authorization with Kafka's ACL model (`AclAuthorizer`, ZooKeeper mode): the
//! vocabulary (`model`), the decision over a cache of every ACL (`authorizer`), the
//! znode layout and JSON (`znode`) and the ZooKeeper I/O that keeps the cache current
//! (`store`).

pub mod authorizer;
pub mod model;
pub mod store;
pub mod znode;

pub use authorizer::{Authorizer, AuthorizerConfig};
pub use model::*;
