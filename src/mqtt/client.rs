//! The network side of the MQTT link, on threads of its own (rumqttc's synchronous client, which
//! runs a single-threaded tokio runtime inside the connection thread):
//!
//! - **connection**: drives the connection; on each (re)connection subscribes to `P/cmd`,
//!   publishes `online` (retained; the last will says `offline`) and the discovery configs; on a
//!   failure waits with back-off (0.5 s doubling to 30 s) before the next attempt;
//! - **publisher**: takes what the service loop queued and hands it to the connection, or drops
//!   and counts it while the broker is unreachable or the connection's own queue is full;
//! - **commands**: checks each command message, hands it to the service loop with a reply channel
//!   (as the control socket does), and publishes the reply on `P/reply`.
//!
//! Dropping the [`Worker`] publishes `offline`, disconnects and joins the threads (waiting at
//! most a few seconds for a broker that does not answer).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, LastWill, MqttOptions, Packet, Publish, QoS};

use super::config::{MqttConfig, Password, Security};
use super::messages::{self, Topics};
use super::worker::Worker;
use super::{Counters, MqttError, Outgoing};
use crate::control::{self, Incoming, Reply};

/// The largest MQTT packet accepted or sent. A command is held to `mqtt.max_message_bytes`
/// after it arrives; a packet over this bound breaks the connection (rumqttc's rule), which is
/// then made again.
const MAX_PACKET_BYTES: usize = 256 * 1024;
/// Requests waiting inside the connection (the loop's queue is in front of it).
const CONNECTION_QUEUE: usize = 64;
/// Commands waiting for the service loop.
const COMMAND_QUEUE: usize = 16;
/// How long a command waits for the service loop (as the control socket).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What the connection and publisher threads share about discovery.
#[derive(Debug, Default)]
struct Discovered {
    /// The classes now.
    classes: Vec<String>,
    /// The classes whose button is on the broker.
    announced: BTreeSet<String>,
}

/// Starts the threads.
pub(super) fn spawn<T: Send + 'static>(
    config: MqttConfig,
    model: String,
    queue: Receiver<Outgoing>,
    counters: Arc<Counters>,
    to_service: Sender<T>,
    wrap: fn(Incoming) -> T,
) -> Result<Worker, MqttError> {
    let options = options(&config)?;
    let (client, connection) = Client::new(options, CONNECTION_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let discovered = Arc::new(Mutex::new(Discovered::default()));
    let config = Arc::new(config);
    let (commands_tx, commands_rx) = mpsc::sync_channel::<Publish>(COMMAND_QUEUE);
    let (done_tx, done) = mpsc::channel();
    let mut threads = Vec::new();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(MqttError::Thread)
    };
    {
        let (client, config, counters, discovered, stop, model, done) = (
            client.clone(),
            Arc::clone(&config),
            Arc::clone(&counters),
            Arc::clone(&discovered),
            Arc::clone(&stop),
            model.clone(),
            done_tx.clone(),
        );
        threads.push(spawn(
            "mqtt-connection",
            Box::new(move || {
                drive(
                    connection,
                    &client,
                    &config,
                    &model,
                    &counters,
                    &discovered,
                    &stop,
                    &commands_tx,
                );
                let _ = done.send(());
            }),
        )?);
    }
    {
        let (client, config, counters, stop, done) = (
            client.clone(),
            Arc::clone(&config),
            Arc::clone(&counters),
            Arc::clone(&stop),
            done_tx.clone(),
        );
        threads.push(spawn(
            "mqtt-publish",
            Box::new(move || {
                publish_queued(
                    &queue,
                    &client,
                    &config,
                    &model,
                    &counters,
                    &discovered,
                    &stop,
                );
                let _ = done.send(());
            }),
        )?);
    }
    {
        let (counters, done) = (Arc::clone(&counters), done_tx);
        threads.push(spawn(
            "mqtt-commands",
            Box::new(move || {
                serve_commands(&commands_rx, &client, &config, &counters, &to_service, wrap);
                let _ = done.send(());
            }),
        )?);
    }
    Ok(Worker::new("mqtt", stop, threads, done))
}

/// The connection options a board asks for.
fn options(config: &MqttConfig) -> Result<MqttOptions, MqttError> {
    let mut options = connection_options(config, &config.client_id)?;
    options.set_clean_session(true).set_last_will(LastWill::new(
        Topics::new(&config.topic_prefix).availability,
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    Ok(options)
}

/// The broker, login, TLS and bounds of `config`, as client `client_id` (no last will; a clean
/// session unless the caller says otherwise).
pub(super) fn connection_options(
    config: &MqttConfig,
    client_id: &str,
) -> Result<MqttOptions, MqttError> {
    let mut options = MqttOptions::new(client_id, &config.host, config.port);
    options
        .set_keep_alive(config.keep_alive)
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    if let Some((user, password)) = &config.login {
        let password = match password {
            Password::None => String::new(),
            Password::Inline(p) => p.clone(),
            Password::File(path) => crate::bounded_file::read_text(path, 4096)
                .map_err(|source| MqttError::Password {
                    path: path.clone(),
                    source,
                })?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        options.set_credentials(user, password);
    }
    if let Security::Tls { .. } = &config.security {
        super::tls::configure(&mut options, &config.security)?;
    }
    Ok(options)
}

/// Sleeps `wait` in short steps; false when `stop` was set meanwhile.
pub(super) fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

/// The connection thread's loop.
#[allow(clippy::too_many_arguments)]
fn drive(
    mut connection: Connection,
    client: &Client,
    config: &MqttConfig,
    model: &str,
    counters: &Counters,
    discovered: &Mutex<Discovered>,
    stop: &AtomicBool,
    commands: &SyncSender<Publish>,
) {
    let topics = Topics::new(&config.topic_prefix);
    let broker = format!("{}:{}", config.host, config.port);
    let mut failures: u32 = 0;
    let mut backoff = Duration::from_millis(500);
    loop {
        let event = match connection.recv() {
            Ok(event) => event,
            // Every client handle is gone: nothing more to send or receive.
            Err(_) => return,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                counters.connected.store(true, Ordering::Relaxed);
                counters.connects.fetch_add(1, Ordering::Relaxed);
                if failures > 0 {
                    tracing::info!(
                        "mqtt: connected to {broker} again after {failures} failed attempts"
                    );
                } else {
                    tracing::info!("mqtt: connected to {broker} as {}", config.client_id);
                }
                failures = 0;
                backoff = Duration::from_millis(500);
                let _ = client.try_subscribe(&topics.command, QoS::AtLeastOnce);
                let _ = client.try_publish(&topics.availability, QoS::AtLeastOnce, true, "online");
                let mut d = discovered.lock().unwrap_or_else(|e| e.into_inner());
                announce(client, config, model, &mut d, true);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if publish.topic != topics.command {
                    continue;
                }
                if commands.try_send(publish).is_err() {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("mqtt: refused a command: {COMMAND_QUEUE} are already waiting for the service");
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                counters.connected.store(false, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let was_connected = counters.connected.swap(false, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                counters
                    .failed_connects
                    .fetch_add(u64::from(!was_connected), Ordering::Relaxed);
                failures += 1;
                // Every attempt of the first few, then every 10th: a long outage stays readable.
                if was_connected {
                    tracing::warn!("mqtt: lost the connection to {broker}: {e}; reconnecting");
                } else if failures <= 3 || failures.is_multiple_of(10) {
                    tracing::warn!(
                        "mqtt: cannot connect to {broker} (attempt {failures}): {e}; retrying in {:.1} s",
                        backoff.as_secs_f64()
                    );
                }
                if !sleep_unless_stopped(backoff, stop) {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Publishes the discovery configs: all of them when `full` (a new connection: the broker may
/// have lost them), else only the buttons of classes that came or went.
fn announce(client: &Client, config: &MqttConfig, model: &str, d: &mut Discovered, full: bool) {
    if config.discovery_prefix.is_none() {
        return;
    }
    let mut out = Vec::new();
    if full {
        out.extend(messages::fixed_entities(config, model));
    }
    let now: BTreeSet<String> = d.classes.iter().cloned().collect();
    for gone in d.announced.difference(&now) {
        out.extend(messages::remove_class_button(config, gone));
    }
    for class in &now {
        if full || !d.announced.contains(class) {
            out.extend(messages::class_button(config, model, class));
        }
    }
    let mut all_sent = true;
    for message in out {
        all_sent &= client
            .try_publish(message.topic, QoS::AtLeastOnce, true, message.payload)
            .is_ok();
    }
    if all_sent {
        d.announced = now;
    }
}

/// The publisher thread's loop.
fn publish_queued(
    queue: &Receiver<Outgoing>,
    client: &Client,
    config: &MqttConfig,
    model: &str,
    counters: &Counters,
    discovered: &Mutex<Discovered>,
    stop: &AtomicBool,
) {
    let topics = Topics::new(&config.topic_prefix);
    while !stop.load(Ordering::Relaxed) {
        let message = match queue.recv_timeout(Duration::from_millis(100)) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let connected = counters.connected.load(Ordering::Relaxed);
        let (topic, qos, payload) = match message {
            Outgoing::Classes(classes) => {
                let mut d = discovered.lock().unwrap_or_else(|e| e.into_inner());
                d.classes = classes;
                if connected {
                    announce(client, config, model, &mut d, false);
                }
                continue;
            }
            Outgoing::Prediction(p) => {
                (&topics.prediction, QoS::AtMostOnce, serde_json::to_vec(&p))
            }
            Outgoing::Event(e) => (&topics.event, QoS::AtLeastOnce, serde_json::to_vec(&e)),
        };
        let Ok(payload) = payload else { continue };
        let sent = connected && client.try_publish(topic, qos, false, payload).is_ok();
        let counter = if sent {
            &counters.published
        } else {
            &counters.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    // Stopping: say so while the connection still stands (the last will is for a crash).
    if counters.connected.load(Ordering::Relaxed) {
        let _ = client.try_publish(&topics.availability, QoS::AtLeastOnce, true, "offline");
    }
    let _ = client.try_disconnect();
}

/// The commands thread's loop: ends when the connection thread does.
fn serve_commands<T>(
    commands: &Receiver<Publish>,
    client: &Client,
    config: &MqttConfig,
    counters: &Counters,
    to_service: &Sender<T>,
    wrap: fn(Incoming) -> T,
) {
    let topics = Topics::new(&config.topic_prefix);
    for publish in commands {
        let reply = match check_command(&publish.payload, config.max_message_bytes) {
            Err(why) => {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("mqtt: refused a message on {}: {why}", topics.command);
                Reply::error(why)
            }
            Ok(request) => {
                counters.commands.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = mpsc::channel();
                if to_service
                    .send(wrap(Incoming { request, reply: tx }))
                    .is_err()
                {
                    Reply::error("the service is shutting down")
                } else {
                    rx.recv_timeout(REPLY_TIMEOUT)
                        .unwrap_or_else(|_| Reply::error("the service did not answer in time"))
                }
            }
        };
        if let Ok(text) = serde_json::to_vec(&reply) {
            let _ = client.try_publish(&topics.reply, QoS::AtMostOnce, false, text);
        }
    }
}

/// A command message as the control socket would take it, or why it is refused.
fn check_command(payload: &[u8], max: usize) -> Result<control::Request, String> {
    if payload.len() > max {
        return Err(format!(
            "{} bytes, longer than mqtt.max_message_bytes ({max}); nothing done",
            payload.len()
        ));
    }
    let text = std::str::from_utf8(payload).map_err(|_| {
        "not UTF-8 text; send one control request as JSON, e.g. {\"cmd\":\"status\"}".to_string()
    })?;
    control::parse_request(text.trim())
        .map_err(|reply| crate::learner::names::escaped(&reply.error.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked_as_the_socket_checks_them() {
        assert_eq!(
            check_command(br#"{"cmd":"label","class":"Blight","frame":3}"#, 4096),
            Ok(control::Request::Label {
                class: "Blight".into(),
                frame: Some(3)
            })
        );
        assert!(check_command(&[b' '; 5000], 4096)
            .unwrap_err()
            .contains("mqtt.max_message_bytes"));
        assert!(check_command(&[0xff, 0xfe], 4096)
            .unwrap_err()
            .contains("UTF-8"));
        assert!(check_command(br#"{"cmd":"format_disk"}"#, 4096)
            .unwrap_err()
            .contains("not a request"));
    }
}
