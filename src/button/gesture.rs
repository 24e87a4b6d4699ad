//! Debounce and gestures (short, long, double press) for one button, as pure code: raw levels and
//! times in, gestures out. No clock and no hardware here, so every timing case is a plain test.
//!
//! - Debounce: a level counts only once it has stayed the same for `debounce`; the press or release
//!   is then dated at the moment the level first changed, so bouncing does not delay the gesture.
//! - Long press: fires while the button is still held, as soon as it has been down `long_press`,
//!   so the person sees the acknowledgement without guessing when to let go.
//! - Double press: with a `double_press` window, a short press waits for the window to close before
//!   it is reported as [`Gesture::Short`]; a second press starting inside the window makes
//!   [`Gesture::Double`] instead. Without a window (class buttons) a short press fires on release.

use std::time::Duration;

/// What a person did with a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gesture {
    Short,
    Long,
    Double,
}

/// Timings of one button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GestureConfig {
    pub debounce: Duration,
    pub long_press: Duration,
    /// `None`: no double press; short presses fire on release.
    pub double_press: Option<Duration>,
}

/// The state machine of one button.
#[derive(Debug, Clone)]
pub struct GestureDetector {
    config: GestureConfig,
    /// The debounced level.
    stable: bool,
    /// The raw level last seen, and since when.
    raw: bool,
    raw_since: Duration,
    /// When the current press started (debounced), if pressed.
    pressed_at: Option<Duration>,
    long_fired: bool,
    /// A short press waiting to see whether a second one follows, until this time.
    pending_until: Option<Duration>,
    /// The current press started inside the double-press window.
    second_press: bool,
}

impl GestureDetector {
    /// A released button.
    pub fn new(config: GestureConfig) -> Self {
        GestureDetector {
            config,
            stable: false,
            raw: false,
            raw_since: Duration::ZERO,
            pressed_at: None,
            long_fired: false,
            pending_until: None,
            second_press: false,
        }
    }

    /// Whether the debounced level is "pressed".
    pub fn is_pressed(&self) -> bool {
        self.stable
    }

    /// Feeds the raw level at time `now` (monotonic, never going back); returns a gesture when one
    /// completes. Call it often (every few milliseconds) even when nothing changes: long presses and
    /// the end of the double-press window are detected here.
    pub fn update(&mut self, now: Duration, raw: bool) -> Option<Gesture> {
        if raw != self.raw {
            self.raw = raw;
            self.raw_since = now;
        }
        if self.raw != self.stable && now.saturating_sub(self.raw_since) >= self.config.debounce {
            self.stable = self.raw;
            let edge_at = self.raw_since;
            if let Some(g) = if self.stable {
                self.on_press(edge_at)
            } else {
                self.on_release(edge_at)
            } {
                return Some(g);
            }
        }
        if let Some(pressed_at) = self.pressed_at {
            if !self.long_fired && now.saturating_sub(pressed_at) >= self.config.long_press {
                self.long_fired = true;
                // A long press swallows a pending first press: it was a different intention.
                self.pending_until = None;
                self.second_press = false;
                return Some(Gesture::Long);
            }
        } else if let Some(until) = self.pending_until {
            if now > until {
                self.pending_until = None;
                return Some(Gesture::Short);
            }
        }
        None
    }

    fn on_press(&mut self, at: Duration) -> Option<Gesture> {
        self.pressed_at = Some(at);
        self.long_fired = false;
        self.second_press = self.pending_until.is_some_and(|until| at <= until);
        if !self.second_press && self.pending_until.take().is_some() {
            // The window closed between two polls: the first press was a single one.
            return Some(Gesture::Short);
        }
        None
    }

    fn on_release(&mut self, at: Duration) -> Option<Gesture> {
        self.pressed_at = None;
        if self.long_fired {
            return None;
        }
        if self.second_press {
            self.second_press = false;
            self.pending_until = None;
            return Some(Gesture::Double);
        }
        match self.config.double_press {
            None => Some(Gesture::Short),
            Some(window) => {
                self.pending_until = Some(at + window);
                None
            }
        }
    }
}
