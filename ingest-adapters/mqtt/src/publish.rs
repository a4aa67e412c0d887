//! The output side: every committed incident change, to the responsible agency's topic and to
//! those of the agencies informed beside it; every escalation also to the supervisors' topic
//! (`dispecer/v1/out/supervisors/escalations`).

use std::time::Duration;

use rumqttc::{AsyncClient, NetworkOptions, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use engine::{IncidentUpdate, UpdateKind};
use protocol::incident::IncidentFeature;
use protocol::stream::{Change, EscalationDto, StreamFrame};
use protocol::topics;

use crate::{Backoff, Endpoint};

/// How the publisher connects.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// The broker.
    pub endpoint: Endpoint,
    /// Client id.
    pub client_id: String,
}

/// Starts the agencies' publisher: each update from `outbox` is published with QoS 1 on
/// `dispecer/v1/out/agencies/{agency}/incidents` as a stream frame.
pub fn run_agency_publisher(
    options: PublisherOptions,
    mut outbox: mpsc::Receiver<IncidentUpdate>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    let mut mqtt = options.endpoint.options(options.client_id);
    mqtt.set_keep_alive(Duration::from_secs(15))
        .set_clean_session(true);
    // rumqttc queues requests in this channel and keeps unacknowledged QoS 1 messages to resend
    // after a reconnect; when it is full, `publish` waits (back-pressure up to the engine).
    let (client, mut eventloop) = AsyncClient::new(mqtt, 1024);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(5);
    eventloop.set_network_options(network);
    let poll_shutdown = shutdown.clone();
    tracker.spawn(async move {
        let mut backoff = Backoff::new();
        loop {
            let event = tokio::select! {
                () = poll_shutdown.cancelled() => break,
                e = eventloop.poll() => e,
            };
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => backoff.reset(),
                Ok(_) => {}
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "mqtt publisher connection lost");
                    tokio::select! {
                        () = poll_shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    });
    tracker.spawn(async move {
        loop {
            let update = tokio::select! {
                () = shutdown.cancelled() => break,
                u = outbox.recv() => match u { Some(u) => u, None => break },
            };
            publish(&client, &update).await;
        }
        let _ = client.try_disconnect();
    });
}

async fn publish(client: &AsyncClient, update: &IncidentUpdate) {
    let frame = StreamFrame::Incident {
        change: match update.kind {
            UpdateKind::Opened => Change::Opened,
            UpdateKind::Updated => Change::Updated,
        },
        incident: Box::new(IncidentFeature::from(update.incident.as_ref())),
        escalation: update
            .escalation
            .map(|e| EscalationDto::new(&e, &update.incident)),
        // Agencies' topics carry every change of their incidents; filters are the stream's.
        left_filter: false,
    };
    let payload = match serde_json::to_vec(&frame) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "incident frame not serialisable");
            return;
        }
    };
    if update.escalation.is_some() {
        // The supervisors hear of every escalation, before the agencies.
        if let Err(e) = client
            .publish(
                topics::SUPERVISOR_ESCALATIONS,
                QoS::AtLeastOnce,
                false,
                payload.clone(),
            )
            .await
        {
            tracing::error!(error = %e, incident = %update.incident.id, "supervisors' message not queued");
        }
    }
    // The responsible agency, then every agency informed beside it (its routing says why).
    let incident = update.incident.as_ref();
    let recipients = std::iter::once(&incident.agency).chain(
        incident
            .routing
            .informed
            .iter()
            .map(|i| &i.agency)
            .filter(|a| **a != incident.agency),
    );
    for agency in recipients {
        let topic = topics::agency_incidents(agency.as_str());
        if let Err(e) = client
            .publish(topic, QoS::AtLeastOnce, false, payload.clone())
            .await
        {
            tracing::error!(error = %e, incident = %incident.id, agency = %agency, "agency message not queued");
        }
    }
}
