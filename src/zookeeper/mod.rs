//! The mini-zookeeper: a single-node coordination service speaking Apache ZooKeeper's
//! client wire protocol (jute). Not built yet.

#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Path to the TOML config (see config/zookeeper.toml).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

pub fn run(_args: ServerArgs) -> anyhow::Result<()> {
    anyhow::bail!("the mini-zookeeper is not built yet")
}
