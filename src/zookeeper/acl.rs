//! ACLs and authentication, as ZooKeeper's built-in `world`, `auth`, `digest` and `ip`
//! providers do them: validating ACLs on create/setACL (`fixupACL`), checking permissions
//! (`checkACL`), and turning an `addauth digest user:password` into the `digest` id
//! `user:base64(sha1(user:password))`.

use std::net::IpAddr;

use super::proto::{Acl, Code, Id};

/// `PrepRequestProcessor.fixupACL`: removes duplicates, rejects empty or invalid ACLs,
/// and expands the `auth` scheme into the caller's authenticated ids.
pub fn fixup(acl: Option<&[Acl]>, auth: &[Id]) -> Result<Vec<Acl>, Code> {
    let mut uniq: Vec<Acl> = Vec::new();
    for a in acl.unwrap_or(&[]) {
        if !uniq.contains(a) {
            uniq.push(a.clone());
        }
    }
    if uniq.is_empty() {
        return Err(Code::InvalidAcl);
    }
    let mut out = Vec::new();
    for a in uniq {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a);
        } else if a.id.scheme == "auth" {
            let mut valid = false;
            for id in auth {
                // Only providers that "authenticate" count (digest does, ip does not).
                if id.scheme == "digest" {
                    valid = true;
                    out.push(Acl {
                        perms: a.perms,
                        id: id.clone(),
                    });
                }
            }
            if !valid {
                return Err(Code::InvalidAcl);
            }
        } else if is_valid_id(&a.id) {
            out.push(a);
        } else {
            return Err(Code::InvalidAcl);
        }
    }
    Ok(out)
}

fn is_valid_id(id: &Id) -> bool {
    match id.scheme.as_str() {
        "digest" => {
            // Java's `split(":")` drops trailing empty parts.
            let mut parts: Vec<&str> = id.id.split(':').collect();
            while parts.last() == Some(&"") {
                parts.pop();
            }
            parts.len() == 2
        }
        "ip" => parse_ip_expr(&id.id).is_some(),
        _ => false,
    }
}

fn ip_bytes(s: &str) -> Option<Vec<u8>> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(a.octets().to_vec()),
        IpAddr::V6(a) => Some(a.octets().to_vec()),
    }
}

/// `addr[/bits]` → (address bytes, prefix bits).
fn parse_ip_expr(expr: &str) -> Option<(Vec<u8>, usize)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let bytes = ip_bytes(addr)?;
    let max = bytes.len() * 8;
    let bits = match bits {
        Some(b) => b.parse::<usize>().ok().filter(|b| *b <= max)?,
        None => max,
    };
    Some((bytes, bits))
}

fn ip_matches(id: &str, expr: &str) -> bool {
    let (Some((acl, bits)), Some(remote)) = (parse_ip_expr(expr), ip_bytes(id)) else {
        return false;
    };
    if remote.len() != acl.len() {
        return false;
    }
    (0..bits).all(|i| {
        let (byte, bit) = (i / 8, 7 - (i % 8));
        (acl[byte] >> bit) & 1 == (remote[byte] >> bit) & 1
    })
}

/// `ZooKeeperServer.checkACL`: ok if any entry grants one of `perm`'s bits to the world
/// or to one of the caller's ids.
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), Code> {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return Ok(());
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        for id in auth.iter().filter(|id| id.scheme == a.id.scheme) {
            let ok = match a.id.scheme.as_str() {
                "ip" => ip_matches(&id.id, &a.id.id),
                _ => id.id == a.id.id,
            };
            if ok {
                return Ok(());
            }
        }
    }
    Err(Code::NoAuth)
}

/// The ids an `addauth` packet authenticates, or `None` for an unknown scheme. A digest
/// equal to `super_digest` also gets the `super` id, which passes every ACL check
/// (`DigestAuthenticationProvider.handleAuthentication`).
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    remote_ip: &str,
    super_digest: Option<&str>,
) -> Option<Vec<Id>> {
    match scheme {
        "digest" => {
            let id_password = String::from_utf8_lossy(auth);
            let user = id_password.split(':').next().unwrap_or_default();
            let digest = base64(&sha1(id_password.as_bytes()));
            let id = Id {
                scheme: "digest".into(),
                id: format!("{user}:{digest}"),
            };
            let mut ids = Vec::with_capacity(2);
            if super_digest == Some(id.id.as_str()) {
                ids.push(Id {
                    scheme: "super".into(),
                    id: String::new(),
                });
            }
            ids.push(id);
            Some(ids)
        }
        "ip" => Some(vec![Id {
            scheme: "ip".into(),
            id: remote_ip.to_string(),
        }]),
        _ => None,
    }
}

/// SHA-1 (FIPS 180-4), only for digest ids.
pub fn sha1(msg: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut data = msg.to_vec();
    let bit_len = (msg.len() as u64).wrapping_mul(8);
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&bit_len.to_be_bytes());
    for block in data.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zookeeper::proto::perms;

    fn id(s: &str, i: &str) -> Id {
        Id {
            scheme: s.into(),
            id: i.into(),
        }
    }

    #[test]
    fn sha1_and_base64_known_answers() {
        assert_eq!(base64(&sha1(b"abc")), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        // The digest ZooKeeper documents for super:test.
        assert_eq!(
            authenticate("digest", b"super:test", "", None).unwrap(),
            vec![id("digest", "super:D/InIHSb7yEEbrWz8b9l71RjZJU=")]
        );
    }

    #[test]
    fn super_digest_adds_the_super_id() {
        let sup = Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        let ids = authenticate("digest", b"super:test", "", sup).unwrap();
        assert_eq!(
            ids,
            vec![
                id("super", ""),
                id("digest", "super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
            ]
        );
        // Passes any ACL, even one that grants nothing to anyone it names.
        let locked = [Acl {
            perms: perms::READ,
            id: id("digest", "other:x"),
        }];
        assert!(check(&locked, perms::ADMIN, &ids).is_ok());
        // A wrong password is a plain digest id, without super.
        let ids = authenticate("digest", b"super:wrong", "", sup).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(check(&locked, perms::READ, &ids), Err(Code::NoAuth));
        // `auth` never expands to the super id (it has no authenticating provider).
        let ids = authenticate("digest", b"super:test", "", sup).unwrap();
        let auth = Acl {
            perms: perms::ALL,
            id: id("auth", ""),
        };
        assert_eq!(
            fixup(Some(&[auth]), &ids),
            Ok(vec![Acl {
                perms: perms::ALL,
                id: id("digest", "super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
            }])
        );
    }

    #[test]
    fn fixup_validates_and_expands() {
        let world = Acl::world(perms::ALL);
        assert_eq!(fixup(Some(&[]), &[]), Err(Code::InvalidAcl));
        assert_eq!(fixup(None, &[]), Err(Code::InvalidAcl));
        assert_eq!(
            fixup(Some(&[world.clone(), world.clone()]), &[]),
            Ok(vec![world.clone()])
        );
        let auth = Acl {
            perms: perms::READ,
            id: id("auth", ""),
        };
        assert_eq!(
            fixup(Some(std::slice::from_ref(&auth)), &[id("ip", "127.0.0.1")]),
            Err(Code::InvalidAcl)
        );
        let me = id("digest", "u:abc");
        assert_eq!(
            fixup(Some(&[auth]), std::slice::from_ref(&me)),
            Ok(vec![Acl {
                perms: perms::READ,
                id: me
            }])
        );
        for bad in [
            id("world", "x"),
            id("foo", "x"),
            id("digest", "nocolon"),
            id("ip", "1.2.3.4/40"),
        ] {
            assert_eq!(
                fixup(Some(&[Acl { perms: 1, id: bad }]), &[]),
                Err(Code::InvalidAcl)
            );
        }
        assert!(fixup(
            Some(&[Acl {
                perms: 1,
                id: id("ip", "10.0.0.0/8")
            }]),
            &[]
        )
        .is_ok());
    }

    #[test]
    fn check_permissions() {
        let acl = vec![
            Acl {
                perms: perms::READ,
                id: id("ip", "127.0.0.0/8"),
            },
            Acl {
                perms: perms::ALL,
                id: id("digest", "u:x"),
            },
        ];
        assert!(check(&acl, perms::READ, &[id("ip", "127.0.0.1")]).is_ok());
        assert_eq!(
            check(&acl, perms::WRITE, &[id("ip", "127.0.0.1")]),
            Err(Code::NoAuth)
        );
        assert!(check(&acl, perms::WRITE, &[id("digest", "u:x")]).is_ok());
        assert!(check(&[], perms::WRITE, &[]).is_ok());
        assert!(check(&[Acl::world(perms::READ)], perms::READ, &[]).is_ok());
        assert_eq!(
            check(&[Acl::world(perms::READ)], perms::DELETE, &[]),
            Err(Code::NoAuth)
        );
    }
}
