//! The binary: CLI commands, `serve --demo`, healthcheck, logs.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Backing, Client, backends};

const BIN: &str = env!("CARGO_BIN_EXE_sipsettings");

fn cmd(b: &Backing, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("SIPSETTINGS_CONFIG");
    for (k, v) in b.env() {
        c.env(k, v);
    }
    c
}

/// Runs a command; returns (success, stdout, stderr).
pub fn run(b: &Backing, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut c = cmd(b, args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `serve` child process; killed on drop.
pub struct Served {
    pub child: Child,
    pub port: u16,
    pub tls_port: u16,
    pub stdout: std::sync::Arc<std::sync::Mutex<String>>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// The password `serve --demo` printed for alice.
    pub fn demo_password(&self) -> String {
        let out = self.stdout.lock().unwrap();
        out.lines()
            .find(|l| l.contains("password:"))
            .and_then(|l| l.split_whitespace().last())
            .expect("serve --demo printed no password")
            .to_owned()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(b: &Backing, args: &[&str], extra_env: &[(&str, &str)]) -> Served {
    let port = free_port();
    let tls_port = free_port();
    let mut c = cmd(b, &[&["serve"], args].concat());
    c.env("SIPSETTINGS_LISTEN", format!("127.0.0.1:{port}"));
    c.env("SIPSETTINGS_TLS_LISTEN", format!("127.0.0.1:{tls_port}"));
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn serve");
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for (pipe, buf) in [
        (
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            stdout.clone(),
        ),
        (
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            stderr.clone(),
        ),
    ] {
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut b = buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited early: {status} {}", stderr.lock().unwrap());
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give the banner a moment to be printed after the listener is up.
    std::thread::sleep(Duration::from_millis(200));
    Served {
        child,
        port,
        tls_port,
        stdout,
        stderr,
    }
}

/// A change made by another process reaches a running server's authentication cache at once
/// on PostgreSQL (NOTIFY) and within `database.account_cache_ms` (1 s) on SQLite.
async fn cli_change_visible(backend: &str) {
    if backend == "sqlite" {
        tokio::time::sleep(Duration::from_millis(1100)).await;
    } else {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn account_lifecycle_through_cli() {
    for b in backends() {
        let bk = Backing::new(b).await;
        let (ok, out, err) = run(&bk, &["migrate"], None);
        assert!(ok, "{err}");
        assert!(out.contains("migrations applied"));
        assert!(!out.contains("sipsettings_test") || bk.pg.is_some());
        assert!(run(&bk, &["domain", "add", "Example.COM"], None).0);
        let (ok, _, err) = run(&bk, &["domain", "add", "example.com"], None);
        assert!(!ok && err.contains("already exists"), "{err}");
        let (ok, _, err) = run(&bk, &["domain", "add", "bad domain"], None);
        assert!(!ok && err.contains("invalid domain"), "{err}");
        assert_eq!(run(&bk, &["domain", "list"], None).1, "example.com\n");

        // Password from stdin.
        let (ok, out, err) = run(
            &bk,
            &[
                "account",
                "add",
                "alice@example.com",
                "--first",
                "Alice",
                "--timezone",
                "Europe/Amsterdam",
            ],
            Some("stdin-secret\n"),
        );
        assert!(ok, "{err}");
        assert_eq!(out, "added account alice@example.com\n");
        // Password from a file.
        let pwfile = bk.dir.path().join("pw");
        std::fs::write(&pwfile, "file-secret\n").unwrap();
        let (ok, _, err) = run(
            &bk,
            &[
                "account",
                "add",
                "bob@example.com",
                "--password-file",
                pwfile.to_str().unwrap(),
            ],
            None,
        );
        assert!(ok, "{err}");
        for (args, msg) in [
            (
                vec!["account", "add", "alice@example.com", "--password", "x"],
                "already",
            ),
            (
                vec!["account", "add", "x@nowhere.test", "--password", "x"],
                "does not exist",
            ),
            (
                vec!["account", "add", "bad user@example.com", "--password", "x"],
                "invalid username",
            ),
            (
                vec![
                    "account",
                    "add",
                    "c@example.com",
                    "--password",
                    "x",
                    "--email",
                    "nope",
                ],
                "invalid email",
            ),
            (
                vec![
                    "account",
                    "add",
                    "c@example.com",
                    "--password",
                    "x",
                    "--timezone",
                    "Mars/Base",
                ],
                "unknown timezone",
            ),
            (
                vec![
                    "account",
                    "add",
                    "c@example.com",
                    "--password",
                    "x",
                    "--mobile",
                    "0612",
                ],
                "E.164",
            ),
            (
                vec!["account", "add", "noat", "--password", "x"],
                "user@domain",
            ),
            (
                vec!["account", "show", "nobody@example.com"],
                "does not exist",
            ),
        ] {
            let (ok, _, err) = run(&bk, &args, None);
            assert!(!ok, "{args:?} should fail");
            assert!(err.contains(msg), "{args:?}: {err}");
        }
        let (ok, _, err) = run(&bk, &["account", "add", "c@example.com"], Some(""));
        assert!(!ok && err.contains("empty password"), "{err}");
        let (_, out, _) = run(&bk, &["account", "show", "alice@example.com"], None);
        assert!(
            out.contains("Alice") && out.contains("Europe/Amsterdam"),
            "{out}"
        );
        assert!(!out.contains("stdin-secret"));
        assert_eq!(
            run(&bk, &["account", "list"], None).1,
            "alice@example.com\nbob@example.com\n"
        );

        // The stored password works over HTTP; then passwd, block, unblock, remove.
        let srv = serve(&bk, &[], &[]);
        let base = format!("http://127.0.0.1:{}", srv.port);
        let alice = Client::new(&base, "alice", "stdin-secret", "example.com");
        assert_eq!(
            alice.get("action=get_identity").await.json()["first"],
            "Alice"
        );
        let bob = Client::new(&base, "bob", "file-secret", "example.com");
        assert_eq!(bob.get("action=get_identity").await.status, 200);
        assert!(
            run(
                &bk,
                &[
                    "account",
                    "passwd",
                    "alice@example.com",
                    "--password",
                    "new-secret"
                ],
                None
            )
            .0
        );
        cli_change_visible(b).await;
        assert_eq!(
            Client::new(&base, "alice", "stdin-secret", "example.com")
                .get("action=get_identity")
                .await
                .status,
            401
        );
        assert_eq!(
            Client::new(&base, "alice", "new-secret", "example.com")
                .get("action=get_identity")
                .await
                .status,
            200
        );
        assert!(run(&bk, &["account", "block", "alice@example.com"], None).0);
        cli_change_visible(b).await;
        assert_eq!(
            run(&bk, &["account", "list"], None).1,
            "alice@example.com (blocked)\nbob@example.com\n"
        );
        assert_eq!(
            Client::new(&base, "alice", "new-secret", "example.com")
                .get("action=get_identity")
                .await
                .status,
            403
        );
        assert!(run(&bk, &["account", "unblock", "alice@example.com"], None).0);
        cli_change_visible(b).await;
        assert_eq!(
            Client::new(&base, "alice", "new-secret", "example.com")
                .get("action=get_identity")
                .await
                .status,
            200
        );
        let (ok, _, err) = run(&bk, &["domain", "remove", "example.com"], None);
        assert!(!ok && err.contains("still has"), "{err}");
        assert!(run(&bk, &["account", "remove", "alice@example.com"], None).0);
        assert!(run(&bk, &["account", "remove", "bob@example.com"], None).0);
        assert!(run(&bk, &["domain", "remove", "example.com"], None).0);

        // healthcheck reads the same config: ok while serving, failure after.
        let env_listen = format!("127.0.0.1:{}", srv.port);
        let hc = cmd(&bk, &["healthcheck"])
            .env("SIPSETTINGS_LISTEN", &env_listen)
            .output()
            .unwrap();
        assert!(
            hc.status.success(),
            "{}",
            String::from_utf8_lossy(&hc.stderr)
        );
        // `--ready` (the compose file's check), with the address from a configuration file
        // (SIPSETTINGS_CONFIG, as in a container) given as a wildcard bind address.
        let conf = bk.dir.path().join("healthcheck.toml");
        std::fs::write(&conf, format!("listen = \"0.0.0.0:{}\"\n", srv.port)).unwrap();
        let hc = cmd(&bk, &["healthcheck", "--ready"])
            .env("SIPSETTINGS_CONFIG", &conf)
            .output()
            .unwrap();
        assert!(
            hc.status.success(),
            "{}",
            String::from_utf8_lossy(&hc.stderr)
        );
        // The stored secret never shows in the logs.
        let logs = srv.stderr.lock().unwrap().clone();
        assert!(
            logs.contains("auth failure ip=127.0.0.1 user=alice@example.com reason=bad_password"),
            "{logs}"
        );
        for secret in ["stdin-secret", "file-secret", "new-secret"] {
            assert!(!logs.contains(secret), "{secret} in logs");
        }
        drop(srv);
        let hc = cmd(&bk, &["healthcheck"])
            .env("SIPSETTINGS_LISTEN", &env_listen)
            .output()
            .unwrap();
        assert!(!hc.status.success());
    }
}

#[tokio::test]
async fn serve_demo_prints_working_curl_lines() {
    for b in backends() {
        let bk = Backing::new(b).await;
        let srv = serve(&bk, &["--demo"], &[]);
        let out = srv.stdout.lock().unwrap().clone();
        assert!(out.contains("alice@example.com"), "{out}");
        let lines: Vec<&str> = out
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("curl "))
            .collect();
        assert_eq!(lines.len(), 5, "{out}");
        let cwd = tempfile::tempdir().unwrap();
        for line in lines {
            let o = Command::new("sh")
                .arg("-c")
                .arg(format!("{line} -s"))
                .current_dir(cwd.path())
                .output()
                .unwrap();
            if line.contains(" -o ") {
                assert!(o.status.success(), "{line}");
                continue;
            }
            let body = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|_| panic!("{line}: {body}"));
            assert_ne!(
                v.get("success"),
                Some(&serde_json::Value::Bool(false)),
                "{line}: {body}"
            );
        }
        let pw = srv.demo_password();
        let c = Client::new(
            &format!("http://127.0.0.1:{}", srv.port),
            "alice",
            &pw,
            "example.com",
        );
        assert_eq!(
            c.get("action=get_history").await.json()["placed"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        drop(srv);
        // A second --demo start does not add data again and says so.
        let srv = serve(&bk, &["--demo"], &[]);
        assert!(srv.stdout.lock().unwrap().contains("already has accounts"));
        drop(srv);
        // The secret key file is private.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(bk.dir.path().join("secret.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

#[tokio::test]
async fn serve_without_accounts_explains() {
    let bk = Backing::new("sqlite").await;
    let srv = serve(&bk, &[], &[("SIPSETTINGS_TYPO_KEY", "1")]);
    assert!(
        srv.stdout
            .lock()
            .unwrap()
            .contains("sipsettings account add")
    );
    let err = srv.stderr.lock().unwrap().clone();
    assert!(
        err.contains("unknown configuration key \"typo_key\""),
        "{err}"
    );
}

#[tokio::test]
async fn config_file_and_file_secrets() {
    let bk = Backing::new("sqlite").await;
    let port = free_port();
    let cfg = bk.dir.path().join("sipsettings.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\nunknown_thing = 1\n[digest]\nnonce_lifetime_secs = 60\n"
        ),
    )
    .unwrap();
    let key = bk.dir.path().join("key");
    std::fs::write(&key, "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n").unwrap();
    let (ok, _, err) = {
        let mut c = cmd(&bk, &["--config", cfg.to_str().unwrap(), "domain", "list"]);
        c.env("SIPSETTINGS_SECRET_KEY_FILE", &key);
        let o = c.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert!(ok, "{err}");
    assert!(
        err.contains("unknown configuration key \"unknown_thing\""),
        "{err}"
    );
    // No generated key file when the key is configured.
    assert!(!bk.dir.path().join("secret.key").exists());
    // A missing config file and a bad value are clear errors.
    let o = cmd(&bk, &["--config", "/nonexistent.toml", "domain", "list"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
    let o = cmd(&bk, &["domain", "list"])
        .env("SIPSETTINGS_DIGEST__NONCE_LIFETIME_SECS", "soon")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid configuration"));
}
