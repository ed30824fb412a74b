//! HTTP Digest as spec §2a: challenges, algorithms, stale nonces, replay, throttling, blocking.

use serde_json::json;

use crate::harness::{ALICE_PW, Client, TestServer, backends, read};

fn challenges(r: &crate::harness::Resp) -> Vec<String> {
    r.headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn challenge_shape() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let r = read(
            reqwest::get(format!(
                "{}/settings.phtml?action=get_identity&realm=example.com",
                ts.base
            ))
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.json(),
            json!({"success": false, "error_message": "Authentication required"})
        );
        let ch = challenges(&r);
        assert_eq!(ch.len(), 2);
        assert!(ch[0].starts_with("Digest realm=\"example.com\", qop=\"auth\", nonce=\""));
        assert!(ch[0].ends_with("algorithm=MD5"), "{}", ch[0]);
        assert!(ch[1].ends_with("algorithm=SHA-256"), "{}", ch[1]);
        assert!(ch[0].contains("opaque=\""));
        // Unknown realm and missing realm: 401, never a served account.
        for q in [
            "action=get_identity&realm=nowhere.test",
            "action=get_identity",
        ] {
            let r = read(
                reqwest::get(format!("{}/settings.phtml?{q}", ts.base))
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, 401, "{q}");
            assert_eq!(r.success(), Some(false));
        }
        let c = Client::new(&ts.base, "alice", ALICE_PW, "nowhere.test");
        assert_eq!(c.get("action=get_identity").await.status, 401);
        ts.stop().await;
    }
}

#[tokio::test]
async fn md5_sha256_and_user_at_domain() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        assert_eq!(c.get("action=get_identity").await.status, 200);
        let mut sha = ts.alice();
        sha.sha256 = true;
        let r = sha.get("action=get_identity").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let full = ts.client("alice@example.com", ALICE_PW, "example.com");
        assert_eq!(
            full.get("action=get_identity").await.json()["sip_address"],
            "alice@example.com"
        );
        // user@otherdomain with realm example.com is refused.
        let wrong = ts.client("alice@other.org", ALICE_PW, "example.com");
        assert_eq!(wrong.get("action=get_identity").await.status, 401);
        // POST is signed with its own method.
        let r = c.post("action=get_identity", &[]).await;
        assert_eq!(r.status, 200);
        ts.stop().await;
    }
}

#[tokio::test]
async fn wrong_credentials() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        for (u, p) in [
            ("alice", "wrong"),
            ("nobody", "x"),
            ("bob", ALICE_PW),
            ("", ""),
        ] {
            let c = ts.client(u, p, "example.com");
            let r = c.get("action=get_identity").await;
            assert_eq!(r.status, 401, "{u}");
            assert_eq!(r.success(), Some(false));
            assert_eq!(challenges(&r).len(), 2);
        }
        ts.stop().await;
    }
}

/// Builds an Authorization header by hand (for replay, uri and malformed cases).
fn header(nonce: &str, nc: &str, uri: &str, pw: &str) -> String {
    let ha1 = format!(
        "{:x}",
        md5_digest(format!("alice:example.com:{pw}").as_bytes())
    );
    let ha2 = format!("{:x}", md5_digest(format!("GET:{uri}").as_bytes()));
    let resp = format!(
        "{:x}",
        md5_digest(format!("{ha1}:{nonce}:{nc}:abc:auth:{ha2}").as_bytes())
    );
    format!(
        "Digest username=\"alice\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"{uri}\", \
         qop=auth, nc={nc}, cnonce=\"abc\", response=\"{resp}\", algorithm=MD5"
    )
}

fn md5_digest(data: &[u8]) -> HexOut {
    use md5::Digest;
    HexOut(md5::Md5::digest(data).to_vec())
}

struct HexOut(Vec<u8>);
impl std::fmt::LowerHex for HexOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

async fn nonce_of(base: &str) -> String {
    let r = reqwest::get(format!(
        "{base}/settings.phtml?action=get_identity&realm=example.com"
    ))
    .await
    .unwrap();
    let h = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let start = h.find("nonce=\"").unwrap() + 7;
    h[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn replay_uri_and_malformed() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let http = reqwest::Client::new();
        let uri = "/settings.phtml?action=get_identity&realm=example.com";
        let url = format!("{}{uri}", ts.base);
        let nonce = nonce_of(&ts.base).await;
        let send = |h: String| {
            let http = http.clone();
            let url = url.clone();
            async move {
                read(
                    http.get(url)
                        .header("authorization", h)
                        .send()
                        .await
                        .unwrap(),
                )
                .await
            }
        };
        assert_eq!(
            send(header(&nonce, "00000001", uri, ALICE_PW)).await.status,
            200
        );
        assert_eq!(
            send(header(&nonce, "00000002", uri, ALICE_PW)).await.status,
            200
        );
        // Same nc again, and a lower one: replay.
        assert_eq!(
            send(header(&nonce, "00000002", uri, ALICE_PW)).await.status,
            401
        );
        assert_eq!(
            send(header(&nonce, "00000001", uri, ALICE_PW)).await.status,
            401
        );
        assert_eq!(
            send(header(&nonce, "00000003", uri, ALICE_PW)).await.status,
            200
        );
        // A response computed for another URI.
        let other = "/settings.phtml?action=get_aliases&realm=example.com";
        assert_eq!(
            send(header(&nonce, "00000004", other, ALICE_PW))
                .await
                .status,
            401
        );
        // A forged nonce.
        assert_eq!(
            send(header(
                "AAAAAGsG3QP_hY73-g_WbBck-NszGJDkKpD1iw9tOks",
                "00000001",
                uri,
                ALICE_PW
            ))
            .await
            .status,
            401
        );
        // Malformed headers of many kinds: 401 JSON, never a crash.
        for h in [
            "Digest",
            "Digest username=",
            "Digest username=\"alice\"",
            "Basic YWxpY2U6c2VjcmV0",
            "Digest username=\"alice\", realm=\"example.com\", nonce=\"x\", uri=\"/\", response=\"y\"",
            "Digest username=\"alice\", realm=\"example.com\", nonce=\"x\", uri=\"/\", response=\"y\", qop=auth-int, nc=00000001, cnonce=\"c\"",
            "Digest username=\"alice\", realm=\"example.com\", nonce=\"x\", uri=\"/\", response=\"y\", qop=auth, nc=zz, cnonce=\"c\"",
            "Digest username=\"alice\", realm=\"example.com\", nonce=\"x\", uri=\"/\", response=\"y\", qop=auth, nc=00000001, cnonce=\"c\", algorithm=SHA-512",
            "Digest username=\"alice\", realm=\"example.com\", nonce=\"x\", uri=\"/\", response=\"y\", qop=auth, nc=00000001, cnonce=\"c\", userhash=true",
        ] {
            let r = send(h.to_owned()).await;
            assert_eq!(r.status, 401, "{h}");
            assert_eq!(r.success(), Some(false), "{h}");
        }
        // Non-ASCII bytes in the header.
        let r = read(
            http.get(&url)
                .header(
                    "authorization",
                    reqwest::header::HeaderValue::from_bytes(
                        b"Digest username=\"\xc3\xa9\xc3\xa9\", realm=\"x\"",
                    )
                    .unwrap(),
                )
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401);
        ts.stop().await;
    }
}

#[tokio::test]
async fn stale_nonce() {
    for b in backends() {
        let ts = TestServer::start_with(b, |c| c.digest.nonce_lifetime_secs = 1).await;
        ts.fixture().await;
        let http = reqwest::Client::new();
        let uri = "/settings.phtml?action=get_identity&realm=example.com";
        let nonce = nonce_of(&ts.base).await;
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let r = read(
            http.get(format!("{}{uri}", ts.base))
                .header("authorization", header(&nonce, "00000001", uri, ALICE_PW))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401);
        let ch = challenges(&r);
        assert!(ch.iter().all(|c| c.contains("stale=true")), "{ch:?}");
        // A stale nonce with a wrong password is not told it is merely stale.
        let r = read(
            http.get(format!("{}{uri}", ts.base))
                .header("authorization", header(&nonce, "00000001", uri, "wrong"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(challenges(&r).iter().all(|c| !c.contains("stale=true")));
        // The client library retries on stale and succeeds.
        let c = ts.alice();
        assert_eq!(c.get("action=get_identity").await.status, 200);
        ts.stop().await;
    }
}

#[tokio::test]
async fn blocked_account_gets_403() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let alice = ts.services.find_account("alice@example.com").await.unwrap();
        ts.services.set_blocked(&alice, true).await.unwrap();
        let r = ts.alice().get("action=get_identity").await;
        assert_eq!(r.status, 403);
        assert_eq!(r.success(), Some(false));
        assert!(r.message().contains("blocked"));
        ts.services.set_blocked(&alice, false).await.unwrap();
        assert_eq!(ts.alice().get("action=get_identity").await.status, 200);
        ts.stop().await;
    }
}

#[tokio::test]
async fn failures_are_throttled_per_ip() {
    for b in backends() {
        let ts = TestServer::start_with(b, |c| {
            c.throttle.slow_after = 2;
            c.throttle.max_failures = 5;
            c.throttle.ban_secs = 60;
        })
        .await;
        ts.fixture().await;
        let bad = ts.client("alice", "wrong", "example.com");
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(bad.get("action=get_identity").await.status);
        }
        assert_eq!(statuses[..5], [401, 401, 401, 401, 401]);
        assert_eq!(statuses[5], 429);
        // Even the right password is refused while the IP is banned.
        let r = ts.alice().get("action=get_identity").await;
        assert_eq!(r.status, 429);
        assert!(r.headers.get("retry-after").is_some());
        assert_eq!(r.success(), Some(false));
        ts.stop().await;
    }
}

#[tokio::test]
async fn account_param_must_match() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        assert_eq!(
            c.get("action=get_identity&account=alice@example.com")
                .await
                .status,
            200
        );
        assert_eq!(
            c.get("action=get_identity&account=ALICE@example.com")
                .await
                .status,
            200
        );
        let r = c.get("action=get_identity&account=bob@example.com").await;
        assert_eq!(r.status, 403);
        assert_eq!(r.success(), Some(false));
        ts.stop().await;
    }
}

/// The authentication cache of one replica is invalidated by writes on another at once
/// (PostgreSQL NOTIFY), not after its TTL.
#[tokio::test]
async fn cache_invalidated_across_replicas() {
    use sipsettings::crypto::Keys;
    use sipsettings::http::{AppState, start};
    use sipsettings::service::Services;
    use sipsettings::store::Store;
    if !backends().contains(&"postgres") {
        return;
    }
    let bk = crate::harness::Backing::new("postgres").await;
    let mut cfg = bk.config();
    cfg.database.account_cache_ms = 600_000;
    let mut servers = Vec::new();
    for _ in 0..2 {
        let store = Store::open(&cfg).await.unwrap();
        let services = Services::new(store, Keys::load(&cfg).unwrap(), &cfg);
        let srv = start(AppState::new(cfg.clone(), services.clone()))
            .await
            .unwrap();
        servers.push((services, srv));
    }
    let a = &servers[0].0;
    a.add_domain("example.com").await.unwrap();
    let alice = a
        .add_account(
            sipsettings::domain::NewAccount {
                username: "alice".into(),
                domain: "example.com".into(),
                ..Default::default()
            },
            ALICE_PW,
        )
        .await
        .unwrap();
    let base_b = format!("http://{}", servers[1].1.addr);
    let on_b = |pw: &str| Client::new(&base_b, "alice", pw, "example.com");
    // Wait until B's listener is connected, then fill B's cache.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(on_b(ALICE_PW).get("action=get_identity").await.status, 200);
    a.set_blocked(&alice, true).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(on_b(ALICE_PW).get("action=get_identity").await.status, 403);
    a.set_blocked(&alice, false).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(on_b(ALICE_PW).get("action=get_identity").await.status, 200);
    a.set_password(&alice, "changed").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(on_b(ALICE_PW).get("action=get_identity").await.status, 401);
    assert_eq!(on_b("changed").get("action=get_identity").await.status, 200);
    // A settings change through replica A's HTTP API shows on B at once.
    let on_a = Client::new(
        &format!("http://{}", servers[0].1.addr),
        "alice",
        "changed",
        "example.com",
    );
    assert_eq!(on_a.get("action=set_dnd_on").await.success(), Some(true));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let rules = on_b("changed").get("action=get_accept_rules").await.json();
    assert_eq!(rules["temporary"]["groups"], json!(["nobody"]));
    for (s, srv) in servers {
        srv.stop().await;
        s.store.close().await;
    }
}
