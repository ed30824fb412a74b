//! The built-in certificate authority: ECDSA P-256, created at first start in the data dir
//! (`ca.crt`, `ca.key` with mode 0600) or loaded from `tls.ca_cert_file` / `tls.ca_key_file`.
//! Replicas must share the same CA files (like `secret_key`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::issue::{random_serial, to_offset};
use crate::config::Config;
use crate::util::now;

pub struct Ca {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA certificate, DER.
    pub cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca(***)")
    }
}

impl Ca {
    /// Configured files, else `<data_dir>/ca.crt` + `ca.key` (created when missing).
    pub fn load_or_create(cfg: &Config) -> anyhow::Result<Ca> {
        let t = &cfg.tls;
        if !t.ca_cert_file.is_empty() || !t.ca_key_file.is_empty() {
            if t.ca_cert_file.is_empty() || t.ca_key_file.is_empty() {
                anyhow::bail!("tls.ca_cert_file and tls.ca_key_file must be set together");
            }
            return Self::load(Path::new(&t.ca_cert_file), Path::new(&t.ca_key_file));
        }
        let cert_path = cfg.data_dir.join("ca.crt");
        let key_path = cfg.data_dir.join("ca.key");
        if key_path.exists() {
            wait_for(&cert_path);
            return Self::load(&cert_path, &key_path);
        }
        Self::create(&cfg.data_dir, &cert_path, &key_path)
    }

    pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Ca> {
        let cert_pem = std::fs::read_to_string(cert_path).map_err(|e| {
            anyhow::anyhow!("cannot read CA certificate {}: {e}", cert_path.display())
        })?;
        let key_pem = std::fs::read_to_string(key_path)
            .map_err(|e| anyhow::anyhow!("cannot read CA key {}: {e}", key_path.display()))?;
        Self::from_pem(&cert_pem, &key_pem)
            .map_err(|e| anyhow::anyhow!("CA {}: {e}", cert_path.display()))
    }

    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<Ca> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| anyhow::anyhow!("invalid CA private key: {e}"))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("invalid CA certificate PEM: {e}"))?
            .to_vec();
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| anyhow::anyhow!("invalid CA certificate: {e}"))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            anyhow::bail!("the CA key does not belong to the CA certificate");
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.as_slice()), key)
            .map_err(|e| anyhow::anyhow!("cannot use the CA certificate: {e}"))?;
        Ok(Ca {
            cert_pem: pem_of(&cert_der),
            cert_der,
            issuer,
        })
    }

    fn create(dir: &Path, cert_path: &Path, key_path: &Path) -> anyhow::Result<Ca> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| anyhow::anyhow!("cannot generate the CA key: {e}"))?;
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, "sipsettings client CA");
        p.distinguished_name
            .push(DnType::OrganizationName, "sipsettings");
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = now();
        p.not_before = to_offset(now - 86_400)?;
        p.not_after = to_offset(now + 20 * 365 * 86_400)?;
        p.serial_number = Some(random_serial().0);
        let cert = p
            .self_signed(&key)
            .map_err(|e| anyhow::anyhow!("cannot create the CA certificate: {e}"))?;
        // The key file is created exclusively: a process starting at the same moment loads
        // the winner's CA instead of writing its own.
        match create_new_private(key_path, key.serialize_pem().as_bytes()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                wait_for(cert_path);
                return Self::load(cert_path, key_path);
            }
            Err(e) => anyhow::bail!("cannot write {}: {e}", key_path.display()),
        }
        let tmp = cert_path.with_extension("crt.tmp");
        std::fs::write(&tmp, cert.pem())
            .and_then(|_| std::fs::rename(&tmp, cert_path))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", cert_path.display()))?;
        tracing::info!(
            "created the built-in CA: {} (key {})",
            cert_path.display(),
            key_path.display()
        );
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(p, key),
        })
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// PEM text of one DER certificate.
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn create_new_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content)?;
    f.sync_all()
}

/// Waits briefly for another process to finish writing `path`.
fn wait_for(path: &Path) {
    let path: PathBuf = path.to_path_buf();
    for _ in 0..50 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
