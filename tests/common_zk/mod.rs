//! Shared helpers for the `zookeeper_*` integration tests: start the real
//! `gregor zookeeper` process on a free port with a temp data dir, poll with deadlines,
//! and a tiny raw-protocol client for what the `zookeeper-client` crate hides (frame
//! order, malformed input).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gregor::zookeeper::jute::{Reader, Writer};
use gregor::zookeeper::proto::ConnectRequest;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async flavour of [`wait_for`].
pub async fn wait_for_async<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a four-letter word and returns the answer.
pub fn four_letter(port: u16, cmd: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(cmd.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A running `gregor zookeeper`, killed (-9) on drop.
pub struct ZkServer {
    pub port: u16,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl ZkServer {
    /// Starts a server with a fresh temp data dir; `extra` are more command-line flags.
    /// Every four-letter word is enabled (the suites inspect the server with them, as
    /// their real-ZooKeeper twins do with `4lw.commands.whitelist=*`) unless `extra`
    /// sets `--4lw-commands-whitelist` itself.
    pub fn start(extra: &[&str]) -> ZkServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !extra
            .iter()
            .any(|a| a.starts_with("--4lw-commands-whitelist"))
        {
            extra.push("--4lw-commands-whitelist=*".into());
        }
        let mut s = ZkServer {
            port: free_port(),
            data_dir: tmp.path().join("zk"),
            extra,
            child: None,
            _tmp: Some(tmp),
        };
        s.spawn();
        s
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("server log file");
        let child = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .arg("zookeeper")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn gregor zookeeper");
        self.child = Some(child);
        let port = self.port;
        // `srvr` always answers, whatever the whitelist.
        wait_for(Duration::from_secs(20), "the server to answer srvr", || {
            four_letter(port, "srvr")
                .ok()
                .filter(|a| a.starts_with("Zookeeper version"))
        });
    }

    /// The server's stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// `kill -9`, leaving the data dir.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `kill -9` then start again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server process's id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Peak resident memory of the server process so far (`VmHWM`, KiB).
    pub fn vm_hwm_kib(&self) -> u64 {
        let pid = self.pid().expect("server running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A frame read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

/// A minimal blocking client speaking the raw protocol.
pub struct RawClient {
    pub stream: TcpStream,
    pub session_id: i64,
    pub password: Vec<u8>,
    pub timeout: i32,
}

impl RawClient {
    pub fn connect(port: u16) -> RawClient {
        Self::connect_with(port, 0, vec![0; 16], 10_000, 0).expect("raw connect")
    }

    /// Sends a ConnectRequest and reads the ConnectResponse.
    pub fn connect_with(
        port: u16,
        session_id: i64,
        password: Vec<u8>,
        timeout: i32,
        last_zxid: i64,
    ) -> std::io::Result<RawClient> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: last_zxid,
            timeout,
            session_id,
            password,
            read_only: false,
        };
        stream.write_all(&req.encode())?;
        let body = read_frame(&mut stream)?;
        let mut r = Reader::new(&body);
        let _proto = r.read_i32().map_err(io_err)?;
        let timeout = r.read_i32().map_err(io_err)?;
        let session_id = r.read_i64().map_err(io_err)?;
        let password = r.read_buffer().map_err(io_err)?.unwrap_or_default();
        Ok(RawClient {
            stream,
            session_id,
            password,
            timeout,
        })
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends one request: header then whatever `body` writes.
    pub fn send(&mut self, xid: i32, op: i32, body: impl FnOnce(&mut Writer)) {
        let mut w = Writer::framed();
        w.write_i32(xid);
        w.write_i32(op);
        body(&mut w);
        self.send_raw(&w.finish_frame());
    }

    pub fn recv(&mut self) -> std::io::Result<Reply> {
        let frame = read_frame(&mut self.stream)?;
        let mut r = Reader::new(&frame);
        Ok(Reply {
            xid: r.read_i32().map_err(io_err)?,
            zxid: r.read_i64().map_err(io_err)?,
            err: r.read_i32().map_err(io_err)?,
            body: r.rest().to_vec(),
        })
    }

    /// Sends a request and returns the next non-notification reply.
    pub fn call(&mut self, xid: i32, op: i32, body: impl FnOnce(&mut Writer)) -> Reply {
        self.send(xid, op, body);
        loop {
            let r = self.recv().expect("reply");
            if r.xid != -1 {
                return r;
            }
        }
    }

    /// True once the server has closed the connection (reads EOF).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0))
            || matches!(self.stream.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

pub fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if !(0..=16 * 1024 * 1024).contains(&len) {
        return Err(io_err(format!("bad frame length {len}")));
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    Ok(body)
}

/// Connects a `zookeeper-client` session.
pub async fn client(addr: &str) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(addr)
        .await
        .expect("zookeeper-client connect")
}

pub fn open_acl() -> zookeeper_client::CreateOptions<'static> {
    zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all())
}

pub fn mode(m: zookeeper_client::CreateMode) -> zookeeper_client::CreateOptions<'static> {
    m.with_acls(zookeeper_client::Acls::anyone_all())
}
