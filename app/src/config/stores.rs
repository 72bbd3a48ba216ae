//! The broker's own connections to its stores: TLS and credentials towards etcd, a CA
//! bundle and server-side encryption towards S3 (the `etcd.*` and `s3.*` settings). The
//! files are read here, at start-up, so a missing file or one without a certificate is an
//! error that names its setting.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use kafscale_adapters::{EtcdOptions, EtcdTls, S3Encryption, S3Settings};
use kafscale_core::settings::{self as s, Setting};

use super::{ConfigError, Values};

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// A setting's file: read, and checked with `check`.
fn pem_file(
    v: &Values,
    setting: &Setting,
    check: fn(&[u8]) -> Result<(), String>,
) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(path) = v.text(setting).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let pem = std::fs::read(&path)
        .map_err(|e| invalid(format!("{}: cannot read {path}: {e}", setting.name)))?;
    check(&pem).map_err(|why| invalid(format!("{}: {path}: {why}", setting.name)))?;
    Ok(Some(pem))
}

fn certificates(pem: &[u8]) -> Result<(), String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(())
}

fn private_key(pem: &[u8]) -> Result<(), String> {
    PrivateKeyDer::from_pem_slice(pem)
        .map(|_| ())
        .map_err(|e| format!("no unencrypted private key (PKCS#8, PKCS#1 or SEC1) found: {e}"))
}

fn text(v: &Values, setting: &Setting) -> Option<String> {
    v.text(setting).filter(|t| !t.is_empty())
}

/// TLS and credentials towards etcd.
pub(super) fn etcd(v: &Values) -> Result<EtcdOptions, ConfigError> {
    let ca_pem = pem_file(v, &s::ETCD_TLS_CA_FILE, certificates)?;
    let cert = pem_file(v, &s::ETCD_TLS_CERT_FILE, certificates)?;
    let key = pem_file(v, &s::ETCD_TLS_KEY_FILE, private_key)?;
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "etcd.tls.cert.file and etcd.tls.key.file go together: set both or neither",
            ))
        }
    };
    let tls = (ca_pem.is_some() || identity.is_some()).then_some(EtcdTls { ca_pem, identity });
    let user = match (text(v, &s::ETCD_USERNAME), v.text(&s::ETCD_PASSWORD)) {
        (Some(user), Some(password)) => Some((user, password)),
        (None, None) => None,
        (Some(_), None) => return Err(invalid("etcd.username is set without etcd.password")),
        (None, Some(_)) => return Err(invalid("etcd.password is set without etcd.username")),
    };
    Ok(EtcdOptions { tls, user })
}

/// The CA bundle and server-side encryption of S3; the endpoint and credentials come from
/// the `AWS_*` environment.
/// Encryption at rest, if a key file is set.
pub(super) fn encryption(v: &Values) -> Option<super::Encryption> {
    let keys = v.text(&s::ENCRYPTION_KEYS).filter(|f| !f.is_empty())?;
    Some(super::Encryption {
        keys: keys.into(),
        allow_unencrypted: v.bool(&s::ENCRYPTION_ALLOW_UNENCRYPTED),
    })
}

pub(super) fn s3(v: &Values) -> Result<S3Settings, ConfigError> {
    let key_id = text(v, &s::S3_SSE_KMS_KEY_ID);
    let encryption = match (v.text(&s::S3_SSE_TYPE).as_deref(), key_id) {
        (Some("AES256"), None) => Some(S3Encryption::S3),
        (Some("aws:kms"), key_id) => Some(S3Encryption::Kms { key_id }),
        (None, None) => None,
        (_, Some(_)) => {
            return Err(invalid(
                "s3.sse.kms.key.id is set but s3.sse.type is not aws:kms",
            ))
        }
        (Some(other), None) => {
            return Err(invalid(format!(
                "s3.sse.type: expected AES256 or aws:kms, got {other:?}"
            )))
        }
    };
    Ok(S3Settings {
        ca_pem: pem_file(v, &s::S3_TLS_CA_FILE, certificates)?,
        encryption,
        ..S3Settings::default()
    })
}

/// The broker refuses settings its stores would not use: `etcd.*` without an etcd
/// metadata store, `s3.*` without an S3 object store.
pub(super) fn check_used(
    v: &Values,
    object_store_url: &str,
    metadata_url: &str,
) -> Result<(), ConfigError> {
    let scheme = |url: &str| {
        url.trim()
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
    };
    let groups: [(&[Setting], &str, &str, &str); 2] = [
        (
            &[
                s::ETCD_TLS_CA_FILE,
                s::ETCD_TLS_CERT_FILE,
                s::ETCD_TLS_KEY_FILE,
                s::ETCD_USERNAME,
                s::ETCD_PASSWORD,
            ],
            "etcd",
            metadata_url,
            "metadata",
        ),
        (
            &[s::S3_TLS_CA_FILE, s::S3_SSE_TYPE, s::S3_SSE_KMS_KEY_ID],
            "s3",
            object_store_url,
            "object.store",
        ),
    ];
    for (settings, wanted, url, url_setting) in groups {
        if scheme(url).as_deref() == Some(wanted) {
            continue;
        }
        if let Some(set) = settings.iter().find(|s| v.is_set(s)) {
            return Err(invalid(format!(
                "{} is set but {url_setting} is not an {wanted}:// url ({url})",
                set.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn values(pairs: &[(&str, &str)]) -> Values {
        let map: BTreeMap<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        Values::parse(map).unwrap()
    }

    fn error(result: Result<impl std::fmt::Debug, ConfigError>) -> String {
        result.unwrap_err().to_string()
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUD5ZyxgEVZzqKbzKcVcmNmQaR1HMwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";

    #[test]
    fn etcd_files_are_read_and_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, CERT).unwrap();
        let ca = ca.to_str().unwrap();
        let o = etcd(&values(&[("etcd.tls.ca.file", ca)])).unwrap();
        assert_eq!(o.tls.unwrap().ca_pem.unwrap(), CERT.as_bytes());
        let missing = error(etcd(&values(&[(
            "etcd.tls.ca.file",
            "/nonexistent/ca.crt",
        )])));
        assert!(
            missing.contains("etcd.tls.ca.file: cannot read /nonexistent/ca.crt"),
            "{missing}"
        );
        let not_a_key = error(etcd(&values(&[
            ("etcd.tls.cert.file", ca),
            ("etcd.tls.key.file", ca),
        ])));
        assert!(
            not_a_key.contains("etcd.tls.key.file") && not_a_key.contains("private key"),
            "{not_a_key}"
        );
        let half = error(etcd(&values(&[("etcd.tls.cert.file", ca)])));
        assert!(
            half.contains("etcd.tls.cert.file and etcd.tls.key.file"),
            "{half}"
        );
    }

    #[test]
    fn etcd_credentials_come_in_pairs() {
        let o = etcd(&values(&[
            ("etcd.username", "root"),
            ("etcd.password", "pw"),
        ]))
        .unwrap();
        assert_eq!(o.user, Some(("root".into(), "pw".into())));
        assert!(
            !format!("{o:?}").contains("pw\""),
            "the password is never printed: {o:?}"
        );
        let no_password = error(etcd(&values(&[("etcd.username", "root")])));
        assert!(no_password.contains("etcd.password"), "{no_password}");
        let no_user = error(etcd(&values(&[("etcd.password", "pw")])));
        assert!(no_user.contains("etcd.username"), "{no_user}");
    }

    #[test]
    fn s3_encryption() {
        assert_eq!(s3(&values(&[])).unwrap().encryption, None);
        assert_eq!(
            s3(&values(&[("s3.sse.type", "AES256")]))
                .unwrap()
                .encryption,
            Some(S3Encryption::S3)
        );
        assert_eq!(
            s3(&values(&[
                ("s3.sse.type", "aws:kms"),
                ("s3.sse.kms.key.id", "alias/k")
            ]))
            .unwrap()
            .encryption,
            Some(S3Encryption::Kms {
                key_id: Some("alias/k".into())
            })
        );
        let stray = error(s3(&values(&[
            ("s3.sse.type", "AES256"),
            ("s3.sse.kms.key.id", "k"),
        ])));
        assert!(stray.contains("s3.sse.kms.key.id"), "{stray}");
        let map = BTreeMap::from([("s3.sse.type".to_owned(), serde_json::json!("aws:kms:dsse"))]);
        assert!(Values::parse(map)
            .unwrap_err()
            .to_string()
            .contains("s3.sse.type"));
    }

    #[test]
    fn settings_of_a_store_not_in_use_are_refused() {
        let v = values(&[("etcd.username", "root"), ("etcd.password", "pw")]);
        assert!(check_used(&v, "memory://", "etcd://127.0.0.1:2379").is_ok());
        let err = error(check_used(&v, "memory://", "embedded:///data/metadata"));
        assert!(
            err.contains("etcd.username is set but metadata is not an etcd:// url"),
            "{err}"
        );
        let v = values(&[("s3.sse.type", "AES256")]);
        assert!(check_used(&v, "s3://bucket/prefix", "memory://").is_ok());
        let err = error(check_used(&v, "file:///data/objects", "memory://"));
        assert!(
            err.contains("s3.sse.type is set but object.store is not an s3:// url"),
            "{err}"
        );
    }
}
