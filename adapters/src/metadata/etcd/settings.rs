//! Where and how to reach etcd: the metadata URL's parts (endpoints, scheme, credentials,
//! key prefix) and the TLS and credentials given apart from it.

use kafscale_core::ports::MetadataError;

/// Where and how to reach etcd, from
/// `etcd://[user:password@][http[s]://]host:port[,[http[s]://]host:port...][/prefix]`.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `host:port`, without a scheme.
    pub endpoints: Vec<String>,
    /// The scheme the URL wrote on its endpoints: `Some(true)` for `https://`,
    /// `Some(false)` for `http://`, `None` when it wrote none.
    pub https: Option<bool>,
    pub user: Option<(String, String)>,
    /// Key namespace: every key lives under `<prefix>/`.
    pub prefix: String,
}

/// What the metadata URL does not say: TLS towards etcd and credentials given apart from
/// the URL (the broker's `etcd.*` settings).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EtcdOptions {
    /// TLS; `None` with `https://` endpoints is TLS checked against the system's roots.
    pub tls: Option<EtcdTls>,
    pub user: Option<(String, String)>,
}

/// TLS towards etcd, all PEM.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificates etcd's server certificates are checked against; `None`: the
    /// system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate (chain) and its key, for etcd's `--client-cert-auth`.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("endpoints", &self.endpoints)
            .field("https", &self.https)
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("tls", &self.tls)
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("EtcdTls")
            .field("ca", &self.ca_pem.as_ref().map(|_| "PEM"))
            .field("client_certificate", &self.identity.as_ref().map(|_| "PEM"))
            .finish()
    }
}

/// Splits off an `http://` or `https://` written before the next `,` or `/`.
fn endpoint_scheme(rest: &str) -> Result<(Option<bool>, &str), String> {
    let next = rest.find([',', '/']).unwrap_or(rest.len());
    match rest.find("://") {
        Some(i) if i < next => match rest[..i].to_ascii_lowercase().as_str() {
            "https" => Ok((Some(true), &rest[i + 3..])),
            "http" => Ok((Some(false), &rest[i + 3..])),
            other => Err(format!("unknown endpoint scheme {other:?} (http or https)")),
        },
        _ => Ok((None, rest)),
    }
}

impl EtcdSettings {
    /// Parses the part of the URL after `etcd://`.
    pub fn parse(rest: &str) -> Result<EtcdSettings, MetadataError> {
        let bad = |why: &str| MetadataError::Fatal {
            message: format!(
                "etcd url: {why}; expected \
                 etcd://[user:password@][https://]host:port[,[https://]host:port...][/prefix]"
            ),
        };
        let (auth, mut rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let user = match auth {
            None => None,
            Some(a) => match a.split_once(':') {
                Some((u, p)) if !u.is_empty() => Some((u.to_owned(), p.to_owned())),
                _ => return Err(bad("credentials must be user:password")),
            },
        };
        let mut endpoints = Vec::new();
        let mut schemes = Vec::new();
        let prefix = loop {
            let (scheme, after) = endpoint_scheme(rest).map_err(|why| bad(&why))?;
            let end = after.find([',', '/']).unwrap_or(after.len());
            let endpoint = after[..end].trim();
            if !endpoint.is_empty() {
                endpoints.push(endpoint.to_owned());
                schemes.push(scheme);
            }
            match after[end..].chars().next() {
                Some(',') => rest = &after[end + 1..],
                Some(_) => break after[end + 1..].trim_matches('/'),
                None => break "",
            }
        };
        if endpoints.is_empty() {
            return Err(bad("no endpoint"));
        }
        let https = schemes[0];
        if schemes.iter().any(|s| *s != https) {
            return Err(bad("every endpoint must be written with the same scheme"));
        }
        Ok(EtcdSettings {
            endpoints,
            https,
            user,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }
}

pub(super) fn tls_options(tls: EtcdTls) -> etcd_client::TlsOptions {
    let options = etcd_client::TlsOptions::new();
    let options = match tls.ca_pem {
        Some(ca) => options.ca_certificate(etcd_client::Certificate::from_pem(ca)),
        None => options.with_native_roots(),
    };
    match tls.identity {
        Some((cert, key)) => options.identity(etcd_client::Identity::from_pem(cert, key)),
        None => options,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::EtcdSettings;

    #[test]
    fn urls_with_credentials_and_prefix_parse() {
        let s = EtcdSettings::parse("alice:s3cret@10.0.0.1:2379,10.0.0.2:2379/team-a").unwrap();
        assert_eq!(s.endpoints, vec!["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(s.user, Some(("alice".into(), "s3cret".into())));
        assert_eq!(s.prefix, "team-a/");
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "password must not be logged"
        );
        let plain = EtcdSettings::parse("127.0.0.1:2379").unwrap();
        assert_eq!(plain.prefix, "");
        assert_eq!(plain.user, None);
        assert_eq!(plain.https, None);
        let tls =
            EtcdSettings::parse("u:p@https://10.0.0.1:2379,HTTPS://10.0.0.2:2379/ns").unwrap();
        assert_eq!(tls.endpoints, vec!["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(tls.https, Some(true));
        assert_eq!(tls.prefix, "ns/");
        assert_eq!(
            EtcdSettings::parse("http://h:1").unwrap().https,
            Some(false)
        );
        assert!(EtcdSettings::parse("https://h:1,http://h:2").is_err());
        assert!(EtcdSettings::parse("https://h:1,h:2").is_err());
        assert!(EtcdSettings::parse("ftp://h:1").is_err());
        assert!(EtcdSettings::parse("/prefix").is_err());
        assert!(EtcdSettings::parse("nopassword@host:1").is_err());
    }
}
