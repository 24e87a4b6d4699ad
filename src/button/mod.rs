//! Buttons and LEDs: the person's side of the device.
//!
//! Semantics (the README repeats them):
//! - one button per class: a short press labels the current frame as that class;
//! - a mode button: a long press starts a new class (named `class-N`) and labels the current frame
//!   with it, a double press undoes the last label;
//! - one LED per class shows the predicted class; the LED of a class blinks to acknowledge a label.
//!
//! Layers: a [`Panel`] reads raw button levels and sets LEDs (GPIO through rppal on a Raspberry Pi,
//! the Linux GPIO character device through gpiocdev elsewhere, or [`fake`] in tests); the pure
//! [`gesture`] state machine debounces and recognises gestures; [`ButtonDriver`] ties them together
//! and turns gestures into [`Action`]s. [`spawn`] runs a driver on its own thread.
//!
//! # Troubleshooting
//! - "permission denied" on /dev/gpiochipN or /dev/gpiomem: add the service user to the `gpio`
//!   group (the unit file does) and log in again.
//! - A button that fires twice: raise `buttons.debounce_ms`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::board::{ButtonBackend, ButtonsConfig};

pub mod fake;
pub mod gesture;

// Hardware backends are picked here and only here; each pair has the same signatures.
#[cfg(feature = "gpio-cdev")]
#[path = "cdev/enabled.rs"]
pub mod cdev;
#[cfg(not(feature = "gpio-cdev"))]
#[path = "cdev/disabled.rs"]
pub mod cdev;
#[cfg(feature = "rpi")]
#[path = "rpi/enabled.rs"]
pub mod rpi;
#[cfg(not(feature = "rpi"))]
#[path = "rpi/disabled.rs"]
pub mod rpi;

use gesture::{Gesture, GestureConfig, GestureDetector};

/// What can go wrong with buttons and LEDs.
#[derive(Debug, thiserror::Error)]
pub enum ButtonError {
    /// A backend this build does not have.
    #[error("{what} is not enabled in this build: rebuild with --features {feature}")]
    NotEnabled {
        what: &'static str,
        feature: &'static str,
    },
    /// The board's GPIO chip is not there.
    #[error("GPIO chip {chip} not found: check `ls /dev/gpiochip*` (and `gpioinfo` for its lines), or set buttons.chip in the board file")]
    ChipNotFound { chip: PathBuf },
    /// The GPIO device could not be opened or a line could not be claimed.
    #[error("GPIO {device}: {problem}; check buttons.* pins in the board file, and that the service user is in the `gpio` group")]
    Gpio { device: String, problem: String },
    /// An LED index beyond the panel.
    #[error("there is no LED {index} (buttons.led_pins lists fewer)")]
    NoSuchLed { index: usize },
}

/// Raw access to a set of buttons (inputs) and LEDs (outputs). Inputs are ordered class buttons
/// first, then the mode button; levels are already corrected for active-low wiring.
pub trait Panel: Send {
    /// Number of buttons.
    fn buttons(&self) -> usize;
    /// Number of LEDs.
    fn leds(&self) -> usize;
    /// Reads every button: `pressed[i]` = button i is down.
    ///
    /// # Errors
    /// [`ButtonError::Gpio`] when the lines cannot be read.
    fn read(&mut self, pressed: &mut [bool]) -> Result<(), ButtonError>;
    /// Turns an LED on or off.
    ///
    /// # Errors
    /// [`ButtonError`] when the line cannot be set.
    fn set_led(&mut self, index: usize, on: bool) -> Result<(), ButtonError>;
}

/// Opens the panel a board asks for; `None` when the board has no buttons.
///
/// # Errors
/// [`ButtonError`] when the backend is not built in or the GPIO lines cannot be claimed.
pub fn open(config: &ButtonsConfig) -> Result<Option<Box<dyn Panel>>, ButtonError> {
    Ok(match config.backend {
        ButtonBackend::None => None,
        ButtonBackend::Rpi => Some(Box::new(rpi::RpiPanel::open(config)?)),
        ButtonBackend::GpioCdev => {
            if !config.chip.exists() {
                return Err(ButtonError::ChipNotFound {
                    chip: config.chip.clone(),
                });
            }
            Some(Box::new(cdev::CdevPanel::open(config)?))
        }
    })
}

/// What the service should do because of a button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Label the current frame as the class with this index.
    Label(usize),
    /// Start a new class and label the current frame with it.
    NewClass,
    /// Undo the last label.
    Undo,
}

/// What the service tells the LEDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedCommand {
    /// Light the LED of the predicted class (`None`: unknown, all off).
    Show(Option<usize>),
    /// Blink the LED of this class to acknowledge a label.
    Acknowledge(usize),
}

/// How long an acknowledgement blinks, and its half-period.
const ACK_LENGTH: Duration = Duration::from_millis(600);
const ACK_HALF_PERIOD: Duration = Duration::from_millis(100);

/// Debounced, gesture-recognising buttons and LEDs on top of a [`Panel`].
pub struct ButtonDriver {
    panel: Box<dyn Panel>,
    class_buttons: usize,
    detectors: Vec<GestureDetector>,
    levels: Vec<bool>,
    shown: Option<usize>,
    ack: Option<(usize, Duration)>,
    lit: Vec<bool>,
}

impl ButtonDriver {
    /// A driver over `panel`, whose first `class_buttons` inputs are class buttons and the rest (at
    /// most one) the mode button.
    pub fn new(panel: Box<dyn Panel>, class_buttons: usize, config: &ButtonsConfig) -> Self {
        let n = panel.buttons();
        let detectors = (0..n)
            .map(|i| {
                GestureDetector::new(GestureConfig {
                    debounce: config.debounce,
                    long_press: config.long_press,
                    double_press: (i >= class_buttons).then_some(config.double_press),
                })
            })
            .collect();
        let leds = panel.leds();
        ButtonDriver {
            panel,
            class_buttons,
            detectors,
            levels: vec![false; n],
            shown: None,
            ack: None,
            lit: vec![false; leds],
        }
    }

    /// Reads the buttons at time `now` (monotonic) and returns what they ask for; updates the LEDs.
    ///
    /// # Errors
    /// [`ButtonError`] from the panel.
    pub fn poll(&mut self, now: Duration) -> Result<Vec<Action>, ButtonError> {
        self.panel.read(&mut self.levels)?;
        let mut actions = Vec::new();
        for (i, detector) in self.detectors.iter_mut().enumerate() {
            let Some(gesture) = detector.update(now, self.levels[i]) else {
                continue;
            };
            let action = match (i < self.class_buttons, gesture) {
                (true, Gesture::Short) => Some(Action::Label(i)),
                (true, _) => None,
                (false, Gesture::Long) => Some(Action::NewClass),
                (false, Gesture::Double) => Some(Action::Undo),
                (false, Gesture::Short) => None,
            };
            actions.extend(action);
        }
        self.refresh_leds(now)?;
        Ok(actions)
    }

    /// Applies an LED command at time `now`.
    ///
    /// # Errors
    /// [`ButtonError`] from the panel.
    pub fn led(&mut self, command: LedCommand, now: Duration) -> Result<(), ButtonError> {
        match command {
            LedCommand::Show(class) => self.shown = class,
            LedCommand::Acknowledge(class) => self.ack = Some((class, now)),
        }
        self.refresh_leds(now)
    }

    fn refresh_leds(&mut self, now: Duration) -> Result<(), ButtonError> {
        if let Some((_, since)) = self.ack {
            if now.saturating_sub(since) >= ACK_LENGTH {
                self.ack = None;
            }
        }
        for led in 0..self.lit.len() {
            let on = match self.ack {
                Some((class, since)) if class == led => (now.saturating_sub(since).as_millis()
                    / ACK_HALF_PERIOD.as_millis())
                .is_multiple_of(2),
                Some(_) => false,
                None => self.shown == Some(led),
            };
            if on != self.lit[led] {
                self.panel.set_led(led, on)?;
                self.lit[led] = on;
            }
        }
        Ok(())
    }
}

impl Drop for ButtonDriver {
    fn drop(&mut self) {
        // Leave the LEDs dark when the service stops (it stops through its own loop, so this runs).
        for led in 0..self.lit.len() {
            if self.lit[led] {
                let _ = self.panel.set_led(led, false);
            }
        }
    }
}

/// A driver running on its own thread, polling every few milliseconds. Dropping it stops and joins
/// the thread, which drops the driver and releases the lines.
pub struct ButtonThread {
    stop: Arc<AtomicBool>,
    leds: Sender<LedCommand>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// How often the buttons are read: fast enough for a 30 ms debounce.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Runs `driver` on a thread; actions go to `actions` (wrapped by `wrap` into the service's command
/// type). LED commands are sent with [`ButtonThread::led`].
pub fn spawn<T: Send + 'static>(
    mut driver: ButtonDriver,
    actions: Sender<T>,
    wrap: fn(Action) -> T,
) -> ButtonThread {
    let stop = Arc::new(AtomicBool::new(false));
    let (led_tx, led_rx): (Sender<LedCommand>, Receiver<LedCommand>) = std::sync::mpsc::channel();
    let thread_stop = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let start = Instant::now();
        let mut last_error: Option<String> = None;
        while !thread_stop.load(Ordering::Relaxed) {
            let now = start.elapsed();
            while let Ok(command) = led_rx.try_recv() {
                if let Err(e) = driver.led(command, now) {
                    tracing::warn!("LED: {e}");
                }
            }
            match driver.poll(now) {
                Ok(list) => {
                    last_error = None;
                    for action in list {
                        if actions.send(wrap(action)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    // Log once per distinct fault, not 200 times a second.
                    let text = e.to_string();
                    if last_error.as_deref() != Some(&text) {
                        tracing::warn!("buttons: {text}");
                        last_error = Some(text);
                    }
                }
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    });
    ButtonThread {
        stop,
        leds: led_tx,
        handle: Some(handle),
    }
}

impl ButtonThread {
    /// Sends an LED command (ignored if the thread has stopped).
    pub fn led(&self, command: LedCommand) {
        let _ = self.leds.send(command);
    }
}

impl Drop for ButtonThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
