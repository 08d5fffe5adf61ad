//! Building the rustls server configuration from the tls-* directives, and the slot every core
//! takes it from, so that a reload reaches new connections on every core at once. Only the
//! facade knows TLS.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, ProducesTickets, StoresServerSessions, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::Digest as _;

use crate::config::{Config, ConfigValue as _, TlsAuthClients};

/// A TLS setup problem; every message names the file or directive at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate file could not be read, holds no certificate, or the certificate is unusable
    /// (X.509 v1, expired, not yet valid).
    #[error("tls certificate file {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file could not be read, decrypted, or holds no private key.
    #[error("tls key file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A policy directive (tls-protocols, tls-ciphers, tls-ciphersuites) names something rustls
    /// does not offer.
    #[error("{directive}: {reason}")]
    Policy {
        /// The directive.
        directive: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (the key does not match the certificate, ...).
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

/// A built server configuration and what INFO shows about it.
pub(crate) struct Built {
    /// The configuration.
    pub(crate) config: Arc<ServerConfig>,
    /// The server certificate's notAfter, in Unix seconds.
    pub(crate) not_after: i64,
    /// Things worth a log line (an ignored directive).
    pub(crate) warnings: Vec<String>,
    /// What client certificates are verified against, and the ticket keys for it.
    tickets: (Trust, Arc<dyn ProducesTickets>),
}

/// A digest of what client certificates are verified against (`tls-auth-clients` and the CA
/// set): a session resumed from a ticket skips that verification, so its tickets must not
/// outlive a change of it.
type Trust = [u8; 32];

/// The TLS configuration every core's TLS listeners use for their next handshake.
///
/// Built once at startup and replaced by CONFIG SET or the auto-reload; connections that are
/// already established keep the session they have. The session-ticket keys live here, outside any
/// one configuration, so clients keep resuming across a reload and on every core; they change
/// only when the trust in client certificates does (a resumed session carries the client's
/// certificate as verified then, and the client's ACL identity with it).
pub(crate) struct TlsSlot {
    current: RwLock<Option<Arc<ServerConfig>>>,
    tickets: RwLock<Option<(Trust, Arc<dyn ProducesTickets>)>>,
    not_after: AtomicI64,
    reloads: AtomicU64,
}

impl TlsSlot {
    /// An empty slot (no TLS listener yet).
    pub(crate) fn new() -> Result<TlsSlot, TlsError> {
        Ok(TlsSlot {
            current: RwLock::new(None),
            tickets: RwLock::new(None),
            not_after: AtomicI64::new(0),
            reloads: AtomicU64::new(0),
        })
    }

    /// The configuration for the next handshake.
    #[must_use]
    pub(crate) fn current(&self) -> Option<Arc<ServerConfig>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Builds a configuration from `config` with this slot's ticket keys (does not install it).
    pub(crate) fn build(&self, config: &Config) -> Result<Built, TlsError> {
        let current = self.tickets.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        server_config(config, |trust| match current {
            Some((same, tickets)) if same == trust => Ok(tickets),
            _ => rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|e| TlsError::Policy { directive: "tls-session-caching", reason: e.to_string() }),
        })
    }

    /// Makes `built` the configuration of every later handshake.
    pub(crate) fn install(&self, built: Built) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(built.config);
        *self.tickets.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(built.tickets);
        self.not_after.store(built.not_after, Ordering::Relaxed);
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// The installed certificate's notAfter (Unix seconds), if TLS is configured.
    #[must_use]
    pub(crate) fn not_after(&self) -> Option<i64> {
        self.current().map(|_| self.not_after.load(Ordering::Relaxed))
    }

    /// How many configurations were installed (1 after startup, +1 per reload).
    #[must_use]
    pub(crate) fn installs(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }
}

/// The server configuration for `tls-port`, using aws-lc-rs explicitly (never the process default,
/// so two providers in the dependency tree cannot make it panic).
/// The client side for links this server opens (to its primary, with `tls-replication yes`):
/// the CA set verifies the peer, and the certificate presented is `tls-client-cert-file` (or,
/// without one, `tls-cert-file`), as Redis presents them.
///
/// # Errors
/// A file that does not load, or a policy rustls refuses.
pub(crate) fn client_config(config: &Config) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(provider(config)?.0);
    let versions = versions(&config.tls_protocols)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Policy { directive: "tls-protocols", reason: describe(&e) })?
        .with_root_certificates(load_roots(config)?);
    let (cert, key, pass) = if config.tls_client_cert_file.is_empty() {
        (&config.tls_cert_file, &config.tls_key_file, &config.tls_key_file_pass)
    } else {
        (&config.tls_client_cert_file, &config.tls_client_key_file, &config.tls_client_key_file_pass)
    };
    let client = if cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key, pass)?)
            .map_err(|e| TlsError::Rustls { cert: cert.clone(), key: key.clone(), reason: describe(&e) })?
    };
    Ok(Arc::new(client))
}

fn server_config(
    config: &Config,
    tickets_for: impl FnOnce(Trust) -> Result<Arc<dyn ProducesTickets>, TlsError>,
) -> Result<Built, TlsError> {
    let (provider, mut warnings) = provider(config)?;
    let provider = Arc::new(provider);
    let versions = versions(&config.tls_protocols)?;
    let certs = load_certs(&config.tls_cert_file)?;
    let not_after = check_cert(&config.tls_cert_file, &certs[0])?;
    let key = load_key(&config.tls_key_file, &config.tls_key_file_pass)?;
    let rustls_err = |e: rustls::Error| TlsError::Rustls {
        cert: config.tls_cert_file.clone(),
        key: config.tls_key_file.clone(),
        reason: describe(&e),
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Policy { directive: "tls-protocols", reason: describe(&e) })?;
    // As Redis, configured CAs must load even when client certificates are not asked for.
    let configured_roots = (!config.tls_ca_cert_file.is_empty() || !config.tls_ca_cert_dir.is_empty())
        .then(|| load_roots(config))
        .transpose()?;
    let mut trust = sha2::Sha256::new();
    let builder = match config.tls_auth_clients {
        TlsAuthClients::No => builder.with_no_client_auth(),
        mode => {
            let roots = Arc::new(match configured_roots {
                Some(roots) => roots,
                None => load_roots(config)?,
            });
            trust.update(config.tls_auth_clients.show());
            for anchor in &roots.roots {
                for part in [&anchor.subject[..], &anchor.subject_public_key_info[..]] {
                    trust.update((part.len() as u64).to_le_bytes());
                    trust.update(part);
                }
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier =
                if mode == TlsAuthClients::Optional { verifier.allow_unauthenticated() } else { verifier };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Cert { path: ca_source(config), reason: e.to_string() })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let trust: Trust = trust.finalize().into();
    let tickets = tickets_for(trust)?;
    let mut server = builder.with_single_cert(certs, key).map_err(rustls_err)?;
    server.ignore_client_order = config.tls_prefer_server_ciphers;
    if config.tls_session_caching {
        // Tickets (stateless, shared keys) let a client resume on whichever core it lands; the
        // cache serves clients that ask for TLS 1.2 session ids.
        let lifetime = u32::try_from(config.tls_session_cache_timeout).unwrap_or(u32::MAX);
        server.ticketer = Arc::new(Lifetime { inner: tickets.clone(), lifetime });
        server.session_storage = Arc::new(SessionCache::new(
            usize::try_from(config.tls_session_cache_size).unwrap_or(usize::MAX).max(1),
        ));
    } else {
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
    }
    if !config.tls_dh_params_file.is_empty() {
        warnings.push(format!(
            "tls-dh-params-file {} ignored: rustls uses ECDHE key exchange only and needs no DH parameters",
            config.tls_dh_params_file
        ));
    }
    Ok(Built { config: Arc::new(server), not_after, warnings, tickets: (trust, tickets) })
}

/// Session tickets with `tls-session-cache-timeout` as their advertised lifetime.
#[derive(Debug)]
struct Lifetime {
    inner: Arc<dyn ProducesTickets>,
    lifetime: u32,
}

impl ProducesTickets for Lifetime {
    fn enabled(&self) -> bool {
        self.inner.enabled() && self.lifetime > 0
    }
    fn lifetime(&self) -> u32 {
        self.lifetime
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(plain)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.inner.decrypt(cipher)
    }
}

/// The aws-lc-rs provider with the suites `tls-ciphers` and `tls-ciphersuites` allow (see
/// [`super::ciphers`]), and warnings about suites they name that rustls lacks.
fn provider(config: &Config) -> Result<(CryptoProvider, Vec<String>), TlsError> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let tls12 = super::ciphers::tls12(&config.tls_ciphers)
        .map_err(|reason| TlsError::Policy { directive: "tls-ciphers", reason })?;
    let tls13 = super::ciphers::tls13(&config.tls_ciphersuites)
        .map_err(|reason| TlsError::Policy { directive: "tls-ciphersuites", reason })?;
    provider.cipher_suites.retain(|s| {
        let name = format!("{:?}", s.suite());
        let allowed = if name.starts_with("TLS13_") { &tls13.offer } else { &tls12.offer };
        allowed.as_ref().is_none_or(|a| a.contains(&name.as_str()))
    });
    // Server preference (tls-prefer-server-ciphers): AES-128-GCM first. Its SHA-256 runs on the
    // cpu's SHA extensions where SHA-384 has none; profiling showed SHA-512 rounds at a tenth of
    // a handshake's CPU. Stable sort: TLS 1.3 before 1.2, otherwise rustls's order.
    provider.cipher_suites.sort_by_key(|s| {
        let name = format!("{:?}", s.suite());
        (!name.starts_with("TLS13_"), !name.contains("AES_128_GCM"))
    });
    Ok((provider, [tls12.warnings, tls13.warnings].concat()))
}

/// `tls-protocols`: the versions to speak (both when empty).
fn versions(protocols: &[String]) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let words: Vec<&str> = protocols.iter().flat_map(|p| p.split_ascii_whitespace()).collect();
    // `tls-protocols ""` (as config/ferrokey.conf writes it) means the default, as no value does.
    if words.is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut out = Vec::new();
    for p in words {
        let v: &'static SupportedProtocolVersion = match p.to_ascii_lowercase().as_str() {
            "tlsv1.2" => &rustls::version::TLS12,
            "tlsv1.3" => &rustls::version::TLS13,
            "tlsv1" | "tlsv1.1" => {
                return Err(TlsError::Policy {
                    directive: "tls-protocols",
                    reason: format!("{p} is not supported: rustls speaks TLSv1.2 and TLSv1.3 only"),
                })
            }
            _ => {
                return Err(TlsError::Policy {
                    directive: "tls-protocols",
                    reason: format!("unknown protocol '{p}' (expected TLSv1.2 and/or TLSv1.3)"),
                })
            }
        };
        out.push(v);
    }
    Ok(out)
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

/// Checks the server certificate rustls will send: X.509 v3, and valid now. Returns notAfter.
fn check_cert(path: &str, cert: &CertificateDer<'_>) -> Result<i64, TlsError> {
    let fail = |reason: String| TlsError::Cert { path: path.to_owned(), reason };
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| fail(format!("not X.509: {e}")))?;
    if parsed.version() != x509_parser::x509::X509Version::V3 {
        return Err(fail(format!(
            "is an X.509 {:?} certificate; rustls needs v3 (issue it with extensions, e.g. \
             openssl x509 -req ... -extfile with subjectAltName)",
            parsed.version()
        )));
    }
    let validity = parsed.validity();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if now < validity.not_before.timestamp() {
        return Err(fail(format!("not valid before {}", validity.not_before)));
    }
    if now > validity.not_after.timestamp() {
        return Err(fail(format!("expired on {}", validity.not_after)));
    }
    Ok(validity.not_after.timestamp())
}

/// The private key, decrypting an `ENCRYPTED PRIVATE KEY` (PKCS#8) with `pass` when given.
fn load_key(path: &str, pass: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let fail = |reason: String| TlsError::Key { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        if pass.is_empty() {
            return Err(fail("the key is encrypted: set tls-key-file-pass".into()));
        }
        let (_, doc) = pkcs8::der::Document::from_pem(&text).map_err(|e| fail(format!("bad PEM: {e}")))?;
        let info =
            pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| fail(e.to_string()))?;
        let plain =
            info.decrypt(pass).map_err(|e| fail(format!("cannot decrypt with tls-key-file-pass: {e}")))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec())));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(fail(
            "legacy OpenSSL-encrypted PEM is not supported; convert it with \
             `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
                .into(),
        ));
    }
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| fail(e.to_string()))
}

fn ca_source(config: &Config) -> String {
    if config.tls_ca_cert_file.is_empty() {
        config.tls_ca_cert_dir.clone()
    } else {
        config.tls_ca_cert_file.clone()
    }
}

/// The CAs that sign client certificates: `tls-ca-cert-file` and every certificate file in
/// `tls-ca-cert-dir`.
fn load_roots(config: &Config) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let mut files = Vec::new();
    if !config.tls_ca_cert_file.is_empty() {
        files.push(config.tls_ca_cert_file.clone());
    }
    if !config.tls_ca_cert_dir.is_empty() {
        let dir = &config.tls_ca_cert_dir;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| TlsError::Cert { path: dir.clone(), reason: e.to_string() })?;
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter_map(|p| p.to_str().map(str::to_owned))
            .collect();
        found.sort();
        files.extend(found);
    }
    for file in &files {
        // A directory may hold other files (hash links to the same certs, READMEs): skip those
        // with no certificate, but a certificate that does not parse is an error.
        let certs = match load_certs(file) {
            Ok(c) => c,
            Err(_) if Some(file) != files.first() || config.tls_ca_cert_file.is_empty() => continue,
            Err(e) => return Err(e),
        };
        for ca in certs {
            roots.add(ca).map_err(|e| TlsError::Cert { path: file.clone(), reason: describe(&e) })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Cert { path: ca_source(config), reason: "no CA certificate found".into() });
    }
    Ok(roots)
}

/// rustls's error, with a hint where rustls's own words do not say what to do.
fn describe(e: &rustls::Error) -> String {
    let text = e.to_string();
    if text.contains("UnsupportedCertVersion") {
        format!("{text}: rustls needs X.509 v3 certificates (openssl x509 -req ... -extfile with SAN)")
    } else if text.contains("InconsistentKeys") || text.contains("KeyMismatch") {
        format!("{text}: the private key does not belong to the certificate")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_strings_choose_the_provider_suites() {
        let mut config = Config { tls_ciphers: "HIGH:!aNULL:!MD5".into(), ..Config::default() };
        let (built, warnings) = provider(&config).unwrap();
        assert_eq!(built.cipher_suites.len(), 9, "6 TLS 1.2 suites and 3 TLS 1.3 ones");
        assert!(warnings.is_empty());
        config.tls_ciphers = "AES128-SHA:DES-CBC3-SHA".into();
        let text = provider(&config).unwrap_err().to_string();
        assert!(text.starts_with("tls-ciphers: 'AES128-SHA:DES-CBC3-SHA' selects no cipher suite"), "{text}");
        config.tls_ciphers = "ECDHE-RSA-AES128-GCM-SHA256".into();
        config.tls_ciphersuites = "TLS_CHACHA20_POLY1305_SHA256".into();
        let names: Vec<String> =
            provider(&config).unwrap().0.cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect();
        assert_eq!(names, ["TLS13_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
    }

    #[test]
    fn protocol_lists() {
        assert_eq!(versions(&[]).unwrap().len(), 2);
        assert_eq!(versions(&[String::new()]).unwrap().len(), 2, "an empty value is the default");
        assert_eq!(versions(&["TLSv1.3".into()]).unwrap().len(), 1);
        assert!(versions(&["TLSv1.1".into()])
            .unwrap_err()
            .to_string()
            .contains("rustls speaks TLSv1.2 and TLSv1.3"));
        assert!(versions(&["SSLv3".into()]).is_err());
    }
}

/// The TLS 1.2 session-id cache, `tls-session-cache-size` entries at most, oldest out first.
/// rustls's own `ServerSessionMemoryCache` reserves room for every entry up front (2.1 MB for
/// the default 20 480, in `used_memory` before any client came); this one grows as sessions
/// arrive.
#[derive(Debug)]
struct SessionCache {
    limit: usize,
    inner: std::sync::Mutex<Sessions>,
}

/// The cached sessions, and their keys in insertion order (a key taken out stays in `order`
/// until it comes up or the queue is compacted).
#[derive(Debug, Default)]
struct Sessions {
    map: std::collections::HashMap<Vec<u8>, Vec<u8>>,
    order: std::collections::VecDeque<Vec<u8>>,
}

impl SessionCache {
    fn new(limit: usize) -> SessionCache {
        SessionCache { limit, inner: std::sync::Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut s = self.lock();
        while s.map.len() >= self.limit && !s.map.contains_key(&key) {
            let Some(oldest) = s.order.pop_front() else { break };
            s.map.remove(&oldest);
        }
        if s.map.insert(key.clone(), value).is_none() {
            s.order.push_back(key);
        }
        if s.order.len() > 2 * self.limit {
            let Sessions { map, order } = &mut *s;
            order.retain(|k| map.contains_key(k));
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lock().map.get(key).cloned()
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lock().map.remove(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod session_cache_tests {
    use super::*;

    #[test]
    fn the_session_cache_keeps_the_newest_within_its_limit() {
        let c = SessionCache::new(2);
        for k in [b"a", b"b", b"c"] {
            assert!(c.put(k.to_vec(), k.to_vec()));
        }
        assert_eq!(c.get(b"a"), None);
        assert_eq!(c.get(b"c"), Some(b"c".to_vec()));
        assert_eq!(c.take(b"b"), Some(b"b".to_vec()));
        assert_eq!(c.get(b"b"), None);
        // Taking left room: nothing more goes until the limit is reached again.
        c.put(b"d".to_vec(), vec![]);
        assert_eq!(c.get(b"c"), Some(b"c".to_vec()));
        for i in 0..100u8 {
            c.put(vec![i], vec![]);
        }
        assert!(c.lock().map.len() <= 2 && c.lock().order.len() <= 4);
    }
}
