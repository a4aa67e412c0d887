//! The processes and databases a benchmark row runs against: the real `dispecer` binary, a
//! Mosquitto configured as `deploy/mosquitto.conf` says, a fresh TimescaleDB database.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// A free loopback port (never 1883, 5432 or 8080, which a developer's own services may want).
pub fn free_port() -> Result<u16> {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if ![1883, 5432, 8080].contains(&port) {
            return Ok(port);
        }
    }
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory in the system's temporary folder.
    pub fn new(prefix: &str) -> Result<Self> {
        Self::new_in(&std::env::temp_dir(), prefix)
    }

    /// A new empty directory in `parent`.
    pub fn new_in(parent: &Path, prefix: &str) -> Result<Self> {
        let dir = parent.join(format!("{prefix}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(TempDir(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SIGTERM, then SIGKILL after 15 s.
fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `lines` lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Mosquitto with the settings of `deploy/mosquitto.conf`, on a port and in a persistence folder
/// of its own.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Mosquitto {
    /// Starts `bin` with `deploy/mosquitto.conf`, its listener and persistence folder replaced.
    pub async fn start(bin: &Path, deploy_conf: &Path) -> Result<Self> {
        if !bin.exists() {
            bail!(
                "mosquitto not found at {}: install it (scripts/deps.sh does) or pass --mosquitto",
                bin.display()
            );
        }
        let dir = TempDir::new("dispecer-bench-mosquitto")?;
        let port = free_port()?;
        let deployed = std::fs::read_to_string(deploy_conf)
            .with_context(|| format!("cannot read {}", deploy_conf.display()))?;
        let mut listener = false;
        let mut persistence = false;
        let conf: Vec<String> = deployed
            .lines()
            .map(|line| {
                if line.starts_with("listener ") {
                    listener = true;
                    format!("listener {port} 127.0.0.1")
                } else if line.starts_with("persistence_location ") {
                    persistence = true;
                    format!("persistence_location {}/", dir.path().display())
                } else {
                    line.to_owned()
                }
            })
            .collect();
        if !listener || !persistence {
            bail!(
                "{} has no `listener` or no `persistence_location` line to adapt",
                deploy_conf.display()
            );
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf.join("\n") + "\n")?;
        // Started as root, Mosquitto drops to the `mosquitto` user: its persistence folder must
        // be that user's, or every save fails and persistence silently does nothing.
        let _ = Command::new("chown")
            .arg("mosquitto:mosquitto")
            .arg(dir.path())
            .stderr(Stdio::null())
            .status();
        let log_path = dir.path().join("mosquitto.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "mosquitto exited with {status} before listening:\n{}",
                    tail(&log_path, 20)
                );
            }
            if Instant::now() > deadline {
                terminate(&mut child);
                bail!("mosquitto did not listen on {port} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Mosquitto { child, port, dir })
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The end of its log (for error messages).
    pub fn log_tail(&self) -> String {
        tail(&self.dir.path().join("mosquitto.log"), 20)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// A fresh database on a TimescaleDB server, dropped by [`PgDatabase::drop_database`].
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// URL of the fresh database.
    pub url: String,
}

impl PgDatabase {
    /// Creates `dispecer_bench_<random>` through `admin_url` (a URL of an existing database).
    pub async fn create(admin_url: &str) -> Result<Self> {
        let name = format!("dispecer_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url)
            .await
            .with_context(|| {
                format!(
                    "TimescaleDB is not reachable at {admin_url}: start it with \
                     `scripts/timescaledb.sh start` (it prints the URL) and pass it as \
                     DISPECER_TEST_PG_URL or --pg-url"
                )
            })?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin_url
            .split('?')
            .next()
            .and_then(|u| u.rsplit_once('/'))
            .map(|(b, _)| b.to_owned())
            .ok_or_else(|| anyhow!("{admin_url} names no database"))?;
        Ok(PgDatabase {
            url: format!("{base}/{name}"),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// Drops the database.
    pub async fn drop_database(self) -> Result<()> {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// The broker a [`Dispecer`] uses.
#[derive(Debug, Clone)]
pub enum Broker {
    /// Its own embedded broker (rumqttd), listening on this port.
    Embedded(u16),
    /// Mosquitto on this port.
    External(u16),
}

impl Broker {
    /// The broker's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        match self {
            Broker::Embedded(p) | Broker::External(p) => *p,
        }
    }
}

/// A running `dispecer run`.
#[derive(Debug)]
pub struct Dispecer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    log: PathBuf,
    /// `dispecer_session=…` of the bench's admin: the reads (incidents, feeds, dead letters,
    /// the stream) need a login, as a dashboard's would.
    cookie: String,
}

/// The admin the bench makes in each database it runs on, and logs in as.
const BENCH_USER: &str = "bench-admin";
/// Its password (loopback only, a throwaway database).
const BENCH_PASSWORD: &str = "bench-admin-parola-lunga";

/// Makes [`BENCH_USER`] in `database_url` with `bin user add` (already there is fine).
fn add_admin(bin: &Path, city: &Path, database_url: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(["user", "add", "--username", BENCH_USER, "--role", "admin"])
        .args(["--password-stdin", "--database-url", database_url])
        .arg("--city")
        .arg(city)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} user add", bin.display()))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{BENCH_PASSWORD}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !err.contains("already a user") {
        bail!("cannot make the bench's admin: {err}");
    }
    Ok(())
}

/// Logs in as [`BENCH_USER`]; the session's cookie.
async fn log_in(http: &str) -> Result<String> {
    let resp = reqwest::Client::new()
        .post(format!("{http}/api/v1/session"))
        .json(&serde_json::json!({"username": BENCH_USER, "password": BENCH_PASSWORD}))
        .send()
        .await
        .context("POST /api/v1/session")?;
    if !resp.status().is_success() {
        bail!("the bench's login answered {}", resp.status());
    }
    resp.headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .context("the login set no cookie")
}

impl Dispecer {
    /// Starts `bin run` on `database_url` and `broker`, and waits for its ready file.
    pub async fn start(
        bin: &Path,
        city: &Path,
        dir: &TempDir,
        database_url: &str,
        broker: &Broker,
    ) -> Result<Self> {
        let ready = dir.path().join("ready.json");
        let log = dir.path().join("dispecer.log");
        add_admin(bin, city, database_url)?;
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("--city")
            .arg(city)
            .arg("--database-url")
            .arg(database_url)
            .arg("--http-addr")
            .arg("127.0.0.1:0")
            .arg("--ready-file")
            .arg(&ready)
            .arg("--mqtt-client-id")
            .arg(format!("dispecer-bench-{}", uuid::Uuid::now_v7().simple()))
            // The rows measure the pipeline, not the per-sender limit: each counter publishes
            // far faster than a real one.
            .args(["--mqtt-sender-per-minute", "1000000000"])
            .args(["--mqtt-sender-burst", "1000000000"]);
        match broker {
            // Open: logins cost once per connection, nothing per message.
            Broker::Embedded(port) => cmd
                .arg("--mqtt-listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(["--mqtt-auth", "none"]),
            Broker::External(port) => cmd
                .arg("--mqtt-url")
                .arg(format!("mqtt://127.0.0.1:{port}")),
        };
        // Its own default log filter (what a deployment runs with), unless the caller set one.
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let doc: Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if let Ok(v) = serde_json::from_str(&text) {
                    break v;
                }
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "dispecer exited with {status} before ready:\n{}",
                    tail(&log, 30)
                );
            }
            if Instant::now() > deadline {
                terminate(&mut child);
                bail!("dispecer not ready within 60 s:\n{}", tail(&log, 30));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let http = format!(
            "http://{}",
            doc["http"]
                .as_str()
                .context("the ready file names no http address")?
        );
        let cookie = log_in(&http).await?;
        Ok(Dispecer {
            child,
            http,
            log,
            cookie,
        })
    }

    /// A WebSocket request for `GET /api/v1/stream`, with the bench's session.
    pub fn stream_request(
        &self,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/api/v1/stream", self.http.replacen("http", "ws", 1));
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("cookie", self.cookie.parse().context("a cookie header")?);
        Ok(request)
    }

    /// The end of its log (for error messages).
    pub fn log_tail(&self) -> String {
        tail(&self.log, 30)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GETs a JSON document.
    pub async fn get(&self, http: &reqwest::Client, path: &str) -> Result<Value> {
        let resp = http
            .get(format!("{}{path}", self.http))
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("GET {path}: {status}");
        }
        Ok(resp.json().await?)
    }

    /// Stops it with SIGTERM and waits; keeps its log as `keep_log`, if given.
    pub fn stop(mut self, keep_log: Option<&Path>) -> Result<()> {
        terminate(&mut self.child);
        if let Some(to) = keep_log {
            std::fs::copy(&self.log, to)
                .with_context(|| format!("cannot copy the dispecer log to {}", to.display()))?;
        }
        Ok(())
    }
}

impl Drop for Dispecer {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}
