//! Client certificates: issuing (CLI and `get_crt`/`get_p12`), authentication by certificate,
//! revocation and the CRL. Every rule about certificates lives here, once.

use std::collections::HashMap;

use subtle::ConstantTimeEq;

use super::Services;
use crate::crypto::md5_hex;
use crate::domain::Account;
use crate::error::{ServiceError, ServiceResult};
use crate::store::{ClientCertListing, NewClientCert};
use crate::tls::issue::{self, IssuedCert};
use crate::util::now;

pub const P12_PASSWORD_ERROR: &str = "Error: the password parameter must be your SIP password";

/// A certificate served again by `get_crt` must stay valid at least this long; otherwise a
/// new one is issued.
const REISSUE_BEFORE_SECS: i64 = 86_400;

/// Why a presented client certificate does not authenticate.
#[derive(Debug)]
pub enum CertAuthError {
    /// 401: unknown, revoked, expired, foreign or malformed. `reason` is a log token.
    Refused {
        reason: &'static str,
        address: Option<String>,
    },
    /// 403: the certificate is fine but the account is blocked.
    Blocked(Box<Account>),
    /// The store could not answer.
    Service(ServiceError),
}

impl From<ServiceError> for CertAuthError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

impl From<sqlx::Error> for CertAuthError {
    fn from(e: sqlx::Error) -> Self {
        Self::Service(e.into())
    }
}

/// Parsed client certificates by their DER: a client sends the same certificate on every
/// request, and reading it (x509) cost more than the serial check itself. Only what the
/// certificate says is kept; validity, revocation and the account are checked every time.
#[derive(Default)]
pub(super) struct ParsedCerts(std::sync::Mutex<HashMap<Vec<u8>, issue::ClientCertInfo>>);

const PARSED_CERTS_MAX: usize = 10_000;

impl ParsedCerts {
    fn parse(&self, der: &[u8]) -> Result<issue::ClientCertInfo, &'static str> {
        let lock = || self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = lock().get(der) {
            return Ok(info.clone());
        }
        let info = issue::parse_client_cert(der)?;
        let mut map = lock();
        if map.len() >= PARSED_CERTS_MAX {
            map.clear();
        }
        map.insert(der.to_vec(), info.clone());
        Ok(info)
    }
}

/// A certificate operation failed for a server-side reason (CA files, sealing): logged with
/// its cause, answered with the JSON error shape (never a 500).
fn internal(e: anyhow::Error) -> ServiceError {
    tracing::error!("certificate operation failed: {e}");
    ServiceError::invalid("Error: certificates are temporarily unavailable, please retry later")
}

impl Services {
    /// The account a verified client certificate belongs to. `check_chain` is set when the
    /// certificate did not come through our TLS verifier (proxy header): then signature and
    /// validity are checked here against our CA. The serial must be known, not revoked and
    /// not expired in the store, and name the same account as the certificate.
    pub async fn account_for_client_cert(
        &self,
        der: &[u8],
        check_chain: bool,
    ) -> Result<Account, CertAuthError> {
        let refused = |reason, address: Option<&str>| CertAuthError::Refused {
            reason,
            address: address.map(str::to_owned),
        };
        let info = self.parsed_certs.parse(der).map_err(|r| refused(r, None))?;
        let now = now();
        if check_chain {
            let ca = self.ca().map_err(internal)?;
            issue::verify_issued_by(&ca, der, now).map_err(|r| refused(r, Some(&info.address)))?;
        }
        if now > info.not_after || now < info.not_before {
            return Err(refused("cert_expired", Some(&info.address)));
        }
        let Some(account_id) = self
            .store
            .valid_client_cert_account(&info.serial, now)
            .await?
        else {
            // Failure path only: find out why, for the log line.
            let reason = match self.store.client_cert_by_serial(&info.serial).await? {
                None => "cert_unknown_serial",
                Some(row) if row.revoked_at.is_some() => "cert_revoked",
                Some(_) => "cert_expired",
            };
            return Err(refused(reason, Some(&info.address)));
        };
        // The serial (revocation, expiry) is read from the store on every request; the
        // account row comes the way digest authentication gets it (the short-lived auth
        // cache, evicted on every account write), and must be the one the serial names.
        let (user, domain) = info
            .address
            .rsplit_once('@')
            .ok_or_else(|| refused("cert_no_account", Some(&info.address)))?;
        let account = match self.store.account_for_auth(user, domain).await? {
            Some(a) if a.id == account_id => a,
            _ => return Err(refused("cert_account_mismatch", Some(&info.address))),
        };
        if account.is_blocked() {
            return Err(CertAuthError::Blocked(Box::new(account)));
        }
        Ok(account)
    }

    /// Issues a certificate valid for `days` and records it (key sealed).
    pub async fn issue_client_cert(&self, a: &Account, days: u32) -> ServiceResult<IssuedCert> {
        let now = now();
        let days = i64::from(days.clamp(1, 3650));
        self.issue_client_cert_between(a, now - 300, now + days * 86_400)
            .await
    }

    /// Issues a certificate with an explicit validity window (tests use past windows).
    pub async fn issue_client_cert_between(
        &self,
        a: &Account,
        not_before: i64,
        not_after: i64,
    ) -> ServiceResult<IssuedCert> {
        let ca = self.ca().map_err(internal)?;
        let address = a.address();
        let issued = issue::issue_client(&ca, &address, not_before, not_after).map_err(internal)?;
        let sealed = self.keys.seal(&issued.key_pem).map_err(internal)?;
        let mut tx = self.store.begin_write().await?;
        self.store
            .insert_client_cert(
                &mut tx,
                &NewClientCert {
                    serial: &issued.serial,
                    account_id: a.id,
                    not_before: issued.not_before,
                    not_after: issued.not_after,
                    cert_pem: &issued.cert_pem,
                    key_sealed: &sealed,
                },
                now(),
            )
            .await?;
        tx.commit().await?;
        tracing::info!(serial = %issued.serial, account = %address, "issued client certificate");
        Ok(issued)
    }

    /// The account's current certificate and key (PEM), issuing one on first use.
    async fn current_client_cert(&self, a: &Account) -> ServiceResult<(String, String)> {
        if let Some(row) = self
            .store
            .active_client_cert(a.id, now() + REISSUE_BEFORE_SECS)
            .await?
        {
            match self.keys.open(&row.key_sealed) {
                Ok(key) => return Ok((row.cert_pem, key)),
                // E.g. `secret_key` was changed: the old key is lost; issue a new certificate.
                Err(e) => tracing::warn!(
                    serial = %row.serial,
                    "cannot open the stored key ({e}); issuing a new certificate"
                ),
            }
        }
        let issued = self.issue_client_cert(a, self.client_cert_days()).await?;
        Ok((issued.cert_pem, issued.key_pem))
    }

    /// `get_crt`: certificate, private key and CA certificate as one PEM text.
    pub async fn client_cert_bundle(&self, a: &Account) -> ServiceResult<String> {
        let ca = self.ca().map_err(internal)?;
        let (cert, key) = self.current_client_cert(a).await?;
        Ok(issue::bundle_pem(&cert, &key, &ca.cert_pem))
    }

    /// `get_p12`: the same as PKCS#12, locked with the account's SIP password.
    pub async fn client_cert_p12(
        &self,
        a: &Account,
        password: Option<&str>,
        modern: bool,
    ) -> ServiceResult<Vec<u8>> {
        let password = password.unwrap_or("");
        if !self.is_sip_password(a, password) {
            return Err(ServiceError::invalid(P12_PASSWORD_ERROR));
        }
        let ca = self.ca().map_err(internal)?;
        let (cert_pem, key_pem) = self.current_client_cert(a).await?;
        let cert_der = issue::first_pem_cert(&cert_pem)
            .ok_or_else(|| internal(anyhow::anyhow!("stored certificate unreadable")))?;
        issue::pkcs12(
            &a.address(),
            &cert_der,
            &key_pem,
            &ca.cert_der,
            password,
            modern,
        )
        .map_err(internal)
    }

    /// True when `password` is the account's SIP password (constant-time HA1 comparison).
    pub fn is_sip_password(&self, a: &Account, password: &str) -> bool {
        if password.is_empty() {
            return false;
        }
        let ha1 = md5_hex(format!("{}:{}:{password}", a.username, a.domain).as_bytes());
        bool::from(
            ha1.as_bytes()
                .ct_eq(a.ha1_md5.to_ascii_lowercase().as_bytes()),
        )
    }

    /// All certificates, or those of one account.
    pub async fn list_client_certs(
        &self,
        address: Option<&str>,
    ) -> ServiceResult<Vec<ClientCertListing>> {
        let id = match address {
            Some(addr) => Some(self.find_account(addr).await?.id),
            None => None,
        };
        Ok(self.store.list_client_certs(id).await?)
    }

    /// Revokes a serial, or every certificate of `user@domain`; returns the serials revoked.
    pub async fn revoke_client_certs(&self, target: &str) -> ServiceResult<Vec<String>> {
        let now = now();
        if target.contains('@') {
            let a = self.find_account(target).await?;
            let mut tx = self.store.begin_write().await?;
            let serials = self
                .store
                .revoke_account_client_certs(&mut tx, a.id, now)
                .await?;
            tx.commit().await?;
            if serials.is_empty() {
                return Err(ServiceError::NotFound(format!(
                    "{} has no certificate to revoke",
                    a.address()
                )));
            }
            for s in &serials {
                tracing::info!(serial = %s, account = %a.address(), "revoked client certificate");
            }
            return Ok(serials);
        }
        let serial = issue::normalize_serial(target);
        if serial.is_empty() || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ServiceError::invalid(format!(
                "expected a serial (hex) or user@domain, got {target:?}"
            )));
        }
        let mut tx = self.store.begin_write().await?;
        let changed = self.store.revoke_client_cert(&mut tx, &serial, now).await?;
        tx.commit().await?;
        match changed {
            Some(_) => {
                tracing::info!(serial = %serial, "revoked client certificate");
                Ok(vec![serial])
            }
            None => match self.store.client_cert_by_serial(&serial).await? {
                Some(_) => Err(ServiceError::Conflict(format!(
                    "certificate {serial} is already revoked"
                ))),
                None => Err(ServiceError::NotFound(format!(
                    "no certificate with serial {serial}"
                ))),
            },
        }
    }

    /// The current CRL (revoked, not yet expired certificates), signed by the CA: (DER, PEM).
    pub async fn client_cert_crl(&self) -> ServiceResult<(Vec<u8>, String)> {
        let revoked = self.revoked_client_certs().await?;
        self.crl_of(&revoked)
    }

    /// (serial, revoked_at) of the revoked certificates that have not expired.
    pub async fn revoked_client_certs(&self) -> ServiceResult<Vec<(String, i64)>> {
        Ok(self.store.revoked_client_certs(now()).await?)
    }

    /// A CRL over `revoked`, signed by the CA: (DER, PEM).
    pub fn crl_of(&self, revoked: &[(String, i64)]) -> ServiceResult<(Vec<u8>, String)> {
        let ca = self.ca().map_err(internal)?;
        issue::crl(&ca, revoked, now()).map_err(internal)
    }
}
