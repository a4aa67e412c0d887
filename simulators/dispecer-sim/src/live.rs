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
    let mut published: u64 = 0;
    while let Some(message) = generator.next_message(Utc::now()) {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(Duration::from_secs_f64(message.delay_s.min(3600.0))) => {}
        }
        let payload = message.payload.to_string();
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
