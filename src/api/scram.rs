//! DescribeUserScramCredentials (key 50, v0) and AlterUserScramCredentials (key 51, v0),
//! with Kafka 3.9's ZooKeeper-mode semantics (`ZkAdminManager`): credentials live in
//! `/config/users/<user>` (see `security::credentials`); the client sends the salted
//! password, never the password.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::security::acl::AclOperation;
use crate::security::credentials;
use crate::security::sasl::scram::{
    ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS,
};

pub mod describe {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 0);
}

pub mod alter {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 0);
}

const ZK_TIMEOUT: Duration = Duration::from_secs(30);

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

pub async fn describe_user_scram_credentials(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> Option<DescribeUserScramCredentialsResponse> {
    // Cluster DESCRIBE, as KafkaApis.handleDescribeUserScramCredentialsRequest.
    if !broker.authorize_cluster(ctx, AclOperation::Describe) {
        return Some(top_level_error(Error::ClusterAuthorizationFailed));
    }
    let client = broker.session.current().await.client;
    let all = match tokio::time::timeout(ZK_TIMEOUT, credentials::describe_all(&client)).await {
        Ok(Ok(all)) => all,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "DescribeUserScramCredentials: cannot read ZooKeeper");
            return Some(top_level_error(Error::UnknownServerError));
        }
        Err(_) => return Some(top_level_error(Error::RequestTimedOut)),
    };
    let results = describe_results(
        &all,
        req.users
            .as_deref()
            .map(|u| u.iter().map(|n| n.name.to_string()).collect::<Vec<_>>()),
    );
    Some(DescribeUserScramCredentialsResponse::default().with_results(results))
}

fn top_level_error(err: Error) -> DescribeUserScramCredentialsResponse {
    DescribeUserScramCredentialsResponse::default().with_error_code(code(err))
}

/// The answer for `users` (`None` or empty: every user with credentials).
fn describe_results(
    all: &HashMap<String, credentials::UserCredentials>,
    users: Option<Vec<String>>,
) -> Vec<DescribeUserScramCredentialsResult> {
    let info = |creds: &credentials::UserCredentials| {
        creds
            .iter()
            .map(|(m, c)| {
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(c.iterations)
            })
            .collect::<Vec<_>>()
    };
    let users = match users {
        Some(users) if !users.is_empty() => users,
        _ => {
            let mut names: Vec<&String> = all.keys().collect();
            names.sort();
            return names
                .into_iter()
                .map(|u| {
                    DescribeUserScramCredentialsResult::default()
                        .with_user(s(u.clone()))
                        .with_credential_infos(info(&all[u]))
                })
                .collect();
        }
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for u in &users {
        *counts.entry(u).or_default() += 1;
    }
    let mut out = Vec::new();
    for (user, count) in counts {
        let r = DescribeUserScramCredentialsResult::default().with_user(s(user));
        out.push(if count > 1 {
            r.with_error_code(code(Error::DuplicateResource))
                .with_error_message(Some(s(format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                ))))
        } else {
            match all.get(user) {
                Some(creds) => r.with_credential_infos(info(creds)),
                None => r
                    .with_error_code(code(Error::ResourceNotFound))
                    .with_error_message(Some(s(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    )))),
            }
        });
    }
    out
}

/// One user's validated changes.
#[derive(Debug, Default)]
struct UserChanges {
    upserts: Vec<(ScramMechanism, ScramCredential)>,
    deletions: Vec<ScramMechanism>,
    error: Option<(Error, String)>,
}

/// Validates the request per user as Kafka does: a user with any invalid or duplicate
/// operation gets that error and none of its changes.
fn validate(req: &AlterUserScramCredentialsRequest) -> BTreeMap<String, UserChanges> {
    let mut users: BTreeMap<String, UserChanges> = BTreeMap::new();
    let mut seen: HashMap<(String, i8), usize> = HashMap::new();
    for d in &req.deletions {
        *seen.entry((d.name.to_string(), d.mechanism)).or_default() += 1;
    }
    for u in &req.upsertions {
        *seen.entry((u.name.to_string(), u.mechanism)).or_default() += 1;
    }
    let fail = |c: &mut UserChanges, e: Error, m: &str| {
        if c.error.is_none() {
            c.error = Some((e, m.to_string()));
        }
    };
    for d in &req.deletions {
        let name = d.name.to_string();
        let c = users.entry(name.clone()).or_default();
        match check_common(&name, d.mechanism, seen[&(name.clone(), d.mechanism)]) {
            Err((e, m)) => fail(c, e, &m),
            Ok(m) => c.deletions.push(m),
        }
    }
    for u in &req.upsertions {
        let name = u.name.to_string();
        let c = users.entry(name.clone()).or_default();
        let m = match check_common(&name, u.mechanism, seen[&(name.clone(), u.mechanism)]) {
            Err((e, m)) => {
                fail(c, e, &m);
                continue;
            }
            Ok(m) => m,
        };
        if u.iterations < MIN_ITERATIONS {
            fail(c, Error::UnacceptableCredential, "Too few iterations");
        } else if u.iterations > MAX_ITERATIONS {
            fail(c, Error::UnacceptableCredential, "Too many iterations");
        } else if u.salt.is_empty() || u.salted_password.is_empty() {
            fail(
                c,
                Error::UnacceptableCredential,
                "Salt and salted password must not be empty",
            );
        } else {
            c.upserts
                .push((m, m.credential(&u.salt, &u.salted_password, u.iterations)));
        }
    }
    users
}

fn check_common(
    name: &str,
    mechanism: i8,
    times: usize,
) -> Result<ScramMechanism, (Error, String)> {
    if name.is_empty() {
        return Err((
            Error::UnacceptableCredential,
            "Username must not be empty".into(),
        ));
    }
    let m = ScramMechanism::from_code(mechanism).ok_or((
        Error::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism".to_string(),
    ))?;
    if times > 1 {
        return Err((
            Error::DuplicateResource,
            "A user credential cannot be altered twice in the same request".into(),
        ));
    }
    Ok(m)
}

pub async fn alter_user_scram_credentials(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> Option<AlterUserScramCredentialsResponse> {
    let users = validate(&req);
    // Cluster ALTER, as KafkaApis.handleAlterUserScramCredentialsRequest: every user
    // answered CLUSTER_AUTHORIZATION_FAILED, nothing written.
    if !broker.authorize_cluster(ctx, AclOperation::Alter) {
        let results = users
            .into_keys()
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(s(user))
                    .with_error_code(code(Error::ClusterAuthorizationFailed))
            })
            .collect();
        return Some(AlterUserScramCredentialsResponse::default().with_results(results));
    }
    let handle = broker.session.current().await;
    let existing =
        match tokio::time::timeout(ZK_TIMEOUT, credentials::describe_all(&handle.client)).await {
            Ok(Ok(all)) => Some(all),
            _ => None,
        };
    let mut results = Vec::with_capacity(users.len());
    for (user, mut changes) in users {
        if changes.error.is_none() {
            match &existing {
                None => {
                    changes.error =
                        Some((Error::UnknownServerError, "cannot read ZooKeeper".into()))
                }
                Some(all) => {
                    let has =
                        |m: &ScramMechanism| all.get(&user).is_some_and(|c| c.contains_key(m));
                    if !changes.deletions.iter().all(has) {
                        changes.error = Some((
                            Error::ResourceNotFound,
                            "Attempt to delete a user credential that does not exist".into(),
                        ));
                    }
                }
            }
        }
        let result = AlterUserScramCredentialsResult::default().with_user(s(user.clone()));
        let outcome = match changes.error {
            Some(err) => Err(err),
            None => {
                let write =
                    credentials::alter_user(&handle, &user, &changes.upserts, &changes.deletions);
                match tokio::time::timeout(ZK_TIMEOUT, write).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => {
                        tracing::warn!(%user, error = %err, "AlterUserScramCredentials: ZooKeeper write failed");
                        Err((Error::UnknownServerError, err.to_string()))
                    }
                    Err(_) => Err((Error::RequestTimedOut, "ZooKeeper write timed out".into())),
                }
            }
        };
        results.push(match outcome {
            Ok(()) => result,
            Err((e, m)) => result
                .with_error_code(code(e))
                .with_error_message(Some(s(m))),
        });
    }
    Some(AlterUserScramCredentialsResponse::default().with_results(results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };

    fn upsert(name: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
        ScramCredentialUpsertion::default()
            .with_name(s(name))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(vec![1u8; 16].into())
            .with_salted_password(vec![2u8; 64].into())
    }

    #[test]
    fn alter_validation_matches_kafka() {
        let req = AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![
                upsert("ok", 2, 4096),
                upsert("few", 1, 4095),
                upsert("many", 1, 16385),
                upsert("mech", 3, 4096),
                upsert("dup", 2, 8192),
                upsert("", 2, 4096),
            ])
            .with_deletions(vec![ScramCredentialDeletion::default()
                .with_name(s("dup"))
                .with_mechanism(2)]);
        let v = validate(&req);
        assert!(v["ok"].error.is_none());
        assert_eq!(v["ok"].upserts.len(), 1);
        assert_eq!(
            v["few"].error.as_ref().unwrap().0,
            Error::UnacceptableCredential
        );
        assert_eq!(
            v["many"].error.as_ref().unwrap().0,
            Error::UnacceptableCredential
        );
        assert_eq!(
            v["mech"].error.as_ref().unwrap().0,
            Error::UnsupportedSaslMechanism
        );
        assert_eq!(v["dup"].error.as_ref().unwrap().0, Error::DuplicateResource);
        assert_eq!(
            v[""].error.as_ref().unwrap().0,
            Error::UnacceptableCredential
        );
    }

    #[test]
    fn describe_reports_missing_and_duplicates() {
        let m = ScramMechanism::Sha512;
        let mut all = HashMap::new();
        all.insert(
            "alice".to_string(),
            BTreeMap::from([(m, m.credential(b"s", b"p", 4096))]),
        );
        let r = describe_results(&all, None);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].credential_infos[0].mechanism, 2);
        let r = describe_results(
            &all,
            Some(vec![
                "alice".into(),
                "bob".into(),
                "carol".into(),
                "carol".into(),
            ]),
        );
        let by: HashMap<String, i16> = r
            .iter()
            .map(|x| (x.user.to_string(), x.error_code))
            .collect();
        assert_eq!(by["alice"], 0);
        assert_eq!(by["bob"], code(Error::ResourceNotFound));
        assert_eq!(by["carol"], code(Error::DuplicateResource));
    }
}
