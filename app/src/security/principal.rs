//! The principal of a client certificate: its subject as an RFC 2253 name (what Java's
//! `X500Principal.getName()` gives Kafka, e.g. `CN=app,OU=eng,O=Example,C=US`), mapped by
//! `ssl.principal.mapping.rules`.
//!
//! The subject is read with a few lines of DER: the certificate has already been verified
//! by rustls, but the reader still treats it as untrusted bytes and never panics.

use regex::Regex;

/// One of Kafka's principal mapping rules.
#[derive(Debug, Clone)]
enum Rule {
    /// The whole subject, unchanged.
    Default,
    Replace {
        /// Anchored: the rule applies when it matches the whole subject.
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// `ssl.principal.mapping.rules`: tried in order; the first that matches names the principal.
#[derive(Debug, Clone)]
pub struct PrincipalRules {
    rules: Vec<Rule>,
}

/// Text up to the first `/` not preceded by a backslash, unescaped, and what follows it.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if text[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java's `$1` group references as the regex crate writes them (`${1}`), so that a digit
/// or letter after the reference is not read as part of its name.
fn java_replacement(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    out.push(d);
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

impl PrincipalRules {
    /// Parses Kafka's form: `DEFAULT` and `RULE:pattern/replacement/[LU]`, separated by
    /// commas or newlines (a pattern may itself hold commas).
    pub fn parse(text: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let bad = || format!("unterminated rule {rest:?} (RULE:pattern/replacement/[LU])");
                let (pattern, after) = until_slash(after).ok_or_else(bad)?;
                let (replacement, after) = until_slash(after).ok_or_else(bad)?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
                rules.push(Rule::Replace {
                    pattern,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!("expected DEFAULT or RULE:, got {rest:?}"));
            }
            rest = rest.trim_start_matches([' ', '\t']);
            match rest.chars().next() {
                Some(',' | '\n') => rest = rest[1..].trim_start(),
                None => {}
                Some(_) => return Err(format!("expected a comma before {rest:?}")),
            }
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(PrincipalRules { rules })
    }

    /// The principal name of a certificate subject, `None` when no rule matches it (the
    /// client is then refused, as Kafka does).
    pub fn apply(&self, subject: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(subject.to_owned()),
            Rule::Replace {
                pattern,
                replacement,
                case,
            } => {
                if !pattern.is_match(subject) {
                    return None;
                }
                let name = pattern.replace(subject, replacement.as_str()).into_owned();
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        })
    }
}

/// A minimal DER reader: tag, then content, for the definite lengths certificates use.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        if rest.len() < len {
            return None;
        }
        let (content, after) = rest.split_at(len);
        self.0 = after;
        Some((tag, content))
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

fn oid_text(bytes: &[u8]) -> Option<String> {
    let (&first, rest) = bytes.split_first()?;
    let mut parts = vec![u64::from(first / 40), u64::from(first % 40)];
    let mut value = 0u64;
    for &b in rest {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            parts.push(value);
            value = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The attribute names Java's RFC 2253 form uses; others appear as their OID.
fn attribute_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        other => other,
    }
    .to_owned()
}

fn string_value(tag: u8, bytes: &[u8]) -> String {
    match tag {
        // BMPString: UTF-16 big endian.
        0x1e => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::new();
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The subject of a DER certificate in RFC 2253 form, most specific attribute first.
pub fn certificate_subject(der: &[u8]) -> Option<String> {
    let (tag, cert) = Der(der).next()?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs) = Der(cert).next()?;
    if tag != SEQUENCE {
        return None;
    }
    let mut fields = Der(tbs);
    if fields.next()?.0 == 0xa0 {
        // That was the explicit version; the serial number follows.
        fields.next()?;
    }
    // Then the signature algorithm, the issuer, the validity and the subject.
    for _ in 0..3 {
        fields.next()?;
    }
    let (tag, subject) = fields.next()?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rdns = Vec::new();
    let mut sets = Der(subject);
    while let Some((tag, set)) = sets.next() {
        if tag != SET {
            return None;
        }
        let mut attributes = Vec::new();
        let mut items = Der(set);
        while let Some((tag, pair)) = items.next() {
            if tag != SEQUENCE {
                return None;
            }
            let mut pair = Der(pair);
            let (tag, oid) = pair.next()?;
            if tag != OID {
                return None;
            }
            let (value_tag, value) = pair.next()?;
            attributes.push(format!(
                "{}={}",
                attribute_name(&oid_text(oid)?),
                escape(&string_value(value_tag, value))
            ));
        }
        rdns.push(attributes.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_and_rules_map_as_kafka_documents() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?).*$/$1@$2/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules
                .apply("CN=kafka-app,OU=ServiceUsers,O=Example,C=US")
                .as_deref(),
            Some("kafka-app")
        );
        assert_eq!(
            rules.apply("CN=Admin,OU=Ops,O=Example,C=US").as_deref(),
            Some("admin@ops")
        );
        assert_eq!(rules.apply("C=US").as_deref(), Some("C=US"));
        let strict = PrincipalRules::parse("RULE:^CN=([a-z]+)$/$1/U").unwrap();
        assert_eq!(strict.apply("CN=abc").as_deref(), Some("ABC"));
        assert_eq!(strict.apply("CN=abc,O=x"), None);
        assert_eq!(
            PrincipalRules::parse("").unwrap().apply("CN=x").as_deref(),
            Some("CN=x")
        );
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        assert!(PrincipalRules::parse("RULE:^CN=(.*$/$1/")
            .unwrap_err()
            .contains("bad pattern"));
        assert!(PrincipalRules::parse("RULE:abc")
            .unwrap_err()
            .contains("unterminated"));
        assert!(PrincipalRules::parse("NOPE")
            .unwrap_err()
            .contains("DEFAULT or RULE"));
    }

    #[test]
    fn escapes_follow_rfc_2253() {
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape(" lead"), "\\ lead");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("trail "), "trail\\ ");
    }

    #[test]
    fn garbage_is_not_a_subject_and_does_not_panic() {
        for bytes in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x02, 0x30, 0x00],
        ] {
            assert_eq!(certificate_subject(bytes), None);
        }
    }
}
