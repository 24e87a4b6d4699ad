//! When a prediction goes out on MQTT: when the class differs from the last one published
//! ("unknown" counts as a class), or when nothing was published for the heartbeat interval.

use std::time::{Duration, Instant};

use super::messages::Reason;

/// Remembers the last published class and when it went out.
#[derive(Debug, Clone)]
pub struct PredictionGate {
    heartbeat: Duration,
    last: Option<(Option<String>, Instant)>,
}

impl PredictionGate {
    /// A gate with this heartbeat interval.
    pub fn new(heartbeat: Duration) -> PredictionGate {
        PredictionGate {
            heartbeat,
            last: None,
        }
    }

    /// Whether the prediction `class` (None = unknown) seen at `now` is published, and why.
    pub fn due(&mut self, class: Option<&str>, now: Instant) -> Option<Reason> {
        let reason = match &self.last {
            Some((last, _)) if last.as_deref() != class => Reason::Change,
            None => Reason::Change,
            Some((_, at)) if now.duration_since(*at) >= self.heartbeat => Reason::Heartbeat,
            Some(_) => return None,
        };
        self.last = Some((class.map(str::to_string), now));
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_heartbeats_only() {
        let mut gate = PredictionGate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(gate.due(Some("A"), t0), Some(Reason::Change));
        assert_eq!(gate.due(Some("A"), t0 + s(1)), None);
        assert_eq!(gate.due(None, t0 + s(2)), Some(Reason::Change));
        assert_eq!(gate.due(None, t0 + s(11)), None);
        assert_eq!(gate.due(None, t0 + s(12)), Some(Reason::Heartbeat));
        assert_eq!(gate.due(Some("B"), t0 + s(13)), Some(Reason::Change));
        assert_eq!(gate.due(Some("B"), t0 + s(22)), None);
        assert_eq!(gate.due(Some("B"), t0 + s(23)), Some(Reason::Heartbeat));
    }
}
