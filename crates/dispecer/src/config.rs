//! Command line and environment: defaults → environment (`DISPECER_*`) → flags.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Dispecer, the open-source integrated technical dispatch center.
#[derive(Debug, Parser)]
#[command(name = "dispecer", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the dispatch center.
    Run(RunOptions),
    /// Runs the dispatch center with a simulated living city feeding it (for a first look).
    Demo(DemoOptions),
    /// Applies the database migrations and exits.
    Migrate(MigrateOptions),
    /// Loads and validates a city folder, then exits.
    CheckCity(CheckCityOptions),
    /// API tokens for senders without a broker (`POST /api/v1/events`, `/api/v1/readings`).
    #[command(subcommand)]
    Token(TokenCommand),
    /// People who log in to the console: operators, supervisors, agency users, admins.
    #[command(subcommand)]
    User(UserCommand),
    /// Citizens' personal data (GDPR).
    #[command(subcommand)]
    Gdpr(GdprCommand),
    /// Rebuilds every incident from the log (events, actions, escalations) in memory and
    /// compares the result with the stored incidents; exits non-zero if they differ.
    Rebuild(RebuildOptions),
}

#[derive(Debug, Args)]
pub struct RebuildOptions {
    #[command(flatten)]
    pub db: TokenDbOptions,
    /// The city folder the log was written with.
    #[arg(long, env = "DISPECER_CITY", default_value = "cities/brasov")]
    pub city: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a user (the first admin, too). The password is asked for on the terminal, or
    /// read as one line from standard input with --password-stdin.
    Add(UserAddOptions),
    /// Lists users (names, roles, agencies; never passwords).
    List(TokenDbOptions),
    /// Sets a user's password (asked for, or --password-stdin) and ends their sessions.
    Passwd(UserPasswdOptions),
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// A dispatch operator: sees everything, acts on any incident.
    Operator,
    /// A shift supervisor.
    Supervisor,
    /// A person of one agency (--agency): sees and acts on its incidents only.
    Agency,
    /// An administrator.
    Admin,
}

#[derive(Debug, Args)]
pub struct UserAddOptions {
    #[command(flatten)]
    pub db: TokenDbOptions,
    /// The city folder (an agency user's agency must be one of its agencies).
    #[arg(long, env = "DISPECER_CITY", default_value = "cities/brasov")]
    pub city: PathBuf,
    /// The login name.
    #[arg(long)]
    pub username: String,
    /// What the user may do.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The agency of an agency user (agency id); required with --role agency, refused otherwise.
    #[arg(long)]
    pub agency: Option<String>,
    /// Read the password as one line from standard input instead of asking for it.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct UserPasswdOptions {
    #[command(flatten)]
    pub db: TokenDbOptions,
    /// The login name.
    #[arg(long)]
    pub username: String,
    /// Read the password as one line from standard input instead of asking for it.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum GdprCommand {
    /// Erases a citizen's contact details from every report they left (the reports and their
    /// places stay, with nothing that leads back to the person), and says how many.
    Erase(GdprEraseOptions),
}

#[derive(Debug, Args)]
pub struct GdprEraseOptions {
    #[command(flatten)]
    pub db: TokenDbOptions,
    /// The citizen's e-mail address (any case).
    #[arg(long, required_unless_present = "phone")]
    pub email: Option<String>,
    /// The citizen's phone number (compared by its digits).
    #[arg(long)]
    pub phone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Creates a token and prints it once (only its hash is stored).
    Create(TokenCreateOptions),
    /// Lists tokens (their prefixes and scopes, never the tokens).
    List(TokenDbOptions),
    /// Revokes the tokens with this prefix.
    Revoke(TokenRevokeOptions),
}

#[derive(Debug, Args)]
pub struct TokenDbOptions {
    /// The database.
    #[arg(
        long,
        env = "DISPECER_DATABASE_URL",
        default_value = "sqlite://dispecer-data/dispecer.sqlite"
    )]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct TokenCreateOptions {
    #[command(flatten)]
    pub db: TokenDbOptions,
    /// The city folder (the operator must be one of its agencies).
    #[arg(long, env = "DISPECER_CITY", default_value = "cities/brasov")]
    pub city: PathBuf,
    /// A utility operator (agency id) that may send events.
    #[arg(
        long,
        conflicts_with_all = ["readings", "acts_for", "dispatcher"],
        required_unless_present_any = ["readings", "acts_for", "dispatcher", "citizens_app", "metrics"]
    )]
    pub operator: Option<String>,
    /// A sensor gateway that may send readings of any of the city's sensors.
    #[arg(long, conflicts_with_all = ["acts_for", "dispatcher"])]
    pub readings: bool,
    /// An agency (agency id) that may act on the incidents assigned to it
    /// (`POST /api/v1/incidents/{id}/actions`).
    #[arg(long, conflicts_with = "dispatcher")]
    pub acts_for: Option<String>,
    /// The dispatch center's operators: may act on any incident; on the embedded broker, may
    /// subscribe to the supervisors' escalations and any agency's incidents.
    #[arg(long)]
    pub dispatcher: bool,
    /// A citizens' app that may file reports through Open311 (`POST /open311/v2/requests`,
    /// the token is its `api_key`).
    #[arg(long, conflicts_with_all = ["readings", "acts_for", "dispatcher"])]
    pub citizens_app: bool,
    /// A Prometheus scraper: may read `GET /metrics` and nothing else.
    #[arg(long, conflicts_with_all = ["operator", "readings", "acts_for", "dispatcher", "citizens_app"])]
    pub metrics: bool,
}

#[derive(Debug, Args)]
pub struct TokenRevokeOptions {
    #[command(flatten)]
    pub db: TokenDbOptions,
    /// The token's prefix, as `token list` shows it (e.g. dsp_1a2b3c4d).
    pub prefix: String,
}

/// Options of `run` (and `demo`).
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    /// The city folder.
    #[arg(long, env = "DISPECER_CITY", default_value = "cities/brasov")]
    pub city: PathBuf,
    /// Database: `sqlite://FILE` (the embedded default) or `postgres://…` (TimescaleDB when the
    /// server has the extension).
    #[arg(
        long,
        env = "DISPECER_DATABASE_URL",
        default_value = "sqlite://dispecer-data/dispecer.sqlite"
    )]
    pub database_url: String,
    /// An external MQTT broker, `mqtt://host:port`, or over TLS `mqtts://host:port` (port 8883
    /// when omitted; the system's roots and --mqtt-ca are trusted). Without it, an embedded
    /// broker is started.
    #[arg(long, env = "DISPECER_MQTT_URL")]
    pub mqtt_url: Option<String>,
    /// Where the embedded broker listens (ignored with --mqtt-url).
    #[arg(long, env = "DISPECER_MQTT_LISTEN", default_value = "127.0.0.1:1883")]
    pub mqtt_listen: SocketAddr,
    /// Who may connect to the embedded broker: `tokens` (every client logs in with an API
    /// token: user name = the operator id of an operator's token, anything for a sensor
    /// gateway's) or `none` (anyone who can reach the port). Default: `tokens` for `run`,
    /// `none` for `demo`, whose broker listens on loopback with the simulator inside.
    #[arg(long, env = "DISPECER_MQTT_AUTH", value_enum)]
    pub mqtt_auth: Option<MqttAuth>,
    /// The server's certificate chain (PEM, its own certificate first). With --tls-key, the HTTP
    /// API and dashboards are served over HTTPS only (session cookies `Secure`, answers with
    /// Strict-Transport-Security), and the embedded broker also takes MQTT over TLS on
    /// --mqtt-tls-listen.
    #[arg(long, env = "DISPECER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "DISPECER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where the embedded broker takes MQTT over TLS, with --tls-cert and --tls-key (default
    /// 127.0.0.1:8883; port 0: any free port). Its plain --mqtt-listen stays, for Dispecer's own
    /// clients; bind that one to loopback when the TLS port is the one others reach.
    #[arg(long, env = "DISPECER_MQTT_TLS_LISTEN", requires = "tls_cert")]
    pub mqtt_tls_listen: Option<SocketAddr>,
    /// A CA certificate (PEM) to trust, besides the system's roots, for an external broker at
    /// `mqtts://` (--mqtt-url), e.g. a city's own CA.
    #[arg(long, env = "DISPECER_MQTT_CA", requires = "mqtt_url")]
    pub mqtt_ca: Option<PathBuf>,
    /// Where the HTTP API and dashboards listen (port 0: any free port).
    #[arg(long, env = "DISPECER_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// MQTT client id prefix; the ingest session is `{prefix}-ingest` and must be stable across
    /// restarts so that the broker keeps its messages while Dispecer is down.
    #[arg(long, env = "DISPECER_MQTT_CLIENT_ID", default_value = "dispecer")]
    pub mqtt_client_id: String,
    /// Cluster mode: this instance's name, stable across its restarts (e.g. `a`, `b`). Several
    /// instances on one PostgreSQL database and one external broker (`--mqtt-url`) share the
    /// input as MQTT shared subscriptions (`$share/dispecer/…`, client ids
    /// `{--mqtt-client-id}-{NAME}-ingest`); one leads (runs the engine), the others pass what they
    /// receive to it and take over when it goes away. Not with SQLite.
    #[arg(long, env = "DISPECER_INSTANCE_ID", value_parser = instance_id)]
    pub instance_id: Option<String>,
    /// Cluster mode: the base URL at which the other instances reach this one's HTTP API
    /// (default `http://`, or `https://` with --tls-cert, and the address it listens on). With
    /// --tls-cert it must be `https://`, at a name the certificate is for.
    #[arg(long, env = "DISPECER_CLUSTER_HTTP_URL", requires = "instance_id")]
    pub cluster_http_url: Option<String>,
    /// Cluster mode: a CA certificate (PEM) to trust, besides the system's roots and this
    /// instance's own --tls-cert chain, in the other instances' HTTPS certificates (a follower
    /// forwards writes to the leader's URL).
    #[arg(long, env = "DISPECER_CLUSTER_CA", requires = "instance_id")]
    pub cluster_ca: Option<PathBuf>,
    /// Base map tiles for the dashboards (`https://…/{z}/{x}/{y}.png`); none by default, as a
    /// dispatch center must work offline.
    #[arg(long, env = "DISPECER_TILE_URL")]
    pub tile_url: Option<String>,
    /// The public base URL (e.g. `https://dispecer.brasov.ro`) that public warnings link to:
    /// CAP documents' `web` and the Atom feed's links. Default: the address each request came
    /// to.
    #[arg(long, env = "DISPECER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Days a citizen's contact details are kept after their report (0: until erased).
    #[arg(long, env = "DISPECER_CONTACT_RETENTION_DAYS", default_value_t = 365)]
    pub contact_retention_days: u32,
    /// Days sensor readings are kept (0: forever). On TimescaleDB whole daily chunks are
    /// dropped once entirely older.
    #[arg(long, env = "DISPECER_READINGS_RETENTION_DAYS", default_value_t = 0)]
    pub readings_retention_days: u32,
    /// Once ready, write `{"http": …, "mqtt": …}` to this file (for scripts and tests); with
    /// TLS also `"tls": true` and the embedded broker's `"mqtts"` address.
    #[arg(long, env = "DISPECER_READY_FILE")]
    pub ready_file: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitOptions,
}

/// What one client may take over HTTP (SECURITY.md, "Limits on what comes from outside").
#[derive(Debug, Clone, Args)]
pub struct LimitOptions {
    /// Citizens' reports (`POST /api/v1/reports`, Open311 `POST requests`) per client address
    /// and minute, sustained; beyond it 429 with Retry-After.
    /// (Named for the client: `demo`'s `--reports-per-minute` is the simulated city's pace.)
    #[arg(long, env = "DISPECER_CLIENT_REPORTS_PER_MINUTE", default_value_t = NonZeroU32::new(api::Limits::REPORTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN))]
    pub client_reports_per_minute: NonZeroU32,
    /// Citizens' reports one client address may send at once before the per-minute pace applies.
    #[arg(long, env = "DISPECER_CLIENT_REPORTS_BURST", default_value_t = NonZeroU32::new(api::Limits::REPORTS_BURST).unwrap_or(NonZeroU32::MIN))]
    pub client_reports_burst: NonZeroU32,
    /// Live WebSocket clients of `/api/v1/stream` at once; beyond it 503 with Retry-After.
    #[arg(long, env = "DISPECER_MAX_STREAM_CLIENTS", default_value_t = api::Limits::MAX_STREAM_CLIENTS)]
    pub max_stream_clients: usize,
    /// HTTP requests in progress at once; beyond it 503 at once (not queued).
    #[arg(long, env = "DISPECER_MAX_CONCURRENT_REQUESTS", default_value_t = api::Limits::MAX_CONCURRENT_REQUESTS, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u64).range(1..), |n| usize::try_from(n).unwrap_or(usize::MAX)))]
    pub max_concurrent_requests: usize,
    /// Seconds one HTTP request may take (a WebSocket only until its upgrade); then 503.
    #[arg(long, env = "DISPECER_REQUEST_TIMEOUT_S", default_value_t = api::Limits::REQUEST_TIMEOUT_S, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_s: u64,
    /// Addresses of reverse proxies whose `X-Forwarded-For` names the client and whose
    /// `X-Forwarded-Proto: https` turns on Strict-Transport-Security (comma-separated; none by
    /// default: every client is the connection's peer).
    #[arg(
        long = "trusted-proxy",
        env = "DISPECER_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
    /// MQTT messages one sender (the utility, traffic counter or agency its topic names) may
    /// publish a minute, sustained; beyond it dead letters "rate limit". The citizens' topic,
    /// which names no sender, shares 10 times this.
    #[arg(long, env = "DISPECER_MQTT_SENDER_PER_MINUTE", default_value_t = NonZeroU32::new(mqtt::SenderRate::PER_MINUTE).unwrap_or(NonZeroU32::MIN))]
    pub mqtt_sender_per_minute: NonZeroU32,
    /// MQTT messages one sender may publish at once before the per-minute pace applies (also
    /// what a broker delivers at once after an outage).
    #[arg(long, env = "DISPECER_MQTT_SENDER_BURST", default_value_t = NonZeroU32::new(mqtt::SenderRate::BURST).unwrap_or(NonZeroU32::MIN))]
    pub mqtt_sender_burst: NonZeroU32,
}

impl LimitOptions {
    /// The MQTT ingest's allowance per sender.
    pub fn to_mqtt(&self) -> mqtt::SenderRate {
        mqtt::SenderRate {
            per_minute: self.mqtt_sender_per_minute,
            burst: self.mqtt_sender_burst,
        }
    }

    /// The API's limits.
    pub fn to_api(&self) -> api::Limits {
        api::Limits {
            reports_per_minute: self.client_reports_per_minute,
            reports_burst: self.client_reports_burst,
            max_stream_clients: self.max_stream_clients,
            max_concurrent_requests: self.max_concurrent_requests,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_s),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

/// Who may connect to the embedded broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MqttAuth {
    /// Every client logs in with an API token.
    Tokens,
    /// Anyone who can reach the port.
    None,
}

/// Options of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoOptions {
    #[command(flatten)]
    pub run: RunOptions,
    #[command(flatten)]
    pub sim: SimOptions,
}

/// The simulated city of `demo`.
#[derive(Debug, Clone, Args)]
pub struct SimOptions {
    /// Seed of the simulation: the same seed gives the same stream.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Citizen reports per minute.
    #[arg(long, default_value_t = 20.0)]
    pub reports_per_minute: f64,
    /// Utility events per minute.
    #[arg(long, default_value_t = 2.0)]
    pub utility_events_per_minute: f64,
    /// Seconds between two SenML packs of every traffic counter (0: none).
    #[arg(long, default_value_t = 60.0)]
    pub traffic_every_s: f64,
}

#[derive(Debug, Args)]
pub struct MigrateOptions {
    /// The database to migrate.
    #[arg(
        long,
        env = "DISPECER_DATABASE_URL",
        default_value = "sqlite://dispecer-data/dispecer.sqlite"
    )]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct CheckCityOptions {
    /// The city folder.
    #[arg(default_value = "cities/brasov")]
    pub city: PathBuf,
}

/// An instance id: 1 to 64 ASCII letters, digits, `-` or `_` (it goes into MQTT client ids).
fn instance_id(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err("1 to 64 ASCII letters, digits, '-' or '_'".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `user add`: a role is required and must be one of the four; --agency is taken as given
    /// (whether it fits the role is checked when the command runs).
    #[test]
    fn user_add_flags() {
        let add = |args: &[&str]| {
            Cli::try_parse_from(["dispecer", "user", "add"].iter().chain(args)).map(|cli| match cli
                .command
            {
                Command::User(UserCommand::Add(a)) => {
                    (a.username, a.role, a.agency, a.password_stdin)
                }
                other => panic!("parsed as {other:?}"),
            })
        };
        assert_eq!(
            add(&[
                "--username",
                "ioana",
                "--role",
                "agency",
                "--agency",
                "apa-brasov",
                "--password-stdin"
            ])
            .ok(),
            Some((
                "ioana".to_owned(),
                RoleArg::Agency,
                Some("apa-brasov".to_owned()),
                true
            ))
        );
        assert_eq!(
            add(&["--username", "admin", "--role", "admin"]).ok(),
            Some(("admin".to_owned(), RoleArg::Admin, None, false))
        );
        for refused in [
            &["--username", "x"][..],
            &["--role", "operator"][..],
            &["--username", "x", "--role", "root"][..],
        ] {
            assert!(add(refused).is_err(), "{refused:?} must be refused");
        }
    }

    /// The certificate and its key come together; the broker's TLS address, the external
    /// broker's CA and the cluster's CA only with what they belong to.
    #[test]
    fn tls_flags() {
        let run = |args: &[&str]| Cli::try_parse_from(["dispecer", "run"].iter().chain(args));
        assert!(run(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).is_ok());
        assert!(run(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--mqtt-tls-listen",
            "127.0.0.1:0"
        ])
        .is_ok());
        assert!(run(&["--mqtt-url", "mqtts://b:8883", "--mqtt-ca", "ca.pem"]).is_ok());
        assert!(run(&["--instance-id", "a", "--cluster-ca", "ca.pem"]).is_ok());
        for refused in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"][..],
            &["--mqtt-tls-listen", "127.0.0.1:8883"][..],
            &["--mqtt-ca", "ca.pem"][..],
            &["--cluster-ca", "ca.pem"][..],
        ] {
            assert!(run(refused).is_err(), "{refused:?} must be refused");
        }
    }

    /// `token create`: which flags give which token, and which combinations are refused.
    #[test]
    fn token_create_flags() {
        let create = |args: &[&str]| {
            Cli::try_parse_from(["dispecer", "token", "create"].iter().chain(args)).map(|cli| {
                match cli.command {
                    Command::Token(TokenCommand::Create(c)) => {
                        (c.operator, c.readings, c.acts_for, c.dispatcher)
                    }
                    other => panic!("parsed as {other:?}"),
                }
            })
        };
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            create(&["--operator", "apa-brasov"]).ok(),
            Some((some("apa-brasov"), false, None, false))
        );
        assert_eq!(
            create(&["--readings"]).ok(),
            Some((None, true, None, false))
        );
        assert_eq!(
            create(&["--acts-for", "apa-brasov"]).ok(),
            Some((None, false, some("apa-brasov"), false))
        );
        assert_eq!(
            create(&["--dispatcher"]).ok(),
            Some((None, false, None, true))
        );
        for refused in [
            &[][..],
            &["--dispatcher", "--readings"][..],
            &["--acts-for", "a", "--operator", "a"][..],
            &["--acts-for", "a", "--dispatcher"][..],
        ] {
            assert!(create(refused).is_err(), "{refused:?} must be refused");
        }
    }
}
