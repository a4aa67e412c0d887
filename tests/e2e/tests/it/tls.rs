//! TLS (`--tls-cert`/`--tls-key`): the HTTP API over HTTPS only, with Strict-Transport-Security;
//! citizens' reports over MQTT with TLS on the embedded broker's TLS port; clients that do not
//! trust the certificate refused; a bad key file named at start-up; and Dispecer itself as a
//! TLS client of an external broker (Mosquitto, `mqtts://` with `--mqtt-ca`). The certificates
//! are made here, for this run (rcgen): a CA of the test's own and a server certificate for
//! `localhost` and 127.0.0.1 signed by it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use serde_json::Value;

use e2e::{
    citizen_report, dispecer_bin, free_port, repo_root, Broker, Dispecer, Mosquitto, TempDir,
    GENEROUS_LIMITS,
};

const REPORTS: &str = "dispecer/v1/in/citizen/reports";

/// A certificate authority and a server certificate it signed, as PEM.
pub(crate) struct Pki {
    pub(crate) ca: String,
    pub(crate) cert: String,
    pub(crate) key: String,
}

/// A CA of its own (`name`) and a server certificate for localhost and 127.0.0.1 (also the
/// cluster's TLS test's).
pub(crate) fn make_pki(name: &str) -> Result<Pki> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca = ca.self_signed(&ca_key)?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "dispecer e2e");
    let key = KeyPair::generate()?;
    let cert = server.signed_by(&key, &ca, &ca_key)?;
    Ok(Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// An HTTPS client trusting only `ca` (PEM).
fn https_client(ca: &str) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?)
        .timeout(Duration::from_secs(15))
        .build()?)
}

/// Connects over TLS to 127.0.0.1:`port` trusting only `ca`, publishes `payload` on `topic` with
/// QoS 1 and waits for the broker's PubAck. An error when the TLS connection is refused.
async fn publish_over_tls(port: u16, ca: &str, topic: &str, payload: String) -> Result<()> {
    let mut opts = MqttOptions::new(
        format!("e2e-tls-{}", uuid::Uuid::now_v7().simple()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_transport(Transport::tls(ca.as_bytes().to_vec(), None, None));
    let (client, mut eventloop) = AsyncClient::new(opts, 8);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await?;
    let acked = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("mqtt over tls: {e}")),
            }
        }
    })
    .await
    .context("no PubAck within 30 s")?;
    let _ = client.try_disconnect();
    acked
}

/// Waits until the public incidents (over `client` at `base`) include one of `category`.
async fn public_incident(client: &reqwest::Client, base: &str, category: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let doc: Value = client
            .get(format!("{base}/api/v1/public/incidents"))
            .send()
            .await?
            .json()
            .await?;
        let found = doc["features"]
            .as_array()
            .is_some_and(|f| f.iter().any(|i| i["properties"]["category"] == category));
        if found {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no public {category} incident within 20 s: {doc}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn https_and_mqtt_over_tls_on_the_embedded_broker() -> Result<()> {
    let dir = TempDir::new("dispecer-tls");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let pki = make_pki("Dispecer e2e CA")?;
    let stranger = make_pki("Someone else's CA")?;
    let cert = write(dir.path(), "server.pem", &pki.cert)?;
    let key = write(dir.path(), "server.key", &pki.key)?;
    let mqtts_port = free_port();
    let mut args: Vec<String> = GENEROUS_LIMITS.iter().map(|a| (*a).to_owned()).collect();
    args.extend([
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
        "--mqtt-tls-listen".to_owned(),
        format!("127.0.0.1:{mqtts_port}"),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Dispecer::start_with_args(
        &dir,
        &db,
        &Broker::Embedded(free_port()),
        &repo_root().join("cities/brasov"),
        &args,
    )
    .await?;
    let https = server.http.replacen("http://", "https://", 1);

    // HTTPS with a client trusting the CA: 200 and Strict-Transport-Security.
    let client = https_client(&pki.ca)?;
    let health = client.get(format!("{https}/api/v1/health")).send().await?;
    assert_eq!(health.status().as_u16(), 200);
    let hsts = health
        .headers()
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(hsts.starts_with("max-age="), "{hsts:?}");

    // Plain HTTP to the same port gets no answer, and a client trusting another CA is refused.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    assert!(plain
        .get(format!("{}/api/v1/health", server.http))
        .send()
        .await
        .is_err());
    let refused = https_client(&stranger.ca)?
        .get(format!("{https}/api/v1/health"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // A citizen's report over MQTT with TLS on the embedded broker's TLS port is stored.
    let report = citizen_report(
        &format!("e2e-tls-{}", uuid::Uuid::now_v7()),
        "pothole",
        25.5887,
        45.6419,
    );
    publish_over_tls(mqtts_port, &pki.ca, REPORTS, report.clone()).await?;
    public_incident(&client, &https, "pothole").await?;
    // A client trusting another CA never gets to publish.
    assert!(publish_over_tls(mqtts_port, &stranger.ca, REPORTS, report)
        .await
        .is_err());

    // SIGTERM: both TLS listeners stop with the rest.
    let log = server.stop();
    assert!(
        log.contains("stopped") && !log.contains("did not stop in time"),
        "{log}"
    );
    Ok(())
}

/// A key file that is not a key stops Dispecer at start-up with a message naming it.
#[tokio::test]
async fn a_bad_key_file_is_named_at_start_up() -> Result<()> {
    let dir = TempDir::new("dispecer-tls-bad");
    let pki = make_pki("Dispecer e2e CA")?;
    let cert = write(dir.path(), "server.pem", &pki.cert)?;
    let key = write(
        dir.path(),
        "broken.key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n",
    )?;
    let out = std::process::Command::new(dispecer_bin()?)
        .arg("run")
        .arg("--database-url")
        .arg(format!("sqlite://{}/d.sqlite", dir.path().display()))
        .arg("--city")
        .arg(repo_root().join("cities/brasov"))
        .args(["--http-addr", "127.0.0.1:0", "--mqtt-auth", "none"])
        .arg("--mqtt-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("broken.key"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

/// Dispecer as a TLS client of an external broker: Mosquitto with only a TLS listener,
/// `--mqtt-url mqtts://…` and `--mqtt-ca` (the test's CA, which no system trusts).
#[tokio::test]
async fn an_external_broker_over_tls() -> Result<()> {
    let dir = TempDir::new("dispecer-tls-mosquitto");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let pki = make_pki("Dispecer e2e CA")?;
    let ca = write(dir.path(), "ca.pem", &pki.ca)?;
    let mosquitto = Mosquitto::start_with_tls(&pki.cert, &pki.key).await?;
    let url = format!("mqtts://127.0.0.1:{}", mosquitto.port());
    let mut args: Vec<String> = GENEROUS_LIMITS.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["--mqtt-ca".to_owned(), ca.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Dispecer::start_with_args(
        &dir,
        &db,
        &Broker::External(url),
        &repo_root().join("cities/brasov"),
        &args,
    )
    .await?;
    let report = citizen_report(
        &format!("e2e-mqtts-{}", uuid::Uuid::now_v7()),
        "pothole",
        25.5887,
        45.6419,
    );
    publish_over_tls(mosquitto.port(), &pki.ca, REPORTS, report).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    public_incident(&client, &server.http, "pothole").await?;
    drop(server);
    Ok(())
}
