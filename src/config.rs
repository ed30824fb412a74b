//! Configuration: defaults → TOML file (`--config` / `SIPSETTINGS_CONFIG`) → `SIPSETTINGS_*`
//! environment (`__` nests), where every key also has a `*_FILE` variant (Docker secrets).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ENV_PREFIX: &str = "SIPSETTINGS_";
/// Environment variables with our prefix that are not configuration keys.
const ENV_NOT_KEYS: &[&str] = &["config", "test_postgres_url", "bench_postgres_url"];

/// A string that never shows in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"***\"")
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(String::deserialize(d)?))
    }
}

/// A CIDR block such as `10.0.0.0/8` or `::1/128` (a bare address means a single host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `::ffff:1.2.3.4` is the IPv4 peer `1.2.3.4` seen through a dual-stack socket.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid CIDR {s:?}")))
    }
}

/// Comma-separated list from the environment, or a real list from TOML.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Comma-separated list from the environment, or a real list from TOML.
fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    };
    items
        .iter()
        .map(|s| {
            Cidr::parse(s).ok_or_else(|| serde::de::Error::custom(format!("invalid CIDR {s:?}")))
        })
        .collect()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Directory for the SQLite file and generated secrets; created if missing.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; empty = `sipsettings.db` in `data_dir`.
    pub database_url: Secret,
    /// HTTP listener address.
    pub listen: String,
    /// HTTPS listener address (optional client certificates); empty = no HTTPS listener.
    pub tls_listen: String,
    /// Base64 of 32 random bytes. Signs digest nonces and encrypts recoverable secrets.
    /// Empty = generated once into `<data_dir>/secret.key`. Replicas must share it.
    pub secret_key: Secret,
    /// `text` or `json`.
    pub log_format: String,
    /// Log filter in `RUST_LOG` syntax (e.g. `info,sipsettings=debug`). Empty = `RUST_LOG`,
    /// else `info` for `serve` and `warn` for the other commands.
    pub log: String,
    /// Address of the Prometheus `/metrics` listener; empty = no metrics. Never served on
    /// the public listeners: bind it to an address only the scraper reaches.
    pub metrics_listen: String,
    /// Seconds `serve` waits for in-flight requests after SIGTERM/SIGINT before it exits anyway.
    pub shutdown_timeout_secs: u64,
    /// Largest accepted request body in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Seconds a request may take before it is answered with 503.
    pub request_timeout_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed (CIDR list). Empty = none.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<Cidr>,
    /// Timezone used when an account has none.
    pub default_timezone: String,
    pub database: DatabaseConfig,
    pub digest: DigestConfig,
    pub throttle: ThrottleConfig,
    pub journal: JournalConfig,
    pub tls: TlsConfig,
    pub client_cert: ClientCertConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct JournalConfig {
    /// Largest `data` of one row, in bytes of JSON.
    pub max_row_bytes: usize,
    /// Most rows in one `put_journal_entries` call.
    pub max_rows_per_call: usize,
    /// Largest `data` parameter of one call, in bytes.
    pub max_call_bytes: usize,
    /// Most entries one account may hold; the call that would exceed it is refused.
    pub max_entries_per_account: i64,
    /// Delete entries older than this many days automatically (0 = keep forever).
    pub retention_days: u64,
    /// Entries deleted per retention transaction, so live traffic is never blocked long.
    pub prune_batch: i64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            max_row_bytes: 64 * 1024,
            max_rows_per_call: 1000,
            max_call_bytes: 8 * 1024 * 1024,
            max_entries_per_account: 100_000,
            retention_days: 0,
            prune_batch: 1000,
        }
    }
}

/// The HTTPS listener, the built-in CA and client certificates.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// Server certificate chain (PEM); empty = issued by the built-in CA at first start.
    pub cert_file: String,
    /// Server private key (PEM, PKCS#8/SEC1/PKCS#1); required with `cert_file`.
    pub key_file: String,
    /// CA certificate (PEM); empty = `<data_dir>/ca.crt`, created at first start.
    pub ca_cert_file: String,
    /// CA private key (PEM); empty = `<data_dir>/ca.key` (mode 0600), created at first start.
    pub ca_key_file: String,
    /// Host names added to the generated server certificate (besides localhost, 127.0.0.1).
    #[serde(deserialize_with = "string_list")]
    pub hostnames: Vec<String>,
    /// Seconds between rebuilds of the TLS verifier's CRL from the store.
    pub crl_refresh_secs: u64,
    /// Validity of client certificates issued by `get_crt`/`get_p12` and `cert issue`.
    pub client_cert_days: u32,
}

/// Client certificates forwarded by a TLS-terminating proxy.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientCertConfig {
    /// Request header carrying the client certificate (URL-encoded PEM as nginx
    /// `$ssl_client_escaped_cert`, or RFC 9440 `:base64 DER:`), honoured only from
    /// `trusted_proxies`. Empty = header mode off.
    pub header: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            ca_cert_file: String::new(),
            ca_key_file: String::new(),
            hostnames: Vec::new(),
            crl_refresh_secs: 30,
            client_cert_days: 365,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// Pool size (SQLite readers; writes are serialised anyway).
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before answering 503. This also bounds how
    /// long a request waits while the database is down (new connections are retried until then).
    pub acquire_timeout_secs: u64,
    /// Milliseconds an account row may serve authentication from memory (0 = always read).
    /// Changes through this server, or any replica on PostgreSQL, evict it at once; this
    /// bounds only changes made by other processes on SQLite (the CLI).
    pub account_cache_ms: u64,
    /// Customers with at least this many accounts keep their search texts in memory (~100
    /// bytes an account), so that their listings count and page there (0 = always in SQL).
    pub search_mirror_min_accounts: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DigestConfig {
    /// Seconds a nonce stays valid; afterwards clients get `stale=true`.
    pub nonce_lifetime_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottleConfig {
    /// Failed authentications per IP within `window_secs` before answers slow down.
    pub slow_after: u32,
    /// Failed authentications per IP within `window_secs` before the IP is refused (429).
    pub max_failures: u32,
    pub window_secs: u64,
    /// How long a refused IP stays refused.
    pub ban_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database_url: Secret::default(),
            listen: "127.0.0.1:8080".into(),
            tls_listen: "127.0.0.1:8443".into(),
            secret_key: Secret::default(),
            log_format: "text".into(),
            log: String::new(),
            metrics_listen: String::new(),
            shutdown_timeout_secs: 10,
            max_body_bytes: 24 * 1024 * 1024,
            request_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            default_timezone: "UTC".into(),
            database: DatabaseConfig::default(),
            digest: DigestConfig::default(),
            throttle: ThrottleConfig::default(),
            journal: JournalConfig::default(),
            tls: TlsConfig::default(),
            client_cert: ClientCertConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_secs: 5,
            account_cache_ms: 1000,
            search_mirror_min_accounts: 10_000,
        }
    }
}

impl Default for DigestConfig {
    fn default() -> Self {
        Self {
            nonce_lifetime_secs: 300,
        }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            slow_after: 5,
            max_failures: 20,
            window_secs: 300,
            ban_secs: 600,
        }
    }
}

impl Config {
    /// Loads defaults → file → environment, and returns warnings for keys we do not know.
    pub fn load(file: Option<&Path>) -> anyhow::Result<(Config, Vec<String>)> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let mut keys_seen: Vec<String> = Vec::new();
        if let Some(path) = file {
            if !path.exists() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let value: toml::Table = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("invalid TOML in {}: {e}", path.display()))?;
            collect_keys(&value, "", &mut keys_seen);
            fig = fig.merge(Toml::file(path));
        }
        let env = Env::prefixed(ENV_PREFIX)
            .split("__")
            .filter(|k| !ENV_NOT_KEYS.contains(&k.as_str()) && !k.as_str().ends_with("_file"));
        for (k, _) in std::env::vars() {
            if let Some(rest) = k.strip_prefix(ENV_PREFIX) {
                let key = rest.to_ascii_lowercase().replace("__", ".");
                if !ENV_NOT_KEYS.contains(&key.as_str()) {
                    keys_seen.push(key.strip_suffix("_file").unwrap_or(&key).to_owned());
                }
            }
        }
        fig = fig.merge(env);
        // `*_FILE` variants: the file's content (trimmed) is the value.
        for (k, v) in std::env::vars() {
            let Some(rest) = k.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let Some(key) = rest.strip_suffix("_FILE") else {
                continue;
            };
            let content = std::fs::read_to_string(&v)
                .map_err(|e| anyhow::anyhow!("cannot read {k}={v}: {e}"))?;
            let key = key.to_ascii_lowercase().replace("__", ".");
            fig = fig.merge(Serialized::default(&key, content.trim().to_owned()));
        }
        let cfg: Config = fig
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let known = known_keys();
        let warnings = keys_seen
            .into_iter()
            .filter(|k| !known.contains(k))
            .map(|k| format!("unknown configuration key {k:?} ignored"))
            .collect();
        Ok((cfg, warnings))
    }

    /// The database URL to use (default: SQLite file in the data dir).
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("sipsettings.db").display()
            )
        } else {
            self.database_url.expose().to_owned()
        }
    }

    pub fn is_postgres(&self) -> bool {
        let url = self.database_url();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }
}

fn known_keys() -> BTreeSet<String> {
    let mut keys = Vec::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(Config::default()) {
        collect_keys(&t, "", &mut keys);
    }
    keys.into_iter().collect()
}

fn collect_keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => collect_keys(inner, &key, out),
            _ => out.push(key),
        }
    }
}

/// Hides the password of a database URL for log lines.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = url.get(s + 3..at).unwrap_or("");
            let user = creds.split(':').next().unwrap_or("");
            format!(
                "{}{}:***{}",
                url.get(..s + 3).unwrap_or(""),
                user,
                url.get(at..).unwrap_or("")
            )
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hidden_in_debug() {
        let cfg = Config {
            database_url: Secret::new("postgres://u:hunter2@db/x"),
            secret_key: Secret::new("c2VjcmV0"),
            ..Config::default()
        };
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(!dbg.contains("c2VjcmV0"));
        assert_eq!(
            redact_url("postgres://u:hunter2@db/x"),
            "postgres://u:***@db/x"
        );
    }

    #[test]
    fn cidr_contains() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let h = Cidr::parse("::1").unwrap();
        assert!(h.contains("::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn known_keys_include_nested() {
        let k = known_keys();
        assert!(k.contains("digest.nonce_lifetime_secs"));
        assert!(k.contains("listen"));
        assert!(k.contains("trusted_proxies"));
    }
}
