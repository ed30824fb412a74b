//! Secrets: the master key, HA1 values, and sealing of secrets that must stay recoverable.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit as AeadKeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::Config;

type HmacSha256 = Hmac<Sha256>;

/// Keys derived from the one configured master secret.
#[derive(Clone)]
pub struct Keys {
    /// Signs digest nonces.
    pub nonce: [u8; 32],
    /// Encrypts secrets we must be able to show again (voicemail PINs).
    seal: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Keys {
    pub fn from_master(master: &[u8]) -> Self {
        Self {
            nonce: derive(master, b"sipsettings digest nonce v1"),
            seal: derive(master, b"sipsettings seal v1"),
        }
    }

    /// Configured secret, else `<data_dir>/secret.key` (created with mode 0600 on first start).
    pub fn load(cfg: &Config) -> anyhow::Result<Self> {
        if !cfg.secret_key.is_empty() {
            let raw = STANDARD
                .decode(cfg.secret_key.expose().trim())
                .map_err(|_| anyhow::anyhow!("secret_key is not valid base64"))?;
            if raw.len() < 32 {
                anyhow::bail!("secret_key must decode to at least 32 bytes");
            }
            return Ok(Self::from_master(&raw));
        }
        let path = cfg.data_dir.join("secret.key");
        let raw = load_or_create_key_file(&path)?;
        Ok(Self::from_master(&raw))
    }

    pub fn seal(&self, plaintext: &str) -> anyhow::Result<String> {
        let cipher = XChaCha20Poly1305::new((&self.seal).into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("v1:{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let body = sealed
            .strip_prefix("v1:")
            .ok_or_else(|| anyhow::anyhow!("unknown sealed format"))?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| anyhow::anyhow!("sealed value is not base64"))?;
        if raw.len() < 24 {
            anyhow::bail!("sealed value too short");
        }
        let (nonce, ct) = raw.split_at(24);
        let cipher = XChaCha20Poly1305::new((&self.seal).into());
        let pt = cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| anyhow::anyhow!("cannot decrypt (was the secret key changed?)"))?;
        String::from_utf8(pt).map_err(|_| anyhow::anyhow!("sealed value is not UTF-8"))
    }
}

fn derive(master: &[u8], label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(master) {
        mac.update(label);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

fn load_or_create_key_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return decode_key_file(path, &text);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    // Replicas sharing one data volume may start together: the key is written whole to a
    // private temporary name and linked into place, which fails if another process won;
    // then everyone uses the winner's key (never two different keys, never a partial file).
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    write_private_file(&tmp, STANDARD.encode(raw).as_bytes())?;
    match std::fs::hard_link(&tmp, path) {
        Ok(()) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(raw.to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&tmp);
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            decode_key_file(path, &text)
        }
        // A file system without hard links: still never a partial file.
        Err(_) => {
            std::fs::rename(&tmp, path)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            Ok(raw.to_vec())
        }
    }
}

fn decode_key_file(path: &Path, text: &str) -> anyhow::Result<Vec<u8>> {
    let raw = STANDARD
        .decode(text.trim())
        .map_err(|_| anyhow::anyhow!("{} is not valid base64", path.display()))?;
    if raw.len() < 32 {
        anyhow::bail!("{} must hold at least 32 bytes", path.display());
    }
    Ok(raw)
}

/// Writes a file readable by the owner only.
pub fn write_private_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(content)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `(MD5(user:realm:pw), SHA-256(user:realm:pw))`.
pub fn ha1_pair(user: &str, realm: &str, password: &str) -> (String, String) {
    let input = format!("{user}:{realm}:{password}");
    (md5_hex(input.as_bytes()), sha256_hex(input.as_bytes()))
}

/// All we keep of a SIP password: HA1 for username `user` and for username `user@domain`.
#[derive(Clone, Debug)]
pub struct Ha1Set {
    pub md5: String,
    pub sha256: String,
    pub md5_full: String,
    pub sha256_full: String,
}

impl Ha1Set {
    pub fn new(user: &str, domain: &str, password: &str) -> Self {
        let (md5, sha256) = ha1_pair(user, domain, password);
        let (md5_full, sha256_full) = ha1_pair(&format!("{user}@{domain}"), domain, password);
        Self {
            md5,
            sha256,
            md5_full,
            sha256_full,
        }
    }
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(key) {
        mac.update(data);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// A random password for `--demo` and resets: 16 characters, no look-alikes.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| {
            let i = (rng.next_u32() as usize) % ALPHABET.len();
            ALPHABET.get(i).copied().map(char::from).unwrap_or('x')
        })
        .collect()
}

/// A random (version 4) UUID in its usual text form: the public id of an account.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_starting_together_share_one_generated_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create_key_file(&path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| k == &keys[0] && k.len() == 32));
        assert_eq!(load_or_create_key_file(&path).unwrap(), keys[0]);
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn seal_round_trip() {
        let k = Keys::from_master(&[7u8; 32]);
        let s = k.seal("9876").unwrap();
        assert!(!s.contains("9876"));
        assert_eq!(k.open(&s).unwrap(), "9876");
        let other = Keys::from_master(&[8u8; 32]);
        assert!(other.open(&s).is_err());
        assert!(k.open("v1:!!").is_err());
    }

    #[test]
    fn ha1_values() {
        let (md5, sha) = ha1_pair("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(md5, md5_hex(b"Mufasa:http-auth@example.org:Circle of Life"));
        assert_eq!(md5.len(), 32);
        assert_eq!(sha.len(), 64);
    }
}
