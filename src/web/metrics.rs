//! `/metrics`: the service's status in the Prometheus text format (version 0.0.4): frames,
//! predictions per class, labels, retrains, stage latencies, stored samples and store bytes, the
//! web server's live streams (open, frames sent, frames skipped for slow clients), and the MQTT
//! link's counters when `[mqtt]` is on, and the fleet's when `[fleet]` is.

use std::fmt::Write;

use crate::service::Status;

/// Renders the live streams' counters as Prometheus text.
pub fn render_streams(streams: &crate::web::live::StreamCounters) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::with_capacity(512);
    for (name, kind, help, value) in [
        (
            "web_streams_open",
            "gauge",
            "Live streams (GET /stream) open now.",
            streams.open.load(Relaxed),
        ),
        (
            "web_stream_frames_total",
            "counter",
            "Frames written to live stream clients.",
            streams.sent.load(Relaxed),
        ),
        (
            "web_stream_skipped_frames_total",
            "counter",
            "Frames a live stream client did not get because it was still reading an earlier one.",
            streams.skipped.load(Relaxed),
        ),
    ] {
        let _ = writeln!(out, "# HELP fieldtune_{name} {help}");
        let _ = writeln!(out, "# TYPE fieldtune_{name} {kind}");
        let _ = writeln!(out, "fieldtune_{name} {value}");
    }
    out
}

/// Renders `status` as Prometheus text.
pub fn render(status: &Status) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP fieldtune_{name} {help}");
        let _ = writeln!(out, "# TYPE fieldtune_{name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "fieldtune_{name}{labels} {value}");
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    metric(
        "frames_total",
        "counter",
        "Frames processed.",
        &one(status.frames as f64),
    );
    metric(
        "faults_total",
        "counter",
        "Source faults and frames skipped.",
        &one(status.faults as f64),
    );
    metric(
        "labels_total",
        "counter",
        "Labels given.",
        &one(status.labels as f64),
    );
    metric(
        "undos_total",
        "counter",
        "Undos.",
        &one(status.undos as f64),
    );
    metric(
        "retrains_total",
        "counter",
        "Background retrains swapped in.",
        &one(status.retrains as f64),
    );
    metric("fps", "gauge", "Frames per second.", &one(status.fps));
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since the service started.",
        &one(status.uptime_s),
    );
    metric(
        "store_bytes",
        "gauge",
        "Bytes of the state directory on flash.",
        &one(status.store_bytes as f64),
    );
    let predictions: Vec<(String, f64)> = status
        .predictions
        .iter()
        .map(|(class, n)| (format!("{{class=\"{}\"}}", escape(class)), *n as f64))
        .collect();
    metric(
        "predictions_total",
        "counter",
        "Predictions per class (\"unknown\" when no class was sure enough).",
        &predictions,
    );
    let samples: Vec<(String, f64)> = status
        .classes
        .iter()
        .map(|c| {
            (
                format!("{{class=\"{}\"}}", escape(&c.name)),
                c.samples as f64,
            )
        })
        .collect();
    metric("samples", "gauge", "Stored samples per class.", &samples);
    let l = status.latency;
    let stages = [
        ("capture", l.capture_ms),
        ("decode", l.decode_ms),
        ("preprocess", l.preprocess_ms),
        ("backbone", l.backbone_ms),
        ("head", l.head_ms),
        ("output", l.output_ms),
        ("label", l.label_ms),
    ];
    let rows: Vec<(String, f64)> = stages
        .iter()
        .map(|(stage, ms)| (format!("{{stage=\"{stage}\"}}"), ms / 1000.0))
        .collect();
    metric(
        "stage_seconds",
        "gauge",
        "Mean time of each stage over recent frames.",
        &rows,
    );
    if let Some(mqtt) = &status.mqtt {
        metric(
            "mqtt_connected",
            "gauge",
            "1 while connected to the MQTT broker.",
            &one(f64::from(u8::from(mqtt.connected))),
        );
        metric(
            "mqtt_published_total",
            "counter",
            "MQTT messages handed to the broker connection.",
            &one(mqtt.published as f64),
        );
        metric(
            "mqtt_dropped_total",
            "counter",
            "MQTT messages dropped (queue full or broker unreachable).",
            &one(mqtt.dropped as f64),
        );
        metric(
            "mqtt_connects_total",
            "counter",
            "Connections to the MQTT broker (the first and every reconnection).",
            &one(mqtt.connects as f64),
        );
        metric(
            "mqtt_refused_total",
            "counter",
            "MQTT command messages refused.",
            &one(mqtt.refused as f64),
        );
    }
    if let Some(fleet) = &status.fleet {
        for (name, help, value) in [
            (
                "fleet_published_total",
                "Fleet messages handed to the broker connection.",
                fleet.published,
            ),
            (
                "fleet_dropped_total",
                "Fleet messages dropped (queue to the network full).",
                fleet.dropped,
            ),
            (
                "fleet_received_total",
                "Fleet messages from other devices of the group.",
                fleet.received,
            ),
            (
                "fleet_refused_total",
                "Fleet messages refused (malformed, oversized, another backbone, …).",
                fleet.refused,
            ),
            (
                "fleet_merged_total",
                "Samples merged from other devices of the group.",
                fleet.merged,
            ),
            (
                "fleet_removed_total",
                "Merged samples taken out again (taken back by their device).",
                fleet.removed,
            ),
        ] {
            metric(name, "counter", help, &one(value as f64));
        }
    }
    if let Some(accuracy) = status.labelled_accuracy {
        metric(
            "labelled_accuracy",
            "gauge",
            "Prediction vs. the label given, over the last 100 labels.",
            &one(accuracy),
        );
    }
    out
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
