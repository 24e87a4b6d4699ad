//! The fleet's own MQTT connection (`<client_id>-fleet`), on threads of its own:
//!
//! - **connection**: a persistent session (clean session off, the same client id at every start)
//!   subscribed to the group's topics with QoS 1, so the broker keeps what the group said while
//!   this device was away and delivers it when it returns. Acknowledgements are manual: a message
//!   is acknowledged once the service loop has merged it durably (or it was refused), so a crash
//!   in between makes the broker deliver it again (and the store's fleet ids keep it from being
//!   merged twice). Each message is decoded and checked here ([`super::message::decode`]): a
//!   refused one is logged and acknowledged, nothing stored. The device's own messages come back
//!   and are skipped.
//! - **publisher**: sends what the service loop queued (QoS 1) and the acknowledgements, while
//!   connected; while not, keeps them (the loop's bounded queue in front of it counts what does
//!   not fit).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{Client, Connection, Event, Packet, Publish, QoS};

use super::message::{self, FleetMessage};
use super::{FleetCounters, Received};
use crate::board::fleet::FleetConfig;
use crate::model::BackboneId;
use crate::mqtt::client::{connection_options, sleep_unless_stopped};
use crate::mqtt::worker::Worker;
use crate::mqtt::{MqttConfig, MqttError};

/// Requests waiting inside the connection.
const CONNECTION_QUEUE: usize = 64;

/// Messages received and not acknowledged yet, by token.
type Pending = Arc<Mutex<HashMap<u64, Publish>>>;

/// What the threads are given.
pub(super) struct Plumbing {
    pub outgoing: Receiver<Vec<u8>>,
    pub incoming: SyncSender<Received>,
    pub acks: Receiver<u64>,
    pub counters: Arc<FleetCounters>,
}

/// Starts the threads.
pub(super) fn spawn(
    mqtt: &MqttConfig,
    fleet: &FleetConfig,
    backbone: BackboneId,
    plumbing: Plumbing,
) -> Result<Worker, MqttError> {
    let client_id = format!("{}-fleet", mqtt.client_id);
    let mut options = connection_options(mqtt, &client_id)?;
    options.set_clean_session(false).set_manual_acks(true);
    let (client, connection) = Client::new(options, CONNECTION_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicBool::new(false));
    let pending: Pending = Arc::default();
    let (done_tx, done) = mpsc::channel();
    let group = fleet.group_topic();
    let own_topic = format!("{group}/{}", mqtt.client_id);
    let broker = format!("{}:{}", mqtt.host, mqtt.port);
    let mut threads = Vec::new();
    {
        let (client, stop, connected, pending, done) = (
            client.clone(),
            Arc::clone(&stop),
            Arc::clone(&connected),
            Arc::clone(&pending),
            done_tx.clone(),
        );
        let counters = Arc::clone(&plumbing.counters);
        let incoming = plumbing.incoming;
        let max = fleet.max_message_bytes;
        let own = mqtt.client_id.clone();
        let filter = format!("{group}/+");
        threads.push(
            std::thread::Builder::new()
                .name("mqtt-fleet".into())
                .spawn(move || {
                    let ctx = Receiving {
                        client: &client,
                        filter: &filter,
                        own: &own,
                        broker: &broker,
                        max,
                        backbone: &backbone,
                        counters: &counters,
                        connected: &connected,
                        pending: &pending,
                        incoming: &incoming,
                        stop: &stop,
                    };
                    ctx.drive(connection);
                    let _ = done.send(());
                })
                .map_err(MqttError::Thread)?,
        );
    }
    {
        let (stop, done) = (Arc::clone(&stop), done_tx);
        let Plumbing {
            outgoing,
            acks,
            counters,
            ..
        } = plumbing;
        threads.push(
            std::thread::Builder::new()
                .name("mqtt-fleet-out".into())
                .spawn(move || {
                    publish_queued(
                        &outgoing, &acks, &client, &own_topic, &counters, &connected, &pending,
                        &stop,
                    );
                    let _ = done.send(());
                })
                .map_err(MqttError::Thread)?,
        );
    }
    Ok(Worker::new("fleet", stop, threads, done))
}

/// The connection thread's view.
struct Receiving<'a> {
    client: &'a Client,
    filter: &'a str,
    own: &'a str,
    broker: &'a str,
    max: usize,
    backbone: &'a BackboneId,
    counters: &'a FleetCounters,
    connected: &'a AtomicBool,
    pending: &'a Pending,
    incoming: &'a SyncSender<Received>,
    stop: &'a AtomicBool,
}

static TOKENS: AtomicU64 = AtomicU64::new(1);

impl Receiving<'_> {
    fn drive(&self, mut connection: Connection) {
        let mut failures: u32 = 0;
        let mut backoff = Duration::from_millis(500);
        loop {
            let Ok(event) = connection.recv() else { return };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    self.connected.store(true, Ordering::Relaxed);
                    tracing::info!(
                        "fleet: connected to {} (session {}), listening on {}",
                        self.broker,
                        if ack.session_present {
                            "resumed"
                        } else {
                            "new"
                        },
                        self.filter
                    );
                    failures = 0;
                    backoff = Duration::from_millis(500);
                    let _ = self.client.try_subscribe(self.filter, QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => self.received(publish),
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                    self.connected.store(false, Ordering::Relaxed);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    let was = self.connected.swap(false, Ordering::Relaxed);
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    failures += 1;
                    if was || failures <= 3 || failures.is_multiple_of(10) {
                        tracing::warn!(
                            "fleet: no connection to {} (attempt {failures}): {e}; retrying in {:.1} s",
                            self.broker,
                            backoff.as_secs_f64()
                        );
                    }
                    if !sleep_unless_stopped(backoff, self.stop) {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// One message of the group: checked here, handed to the service loop when it is good.
    fn received(&self, publish: Publish) {
        let sender = publish.topic.rsplit('/').next().unwrap_or_default();
        if sender == self.own {
            let _ = self.client.try_ack(&publish);
            return;
        }
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let message: FleetMessage = match message::decode(&publish.payload, self.max, self.backbone)
        {
            Ok(message) => message,
            Err(why) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "fleet: refused a message on {}: {why}; nothing stored",
                    crate::learner::names::escaped(&publish.topic)
                );
                let _ = self.client.try_ack(&publish);
                return;
            }
        };
        let token = TOKENS.fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, publish);
        let mut item = Received { message, token };
        // The service loop takes a few each frame; wait for room rather than lose a message
        // (this holds the network thread only, never the frame loop).
        loop {
            match self.incoming.try_send(item) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    item = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// The publisher thread's loop.
#[allow(clippy::too_many_arguments)]
fn publish_queued(
    outgoing: &Receiver<Vec<u8>>,
    acks: &Receiver<u64>,
    client: &Client,
    topic: &str,
    counters: &FleetCounters,
    connected: &AtomicBool,
    pending: &Pending,
    stop: &AtomicBool,
) {
    // A message taken from the queue but not yet handed to the connection.
    let mut held: Option<Vec<u8>> = None;
    while !stop.load(Ordering::Relaxed) {
        while let Ok(token) = acks.try_recv() {
            let publish = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&token);
            if let Some(publish) = publish {
                // A lost acknowledgement only makes the broker deliver the message again.
                let _ = client.try_ack(&publish);
            }
        }
        if held.is_none() {
            held = match outgoing.recv_timeout(Duration::from_millis(50)) {
                Ok(bytes) => Some(bytes),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
        }
        let Some(bytes) = held.take() else { continue };
        if !connected.load(Ordering::Relaxed) {
            held = Some(bytes);
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let len = bytes.len() as u64;
        match client.try_publish(topic, QoS::AtLeastOnce, false, bytes.clone()) {
            Ok(()) => {
                counters.published.fetch_add(1, Ordering::Relaxed);
                counters.published_bytes.fetch_add(len, Ordering::Relaxed);
            }
            Err(_) => {
                held = Some(bytes);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let _ = client.try_disconnect();
}
