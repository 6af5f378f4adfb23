//! `gregor cluster`: a local cluster in one command. Starts a mini-zookeeper and N
//! brokers as child processes of this one, each with its own config, data directory and
//! log file under `--data`, waits until every broker has registered, prints the bootstrap
//! address, and on Ctrl-C (or SIGTERM) stops the brokers (controlled shutdown) and then
//! the mini-zookeeper. `--secure` turns on TLS, SCRAM and ACLs (see `secure`).

pub mod secure;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Number of brokers.
    #[arg(long, default_value_t = 3)]
    pub brokers: u16,
    /// Directory holding every process's config, data and log.
    #[arg(long, default_value = "gregor-data")]
    pub data: PathBuf,
    /// Client port of the mini-zookeeper.
    #[arg(long, default_value_t = 2181)]
    pub zookeeper_port: u16,
    /// Port of broker 1; broker N listens on this + N - 1.
    #[arg(long, default_value_t = 9092)]
    pub base_port: u16,
    /// Host the brokers listen on and advertise.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// TLS + SCRAM + ACLs: one SASL_SSL listener per broker (also the inter-broker one),
    /// the ACL authorizer with an `admin` super user, ZooKeeper ACLs; writes
    /// client.properties and client-librdkafka.properties into the data directory.
    #[arg(long)]
    pub secure: bool,
}

struct Proc {
    name: String,
    child: Child,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.brokers >= 1, "--brokers must be at least 1");
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    let data = args.data.canonicalize()?;
    let logs = data.join("logs");
    std::fs::create_dir_all(&logs)?;
    let exe = std::env::current_exe().context("cannot find the gregor executable")?;

    let security = prepare_security(&args, &data)?;

    let zk_config = data.join("zookeeper.toml");
    std::fs::write(
        &zk_config,
        format!(
            "client_port = {}\nclient_address = \"{}\"\ndata_dir = \"{}\"\n",
            args.zookeeper_port,
            args.host,
            data.join("zookeeper").display()
        ),
    )?;
    let mut procs = vec![spawn(
        &exe,
        "zookeeper",
        &zk_config,
        &logs.join("zookeeper.log"),
        "zookeeper",
    )?];
    let zk_addr = format!("{}:{}", args.host, args.zookeeper_port);
    if let Err(err) = wait_for_port(&zk_addr, Duration::from_secs(20), &mut procs) {
        stop_all(&mut procs);
        return Err(err);
    }
    let zk_connect = match &security {
        Some(_) => format!("{zk_addr}{}", secure::ZK_CHROOT),
        None => zk_addr.clone(),
    };
    if let Some(s) = &security {
        // The brokers authenticate to each other as `broker`: its credentials must be in
        // ZooKeeper before the first replica fetch.
        let stored = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(s.store_users(&zk_connect));
        if let Err(err) = stored {
            stop_all(&mut procs);
            return Err(err);
        }
    }

    let bootstrap: Vec<String> = (1..=args.brokers)
        .map(|id| format!("{}:{}", args.host, args.base_port + id - 1))
        .collect();
    let client_files = match &security {
        Some(s) => {
            let files = s.write_client_files(&data, &bootstrap.join(","))?;
            crate::client::security::set_process_default(s.admin_client(&bootstrap.join(","))?);
            Some(files)
        }
        None => None,
    };
    for id in 1..=args.brokers {
        let port = args.base_port + id - 1;
        let config = data.join(format!("broker-{id}.toml"));
        let replication = args.brokers.min(3);
        let mut text = format!(
            "broker.id = {id}\nlog.dirs = \"{dir}\"\nzookeeper.connect = \"{zk_connect}\"\nzookeeper.session.timeout.ms = 6000\ndefault.replication.factor = {replication}\noffsets.topic.replication.factor = {replication}\nmin.insync.replicas = {min_isr}\n",
            dir = data.join(format!("broker-{id}")).display(),
            min_isr = if replication >= 3 { 2 } else { 1 },
        );
        match &security {
            Some(s) => text.push_str(&s.broker_config(&args.host, port)),
            None => text.push_str(&format!(
                "listeners = \"PLAINTEXT://{}:{port}\"\n",
                args.host
            )),
        }
        std::fs::write(&config, text)?;
        procs.push(spawn(
            &exe,
            "broker",
            &config,
            &logs.join(format!("broker-{id}.log")),
            &format!("broker-{id}"),
        )?);
    }
    for addr in &bootstrap {
        if let Err(err) = wait_for_port(addr, Duration::from_secs(60), &mut procs) {
            stop_all(&mut procs);
            return Err(err);
        }
    }
    // An open port is not a usable cluster: until a broker's image holds every registered
    // broker, CreateTopics there finds too few brokers for the replication factor.
    for addr in &bootstrap {
        let wanted = usize::from(args.brokers);
        if let Err(err) = wait_for_brokers(addr, wanted, Duration::from_secs(60), &mut procs) {
            stop_all(&mut procs);
            return Err(err);
        }
    }
    println!(
        "gregor cluster is up: {} broker(s) and a mini-zookeeper{}",
        args.brokers,
        if security.is_some() {
            " (TLS + SCRAM + ACLs)"
        } else {
            ""
        }
    );
    println!("  bootstrap servers: {}", bootstrap.join(","));
    println!("  zookeeper:         {zk_connect}");
    println!("  data and configs:  {}", data.display());
    println!("  logs:              {}/*.log", logs.display());
    if let Some((java, rdkafka)) = &client_files {
        println!(
            "  client config:     {} (Java clients, kafka-* tools, gregor --command-config)",
            java.display()
        );
        println!(
            "  librdkafka config: {} (kcat -F, confluent-kafka)",
            rdkafka.display()
        );
        println!(
            "  super user:        {} (password in both files)",
            secure::ADMIN_USER
        );
    }
    println!("Press Ctrl-C to stop.");

    let outcome = supervise(&mut procs);
    stop_all(&mut procs);
    outcome
}

/// The secured set-up of `--secure` (created at the first start, reused after); a data
/// directory keeps the mode it was created with.
fn prepare_security(
    args: &ClusterArgs,
    data: &Path,
) -> anyhow::Result<Option<secure::SecureSetup>> {
    let secured_before = secure::SecureSetup::dir_of(data).exists();
    let used_before = data.join("zookeeper").exists();
    if args.secure {
        anyhow::ensure!(
            secured_before || !used_before,
            "{} holds a cluster started without --secure; use another --data",
            data.display()
        );
        Ok(Some(secure::SecureSetup::prepare(data, &args.host)?))
    } else {
        anyhow::ensure!(
            !secured_before,
            "{} holds a cluster started with --secure; add --secure",
            data.display()
        );
        Ok(None)
    }
}

fn spawn(exe: &Path, role: &str, config: &Path, log: &Path, name: &str) -> anyhow::Result<Proc> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    // Own process group: a terminal's Ctrl-C (SIGINT to the foreground group) reaches only
    // this supervisor, which then stops brokers before the mini-zookeeper.
    let child = Command::new(exe)
        .process_group(0)
        .arg(role)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok(Proc {
        name: name.to_string(),
        child,
    })
}

fn wait_for_port(addr: &str, timeout: Duration, procs: &mut [Proc]) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        for p in procs.iter_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                anyhow::bail!("{} exited during start-up ({status}); see its log", p.name);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{addr} did not come up within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the broker at `addr` answers Metadata listing `wanted` brokers.
fn wait_for_brokers(
    addr: &str,
    wanted: usize,
    timeout: Duration,
    procs: &mut [Proc],
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deadline = Instant::now() + timeout;
    loop {
        let seen = runtime.block_on(async {
            let client = crate::client::cluster::ClusterClient::connect(addr, "gregor-cluster");
            match tokio::time::timeout(Duration::from_secs(5), client).await {
                Ok(Ok(c)) => c.metadata.brokers.len(),
                _ => 0,
            }
        });
        if seen >= wanted {
            return Ok(());
        }
        for p in procs.iter_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                anyhow::bail!("{} exited during start-up ({status}); see its log", p.name);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{addr} saw {seen} of {wanted} brokers after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for Ctrl-C / SIGTERM, reporting children that die meanwhile.
fn supervise(procs: &mut [Proc]) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tick.tick() => {
                    for p in procs.iter_mut() {
                        if let Ok(Some(status)) = p.child.try_wait() {
                            eprintln!("{} exited ({status}); the others keep running", p.name);
                        }
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })
}

/// SIGTERM to brokers first (controlled shutdown), then the mini-zookeeper.
fn stop_all(procs: &mut [Proc]) {
    for p in procs.iter_mut().rev() {
        terminate(&mut p.child, &p.name);
    }
}

fn terminate(child: &mut Child, name: &str) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY-free: sending a signal through the `kill` command keeps this std-only.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            eprintln!("{name} stopped");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("{name} killed after not stopping in time");
}
