//! Kafka's ZooKeeper layout and JSON for ACLs (ZooKeeper mode, `kafka.zk.ZkData`), so a
//! Kafka tool reading or writing the znodes and gregor agree:
//!
//! - literal patterns: `/kafka-acl/<ResourceType>/<name>`
//! - prefixed patterns: `/kafka-acl-extended/prefixed/<ResourceType>/<name>`
//! - value: `{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow","operation":"Read","host":"*"}]}`
//! - change notifications (persistent sequential `acl_changes_<seq>`): literal ones under
//!   `/kafka-acl-changes` holding `TOPIC:name`, prefixed ones under
//!   `/kafka-acl-extended-changes` holding `{"version":1,"resourceType":"TOPIC","name":…,"patternType":"PREFIXED"}`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::model::*;

pub const LITERAL_ROOT: &str = "/kafka-acl";
pub const PREFIXED_ROOT: &str = "/kafka-acl-extended/prefixed";
pub const LITERAL_CHANGES: &str = "/kafka-acl-changes";
pub const EXTENDED_CHANGES: &str = "/kafka-acl-extended-changes";
pub const CHANGE_PREFIX: &str = "acl_changes_";

/// The ACL root of each stored pattern type.
pub const ROOTS: [(&str, PatternType); 2] = [
    (LITERAL_ROOT, PatternType::Literal),
    (PREFIXED_ROOT, PatternType::Prefixed),
];

pub fn root(pattern_type: PatternType) -> &'static str {
    if pattern_type == PatternType::Prefixed {
        PREFIXED_ROOT
    } else {
        LITERAL_ROOT
    }
}

pub fn resource_path(p: &ResourcePattern) -> String {
    format!(
        "{}/{}/{}",
        root(p.pattern_type),
        p.resource_type.pascal(),
        p.name
    )
}

/// Where a change to `p` is announced.
pub fn change_dir(p: &ResourcePattern) -> &'static str {
    if p.pattern_type == PatternType::Literal {
        LITERAL_CHANGES
    } else {
        EXTENDED_CHANGES
    }
}

#[derive(Serialize, Deserialize)]
struct AclsJson {
    version: i32,
    acls: Vec<EntryJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryJson {
    principal: String,
    permission_type: String,
    operation: String,
    host: String,
}

pub fn encode_acls(entries: &BTreeSet<AclEntry>) -> Vec<u8> {
    let json = AclsJson {
        version: 1,
        acls: entries
            .iter()
            .map(|e| EntryJson {
                principal: e.principal.clone(),
                permission_type: e.permission.pascal().to_string(),
                operation: e.operation.pascal().to_string(),
                host: e.host.clone(),
            })
            .collect(),
    };
    serde_json::to_vec(&json).unwrap_or_default()
}

pub fn decode_acls(data: &[u8]) -> Result<BTreeSet<AclEntry>, String> {
    if data.is_empty() {
        return Ok(BTreeSet::new());
    }
    let json: AclsJson = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    if json.version != 1 {
        return Err(format!("unsupported ACL znode version {}", json.version));
    }
    json.acls
        .into_iter()
        .map(|e| {
            Ok(AclEntry {
                operation: AclOperation::parse(&e.operation)
                    .filter(|o| *o != AclOperation::Any)
                    .ok_or_else(|| format!("unknown operation {}", e.operation))?,
                permission: PermissionType::parse(&e.permission_type)
                    .filter(|p| *p != PermissionType::Any)
                    .ok_or_else(|| format!("unknown permission type {}", e.permission_type))?,
                principal: e.principal,
                host: e.host,
            })
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtendedChangeJson {
    version: i32,
    resource_type: String,
    name: String,
    pattern_type: String,
}

pub fn encode_change(p: &ResourcePattern) -> Vec<u8> {
    if p.pattern_type == PatternType::Literal {
        format!("{}:{}", p.resource_type, p.name).into_bytes()
    } else {
        serde_json::to_vec(&ExtendedChangeJson {
            version: 1,
            resource_type: p.resource_type.to_string(),
            name: p.name.clone(),
            pattern_type: p.pattern_type.to_string(),
        })
        .unwrap_or_default()
    }
}

/// Decodes a notification found under `dir` (literal or extended).
pub fn decode_change(dir: &str, data: &[u8]) -> Option<ResourcePattern> {
    let text = std::str::from_utf8(data).ok()?;
    if dir == LITERAL_CHANGES {
        let (rt, name) = text.split_once(':')?;
        return Some(ResourcePattern::literal(ResourceType::parse(rt)?, name));
    }
    let json: ExtendedChangeJson = serde_json::from_str(text).ok()?;
    let pattern_type = PatternType::parse(&json.pattern_type)?;
    if json.version > 1 || !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return None;
    }
    Some(ResourcePattern::new(
        ResourceType::parse(&json.resource_type)?,
        json.name,
        pattern_type,
    ))
}

/// The sequence number of a notification child (`acl_changes_0000000012` → 12).
pub fn change_seq(child: &str) -> Option<u64> {
    child.strip_prefix(CHANGE_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_json_round_trips() {
        // Written by Kafka 3.9's AclAuthorizer (kafka-acls --add ...).
        let kafka = br#"{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow","operation":"Read","host":"*"},{"principal":"User:*","permissionType":"Deny","operation":"DescribeConfigs","host":"10.0.0.1"}]}"#;
        let entries = decode_acls(kafka).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries.contains(&AclEntry::new(
            "User:alice",
            "*",
            AclOperation::Read,
            PermissionType::Allow
        )));
        assert!(entries.contains(&AclEntry::new(
            "User:*",
            "10.0.0.1",
            AclOperation::DescribeConfigs,
            PermissionType::Deny
        )));
        assert_eq!(decode_acls(&encode_acls(&entries)).unwrap(), entries);
        let text = String::from_utf8(encode_acls(&entries)).unwrap();
        assert!(text.contains(r#""permissionType":"Allow""#), "{text}");
        assert!(decode_acls(br#"{"version":2,"acls":[]}"#).is_err());
        assert!(decode_acls(br#"{"version":1,"acls":[{"principal":"User:a","permissionType":"Allow","operation":"Fly","host":"*"}]}"#).is_err());
    }

    #[test]
    fn paths_and_change_events_are_kafkas() {
        let lit = ResourcePattern::literal(ResourceType::TransactionalId, "tx");
        let pre = ResourcePattern::new(ResourceType::Topic, "logs-", PatternType::Prefixed);
        assert_eq!(resource_path(&lit), "/kafka-acl/TransactionalId/tx");
        assert_eq!(
            resource_path(&pre),
            "/kafka-acl-extended/prefixed/Topic/logs-"
        );
        assert_eq!(encode_change(&lit), b"TRANSACTIONAL_ID:tx");
        assert_eq!(
            decode_change(LITERAL_CHANGES, b"TRANSACTIONAL_ID:tx"),
            Some(lit)
        );
        let ev = encode_change(&pre);
        assert_eq!(
            String::from_utf8(ev.clone()).unwrap(),
            r#"{"version":1,"resourceType":"TOPIC","name":"logs-","patternType":"PREFIXED"}"#
        );
        assert_eq!(decode_change(EXTENDED_CHANGES, &ev), Some(pre));
        assert_eq!(decode_change(LITERAL_CHANGES, b"garbage"), None);
        assert_eq!(change_seq("acl_changes_0000000012"), Some(12));
        assert_eq!(change_seq("other"), None);
    }
}
