//! Kafka's `AclAuthorizer` decision, over an in-memory cache of every ACL.
//!
//! `authorize(principal, host, op, resource)`: a super user is always allowed; else the
//! ACLs that apply to the resource are its literal name's, its type's literal `*`, and
//! every prefixed pattern the name starts with. None at all → `allow.everyone.if.no.acl.found`.
//! Otherwise a matching DENY wins; then a matching ALLOW (of the operation or one that
//! implies it) allows; nothing matching denies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use super::model::*;
use crate::security::KafkaPrincipal;

/// Every ACL, by resource pattern (an empty set is never stored).
pub type AclMap = BTreeMap<ResourcePattern, BTreeSet<AclEntry>>;

/// The authorizer's static settings (`super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    pub super_users: BTreeSet<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Parses `super.users`: principals separated by ';' (`User:admin;User:broker`).
    pub fn parse_super_users(value: &str) -> Result<BTreeSet<String>, String> {
        value
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                KafkaPrincipal::parse(s)
                    .map(|p| p.to_string())
                    .ok_or_else(|| format!("`{s}` is not a principal (expected Type:name)"))
            })
            .collect()
    }
}

/// The ACL authorizer: settings plus the cache the ZooKeeper store keeps current.
#[derive(Debug)]
pub struct Authorizer {
    config: AuthorizerConfig,
    /// Replaced whole on every change, so a decision reads one consistent snapshot.
    cache: RwLock<Arc<AclMap>>,
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig) -> Self {
        Authorizer {
            config,
            cache: RwLock::new(Arc::new(AclMap::new())),
        }
    }

    pub fn snapshot(&self) -> Arc<AclMap> {
        crate::sync::read(&self.cache).clone()
    }

    /// Replaces the whole cache (a full load from ZooKeeper).
    pub fn replace_all(&self, acls: AclMap) {
        *crate::sync::write(&self.cache) = Arc::new(acls);
    }

    /// Sets the ACLs of one pattern (empty: the pattern has none left).
    pub fn set_resource(&self, pattern: ResourcePattern, entries: BTreeSet<AclEntry>) {
        let mut guard = crate::sync::write(&self.cache);
        let mut next = (**guard).clone();
        if entries.is_empty() {
            next.remove(&pattern);
        } else {
            next.insert(pattern, entries);
        }
        *guard = Arc::new(next);
    }

    pub fn is_super_user(&self, principal: &KafkaPrincipal) -> bool {
        self.config.super_users.contains(&principal.to_string())
    }

    /// Kafka's `AclAuthorizer.authorizeAction` for a literal resource.
    pub fn authorize(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let cache = self.snapshot();
        let acls = matching_acls(&cache, resource_type, name);
        if acls.is_empty() {
            return self.config.allow_everyone_if_no_acl_found;
        }
        decide(&acls, &principal.to_string(), host, operation)
    }

    /// Kafka's `authorizeByResourceType`: may the principal do `op` on at least one
    /// resource of `resource_type`? (InitProducerId without a transactional id needs
    /// Cluster IDEMPOTENT_WRITE or WRITE on some topic, KIP-679.) Implied operations
    /// do not count here, as in Kafka.
    pub fn authorize_any(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let cache = self.snapshot();
        let names = |permission, pattern_type| -> BTreeSet<&str> {
            let who = principal.to_string();
            cache
                .iter()
                .filter(|(p, _)| p.resource_type == resource_type && p.pattern_type == pattern_type)
                .filter(|(_, entries)| {
                    entries
                        .iter()
                        .any(|e| e.applies(&who, host, op, permission))
                })
                .map(|(p, _)| p.name.as_str())
                .collect()
        };
        let deny_literal = names(PermissionType::Deny, PatternType::Literal);
        if deny_literal.contains(WILDCARD_RESOURCE) {
            return false;
        }
        if self.config.allow_everyone_if_no_acl_found {
            return true;
        }
        let deny_prefixed = names(PermissionType::Deny, PatternType::Prefixed);
        let allow_literal = names(PermissionType::Allow, PatternType::Literal);
        let allow_prefixed = names(PermissionType::Allow, PatternType::Prefixed);
        let dominated = |name: &str| {
            name.char_indices()
                .map(|(i, c)| &name[..i + c.len_utf8()])
                .any(|prefix| deny_prefixed.contains(prefix))
        };
        allow_prefixed.iter().any(|p| !dominated(p))
            || allow_literal
                .iter()
                .any(|l| *l == WILDCARD_RESOURCE || (!deny_literal.contains(l) && !dominated(l)))
    }

    /// The `authorized_operations` bit field for a resource (Metadata, DescribeGroups,
    /// DescribeCluster): bit `1 << code` for each supported operation allowed.
    pub fn authorized_operations(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        resource_type
            .supported_operations()
            .iter()
            .filter(|op| self.authorize(principal, host, **op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// Every binding `filter` matches (DescribeAcls), in a stable order.
    pub fn acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.snapshot()
            .iter()
            .flat_map(|(pattern, entries)| {
                entries.iter().map(move |entry| AclBinding {
                    pattern: pattern.clone(),
                    entry: entry.clone(),
                })
            })
            .filter(|b| filter.matches(b))
            .collect()
    }
}

/// The ACLs that apply to the literal resource `name` (`AclAuthorizer.matchingAcls`).
pub fn matching_acls<'a>(
    cache: &'a AclMap,
    resource_type: ResourceType,
    name: &str,
) -> Vec<&'a AclEntry> {
    let mut out = Vec::new();
    for n in [WILDCARD_RESOURCE, name] {
        if let Some(set) = cache.get(&ResourcePattern::literal(resource_type, n)) {
            out.extend(set.iter());
        }
        if name == WILDCARD_RESOURCE {
            break;
        }
    }
    // Prefixed patterns are the prefixes of `name`: each one is a direct lookup, so the
    // cost is the name's length, not the cache's size.
    for (end, _) in name
        .char_indices()
        .skip(1)
        .chain(std::iter::once((name.len(), ' ')))
    {
        let prefix = &name[..end];
        if let Some(set) = cache.get(&ResourcePattern::new(
            resource_type,
            prefix,
            PatternType::Prefixed,
        )) {
            out.extend(set.iter());
        }
    }
    out
}

/// DENY wins; else an ALLOW of the operation or of one implying it.
fn decide(acls: &[&AclEntry], principal: &str, host: &str, operation: AclOperation) -> bool {
    let denied = acls
        .iter()
        .any(|a| a.applies(principal, host, operation, PermissionType::Deny));
    if denied {
        return false;
    }
    operation.allowed_by().iter().any(|op| {
        acls.iter()
            .any(|a| a.applies(principal, host, *op, PermissionType::Allow))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const TOPIC: ResourceType = ResourceType::Topic;

    fn authz(acls: &[(ResourcePattern, AclEntry)]) -> Authorizer {
        let a = Authorizer::new(AuthorizerConfig {
            super_users: AuthorizerConfig::parse_super_users("User:admin; User:broker").unwrap(),
            allow_everyone_if_no_acl_found: false,
        });
        let mut map = AclMap::new();
        for (p, e) in acls {
            map.entry(p.clone()).or_default().insert(e.clone());
        }
        a.replace_all(map);
        a
    }

    fn allow(p: &str, op: AclOperation) -> AclEntry {
        AclEntry::new(p, "*", op, PermissionType::Allow)
    }
    fn deny(p: &str, op: AclOperation) -> AclEntry {
        AclEntry::new(p, "*", op, PermissionType::Deny)
    }
    fn lit(name: &str) -> ResourcePattern {
        ResourcePattern::literal(TOPIC, name)
    }
    fn pre(name: &str) -> ResourcePattern {
        ResourcePattern::new(TOPIC, name, PatternType::Prefixed)
    }
    fn user(n: &str) -> KafkaPrincipal {
        KafkaPrincipal::user(n)
    }

    #[test]
    fn super_users_and_no_acl_default() {
        let a = authz(&[]);
        assert!(a.authorize(&user("admin"), "1.2.3.4", AclOperation::Delete, TOPIC, "t"));
        assert!(a.authorize(
            &user("broker"),
            "1.2.3.4",
            AclOperation::ClusterAction,
            ResourceType::Cluster,
            CLUSTER_NAME
        ));
        assert!(!a.authorize(&user("alice"), "1.2.3.4", AclOperation::Read, TOPIC, "t"));
        let open = Authorizer::new(AuthorizerConfig {
            super_users: BTreeSet::new(),
            allow_everyone_if_no_acl_found: true,
        });
        assert!(open.authorize(&user("alice"), "h", AclOperation::Read, TOPIC, "t"));
        // An ACL for someone else on the resource means "ACLs found": alice is denied.
        open.set_resource(lit("t"), [allow("User:bob", AclOperation::Read)].into());
        assert!(!open.authorize(&user("alice"), "h", AclOperation::Read, TOPIC, "t"));
        assert!(open.authorize(&user("alice"), "h", AclOperation::Read, TOPIC, "other"));
        assert!(AuthorizerConfig::parse_super_users("admin").is_err());
    }

    #[test]
    fn literal_wildcard_and_prefixed_patterns_apply() {
        let a = authz(&[
            (lit("orders"), allow("User:alice", AclOperation::Read)),
            (lit("*"), allow("User:bob", AclOperation::Write)),
            (pre("logs-"), allow("User:carol", AclOperation::Read)),
        ]);
        assert!(a.authorize(&user("alice"), "h", AclOperation::Read, TOPIC, "orders"));
        assert!(!a.authorize(&user("alice"), "h", AclOperation::Read, TOPIC, "orders2"));
        assert!(a.authorize(&user("bob"), "h", AclOperation::Write, TOPIC, "anything"));
        assert!(a.authorize(&user("carol"), "h", AclOperation::Read, TOPIC, "logs-app"));
        assert!(a.authorize(&user("carol"), "h", AclOperation::Read, TOPIC, "logs-"));
        assert!(!a.authorize(&user("carol"), "h", AclOperation::Read, TOPIC, "logs"));
        assert!(!a.authorize(
            &user("carol"),
            "h",
            AclOperation::Read,
            ResourceType::Group,
            "logs-app"
        ));
    }

    #[test]
    fn deny_wins_over_allow_from_any_pattern() {
        let a = authz(&[
            (lit("*"), allow("User:*", AclOperation::All)),
            (pre("secret-"), deny("User:alice", AclOperation::Read)),
            (lit("public"), deny("User:*", AclOperation::Write)),
        ]);
        assert!(a.authorize(&user("alice"), "h", AclOperation::Read, TOPIC, "x"));
        assert!(!a.authorize(&user("alice"), "h", AclOperation::Read, TOPIC, "secret-1"));
        assert!(a.authorize(&user("bob"), "h", AclOperation::Read, TOPIC, "secret-1"));
        assert!(a.authorize(&user("alice"), "h", AclOperation::Write, TOPIC, "secret-1"));
        assert!(!a.authorize(&user("bob"), "h", AclOperation::Write, TOPIC, "public"));
        // Super users ignore even DENY.
        assert!(a.authorize(&user("admin"), "h", AclOperation::Write, TOPIC, "public"));
    }

    #[test]
    fn implied_operations_allow_but_never_deny() {
        let a = authz(&[
            (lit("t"), allow("User:alice", AclOperation::Write)),
            (lit("t"), allow("User:bob", AclOperation::AlterConfigs)),
            (lit("t"), deny("User:carol", AclOperation::Read)),
            (lit("t"), allow("User:carol", AclOperation::Describe)),
        ]);
        assert!(a.authorize(&user("alice"), "h", AclOperation::Describe, TOPIC, "t"));
        assert!(!a.authorize(&user("alice"), "h", AclOperation::Read, TOPIC, "t"));
        assert!(a.authorize(&user("bob"), "h", AclOperation::DescribeConfigs, TOPIC, "t"));
        assert!(!a.authorize(&user("bob"), "h", AclOperation::Describe, TOPIC, "t"));
        // DENY READ does not deny DESCRIBE.
        assert!(a.authorize(&user("carol"), "h", AclOperation::Describe, TOPIC, "t"));
        assert!(!a.authorize(&user("carol"), "h", AclOperation::Read, TOPIC, "t"));
    }

    #[test]
    fn hosts_match_exactly_or_by_wildcard() {
        let a = authz(&[
            (
                lit("t"),
                AclEntry::new(
                    "User:alice",
                    "10.0.0.1",
                    AclOperation::Read,
                    PermissionType::Allow,
                ),
            ),
            (
                lit("t"),
                AclEntry::new(
                    "User:*",
                    "10.0.0.9",
                    AclOperation::All,
                    PermissionType::Deny,
                ),
            ),
            (lit("t"), allow("User:bob", AclOperation::Read)),
        ]);
        assert!(a.authorize(&user("alice"), "10.0.0.1", AclOperation::Read, TOPIC, "t"));
        assert!(!a.authorize(&user("alice"), "10.0.0.2", AclOperation::Read, TOPIC, "t"));
        assert!(a.authorize(&user("bob"), "10.0.0.2", AclOperation::Read, TOPIC, "t"));
        assert!(!a.authorize(&user("bob"), "10.0.0.9", AclOperation::Read, TOPIC, "t"));
    }

    #[test]
    fn authorize_any_follows_kafkas_by_resource_type_rule() {
        let w = AclOperation::Write;
        assert!(!authz(&[]).authorize_any(&user("alice"), "h", w, TOPIC));
        assert!(authz(&[]).authorize_any(&user("admin"), "h", w, TOPIC));
        let a = authz(&[(lit("t"), allow("User:alice", w))]);
        assert!(a.authorize_any(&user("alice"), "h", w, TOPIC));
        assert!(!a.authorize_any(&user("bob"), "h", w, TOPIC));
        assert!(!a.authorize_any(&user("alice"), "h", AclOperation::Read, TOPIC));
        // A literal deny of the same name, or a dominating prefixed deny, cancels it.
        let a = authz(&[
            (lit("t"), allow("User:alice", w)),
            (lit("t"), deny("User:alice", w)),
        ]);
        assert!(!a.authorize_any(&user("alice"), "h", w, TOPIC));
        let a = authz(&[
            (pre("logs-app"), allow("User:alice", w)),
            (pre("logs"), deny("User:*", w)),
        ]);
        assert!(!a.authorize_any(&user("alice"), "h", w, TOPIC));
        let a = authz(&[
            (pre("logs"), allow("User:alice", w)),
            (pre("logs-app"), deny("User:*", w)),
        ]);
        assert!(a.authorize_any(&user("alice"), "h", w, TOPIC));
        let a = authz(&[
            (lit("t"), allow("User:alice", AclOperation::All)),
            (lit("*"), deny("User:alice", w)),
        ]);
        assert!(!a.authorize_any(&user("alice"), "h", w, TOPIC));
    }

    #[test]
    fn authorized_operations_bits() {
        let a = authz(&[(lit("t"), allow("User:alice", AclOperation::Read))]);
        let bits = a.authorized_operations(&user("alice"), "h", TOPIC, "t");
        assert_eq!(bits, (1 << 3) | (1 << 8)); // READ and the DESCRIBE it implies
        assert_eq!(a.authorized_operations(&user("bob"), "h", TOPIC, "t"), 0);
    }

    #[test]
    fn describe_filter_over_cache() {
        let a = authz(&[
            (lit("t"), allow("User:alice", AclOperation::Read)),
            (pre("t"), allow("User:bob", AclOperation::Read)),
            (
                ResourcePattern::literal(ResourceType::Group, "g"),
                allow("User:alice", AclOperation::Read),
            ),
        ]);
        let f = AclFilter::from_wire(1, None, 1, Some("User:alice"), None, 1, 1).unwrap();
        assert_eq!(a.acls(&f).len(), 2);
        let f = AclFilter::from_wire(2, Some("tx"), 2, None, None, 1, 1).unwrap();
        assert_eq!(a.acls(&f).len(), 1, "MATCH tx finds the prefixed t only");
    }

    /// A reference model of the rule, evaluated by brute force over every stored ACL,
    /// checked against `authorize` on random ACL sets (a hand-rolled property test).
    #[test]
    fn random_acl_sets_agree_with_the_brute_force_rule() {
        let principals = ["User:alice", "User:bob", "User:*"];
        let hosts = ["*", "10.0.0.1"];
        let names = ["a", "ab", "abc", "*", "b"];
        let ops = [
            AclOperation::Read,
            AclOperation::Write,
            AclOperation::Describe,
            AclOperation::All,
            AclOperation::AlterConfigs,
            AclOperation::DescribeConfigs,
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..400 {
            let n = rng.gen_range(0..6);
            let acls: Vec<(ResourcePattern, AclEntry)> = (0..n)
                .map(|_| {
                    let name = names[rng.gen_range(0..names.len())];
                    let pt = if rng.gen_bool(0.3) && name != "*" {
                        PatternType::Prefixed
                    } else {
                        PatternType::Literal
                    };
                    let perm = if rng.gen_bool(0.3) {
                        PermissionType::Deny
                    } else {
                        PermissionType::Allow
                    };
                    (
                        ResourcePattern::new(TOPIC, name, pt),
                        AclEntry::new(
                            principals[rng.gen_range(0..3)],
                            hosts[rng.gen_range(0..2)],
                            ops[rng.gen_range(0..ops.len())],
                            perm,
                        ),
                    )
                })
                .collect();
            let a = authz(&acls);
            for who in ["alice", "bob"] {
                for host in ["10.0.0.1", "10.0.0.2"] {
                    for op in ops.iter().filter(|o| **o != AclOperation::All) {
                        for name in ["a", "ab", "abc", "b"] {
                            let applies = |p: &ResourcePattern| match p.pattern_type {
                                PatternType::Literal => p.name == name || p.name == "*",
                                _ => name.starts_with(&p.name),
                            };
                            let relevant: Vec<&AclEntry> = acls
                                .iter()
                                .filter(|(p, _)| applies(p))
                                .map(|(_, e)| e)
                                .collect();
                            let principal = format!("User:{who}");
                            let matches = |e: &AclEntry, op: AclOperation| {
                                (e.principal == principal || e.principal == "User:*")
                                    && (e.host == host || e.host == "*")
                                    && (e.operation == op || e.operation == AclOperation::All)
                            };
                            let denied = relevant
                                .iter()
                                .any(|e| e.permission == PermissionType::Deny && matches(e, *op));
                            let allowed = op.allowed_by().iter().any(|o| {
                                relevant.iter().any(|e| {
                                    e.permission == PermissionType::Allow && matches(e, *o)
                                })
                            });
                            let expected = !relevant.is_empty() && !denied && allowed;
                            assert_eq!(
                                a.authorize(&user(who), host, *op, TOPIC, name),
                                expected,
                                "{who}@{host} {op} {name} with {acls:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
