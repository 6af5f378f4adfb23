//! `gregor certs`: a CA and the broker and client certificates it signs, as PEM files
//! (for tests and local TLS set-ups; `security::certs` does the work).

use std::path::PathBuf;

use anyhow::{bail, Context};
use rcgen::DnType;

use crate::security::certs::{Ca, Issued};

#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// Directory to write into (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// Host names / IP addresses the broker certificate is valid for (repeatable).
    #[arg(long = "server-name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
    pub server_names: Vec<String>,
    /// A client certificate `NAME=SUBJECT`, subject as RFC 2253 (`CN=alice,OU=eng,O=acme`);
    /// written to client-NAME.pem (repeatable).
    #[arg(long = "client")]
    pub clients: Vec<String>,
}

pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let ca = Ca::new("gregor CA")?;
    write(&args, "ca.pem", &ca.cert_pem())?;
    let names: Vec<&str> = args.server_names.iter().map(String::as_str).collect();
    let broker = ca.server("broker", &names)?;
    write_issued(&args, "broker", &broker)?;
    for spec in &args.clients {
        let Some((name, subject)) = spec.split_once('=') else {
            bail!("--client {spec}: expected NAME=SUBJECT");
        };
        let attrs = parse_subject(subject)?;
        let refs: Vec<(DnType, &str)> =
            attrs.iter().map(|(t, v)| (t.clone(), v.as_str())).collect();
        write_issued(&args, &format!("client-{name}"), &ca.client(&refs)?)?;
    }
    println!("{}", args.dir.display());
    Ok(())
}

fn write(args: &CertsArgs, name: &str, text: &str) -> anyhow::Result<()> {
    let path = args.dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `<stem>.pem` (key and certificate: a PEM keystore), `<stem>-cert.pem`, `<stem>-key.pem`.
fn write_issued(args: &CertsArgs, stem: &str, issued: &Issued) -> anyhow::Result<()> {
    write(args, &format!("{stem}.pem"), &issued.keystore_pem())?;
    write(args, &format!("{stem}-cert.pem"), &issued.cert_pem)?;
    write(args, &format!("{stem}-key.pem"), &issued.key_pem)
}

/// RFC 2253 order (most specific first) to the encoding order rcgen writes.
fn parse_subject(subject: &str) -> anyhow::Result<Vec<(DnType, String)>> {
    let mut out = Vec::new();
    for part in subject.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            bail!("subject {subject}: expected TYPE=value parts");
        };
        let t = match k.trim() {
            "CN" => DnType::CommonName,
            "OU" => DnType::OrganizationalUnitName,
            "O" => DnType::OrganizationName,
            "L" => DnType::LocalityName,
            "ST" => DnType::StateOrProvinceName,
            "C" => DnType::CountryName,
            other => bail!("subject {subject}: unsupported attribute {other}"),
        };
        out.push((t, v.trim().to_string()));
    }
    out.reverse();
    Ok(out)
}
