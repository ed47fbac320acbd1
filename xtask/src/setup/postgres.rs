//! Makes sure PostgreSQL answers on `TEST_DATABASE_URL` and that its database
//! exists, starting a local Debian cluster when it is installed but stopped.
//!
//! Tests that need PostgreSQL fail when it is missing; this step is what makes
//! the README's test command work on a machine where it is merely stopped.

use std::fs;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::{Context, DATABASE_ENV};
use crate::cmd;

/// Where Debian's postgresql-common keeps one directory per installed major version.
const DEBIAN_CLUSTERS: &str = "/etc/postgresql";
/// How long to wait for a cluster that was just started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks the server, starts it if it is local and stopped, then checks the database.
pub(crate) fn ensure(context: &Context) -> Result<()> {
    let url = PgUrl::parse(&context.database_url)?;
    let shown = url.redacted();
    if answers(&url.host, url.port) {
        println!("PostgreSQL answers on {}:{}", url.host, url.port);
    } else {
        let started = url.is_local() && start_local_cluster()?;
        if !(started && wait_for(&url.host, url.port, START_TIMEOUT)) {
            bail!(
                "PostgreSQL does not answer on {}:{} ({DATABASE_ENV}={shown}). Start it, for example \
                 with `pg_ctlcluster --skip-systemctl-redirect <version> main start` or \
                 `systemctl start postgresql`, or set {DATABASE_ENV} to a running server.",
                url.host,
                url.port,
            );
        }
        println!("PostgreSQL now answers on {}:{}", url.host, url.port);
    }
    check_database(&url, &context.database_url)
}

/// The parts of a `postgres://` URL that setup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PgUrl {
    /// Host name or IP address, without IPv6 brackets.
    host: String,
    /// TCP port, 5432 unless the URL names one.
    port: u16,
    /// Database name; empty when the URL names none.
    database: String,
    /// Everything before the path: scheme, user information and authority.
    prefix: String,
    /// The query string including its `?`, or empty.
    query: String,
}

impl PgUrl {
    fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .with_context(|| {
                format!(
                    "invalid {DATABASE_ENV} \"{}\": expected postgres://user@host:port/database",
                    redact(url)
                )
            })?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let prefix = url[..url.len() - rest.len() + authority_end].to_owned();
        let (path, query) = match tail.find('?') {
            Some(at) => (&tail[..at], &tail[at..]),
            None => (tail, ""),
        };
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').with_context(|| {
                format!("invalid {DATABASE_ENV} \"{}\": unclosed '['", redact(url))
            })?;
            (host, after.strip_prefix(':'))
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        let port = match port {
            None | Some("") => 5432,
            Some(port) => port.parse().with_context(|| {
                format!(
                    "invalid {DATABASE_ENV} \"{}\": port \"{port}\" is not a number from 0 to 65535",
                    redact(url)
                )
            })?,
        };
        let host = if host.is_empty() { "localhost" } else { host };
        Ok(Self {
            host: host.to_owned(),
            port,
            database: path.trim_start_matches('/').to_owned(),
            prefix,
            query: query.to_owned(),
        })
    }

    fn is_local(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
    }

    /// The same server's `postgres` database, from which `createdb` works.
    fn maintenance_url(&self) -> String {
        format!("{}/postgres{}", self.prefix, self.query)
    }

    fn redacted(&self) -> String {
        redact(&format!("{}/{}{}", self.prefix, self.database, self.query))
    }
}

/// The URL with any password replaced, so it can be printed.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

fn answers(host: &str, port: u16) -> bool {
    let Ok(addresses) = (host, port).to_socket_addrs() else {
        return false;
    };
    addresses
        .collect::<Vec<SocketAddr>>()
        .iter()
        .any(|address| TcpStream::connect_timeout(address, Duration::from_secs(1)).is_ok())
}

fn wait_for(host: &str, port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if answers(host, port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Starts the newest Debian cluster named `main`; returns whether one was started.
fn start_local_cluster() -> Result<bool> {
    let root = Path::new(DEBIAN_CLUSTERS);
    if !root.is_dir() {
        println!("{DEBIAN_CLUSTERS} does not exist: no local cluster to start");
        return Ok(false);
    }
    let mut versions: Vec<String> = fs::read_dir(root)
        .with_context(|| format!("listing {DEBIAN_CLUSTERS}"))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("main").is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    versions.sort_by_key(|version| version_key(version));
    let Some(version) = versions.pop() else {
        println!("{DEBIAN_CLUSTERS} holds no cluster named main");
        return Ok(false);
    };
    let mut start = Command::new("pg_ctlcluster");
    start.args(["--skip-systemctl-redirect", &version, "main", "start"]);
    match cmd::run(&mut start) {
        Ok(()) => Ok(true),
        Err(error) => {
            // The cluster may already be starting; the wait that follows decides.
            println!("{error:#}");
            Ok(!cmd::is_not_found(&error))
        }
    }
}

/// Sorts "9.6" before "15" by comparing numeric parts.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

/// Runs `select 1` with psql, creating the database with createdb when it is missing.
fn check_database(url: &PgUrl, raw_url: &str) -> Result<()> {
    let select = || {
        let mut psql = Command::new("psql");
        psql.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "select 1",
            "-d",
        ])
        .arg(raw_url)
        .env("PGCONNECT_TIMEOUT", "10");
        let output = cmd::capture(&mut psql);
        (psql, output)
    };
    let (psql, output) = select();
    let output = match output {
        Ok(output) => output,
        Err(error) if cmd::is_not_found(&error) => {
            println!(
                "psql is not on PATH: not checking that database \"{}\" exists",
                url.database
            );
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    if output.status.success() {
        println!("database \"{}\" answers `select 1`", url.database);
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if url.database.is_empty() || !stderr.contains("does not exist") {
        return cmd::check(&psql, &output)
            .with_context(|| format!("checking {DATABASE_ENV}={}", url.redacted()));
    }
    let mut createdb = Command::new("createdb");
    createdb
        .arg(format!("--maintenance-db={}", url.maintenance_url()))
        .arg(&url.database)
        .env("PGCONNECT_TIMEOUT", "10");
    let created = cmd::capture(&mut createdb)?;
    cmd::check(&createdb, &created).with_context(|| {
        format!(
            "database \"{}\" does not exist and could not be created",
            url.database
        )
    })?;
    println!("created database \"{}\"", url.database);
    let (psql, output) = select();
    cmd::check(&psql, &output?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_parses_into_host_port_and_database() {
        let url = PgUrl::parse(super::super::DEFAULT_DATABASE_URL).unwrap();
        assert_eq!(url.host, "127.0.0.1");
        assert_eq!(url.port, 5432);
        assert_eq!(url.database, "test");
        assert!(url.is_local());
        assert_eq!(
            url.maintenance_url(),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }

    #[test]
    fn url_without_port_with_query_and_ipv6_host() {
        let url = PgUrl::parse("postgresql://u:secret@[::1]/db?sslmode=disable").unwrap();
        assert_eq!(url.host, "::1");
        assert_eq!(url.port, 5432);
        assert_eq!(url.database, "db");
        assert_eq!(
            url.maintenance_url(),
            "postgresql://u:secret@[::1]/postgres?sslmode=disable"
        );
        assert_eq!(
            url.redacted(),
            "postgresql://u:***@[::1]/db?sslmode=disable"
        );
    }

    #[test]
    fn invalid_urls_are_reported_without_their_password() {
        let error = PgUrl::parse("mysql://root:hunter2@localhost/x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("expected postgres://"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        let error = PgUrl::parse("postgres://localhost:54x/x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("port \"54x\""), "{error}");
    }

    #[test]
    fn newest_version_sorts_last() {
        let mut versions = vec!["15", "9.6", "16", "10"];
        versions.sort_by_key(|version| version_key(version));
        assert_eq!(versions, ["9.6", "10", "15", "16"]);
    }
}
