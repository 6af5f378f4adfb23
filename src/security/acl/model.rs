//! Kafka's ACL vocabulary (`org.apache.kafka.common.acl` / `.resource`): resource and
//! pattern types, operations, permissions, bindings and the filters DescribeAcls and
//! DeleteAcls match with. Wire codes and names are Kafka's.

use std::fmt;

use crate::security::KafkaPrincipal;

/// The only name a Cluster resource has (`Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The literal resource name that matches every resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// The host that matches every client address.
pub const WILDCARD_HOST: &str = "*";

/// Declares a Kafka enum with its wire code, its Kafka name (upper case, as `toString`)
/// and the Pascal-case name ZooKeeper paths and JSON use (`SecurityUtils`).
macro_rules! kafka_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal, $upper:literal, $pascal:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant),*];

            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// `None` for a code Kafka does not define (clients see it as UNKNOWN).
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// The Pascal-case name (`Topic`, `DescribeConfigs`, `Allow`).
            pub fn pascal(self) -> &'static str {
                match self { $($name::$variant => $pascal),* }
            }

            /// Parses either spelling, ignoring case and `_`, as Kafka's `fromString`
            /// and `SecurityUtils` accept both `DESCRIBE_CONFIGS` and `DescribeConfigs`.
            pub fn parse(s: &str) -> Option<$name> {
                let wanted: String = s.chars().filter(|c| *c != '_').collect::<String>().to_ascii_lowercase();
                Self::ALL_VALUES.iter().copied().find(|v| v.pascal().to_ascii_lowercase() == wanted)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($name::$variant => $upper),* })
            }
        }
    };
}

kafka_enum!(
    /// `ResourceType`; `Any` only in filters.
    ResourceType {
        Any = 1, "ANY", "Any";
        Topic = 2, "TOPIC", "Topic";
        Group = 3, "GROUP", "Group";
        Cluster = 4, "CLUSTER", "Cluster";
        TransactionalId = 5, "TRANSACTIONAL_ID", "TransactionalId";
        DelegationToken = 6, "DELEGATION_TOKEN", "DelegationToken";
        User = 7, "USER", "User";
    }
);

kafka_enum!(
    /// `PatternType`; `Any` and `Match` only in filters.
    PatternType {
        Any = 1, "ANY", "Any";
        Match = 2, "MATCH", "Match";
        Literal = 3, "LITERAL", "Literal";
        Prefixed = 4, "PREFIXED", "Prefixed";
    }
);

kafka_enum!(
    /// `AclOperation`; `Any` only in filters.
    AclOperation {
        Any = 1, "ANY", "Any";
        All = 2, "ALL", "All";
        Read = 3, "READ", "Read";
        Write = 4, "WRITE", "Write";
        Create = 5, "CREATE", "Create";
        Delete = 6, "DELETE", "Delete";
        Alter = 7, "ALTER", "Alter";
        Describe = 8, "DESCRIBE", "Describe";
        ClusterAction = 9, "CLUSTER_ACTION", "ClusterAction";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS", "DescribeConfigs";
        AlterConfigs = 11, "ALTER_CONFIGS", "AlterConfigs";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE", "IdempotentWrite";
        CreateTokens = 13, "CREATE_TOKENS", "CreateTokens";
        DescribeTokens = 14, "DESCRIBE_TOKENS", "DescribeTokens";
    }
);

kafka_enum!(
    /// `AclPermissionType`; `Any` only in filters.
    PermissionType {
        Any = 1, "ANY", "Any";
        Deny = 2, "DENY", "Deny";
        Allow = 3, "ALLOW", "Allow";
    }
);

impl ResourceType {
    /// The operations Kafka reports in `authorized_operations` for this type
    /// (`AclEntry.supportedOperations`).
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Any => &[],
        }
    }
}

impl AclOperation {
    /// The operations whose ALLOW also allows `self`: READ, WRITE, DELETE and ALTER
    /// imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS (Kafka's `AclOperation`
    /// javadoc, applied in `AclAuthorizer.authorizeAction`). Deny is never implied.
    pub fn allowed_by(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            Describe => &[Describe, Read, Write, Delete, Alter],
            DescribeConfigs => &[DescribeConfigs, AlterConfigs],
            Read => &[Read],
            Write => &[Write],
            Create => &[Create],
            Delete => &[Delete],
            Alter => &[Alter],
            ClusterAction => &[ClusterAction],
            AlterConfigs => &[AlterConfigs],
            IdempotentWrite => &[IdempotentWrite],
            CreateTokens => &[CreateTokens],
            DescribeTokens => &[DescribeTokens],
            All => &[All],
            Any => &[],
        }
    }
}

/// A resource pattern an ACL is attached to (`ResourcePattern`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

impl ResourcePattern {
    pub fn new(
        resource_type: ResourceType,
        name: impl Into<String>,
        pattern_type: PatternType,
    ) -> Self {
        ResourcePattern {
            resource_type,
            name: name.into(),
            pattern_type,
        }
    }

    pub fn literal(resource_type: ResourceType, name: impl Into<String>) -> Self {
        Self::new(resource_type, name, PatternType::Literal)
    }
}

/// One access control entry (`AccessControlEntry`): who, from where, what, allow/deny.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclEntry {
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

impl AclEntry {
    pub fn new(
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission: PermissionType,
    ) -> Self {
        AclEntry {
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        }
    }

    /// Whether this entry speaks about `principal` (exactly, or `User:*`).
    fn names(&self, principal: &str) -> bool {
        self.principal == principal || self.principal == "User:*"
    }

    /// Whether this entry decides `operation` with `permission` for `principal` at
    /// `host` (`AclAuthorizer.matchingAclExists`).
    pub fn applies(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission: PermissionType,
    ) -> bool {
        self.permission == permission
            && self.names(principal)
            && (self.operation == operation || self.operation == AclOperation::All)
            && (self.host == host || self.host == WILDCARD_HOST)
    }
}

/// An ACL as the APIs see it: a pattern and an entry (`AclBinding`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AclEntry,
}

/// Why an ACL cannot be stored (CreateAcls answers INVALID_REQUEST with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAcl {
    #[error("ACL binding contains unknown or filter-only elements")]
    Unknown,
    #[error("The only valid name for the CLUSTER resource is {CLUSTER_NAME}")]
    ClusterName,
    #[error("Invalid empty resource name")]
    EmptyName,
    #[error("ACL binding contains invalid resource name: {0}")]
    Slash(String),
    #[error("Invalid principal {0}: expected Type:name")]
    Principal(String),
}

impl AclBinding {
    /// Builds a binding from wire codes, as CreateAcls carries them, with the checks
    /// Kafka makes before storing (`AclApis.handleCreateAcls`,
    /// `AclAuthorizer.validateAclBinding`): no ANY/MATCH/unknown element, the Cluster's
    /// only name, no empty name, no '/' (it is a ZooKeeper path component).
    pub fn from_wire(
        resource_type: i8,
        name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, InvalidAcl> {
        let resource_type = ResourceType::from_code(resource_type)
            .filter(|t| *t != ResourceType::Any)
            .ok_or(InvalidAcl::Unknown)?;
        let pattern_type = PatternType::from_code(pattern_type)
            .filter(|p| matches!(p, PatternType::Literal | PatternType::Prefixed))
            .ok_or(InvalidAcl::Unknown)?;
        let operation = AclOperation::from_code(operation)
            .filter(|o| *o != AclOperation::Any)
            .ok_or(InvalidAcl::Unknown)?;
        let permission = PermissionType::from_code(permission)
            .filter(|p| *p != PermissionType::Any)
            .ok_or(InvalidAcl::Unknown)?;
        if resource_type == ResourceType::Cluster && name != CLUSTER_NAME {
            return Err(InvalidAcl::ClusterName);
        }
        if name.is_empty() {
            return Err(InvalidAcl::EmptyName);
        }
        if name.contains('/') {
            return Err(InvalidAcl::Slash(name.to_string()));
        }
        if KafkaPrincipal::parse(principal).is_none() {
            return Err(InvalidAcl::Principal(principal.to_string()));
        }
        Ok(AclBinding {
            pattern: ResourcePattern::new(resource_type, name, pattern_type),
            entry: AclEntry::new(principal, host, operation, permission),
        })
    }
}

/// `ResourcePatternFilter`: `name == None` matches any name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
}

impl PatternFilter {
    /// Kafka's `ResourcePatternFilter.matches`. MATCH finds every pattern that would
    /// apply to the named resource: the literal name, the literal `*`, and prefixes of it.
    pub fn matches(&self, p: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != p.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != p.pattern_type
        {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == p.pattern_type {
            return *name == p.name;
        }
        match p.pattern_type {
            PatternType::Literal => *name == p.name || p.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(&p.name),
            PatternType::Any | PatternType::Match => false,
        }
    }

    /// The exact patterns this filter can name without scanning the cache
    /// (`matchesAtMostOne` + `filterToResources`): DeleteAcls must reach an ACL stored
    /// by another broker that this one has not heard of yet.
    pub fn exact_patterns(&self) -> Vec<ResourcePattern> {
        let Some(name) = &self.name else {
            return Vec::new();
        };
        if self.resource_type == ResourceType::Any {
            return Vec::new();
        }
        let of = |pt| ResourcePattern::new(self.resource_type, name.clone(), pt);
        match self.pattern_type {
            PatternType::Literal | PatternType::Prefixed => vec![of(self.pattern_type)],
            PatternType::Any => vec![of(PatternType::Literal), of(PatternType::Prefixed)],
            PatternType::Match => Vec::new(),
        }
    }
}

/// `AccessControlEntryFilter`: `None` principal/host match any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFilter {
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

impl EntryFilter {
    pub fn matches(&self, e: &AclEntry) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == e.principal)
            && self.host.as_ref().is_none_or(|h| *h == e.host)
            && (self.operation == AclOperation::Any || self.operation == e.operation)
            && (self.permission == PermissionType::Any || self.permission == e.permission)
    }
}

/// `AclBindingFilter`, as DescribeAcls and DeleteAcls carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub pattern: PatternFilter,
    pub entry: EntryFilter,
}

impl AclFilter {
    /// Builds a filter from wire codes; an unknown code is a bad filter (INVALID_REQUEST).
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Option<AclFilter> {
        Some(AclFilter {
            pattern: PatternFilter {
                resource_type: ResourceType::from_code(resource_type)?,
                name: name.map(str::to_string),
                pattern_type: PatternType::from_code(pattern_type)?,
            },
            entry: EntryFilter {
                principal: principal.map(str::to_string),
                host: host.map(str::to_string),
                operation: AclOperation::from_code(operation)?,
                permission: PermissionType::from_code(permission)?,
            },
        })
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        self.pattern.matches(&b.pattern) && self.entry.matches(&b.entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(rt: ResourceType, name: Option<&str>, pt: PatternType) -> PatternFilter {
        PatternFilter {
            resource_type: rt,
            name: name.map(str::to_string),
            pattern_type: pt,
        }
    }

    #[test]
    fn codes_and_names_are_kafkas() {
        assert_eq!(ResourceType::Topic.code(), 2);
        assert_eq!(ResourceType::TransactionalId.pascal(), "TransactionalId");
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(AclOperation::IdempotentWrite.code(), 12);
        assert_eq!(PermissionType::Allow.code(), 3);
        assert_eq!(
            AclOperation::parse("DESCRIBE_CONFIGS"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(
            AclOperation::parse("describeconfigs"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(ResourceType::parse("transactional-id"), None);
        assert_eq!(ResourceType::from_code(0), None);
        assert_eq!(AclOperation::ClusterAction.to_string(), "CLUSTER_ACTION");
        for op in AclOperation::ALL_VALUES {
            assert_eq!(AclOperation::from_code(op.code()), Some(*op));
            assert_eq!(AclOperation::parse(op.pascal()), Some(*op));
        }
    }

    #[test]
    fn literal_filter_matches_only_its_name() {
        let f = pf(ResourceType::Topic, Some("foo"), PatternType::Literal);
        assert!(f.matches(&ResourcePattern::literal(ResourceType::Topic, "foo")));
        assert!(!f.matches(&ResourcePattern::literal(ResourceType::Topic, "*")));
        assert!(!f.matches(&ResourcePattern::new(
            ResourceType::Topic,
            "foo",
            PatternType::Prefixed
        )));
        assert!(!f.matches(&ResourcePattern::literal(ResourceType::Group, "foo")));
    }

    #[test]
    fn match_filter_finds_everything_that_applies() {
        let f = pf(ResourceType::Topic, Some("foo-bar"), PatternType::Match);
        assert!(f.matches(&ResourcePattern::literal(ResourceType::Topic, "foo-bar")));
        assert!(f.matches(&ResourcePattern::literal(ResourceType::Topic, "*")));
        assert!(f.matches(&ResourcePattern::new(
            ResourceType::Topic,
            "foo",
            PatternType::Prefixed
        )));
        assert!(f.matches(&ResourcePattern::new(
            ResourceType::Topic,
            "foo-bar",
            PatternType::Prefixed
        )));
        assert!(!f.matches(&ResourcePattern::new(
            ResourceType::Topic,
            "foo-bar-baz",
            PatternType::Prefixed
        )));
        assert!(!f.matches(&ResourcePattern::literal(ResourceType::Topic, "foo")));
        assert!(f.exact_patterns().is_empty());
    }

    #[test]
    fn any_filter_matches_the_name_exactly_in_both_pattern_types() {
        let f = pf(ResourceType::Any, Some("foo"), PatternType::Any);
        assert!(f.matches(&ResourcePattern::literal(ResourceType::Group, "foo")));
        assert!(f.matches(&ResourcePattern::new(
            ResourceType::Topic,
            "foo",
            PatternType::Prefixed
        )));
        assert!(!f.matches(&ResourcePattern::literal(ResourceType::Topic, "*")));
        assert!(!f.matches(&ResourcePattern::new(
            ResourceType::Topic,
            "f",
            PatternType::Prefixed
        )));
        let f = pf(ResourceType::Topic, None, PatternType::Any);
        assert!(f.matches(&ResourcePattern::literal(ResourceType::Topic, "x")));
        let f = pf(ResourceType::Topic, Some("x"), PatternType::Any);
        assert_eq!(f.exact_patterns().len(), 2);
    }

    #[test]
    fn entry_filter_and_binding_validation() {
        let e = AclEntry::new("User:alice", "*", AclOperation::Read, PermissionType::Allow);
        let any = EntryFilter {
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: PermissionType::Any,
        };
        assert!(any.matches(&e));
        let bob = EntryFilter {
            principal: Some("User:bob".into()),
            ..any.clone()
        };
        assert!(!bob.matches(&e));
        let deny = EntryFilter {
            permission: PermissionType::Deny,
            ..any
        };
        assert!(!deny.matches(&e));

        let ok = AclBinding::from_wire(2, "t", 3, "User:alice", "*", 3, 3).unwrap();
        assert_eq!(
            ok.pattern,
            ResourcePattern::literal(ResourceType::Topic, "t")
        );
        assert_eq!(
            AclBinding::from_wire(2, "t", 2, "User:a", "*", 3, 3),
            Err(InvalidAcl::Unknown)
        );
        assert_eq!(
            AclBinding::from_wire(1, "t", 3, "User:a", "*", 3, 3),
            Err(InvalidAcl::Unknown)
        );
        assert_eq!(
            AclBinding::from_wire(2, "t", 3, "User:a", "*", 1, 3),
            Err(InvalidAcl::Unknown)
        );
        assert_eq!(
            AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 0),
            Err(InvalidAcl::Unknown)
        );
        assert_eq!(
            AclBinding::from_wire(4, "c", 3, "User:a", "*", 3, 3),
            Err(InvalidAcl::ClusterName)
        );
        assert_eq!(
            AclBinding::from_wire(2, "", 3, "User:a", "*", 3, 3),
            Err(InvalidAcl::EmptyName)
        );
        assert!(matches!(
            AclBinding::from_wire(2, "a/b", 3, "User:a", "*", 3, 3),
            Err(InvalidAcl::Slash(_))
        ));
        assert!(matches!(
            AclBinding::from_wire(2, "t", 3, "alice", "*", 3, 3),
            Err(InvalidAcl::Principal(_))
        ));
    }
}
