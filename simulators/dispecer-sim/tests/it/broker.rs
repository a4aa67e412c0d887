//! Record and replay through a real broker: Mosquitto on a port of the test's own.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;

use dispecer_sim::mqtt::{Broker, Publisher};
use dispecer_sim::record::{self, Pace};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A Mosquitto process, stopped when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn mosquitto() -> Mosquitto {
    // Mosquitto cannot report a port it chose; take a free one from the kernel.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"));
    let dir = std::env::temp_dir().join(format!("dispecer-sim-mq-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{MOSQUITTO}: {e} (scripts/deps.sh installs it)"));
    let broker = Mosquitto {
        child,
        port,
        _dir: TempDir(dir),
    };
    // Ready when it accepts connections.
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return broker;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("mosquitto did not listen on {port}");
}

#[tokio::test]
async fn record_then_replay_through_mosquitto() {
    let mq = mosquitto().await;
    let broker = Broker {
        host: "127.0.0.1".into(),
        port: mq.port,
        login: None,
    };
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let b = broker.clone();
    let recorder = tokio::spawn(async move {
        let mut out = Vec::new();
        let n = record::record(
            &b,
            "sim-test-recorder",
            &["dispecer/v1/in/#".to_owned()],
            &mut out,
            Path::new("memory"),
            Some(6),
            Some(ready_tx),
            CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("record: {e}"));
        (n, out)
    });
    tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .unwrap_or_else(|_| panic!("the recorder never subscribed"))
        .unwrap_or_else(|_| panic!("the recorder stopped"));

    let sent: Vec<(&str, Vec<u8>)> = vec![
        (
            "dispecer/v1/in/citizen/reports",
            b"{\"a\": \"\xc4\x83\"}".to_vec(),
        ),
        (
            "dispecer/v1/in/traffic/tc-garii-n",
            vec![0x9f, 0xa2, 0xff, 0x00],
        ),
        (
            "dispecer/v1/in/utilities/apa-brasov/events",
            b"<alert/>".to_vec(),
        ),
    ];
    let mut publisher = Publisher::connect(&broker, "sim-test-pub", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (topic, payload) in &sent {
        publisher
            .publish(topic, payload.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery = publisher.finish(Duration::from_secs(10)).await;
    assert_eq!((delivery.sent, delivery.acked), (3, 3), "{delivery:?}");

    // Replay the same messages 0.2 s apart at 2×: the recorder gets them a second time.
    let publisher = Publisher::connect(&broker, "sim-test-replay", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first_pass: Vec<record::Recorded> = sent
        .iter()
        .enumerate()
        .map(|(i, (topic, payload))| record::Recorded {
            t: chrono::DateTime::UNIX_EPOCH + chrono::Duration::milliseconds(200 * i as i64),
            topic: (*topic).to_owned(),
            payload: payload.clone(),
        })
        .collect();
    let summary = record::replay(
        &first_pass,
        publisher,
        Pace::Speed(2.0),
        false,
        &ProgressBar::hidden(),
        CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.messages, 3);
    assert_eq!(summary.errors(), 0, "{summary:?}");
    assert!(
        summary.seconds >= 0.2,
        "0.4 s of spacing at 2× takes 0.2 s: {summary:?}"
    );

    let (n, out) = tokio::time::timeout(Duration::from_secs(10), recorder)
        .await
        .unwrap_or_else(|_| panic!("the recorder did not get six messages"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 6);
    let lines = record::read(out.as_slice(), Path::new("memory")).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(&str, &[u8])> = lines
        .iter()
        .map(|r| (r.topic.as_str(), r.payload.as_slice()))
        .collect();
    let expected: Vec<(&str, &[u8])> = sent
        .iter()
        .chain(sent.iter())
        .map(|(t, p)| (*t, p.as_slice()))
        .collect();
    assert_eq!(got, expected);
    assert!(
        lines.windows(2).all(|w| w[0].t <= w[1].t),
        "times go forward"
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("\"payload_b64\":\"n6L/AA==\""), "{text}");
}
