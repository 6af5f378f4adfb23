//! `gregor acls add|list|remove`: ACL administration over CreateAcls / DescribeAcls /
//! DeleteAcls, like `kafka-acls --bootstrap-server`. Needs Cluster ALTER (add, remove)
//! or DESCRIBE (list) on a broker with an authorizer.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::{block_on, check, connect};
use crate::security::acl::{AclOperation, PatternType, PermissionType, ResourceType, CLUSTER_NAME};

#[derive(clap::Args, Debug)]
pub struct AclsArgs {
    /// Broker(s) to bootstrap from.
    /// Broker(s) to bootstrap from (default: see `gregor::cli::default_bootstrap`).
    #[arg(long, global = true, default_value_t = super::default_bootstrap())]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: AclsCommand,
}

/// The resource an ACL is about: one of --topic, --group, --cluster, --transactional-id.
#[derive(clap::Args, Debug, Clone)]
pub struct ResourceArgs {
    /// A topic (name, or prefix with --prefixed; `*` for every topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// A consumer group (name, or prefix with --prefixed; `*` for every group).
    #[arg(long)]
    pub group: Option<String>,
    /// The cluster resource (`kafka-cluster`).
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id (name, or prefix with --prefixed).
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// The name is a prefix (PREFIXED pattern) rather than a literal name.
    #[arg(long)]
    pub prefixed: bool,
}

/// Who, from where, what, allow or deny.
#[derive(clap::Args, Debug, Clone)]
pub struct EntryArgs {
    /// `User:alice`, or `User:*` for everyone.
    #[arg(long)]
    pub principal: String,
    /// Client address the ACL applies to (`*`: any).
    #[arg(long, default_value = "*")]
    pub host: String,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
    /// AlterConfigs, IdempotentWrite or All.
    #[arg(long)]
    pub operation: String,
    /// A DENY ACL (default: ALLOW).
    #[arg(long)]
    pub deny: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum AclsCommand {
    /// Add an ACL.
    Add {
        #[command(flatten)]
        entry: EntryArgs,
        #[command(flatten)]
        resource: ResourceArgs,
    },
    /// List ACLs: all, or those on one resource (`--prefixed` for a prefixed pattern).
    List {
        #[command(flatten)]
        resource: ResourceArgs,
        #[arg(long)]
        principal: Option<String>,
    },
    /// Remove an ACL (exactly as added).
    Remove {
        #[command(flatten)]
        entry: EntryArgs,
        #[command(flatten)]
        resource: ResourceArgs,
    },
}

impl ResourceArgs {
    /// (type, name, pattern type); `None` when no resource was named.
    fn resolve(&self) -> anyhow::Result<Option<(ResourceType, String, PatternType)>> {
        let mut named = Vec::new();
        if let Some(t) = &self.topic {
            named.push((ResourceType::Topic, t.clone()));
        }
        if let Some(g) = &self.group {
            named.push((ResourceType::Group, g.clone()));
        }
        if self.cluster {
            named.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        if let Some(t) = &self.transactional_id {
            named.push((ResourceType::TransactionalId, t.clone()));
        }
        if named.len() > 1 {
            anyhow::bail!("name one resource: --topic, --group, --cluster or --transactional-id");
        }
        let pattern = if self.prefixed {
            PatternType::Prefixed
        } else {
            PatternType::Literal
        };
        Ok(named.pop().map(|(t, n)| (t, n, pattern)))
    }
}

impl EntryArgs {
    fn resolve(&self) -> anyhow::Result<(AclOperation, PermissionType)> {
        let op = AclOperation::parse(&self.operation)
            .filter(|o| *o != AclOperation::Any)
            .ok_or_else(|| anyhow::anyhow!("unknown operation `{}`", self.operation))?;
        let perm = if self.deny {
            PermissionType::Deny
        } else {
            PermissionType::Allow
        };
        Ok((op, perm))
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn run(args: AclsArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = connect(&args.bootstrap_server).await?;
        match args.command {
            AclsCommand::Add { entry, resource } => {
                let (rt, name, pattern) = resource.resolve()?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "name a resource (--topic, --group, --cluster, --transactional-id)"
                    )
                })?;
                let (op, perm) = entry.resolve()?;
                let creation = AclCreation::default()
                    .with_resource_type(rt.code())
                    .with_resource_name(s(&name))
                    .with_resource_pattern_type(pattern.code())
                    .with_principal(s(&entry.principal))
                    .with_host(s(&entry.host))
                    .with_operation(op.code())
                    .with_permission_type(perm.code());
                let resp = c
                    .send_any(
                        &CreateAclsRequest::default().with_creations(vec![creation]),
                        3,
                    )
                    .await?;
                let r = &resp.results[0];
                check(r.error_code, "add ACL", r.error_message.as_deref())?;
                println!(
                    "Added {perm} {} {op} from {} on {rt}:{pattern}:{name}",
                    entry.principal, entry.host
                );
            }
            AclsCommand::List {
                resource,
                principal,
            } => {
                let (rt, name, pattern) = match resource.resolve()? {
                    Some((rt, name, pattern)) => (rt, Some(name), pattern),
                    None => (ResourceType::Any, None, PatternType::Any),
                };
                let req = DescribeAclsRequest::default()
                    .with_resource_type_filter(rt.code())
                    .with_resource_name_filter(name.as_deref().map(s))
                    .with_pattern_type_filter(pattern.code())
                    .with_principal_filter(principal.as_deref().map(s))
                    .with_host_filter(None)
                    .with_operation(AclOperation::Any.code())
                    .with_permission_type(PermissionType::Any.code());
                let resp = c.send_any(&req, 3).await?;
                check(resp.error_code, "list ACLs", resp.error_message.as_deref())?;
                for r in &resp.resources {
                    let rt = ResourceType::from_code(r.resource_type).map_or("?", |t| t.pascal());
                    let pt = PatternType::from_code(r.pattern_type).map_or("?", |t| t.pascal());
                    println!("{rt}:{pt}:{}", r.resource_name.as_str());
                    for a in &r.acls {
                        let op = AclOperation::from_code(a.operation).map_or("?", |o| o.pascal());
                        let perm = PermissionType::from_code(a.permission_type)
                            .map_or("?", |p| p.pascal());
                        println!(
                            "  {} {perm} {op} from host {}",
                            a.principal.as_str(),
                            a.host.as_str()
                        );
                    }
                }
            }
            AclsCommand::Remove { entry, resource } => {
                let (rt, name, pattern) = resource.resolve()?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "name a resource (--topic, --group, --cluster, --transactional-id)"
                    )
                })?;
                let (op, perm) = entry.resolve()?;
                let filter = DeleteAclsFilter::default()
                    .with_resource_type_filter(rt.code())
                    .with_resource_name_filter(Some(s(&name)))
                    .with_pattern_type_filter(pattern.code())
                    .with_principal_filter(Some(s(&entry.principal)))
                    .with_host_filter(Some(s(&entry.host)))
                    .with_operation(op.code())
                    .with_permission_type(perm.code());
                let resp = c
                    .send_any(&DeleteAclsRequest::default().with_filters(vec![filter]), 3)
                    .await?;
                let r = &resp.filter_results[0];
                check(r.error_code, "remove ACL", r.error_message.as_deref())?;
                println!("Removed {} ACL(s)", r.matching_acls.len());
            }
        }
        Ok(())
    })
}
