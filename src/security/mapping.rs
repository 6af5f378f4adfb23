//! `ssl.principal.mapping.rules` (KIP-371): a certificate's subject DN to a user name.
//! Rules are tried in order; `RULE:pattern/replacement/[LU]` applies when the pattern
//! matches the whole DN, `DEFAULT` yields the DN itself. No rule matching is an
//! authentication failure, as in Kafka's `SslPrincipalMapper`.

use regex::Regex;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<Case>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    pub fn parse(rules: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) = until_slash(r).ok_or("RULE: expected pattern/")?;
                let (replacement, r) = until_slash(r).ok_or("RULE: expected replacement/")?;
                let (case, r) = match r.chars().next() {
                    Some('L') => (Some(Case::Lower), &r[1..]),
                    Some('U') => (Some(Case::Upper), &r[1..]),
                    _ => (None, r),
                };
                // The rule must match the whole DN (Java's Matcher.matches()).
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("RULE pattern {pattern}: {e}"))?;
                out.push(Rule::Replace {
                    pattern,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = r;
            } else {
                return Err(format!("invalid rule at `{rest}`"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected `,` before `{rest}`")),
            }
        }
        if out.is_empty() {
            out.push(Rule::Default);
        }
        Ok(PrincipalMapper { rules: out })
    }

    /// The user name for `dn`, or `None` when no rule applies.
    pub fn name_of(&self, dn: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(dn.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if pattern.is_match(dn) {
                        let name = pattern.replace_all(dn, replacement.as_str()).into_owned();
                        return Some(match case {
                            Some(Case::Lower) => name.to_lowercase(),
                            Some(Case::Upper) => name.to_uppercase(),
                            None => name,
                        });
                    }
                }
            }
        }
        None
    }
}

/// Reads up to the next unescaped `/`; `\/` stands for `/`.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java's `$1` group references as the regex crate's `${1}` (so `$1a` stays group 1).
fn java_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(*d);
                chars.next();
            }
            out.push_str(&format!("${{{n}}}"));
        } else if c == '$' {
            out.push_str("$$");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_is_the_dn() {
        let m = PrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(m.name_of("CN=alice,O=acme").unwrap(), "CN=alice,O=acme");
    }

    #[test]
    fn rules_apply_in_order_with_case() {
        // The examples of Kafka's documentation (security.html, "SSL principal mapping").
        let m = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.name_of("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "serviceuser"
        );
        assert_eq!(
            m.name_of("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "adminuser@admin"
        );
        assert_eq!(m.name_of("OU=x,cn=bob.x").unwrap(), "BOB.X");
        assert_eq!(m.name_of("O=nocn").unwrap(), "O=nocn");
    }

    #[test]
    fn no_match_without_default_and_bad_rules() {
        let m = PrincipalMapper::parse("RULE:^CN=([a-z]+)$/$1/").unwrap();
        assert_eq!(m.name_of("CN=abc").unwrap(), "abc");
        assert_eq!(m.name_of("CN=ABC,O=x"), None);
        assert!(PrincipalMapper::parse("RULE:abc").is_err());
        assert!(PrincipalMapper::parse("BOGUS").is_err());
        assert!(PrincipalMapper::parse("RULE:(/x/ junk").is_err());
        let slash = PrincipalMapper::parse("RULE:^CN=(.*)$/a\\/$1/").unwrap();
        assert_eq!(slash.name_of("CN=b").unwrap(), "a/b");
    }
}
