//! Wiring: city → store → broker → engine → adapters → HTTP, and one shutdown tree.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::serve::ListenerExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use engine::Engine;
use model::CityIndex;
use mqtt::{Credentials, Endpoint, IngestOptions, PublisherOptions};
use store::Store;

use crate::broker::{Grant, LoginRequest};
use crate::config::{MqttAuth, RunOptions, SimOptions};
use crate::tls::ServerTls;

/// How long stopping may take before the process exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Where the embedded broker takes MQTT over TLS when `--mqtt-tls-listen` is not given.
const DEFAULT_MQTT_TLS_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8883);

/// Capacity of the agencies' outbox. When full the engine waits (nothing is skipped).
const OUTBOX: usize = 1024;

/// The user name of Dispecer's own clients on its embedded broker (no operator id has a `$`).
const INTERNAL_USER: &str = "$dispecer";

/// Answers the embedded broker's logins, each with what it may do ([`Grant`]): Dispecer's own
/// clients with this process's password; anyone else with a live API token: a utility's under
/// its operator id, an agency's under its agency id, a sensor gateway's, the citizens' app's and
/// a dispatcher's under any name (a metrics token is for the HTTP API only).
async fn check_logins(
    mut requests: mpsc::Receiver<LoginRequest>,
    store: Store,
    internal: Credentials,
) {
    let internal_hash = store::hash_token(&internal.password);
    while let Some(login) = requests.recv().await {
        let hash = store::hash_token(&login.password);
        let (grant, why) = if login.username == internal.username {
            (
                (hash == internal_hash).then_some(Grant::Everything),
                "internal",
            )
        } else {
            match store.token_scope(&hash).await {
                Ok(Some(scope)) => {
                    if let Some(operator) = scope.strip_prefix("events:") {
                        (
                            (operator == login.username)
                                .then(|| Grant::Utility(operator.to_owned())),
                            "a utility's token is used with its operator id as user name",
                        )
                    } else if let Some(agency) = scope.strip_prefix("agency:") {
                        (
                            (agency == login.username).then(|| Grant::Agency(agency.to_owned())),
                            "an agency's token is used with its agency id as user name",
                        )
                    } else if scope == "readings" {
                        (Some(Grant::Gateway), "sensor gateway")
                    } else if scope == "citizens-app" {
                        (Some(Grant::CitizensApp), "citizens' app")
                    } else if scope == "operator" {
                        (Some(Grant::Dispatcher), "dispatcher")
                    } else {
                        (None, "this token is for the HTTP API only")
                    }
                }
                Ok(None) => (None, "no live token matches the password"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check an mqtt login; refused");
                    (None, "store unavailable")
                }
            }
        };
        if let Some(grant) = &grant {
            tracing::debug!(client_id = %login.client_id, username = %login.username, ?grant, "mqtt login accepted");
        } else {
            tracing::warn!(client_id = %login.client_id, username = %login.username, reason = why, "mqtt login refused");
        }
        let _ = login.reply.send(grant);
    }
}

pub fn check_city(dir: &Path) -> anyhow::Result<()> {
    let city = city::load(dir)?;
    println!(
        "{}: {} districts, {} categories, {} agencies, {} sensor sites: ok",
        dir.display(),
        city.districts.len(),
        city.categories.len(),
        city.agencies.len(),
        city.sensors.len()
    );
    Ok(())
}

pub async fn token(command: crate::config::TokenCommand) -> anyhow::Result<()> {
    use crate::config::TokenCommand;
    match command {
        TokenCommand::Create(c) => {
            let agency_of_city = |agency: &str| -> anyhow::Result<()> {
                let city = city::load(&c.city)?;
                if city.agency(agency).is_none() {
                    bail!(
                        "{agency:?} is not an agency of {}; see agencies.toml",
                        c.city.display()
                    );
                }
                Ok(())
            };
            let scope = if let Some(op) = &c.operator {
                agency_of_city(op)?;
                format!("events:{op}")
            } else if let Some(agency) = &c.acts_for {
                agency_of_city(agency)?;
                format!("agency:{agency}")
            } else if c.dispatcher {
                "operator".to_owned()
            } else if c.citizens_app {
                "citizens-app".to_owned()
            } else if c.metrics {
                "metrics".to_owned()
            } else {
                "readings".to_owned()
            };
            prepare_sqlite_dir(&c.db.database_url)?;
            let store = Store::connect(&c.db.database_url).await?;
            let secret: [u8; 32] = rand::random();
            let token = format!(
                "dsp_{}",
                secret
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let prefix = &token[..12];
            store
                .add_token(
                    &store::hash_token(&token),
                    prefix,
                    &scope,
                    chrono::Utc::now(),
                )
                .await?;
            store.close().await;
            eprintln!("token {prefix}… for {scope} (shown once; keep it secret):");
            println!("{token}");
        }
        TokenCommand::List(c) => {
            let store = Store::connect(&c.database_url).await?;
            for t in store.tokens().await? {
                let state = t
                    .revoked_at
                    .map(|r| format!("revoked {}", r.to_rfc3339()))
                    .unwrap_or_else(|| "live".into());
                println!(
                    "{}  {:<24}  created {}  {state}",
                    t.prefix,
                    t.scope,
                    t.created_at.to_rfc3339()
                );
            }
            store.close().await;
        }
        TokenCommand::Revoke(c) => {
            let store = Store::connect(&c.db.database_url).await?;
            let n = store.revoke_tokens(&c.prefix, chrono::Utc::now()).await?;
            store.close().await;
            if n == 0 {
                bail!("no live token has the prefix {:?}", c.prefix);
            }
            println!("revoked {n} token(s)");
        }
    }
    Ok(())
}

pub async fn gdpr(command: crate::config::GdprCommand) -> anyhow::Result<()> {
    use crate::config::GdprCommand;
    match command {
        GdprCommand::Erase(o) => {
            let store = Store::connect(&o.db.database_url).await?;
            let n = store
                .erase_contacts(&store::ContactSelector {
                    email: o.email.clone(),
                    phone: o.phone.clone(),
                })
                .await?;
            store.close().await;
            tracing::info!(erased = n, "citizen contact details erased on request");
            println!("erased the contact details of {n} report(s); the reports themselves stay");
        }
    }
    Ok(())
}

/// Keeps the city's files as loaded (every `.toml` and `.geojson` of the folder and its
/// `jurisdictions/`), when they differ from the last configuration kept.
async fn record_city_config(store: &Store, dir: &Path, city: &str) -> anyhow::Result<()> {
    let mut files = std::collections::BTreeMap::new();
    for sub in [dir.to_path_buf(), dir.join("jurisdictions")] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let kept = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "toml" || e == "geojson");
            if kept && path.is_file() {
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                files.insert(name, text);
            }
        }
    }
    let files = serde_json::to_string(&files)?;
    let config = store::CityConfig {
        loaded_at: chrono::Utc::now(),
        city: city.to_owned(),
        digest: store::hash_token(&files),
        files,
    };
    if store.record_city_config(&config).await? {
        tracing::info!(city, digest = %config.digest, "city configuration kept (new or changed)");
    }
    Ok(())
}

/// How often the retention task runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Deletes expired personal data and readings now and every [`RETENTION_EVERY`].
async fn retention(
    store: Store,
    contact_days: u32,
    readings_days: u32,
    shutdown: CancellationToken,
) {
    let days = |d: u32| (d > 0).then(|| chrono::Utc::now() - chrono::Duration::days(i64::from(d)));
    loop {
        match store
            .apply_retention(days(contact_days), days(readings_days))
            .await
        {
            Ok(done) if done != store::Retained::default() => tracing::info!(
                contacts = done.contacts,
                photos = done.photos,
                readings = done.readings,
                contact_days,
                readings_days,
                "retention: expired data deleted"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention run failed; next in an hour"),
        }
        match store.delete_expired_sessions(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot delete expired sessions"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}

pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    prepare_sqlite_dir(database_url)?;
    let store = Store::connect(database_url).await?;
    println!("database is up to date ({})", store.backend());
    store.close().await;
    Ok(())
}

/// Creates the folder of a `sqlite://` database file.
pub(crate) fn prepare_sqlite_dir(url: &str) -> anyhow::Result<()> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    Ok(())
}

pub async fn run(opts: RunOptions, sim: Option<SimOptions>) -> anyhow::Result<()> {
    let city_dir = opts.city.clone();
    let city = tokio::task::spawn_blocking(move || city::load(&city_dir)).await??;
    tracing::info!(city = %city.id, districts = city.districts.len(), agencies = city.agencies.len(), "city loaded");
    let city = Arc::new(CityIndex::new(city));

    prepare_sqlite_dir(&opts.database_url)?;
    let store = Store::connect(&opts.database_url).await.context("store")?;
    tracing::info!(backend = %store.backend(), "store ready");
    if let Some(instance) = &opts.instance_id {
        if store.backend() == store::Backend::Sqlite {
            bail!(
                "--instance-id {instance}: cluster mode needs a PostgreSQL database \
                 (--database-url postgres://…); an SQLite Dispecer is a single instance"
            );
        }
        if opts.mqtt_url.is_none() {
            bail!(
                "--instance-id {instance}: cluster mode needs the external broker the instances \
                 share (--mqtt-url mqtt://host:port)"
            );
        }
    }
    // In cluster mode every instance has its own sessions: `{--mqtt-client-id}-{instance}-…`.
    let client_base = match &opts.instance_id {
        Some(instance) => format!("{}-{instance}", opts.mqtt_client_id),
        None => opts.mqtt_client_id.clone(),
    };
    record_city_config(&store, &opts.city, city.city().id.as_str()).await?;
    let demo_users = match sim {
        Some(_) => crate::users::demo_users(&store, city.city()).await?,
        None => Vec::new(),
    };

    // A bad certificate or key stops Dispecer here, naming the file, before anything listens.
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = ServerTls::load(cert, key).context("--tls-cert/--tls-key")?;
            tracing::info!(cert = %cert.display(), "tls on for http and the embedded mqtt broker");
            Some(tls)
        }
        _ => None,
    };
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // The embedded broker's TLS port, when it has one.
    let mut mqtts_addr = None;

    let endpoint = match &opts.mqtt_url {
        Some(url) => Endpoint::parse(url, opts.mqtt_ca.as_deref())?,
        None => {
            let auth = opts.mqtt_auth.unwrap_or(if sim.is_some() {
                MqttAuth::None
            } else {
                MqttAuth::Tokens
            });
            let internal = match auth {
                MqttAuth::Tokens => {
                    // Dispecer's own clients log in with a password made for this process.
                    let secret: [u8; 32] = rand::random();
                    let internal = Credentials {
                        username: INTERNAL_USER.to_owned(),
                        password: secret.iter().map(|b| format!("{b:02x}")).collect(),
                    };
                    let (logins, requests) = mpsc::channel(64);
                    tokio::spawn(check_logins(requests, store.clone(), internal.clone()));
                    crate::broker::start(opts.mqtt_listen, Some(logins))?;
                    Some(internal)
                }
                MqttAuth::None => {
                    crate::broker::start(opts.mqtt_listen, None)?;
                    None
                }
            };
            tracing::info!(listen = %opts.mqtt_listen, auth = ?auth, "embedded mqtt broker started");
            if let Some(tls) = &tls {
                let addr = opts.mqtt_tls_listen.unwrap_or(DEFAULT_MQTT_TLS_LISTEN);
                let tcp = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                    format!(
                        "cannot listen for MQTT over TLS on {addr}; choose another address with \
                         --mqtt-tls-listen"
                    )
                })?;
                let addr = tcp.local_addr()?;
                crate::tls::relay_mqtt(
                    tcp,
                    tls,
                    opts.mqtt_listen,
                    shutdown.child_token(),
                    &tracker,
                );
                tracing::info!(listen = %addr, broker = %opts.mqtt_listen, "embedded mqtt broker takes tls");
                mqtts_addr = Some(addr);
            }
            Endpoint::new(opts.mqtt_listen.ip().to_string(), opts.mqtt_listen.port())
                .with_credentials(internal)
        }
    };

    if sim.is_some() && endpoint.tls.is_some() {
        bail!("demo: the simulated city speaks plain MQTT; give an mqtt:// broker, not mqtts://");
    }

    let http = tokio::net::TcpListener::bind(opts.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen for HTTP on {}; choose another address with --http-addr",
                opts.http_addr
            )
        })?;
    let http_addr = http.local_addr()?;
    let (outbox_tx, outbox_rx) = mpsc::channel(OUTBOX);
    let cluster_ingest = opts
        .instance_id
        .as_ref()
        .map(|instance| mqtt::ClusterIngest {
            group: CLUSTER_GROUP.to_owned(),
            instance_id: instance.clone(),
        });
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(None);
    // Cluster mode: the URL the others reach this instance at (https with TLS), and whom the
    // forwards to the leader trust; a certificate the others would refuse stops it here.
    let cluster_trust = match &opts.instance_id {
        Some(_) => {
            let url = crate::cluster_tls::advertised_url(
                opts.cluster_http_url.as_deref(),
                http_addr,
                tls.is_some(),
            )?;
            let trust = crate::cluster_tls::trust(opts.cluster_ca.as_deref(), tls.as_ref())?;
            if let Some(tls) = &tls {
                crate::cluster_tls::check_own_certificate(&url, tls, &trust)?;
            }
            Some((url, trust))
        }
        None => None,
    };
    let engine = match (&opts.instance_id, &cluster_ingest, &cluster_trust) {
        (Some(instance), Some(cluster), Some((http_url, _))) => {
            let http_url = http_url.clone();
            if http_addr.ip().is_unspecified() && opts.cluster_http_url.is_none() {
                tracing::warn!(%http_url, "the other instances cannot reach this address; give --cluster-http-url");
            }
            let engine = Engine::standby(
                engine::EngineOptions::default(),
                city.clone(),
                store.clone(),
                shutdown.child_token(),
                &tracker,
            );
            let membership =
                cluster::Membership::join(store.clone(), instance, &client_base, &http_url)
                    .await
                    .context("cluster")?;
            tracker.spawn(crate::clustered::run(
                membership,
                crate::clustered::Duties {
                    engine: engine.clone(),
                    store: store.clone(),
                    endpoint: endpoint.clone(),
                    client_base: client_base.clone(),
                    cluster: cluster.clone(),
                    http_url,
                    outbox_tx,
                    outbox_rx,
                    leader: leader_tx,
                },
                shutdown.clone(),
                tracker.clone(),
            ));
            engine
        }
        _ => {
            let engine = Engine::start(
                city.clone(),
                store.clone(),
                Some(outbox_tx),
                shutdown.child_token(),
                &tracker,
            )
            .await?;
            start_leader_duties(
                &engine,
                &store,
                &endpoint,
                &client_base,
                outbox_rx,
                &shutdown,
                &tracker,
            )
            .await?;
            engine
        }
    };
    let (mut ready, _ingest_stats) = mqtt::run_ingest(
        IngestOptions {
            endpoint: endpoint.clone(),
            client_id: format!("{client_base}-ingest"),
            cluster: cluster_ingest,
            rate: opts.limits.to_mqtt(),
        },
        engine.clone(),
        store.clone(),
        shutdown.child_token(),
        &tracker,
    );

    if store.backend() == store::Backend::Timescale {
        tracing::info!(
            "TimescaleDB: readings retention drops whole chunks with drop_chunks from Dispecer's \
             own task (the Apache-licensed build has no compression or policy jobs)"
        );
    }
    tracker.spawn(retention(
        store.clone(),
        opts.contact_retention_days,
        opts.readings_retention_days,
        shutdown.child_token(),
    ));

    let state = api::AppState::new(
        engine.clone(),
        store.clone(),
        opts.tile_url.clone(),
        shutdown.child_token(),
    )
    .plain_http_on_loopback(http_addr.ip().is_loopback() && tls.is_none())
    .served_over_tls(tls.is_some())
    .with_public_url(opts.public_url.clone())
    .with_limits(opts.limits.to_api());
    let state = match (&opts.instance_id, cluster_trust) {
        (Some(instance), Some((_, trust))) => state.with_cluster(api::ClusterView {
            instance: instance.clone(),
            leader: leader_rx,
            trust: trust.into_iter().map(|c| c.to_vec()).collect(),
        })?,
        _ => state,
    };
    let http_shutdown = shutdown.child_token();
    let app = api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    match &tls {
        None => {
            tracker.spawn(async move {
                let served = axum::serve(http, app)
                    .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "http server failed");
                }
            });
        }
        Some(tls) => {
            // `tap_io` (doing nothing) gives the listener axum's `ConnectInfo<SocketAddr>`, which
            // the limits and the audit trail read the client's address from.
            let https = crate::tls::TlsListener::new(http, tls, shutdown.child_token(), &tracker)?
                .tap_io(|_| {});
            tracker.spawn(async move {
                let served = axum::serve(https, app)
                    .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "https server failed");
                }
            });
        }
    }

    // Ready means the input topics are subscribed: what is published from now on is ours.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    tokio::select! {
        r = ready.wait_for(|r| *r) => { r.context("mqtt ingest stopped before it was ready")?; }
        () = &mut signal => { shutdown.cancel(); bail!("interrupted before ready"); }
    }
    if let Some(file) = &opts.ready_file {
        let mut doc = serde_json::json!({"http": http_addr.to_string(), "mqtt": endpoint.to_string(), "pid": std::process::id()});
        if tls.is_some() {
            doc["tls"] = true.into();
        }
        if let Some(addr) = mqtts_addr {
            doc["mqtts"] = addr.to_string().into();
        }
        std::fs::write(file, doc.to_string())
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(dashboard = %format!("{scheme}://{http_addr}/"), mqtt = %endpoint, mqtts = ?mqtts_addr, "dispecer ready");
    for line in &demo_users {
        eprintln!("{line}");
    }

    if let Some(sim) = sim {
        let sim_city = Arc::new(city.city().clone());
        let options = dispecer_sim::live::LiveOptions {
            seed: sim.seed,
            reports_per_minute: sim.reports_per_minute,
            utility_events_per_minute: sim.utility_events_per_minute,
            host: endpoint.host.clone(),
            port: endpoint.port,
            client_id: format!("{client_base}-demo-sim"),
            login: endpoint
                .credentials
                .as_ref()
                .map(|c| (c.username.clone(), c.password.clone())),
            traffic_every_s: sim.traffic_every_s,
            utilities_http: None,
        };
        tracker.spawn(dispecer_sim::live::run(
            sim_city,
            options,
            shutdown.child_token(),
        ));
        tracing::info!(seed = sim.seed, "simulated city started");
    }

    signal.await;
    tracing::info!("stopping");
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop in time");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The MQTT shared subscriptions' group of a cluster's instances (`$share/dispecer/…`).
const CLUSTER_GROUP: &str = "dispecer";

/// What only the instance whose engine decides runs: the congestion detector (derived events
/// through the engine) and the agencies' publisher (the engine's outbox).
pub(crate) async fn start_leader_duties(
    engine: &Engine,
    store: &Store,
    endpoint: &Endpoint,
    client_base: &str,
    outbox_rx: mpsc::Receiver<engine::IncidentUpdate>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    // The agencies' publisher first: the engine waits on its queue (nothing it announces is
    // dropped), and the congestion detector below asks the engine, which may have a whole
    // backlog of escalations to announce as it starts.
    mqtt::run_agency_publisher(
        PublisherOptions {
            endpoint: endpoint.clone(),
            client_id: format!("{client_base}-out"),
        },
        outbox_rx,
        shutdown.child_token(),
        tracker,
    );
    // Congestion from the counters' readings, as derived events through the engine.
    engine::traffic::start(
        engine,
        store.clone(),
        |change, city, at| {
            protocol::derived::congestion_event(change, city, at).map_err(|e| e.to_string())
        },
        shutdown.child_token(),
        tracker,
    );
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
