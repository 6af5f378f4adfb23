//! Turning a write request into a transaction, with ZooKeeper's checks in ZooKeeper's
//! order (`PrepRequestProcessor.pRequest2Txn`), so the same bad request gets the same
//! error code.
//!
//! Prep only reads the tree. Inside a `multi` each op is prepped against the tree as the
//! previous ops of the same multi left it (the server applies them as it goes).

use super::acl;
use super::path;
use super::proto::{perms, Code, CreateMode, CreateRequest, Id};
use super::tree::{DataTree, Node, CONTAINER_OWNER};
use super::txn::Txn;

/// Who is asking.
pub struct Caller<'a> {
    pub session_id: i64,
    pub auth: &'a [Id],
    pub enforce_acl: bool,
}

impl Caller<'_> {
    fn check(&self, node: &Node, perm: i32) -> Result<(), Code> {
        if self.enforce_acl {
            acl::check(&node.acl, perm, self.auth)
        } else {
            Ok(())
        }
    }
}

fn lookup<'t>(tree: &'t DataTree, path: &str) -> Result<&'t Node, Code> {
    tree.get(path).ok_or(Code::NoNode)
}

fn validate(path: &str) -> Result<(), Code> {
    if path::is_valid(path) {
        Ok(())
    } else {
        Err(Code::BadArguments)
    }
}

fn check_version(current: i32, expected: i32) -> Result<i32, Code> {
    if expected != -1 && expected != current {
        return Err(Code::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// The paths ZooKeeper never lets a client delete.
fn is_special(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

/// `create` / `create2` / `createContainer` / `createTTL`.
pub fn create(tree: &DataTree, caller: &Caller, req: &CreateRequest) -> Result<Txn, Code> {
    let mode = CreateMode::from_flags(req.flags).ok_or(Code::BadArguments)?;
    // TTL nodes need `zookeeper.extendedTypesEnabled`, off by default in ZooKeeper.
    if mode.is_ttl() {
        return Err(Code::Unimplemented);
    }
    if req.op == super::proto::op::CREATE_TTL && req.ttl >= 0 {
        // EphemeralType.validateTTL: a TTL given for a non-TTL mode.
        return Err(Code::BadArguments);
    }
    if !req.path.contains('/') || req.path.contains('\0') {
        return Err(Code::BadArguments);
    }
    let parent_path = path::parent(&req.path).ok_or(Code::BadArguments)?;
    let acl = acl::fixup(req.acl.as_deref(), caller.auth)?;
    let parent = lookup(tree, parent_path)?;
    caller.check(parent, perms::CREATE)?;
    let mut path = req.path.clone();
    if mode.is_sequential() {
        path.push_str(&format!("{:010}", parent.stat.cversion));
    }
    validate(&path)?;
    if tree.get(&path).is_some() {
        return Err(Code::NodeExists);
    }
    if parent.ephemeral_session().is_some() {
        return Err(Code::NoChildrenForEphemerals);
    }
    let ephemeral_owner = if mode == CreateMode::Container {
        CONTAINER_OWNER
    } else if mode.is_ephemeral() {
        caller.session_id
    } else {
        0
    };
    Ok(Txn::Create {
        path,
        data: req.data.clone(),
        acl,
        ephemeral_owner,
        parent_cversion: parent.stat.cversion.wrapping_add(1),
    })
}

pub fn delete(tree: &DataTree, caller: &Caller, path: &str, version: i32) -> Result<Txn, Code> {
    if !path.contains('/') || path.contains('\0') || is_special(path) {
        return Err(Code::BadArguments);
    }
    let parent = lookup(tree, path::parent(path).ok_or(Code::BadArguments)?)?;
    caller.check(parent, perms::DELETE)?;
    let node = lookup(tree, path)?;
    check_version(node.stat.version, version)?;
    if !node.children.is_empty() {
        return Err(Code::NotEmpty);
    }
    Ok(Txn::Delete {
        path: path.to_string(),
    })
}

pub fn set_data(
    tree: &DataTree,
    caller: &Caller,
    path: &str,
    data: &Option<Vec<u8>>,
    version: i32,
) -> Result<Txn, Code> {
    validate(path)?;
    let node = lookup(tree, path)?;
    caller.check(node, perms::WRITE)?;
    let version = check_version(node.stat.version, version)?;
    Ok(Txn::SetData {
        path: path.to_string(),
        data: data.clone(),
        version,
    })
}

pub fn set_acl(
    tree: &DataTree,
    caller: &Caller,
    path: &str,
    acl_in: Option<&[super::proto::Acl]>,
    version: i32,
) -> Result<Txn, Code> {
    validate(path)?;
    let acl = acl::fixup(acl_in, caller.auth)?;
    let node = lookup(tree, path)?;
    caller.check(node, perms::ADMIN)?;
    let version = check_version(node.stat.aversion, version)?;
    Ok(Txn::SetAcl {
        path: path.to_string(),
        acl,
        version,
    })
}

pub fn check(tree: &DataTree, caller: &Caller, path: &str, version: i32) -> Result<Txn, Code> {
    validate(path)?;
    let node = lookup(tree, path)?;
    caller.check(node, perms::READ)?;
    check_version(node.stat.version, version)?;
    Ok(Txn::Check {
        path: path.to_string(),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zookeeper::proto::{op, Acl};
    use crate::zookeeper::tree::Change;

    fn caller() -> Caller<'static> {
        Caller {
            session_id: 9,
            auth: &[],
            enforce_acl: true,
        }
    }

    fn req(path: &str, flags: i32) -> CreateRequest {
        CreateRequest {
            op: op::CREATE,
            path: path.into(),
            data: Some(vec![]),
            acl: Some(vec![Acl::world(perms::ALL)]),
            flags,
            ttl: -1,
        }
    }

    fn apply(tree: &mut DataTree, txn: Txn, zxid: i64) {
        let mut ch: Vec<Change> = Vec::new();
        let mut sessions = crate::zookeeper::session::SessionTable::new(10);
        let hdr = crate::zookeeper::txn::TxnHeader {
            session_id: 9,
            cxid: 0,
            zxid,
            time: 0,
        };
        crate::zookeeper::txn::apply(tree, &mut sessions, &hdr, &txn, &mut ch, &mut Vec::new())
            .unwrap();
    }

    #[test]
    fn create_error_codes_in_zookeeper_order() {
        let mut t = DataTree::new();
        let c = caller();
        assert_eq!(create(&t, &c, &req("/a", 9)), Err(Code::BadArguments));
        assert_eq!(create(&t, &c, &req("/a", 5)), Err(Code::Unimplemented));
        assert_eq!(create(&t, &c, &req("noslash", 0)), Err(Code::BadArguments));
        // No leading slash but a slash: the parent lookup fails first.
        assert_eq!(create(&t, &c, &req("a/b", 0)), Err(Code::NoNode));
        let mut no_acl = req("/a", 0);
        no_acl.acl = Some(vec![]);
        assert_eq!(create(&t, &c, &no_acl), Err(Code::InvalidAcl));
        assert_eq!(create(&t, &c, &req("/x/y", 0)), Err(Code::NoNode));
        // The parent is looked up before the full path is validated.
        assert_eq!(create(&t, &c, &req("/a/", 0)), Err(Code::NoNode));
        assert_eq!(
            create(&t, &c, &req("/zookeeper/", 0)),
            Err(Code::BadArguments)
        );
        assert_eq!(create(&t, &c, &req("/", 0)), Err(Code::NodeExists));
        let txn = create(&t, &c, &req("/e", 1)).unwrap();
        apply(&mut t, txn, 2);
        assert_eq!(create(&t, &c, &req("/e", 0)), Err(Code::NodeExists));
        assert_eq!(
            create(&t, &c, &req("/e/c", 0)),
            Err(Code::NoChildrenForEphemerals)
        );
        assert_eq!(t.get("/e").unwrap().stat().ephemeral_owner, 9);
    }

    #[test]
    fn sequential_suffix_from_parent_cversion() {
        let mut t = DataTree::new();
        let c = caller();
        for (i, expect) in ["/s0000000000", "/s0000000001"].iter().enumerate() {
            let txn = create(&t, &c, &req("/s", 2)).unwrap();
            match &txn {
                Txn::Create { path, .. } => assert_eq!(path, expect),
                other => panic!("{other:?}"),
            }
            apply(&mut t, txn, i as i64 + 2);
        }
        // Deleting does not reuse numbers.
        let txn = delete(&t, &c, "/s0000000001", -1).unwrap();
        apply(&mut t, txn, 4);
        match create(&t, &c, &req("/s", 2)).unwrap() {
            Txn::Create { path, .. } => assert_eq!(path, "/s0000000002"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn delete_set_check_versions() {
        let mut t = DataTree::new();
        let c = caller();
        let txn = create(&t, &c, &req("/a", 0)).unwrap();
        apply(&mut t, txn, 2);
        let txn = create(&t, &c, &req("/a/b", 0)).unwrap();
        apply(&mut t, txn, 3);
        assert_eq!(delete(&t, &c, "/a", -1), Err(Code::NotEmpty));
        assert_eq!(delete(&t, &c, "/a", 5), Err(Code::BadVersion));
        assert_eq!(delete(&t, &c, "/zookeeper", -1), Err(Code::BadArguments));
        assert_eq!(delete(&t, &c, "/nope", -1), Err(Code::NoNode));
        assert_eq!(set_data(&t, &c, "/a", &None, 1), Err(Code::BadVersion));
        assert_eq!(set_data(&t, &c, "bad", &None, 1), Err(Code::BadArguments));
        assert_eq!(
            set_data(&t, &c, "/a", &None, 0),
            Ok(Txn::SetData {
                path: "/a".into(),
                data: None,
                version: 1
            })
        );
        assert_eq!(check(&t, &c, "/a", 3), Err(Code::BadVersion));
        assert!(check(&t, &c, "/a", 0).is_ok());
        assert_eq!(set_acl(&t, &c, "/a", Some(&[]), -1), Err(Code::InvalidAcl));
    }

    #[test]
    fn acl_is_enforced() {
        let mut t = DataTree::new();
        let c = caller();
        let mut r = req("/ro", 0);
        r.acl = Some(vec![Acl::world(perms::READ)]);
        let txn = create(&t, &c, &r).unwrap();
        apply(&mut t, txn, 2);
        assert_eq!(create(&t, &c, &req("/ro/x", 0)), Err(Code::NoAuth));
        assert_eq!(set_data(&t, &c, "/ro", &None, -1), Err(Code::NoAuth));
        let lax = Caller {
            enforce_acl: false,
            ..caller()
        };
        assert!(set_data(&t, &lax, "/ro", &None, -1).is_ok());
    }
}
