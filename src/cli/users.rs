//! `gregor users add|list|remove`: SCRAM users through AlterUserScramCredentials and
//! DescribeUserScramCredentials, as `kafka-configs --entity-type users` does. The salted
//! password is computed here (PBKDF2), so the password never leaves the CLI.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::{block_on, check, connect};
use crate::security::sasl::scram::{random_salt, ScramMechanism};

#[derive(clap::Args, Debug)]
pub struct UsersArgs {
    /// Broker(s) to bootstrap from.
    /// Broker(s) to bootstrap from (default: see `gregor::cli::default_bootstrap`).
    #[arg(long, global = true, default_value_t = super::default_bootstrap())]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum UsersCommand {
    /// Add a user, or set its password, for a SCRAM mechanism.
    Add {
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
    },
    /// List users and their SCRAM mechanisms (all users without names).
    List { users: Vec<String> },
    /// Remove a user's credential of a mechanism.
    Remove {
        user: String,
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
    },
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::parse(name)
        .ok_or_else(|| anyhow::anyhow!("unknown mechanism {name}: SCRAM-SHA-256 or SCRAM-SHA-512"))
}

pub fn run(args: UsersArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = connect(&args.bootstrap_server).await?;
        match args.command {
            UsersCommand::Add {
                user,
                password,
                mechanism: m,
                iterations,
            } => {
                let m = mechanism(&m)?;
                let salt = random_salt();
                let salted =
                    m.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
                let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(user.clone()))
                        .with_mechanism(m.code())
                        .with_iterations(iterations)
                        .with_salt(salt.into())
                        .with_salted_password(salted.into()),
                ]);
                alter(&mut c, req, &user).await?;
                println!("{} credential of {user} set", m.name());
            }
            UsersCommand::Remove { user, mechanism: m } => {
                let m = mechanism(&m)?;
                let req = AlterUserScramCredentialsRequest::default().with_deletions(vec![
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(user.clone()))
                        .with_mechanism(m.code()),
                ]);
                alter(&mut c, req, &user).await?;
                println!("{} credential of {user} removed", m.name());
            }
            UsersCommand::List { users } => {
                let req = DescribeUserScramCredentialsRequest::default().with_users(
                    (!users.is_empty()).then(|| {
                        users
                            .iter()
                            .map(|u| {
                                UserName::default().with_name(StrBytes::from_string(u.clone()))
                            })
                            .collect()
                    }),
                );
                let r = c.send_any(&req, 0).await?;
                check(r.error_code, "describe users", r.error_message.as_deref())?;
                for u in r.results {
                    check(u.error_code, &u.user, u.error_message.as_deref())?;
                    let mechs: Vec<String> = u
                        .credential_infos
                        .iter()
                        .map(|i| {
                            let name = ScramMechanism::from_code(i.mechanism)
                                .map_or("UNKNOWN", ScramMechanism::name);
                            format!("{name}(iterations={})", i.iterations)
                        })
                        .collect();
                    println!("{}\t{}", u.user, mechs.join(","));
                }
            }
        }
        Ok(())
    })
}

async fn alter(
    c: &mut crate::client::cluster::ClusterClient,
    req: AlterUserScramCredentialsRequest,
    user: &str,
) -> anyhow::Result<()> {
    let r = c.send_any(&req, 0).await?;
    for result in r.results {
        check(result.error_code, user, result.error_message.as_deref())?;
    }
    Ok(())
}
