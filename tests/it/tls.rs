//! HTTPS and client certificates with real handshakes: curl (the seed's command shape),
//! reqwest (rustls, ring), openssl for the PKCS#12 files, proxy header mode, revocation
//! across processes.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sipsettings::tls::Ca;

use crate::cli::serve;
use crate::harness::{
    ALICE_PW, Backing, Client, READ_ACTIONS, Resp, TestServer, backends, init_crypto, read,
};

/// The CA certificate (PEM) of a test server.
fn ca_pem(ts: &TestServer) -> String {
    ts.services.ca().unwrap().cert_pem.clone()
}

/// A reqwest client trusting only our CA, with an optional client identity (PEM).
fn tls_client(ca: &str, identity: Option<&str>) -> reqwest::Client {
    init_crypto();
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .pool_max_idle_per_host(0);
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// GET over TLS; `Err` when the handshake (or the connection) is refused.
async fn tls_get(
    ca: &str,
    identity: Option<&str>,
    base: &str,
    query: &str,
) -> Result<(Resp, reqwest::Version), String> {
    let r = tls_client(ca, identity)
        .get(format!("{base}/settings.phtml?{query}"))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let v = r.version();
    Ok((read(r).await, v))
}

/// The seed's command: `curl -k -E file.crt https://127.0.0.1:PORT/settings.phtml?action=…`.
/// Returns (exit ok, HTTP code, body).
/// Async: the in-process test server shares the test's runtime thread.
async fn curl(args: &[&str], url: &str) -> (bool, String, String) {
    let o = tokio::process::Command::new("curl")
        .args(["-s", "-S", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (o.status.success(), code.to_owned(), body.to_owned())
}

fn write(dir: &std::path::Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.display().to_string()
}

/// alice's bundle fetched with digest over plain HTTP.
async fn alice_crt(ts: &TestServer) -> String {
    let r = ts.alice().get("action=get_crt").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

#[tokio::test]
async fn get_crt_then_curl_and_reqwest_with_the_certificate() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let ca = ca_pem(&ts);
        let r = ts.alice().get("action=get_crt").await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.content_type(), "application/x-pem-file");
        assert_eq!(
            r.headers.get("content-disposition").unwrap(),
            "attachment; filename=alice@example.com.crt"
        );
        // Certificate, then private key, then the CA certificate.
        let cert_at = r.text.find("BEGIN CERTIFICATE").unwrap();
        let key_at = r.text.find("BEGIN PRIVATE KEY").unwrap();
        let ca_at = r.text.rfind("BEGIN CERTIFICATE").unwrap();
        assert!(cert_at < key_at && key_at < ca_at, "{}", r.text);
        assert!(r.text.ends_with(&ca), "bundle must end with the CA");
        // Served again (same certificate), also under the legacy name.
        let again = ts.alice().get("action=crt").await;
        assert_eq!(again.text, r.text);
        // The key is sealed at rest.
        let rows = ts
            .services
            .list_client_certs(Some("alice@example.com"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);

        let dir = tempfile::tempdir().unwrap();
        let crt = write(dir.path(), "alice@example.com.crt", r.text.as_bytes());
        let url = format!("{}/settings.phtml?action=get_identity", ts.tls_base);
        let (ok, code, body) = curl(&["-k", "-E", &crt], &url).await;
        assert!(ok, "curl failed: {body}");
        assert_eq!(code, "200", "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["sip_address"], "alice@example.com");
        // HTTP/1.1 explicitly, and verification against our CA instead of -k.
        let ca_file = write(dir.path(), "ca.crt", ca.as_bytes());
        let (ok, code, _) = curl(&["--http1.1", "--cacert", &ca_file, "-E", &crt], &url).await;
        assert!(ok && code == "200");

        // reqwest (rustls): ALPN picks HTTP/2.
        let (resp, version) = tls_get(&ca, Some(&r.text), &ts.tls_base, "action=get_identity")
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text);
        assert_eq!(resp.json()["sip_address"], "alice@example.com");
        assert_eq!(version, reqwest::Version::HTTP_2);
        // account= must be the certificate's account.
        let (own, _) = tls_get(
            &ca,
            Some(&r.text),
            &ts.tls_base,
            "action=get_identity&account=alice@example.com",
        )
        .await
        .unwrap();
        assert_eq!(own.status, 200);
        let (other, _) = tls_get(
            &ca,
            Some(&r.text),
            &ts.tls_base,
            "action=get_identity&account=bob@example.com",
        )
        .await
        .unwrap();
        assert_eq!(other.status, 403, "{}", other.text);
        assert_eq!(other.success(), Some(false));

        // Without a certificate the TLS listener falls back to digest.
        let (nocert, _) = tls_get(
            &ca,
            None,
            &ts.tls_base,
            "action=get_identity&realm=example.com",
        )
        .await
        .unwrap();
        assert_eq!(nocert.status, 401);
        assert!(nocert.headers.get("www-authenticate").is_some());
        let mut digest = Client::new(&ts.tls_base, "alice", ALICE_PW, "example.com");
        digest.http = tls_client(&ca, None);
        let d = digest.get("action=get_identity").await;
        assert_eq!(d.status, 200, "{}", d.text);
        // TLS 1.2 is accepted as well; TLS 1.1 is not.
        let (ok, code, _) = curl(&["-k", "-E", &crt, "--tls-max", "1.2"], &url).await;
        assert!(ok && code == "200");
        let (ok, _, _) = curl(&["-k", "-E", &crt, "--tls-max", "1.1", "--tlsv1.1"], &url).await;
        assert!(!ok, "TLS 1.1 must be refused");
        ts.stop().await;
    }
}

#[tokio::test]
async fn get_p12_password_and_openssl_curl_accept_it() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let alice = ts.alice();
        for q in [
            "action=get_p12",
            "action=get_p12&password=wrong",
            "action=p12&password=",
        ] {
            let r = alice.get(q).await;
            assert_eq!(r.status, 200, "{q}");
            assert_eq!(r.success(), Some(false));
            assert_eq!(
                r.message(),
                "Error: the password parameter must be your SIP password"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        for (q, name) in [
            (format!("action=get_p12&password={ALICE_PW}"), "legacy.p12"),
            (
                format!("action=get_p12&password={ALICE_PW}&p12=modern"),
                "modern.p12",
            ),
        ] {
            let r = alice
                .send("GET", &alice.target(&q), crate::harness::Body::None)
                .await;
            assert_eq!(r.status, 200);
            assert_eq!(r.content_type(), "application/x-pkcs12");
            assert_eq!(
                r.headers.get("content-disposition").unwrap(),
                "attachment; filename=alice@example.com.p12"
            );
            // The digest client reads text; fetch the bytes with the certificate.
            let crt = alice_crt(&ts).await;
            let ca = ca_pem(&ts);
            let raw = tls_client(&ca, Some(&crt))
                .get(format!("{}/settings.phtml?{q}", ts.tls_base))
                .send()
                .await
                .unwrap();
            assert_eq!(raw.status(), 200);
            let p12 = raw.bytes().await.unwrap();
            let path = write(dir.path(), name, &p12);
            let o = Command::new("openssl")
                .args(["pkcs12", "-info", "-nokeys", "-in", &path])
                .arg("-passin")
                .arg(format!("pass:{ALICE_PW}"))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "openssl {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(out.contains("alice@example.com"), "{out}");
            let wrong = Command::new("openssl")
                .args([
                    "pkcs12",
                    "-info",
                    "-nokeys",
                    "-in",
                    &path,
                    "-passin",
                    "pass:nope",
                ])
                .output()
                .unwrap();
            assert!(!wrong.status.success());
            let cert_arg = format!("{path}:{ALICE_PW}");
            let (ok, code, body) = curl(
                &["-k", "--cert-type", "P12", "--cert", &cert_arg],
                &format!("{}/settings.phtml?action=get_identity", ts.tls_base),
            )
            .await;
            assert!(ok && code == "200", "curl P12 {name}: {code} {body}");
        }
        ts.stop().await;
    }
}

#[tokio::test]
async fn refused_certificates() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let ca = ca_pem(&ts);
        let s = &ts.services;
        let alice = s.find_account("alice@example.com").await.unwrap();
        let now = sipsettings::util::now();
        let bundle = |c: &sipsettings::tls::IssuedCert| format!("{}{}", c.cert_pem, c.key_pem);

        // Expired: refused at the handshake.
        let expired = s
            .issue_client_cert_between(&alice, now - 10 * 86_400, now - 86_400)
            .await
            .unwrap();
        let r = tls_get(
            &ca,
            Some(&bundle(&expired)),
            &ts.tls_base,
            "action=get_identity",
        )
        .await;
        assert!(r.is_err() || r.as_ref().unwrap().0.status == 401, "{r:?}");

        // Foreign CA: refused at the handshake.
        let other_dir = tempfile::tempdir().unwrap();
        let other_ca = Ca::load_or_create(&sipsettings::Config {
            data_dir: other_dir.path().to_path_buf(),
            ..sipsettings::Config::default()
        })
        .unwrap();
        let foreign = sipsettings::tls::issue::issue_client(
            &other_ca,
            "alice@example.com",
            now - 60,
            now + 86_400,
        )
        .unwrap();
        let r = tls_get(
            &ca,
            Some(&bundle(&foreign)),
            &ts.tls_base,
            "action=get_identity",
        )
        .await;
        assert!(r.is_err(), "foreign CA accepted: {r:?}");

        // Our CA but unknown to the store (e.g. issued by another deployment sharing the CA
        // files, or the row deleted): 401.
        let ca_obj = s.ca().unwrap();
        let unknown = sipsettings::tls::issue::issue_client(
            &ca_obj,
            "alice@example.com",
            now - 60,
            now + 86_400,
        )
        .unwrap();
        let (r, _) = tls_get(
            &ca,
            Some(&bundle(&unknown)),
            &ts.tls_base,
            "action=get_identity",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.success(), Some(false));

        // Revoked: the TLS layer still has the old CRL (30 s refresh), the store says no: 401.
        let good = s.issue_client_cert(&alice, 30).await.unwrap();
        let (r, _) = tls_get(
            &ca,
            Some(&bundle(&good)),
            &ts.tls_base,
            "action=get_identity",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            s.revoke_client_certs(&good.serial).await.unwrap(),
            vec![good.serial.clone()]
        );
        let (r, _) = tls_get(
            &ca,
            Some(&bundle(&good)),
            &ts.tls_base,
            "action=get_identity",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 401, "{}", r.text);
        // Revoking again is a clear error.
        assert!(s.revoke_client_certs(&good.serial).await.is_err());

        // bob's certificate acting on alice: 403.
        let bob = s.find_account("bob@example.com").await.unwrap();
        let bobc = s.issue_client_cert(&bob, 30).await.unwrap();
        let (r, _) = tls_get(
            &ca,
            Some(&bundle(&bobc)),
            &ts.tls_base,
            "action=get_identity&account=alice@example.com",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 403);

        // Blocked account: 403.
        s.set_blocked(&bob, true).await.unwrap();
        let (r, _) = tls_get(
            &ca,
            Some(&bundle(&bobc)),
            &ts.tls_base,
            "action=get_identity",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(r.success(), Some(false));
        ts.stop().await;
    }
}

#[tokio::test]
async fn crl_refresh_refuses_revoked_certificate_at_the_handshake() {
    for b in backends() {
        let ts = TestServer::start_with(b, |c| c.tls.crl_refresh_secs = 1).await;
        ts.fixture().await;
        let ca = ca_pem(&ts);
        let crt = alice_crt(&ts).await;
        let (r, _) = tls_get(&ca, Some(&crt), &ts.tls_base, "action=get_identity")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        ts.services
            .revoke_client_certs("alice@example.com")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let r = tls_get(&ca, Some(&crt), &ts.tls_base, "action=get_identity").await;
        assert!(
            r.is_err(),
            "revoked certificate passed the handshake: {r:?}"
        );
        // A new certificate is issued on the next get_crt.
        let fresh = alice_crt(&ts).await;
        assert_ne!(fresh, crt);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (r, _) = tls_get(&ca, Some(&fresh), &ts.tls_base, "action=get_identity")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        ts.stop().await;
    }
}

/// Every action answers the same under certificate authentication as under digest.
#[tokio::test]
async fn every_action_works_with_a_certificate() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let ca = ca_pem(&ts);
        let crt = alice_crt(&ts).await;
        let http = tls_client(&ca, Some(&crt));
        let get = |q: String| {
            let http = http.clone();
            let url = format!("{}/settings.phtml?{q}", ts.tls_base);
            async move { read(http.get(url).send().await.unwrap()).await }
        };
        let digest = ts.alice();
        for a in READ_ACTIONS {
            let c = get(format!("action={a}")).await;
            let d = digest.get(&format!("action={a}")).await;
            assert_eq!(c.status, 200, "{a}: {}", c.text);
            let (mut cv, mut dv) = (c.json(), d.json());
            for v in [&mut cv, &mut dv] {
                if let Value::Array(devs) = v {
                    for d in devs {
                        if let Some(o) = d.as_object_mut() {
                            o.remove("expires");
                        }
                    }
                }
            }
            assert_eq!(cv, dv, "{a}");
        }
        for (q, msg) in [
            (
                "action=add_alias&username=alice.tls",
                "Added alias alice.tls",
            ),
            (
                "action=delete_alias&username=alice.tls",
                "Deleted alias alice.tls",
            ),
            (
                "action=set_dnd_on&duration=30",
                "Do not disturb has been enabled for 30 minutes",
            ),
            ("action=set_dnd_off", "Do not disturb has been disabled"),
            (
                "action=set_privacy_on",
                "Caller-ID is now hidden for outgoing calls",
            ),
            (
                "action=set_privacy_off",
                "Caller-ID is now visible for outgoing calls",
            ),
        ] {
            let r = get(q.to_owned()).await;
            assert_eq!(r.success(), Some(true), "{q}: {}", r.text);
            assert_eq!(r.message(), msg, "{q}");
        }
        let r = get("action=set_call_forwarding&FUNC=bob".into()).await;
        assert_eq!(r.success(), Some(true), "{}", r.text);
        let r = get(r#"action=set_reject_rules&rules=["sip:spam@example.com"]"#.into()).await;
        assert_eq!(r.success(), Some(true), "{}", r.text);
        let rules =
            r#"{"persistent":{"31":{"start":"09:00","stop":"17:00","groups":["everybody"]}}}"#;
        let r = read(
            http.post(format!(
                "{}/settings.phtml?action=set_accept_rules",
                ts.tls_base
            ))
            .form(&[("rules", rules)])
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(r.success(), Some(true), "{}", r.text);
        let r = get("action=get_balance_history&csv=1".into()).await;
        assert!(r.text.starts_with("Id,Account,Date"));
        let r = get("action=get_crt".into()).await;
        assert_eq!(r.text, crt);
        let r = get(format!("action=get_p12&password={ALICE_PW}")).await;
        assert_eq!(r.content_type(), "application/x-pkcs12");
        let r = get("action=nope".into()).await;
        assert_eq!(r.message(), "Error: invalid action");
        ts.stop().await;
    }
}

fn escaped(pem: &str) -> String {
    percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn proxy_header_from_trusted_and_untrusted_peers() {
    for b in backends() {
        let ts = TestServer::start_with(b, |c| {
            c.client_cert.header = "X-SSL-Client-Cert".into();
            c.trusted_proxies = vec![sipsettings::config::Cidr::parse("127.0.0.0/8").unwrap()];
        })
        .await;
        ts.fixture().await;
        let s = &ts.services;
        let alice = s.find_account("alice@example.com").await.unwrap();
        let c = s.issue_client_cert(&alice, 30).await.unwrap();
        let http = reqwest::Client::new();
        let url = format!("{}/settings.phtml?action=get_identity", ts.base);
        let send = |value: String| {
            let http = http.clone();
            let url = url.clone();
            async move {
                read(
                    http.get(url)
                        .header("X-SSL-Client-Cert", value)
                        .send()
                        .await
                        .unwrap(),
                )
                .await
            }
        };
        // nginx $ssl_client_escaped_cert: URL-encoded PEM.
        let r = send(escaped(&c.cert_pem)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["sip_address"], "alice@example.com");
        // RFC 9440 byte sequence.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&c.cert_der);
        let r = send(format!(":{b64}:")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        // Forged by hand (not signed by our CA): 401 even with a known serial.
        let other_dir = tempfile::tempdir().unwrap();
        let other_ca = Ca::load_or_create(&sipsettings::Config {
            data_dir: other_dir.path().to_path_buf(),
            ..sipsettings::Config::default()
        })
        .unwrap();
        let now = sipsettings::util::now();
        let forged = sipsettings::tls::issue::issue_client(
            &other_ca,
            "alice@example.com",
            now - 60,
            now + 86_400,
        )
        .unwrap();
        let r = send(escaped(&forged.cert_pem)).await;
        assert_eq!(r.status, 401, "{}", r.text);
        // Garbage: 401, not a 500.
        let r = send("not a certificate".into()).await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.success(), Some(false));
        // Expired (known serial, signed by our CA): 401.
        let expired = s
            .issue_client_cert_between(&alice, now - 10 * 86_400, now - 86_400)
            .await
            .unwrap();
        let r = send(escaped(&expired.cert_pem)).await;
        assert_eq!(r.status, 401, "{}", r.text);
        // Revoked: 401.
        s.revoke_client_certs(&c.serial).await.unwrap();
        let r = send(escaped(&c.cert_pem)).await;
        assert_eq!(r.status, 401, "{}", r.text);
        ts.stop().await;

        // Untrusted peer: the header is ignored (digest challenge) and logged.
        let bk = Backing::new(b).await;
        let srv = serve(
            &bk,
            &["--demo"],
            &[
                ("SIPSETTINGS_CLIENT_CERT__HEADER", "X-SSL-Client-Cert"),
                ("SIPSETTINGS_TRUSTED_PROXIES", "10.0.0.0/8"),
            ],
        );
        let r = read(
            http.get(format!(
                "http://127.0.0.1:{}/settings.phtml?action=get_identity&realm=example.com",
                srv.port
            ))
            .header("X-SSL-Client-Cert", escaped(&c.cert_pem))
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401);
        assert!(r.headers.get("www-authenticate").is_some());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let logs = srv.stderr.lock().unwrap().clone();
        assert!(
            logs.contains("client certificate header X-SSL-Client-Cert from untrusted peer ip=127.0.0.1 ignored"),
            "{logs}"
        );
    }
}

fn bin(bk: &Backing, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_sipsettings"));
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("SIPSETTINGS_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in bk.env() {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The operator workflow through the CLI, and revocation seen at once by a second server
/// process sharing the store (PostgreSQL, and the SQLite file too).
#[tokio::test]
async fn cli_issue_list_revoke_crl_across_two_processes() {
    for b in backends() {
        let bk = Backing::new(b).await;
        assert!(bin(&bk, &["domain", "add", "example.com"], None).0);
        let (ok, _, err) = bin(
            &bk,
            &["account", "add", "alice@example.com", "--password", "pw1"],
            None,
        );
        assert!(ok, "{err}");
        let out = tempfile::tempdir().unwrap();
        let outs = out.path().display().to_string();
        // p12 password from stdin; modern variant too.
        let (ok, stdout, err) = bin(
            &bk,
            &[
                "cert",
                "issue",
                "alice@example.com",
                "--out",
                &outs,
                "--days",
                "10",
            ],
            Some("p12-secret\n"),
        );
        assert!(ok, "{err}");
        assert!(stdout.starts_with("issued certificate "), "{stdout}");
        assert!(!stdout.contains("p12-secret") && !err.contains("p12-secret"));
        let serial = stdout.split_whitespace().nth(2).unwrap().to_owned();
        let crt = out.path().join("alice@example.com.crt");
        let p12 = out.path().join("alice@example.com.p12");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&crt).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the .crt holds a private key");
            let mode = std::fs::metadata(bk.dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let o = Command::new("openssl")
            .args([
                "pkcs12",
                "-info",
                "-nokeys",
                "-passin",
                "pass:p12-secret",
                "-in",
            ])
            .arg(&p12)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out2 = tempfile::tempdir().unwrap();
        let (ok, _, err) = bin(
            &bk,
            &[
                "cert",
                "issue",
                "alice@example.com",
                "--out",
                &out2.path().display().to_string(),
                "--p12-password",
                "x",
                "--p12-modern",
            ],
            None,
        );
        assert!(ok, "{err}");
        let o = Command::new("openssl")
            .args(["pkcs12", "-info", "-nokeys", "-passin", "pass:x", "-in"])
            .arg(out2.path().join("alice@example.com.p12"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (ok, _, err) = bin(
            &bk,
            &[
                "cert",
                "issue",
                "nobody@example.com",
                "--out",
                &outs,
                "--p12-password",
                "x",
            ],
            None,
        );
        assert!(!ok && err.contains("does not exist"), "{err}");

        let (ok, list, _) = bin(&bk, &["cert", "list", "alice@example.com"], None);
        assert!(ok);
        assert_eq!(list.lines().count(), 2, "{list}");
        assert!(list.contains(&serial) && list.contains("active"), "{list}");

        // Two server processes on the same store and data dir (shared CA and secret).
        let a = serve(&bk, &[], &[]);
        let bsrv = serve(&bk, &[], &[]);
        let crt_s = crt.display().to_string();
        for port in [a.tls_port, bsrv.tls_port] {
            let (ok, code, body) = curl(
                &["-k", "-E", &crt_s],
                &format!("https://127.0.0.1:{port}/settings.phtml?action=get_identity"),
            )
            .await;
            assert!(ok && code == "200", "{code} {body}");
        }
        let (ok, stdout, err) = bin(&bk, &["cert", "revoke", &serial], None);
        assert!(ok, "{err}");
        assert_eq!(stdout.trim(), format!("revoked {serial}"));
        // The very next request on the other process is refused.
        let (_, code, body) = curl(
            &["-k", "-E", &crt_s],
            &format!(
                "https://127.0.0.1:{}/settings.phtml?action=get_identity",
                bsrv.tls_port
            ),
        )
        .await;
        assert_eq!(code, "401", "{body}");
        let (ok, _, err) = bin(&bk, &["cert", "revoke", &serial], None);
        assert!(!ok && err.contains("already revoked"), "{err}");
        let (ok, _, err) = bin(&bk, &["cert", "revoke", "zz-not-hex"], None);
        assert!(!ok, "{err}");

        // The CRL lists the serial; stdout and --out.
        let (ok, crl, err) = bin(&bk, &["cert", "crl"], None);
        assert!(ok, "{err}");
        assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");
        let crl_file = out.path().join("crl.pem");
        assert!(
            bin(
                &bk,
                &["cert", "crl", "--out", &crl_file.display().to_string()],
                None
            )
            .0
        );
        let o = Command::new("openssl")
            .args(["crl", "-noout", "-text", "-in"])
            .arg(&crl_file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_ascii_lowercase();
        assert!(text.contains(&serial), "{text}");
        let (_, list, _) = bin(&bk, &["cert", "list"], None);
        assert!(list.contains("revoked"), "{list}");
        let (ok, stdout, _) = bin(&bk, &["cert", "revoke", "alice@example.com"], None);
        assert!(ok && stdout.lines().count() == 1, "{stdout}");
    }
}

/// A non-loopback address of this host, if it has one (`hostname -I`).
fn non_loopback_ip() -> Option<String> {
    let o = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_owned)
}

/// The private key never travels in clear over a network: plain HTTP from another host gets
/// 403; the same request over HTTPS works.
#[tokio::test]
async fn certificates_are_not_served_over_plain_http_to_other_hosts() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this host has no non-loopback IPv4 address");
        return;
    };
    let ts = TestServer::start_with("sqlite", |cfg| {
        cfg.listen = "0.0.0.0:0".into();
        cfg.tls_listen = "0.0.0.0:0".into();
    })
    .await;
    ts.fixture().await;
    let port = ts.base.rsplit(':').next().unwrap();
    let remote = Client::new(
        &format!("http://{ip}:{port}"),
        "alice",
        ALICE_PW,
        "example.com",
    );
    for action in ["action=get_crt", "action=crt", "action=get_p12&password=x"] {
        let r = remote.get(action).await;
        assert_eq!(r.status, 403, "{action}: {}", r.text);
        assert!(r.text.contains("only served over HTTPS"), "{}", r.text);
    }
    // Other actions still work over plain HTTP.
    assert_eq!(remote.get("action=get_identity").await.status, 200);
    let tls_port = ts.tls_base.rsplit(':').next().unwrap();
    let mut secure = Client::new(
        &format!("https://{ip}:{tls_port}"),
        "alice",
        ALICE_PW,
        "example.com",
    );
    secure.http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = secure.get("action=get_crt").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("PRIVATE KEY"));
    ts.stop().await;
}
