//! Harness for the end-to-end tests: starts the real `dispecer` binary, a real Mosquitto, a real
//! TimescaleDB database and a real browser, as a user would, on ports of their own.
//!
//! Services the tests need are installed and started by `scripts/test.sh`; a test that needs one
//! that is missing fails with a message saying so (it never passes silently).

#![allow(clippy::unwrap_used)] // test harness: a failure should stop the test loudly

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A free loopback port (never 1883, 5432 or 8080).
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if ![1883, 5432, 8080].contains(&port) {
            return port;
        }
    }
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory.
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
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

async fn wait_for_port(port: u16, what: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited with {status} before listening on {port}");
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on {port} within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

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

/// A Mosquitto broker of the test's own, configured as Dispecer's documentation says
/// (persistence with a short autosave, no queue cap for persistent sessions).
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Mosquitto {
    /// Starts it on a free port.
    pub async fn start() -> Result<Self> {
        Self::start_with("allow_anonymous true\n", |_| Ok(())).await
    }

    /// Starts it on a free port with logins (`users`: user name and password) and the ACL of
    /// `deploy/mosquitto.acl`, anonymous clients refused.
    pub async fn start_with_acl(users: &[(&str, &str)]) -> Result<Self> {
        let acl = repo_root().join("deploy/mosquitto.acl");
        let users: Vec<(String, String)> = users
            .iter()
            .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
            .collect();
        Self::start_with(
            &format!(
                "allow_anonymous false\npassword_file PASSWD\nacl_file {}\n",
                acl.display()
            ),
            move |dir| {
                let passwd = dir.join("passwd");
                for (i, (user, password)) in users.iter().enumerate() {
                    let mut cmd = Command::new("mosquitto_passwd");
                    if i == 0 {
                        cmd.arg("-c");
                    }
                    let status = cmd
                        .arg("-b")
                        .arg(&passwd)
                        .arg(user)
                        .arg(password)
                        .stdout(Stdio::null())
                        .status()
                        .context("mosquitto_passwd (scripts/deps.sh installs mosquitto)")?;
                    if !status.success() {
                        bail!("mosquitto_passwd failed for {user}");
                    }
                }
                Ok(())
            },
        )
        .await
    }

    /// Starts it on a free port that speaks only MQTT over TLS, with this server certificate
    /// chain and key (PEM), anonymous clients allowed.
    pub async fn start_with_tls(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let (cert, key) = (cert_pem.to_owned(), key_pem.to_owned());
        Self::start_with(
            "allow_anonymous true\ncertfile DIR/server.pem\nkeyfile DIR/server.key\n",
            move |dir| {
                std::fs::write(dir.join("server.pem"), cert)?;
                std::fs::write(dir.join("server.key"), key)?;
                Ok(())
            },
        )
        .await
    }

    async fn start_with(access: &str, prepare: impl FnOnce(&Path) -> Result<()>) -> Result<Self> {
        let dir = TempDir::new("dispecer-mosquitto");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        prepare(dir.path())?;
        let access = access
            .replace("PASSWD", &dir.path().join("passwd").display().to_string())
            .replace("DIR/", &format!("{}/", dir.path().display()));
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{access}persistence true\npersistence_location {}/\n\
                 autosave_interval 1\nautosave_on_changes true\nmax_queued_messages 0\nmax_inflight_messages 100\n",
                dir.path().display()
            ),
        )?;
        // Run as root, Mosquitto drops to its own user: its persistence folder must be its own,
        // or every autosave fails ("Permission denied") and persistence silently does nothing.
        let _ = Command::new("chown")
            .arg("-R")
            .arg("mosquitto:mosquitto")
            .arg(dir.path())
            .stderr(Stdio::null())
            .status();
        let child = Self::spawn(&dir, port).await?;
        Ok(Mosquitto {
            child,
            port,
            _dir: dir,
        })
    }

    async fn spawn(dir: &TempDir, port: u16) -> Result<Child> {
        let bin =
            std::env::var("DISPECER_MOSQUITTO").unwrap_or_else(|_| "/usr/sbin/mosquitto".into());
        if !Path::new(&bin).exists() {
            bail!("mosquitto not found at {bin}: run scripts/test.sh (it installs it) or set DISPECER_MOSQUITTO");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("mosquitto.log"))?;
        let mut child = Command::new(&bin)
            .arg("-c")
            .arg(dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {bin}"))?;
        wait_for_port(port, "mosquitto", &mut child).await?;
        Ok(child)
    }

    /// Stops it (SIGTERM: it saves its database) and starts it again on the same port with the
    /// same persistence, as an operator's restart or an upgrade does.
    pub async fn restart(&mut self) -> Result<()> {
        terminate(&mut self.child);
        self.child = Self::spawn(&self._dir, self.port).await?;
        Ok(())
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What it logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Waits until Mosquitto has written its persistence file (its first autosave), so that
    /// the sessions that exist now survive a crash.
    pub async fn saved(&self) -> Result<()> {
        let file = self._dir.path().join("mosquitto.db");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !file.exists() {
            if Instant::now() > deadline {
                bail!("mosquitto wrote no persistence file in 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// A fresh database on the test TimescaleDB server (`DISPECER_TEST_PG_URL`), dropped by
/// [`PgDatabase::drop_database`].
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// URL of the fresh database.
    pub url: String,
}

impl PgDatabase {
    /// Creates `dispecer_e2e_<random>`.
    pub async fn create() -> Result<Self> {
        let admin_url = std::env::var("DISPECER_TEST_PG_URL").map_err(|_| {
            anyhow!("DISPECER_TEST_PG_URL is not set: run scripts/test.sh (it starts TimescaleDB) or point it at a server")
        })?;
        let name = format!("dispecer_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .context("admin URL has no database")?;
        Ok(PgDatabase {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }

    /// Whether `table` is a TimescaleDB hypertable in this database.
    pub async fn is_hypertable(&self, table: &str) -> Result<bool> {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.url).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = $1",
        )
        .bind(table)
        .fetch_one(&mut conn)
        .await?;
        Ok(n == 1)
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
    /// Its embedded broker, on this port, open to anyone (`--mqtt-auth none`).
    Embedded(u16),
    /// Its embedded broker, on this port, every client logging in with an API token (the
    /// default of `dispecer run`).
    EmbeddedTokens(u16),
    /// An external broker at this URL.
    External(String),
}

/// A running `dispecer run` process.
#[derive(Debug)]
pub struct Dispecer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// `127.0.0.1`, port of the broker it uses.
    pub mqtt_port: u16,
    log: PathBuf,
    database_url: String,
    /// The harness's admin session ([`Dispecer::staff`]), made on first use.
    staff: tokio::sync::OnceCell<Login>,
}

/// The user name of the admin the harness makes on first use of [`Dispecer::staff`] (and so of
/// [`Dispecer::get`] and [`Dispecer::stream`]).
pub const STAFF_USER: &str = "e2e-admin";
/// Its password.
pub const STAFF_PASSWORD: &str = "e2e-admin-parola-lunga";

/// The limits of the tests' servers: every test files its reports from 127.0.0.1, many more than
/// a citizen's 10 a minute, and floods MQTT topics faster than a sender's 600 a minute
/// (`limits.rs` tests the limits with [`Dispecer::start_with_args`]).
pub const GENEROUS_LIMITS: &[&str] = &[
    "--client-reports-per-minute",
    "100000",
    "--client-reports-burst",
    "100000",
    "--mqtt-sender-per-minute",
    "100000000",
    "--mqtt-sender-burst",
    "100000000",
];

/// Where the `dispecer` binary is (built by `cargo build`, which `scripts/test.sh` runs first).
pub fn dispecer_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("DISPECER_BIN") {
        return Ok(PathBuf::from(p));
    }
    // target/<profile>/deps/it-<hash> → target/<profile>/dispecer
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("dispecer"))
        .context("no target dir")?;
    if !bin.exists() {
        bail!(
            "{} is missing: build it first with `cargo build -p dispecer` (scripts/test.sh does)",
            bin.display()
        );
    }
    Ok(bin)
}

impl Dispecer {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory in bytes (VmRSS), read from /proc.
    pub fn rss_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .context("no VmRSS")?
            .parse()?;
        Ok(kib * 1024)
    }

    /// Starts `dispecer run` with `database_url` and `broker`, and waits until it is ready.
    pub async fn start(dir: &TempDir, database_url: &str, broker: &Broker) -> Result<Self> {
        Self::start_with_city(
            dir,
            database_url,
            broker,
            &repo_root().join("cities/brasov"),
        )
        .await
    }

    /// [`Dispecer::start`] with another city folder.
    pub async fn start_with_city(
        dir: &TempDir,
        database_url: &str,
        broker: &Broker,
        city: &Path,
    ) -> Result<Self> {
        Self::start_with_args(dir, database_url, broker, city, GENEROUS_LIMITS).await
    }

    /// [`Dispecer::start_with_city`] with these flags instead of [`GENEROUS_LIMITS`] (none: the
    /// binary's own default limits).
    pub async fn start_with_args(
        dir: &TempDir,
        database_url: &str,
        broker: &Broker,
        city: &Path,
        args: &[&str],
    ) -> Result<Self> {
        let ready = dir
            .path()
            .join(format!("ready-{}.json", uuid::Uuid::now_v7()));
        let log = dir
            .path()
            .join(format!("dispecer-{}.log", uuid::Uuid::now_v7()));
        let mut cmd = Command::new(dispecer_bin()?);
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
            .arg(format!(
                "dispecer-e2e-{}",
                dir.path()
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("x")
            ));
        let mqtt_port = match broker {
            Broker::Embedded(port) => {
                cmd.arg("--mqtt-listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .args(["--mqtt-auth", "none"]);
                *port
            }
            Broker::EmbeddedTokens(port) => {
                cmd.arg("--mqtt-listen").arg(format!("127.0.0.1:{port}"));
                *port
            }
            Broker::External(url) => {
                cmd.arg("--mqtt-url").arg(url);
                url.rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .context("broker url port")?
            }
        };
        cmd.args(args);
        cmd.env("DISPECER_LOG", "info,dispecer=debug,engine=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let mut child = cmd.spawn().context("cannot start dispecer")?;
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
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                terminate(&mut child);
                bail!(
                    "dispecer not ready within 60 s:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let http = format!(
            "http://{}",
            doc["http"].as_str().context("ready file has no http")?
        );
        Ok(Dispecer {
            child,
            http,
            mqtt_port,
            log,
            database_url: database_url.to_owned(),
            staff: tokio::sync::OnceCell::new(),
        })
    }

    /// Kills it with SIGKILL (no chance to clean up) and waits.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it with SIGTERM and waits.
    pub fn stop(mut self) -> String {
        terminate(&mut self.child);
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its `--database-url`.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The harness's own admin session (user [`STAFF_USER`], role `admin`), made and logged in
    /// on first use, as a city's administrator would: it reads everything, the dead letters
    /// included. Made lazily, so that a test that never reads has no extra user.
    pub async fn staff(&self) -> Result<&Login> {
        self.staff
            .get_or_try_init(|| async {
                let (ok, err) = dispecer_user_add(
                    &self.database_url,
                    STAFF_USER,
                    "admin",
                    None,
                    STAFF_PASSWORD,
                )?;
                // A restarted server's database has it already.
                if !ok && !err.contains("already a user") {
                    bail!("cannot make the harness's admin {STAFF_USER}: {err}");
                }
                login(&self.http, STAFF_USER, STAFF_PASSWORD).await
            })
            .await
    }

    /// GET a JSON document as the harness's admin ([`Dispecer::staff`]); returns status,
    /// content type and body.
    pub async fn get(&self, path: &str) -> Result<(u16, String, Value)> {
        let staff = self.staff().await?;
        self.get_with(path, Some(staff)).await
    }

    /// GET a JSON document without logging in (what anyone on the network gets).
    pub async fn get_anonymous(&self, path: &str) -> Result<(u16, String, Value)> {
        self.get_with(path, None).await
    }

    /// GET a JSON document with `who`'s session cookie, or none.
    pub async fn get_with(&self, path: &str, who: Option<&Login>) -> Result<(u16, String, Value)> {
        let mut req = reqwest::Client::new().get(format!("{}{path}", self.http));
        if let Some(who) = who {
            req = req.header("cookie", &who.cookie);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, ctype, body))
    }

    /// The WebSocket stream as the harness's admin, with its first frame (the snapshot).
    pub async fn stream(&self) -> Result<(StreamClient, Value)> {
        self.stream_filtered("").await
    }

    /// [`Dispecer::stream`] with the stream's query parameters (`bbox=…&categories=…`).
    pub async fn stream_filtered(&self, query: &str) -> Result<(StreamClient, Value)> {
        StreamClient::connect_filtered(&self.http, query, self.staff().await?).await
    }
}

impl Drop for Dispecer {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// A test MQTT client: publishes with QoS 1 (waiting for the broker's acknowledgement) and
/// collects what arrives on its subscriptions.
#[derive(Debug)]
pub struct MqttClient {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<(String, Value)>,
    acks: mpsc::UnboundedReceiver<()>,
}

impl MqttClient {
    /// Connects to 127.0.0.1:`port` and subscribes to `filters` (waiting for the SubAck).
    pub async fn connect(port: u16, filters: &[&str]) -> Result<Self> {
        Self::connect_as(port, filters, None).await
    }

    /// [`MqttClient::connect`], logging in with `login` (user name, password).
    pub async fn connect_as(
        port: u16,
        filters: &[&str],
        login: Option<(&str, &str)>,
    ) -> Result<Self> {
        let mut opts = MqttOptions::new(
            format!("e2e-{}", uuid::Uuid::now_v7().simple()),
            "127.0.0.1",
            port,
        );
        opts.set_keep_alive(Duration::from_secs(5));
        if let Some((user, password)) = login {
            opts.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, incoming) = mpsc::unbounded_channel();
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
        let resubscribe = client.clone();
        let filters_owned: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters_owned {
                            let _ = resubscribe.try_subscribe(f.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = sub_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = ack_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        if tx.send((p.topic.clone(), v)).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        for _ in filters {
            tokio::time::timeout(Duration::from_secs(10), sub_rx.recv())
                .await
                .context("no SubAck")?;
        }
        Ok(MqttClient {
            client,
            incoming,
            acks,
        })
    }

    /// Publishes `payload` with QoS 1 and waits for the broker's PubAck.
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) -> Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await?;
        // Generous: on a loaded 2-core machine (CI runs the tests two at a time beside
        // brokers and databases) a login and its PubAck can take seconds.
        tokio::time::timeout(Duration::from_secs(30), self.acks.recv())
            .await
            .context("no PubAck within 30 s")?;
        Ok(())
    }

    /// The next message on the subscriptions whose JSON satisfies `pred`.
    pub async fn next_matching(
        &mut self,
        mut pred: impl FnMut(&str, &Value) -> bool,
    ) -> Result<(String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (topic, v) = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .context("no matching MQTT message within 15 s")?
                .context("mqtt client closed")?;
            if pred(&topic, &v) {
                return Ok((topic, v));
            }
        }
    }
}

/// A WebSocket client of `/api/v1/stream`.
#[derive(Debug)]
pub struct StreamClient {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl StreamClient {
    /// Connects with `who`'s session and returns the first frame (the snapshot) too.
    pub async fn connect(http: &str, who: &Login) -> Result<(Self, Value)> {
        Self::connect_filtered(http, "", who).await
    }

    /// [`StreamClient::connect`] with the stream's query parameters (`bbox=…&categories=…`; empty
    /// for none).
    pub async fn connect_filtered(http: &str, query: &str, who: &Login) -> Result<(Self, Value)> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut url = format!("{}/api/v1/stream", http.replacen("http://", "ws://", 1));
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("cookie", who.cookie.parse().context("a cookie header")?);
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        let mut client = StreamClient { ws };
        let first = client.next_frame().await?;
        Ok((client, first))
    }

    /// The next JSON frame.
    pub async fn next_frame(&mut self) -> Result<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(15), self.ws.next())
                .await
                .context("no WebSocket frame within 15 s")?
                .context("WebSocket closed")??;
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                return Ok(serde_json::from_str(t.as_str())?);
            }
        }
    }

    /// The next incident frame about an incident satisfying `pred`.
    pub async fn next_incident(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Result<Value> {
        loop {
            let f = self.next_frame().await?;
            if f["type"] == "incident" && pred(&f["incident"]) {
                return Ok(f);
            }
        }
    }
}

/// A citizen report Feature.
pub fn citizen_report(id: &str, category: &str, lon: f64, lat: f64) -> String {
    serde_json::json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"id": id, "category": category, "description": "raportat din testul end-to-end",
            "reported_at": chrono::Utc::now().to_rfc3339()}
    })
    .to_string()
}

/// Runs `dispecer token ARGS --database-url URL` (create, list, revoke), asserts it succeeded,
/// and returns what it printed, trimmed (for `create`: the token).
pub fn dispecer_token(database_url: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(dispecer_bin()?)
        .args(["token"])
        .args(args)
        .args(["--database-url", database_url])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// A copy of the Brașov city folder in `dir`, with `edit` applied to its `categories.toml` (e.g.
/// a deadline short enough for a test to see it pass).
pub fn brasov_copy(dir: &Path, edit: impl FnOnce(String) -> String) -> Result<PathBuf> {
    let from = repo_root().join("cities/brasov");
    let to = dir.join("city");
    copy_dir(&from, &to)?;
    let categories = to.join("categories.toml");
    let text = std::fs::read_to_string(&categories)?;
    std::fs::write(&categories, edit(text))?;
    Ok(to)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Whether the broker on 127.0.0.1:`port` lets a client in with `login` (user name, password):
/// `true` on a CONNACK that accepts it, `false` when the connection is refused or closed.
pub async fn mqtt_login(port: u16, login: Option<(&str, &str)>) -> Result<bool> {
    let mut opts = MqttOptions::new(
        format!("e2e-login-{}", uuid::Uuid::now_v7().simple()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(5));
    if let Some((user, password)) = login {
        opts.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 4);
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return ack.code == rumqttc::ConnectReturnCode::Success
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .context("no answer from the broker within 10 s")?;
    let _ = client.try_disconnect();
    Ok(answer)
}

/// Runs `dispecer user add --username NAME --role ROLE [--agency A] --password-stdin` with
/// `password` on its standard input; returns whether it succeeded and what it wrote to stderr.
pub fn dispecer_user_add(
    database_url: &str,
    username: &str,
    role: &str,
    agency: Option<&str>,
    password: &str,
) -> Result<(bool, String)> {
    use std::io::Write;
    let mut cmd = Command::new(dispecer_bin()?);
    cmd.args(["user", "add", "--username", username, "--role", role])
        .args(["--password-stdin", "--database-url", database_url])
        .arg("--city")
        .arg(repo_root().join("cities/brasov"));
    if let Some(a) = agency {
        cmd.args(["--agency", a]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A person's session with a running Dispecer: its cookie and CSRF token.
#[derive(Debug, Clone)]
pub struct Login {
    /// `dispecer_session=…`, as sent back in `Cookie`.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// `GET /api/v1/session`'s answer at login.
    pub me: Value,
}

/// Logs in with `POST /api/v1/session`; returns the status, the `Set-Cookie` header and the body.
pub async fn login_raw(
    http: &str,
    username: &str,
    password: &str,
) -> Result<(u16, reqwest::header::HeaderMap, Value)> {
    let resp = reqwest::Client::new()
        .post(format!("{http}/api/v1/session"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"username": username, "password": password}).to_string())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, headers, body))
}

/// Logs in and fails unless it worked.
pub async fn login(http: &str, username: &str, password: &str) -> Result<Login> {
    let (status, headers, me) = login_raw(http, username, password).await?;
    if status != 200 {
        bail!("login of {username} answered {status}: {me}");
    }
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_owned();
    let csrf = me["csrf"].as_str().context("no csrf token")?.to_owned();
    Ok(Login { cookie, csrf, me })
}
