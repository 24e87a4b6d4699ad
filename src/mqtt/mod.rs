//! MQTT out and in (`[mqtt]` in the board file, off by default): predictions, events and
//! availability for the farm's broker, Home Assistant discovery, and commands from it.
//!
//! The frame loop only ever calls [`MqttLink`]'s methods, which decide in microseconds whether a
//! prediction is due (the class changed, or `mqtt.heartbeat_s` passed: [`gate`]) and push into a
//! bounded queue with `try_send`: the loop never waits on the network. When the queue is full, or
//! the broker is unreachable, the message is dropped and counted ([`MqttStatus::dropped`], in
//! `status` and `/metrics`). The network side runs on threads of its own ([`client`], the
//! `mqtt` cargo feature, on by default): one drives the connection and reconnects with back-off,
//! one publishes what the loop queued, one serves commands.
//!
//! Commands (`P/cmd`) are the control socket's [`Request`](crate::control::Request)s, parsed by
//! the same function and answered by the same code in the service loop, so they are validated
//! exactly as the socket's and the web API's; the reply goes to `P/reply`. A message longer than
//! `mqtt.max_message_bytes`, not UTF-8 or not a request is refused with a log line. Anyone who may
//! publish on `P/cmd` can label, rename and delete: restrict it with the broker's ACL.
//!
//! Topics and payloads: [`messages`]; the board section: [`config`]. Fleet learning (`[fleet]`,
//! labels shared between devices of a group): [`fleet`].

pub mod config;
pub mod fleet;
pub mod gate;
pub mod messages;

#[cfg(feature = "mqtt")]
mod client;
#[cfg(feature = "mqtt")]
mod tls;
#[cfg(feature = "mqtt")]
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, SyncSender, TrySendError};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::control::Incoming;
pub use config::MqttConfig;
use gate::PredictionGate;
use messages::Prediction;

/// What can stop the MQTT link from starting (a broker that cannot be reached is not one: the
/// link retries it in the background).
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The password file cannot be read.
    #[error("cannot read mqtt.password_file {path}: {source}; create it (one line, the password) or remove the key")]
    Password {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A TLS file cannot be read or used.
    #[error("mqtt TLS file {path}: {problem}; check mqtt.ca_file, mqtt.client_cert_file and mqtt.client_key_file")]
    TlsFile { path: PathBuf, problem: String },
    /// The board asks for something this build leaves out.
    #[error("{0}")]
    NotBuilt(&'static str),
    /// A thread could not start.
    #[error("cannot start the MQTT thread: {0}")]
    Thread(std::io::Error),
}

/// One message for the network thread.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A prediction for `P/prediction`.
    Prediction(Prediction),
    /// An event (label, undo, …) for `P/event`.
    Event(serde_json::Value),
    /// The class names now (for the Home Assistant buttons).
    Classes(Vec<String>),
}

/// The counters the link keeps, shared with its threads.
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicBool,
    pub published: AtomicU64,
    pub dropped: AtomicU64,
    pub connects: AtomicU64,
    pub failed_connects: AtomicU64,
    pub commands: AtomicU64,
    pub refused: AtomicU64,
}

/// The link's figures, as `status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttStatus {
    /// Connected to the broker now.
    pub connected: bool,
    /// Messages handed to the broker connection.
    pub published: u64,
    /// Messages dropped: the queue was full or the broker unreachable.
    pub dropped: u64,
    /// Successful connections (the first and every reconnection).
    pub connects: u64,
    /// Connection attempts that failed.
    pub failed_connects: u64,
    /// Commands received and handed to the service.
    pub commands: u64,
    /// Command messages refused (too long, not UTF-8, not a request).
    pub refused: u64,
}

/// The service loop's end of the link.
pub struct MqttLink {
    queue: SyncSender<Outgoing>,
    counters: Arc<Counters>,
    gate: PredictionGate,
    #[cfg(feature = "mqtt")]
    _worker: worker::Worker,
}

impl MqttLink {
    /// Starts the link's threads: connects to the broker in the background (retrying with
    /// back-off), and hands commands to the service as `wrap(Incoming)` on `to_service`.
    /// `model` is the board's name (shown in Home Assistant).
    ///
    /// # Errors
    /// [`MqttError`] when a file the board names cannot be read, or this build has no MQTT.
    pub fn start<T: Send + 'static>(
        config: &MqttConfig,
        model: &str,
        to_service: Sender<T>,
        wrap: fn(Incoming) -> T,
    ) -> Result<MqttLink, MqttError> {
        let (queue, _rx) = std::sync::mpsc::sync_channel::<Outgoing>(config.queue);
        let counters = Arc::new(Counters::default());
        #[cfg(feature = "mqtt")]
        {
            let worker = client::spawn(
                config.clone(),
                model.to_string(),
                _rx,
                Arc::clone(&counters),
                to_service,
                wrap,
            )?;
            Ok(MqttLink {
                queue,
                counters,
                gate: PredictionGate::new(config.heartbeat),
                _worker: worker,
            })
        }
        #[cfg(not(feature = "mqtt"))]
        {
            let _ = (model, to_service, wrap, queue, counters);
            Err(MqttError::NotBuilt(
                "the board has [mqtt] but this fieldtune was built without MQTT: build with the default features (or --features mqtt), or remove [mqtt]",
            ))
        }
    }

    /// Called for every prediction: queues it when the class changed or the heartbeat is due.
    pub fn prediction(&mut self, class: Option<&str>, probability: f32, seq: u64, time_ms: u64) {
        if let Some(reason) = self.gate.due(class, std::time::Instant::now()) {
            self.push(Outgoing::Prediction(Prediction {
                class: class.map(str::to_string),
                probability,
                unknown: class.is_none(),
                seq,
                time_ms,
                reason,
            }));
        }
    }

    /// Queues an event (`{"event": kind, …data}`).
    pub fn event(&self, kind: &str, data: Option<&serde_json::Value>) {
        let mut value = serde_json::json!({ "event": kind });
        if let (Some(serde_json::Value::Object(fields)), Some(map)) = (data, value.as_object_mut())
        {
            for (k, v) in fields {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        self.push(Outgoing::Event(value));
    }

    /// Queues the class names (the Home Assistant buttons follow them).
    pub fn classes(&self, names: Vec<String>) {
        self.push(Outgoing::Classes(names));
    }

    /// The link's figures.
    pub fn status(&self) -> MqttStatus {
        let c = &self.counters;
        MqttStatus {
            connected: c.connected.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            connects: c.connects.load(Ordering::Relaxed),
            failed_connects: c.failed_connects.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }

    fn push(&self, message: Outgoing) {
        match self.queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
