//! The client side of TLS: a rustls configuration from PEM files (aws-lc-rs, as the broker
//! uses), and the byte stream a connection runs over, plain TCP or TLS.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::security::{Identity, TlsFiles};
use crate::security::tls::{certificates, provider, read};

/// Reads the file a property names: from the file system, or (for the operator) from the
/// keys of a Kubernetes Secret.
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> Result<Vec<u8>, String>;

/// The rustls configuration of `files`: brokers must present a certificate chaining to the
/// trust store; the client presents its own when one is configured.
pub fn client_config(files: &TlsFiles) -> Result<ClientConfig, String> {
    client_config_with(files, &read)
}

/// [`client_config`] with the files read by `read`.
pub fn client_config_with(files: &TlsFiles, read: ReadFile<'_>) -> Result<ClientConfig, String> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    let what = format!("trust store {}", files.truststore.display());
    for cert in certificates(&read(&files.truststore)?, &what)? {
        roots
            .add(cert)
            .map_err(|e| format!("{what}: bad CA certificate: {e}"))?;
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("{what}: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if files.verify_hostname {
        verifier
    } else {
        Arc::new(AnyHostname(verifier))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &files.identity {
        None => Ok(builder.with_no_client_auth()),
        Some(identity) => {
            let (chain, key) = identity_pem(identity, read)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))
        }
    }
}

fn identity_pem(
    identity: &Identity,
    read: ReadFile<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let (chain_file, key_file) = match identity {
        Identity::Keystore(path) => (path, path),
        Identity::Separate { certificate, key } => (certificate, key),
    };
    let chain = certificates(&read(chain_file)?, &chain_file.display().to_string())?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_file)?).map_err(|e| {
        format!(
            "{}: no unencrypted private key (PKCS#8, PKCS#1 or SEC1) found: {e}",
            key_file.display()
        )
    })?;
    Ok((chain, key))
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain is still checked against
/// the trust store, only the name in the certificate may differ from the host dialled, as
/// with Kafka's clients. For brokers reached through addresses their certificates do not
/// name (port forwards, NAT).
#[derive(Debug)]
struct AnyHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What a connection reads and writes: TCP, or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Runs the TLS handshake over `tcp`, checking the broker's certificate against the host
    /// part of `addr`.
    pub async fn tls(
        tcp: TcpStream,
        addr: &str,
        config: Arc<ClientConfig>,
    ) -> Result<Stream, String> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host} is not a valid TLS server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
