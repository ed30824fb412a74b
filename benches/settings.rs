//! End-to-end load benchmark for the `sipsettings` server.
//!
//! For each backend (SQLite, and PostgreSQL when `SIPSETTINGS_TEST_POSTGRES_URL`
//! is set) this prepares a fresh data set with the CLI, starts `sipsettings
//! serve` and drives it with many keep-alive HTTP/1.1 connections, comparing
//! an unauthenticated `GET /health` with a Digest-authenticated
//! `settings.phtml` request.
//!
//! Run with `cargo bench --bench settings -- [--seconds N] [--connections N]
//! [--backend sqlite|postgres|all]`.

mod common;

use std::process::ExitCode;

use hyper::Method;
use tokio::runtime::Runtime;

use common::{Args, Backend, Fixture, Measured, PASSWORD, Result, Workload, fmt_ms};

const USERNAME: &str = "alice";
const SETTINGS_URI: &str = "/settings.phtml?action=get_identity&realm=example.com";

fn main() -> ExitCode {
    let server_env = [("SIPSETTINGS_TLS_LISTEN", "")];
    common::load_bench_main("settings", 64, &server_env, bench_backend, print_table)
}

fn bench_backend(
    runtime: &Runtime,
    args: &Args,
    fixture: Fixture,
) -> Result<Vec<Measured<Scenario>>> {
    fixture.add_accounts(&[USERNAME])?;
    // A local, so it is stopped before `fixture` (a parameter) removes the data.
    let mut server = fixture.start_server(runtime)?;

    let mut results = Vec::new();
    for scenario in [Scenario::Bare, Scenario::Digest] {
        let label = scenario.name();
        let load = fixture.measure(runtime, &mut server, args, label, scenario)?;
        results.push(Measured {
            label,
            scenario,
            load,
        });
    }
    Ok(results)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Unauthenticated `GET /health`.
    Bare,
    /// Digest-authenticated `get_identity`.
    Digest,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Digest => "digest",
        }
    }
}

impl Workload for Scenario {
    fn method(&self) -> Method {
        Method::GET
    }

    fn uri(&self) -> &str {
        match self {
            Self::Bare => "/health",
            Self::Digest => SETTINGS_URI,
        }
    }

    fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            Self::Bare => None,
            Self::Digest => Some((USERNAME, PASSWORD)),
        }
    }
}

fn print_table(backend: Backend, args: &Args, results: &[Measured<Scenario>]) {
    println!(
        "{:<10}{:<10}{:<7}{:<10}{:<8}{:<8}errors",
        "backend", "scenario", "conns", "req/s", "p50_ms", "p99_ms"
    );
    for r in results {
        println!(
            "{:<10}{:<10}{:<7}{:<10}{:<8}{:<8}{}",
            backend.name(),
            r.label,
            args.connections,
            format!("{:.0}", r.load.calls_per_sec),
            fmt_ms(r.load.p50_ms),
            fmt_ms(r.load.p99_ms),
            r.load.errors
        );
    }
    let rps = |scenario| {
        results
            .iter()
            .find(|r| r.scenario == scenario)
            .map(|r| r.load.calls_per_sec)
    };
    match (rps(Scenario::Digest), rps(Scenario::Bare)) {
        (Some(digest), Some(bare)) if bare > 0.0 => {
            println!(
                "{:<10}ratio digest/bare = {:.2}",
                backend.name(),
                digest / bare
            );
        }
        _ => println!("{:<10}ratio digest/bare = n/a", backend.name()),
    }
}
