//! Connection limits, as Kafka's `ConnectionQuotas`: a broker-wide cap (`max.connections`,
//! the acceptor waits for a free slot instead of accepting), a per-address cap
//! (`max.connections.per.ip` and its overrides; a connection over it is closed at once),
//! and a cap derived from the process's file-descriptor limit so connections can never
//! take the descriptors that segments and the ZooKeeper session need.
//!
//! The bookkeeping is pure (no sockets): the accept loop asks [`PerIpQuotas::admit`] and
//! holds the returned slot for the connection's lifetime.

use crate::sync::lock;
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

/// Counts connections per peer address against `max.connections.per.ip`.
pub struct PerIpQuotas {
    default_max: usize,
    overrides: HashMap<IpAddr, usize>,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection from `ip` that counts against its quota until dropped.
pub struct IpSlot {
    quotas: Arc<PerIpQuotas>,
    ip: IpAddr,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TooManyConnections {
    pub ip: IpAddr,
    pub max: usize,
}

impl PerIpQuotas {
    pub fn new(default_max: usize, overrides: HashMap<IpAddr, usize>) -> Arc<Self> {
        Arc::new(PerIpQuotas {
            default_max,
            overrides,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// The limit for `ip`: its override if one is set, else `max.connections.per.ip`.
    pub fn max_for(&self, ip: IpAddr) -> usize {
        self.overrides.get(&ip).copied().unwrap_or(self.default_max)
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, TooManyConnections> {
        let max = self.max_for(ip);
        let mut counts = lock(&self.counts);
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            if *count == 0 {
                counts.remove(&ip);
            }
            return Err(TooManyConnections { ip, max });
        }
        *count += 1;
        Ok(IpSlot {
            quotas: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip`.
    pub fn count(&self, ip: IpAddr) -> usize {
        lock(&self.counts).get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.quotas.counts);
        if let Some(count) = counts.get_mut(&self.ip) {
            // Invariant: a slot exists only while its admission is counted.
            assert!(*count > 0, "connection count underflow for {}", self.ip);
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Resolves `max.connections.per.ip.overrides` entries (IP addresses or host names, as
/// Kafka accepts) to addresses. A name that does not resolve is skipped with a warning.
pub fn resolve_overrides(entries: &[(String, usize)]) -> HashMap<IpAddr, usize> {
    let mut out = HashMap::new();
    for (host, max) in entries {
        if let Ok(ip) = host.parse::<IpAddr>() {
            out.insert(ip, *max);
            continue;
        }
        match (host.as_str(), 0).to_socket_addrs() {
            Ok(addrs) => {
                for a in addrs {
                    out.insert(a.ip(), *max);
                }
            }
            Err(err) => {
                tracing::warn!(%host, error = %err, "max.connections.per.ip.overrides: cannot resolve host")
            }
        }
    }
    out
}

/// File descriptors kept out of reach of client connections: segments (three files
/// each), checkpoints, the ZooKeeper session, replica fetchers.
pub fn reserved_descriptors(fd_limit: u64) -> u64 {
    (fd_limit / 4).max(64)
}

/// The broker-wide connection cap: `max.connections`, but never more than the descriptor
/// limit leaves after [`reserved_descriptors`] (at least one connection).
pub fn connection_cap(max_connections: usize, fd_limit: u64) -> usize {
    let by_fds = fd_limit
        .saturating_sub(reserved_descriptors(fd_limit))
        .max(1);
    max_connections.min(usize::try_from(by_fds).unwrap_or(usize::MAX))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the JVM does the same for Kafka,
/// `-XX:+MaxFDLimit`) and returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_quota_admits_up_to_the_limit_and_frees_on_drop() {
        let quotas = PerIpQuotas::new(2, HashMap::from([(ip("10.0.0.9"), 0)]));
        let a = quotas.admit(ip("127.0.0.1")).unwrap();
        let _b = quotas.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(
            quotas.admit(ip("127.0.0.1")).err(),
            Some(TooManyConnections {
                ip: ip("127.0.0.1"),
                max: 2
            })
        );
        assert!(
            quotas.admit(ip("127.0.0.2")).is_ok(),
            "other addresses unaffected"
        );
        drop(a);
        assert_eq!(quotas.count(ip("127.0.0.1")), 1);
        assert!(quotas.admit(ip("127.0.0.1")).is_ok());
        assert!(
            quotas.admit(ip("10.0.0.9")).is_err(),
            "an override of 0 refuses all"
        );
        assert_eq!(quotas.count(ip("10.0.0.9")), 0);
    }

    #[test]
    fn overrides_accept_addresses_and_names() {
        let o = resolve_overrides(&[("127.0.0.7".into(), 5), ("localhost".into(), 9)]);
        assert_eq!(o.get(&ip("127.0.0.7")), Some(&5));
        assert_eq!(o.get(&ip("127.0.0.1")), Some(&9));
    }

    #[test]
    fn the_cap_leaves_descriptors_for_the_broker() {
        assert_eq!(connection_cap(usize::MAX, 1024), 768);
        assert_eq!(connection_cap(100, 1024), 100);
        assert_eq!(connection_cap(usize::MAX, 100), 36);
        assert_eq!(connection_cap(usize::MAX, 10), 1);
        assert_eq!(connection_cap(usize::MAX, 1 << 20), 786_432);
    }
}
