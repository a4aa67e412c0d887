//! A living city over MQTT: publishes the generator's stream in real time.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio_util::sync::CancellationToken;

use model::City;

use crate::generator::Generator;

/// Options of the live city.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Seed: the same seed gives the same stream.
    pub seed: u64,
    /// Citizen reports per minute.
    pub reports_per_minute: f64,
    /// Utility events per minute.
    pub utility_events_per_minute: f64,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id.
    pub client_id: String,
    /// User name and password, when the broker asks for them.
    pub login: Option<(String, String)>,
    /// Seconds between two packs of every traffic counter (0: no traffic readings).
    pub traffic_every_s: f64,
    /// Send the utilities' events over HTTP instead of MQTT: Dispecer's base URL
    /// (`http://host:port`) and a token per operator (`operator` → token).
    pub utilities_http: Option<(String, std::collections::HashMap<String, String>)>,
}

/// Publishes until `shutdown`. Messages go out with QoS 1; rumqttc resends unacknowledged ones
/// after a reconnect.
pub async fn run(city: Arc<City>, options: LiveOptions, shutdown: CancellationToken) {
    let mut mqtt = MqttOptions::new(
        options.client_id.clone(),
        options.host.clone(),
        options.port,
    );
    mqtt.set_keep_alive(Duration::from_secs(15));
    if let Some((user, password)) = &options.login {
        mqtt.set_credentials(user.clone(), password.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, 256);
    let poll_shutdown = shutdown.clone();
    let poller = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = poll_shutdown.cancelled() => break,
                e = eventloop.poll() => if let Err(e) = e {
                    tracing::debug!(error = %e, "simulator connection lost");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    let mut generator = Generator::new(
        &city,
        options.seed,
        options.reports_per_minute,
        options.utility_events_per_minute,
    );
    if options.traffic_every_s > 0.0 {
        tokio::spawn(traffic(
            city.clone(),
            options.seed,
            options.traffic_every_s,
            client.clone(),
            shutdown.clone(),
        ));
    }
    let http = reqwest::Client::new();
    let mut published: u64 = 0;
    while let Some(message) = generator.next_message(Utc::now()) {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(Duration::from_secs_f64(message.delay_s.min(3600.0))) => {}
        }
        let payload = message.payload.to_string();
        if let (Some((base, tokens)), Some(operator)) = (
            &options.utilities_http,
            protocol::topics::utility_operator(&message.topic),
        ) {
            post_event(&http, base, tokens.get(operator), operator, payload).await;
            published += 1;
            continue;
        }
        if let Err(e) = client
            .publish(message.topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            tracing::warn!(error = %e, "simulator could not publish");
            break;
        }
        published += 1;
        if published % 100 == 0 {
            tracing::info!(published, "simulated city");
        }
    }
    let _ = client.try_disconnect();
    poller.abort();
}

/// Publishes a pack of every traffic counter every `every_s` seconds until `shutdown` (and, now
/// and then, the report of a burst main that jams a counter's road: see [`crate::traffic`]).
async fn traffic(
    city: Arc<City>,
    seed: u64,
    every_s: f64,
    client: AsyncClient,
    shutdown: CancellationToken,
) {
    let mut generator = crate::traffic::TrafficGenerator::new(&city, seed);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(every_s.max(1.0)));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (topic, pack) in generator.messages(Utc::now(), every_s) {
            if let Err(e) = client
                .publish(topic, QoS::AtLeastOnce, false, pack.to_string())
                .await
            {
                tracing::warn!(error = %e, "simulator could not publish a traffic pack");
                return;
            }
        }
    }
}

/// Sends one utility event to `POST {base}/api/v1/events` with the operator's token; a refusal
/// or a failure is logged (the live city goes on).
async fn post_event(
    http: &reqwest::Client,
    base: &str,
    token: Option<&String>,
    operator: &str,
    payload: String,
) {
    let Some(token) = token else {
        tracing::warn!(operator, "no HTTP token for this operator; event not sent");
        return;
    };
    let sent = http
        .post(format!("{}/api/v1/events", base.trim_end_matches('/')))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(operator, status = %r.status(), "HTTP event refused"),
        Err(e) => tracing::warn!(operator, error = %e, "HTTP event not sent"),
    }
}
