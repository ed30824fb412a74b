//! TLS: the built-in CA, issuing, and the HTTPS listener's rustls configuration
//! (TLS 1.2/1.3, ALPN h2 + http/1.1, optional client certificates checked against our CA
//! and CRL).

pub mod ca;
pub mod issue;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::UnixTime;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use sha2::{Digest, Sha256};

pub use ca::Ca;
pub use issue::{ClientCertInfo, IssuedCert};

use crate::config::Config;
use crate::crypto::write_private_file;
use crate::util::now;

/// The one crypto provider of this build (ring), passed explicitly (no process default needed).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's certificate chain and key.
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    /// Configured `tls.cert_file`/`tls.key_file`, else a certificate issued by the built-in CA
    /// for localhost, 127.0.0.1, ::1 and `tls.hostnames`, kept in the data dir
    /// (`server.crt`, `server.key`) and re-issued when the names change or it nears expiry.
    pub fn load_or_issue(cfg: &Config, ca: &Ca) -> anyhow::Result<ServerIdentity> {
        let t = &cfg.tls;
        if !t.cert_file.is_empty() || !t.key_file.is_empty() {
            if t.cert_file.is_empty() || t.key_file.is_empty() {
                anyhow::bail!("tls.cert_file and tls.key_file must be set together");
            }
            let chain =
                read_chain(&std::fs::read(&t.cert_file).map_err(|e| {
                    anyhow::anyhow!("cannot read tls.cert_file {}: {e}", t.cert_file)
                })?)?;
            let key =
                PrivateKeyDer::from_pem_slice(&std::fs::read(&t.key_file).map_err(|e| {
                    anyhow::anyhow!("cannot read tls.key_file {}: {e}", t.key_file)
                })?)
                .map_err(|e| anyhow::anyhow!("invalid private key in {}: {e}", t.key_file))?;
            return Ok(ServerIdentity { chain, key });
        }
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        for h in &t.hostnames {
            let h = h.trim().to_ascii_lowercase();
            if !h.is_empty() && !names.contains(&h) {
                names.push(h);
            }
        }
        let cert_path = cfg.data_dir.join("server.crt");
        let key_path = cfg.data_dir.join("server.key");
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            anyhow::anyhow!("cannot create data dir {}: {e}", cfg.data_dir.display())
        })?;
        // Replicas starting at the same moment on one data dir take turns: otherwise both
        // issue, and their writes can interleave (one's key beside the other's certificate).
        // The lock is released when `_turn` is dropped (also if this process dies).
        let lock_path = cfg.data_dir.join("server.lock");
        let _turn = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| anyhow::anyhow!("cannot lock {}: {e}", lock_path.display()))?;
        let now = now();
        if let (Ok(cert_pem), Ok(key_pem)) = (std::fs::read(&cert_path), std::fs::read(&key_path))
            && let (Ok(chain), Ok(key)) = (
                read_chain(&cert_pem),
                PrivateKeyDer::from_pem_slice(&key_pem),
            )
            && chain.first().is_some_and(|leaf| {
                still_good(leaf, &ca.cert_der, &names, now) && key_matches(leaf, &key_pem)
            })
        {
            return Ok(ServerIdentity { chain, key });
        }
        let (cert_pem, key_pem) = issue::issue_server(ca, &names, now - 3600, now + 825 * 86_400)?;
        write_private_file(&key_path, key_pem.as_bytes())?;
        let full = format!("{}{}", cert_pem, ca.cert_pem);
        std::fs::write(&cert_path, &full)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", cert_path.display()))?;
        tracing::info!(names = ?names, "issued the HTTPS server certificate {}", cert_path.display());
        let chain = read_chain(full.as_bytes())?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("generated key unreadable: {e}"))?;
        Ok(ServerIdentity { chain, key })
    }
}

/// Whether the private key (PEM) belongs to the certificate (a crash between the two writes
/// could leave a pair that does not).
fn key_matches(leaf: &CertificateDer<'_>, key_pem: &[u8]) -> bool {
    let Ok(key) = std::str::from_utf8(key_pem).map(rcgen::KeyPair::from_pem) else {
        return false;
    };
    let Ok(key) = key else { return false };
    x509_parser::parse_x509_certificate(leaf)
        .is_ok_and(|(_, c)| c.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
}

fn read_chain(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("invalid certificate PEM: {e}"))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in PEM file");
    }
    Ok(chain)
}

/// The stored server certificate is ours, covers `names`, and lasts another 30 days.
fn still_good(leaf: &CertificateDer<'_>, ca_der: &[u8], names: &[String], now: i64) -> bool {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(leaf),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    if cert.verify_signature(Some(ca.public_key())).is_err()
        || cert.validity().not_after.timestamp() < now + 30 * 86_400
    {
        return false;
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let have: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    names.iter().all(|n| have.contains(n))
}

/// The rustls configuration of the HTTPS listener for the current CRL.
pub fn server_config(
    ident: &ServerIdentity,
    ca: &Ca,
    crl_der: Vec<u8>,
) -> anyhow::Result<ServerConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der.clone()))
        .map_err(|e| anyhow::anyhow!("CA certificate rejected by rustls: {e}"))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls([CertificateRevocationListDer::from(crl_der)])
        .only_check_end_entity_revocation()
        .allow_unauthenticated()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the client certificate verifier: {e}"))?;
    let verifier = Arc::new(CachingVerifier {
        inner: verifier,
        verified: Mutex::new(HashMap::new()),
    });
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| anyhow::anyhow!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(ident.chain.clone(), ident.key.clone_key())
        .map_err(|e| anyhow::anyhow!("server certificate rejected: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Remembers which client chains passed the WebPKI check (CA signature, CRL signature and
/// status, validity) for the lifetime of one verifier, i.e. one CRL: a returning client's
/// handshake then costs only the proof of key possession (`verify_tls1x_signature`, always
/// checked). A new CRL builds a new verifier with an empty memory; entries end at the
/// certificate's `notAfter`.
struct CachingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// SHA-256 of the presented chain → notAfter (unix seconds).
    verified: Mutex<HashMap<[u8; 32], i64>>,
}

const VERIFIED_CACHE_MAX: usize = 50_000;

impl std::fmt::Debug for CachingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CachingVerifier")
    }
}

fn chain_key(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in std::iter::once(end_entity).chain(intermediates) {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c.as_ref());
    }
    h.finalize().into()
}

impl CachingVerifier {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], i64>> {
        match self.verified.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl ClientCertVerifier for CachingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = chain_key(end_entity, intermediates);
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if self
            .lock()
            .get(&key)
            .is_some_and(|not_after| now_secs <= *not_after)
        {
            return Ok(ClientCertVerified::assertion());
        }
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Ok(info) = issue::parse_client_cert(end_entity) {
            let mut map = self.lock();
            if map.len() >= VERIFIED_CACHE_MAX {
                map.clear();
            }
            map.insert(key, info.not_after);
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_certificate_is_kept_until_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let ca = Ca::load_or_create(&cfg).unwrap();
        let first = ServerIdentity::load_or_issue(&cfg, &ca).unwrap();
        let again = ServerIdentity::load_or_issue(&cfg, &ca).unwrap();
        assert_eq!(first.chain, again.chain);
        assert_eq!(first.chain.len(), 2, "leaf + CA");
        cfg.tls.hostnames = vec!["sip.example.com".into()];
        let renamed = ServerIdentity::load_or_issue(&cfg, &ca).unwrap();
        assert_ne!(first.chain.first(), renamed.chain.first());
        assert!(
            server_config(
                &renamed,
                &ca,
                issue::crl(&ca, &[], crate::util::now()).unwrap().0
            )
            .is_ok()
        );
    }

    #[test]
    fn replicas_starting_together_share_one_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let ca = Arc::new(Ca::load_or_create(&cfg).unwrap());
        let start = Arc::new(std::sync::Barrier::new(8));
        let chains: Vec<_> = (0..8)
            .map(|_| {
                let (cfg, ca, start) = (cfg.clone(), ca.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    ServerIdentity::load_or_issue(&cfg, &ca).unwrap().chain
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(
            chains.windows(2).all(|w| w[0] == w[1]),
            "one issued, the others loaded it"
        );
        // A key that does not belong to the certificate on disk is replaced, not served.
        let other = tempfile::tempdir().unwrap();
        let other_cfg = Config {
            data_dir: other.path().to_path_buf(),
            ..Config::default()
        };
        ServerIdentity::load_or_issue(&other_cfg, &ca).unwrap();
        std::fs::copy(
            other.path().join("server.key"),
            dir.path().join("server.key"),
        )
        .unwrap();
        let again = ServerIdentity::load_or_issue(&cfg, &ca).unwrap();
        assert_ne!(again.chain, chains[0]);
        let key = std::fs::read(dir.path().join("server.key")).unwrap();
        assert!(key_matches(&again.chain[0], &key));
    }

    #[test]
    fn configured_files_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let gen_cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let ca = Ca::load_or_create(&gen_cfg).unwrap();
        let generated = ServerIdentity::load_or_issue(&gen_cfg, &ca).unwrap();
        let other = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n).display().to_string();
        let mut cfg = Config {
            data_dir: other.path().to_path_buf(),
            ..Config::default()
        };
        cfg.tls.ca_cert_file = path("ca.crt");
        cfg.tls.ca_key_file = path("ca.key");
        cfg.tls.cert_file = path("server.crt");
        cfg.tls.key_file = path("server.key");
        let loaded = Ca::load_or_create(&cfg).unwrap();
        assert_eq!(loaded.cert_der, ca.cert_der);
        assert!(!other.path().join("ca.key").exists());
        let ident = ServerIdentity::load_or_issue(&cfg, &loaded).unwrap();
        assert_eq!(ident.chain, generated.chain);
        cfg.tls.ca_key_file = String::new();
        assert!(Ca::load_or_create(&cfg).is_err());
        cfg.tls.ca_key_file = path("server.key");
        let err = Ca::load_or_create(&cfg).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }
}
