//! Znode path rules, as ZooKeeper's `PathUtils.validatePath` applies them.
//!
//! ZooKeeper checks Java `char`s (UTF-16 code units), so any character outside the Basic
//! Multilingual Plane (a surrogate pair in Java) is rejected, as are control characters,
//! the private use area and U+FFF0..U+FFFF.

/// Returns whether `path` is a valid absolute znode path.
pub fn is_valid(path: &str) -> bool {
    let chars: Vec<u16> = path.encode_utf16().collect();
    if chars.is_empty() || chars[0] != u16::from(b'/') {
        return false;
    }
    if chars.len() == 1 {
        return true;
    }
    if chars[chars.len() - 1] == u16::from(b'/') {
        return false;
    }
    let slash = u16::from(b'/');
    let dot = u16::from(b'.');
    let mut last = slash;
    for i in 1..chars.len() {
        let c = chars[i];
        let next_is_end_or_slash = i + 1 == chars.len() || chars[i + 1] == slash;
        if c == 0 {
            return false;
        } else if c == slash && last == slash {
            return false; // empty node name
        } else if c == dot && last == dot {
            if chars[i - 2] == slash && next_is_end_or_slash {
                return false; // ".." component
            }
        } else if c == dot {
            if chars[i - 1] == slash && next_is_end_or_slash {
                return false; // "." component
            }
        } else if (0x0001..=0x001f).contains(&c)
            || (0x007f..=0x009f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || (0xfff0..=0xffff).contains(&c)
        {
            return false;
        }
        last = c;
    }
    true
}

/// The parent of `path` the way ZooKeeper derives it (`path.substring(0, lastSlash)`),
/// with the empty string mapped to the root. `None` when the path has no slash at all.
pub fn parent(path: &str) -> Option<&str> {
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

/// The last component of `path`.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `parent` + "/" + `child`, without doubling the root's slash.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Whether `path` is `prefix` itself or lies under it.
pub fn is_under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_zookeeper() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/...", "/é", "/a b"] {
            assert!(is_valid(ok), "{ok} should be valid");
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a\0b",
            "/a\u{1}",
            "/\u{7f}",
            "/\u{e000}",
            "/\u{fff0}",
            "/😀",
        ] {
            assert!(!is_valid(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("a/b"), Some("a"));
        assert_eq!(parent("ab"), None);
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_under("/a/b", "/a"));
        assert!(!is_under("/ab", "/a"));
        assert!(is_under("/a", "/"));
    }
}
