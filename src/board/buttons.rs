//! `[buttons]`: GPIO buttons and LEDs — the backend, the pins, and the press timings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{At, Result};

/// `[buttons]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawButtons {
    /// `none` (default), `rpi` or `gpio-cdev`.
    pub backend: Option<ButtonBackend>,
    /// GPIO character device for `gpio-cdev` (default `/dev/gpiochip0`).
    pub chip: Option<PathBuf>,
    /// One pin per class button, in class order (BCM numbers / line offsets).
    pub class_pins: Option<Vec<u32>>,
    /// The mode button: long press = new class, double press = undo.
    pub mode_pin: Option<u32>,
    /// One LED pin per class, in class order.
    pub led_pins: Option<Vec<u32>>,
    /// Buttons pull the line low when pressed (default true: pull-up wiring).
    pub active_low: Option<bool>,
    /// Debounce time (default 30 ms).
    pub debounce_ms: Option<u64>,
    /// Hold this long for a long press (default 1500 ms).
    pub long_press_ms: Option<u64>,
    /// Two presses within this window are a double press (default 400 ms).
    pub double_press_ms: Option<u64>,
}

/// Button hardware backends (`buttons.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ButtonBackend {
    None,
    Rpi,
    GpioCdev,
}

/// `[buttons]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ButtonsConfig {
    pub backend: ButtonBackend,
    pub chip: PathBuf,
    pub class_pins: Vec<u32>,
    pub mode_pin: Option<u32>,
    pub led_pins: Vec<u32>,
    pub active_low: bool,
    pub debounce: Duration,
    pub long_press: Duration,
    pub double_press: Duration,
}

/// Checks `[buttons]`.
///
/// # Errors
/// [`super::BoardError::Invalid`] naming the first bad key.
pub fn validate(b: RawButtons, at: &At) -> Result<ButtonsConfig> {
    let backend = b.backend.unwrap_or(ButtonBackend::None);
    let class_pins = b.class_pins.unwrap_or_default();
    let led_pins = b.led_pins.unwrap_or_default();
    if backend != ButtonBackend::None && class_pins.is_empty() && b.mode_pin.is_none() {
        return Err(at.bad(
            "buttons.class_pins",
            "is empty and there is no mode_pin: list at least one button pin".into(),
        ));
    }
    let mut all_pins: Vec<u32> = class_pins.iter().chain(&led_pins).copied().collect();
    all_pins.extend(b.mode_pin);
    let mut sorted = all_pins.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(at.bad(
            "buttons.class_pins",
            format!(
                "pin {} is used twice among class_pins, mode_pin and led_pins",
                w[0]
            ),
        ));
    }
    if backend == ButtonBackend::Rpi {
        if let Some(p) = all_pins.iter().find(|&&p| p > 27) {
            return Err(at.bad(
                "buttons.class_pins",
                format!("pin {p} is not a Raspberry Pi header GPIO (BCM 0..=27)"),
            ));
        }
    }
    let debounce = Duration::from_millis(b.debounce_ms.unwrap_or(30));
    let long_press = Duration::from_millis(b.long_press_ms.unwrap_or(1500));
    let double_press = Duration::from_millis(b.double_press_ms.unwrap_or(400));
    if debounce.is_zero() || debounce > Duration::from_millis(500) {
        return Err(at.bad(
            "buttons.debounce_ms",
            format!(
                "is {}; use 1..=500 (30 suits most switches)",
                debounce.as_millis()
            ),
        ));
    }
    if long_press <= debounce || double_press <= debounce {
        return Err(at.bad(
            "buttons.long_press_ms",
            "and double_press_ms must be longer than debounce_ms".into(),
        ));
    }
    Ok(ButtonsConfig {
        backend,
        chip: b.chip.unwrap_or_else(|| PathBuf::from("/dev/gpiochip0")),
        class_pins,
        mode_pin: b.mode_pin,
        led_pins,
        active_low: b.active_low.unwrap_or(true),
        debounce,
        long_press,
        double_press,
    })
}
