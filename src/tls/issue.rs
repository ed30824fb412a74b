//! Issuing (client and server certificates, CRLs), PKCS#12 packaging, and reading a presented
//! client certificate (account, serial, validity; chain check for header mode).

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p12_keystore::{
    Certificate as P12Cert, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm,
    PrivateKey as P12Key, PrivateKeyChain,
};
use rand::RngCore;
use rcgen::{
    CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, RevokedCertParams, SanType,
    SerialNumber,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::ca::Ca;

/// A freshly issued client certificate. `key_pem` is secret: seal it before storing.
#[derive(Clone)]
pub struct IssuedCert {
    pub serial: String,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    pub not_before: i64,
    pub not_after: i64,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedCert({})", self.serial)
    }
}

pub fn to_offset(unix: i64) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|e| anyhow::anyhow!("invalid time: {e}"))
}

/// A random positive 128-bit serial and its canonical hex form.
pub fn random_serial() -> (SerialNumber, String) {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    // Positive, no leading zero byte: the DER bytes equal these bytes.
    b[0] = (b[0] & 0x7f) | 0x10;
    (SerialNumber::from(b.to_vec()), hex::encode(b))
}

/// Canonical serial text: lowercase hex without separators or leading zero bytes.
pub fn normalize_serial(s: &str) -> String {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect::<String>()
        .to_ascii_lowercase();
    let trimmed = hex.trim_start_matches("00");
    trimmed.to_owned()
}

fn serial_of_bytes(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    hex::encode(raw.get(start..).unwrap_or(&[]))
}

/// A client certificate for `address` (`user@domain`): CN and SAN URI `sip:user@domain`.
pub fn issue_client(
    ca: &Ca,
    address: &str,
    not_before: i64,
    not_after: i64,
) -> anyhow::Result<IssuedCert> {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, address);
    p.subject_alt_names = vec![
        SanType::URI(
            format!("sip:{address}")
                .try_into()
                .map_err(|e| anyhow::anyhow!("invalid SIP URI: {e}"))?,
        ),
        SanType::Rfc822Name(
            address
                .try_into()
                .map_err(|e| anyhow::anyhow!("invalid address: {e}"))?,
        ),
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    let (serial_number, serial) = random_serial();
    p.serial_number = Some(serial_number);
    p.not_before = to_offset(not_before)?;
    p.not_after = to_offset(not_after)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| anyhow::anyhow!("cannot generate a key: {e}"))?;
    let cert = p
        .signed_by(&key, ca.issuer())
        .map_err(|e| anyhow::anyhow!("cannot sign the certificate: {e}"))?;
    Ok(IssuedCert {
        serial,
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
        not_before,
        not_after,
    })
}

/// A server certificate for `names` (DNS names and IP addresses); returns (cert PEM, key PEM).
pub fn issue_server(
    ca: &Ca,
    names: &[String],
    not_before: i64,
    not_after: i64,
) -> anyhow::Result<(String, String)> {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(
        DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("localhost"),
    );
    for n in names {
        let san = match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                n.as_str()
                    .try_into()
                    .map_err(|e| anyhow::anyhow!("invalid host name {n:?}: {e}"))?,
            ),
        };
        p.subject_alt_names.push(san);
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(random_serial().0);
    p.not_before = to_offset(not_before)?;
    p.not_after = to_offset(not_after)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| anyhow::anyhow!("cannot generate a key: {e}"))?;
    let cert = p
        .signed_by(&key, ca.issuer())
        .map_err(|e| anyhow::anyhow!("cannot sign the server certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The `.crt` download: certificate, then private key, then the CA certificate.
pub fn bundle_pem(cert_pem: &str, key_pem: &str, ca_pem: &str) -> String {
    let mut out = String::new();
    for part in [cert_pem, key_pem, ca_pem] {
        out.push_str(part.trim_end());
        out.push('\n');
    }
    out
}

/// PKCS#12 with the key, the certificate and the CA. Default 3DES + HMAC-SHA1 (imports
/// everywhere, macOS included); `modern` = PBES2 AES-256 + HMAC-SHA256.
pub fn pkcs12(
    friendly_name: &str,
    cert_der: &[u8],
    key_pem: &str,
    ca_der: &[u8],
    password: &str,
    modern: bool,
) -> anyhow::Result<Vec<u8>> {
    let key_der = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) {
        Ok(PrivateKeyDer::Pkcs8(k)) => k.secret_pkcs8_der().to_vec(),
        Ok(_) => anyhow::bail!("the stored private key is not PKCS#8"),
        Err(e) => anyhow::bail!("cannot read the stored private key: {e}"),
    };
    let key = P12Key::from_der(&key_der).map_err(|e| anyhow::anyhow!("PKCS#12 key: {e}"))?;
    let leaf = P12Cert::from_der(cert_der).map_err(|e| anyhow::anyhow!("PKCS#12 cert: {e}"))?;
    let ca = P12Cert::from_der(ca_der).map_err(|e| anyhow::anyhow!("PKCS#12 CA: {e}"))?;
    let key_id = Sha256::digest(cert_der).get(..20).unwrap_or(&[]).to_vec();
    let chain = PrivateKeyChain::new(key_id, key, [leaf, ca]);
    let mut ks = KeyStore::new();
    ks.add_entry(friendly_name, KeyStoreEntry::PrivateKeyChain(chain));
    let writer = ks.writer(password);
    let writer = if modern {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256)
    } else {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
    };
    writer
        .write()
        .map_err(|e| anyhow::anyhow!("cannot write PKCS#12: {e}"))
}

/// A CRL over `revoked` (serial hex, revocation time), signed by the CA; (DER, PEM).
pub fn crl(ca: &Ca, revoked: &[(String, i64)], now: i64) -> anyhow::Result<(Vec<u8>, String)> {
    let mut list = Vec::with_capacity(revoked.len());
    for (serial, at) in revoked {
        let bytes =
            hex::decode(serial).map_err(|_| anyhow::anyhow!("invalid stored serial {serial}"))?;
        list.push(RevokedCertParams {
            serial_number: SerialNumber::from(bytes),
            revocation_time: to_offset(*at)?,
            reason_code: None,
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: to_offset(now - 60)?,
        next_update: to_offset(now + 7 * 86_400)?,
        crl_number: SerialNumber::from(u64::try_from(now).unwrap_or(0)),
        issuing_distribution_point: None,
        revoked_certs: list,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(ca.issuer())
        .map_err(|e| anyhow::anyhow!("cannot sign the CRL: {e}"))?;
    let pem = crl
        .pem()
        .map_err(|e| anyhow::anyhow!("cannot encode the CRL: {e}"))?;
    Ok((crl.der().to_vec(), pem))
}

/// What a presented client certificate claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertInfo {
    pub serial: String,
    /// `user@domain`, lowercase.
    pub address: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// Reads serial, account and validity; prefers the SAN `sip:` URI, which must agree with the CN.
pub fn parse_client_cert(der: &[u8]) -> Result<ClientCertInfo, &'static str> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| "cert_unparsable")?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    let mut uri: Option<String> = None;
    match cert.subject_alternative_name() {
        Ok(Some(san)) => {
            for gn in &san.value.general_names {
                if let GeneralName::URI(u) = gn {
                    let lower = u.trim().to_ascii_lowercase();
                    if let Some(rest) = lower.strip_prefix("sip:") {
                        uri = Some(rest.to_owned());
                        break;
                    }
                }
            }
        }
        Ok(None) => {}
        Err(_) => return Err("cert_bad_san"),
    }
    let address = match (uri, cn) {
        (Some(u), Some(c)) if u != c => return Err("cert_name_mismatch"),
        (Some(u), _) => u,
        (None, Some(c)) => c,
        (None, None) => return Err("cert_no_account"),
    };
    if !address.contains('@') {
        return Err("cert_no_account");
    }
    let v = cert.validity();
    Ok(ClientCertInfo {
        serial: serial_of_bytes(cert.raw_serial()),
        address,
        not_before: v.not_before.timestamp(),
        not_after: v.not_after.timestamp(),
    })
}

/// Header mode: the certificate must be signed by our CA and valid now.
pub fn verify_issued_by(ca: &Ca, der: &[u8], now: i64) -> Result<(), &'static str> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| "cert_unparsable")?;
    let (_, ca_cert) = X509Certificate::from_der(&ca.cert_der).map_err(|_| "ca_unparsable")?;
    if cert.issuer() != ca_cert.subject() {
        return Err("cert_unknown_issuer");
    }
    cert.verify_signature(Some(ca_cert.public_key()))
        .map_err(|_| "cert_bad_signature")?;
    let v = cert.validity();
    if now < v.not_before.timestamp() || now > v.not_after.timestamp() {
        return Err("cert_expired");
    }
    Ok(())
}

/// The first certificate of a PEM text (newlines or spaces inside the base64 are fine).
pub fn first_pem_cert(text: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = text.find(BEGIN)? + BEGIN.len();
    let len = text.get(start..)?.find(END)?;
    let body: String = text
        .get(start..start + len)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn test_ca() -> (tempfile::TempDir, Ca) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let ca = Ca::load_or_create(&cfg).unwrap();
        (dir, ca)
    }

    #[test]
    fn issue_parse_verify() {
        let (dir, ca) = test_ca();
        let now = crate::util::now();
        let c = issue_client(&ca, "alice@example.com", now - 10, now + 1000).unwrap();
        let info = parse_client_cert(&c.cert_der).unwrap();
        assert_eq!(info.address, "alice@example.com");
        assert_eq!(info.serial, c.serial);
        assert!(verify_issued_by(&ca, &c.cert_der, now).is_ok());
        assert_eq!(
            verify_issued_by(&ca, &c.cert_der, now + 2000),
            Err("cert_expired")
        );
        // Reloaded from disk: same CA, and the key file is private.
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let again = Ca::load_or_create(&cfg).unwrap();
        assert_eq!(again.cert_der, ca.cert_der);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (_d2, other) = test_ca();
        assert!(verify_issued_by(&other, &c.cert_der, now).is_err());
        let p12 = pkcs12(
            "alice@example.com",
            &c.cert_der,
            &c.key_pem,
            &ca.cert_der,
            "pw",
            false,
        )
        .unwrap();
        assert!(!p12.is_empty());
        let (der, pem) = crl(&ca, &[(c.serial.clone(), now)], now).unwrap();
        assert!(!der.is_empty() && pem.contains("X509 CRL"));
        assert_eq!(
            first_pem_cert(&c.cert_pem.replace('\n', " ")),
            Some(c.cert_der)
        );
    }

    #[test]
    fn serial_normalization() {
        assert_eq!(normalize_serial("00:AB:cd"), "abcd");
        assert_eq!(serial_of_bytes(&[0, 0x12, 0x34]), "1234");
    }
}
