//! The ZooKeeper ACL of every znode a broker creates, chosen from its path as ZooKeeper-mode
//! Kafka's `ZkData.defaultAcls` does. With `zookeeper.set.acl=false` every znode is
//! `world:anyone` ALL (ZooKeeper's `OPEN_ACL_UNSAFE`). With `zookeeper.set.acl=true` the
//! creator (the `auth` scheme, which ZooKeeper expands to the session's authenticated ids:
//! the brokers' shared digest) has ALL and everyone else READ, except under the sensitive
//! roots (SCRAM credentials, broker configs that may hold passwords, delegation tokens),
//! which the world may not even read.
//!
//! Every create under `coordination`, `broker`, `controller`, `admin` and `group` goes
//! through [`ZnodeAcls::options`], so no znode can be created with an ACL chosen
//! elsewhere.

use zookeeper_client as zk;

/// Roots whose znodes hold secrets: no world access at all (Kafka:
/// `ZkData.SensitiveRootPaths`, matched with `startsWith` as Kafka does).
pub const SENSITIVE_ROOT_PATHS: &[&str] =
    &["/config/users", "/config/brokers", "/delegation_token"];

/// The brokers' digest id ALL, everyone READ (`CREATOR_ALL_ACL ++ READ_ACL_UNSAFE`).
static CREATOR_ALL_WORLD_READ: [zk::Acl; 2] = [
    zk::Acl::new_const(zk::Permission::ALL, "auth", ""),
    zk::Acl::new_const(zk::Permission::READ, "world", "anyone"),
];

/// How the znodes of one broker are protected (`zookeeper.set.acl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZnodeAcls {
    secure: bool,
}

impl ZnodeAcls {
    /// `secure`: the value of `zookeeper.set.acl`.
    pub const fn new(secure: bool) -> ZnodeAcls {
        ZnodeAcls { secure }
    }

    pub const fn is_secure(self) -> bool {
        self.secure
    }

    /// The ACL for a znode at `path` (relative to the chroot, as Kafka's paths are).
    pub fn for_path(self, path: &str) -> zk::Acls<'static> {
        // Kafka leaves `/consumers` (old consumers' offsets) open: `ZkData.defaultAcls`.
        if !self.secure || path == super::consumer_offsets::CONSUMERS_PATH {
            zk::Acls::anyone_all()
        } else if is_sensitive(path) {
            zk::Acls::creator_all()
        } else {
            zk::Acls::new(&CREATOR_ALL_WORLD_READ)
        }
    }

    /// Create options for a znode of `mode` at `path`.
    pub fn options(self, mode: zk::CreateMode, path: &str) -> zk::CreateOptions<'static> {
        mode.with_acls(self.for_path(path))
    }
}

/// Kafka: `ZkData.sensitivePath`.
pub fn is_sensitive(path: &str) -> bool {
    SENSITIVE_ROOT_PATHS
        .iter()
        .any(|root| path.starts_with(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(acls: zk::Acls<'_>) -> Vec<(String, String, String)> {
        acls.iter()
            .map(|a| {
                (
                    a.scheme().to_string(),
                    a.id().to_string(),
                    a.permission().to_string(),
                )
            })
            .collect()
    }

    fn row(scheme: &str, id: &str, perms: &str) -> (String, String, String) {
        (scheme.into(), id.into(), perms.into())
    }

    #[test]
    fn unsecured_znodes_are_open_to_all() {
        let open = ZnodeAcls::new(false);
        for path in [
            "/brokers/ids/1",
            "/config/users/alice",
            "/controller",
            "/kafka",
        ] {
            assert_eq!(
                describe(open.for_path(path)),
                vec![row("world", "anyone", "ALL")],
                "{path}"
            );
        }
    }

    #[test]
    fn secured_znodes_are_creator_all_world_read() {
        let secure = ZnodeAcls::new(true);
        for path in [
            "/kafka",
            "/cluster/id",
            "/brokers",
            "/brokers/ids/1",
            "/brokers/topics/t/partitions/0/state",
            "/controller",
            "/controller_epoch",
            "/config",
            "/config/topics/t",
            "/config/changes/config_change_0000000001",
            "/kafka-acl/Topic/t",
            "/kafka-acl-changes/acl_changes_0000000000",
            "/admin/delete_topics/t",
            // Created by an operator's tool with the brokers' credentials (the world may
            // not write under `/admin`); the controller only rewrites and deletes it.
            "/admin/reassign_partitions",
            "/latest_producer_id_block",
            "/log_dir_event_notification/log_dir_event_0000000000",
        ] {
            assert_eq!(
                describe(secure.for_path(path)),
                vec![row("auth", "", "ALL"), row("world", "anyone", "READ")],
                "{path}"
            );
        }
    }

    #[test]
    fn secured_sensitive_znodes_have_no_world_access() {
        let secure = ZnodeAcls::new(true);
        for path in [
            "/config/users",
            "/config/users/alice",
            "/config/brokers",
            "/config/brokers/1",
            "/config/brokers/<default>",
            "/delegation_token",
            "/delegation_token/tokens/x",
        ] {
            assert!(is_sensitive(path), "{path}");
            assert_eq!(
                describe(secure.for_path(path)),
                vec![row("auth", "", "ALL")],
                "{path}"
            );
        }
        // Siblings and parents of sensitive roots are not sensitive.
        for path in ["/config", "/config/topics/users", "/config/clients/x"] {
            assert!(!is_sensitive(path), "{path}");
        }
    }

    #[test]
    fn options_carry_the_mode_and_the_acl() {
        let secure = ZnodeAcls::new(true);
        let opts = secure.options(zk::CreateMode::Ephemeral, "/brokers/ids/1");
        let debug = format!("{opts:?}");
        assert!(debug.contains("Ephemeral"), "{debug}");
        assert!(debug.contains("anyone"), "{debug}");
    }
}
