//! `gregor cluster`: a local cluster in one command. Starts a mini-zookeeper and N
//! brokers as child processes of this one, each with its own config, data directory and
//! log file under `--data`, waits until every broker has registered, prints the bootstrap
//! address (and each process's metrics and console URL), and on Ctrl-C (or SIGTERM) stops
//! the brokers (controlled shutdown) and then the mini-zookeeper. `--secure` turns on
//! TLS, SCRAM and ACLs (see `secure`).
//!
//! Configs are generated only when absent, so an operator's edits survive a restart;
//! `--config-dir` uses existing files instead, and `--override KEY=VALUE` reaches every
//! broker's command line (as `gregor broker --override`) without touching the files.

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
    /// A broker setting for every broker, `KEY=VALUE` (repeatable), e.g.
    /// `--override num.partitions=4`; passed as `gregor broker --override`.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// TLS + SCRAM + ACLs: one SASL_SSL listener per broker (also the inter-broker one),
    /// the ACL authorizer with an `admin` super user, ZooKeeper ACLs; writes
    /// client.properties and client-librdkafka.properties into the data directory.
    #[arg(long)]
    pub secure: bool,
    /// Use the configs in this directory (`zookeeper.toml`, `broker-<id>.toml`) as they
    /// are instead of generating them under `--data`.
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
}

/// Ports of the generated HTTP listeners, placed relative to `--base-port` and
/// `--zookeeper-port` so that the defaults are the usual ones (broker N's metrics on
/// 9404 + N - 1, the Prometheus JMX exporter's port; its console on 8080 + N - 1; the
/// mini-zookeeper's metrics on 7000, ZooKeeper's `metricsProvider.httpPort`) and two
/// clusters on different ports do not collide.
fn http_port(base: u16, default_base: u16, usual: u16, index: u16) -> anyhow::Result<u16> {
    let port = i32::from(base) - i32::from(default_base) + i32::from(usual) + i32::from(index);
    u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| anyhow::anyhow!("no room for an HTTP port next to port {base}"))
}

/// Writes a generated config unless the file exists (an operator may have edited it).
fn write_if_absent(path: &Path, text: &str) -> anyhow::Result<()> {
    if !path.exists() {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// The error for a process that exited before it was up, with the end of its log (the
    /// reason is there: a port in use, a bad config key).
    fn exited(&self, status: std::process::ExitStatus) -> anyhow::Error {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        anyhow::anyhow!(
            "{} exited during start-up ({status}); the end of {}:\n{tail}",
            self.name,
            self.log.display()
        )
    }
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

    for o in &args.overrides {
        anyhow::ensure!(o.contains('='), "--override `{o}`: expected KEY=VALUE");
    }
    let config_dir = match &args.config_dir {
        Some(dir) => dir
            .canonicalize()
            .with_context(|| format!("--config-dir {}", dir.display()))?,
        None => data.clone(),
    };
    let zk_config = config_dir.join("zookeeper.toml");
    if args.config_dir.is_none() {
        write_if_absent(
            &zk_config,
            &format!(
                "client_port = {}\nclient_address = \"{}\"\ndata_dir = \"{}\"\nmetrics_listener = \"{}:{}\"\n",
                args.zookeeper_port,
                args.host,
                data.join("zookeeper").display(),
                args.host,
                http_port(args.zookeeper_port, 2181, 7000, 0)?,
            ),
        )?;
    }
    anyhow::ensure!(zk_config.exists(), "{} does not exist", zk_config.display());
    let mut procs = vec![spawn(
        &exe,
        "zookeeper",
        &zk_config,
        &[],
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

    let mut bootstrap = Vec::new();
    let mut urls = Vec::new();
    let broker_overrides: Vec<String> = args
        .overrides
        .iter()
        .flat_map(|o| ["--override".to_string(), o.clone()])
        .collect();
    for id in 1..=args.brokers {
        let port = args.base_port + id - 1;
        let config = config_dir.join(format!("broker-{id}.toml"));
        let replication = args.brokers.min(3);
        if args.config_dir.is_none() {
            let mut text = format!(
                "broker.id = {id}\nlog.dirs = \"{dir}\"\nzookeeper.connect = \"{zk_connect}\"\nzookeeper.session.timeout.ms = 6000\ndefault.replication.factor = {replication}\noffsets.topic.replication.factor = {replication}\nmin.insync.replicas = {min_isr}\n\"metrics.listener\" = \"{host}:{metrics}\"\n",
                host = args.host,
                dir = data.join(format!("broker-{id}")).display(),
                min_isr = if replication >= 3 { 2 } else { 1 },
                metrics = http_port(args.base_port, 9092, 9404, id - 1)?,
            );
            let console = http_port(args.base_port, 9092, 8080, id - 1)?;
            match &security {
                // The embedded console speaks plaintext to its broker: not on a secured
                // cluster (`gregor console --command-config` works against it).
                Some(s) => text.push_str(&s.broker_config(&args.host, port)),
                None => text.push_str(&format!(
                    "listeners = \"PLAINTEXT://{host}:{port}\"\n\"console.listener\" = \"{host}:{console}\"\n",
                    host = args.host,
                )),
            }
            write_if_absent(&config, &text)?;
        }
        anyhow::ensure!(config.exists(), "{} does not exist", config.display());
        let effective = crate::broker::load_config(&crate::broker::BrokerArgs {
            config: config.clone(),
            overrides: args.overrides.clone(),
        })?;
        let listener = effective
            .listeners
            .first()
            .map(|l| format!("{}:{}", l.host, l.port));
        bootstrap.push(listener.unwrap_or_else(|| format!("{}:{port}", args.host)));
        urls.push((
            effective.value("metrics.listener"),
            effective.value("console.listener"),
        ));
        procs.push(spawn(
            &exe,
            "broker",
            &config,
            &broker_overrides,
            &logs.join(format!("broker-{id}.log")),
            &format!("broker-{id}"),
        )?);
    }
    let client_files = match &security {
        Some(s) => {
            let files = s.write_client_files(&data, &bootstrap.join(","))?;
            crate::client::security::set_process_default(s.admin_client(&bootstrap.join(","))?);
            Some(files)
        }
        None => None,
    };
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
    // One per line, for scripts: `metrics: URL`, `console: URL`.
    for (metrics, console) in &urls {
        if let Some(m) = metrics.as_deref().filter(|m| !m.is_empty()) {
            println!("metrics: http://{m}/metrics");
        }
        if let Some(c) = console.as_deref().filter(|c| !c.is_empty()) {
            println!("console: http://{c}/");
        }
    }
    let bootstrap_file = data.join(crate::client::tools::BOOTSTRAP_FILE);
    let _ = std::fs::write(&bootstrap_file, bootstrap.join(","));
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
    let _ = std::fs::remove_file(&bootstrap_file);
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

fn spawn(
    exe: &Path,
    role: &str,
    config: &Path,
    extra: &[String],
    log: &Path,
    name: &str,
) -> anyhow::Result<Proc> {
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
        .args(extra)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok(Proc {
        name: name.to_string(),
        child,
        log: log.to_path_buf(),
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
                return Err(p.exited(status));
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
                return Err(p.exited(status));
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
