//! Cluster mode over HTTPS: two instances with one certificate (`--tls-cert`, its chain ending
//! with the test's own CA, which no system trusts) on one Mosquitto and one TimescaleDB. The
//! leader advertises an `https://` URL; a citizen's report filed at the follower is forwarded
//! to it over HTTPS (the follower trusting its own certificate chain) and stored there; the
//! follower's `/api/v1/feeds` counts what the leader took. An instance whose certificate the
//! others could not verify (no CA in the chain, no `--cluster-ca`) does not start.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use e2e::{
    dispecer_bin, dispecer_token, repo_root, Broker, Dispecer, Mosquitto, PgDatabase, TempDir,
    GENEROUS_LIMITS,
};

/// Starts instance `name` with `tls` (`--tls-cert` and `--tls-key` flags).
async fn instance(
    dir: &TempDir,
    db: &PgDatabase,
    broker: &Broker,
    name: &str,
    tls: &[String],
) -> Result<(Dispecer, String)> {
    let mut args: Vec<&str> = GENEROUS_LIMITS.to_vec();
    args.extend(["--instance-id", name]);
    args.extend(tls.iter().map(String::as_str));
    let server = Dispecer::start_with_args(
        dir,
        &db.url,
        broker,
        &repo_root().join("cities/brasov"),
        &args,
    )
    .await?;
    let https = server.http.replacen("http://", "https://", 1);
    Ok((server, https))
}

/// Waits until the instance at `base` has `role` (a follower: and knows the leader); returns its
/// health's `cluster` part.
async fn wait_role(client: &reqwest::Client, base: &str, role: &str) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let health: Value = client
            .get(format!("{base}/api/v1/health"))
            .send()
            .await?
            .json()
            .await?;
        let c = &health["cluster"];
        if c["role"] == role && (role != "follower" || c["leader"].is_string()) {
            return Ok(health["cluster"].clone());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{base} is not {role} within 15 s: {health}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_follower_forwards_to_the_leader_over_https() -> Result<()> {
    let dir = TempDir::new("dispecer-cluster-tls");
    let db = PgDatabase::create().await?;
    let mosquitto = Mosquitto::start().await?;
    let broker = Broker::External(mosquitto.url());
    let crate::tls::Pki { ca, cert, key } = crate::tls::make_pki("Dispecer cluster e2e CA")?;
    let chain = dir.path().join("chain.pem");
    std::fs::write(&chain, format!("{cert}{ca}"))?;
    let key_file = dir.path().join("server.key");
    std::fs::write(&key_file, &key)?;
    let tls = [
        "--tls-cert".to_owned(),
        chain.display().to_string(),
        "--tls-key".to_owned(),
        key_file.display().to_string(),
    ];
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?)
        .timeout(Duration::from_secs(30))
        .build()?;

    let (a, a_url) = instance(&dir, &db, &broker, "a", &tls).await?;
    wait_role(&client, &a_url, "leader").await?;
    let (b, b_url) = instance(&dir, &db, &broker, "b", &tls).await?;
    let follower = wait_role(&client, &b_url, "follower").await?;
    assert_eq!(follower["leader"], a_url.as_str(), "{follower}");

    // A citizen's report at the follower's address: forwarded over HTTPS, stored by the leader.
    let filed = client
        .post(format!("{b_url}/api/v1/reports"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={}", crate::cluster::BOUNDARY),
        )
        .body(crate::cluster::report_form(
            "cl-over-https",
            25.6031,
            45.6447,
        ))
        .send()
        .await?;
    let status = filed.status().as_u16();
    let answer: Value = filed.json().await?;
    assert_eq!(status, 200, "{answer}\n{}", b.log());
    let code = answer["tracking_code"]
        .as_str()
        .context("a tracking code")?;
    let tracked = client
        .get(format!("{a_url}/api/v1/public/reports/{code}"))
        .send()
        .await?;
    assert_eq!(tracked.status().as_u16(), 200);

    // The follower's feeds count what the leader took (the leader's counters, from the store).
    let token = dispecer_token(
        &db.url,
        &[
            "create",
            "--city",
            &repo_root().join("cities/brasov").display().to_string(),
            "--dispatcher",
        ],
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let feeds: Value = client
            .get(format!("{b_url}/api/v1/feeds"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let accepted = feeds["feeds"].as_array().and_then(|f| {
            f.iter()
                .find(|f| f["feed"] == "citizen:web")
                .and_then(|f| f["accepted"].as_u64())
        });
        if accepted == Some(1) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the follower's feeds never showed the leader's report: {feeds}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(b);
    drop(a);

    // Without the CA in the chain and without --cluster-ca, nothing vouches for the certificate:
    // the others could not verify it, and the instance says so at start-up.
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, &cert)?;
    let out = std::process::Command::new(dispecer_bin()?)
        .arg("run")
        .args(["--database-url", &db.url, "--mqtt-url", &mosquitto.url()])
        .arg("--city")
        .arg(repo_root().join("cities/brasov"))
        .args(["--http-addr", "127.0.0.1:0", "--instance-id", "c"])
        .arg("--tls-cert")
        .arg(&leaf)
        .arg("--tls-key")
        .arg(&key_file)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the other instances would refuse") && stderr.contains("--cluster-ca"),
        "{stderr}"
    );
    db.drop_database().await?;
    Ok(())
}
