//! The embedded MQTT broker (rumqttd), the default when no `--mqtt-url` is given.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use std::sync::Arc;

use protocol::topics;
use rumqttd::{
    Broker, Config, ConnectionSettings, PublishDecision, RouterConfig, ServerSettings, TopicPolicy,
};
use tokio::sync::{mpsc, oneshot};

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The address is taken (another broker?).
    #[error(
        "cannot listen for MQTT on {addr}: {source}. Another broker may be running there: \
         connect to it with --mqtt-url mqtt://{addr}, or give the embedded broker another address \
         with --mqtt-listen"
    )]
    AddressInUse {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The broker thread could not be started.
    #[error("embedded broker: {0}")]
    Start(String),
}

/// Largest MQTT payload the embedded broker accepts (the adapters' own limit is lower).
const MAX_PAYLOAD: usize = 1024 * 1024;

/// A client's login, handed from the broker's threads to whoever checks it.
#[derive(Debug)]
pub struct LoginRequest {
    /// The client id it connects with.
    pub client_id: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// What it may do, or `None` to refuse the login.
    pub reply: oneshot::Sender<Option<Grant>>,
}

/// What a login may publish and subscribe to on the embedded broker (the same rules
/// `deploy/mosquitto.acl` gives Mosquitto).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Dispecer's own clients: everything.
    Everything,
    /// A utility: publishes its own events (`dispecer/v1/in/utilities/{operator}/events`).
    Utility(String),
    /// An agency: publishes its updates (`dispecer/v1/in/agencies/{agency}/updates`) and
    /// subscribes to its incidents (`dispecer/v1/out/agencies/{agency}/incidents`).
    Agency(String),
    /// A traffic sensor gateway: publishes readings of any counter
    /// (`dispecer/v1/in/traffic/{sensor}`).
    Gateway,
    /// The citizens' reporting app's backend: publishes reports
    /// (`dispecer/v1/in/citizen/reports`).
    CitizensApp,
    /// A dispatcher's system (`token create --dispatcher`), such as the supervisors' pager:
    /// publishes nothing, subscribes to every escalation
    /// (`dispecer/v1/out/supervisors/escalations`) and to any agency's incidents.
    Dispatcher,
}

/// A login's [`Grant`] as the broker applies it: a publish outside it is routed to
/// [`topics::refused`] (acknowledged, kept as a dead letter naming the login), a subscription
/// outside it is refused (SUBACK failure).
#[derive(Debug)]
struct LoginPolicy {
    login: String,
    grant: Grant,
}

impl LoginPolicy {
    fn may_publish(&self, topic: &str) -> bool {
        match &self.grant {
            Grant::Everything => true,
            Grant::Utility(op) => topics::utility_operator(topic) == Some(op.as_str()),
            Grant::Agency(agency) => topics::updating_agency(topic) == Some(agency.as_str()),
            Grant::Gateway => topics::traffic_sensor(topic).is_some(),
            Grant::CitizensApp => topic == topics::CITIZEN_REPORTS,
            Grant::Dispatcher => false,
        }
    }
}

impl TopicPolicy for LoginPolicy {
    fn publish(&self, topic: &str) -> PublishDecision {
        if self.may_publish(topic) {
            PublishDecision::Allow
        } else {
            PublishDecision::Redirect(topics::refused(&self.login, topic))
        }
    }

    fn subscribe(&self, filter: &str) -> bool {
        match &self.grant {
            Grant::Everything => true,
            Grant::Agency(agency) => filter == topics::agency_incidents(agency),
            Grant::Dispatcher => {
                filter == topics::SUPERVISOR_ESCALATIONS
                    || filter
                        .strip_prefix("dispecer/v1/out/agencies/")
                        .and_then(|rest| rest.strip_suffix("/incidents"))
                        .is_some_and(|agency| !agency.is_empty() && !agency.contains(['/', '#']))
            }
            Grant::Utility(_) | Grant::Gateway | Grant::CitizensApp => false,
        }
    }
}

/// Starts rumqttd on `addr` in its own threads. It lives as long as the process. With `logins`,
/// every client must log in, and each login is sent there to be checked (a closed channel or an
/// unanswered request refuses it).
pub fn start(
    addr: SocketAddr,
    logins: Option<mpsc::Sender<LoginRequest>>,
) -> Result<(), BrokerError> {
    // rumqttd logs a failed bind from its own thread and carries on; check first so the
    // operator gets a clear message and the flag to use.
    drop(TcpListener::bind(addr).map_err(|source| BrokerError::AddressInUse { addr, source })?);
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        authorize: None,
        dynamic_filters: true,
    };
    if let Some(logins) = logins {
        connections.set_authorize_handler(move |client_id, username, password| {
            let logins = logins.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                let login = username.clone();
                let request = LoginRequest {
                    client_id,
                    username,
                    password,
                    reply,
                };
                if logins.send(request).await.is_err() {
                    return Err(());
                }
                match answer.await {
                    Ok(Some(Grant::Everything)) => Ok(None),
                    Ok(Some(grant)) => {
                        let policy: Arc<dyn TopicPolicy> = Arc::new(LoginPolicy { login, grant });
                        Ok(Some(policy))
                    }
                    Ok(None) | Err(_) => Err(()),
                }
            }
        });
    }
    let server = ServerSettings {
        name: "v4-embedded".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 500,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded mqtt broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(grant: Grant) -> LoginPolicy {
        LoginPolicy {
            login: "apa-brasov".into(),
            grant,
        }
    }

    #[test]
    fn each_login_publishes_only_on_its_own_topics() {
        let own = topics::utility_events("apa-brasov");
        let other = topics::utility_events("deer-brasov");
        let utility = policy(Grant::Utility("apa-brasov".into()));
        assert_eq!(utility.publish(&own), PublishDecision::Allow);
        assert_eq!(
            utility.publish(&other),
            PublishDecision::Redirect(topics::refused("apa-brasov", &other))
        );
        for topic in [
            topics::CITIZEN_REPORTS.to_owned(),
            topics::traffic("tc-01"),
            topics::agency_updates("apa-brasov"),
            topics::refused("x", &own),
            "dispecer/v1/out/dead-letters".to_owned(),
        ] {
            assert_ne!(utility.publish(&topic), PublishDecision::Allow, "{topic}");
        }

        let agency = policy(Grant::Agency("apa-brasov".into()));
        assert_eq!(
            agency.publish(&topics::agency_updates("apa-brasov")),
            PublishDecision::Allow
        );
        assert_ne!(
            agency.publish(&topics::agency_updates("deer-brasov")),
            PublishDecision::Allow
        );
        assert_ne!(agency.publish(&own), PublishDecision::Allow);

        let gateway = policy(Grant::Gateway);
        assert_eq!(
            gateway.publish(&topics::traffic("tc-01")),
            PublishDecision::Allow
        );
        assert_ne!(
            gateway.publish("dispecer/v1/in/traffic/tc-01/x"),
            PublishDecision::Allow
        );
        assert_ne!(gateway.publish(&own), PublishDecision::Allow);

        let app = policy(Grant::CitizensApp);
        assert_eq!(app.publish(topics::CITIZEN_REPORTS), PublishDecision::Allow);
        assert_ne!(app.publish(&own), PublishDecision::Allow);
    }

    #[test]
    fn only_an_agency_subscribes_and_only_to_its_own_incidents() {
        let agency = policy(Grant::Agency("apa-brasov".into()));
        assert!(agency.subscribe(&topics::agency_incidents("apa-brasov")));
        for filter in [
            topics::agency_incidents("deer-brasov"),
            "dispecer/v1/out/agencies/+/incidents".to_owned(),
            "#".to_owned(),
            topics::REFUSED_FILTER.to_owned(),
            topics::SUPERVISOR_ESCALATIONS.to_owned(),
        ] {
            assert!(!agency.subscribe(&filter), "{filter}");
        }
        for grant in [
            Grant::Utility("apa-brasov".into()),
            Grant::Gateway,
            Grant::CitizensApp,
        ] {
            assert!(!policy(grant).subscribe("#"));
        }
    }

    #[test]
    fn a_dispatcher_reads_escalations_and_every_agencys_incidents_and_publishes_nothing() {
        let dispatcher = policy(Grant::Dispatcher);
        for filter in [
            topics::SUPERVISOR_ESCALATIONS.to_owned(),
            topics::agency_incidents("apa-brasov"),
            "dispecer/v1/out/agencies/+/incidents".to_owned(),
        ] {
            assert!(dispatcher.subscribe(&filter), "{filter}");
        }
        for filter in [
            "#",
            "dispecer/v1/out/#",
            "dispecer/v1/out/agencies/#",
            "dispecer/v1/out/agencies//incidents",
            "dispecer/v1/out/agencies/a/b/incidents",
            "dispecer/v1/out/dead-letters",
            "dispecer/v1/in/#",
        ] {
            assert!(!dispatcher.subscribe(filter), "{filter}");
        }
        assert_ne!(
            dispatcher.publish(topics::CITIZEN_REPORTS),
            PublishDecision::Allow
        );
    }
}
