//! The client certificate of a request: from our TLS listener (already verified by rustls
//! against our CA and CRL) or, behind a TLS-terminating proxy, from the configured header
//! (`client_cert.header`), which is believed only when the TCP peer is a trusted proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::request::Parts;
use axum_server::tls::TlsInfo;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::{Config, canonical_ip};
use crate::tls::issue::first_pem_cert;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertSource {
    /// Verified in the TLS handshake.
    Tls,
    /// Forwarded by a trusted proxy; the chain must still be verified.
    Header,
}

#[derive(Clone, Debug)]
pub struct PresentedCert {
    pub der: Vec<u8>,
    pub source: CertSource,
}

/// The presented certificate, if any. `Err(reason)` = a trusted proxy sent a header we
/// cannot read (refused with 401 rather than silently falling back to digest).
pub fn presented(
    parts: &Parts,
    peer: SocketAddr,
    cfg: &Config,
) -> Result<Option<PresentedCert>, &'static str> {
    if let Some(info) = parts.extensions.get::<Arc<TlsInfo>>()
        && let Some(leaf) = info.peer_certificates.first()
    {
        return Ok(Some(PresentedCert {
            der: leaf.clone(),
            source: CertSource::Tls,
        }));
    }
    let name = cfg.client_cert.header.trim();
    if name.is_empty() {
        return Ok(None);
    }
    let Some(value) = parts.headers.get(name) else {
        return Ok(None);
    };
    let peer_ip = canonical_ip(peer.ip());
    if !is_trusted(cfg, peer_ip) {
        tracing::warn!("client certificate header {name} from untrusted peer ip={peer_ip} ignored");
        return Ok(None);
    }
    let text = value.to_str().map_err(|_| "cert_header_unreadable")?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let der = decode_header(text).ok_or("cert_header_unreadable")?;
    Ok(Some(PresentedCert {
        der,
        source: CertSource::Header,
    }))
}

/// Whether the request could not have been read on the way: it came over our TLS listener, from
/// this host, or from a trusted (TLS-terminating) proxy. Private keys are served only then.
pub fn confidential(parts: &Parts, peer: SocketAddr, cfg: &Config) -> bool {
    let ip = canonical_ip(peer.ip());
    parts.extensions.get::<Arc<TlsInfo>>().is_some() || ip.is_loopback() || is_trusted(cfg, ip)
}

fn is_trusted(cfg: &Config, ip: IpAddr) -> bool {
    cfg.trusted_proxies.iter().any(|c| c.contains(ip))
}

/// RFC 9440 `:<base64 DER>:`, URL-encoded PEM (nginx `$ssl_client_escaped_cert`, Traefik),
/// PEM with spaces for newlines (Apache), or bare base64 DER (Traefik `pem: true` without
/// delimiters).
pub fn decode_header(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix(':').and_then(|r| r.strip_suffix(':')) {
        return STANDARD.decode(inner).ok();
    }
    let decoded = percent_encoding::percent_decode_str(t)
        .decode_utf8()
        .ok()?
        .into_owned();
    if decoded.contains("-----BEGIN CERTIFICATE-----") {
        return first_pem_cert(&decoded);
    }
    // Traefik lists several certificates separated by commas; the first is the client's.
    let first = decoded.split(',').next()?;
    let body: String = first.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_travel_only_over_confidential_transports() {
        let (plain, _) = axum::http::Request::new(()).into_parts();
        let (mut tls, _) = axum::http::Request::new(()).into_parts();
        tls.extensions.insert(Arc::new(TlsInfo::default()));
        let mut cfg = Config::default();
        let remote: SocketAddr = "203.0.113.7:5000".parse().unwrap();
        assert!(!confidential(&plain, remote, &cfg));
        assert!(confidential(&tls, remote, &cfg));
        assert!(confidential(
            &plain,
            "127.0.0.1:5000".parse().unwrap(),
            &cfg
        ));
        assert!(confidential(
            &plain,
            "[::ffff:127.0.0.1]:5000".parse().unwrap(),
            &cfg
        ));
        cfg.trusted_proxies = vec![crate::config::Cidr::parse("203.0.113.0/24").unwrap()];
        assert!(confidential(&plain, remote, &cfg));
    }

    #[test]
    fn header_forms() {
        let der = vec![0x30u8, 0x03, 0x02, 0x01, 0x05];
        let b64 = STANDARD.encode(&der);
        assert_eq!(decode_header(&format!(":{b64}:")), Some(der.clone()));
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        let escaped: String =
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(decode_header(&escaped), Some(der.clone()));
        assert_eq!(decode_header(&pem.replace('\n', " ")), Some(der.clone()));
        assert_eq!(decode_header(&b64), Some(der));
        assert_eq!(decode_header("%%%"), None);
    }
}
