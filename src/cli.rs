//! Command line: `serve`, `migrate`, `healthcheck`, `domain …`, `account …`.
//! Every command reads the same configuration as `serve`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, redact_url};
use crate::crypto::{Keys, random_password};
use crate::domain::NewAccount;
use crate::http::{AppState, start};
use crate::service::{FeedBatch, FeedKind, IngestError, MAX_BATCH, Services};
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "sipsettings",
    version,
    about = "SIP account settings server (sip2sip settings.phtml compatible)"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "SIPSETTINGS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (applies migrations first).
    Serve {
        /// On an empty store, create example.com / alice@example.com with sample data.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 when the configured server answers GET /health (or /ready with --ready).
    ///
    /// It reads the same configuration as `serve` (file, environment, `*_FILE`), so it
    /// follows a changed `listen` address.
    Healthcheck {
        /// Check GET /ready instead: the store answers and all migrations are applied.
        #[arg(long)]
        ready: bool,
    },
    /// Manage the SIP domains this server serves.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Manage SIP accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Maintain the replication journal.
    #[command(subcommand)]
    Journal(JournalCmd),
    /// Operator users of the operator APIs and their API tokens.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Customers (they own SIP accounts).
    #[command(subcommand)]
    Customer(CustomerCmd),
    /// Resellers (a tree; they own customers).
    #[command(subcommand)]
    Reseller(ResellerCmd),
    /// Client certificates issued by the built-in CA.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Import feed records from JSON Lines (one record per line; blank lines are skipped).
    ///
    /// Records are sent in batches of 10 000, each batch one transaction. On a bad line the
    /// command prints `error: line N: <reason>` and exits non-zero: the batch holding that
    /// line is not stored, but earlier complete batches stay committed. Re-importing the same
    /// call records is harmless (they are counted as duplicates).
    #[command(after_help = "Examples of lines:\n  \
        registrations: {\"account\":\"alice@example.com\",\"contact\":\"192.168.1.10:5060\",\"expires\":3600,\"transport\":\"tls\"}\n  \
        cdrs:          {\"account\":\"alice@example.com\",\"direction\":\"placed\",\"remoteParty\":\"sip:bob@example.com\",\"startTime\":1767261600,\"stopTime\":1767261900,\"status\":\"200\",\"price\":\"0.0400\",\"sessionId\":\"abc@host\",\"fromTag\":\"ft\"}\n  \
        balance:       {\"account\":\"alice@example.com\",\"value\":\"10.00\",\"description\":\"CC transaction 1001\"}")]
    Import {
        /// Which feed the records belong to.
        kind: ImportKind,
        /// JSON Lines file; `-` reads stdin.
        file: PathBuf,
    },
    /// Print the OpenAPI document of the operator API (/api/v1) to stdout.
    Openapi,
    /// Write a consistent copy of the SQLite store to OUT while the server keeps running.
    ///
    /// The copy is checked with `PRAGMA integrity_check` before it is renamed to OUT. For a
    /// PostgreSQL store this prints the pg_dump command to use instead and does nothing else.
    /// The secret key and the CA files are not part of the store: back them up too.
    Backup {
        /// The backup file to create.
        out: PathBuf,
        /// Replace OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Copy every table of one store into another (sqlite://PATH or postgres://URL on either
    /// side), then compare the row counts of every table.
    ///
    /// The target is migrated first and must be empty (a new file or database, or one that only
    /// ran migrations). Stop the server first: changes made after the copy started are not
    /// copied. Prefer PGPASSWORD over a password in a URL (the process list shows arguments).
    MigrateStore {
        /// The store to read.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The store to fill.
        #[arg(long, value_name = "URL")]
        to: String,
        /// DELETE everything in a non-empty target before copying.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OperatorCmd {
    /// Add an operator; without --password one line is read from stdin.
    Add {
        name: String,
        /// ADMIN, RESELLER, OWNER, MANAGER or VIEWER.
        #[arg(long)]
        role: String,
        #[arg(long, conflicts_with = "reseller")]
        customer: Option<i64>,
        #[arg(long)]
        reseller: Option<i64>,
        #[command(flatten)]
        password: PasswordArgs,
    },
    List,
    Remove {
        name: String,
    },
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token for an operator and print it (shown only once).
    Create {
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires: Option<i64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CustomerCmd {
    Add {
        name: String,
        #[arg(long)]
        reseller: Option<i64>,
        /// Most SIP accounts the customer may have.
        #[arg(long)]
        limit: Option<i64>,
    },
    List,
}

#[derive(Subcommand, Debug)]
pub enum ResellerCmd {
    Add {
        name: String,
        #[arg(long)]
        parent: Option<i64>,
    },
    List,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ImportKind {
    Registrations,
    Cdrs,
    Balance,
}

impl From<ImportKind> for FeedKind {
    fn from(k: ImportKind) -> Self {
        match k {
            ImportKind::Registrations => FeedKind::Registrations,
            ImportKind::Cdrs => FeedKind::Cdrs,
            ImportKind::Balance => FeedKind::Balance,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum JournalCmd {
    /// Delete journal entries older than DAYS, in small batches that do not block live traffic.
    Prune {
        #[arg(long, value_name = "DAYS")]
        older_than: u64,
        /// Only this account's entries.
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertCmd {
    /// Issue a client certificate: writes DIR/USER@DOMAIN.crt (certificate, key, CA) and
    /// DIR/USER@DOMAIN.p12 (password from --p12-password, else one line from stdin).
    Issue {
        address: String,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Validity in days (default `tls.client_cert_days`).
        #[arg(long)]
        days: Option<u32>,
        /// Password of the .p12 file (visible in the process list: prefer stdin).
        #[arg(long)]
        p12_password: Option<String>,
        /// PKCS#12 with AES-256/SHA-256 instead of the widely importable 3DES/SHA-1.
        #[arg(long)]
        p12_modern: bool,
    },
    /// List certificates (all, or those of one account).
    List { address: Option<String> },
    /// Revoke one certificate by serial, or every certificate of USER@DOMAIN.
    Revoke { target: String },
    /// Write the current CRL (PEM) to stdout or --out FILE.
    Crl {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainCmd {
    Add { domain: String },
    List,
    Remove { domain: String },
}

#[derive(Args, Debug, Default)]
pub struct PasswordArgs {
    /// The SIP password (visible in the process list: prefer --password-file or stdin).
    #[arg(long, conflicts_with = "password_file")]
    pub password: Option<String>,
    /// Read the password from the first line of this file.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Add an account; without a password option one line is read from stdin.
    Add {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long)]
        first: Option<String>,
        #[arg(long)]
        last: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        timezone: Option<String>,
        #[arg(long)]
        mobile: Option<String>,
        #[arg(long)]
        pstn_caller_id: Option<String>,
    },
    /// Set a new password.
    Passwd {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    Show {
        address: String,
    },
    List {
        #[arg(long)]
        domain: Option<String>,
    },
    Block {
        address: String,
    },
    Unblock {
        address: String,
    },
    Remove {
        address: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Openapi) {
        // Needs neither configuration nor store.
        return match crate::http::api::openapi_json() {
            Ok(doc) => {
                let mut out = std::io::stdout().lock();
                match out.write_all(doc.as_bytes()).and_then(|()| out.flush()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(e) => {
                eprintln!("error: cannot render the OpenAPI document: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (cfg, warnings) = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let serving = matches!(cli.command, Command::Serve { .. });
    init_logging(&cfg, serving);
    for w in warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command, cfg));
    // Work still running (requests abandoned after the shutdown timeout, a blocking read)
    // must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr. The filter is `log` (`SIPSETTINGS_LOG`) when set, else `RUST_LOG`,
/// else `info` for `serve` and `warn` for the other commands.
fn init_logging(cfg: &Config, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let (source, wanted) = if !cfg.log.trim().is_empty() {
        ("SIPSETTINGS_LOG", cfg.log.trim().to_owned())
    } else {
        match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => ("RUST_LOG", v),
            _ => ("", String::new()),
        }
    };
    let mut bad = None;
    let filter = if wanted.is_empty() {
        EnvFilter::new(default)
    } else {
        match EnvFilter::try_new(&wanted) {
            Ok(f) => f,
            Err(e) => {
                bad = Some(format!(
                    "invalid log filter in {source} ({e}); using \"{default}\""
                ));
                EnvFilter::new(default)
            }
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log_format.eq_ignore_ascii_case("json") {
        let _ = builder.json().try_init();
    } else {
        if !cfg.log_format.eq_ignore_ascii_case("text") {
            bad.get_or_insert(format!(
                "unknown log_format {:?}; using text",
                cfg.log_format
            ));
        }
        let _ = builder.try_init();
    }
    if let Some(w) = bad {
        tracing::warn!("{w}");
    }
}

async fn services(cfg: &Config) -> anyhow::Result<Services> {
    let store = Store::open(cfg).await?;
    let keys = Keys::load(cfg)?;
    Ok(Services::new(store, keys, cfg))
}

fn read_password(p: &PasswordArgs) -> anyhow::Result<String> {
    let pw = if let Some(pw) = &p.password {
        pw.clone()
    } else if let Some(path) = &p.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        text.lines().next().unwrap_or("").to_owned()
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| anyhow::anyhow!("cannot read the password from stdin: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if pw.is_empty() {
        anyhow::bail!("empty password (use --password, --password-file, or one line on stdin)");
    }
    Ok(pw)
}

async fn run(cmd: Command, cfg: Config) -> anyhow::Result<()> {
    match cmd {
        Command::Openapi => Ok(()),
        Command::Serve { demo } => serve(cfg, demo).await,
        Command::Migrate => {
            let store = Store::connect(&cfg).await?;
            store.migrate().await?;
            println!("migrations applied to {}", redact_url(&cfg.database_url()));
            Ok(())
        }
        Command::Healthcheck { ready } => {
            healthcheck(&cfg, if ready { "/ready" } else { "/health" }).await
        }
        Command::Backup { out, force } => backup(&cfg, &out, force).await,
        Command::MigrateStore { from, to, force } => migrate_store(&from, &to, force).await,
        Command::Domain(d) => {
            let s = services(&cfg).await?;
            match d {
                DomainCmd::Add { domain } => {
                    let d = s.add_domain(&domain).await?;
                    println!("added domain {}", d.name);
                }
                DomainCmd::List => {
                    for d in s.list_domains().await? {
                        println!("{}", d.name);
                    }
                }
                DomainCmd::Remove { domain } => {
                    s.remove_domain(&domain).await?;
                    println!("removed domain {}", domain.trim().to_ascii_lowercase());
                }
            }
            Ok(())
        }
        Command::Account(a) => account_cmd(&cfg, a).await,
        Command::Operator(o) => operator_cmd(&cfg, o).await,
        Command::Customer(c) => {
            let s = services(&cfg).await?;
            let admin = Services::cli_admin();
            match c {
                CustomerCmd::Add {
                    name,
                    reseller,
                    limit,
                } => {
                    let c = s.create_customer(&admin, &name, reseller, limit).await?;
                    println!("added customer {} (id {})", c.name, c.id);
                }
                CustomerCmd::List => {
                    for c in s.list_customers(&admin).await? {
                        let limit = c
                            .sip_account_limit
                            .map(|l| l.to_string())
                            .unwrap_or_else(|| "-".into());
                        let reseller = c
                            .reseller_id
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "-".into());
                        println!("{}\t{}\treseller={reseller}\tlimit={limit}", c.id, c.name);
                    }
                }
            }
            Ok(())
        }
        Command::Reseller(r) => {
            let s = services(&cfg).await?;
            let admin = Services::cli_admin();
            match r {
                ResellerCmd::Add { name, parent } => {
                    let r = s.create_reseller(&admin, &name, parent).await?;
                    println!("added reseller {} (id {})", r.name, r.id);
                }
                ResellerCmd::List => {
                    for r in s.list_resellers(&admin).await? {
                        let parent = r
                            .parent_id
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "-".into());
                        println!("{}\t{}\tparent={parent}", r.id, r.name);
                    }
                }
            }
            Ok(())
        }
        Command::Import { kind, file } => {
            let s = services(&cfg).await?;
            let input: Box<dyn BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                let f = std::fs::File::open(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                Box::new(std::io::BufReader::new(f))
            };
            import(&s, kind.into(), input).await
        }
        Command::Journal(JournalCmd::Prune {
            older_than,
            account,
        }) => {
            let s = services(&cfg).await?;
            let account = match account {
                Some(a) => Some(s.find_account(&a).await?),
                None => None,
            };
            let n = s.journal_prune(older_than, account.as_ref()).await?;
            println!("deleted {n} journal entries older than {older_than} days");
            Ok(())
        }
        Command::Cert(c) => cert_cmd(&cfg, c).await,
    }
}

fn date_of(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ts.to_string())
}

async fn cert_cmd(cfg: &Config, cmd: CertCmd) -> anyhow::Result<()> {
    let s = services(cfg).await?;
    match cmd {
        CertCmd::Issue {
            address,
            out,
            days,
            p12_password,
            p12_modern,
        } => {
            let a = s.find_account(&address).await?;
            let password = match p12_password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                        anyhow::anyhow!("cannot read the .p12 password from stdin: {e}")
                    })?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            if password.is_empty() {
                anyhow::bail!("empty .p12 password (use --p12-password or one line on stdin)");
            }
            std::fs::create_dir_all(&out)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
            let ca = s.ca()?;
            let issued = s
                .issue_client_cert(&a, days.unwrap_or_else(|| s.client_cert_days()))
                .await?;
            let addr = a.address();
            let bundle =
                crate::tls::issue::bundle_pem(&issued.cert_pem, &issued.key_pem, &ca.cert_pem);
            let p12 = crate::tls::issue::pkcs12(
                &addr,
                &issued.cert_der,
                &issued.key_pem,
                &ca.cert_der,
                &password,
                p12_modern,
            )?;
            let crt_path = out.join(format!("{addr}.crt"));
            let p12_path = out.join(format!("{addr}.p12"));
            crate::crypto::write_private_file(&crt_path, bundle.as_bytes())?;
            crate::crypto::write_private_file(&p12_path, &p12)?;
            println!(
                "issued certificate {} for {addr}, valid until {}",
                issued.serial,
                date_of(issued.not_after)
            );
            println!("  {}", crt_path.display());
            println!("  {}", p12_path.display());
        }
        CertCmd::List { address } => {
            let now = crate::util::now();
            for c in s.list_client_certs(address.as_deref()).await? {
                let status = match c.revoked_at {
                    Some(t) => format!("revoked {}", date_of(t)),
                    None if c.not_after < now => "expired".to_owned(),
                    None => "active".to_owned(),
                };
                println!(
                    "{}  {}@{}  until {}  {status}",
                    c.serial,
                    c.username,
                    c.domain,
                    date_of(c.not_after)
                );
            }
        }
        CertCmd::Revoke { target } => {
            for serial in s.revoke_client_certs(&target).await? {
                println!("revoked {serial}");
            }
        }
        CertCmd::Crl { out } => {
            let (_, pem) = s.client_cert_crl().await?;
            match out {
                Some(path) => std::fs::write(&path, pem)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
                None => print!("{pem}"),
            }
        }
    }
    Ok(())
}

async fn account_cmd(cfg: &Config, cmd: AccountCmd) -> anyhow::Result<()> {
    let s = services(cfg).await?;
    match cmd {
        AccountCmd::Add {
            address,
            password,
            first,
            last,
            email,
            timezone,
            mobile,
            pstn_caller_id,
        } => {
            let (username, domain) = crate::service::split_address(&address)?;
            let pw = read_password(&password)?;
            let a = s
                .add_account(
                    NewAccount {
                        username,
                        domain,
                        first_name: first,
                        last_name: last,
                        email,
                        timezone,
                        mobile_number: mobile,
                        pstn_caller_id,
                        customer_id: None,
                    },
                    &pw,
                )
                .await?;
            println!("added account {}", a.address());
        }
        AccountCmd::Passwd { address, password } => {
            let a = s.find_account(&address).await?;
            let pw = read_password(&password)?;
            s.set_password(&a, &pw).await?;
            println!("password changed for {}", a.address());
        }
        AccountCmd::Show { address } => {
            let a = s.find_account(&address).await?;
            let i = s.identity(&a);
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            println!("account:           {}", i.sip_address);
            println!(
                "blocked:           {}",
                if a.is_blocked() { "yes" } else { "no" }
            );
            println!("first name:        {}", show(&i.first));
            println!("last name:         {}", show(&i.lastname));
            println!("email:             {}", show(&i.email));
            println!("timezone:          {}", show(&i.timezone));
            println!("mobile number:     {}", show(&i.mobile_number));
            println!("PSTN caller id:    {}", show(&i.pstn_caller_id));
            println!("no answer timeout: {} s", i.no_answer_timeout);
            println!(
                "balance:           {}",
                crate::util::money_to_string(a.balance)
            );
        }
        AccountCmd::List { domain } => {
            for a in s.list_accounts(domain.as_deref()).await? {
                println!(
                    "{}{}",
                    a.address(),
                    if a.is_blocked() { " (blocked)" } else { "" }
                );
            }
        }
        AccountCmd::Block { address } => {
            let a = s.find_account(&address).await?;
            s.set_blocked(&a, true).await?;
            println!("blocked {}", a.address());
        }
        AccountCmd::Unblock { address } => {
            let a = s.find_account(&address).await?;
            s.set_blocked(&a, false).await?;
            println!("unblocked {}", a.address());
        }
        AccountCmd::Remove { address } => {
            let a = s.find_account(&address).await?;
            s.remove_account(&a).await?;
            println!("removed {}", a.address());
        }
    }
    Ok(())
}

async fn operator_cmd(cfg: &Config, cmd: OperatorCmd) -> anyhow::Result<()> {
    use crate::domain::Role;
    use crate::service::tenancy::NewOperator;
    let s = services(cfg).await?;
    let admin = Services::cli_admin();
    let by_name = |name: &str| {
        let s = s.clone();
        let name = name.to_owned();
        async move {
            s.store
                .operator_by_name(&name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("operator {name} does not exist"))
        }
    };
    match cmd {
        OperatorCmd::Add {
            name,
            role,
            customer,
            reseller,
            password,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("role must be ADMIN, RESELLER, OWNER, MANAGER or VIEWER")
            })?;
            let pw = read_password(&password)?;
            let o = s
                .create_operator(
                    &admin,
                    NewOperator {
                        name,
                        role,
                        customer_id: customer,
                        reseller_id: reseller,
                        password: Some(pw),
                    },
                )
                .await?;
            println!("added operator {} ({}, id {})", o.name, o.role, o.id);
        }
        OperatorCmd::List => {
            for o in s.list_operators(&admin).await? {
                let scope = match (o.customer_id, o.reseller_id) {
                    (Some(c), _) => format!("customer={c}"),
                    (_, Some(r)) => format!("reseller={r}"),
                    _ => "all".into(),
                };
                println!("{}\t{}\t{}\t{scope}", o.id, o.name, o.role);
            }
        }
        OperatorCmd::Remove { name } => {
            let o = by_name(&name).await?;
            s.delete_operator(&admin, o.id).await?;
            println!("removed operator {name}");
        }
        OperatorCmd::Token(TokenCmd::Create { name, expires }) => {
            let o = by_name(&name).await?;
            let (_, secret) = s.create_token(&admin, o.id, "cli", expires).await?;
            println!("{secret}");
        }
    }
    Ok(())
}

/// Reads JSON Lines and ingests them in batches of `MAX_BATCH` records, one transaction each.
async fn import(s: &Services, kind: FeedKind, input: Box<dyn BufRead>) -> anyhow::Result<()> {
    let mut batch = FeedBatch::new(kind);
    // The line number of each record of the current batch.
    let mut lines: Vec<usize> = Vec::with_capacity(MAX_BATCH);
    let (mut imported, mut duplicates) = (0usize, 0usize);
    let failed = |imported: usize, duplicates: usize, line: usize, reason: &str| {
        if imported > 0 {
            eprintln!(
                "note: {imported} records ({duplicates} duplicates) in earlier batches were \
                 imported; nothing from the batch holding line {line} was"
            );
        }
        anyhow::anyhow!("line {line}: {reason}")
    };
    let mut send = async |batch: &mut FeedBatch, lines: &mut Vec<usize>| -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        match s.ingest(batch).await {
            Ok(r) => {
                imported += r.accepted;
                duplicates += r.duplicates;
                batch.clear();
                lines.clear();
                Ok(())
            }
            Err(IngestError::Record { index, reason }) => {
                let line = lines.get(index).copied().unwrap_or(0);
                Err(failed(imported, duplicates, line, &reason))
            }
            Err(IngestError::Store(e)) => {
                let first = lines.first().copied().unwrap_or(0);
                let last = lines.last().copied().unwrap_or(0);
                Err(failed(
                    imported,
                    duplicates,
                    first,
                    &format!("the batch of lines {first} to {last} was not stored: {e}"),
                ))
            }
        }
    };
    for (n, line) in input.lines().enumerate() {
        let n = n + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                return Err(failed(
                    imported,
                    duplicates,
                    n,
                    &format!("cannot read: {e}"),
                ));
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Err(reason) = batch.push_json(&line) {
            return Err(failed(imported, duplicates, n, &reason));
        }
        lines.push(n);
        if batch.len() >= MAX_BATCH {
            send(&mut batch, &mut lines).await?;
        }
    }
    send(&mut batch, &mut lines).await?;
    println!("imported {imported} records ({duplicates} duplicates)");
    Ok(())
}

async fn backup(cfg: &Config, out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    use crate::store::backup;
    let url = cfg.database_url();
    if cfg.is_postgres() {
        print!("{}", backup::pg_dump_advice(&url, out));
        return Ok(());
    }
    let r = backup::backup_sqlite(&url, out, force).await?;
    println!(
        "backup written to {} ({} bytes, integrity check ok)",
        r.path.display(),
        r.bytes
    );
    // The store alone is not enough: sealed secrets need the key, certificates the CA.
    let mut keep = Vec::new();
    if cfg.secret_key.is_empty() {
        keep.push(cfg.data_dir.join("secret.key").display().to_string());
    } else {
        keep.push("the configured secret_key".to_owned());
    }
    if cfg.tls.ca_cert_file.is_empty() {
        keep.push(cfg.data_dir.join("ca.crt").display().to_string());
        keep.push(cfg.data_dir.join("ca.key").display().to_string());
    } else {
        keep.push(cfg.tls.ca_cert_file.clone());
        keep.push(cfg.tls.ca_key_file.clone());
    }
    eprintln!(
        "note: also keep a copy of {}: without them the sealed passwords and certificate keys \
         in the backup cannot be used",
        keep.join(", ")
    );
    Ok(())
}

/// Progress on stderr: a redrawn bar on a terminal, one line per table otherwise.
struct CopyProgress {
    tty: bool,
    last_draw: std::time::Instant,
}

impl CopyProgress {
    fn report(&mut self, table: &str, done: u64, total: u64) {
        let mut err = std::io::stderr().lock();
        if !self.tty {
            if done == total {
                let _ = writeln!(err, "copied {table}: {total} rows");
            }
            return;
        }
        let finished = done == total;
        if !finished && done > 0 && self.last_draw.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last_draw = std::time::Instant::now();
        let width = 30u64;
        let filled = (done * width).checked_div(total).unwrap_or(width);
        let bar: String = (0..width)
            .map(|i| if i < filled { '#' } else { '-' })
            .collect();
        let _ = write!(err, "\r\x1b[2K{table:<24} [{bar}] {done}/{total}");
        if finished {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

async fn migrate_store(from: &str, to: &str, force: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let mut p = CopyProgress {
        tty: std::io::stderr().is_terminal(),
        last_draw: std::time::Instant::now(),
    };
    let report =
        crate::store::transfer::migrate_store(from, to, force, &mut |t, d, n| p.report(t, d, n))
            .await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<24} {:>12} {:>12}", "table", "source", "target")?;
    for t in &report.tables {
        let flag = if t.source == t.target {
            ""
        } else {
            "  MISMATCH"
        };
        writeln!(
            out,
            "{:<24} {:>12} {:>12}{flag}",
            t.table, t.source, t.target
        )?;
    }
    let bad = report.mismatches();
    if !bad.is_empty() {
        let names: Vec<&str> = bad.iter().map(|t| t.table.as_str()).collect();
        anyhow::bail!("row counts differ for: {}", names.join(", "));
    }
    let rows: i64 = report.tables.iter().map(|t| t.target).sum();
    writeln!(
        out,
        "copied {rows} rows in {} tables from {} to {}: every count matches",
        report.tables.len(),
        redact_url(from),
        redact_url(to)
    )?;
    Ok(())
}

/// An address clients on this machine can reach (`0.0.0.0` → `127.0.0.1`).
/// The address to reach a listener on this host: a wildcard bind address becomes the
/// loopback of the same family (`0.0.0.0:8080` → `127.0.0.1:8080`); names stay as they are.
fn local_url_host(listen: &str) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    match listen.trim().parse::<SocketAddr>() {
        Ok(mut a) => {
            if a.ip().is_unspecified() {
                a.set_ip(match a.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            a.to_string()
        }
        Err(_) => listen.trim().to_owned(),
    }
}

async fn serve(cfg: Config, demo: bool) -> anyhow::Result<()> {
    tracing::info!(database = %redact_url(&cfg.database_url()), "opening store");
    let services = services(&cfg).await?;
    let host = local_url_host(&cfg.listen);
    let count = services.count_accounts().await?;
    let mut banner = String::new();
    let mut demo_pw = None;
    if demo && count == 0 {
        let pw = random_password();
        demo_pw = Some(pw.clone());
        let alice = crate::demo::seed(&services, &pw).await?;
        let base = format!("http://{host}/settings.phtml");
        let user = &alice.username;
        let realm = &alice.domain;
        banner = format!(
            "\nDemo account created:\n  SIP account: {addr}\n  password:    {pw}\n\nTry:\n  \
             curl --digest -u '{user}:{pw}' '{base}?action=get_identity&realm={realm}'\n  \
             curl --digest -u '{user}:{pw}' '{base}?action=get_history&realm={realm}'\n  \
             curl --digest -u '{user}:{pw}' '{base}?action=set_dnd_on&duration=30&realm={realm}'\n",
            addr = alice.address()
        );
    } else if demo {
        banner = "\n--demo: the store already has accounts; demo data was not added again.\n\
                  Reset a password with: sipsettings account passwd alice@example.com\n"
            .into();
    } else if count == 0 {
        banner = "\nNo SIP account yet. Add one:\n  sipsettings domain add example.com\n  \
                  sipsettings account add alice@example.com --password 'a secret'\n\
                  or start with sample data: sipsettings serve --demo\n"
            .into();
    }
    if cfg.journal.retention_days > 0 {
        let s = services.clone();
        let days = cfg.journal.retention_days;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                match s.journal_prune(days, None).await {
                    Ok(n) if n > 0 => tracing::info!("journal retention: deleted {n} entries"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("journal retention failed: {e}"),
                }
            }
        });
    }
    let state = AppState::new(cfg.clone(), services.clone());
    let mut server = start(state).await?;
    let addr = server.addr;
    tracing::info!("listening on http://{addr}");
    if let Some(tls) = server.tls_addr {
        tracing::info!("listening on https://{tls} (client certificates optional)");
        if let Some(pw) = &demo_pw {
            let host = local_url_host(&tls.to_string());
            banner.push_str(&format!(
                "\nHTTPS with a client certificate (fetched once with the password):\n  \
                 curl -k --digest -u 'alice:{pw}' -o alice@example.com.crt \
                 'https://{host}/settings.phtml?action=get_crt&realm=example.com'\n  \
                 curl -k -E alice@example.com.crt 'https://{host}/settings.phtml?action=get_identity'\n"
            ));
        }
    }
    if !banner.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{banner}");
        let _ = out.flush();
    }
    if let Some(m) = server.metrics_addr {
        tracing::info!("metrics on http://{m}/metrics");
    }
    let stop = server.shutdown_handle();
    let grace = cfg.shutdown_timeout_secs;
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests (at most {grace} s)");
        if let Some(tx) = stop {
            let _ = tx.send(());
        }
    });
    let result = server.wait().await;
    // Closing waits for connections still lent to abandoned requests: bound it.
    if tokio::time::timeout(Duration::from_secs(2), services.store.close())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: the store did not close within 2 s");
    }
    tracing::info!("shutdown complete");
    result
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// GET `path` (/health or /ready) over a plain socket (no HTTP client in the image), at
/// the `listen` address of the same configuration `serve` reads.
async fn healthcheck(cfg: &Config, path: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = local_url_host(&cfg.listen);
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(&host).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {host} within 5 s"))?
        .map_err(|e| anyhow::anyhow!("cannot reach {host}: {e}"))?;
    let status_line = buf.split(|b| *b == b'\n').next().unwrap_or(&[]);
    if status_line.starts_with(b"HTTP/1.1 200") || status_line.starts_with(b"HTTP/1.0 200") {
        println!("ok");
        Ok(())
    } else {
        let s =
            String::from_utf8_lossy(status_line.get(..status_line.len().min(200)).unwrap_or(&[]));
        anyhow::bail!("unhealthy answer from {host}: {}", s.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::local_url_host;

    #[test]
    fn healthcheck_address_follows_listen() {
        assert_eq!(local_url_host("0.0.0.0:9090"), "127.0.0.1:9090");
        assert_eq!(local_url_host("[::]:9090"), "[::1]:9090");
        assert_eq!(local_url_host("10.0.0.0:8080"), "10.0.0.0:8080");
        assert_eq!(local_url_host("192.168.1.5:80"), "192.168.1.5:80");
        assert_eq!(local_url_host("localhost:8080"), "localhost:8080");
    }
}
