//! Building the rustls server configuration from the tls-* directives. Only the facade knows TLS.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Config, TlsAuthClients};

/// A TLS setup problem; every message names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate file could not be read or holds no certificate.
    #[error("tls certificate file {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file could not be read or holds no private key.
    #[error("tls key file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the combination (key does not match, unsupported key type, v1 cert...).
    #[error("tls setup with {cert} and {key}: {reason}")]
    Rustls {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// rustls's reason.
        reason: String,
    },
}

/// The server configuration for `tls-port`, using aws-lc-rs explicitly (never the process default,
/// so two providers in the dependency tree cannot make it panic).
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = load_certs(&config.tls_cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&config.tls_key_file)
        .map_err(|e| TlsError::Key { path: config.tls_key_file.clone(), reason: e.to_string() })?;
    let rustls_err = |e: rustls::Error| TlsError::Rustls {
        cert: config.tls_cert_file.clone(),
        key: config.tls_key_file.clone(),
        reason: describe(&e),
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?;
    let builder = match config.tls_auth_clients {
        TlsAuthClients::No => builder.with_no_client_auth(),
        mode => {
            let mut roots = RootCertStore::empty();
            for ca in load_certs(&config.tls_ca_cert_file)? {
                roots.add(ca).map_err(|e| TlsError::Cert {
                    path: config.tls_ca_cert_file.clone(),
                    reason: describe(&e),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier =
                if mode == TlsAuthClients::Optional { verifier.allow_unauthenticated() } else { verifier };
            let verifier = verifier.build().map_err(|e| TlsError::Cert {
                path: config.tls_ca_cert_file.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(certs, key).map_err(rustls_err)?;
    // Stateless tickets: a client resumes on whichever core its next connection lands.
    server.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(rustls_err)?;
    Ok(Arc::new(server))
}

fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Cert { path: path.to_owned(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no certificate found".into()));
    }
    Ok(certs)
}

/// rustls's error, with a hint where rustls's own words do not say what to do.
fn describe(e: &rustls::Error) -> String {
    let text = e.to_string();
    if text.contains("UnsupportedCertVersion") {
        format!("{text}: rustls needs X.509 v3 certificates (openssl x509 -req ... -extfile with SAN)")
    } else {
        text
    }
}
