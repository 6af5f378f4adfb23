//! Kafka's `sasl.jaas.config` values: `<LoginModule class> <flag> key="value" ... ;`.
//! Brokers read PLAIN users (`user_<name>="password"`) and their own client credentials
//! (`username`, `password`) from them; gregor's client reads its credentials.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasConfig {
    pub login_module: String,
    pub options: BTreeMap<String, String>,
}

impl JaasConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut tokens = Tokens { rest: text.trim() };
        let login_module = tokens
            .word()
            .ok_or("sasl.jaas.config: expected a login module class")?;
        let flag = tokens
            .word()
            .ok_or("sasl.jaas.config: expected a control flag")?;
        if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
            return Err(format!("sasl.jaas.config: invalid control flag {flag}"));
        }
        let mut options = BTreeMap::new();
        loop {
            tokens.skip_space();
            if tokens.rest.starts_with(';') {
                tokens.rest = tokens.rest[1..].trim();
                if !tokens.rest.is_empty() {
                    return Err("sasl.jaas.config: only one login module is allowed".into());
                }
                break;
            }
            let key = tokens
                .word()
                .ok_or("sasl.jaas.config: expected key=value or `;`")?;
            let (key, value) = match key.split_once('=') {
                Some((k, v)) if !v.is_empty() => (k.to_string(), v.to_string()),
                Some((k, _)) => (k.to_string(), tokens.value()?),
                None => {
                    tokens.skip_space();
                    tokens.rest = tokens
                        .rest
                        .strip_prefix('=')
                        .ok_or("sasl.jaas.config: expected `=`")?;
                    (key, tokens.value()?)
                }
            };
            options.insert(key, value);
        }
        Ok(JaasConfig {
            login_module,
            options,
        })
    }

    /// `user_<name>` options: the users a PLAIN listener accepts.
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v.clone())))
            .collect()
    }

    pub fn username(&self) -> Option<&str> {
        self.options.get("username").map(String::as_str)
    }

    pub fn password(&self) -> Option<&str> {
        self.options.get("password").map(String::as_str)
    }
}

struct Tokens<'a> {
    rest: &'a str,
}

impl Tokens<'_> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// A bare word up to whitespace, `;` or a quote.
    fn word(&mut self) -> Option<String> {
        self.skip_space();
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || c == ';' || c == '"')
            .unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let w = self.rest[..end].to_string();
        self.rest = &self.rest[end..];
        Some(w)
    }

    /// A value: `"quoted"` (with `\"` and `\\` escapes) or a bare word.
    fn value(&mut self) -> Result<String, String> {
        self.skip_space();
        let Some(quoted) = self.rest.strip_prefix('"') else {
            return self
                .word()
                .ok_or_else(|| "sasl.jaas.config: expected a value".into());
        };
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                '"' => {
                    self.rest = &quoted[i + 1..];
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err("sasl.jaas.config: unterminated quoted value".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafkas_plain_login_module() {
        let j = JaasConfig::parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="a \"q\" b";"#,
        )
        .unwrap();
        assert_eq!(
            j.login_module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(j.username(), Some("admin"));
        assert_eq!(j.password(), Some("admin-secret"));
        let users = j.plain_users();
        assert_eq!(users["alice"], "a \"q\" b");
        assert_eq!(users.len(), 2);
        let j = JaasConfig::parse(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=bob password = pw;",
        )
        .unwrap();
        assert_eq!(j.username(), Some("bob"));
        assert_eq!(j.password(), Some("pw"));
    }

    #[test]
    fn rejects_malformed() {
        assert!(JaasConfig::parse("").is_err());
        assert!(JaasConfig::parse("Mod bogus a=b;").is_err());
        assert!(JaasConfig::parse("Mod required a=\"b;").is_err());
        assert!(JaasConfig::parse("Mod required a=b").is_err());
        assert!(JaasConfig::parse("Mod required a=b; Other required;").is_err());
    }
}
