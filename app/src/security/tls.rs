//! TLS listeners with rustls: the key and chain from PEM, optional client certificates
//! checked against a CA bundle, TLS 1.2 and 1.3 only. Certificates given as files are
//! reloaded when the files change; a reload that fails keeps the previous certificates and
//! says why in the log, so a half-written file never takes a listener down.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::{ClientAuth, TlsVersion};
use crate::config::{Keystore, Pem, TlsConfig};

/// How often certificate files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub(crate) fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub(crate) fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate found"));
    }
    Ok(certs)
}

/// The chain and key of a key store.
fn keystore(
    keystore: &Keystore,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let (chain_pem, key_pem, what) = match keystore {
        Keystore::File(path) => {
            let pem = read(path)?;
            (pem.clone(), pem, path.display().to_string())
        }
        Keystore::Inline { chain, key } => (
            chain.clone().into_bytes(),
            key.clone().into_bytes(),
            "ssl.keystore.certificate.chain".to_owned(),
        ),
    };
    let chain = certificates(&chain_pem, &what)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!("{what}: no unencrypted private key (PKCS#8, PKCS#1 or SEC1) found: {e}")
    })?;
    Ok((chain, key))
}

fn pem_bytes(pem: &Pem) -> Result<Vec<u8>, String> {
    match pem {
        Pem::File(path) => read(path),
        Pem::Inline(text) => Ok(text.clone().into_bytes()),
    }
}

/// Builds the rustls configuration of a TLS listener.
pub fn server_config(config: &TlsConfig) -> Result<ServerConfig, String> {
    let provider = provider();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = config
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::V1_2 => &rustls::version::TLS12,
            TlsVersion::V1_3 => &rustls::version::TLS13,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match (&config.truststore, config.client_auth) {
        (_, ClientAuth::None) | (None, _) => builder.with_no_client_auth(),
        (Some(truststore), auth) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(&pem_bytes(truststore)?, "trust store")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("trust store: bad CA certificate: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("client certificate verifier: {e}"))?,
            )
        }
    };
    let (chain, key) = keystore(&config.keystore)?;
    builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("key store: {e}"))
}

/// The files a configuration reads, whose changes trigger a reload.
fn watched_files(config: &TlsConfig) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Keystore::File(path) = &config.keystore {
        files.push(path.clone());
    }
    if let Some(Pem::File(path)) = &config.truststore {
        files.push(path.clone());
    }
    files
}

/// What the watched files look like now: a reload happens when this changes.
fn stamp(files: &[std::path::PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// A TLS listener's current configuration, swapped in place when its files change.
pub struct Certificates {
    config: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    stamp: RwLock<Vec<Option<(SystemTime, u64)>>>,
}

impl Certificates {
    pub fn load(config: &TlsConfig) -> Result<Certificates, String> {
        let server = server_config(config)?;
        Ok(Certificates {
            stamp: RwLock::new(stamp(&watched_files(config))),
            config: config.clone(),
            current: RwLock::new(Arc::new(server)),
        })
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads if a watched file changed. Returns whether new certificates are in use.
    pub fn reload_if_changed(&self, listener: &str) -> bool {
        let files = watched_files(&self.config);
        let now = stamp(&files);
        {
            let Ok(mut last) = self.stamp.write() else {
                return false;
            };
            if *last == now {
                return false;
            }
            *last = now;
        }
        match server_config(&self.config) {
            Ok(server) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(server);
                }
                tracing::info!(listener, "TLS certificates reloaded");
                true
            }
            Err(error) => {
                tracing::error!(listener, %error, "TLS certificates changed but cannot be loaded; keeping the previous ones");
                false
            }
        }
    }
}
