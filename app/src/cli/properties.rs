//! The two text formats Kafka's client configuration comes in: Java properties files
//! (`--command-config`) and the JAAS line of `sasl.jaas.config`. Only what Kafka's own tools
//! accept is accepted, so a file written for `kafka-topics.sh` works here unchanged.

use std::collections::BTreeMap;

/// Keys and values of a Java properties file, as `java.util.Properties.load` reads them:
/// `#` and `!` comments, `=`, `:` or whitespace between key and value, a backslash at the
/// end of a line continues it, `\t \n \r \f \uXXXX` escapes. A key set twice keeps its
/// last value, as Java does.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let mut logical = line.trim_start().to_owned();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_in_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_entry(&logical);
        let key = unescape(key).map_err(|e| format!("line {}: {e}", number + 1))?;
        let value = unescape(value).map_err(|e| format!("line {}: {e}", number + 1))?;
        out.insert(key, value);
    }
    Ok(out)
}

/// An odd number of trailing backslashes: the last one escapes the line break.
fn ends_in_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// The raw key and value of a logical line (escapes still in).
fn split_entry(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || c.is_whitespace() {
            end = i;
            break;
        }
    }
    let key = &line[..end];
    let mut rest = line[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':')) {
        rest = r.trim_start();
    }
    (key, rest)
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad \\u escape \\u{hex}"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// The login module of a JAAS line, which tells PLAIN from SCRAM credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginModule {
    Plain,
    Scram,
}

/// What a `sasl.jaas.config` line holds. The password is kept out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Jaas {
    pub module: LoginModule,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Jaas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jaas")
            .field("module", &self.module)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

/// `MODULE FLAG key="value" ...;` with one module, as Kafka takes it in `sasl.jaas.config`.
pub fn parse_jaas(text: &str) -> Result<Jaas, String> {
    let body = text
        .trim()
        .strip_suffix(';')
        .ok_or("must end with ';'")?
        .trim();
    let (module, rest) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    let module = match module {
        PLAIN_MODULE => LoginModule::Plain,
        SCRAM_MODULE => LoginModule::Scram,
        other => {
            return Err(format!(
                "login module {other} is not supported (use {PLAIN_MODULE} or {SCRAM_MODULE})"
            ))
        }
    };
    let rest = rest.trim_start();
    let (flag, mut rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !["required", "requisite", "sufficient", "optional"].contains(&flag) {
        return Err(format!(
            "expected a control flag such as 'required', got {flag:?}"
        ));
    }
    let mut options = BTreeMap::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("expected key=value at {rest:?}"))?;
        let (value, after) = jaas_value(after.trim_start())?;
        options.insert(key.trim().to_owned(), value);
        rest = after;
    }
    let mut take = |key: &str| {
        options
            .remove(key)
            .ok_or_else(|| format!("no {key} option"))
    };
    Ok(Jaas {
        module,
        username: take("username")?,
        password: take("password")?,
    })
}

/// A quoted (with `\"` and `\\` escapes) or bare value, and what follows it.
fn jaas_value(text: &str) -> Result<(String, &str), String> {
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        return Ok((text[..end].to_owned(), &text[end..]));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &quoted[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated quoted value".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_syntax() {
        let text = "# comment\n! also a comment\n\n  a=1\nb : two words  \nc three\n\
                    d=one\\\n    two\ne\\=f=\\u0041\\t\ng=\nsasl.jaas.config=x \\\n  y;\n";
        let p = parse_properties(text).unwrap();
        assert_eq!(p["a"], "1");
        assert_eq!(p["b"], "two words  ");
        assert_eq!(p["c"], "three");
        assert_eq!(p["d"], "onetwo");
        assert_eq!(p["e=f"], "A\t");
        assert_eq!(p["g"], "");
        assert_eq!(p["sasl.jaas.config"], "x y;");
        assert_eq!(p.len(), 7);
        assert!(parse_properties("k=\\u12").is_err());
    }

    #[test]
    fn jaas_lines_of_both_modules() {
        let j = parse_jaas(
            "org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"alice\" password=\"p\\\"w d\";",
        )
        .unwrap();
        assert_eq!(j.module, LoginModule::Scram);
        assert_eq!(
            (j.username.as_str(), j.password.as_str()),
            ("alice", "p\"w d")
        );
        assert!(!format!("{j:?}").contains("p\\\"w"));
        let j = parse_jaas(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=bob password=x;",
        )
        .unwrap();
        assert_eq!(j.module, LoginModule::Plain);
        assert_eq!((j.username.as_str(), j.password.as_str()), ("bob", "x"));
    }

    #[test]
    fn bad_jaas_lines_say_why() {
        let scram = "org.apache.kafka.common.security.scram.ScramLoginModule";
        for (line, why) in [
            (
                format!("{scram} required username=\"a\" password=\"b\""),
                "end with ';'",
            ),
            (
                format!("{scram} username=\"a\" password=\"b\";"),
                "control flag",
            ),
            (format!("{scram} required username=\"a\";"), "no password"),
            (
                format!("{scram} required username=\"a\" password=\"b;"),
                "unterminated",
            ),
            (
                "com.sun.security.auth.module.Krb5LoginModule required;".into(),
                "not supported",
            ),
        ] {
            let e = parse_jaas(&line).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
