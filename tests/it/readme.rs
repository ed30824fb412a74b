//! The README's curl examples really work against `serve --demo`.

use std::process::Command;

use crate::cli::serve;
use crate::harness::{Backing, backends};

#[tokio::test]
async fn readme_curl_examples_work() {
    let lines = readme_block("<!-- curl-examples", "<!-- end curl-examples -->");
    assert!(lines.len() >= 20, "{lines:?}");
    for b in backends() {
        let bk = Backing::new(b).await;
        let srv = serve(&bk, &["--demo"], &[]);
        let pw = srv.demo_password();
        let s = format!("http://127.0.0.1:{}/settings.phtml", srv.port);
        for line in &lines {
            let o = Command::new("sh")
                .arg("-c")
                .arg(format!("{line} -s -S -w '\\n%{{http_code}}'"))
                .env("PW", &pw)
                .env("S", &s)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n').unwrap();
            assert_eq!(code, "200", "{line}: {text}");
            if line.contains("csv=1") {
                assert!(body.starts_with("Id,Account,Date"), "{line}: {body}");
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(body).unwrap_or_else(|_| panic!("{line}: not JSON: {body}"));
            assert_ne!(
                v.get("success"),
                Some(&serde_json::Value::Bool(false)),
                "{line}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn readme_operator_quick_start_works() {
    let script =
        readme_script("<!-- operator-examples", "<!-- end operator-examples -->").join("\n");
    assert!(script.contains("curl"), "{script}");
    for b in backends() {
        let (out, _) = run_against_demo(&script, b).await;
        assert!(out.contains("\"username\":\"bob\""), "{out}");
        assert!(out.contains("\"FNOA\":\"<voice-mailbox>\""), "{out}");
        assert!(
            out.contains("\"allowed_ips\":\"192.0.2.10/32,198.51.100.0/24\""),
            "{out}"
        );
        assert!(out.contains("{\"password\":\"bob-secret\"}"), "{out}");
    }
}

fn readme_block(start_marker: &str, end_marker: &str) -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = text.find(start_marker).expect("start marker");
    let end = start + text[start..].find(end_marker).expect("end marker");
    text[start..end]
        .lines()
        .filter(|l| l.starts_with("curl ") || l.starts_with("openssl "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn readme_certificate_examples_work() {
    let lines = readme_block("<!-- cert-examples", "<!-- end cert-examples -->");
    assert!(lines.len() >= 5, "{lines:?}");
    for b in backends() {
        let bk = Backing::new(b).await;
        let srv = serve(&bk, &["--demo"], &[]);
        let pw = srv.demo_password();
        let s = format!("https://127.0.0.1:{}/settings.phtml", srv.tls_port);
        let cwd = tempfile::tempdir().unwrap();
        for line in &lines {
            let cmd = if line.starts_with("curl ") {
                format!("{line} -s -S --fail")
            } else {
                line.clone()
            };
            let o = Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .current_dir(cwd.path())
                .env("PW", &pw)
                .env("S", &s)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
            assert!(
                o.status.success(),
                "{line}: {stdout} {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(!stdout.contains("\"success\":false"), "{line}: {stdout}");
        }
        let crt = std::fs::read_to_string(cwd.path().join("alice@example.com.crt")).unwrap();
        assert!(crt.contains("BEGIN PRIVATE KEY"));
    }
}

/// Runs a README shell block as written against a fresh `serve --demo` (its port and the
/// built binary substituted); returns its standard output and the demo account's password.
pub async fn run_against_demo(script: &str, b: &'static str) -> (String, String) {
    let bk = Backing::new(b).await;
    let srv = serve(&bk, &["--demo"], &[]);
    let script = script
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", srv.port))
        .replace(
            "sipsettings ",
            &format!("{} ", env!("CARGO_BIN_EXE_sipsettings")),
        );
    let mut cmd = Command::new("bash");
    cmd.arg("-ec").arg(&script);
    for (k, v) in bk.env() {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{b}: {}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    (out.into_owned(), srv.demo_password())
}

/// The lines of the ```sh block between `start_marker` and `end_marker`.
pub fn readme_script(start_marker: &str, end_marker: &str) -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = text.find(start_marker).expect("start marker");
    let end = start + text[start..].find(end_marker).expect("end marker");
    text[start..end]
        .lines()
        .skip_while(|l| !l.starts_with("```sh"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn readme_jsonapi_examples_work() {
    let script = readme_script("<!-- jsonapi-examples", "<!-- end jsonapi-examples -->").join("\n");
    assert!(script.contains("curl"), "{script}");
    for b in backends() {
        let (out, _) = run_against_demo(&script, b).await;
        // The list, the filtered page with its customer, the PATCH, the GET, the 400.
        assert!(out.contains("\"record_count\":1"), "{out}");
        assert!(out.contains("\"type\":\"customers\""), "{out}");
        assert!(
            out.contains("\"allowed_ips\":\"127.0.0.1/32,2001:db8::/32\""),
            "{out}"
        );
        assert!(out.contains("\"use_allowed_ips\":true"), "{out}");
        assert!(
            out.contains("\"status\":\"400\",\"title\":\"Filter not allowed\""),
            "{out}"
        );
    }
}
