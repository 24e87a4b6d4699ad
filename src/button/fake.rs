//! A panel of buttons and LEDs in memory, behind the same [`Panel`] trait as the GPIO backends:
//! the test holds a [`FakeHandle`] to press buttons and read LEDs while the driver owns the panel.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{ButtonError, Panel};

#[derive(Debug, Default)]
struct Lines {
    buttons: Vec<bool>,
    leds: Vec<bool>,
    /// Every LED change, in order: (led, on).
    led_changes: Vec<(usize, bool)>,
}

/// The panel side (given to the driver).
#[derive(Debug)]
pub struct FakePanel {
    lines: Arc<Mutex<Lines>>,
}

/// The test side.
#[derive(Debug, Clone)]
pub struct FakeHandle {
    lines: Arc<Mutex<Lines>>,
}

fn lock(lines: &Mutex<Lines>) -> MutexGuard<'_, Lines> {
    // A test that panicked while holding the lock has already failed; keep the data usable.
    lines
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A panel with `buttons` inputs (class buttons first, then the mode button) and `leds` outputs.
pub fn panel(buttons: usize, leds: usize) -> (FakePanel, FakeHandle) {
    let lines = Arc::new(Mutex::new(Lines {
        buttons: vec![false; buttons],
        leds: vec![false; leds],
        led_changes: Vec::new(),
    }));
    (
        FakePanel {
            lines: Arc::clone(&lines),
        },
        FakeHandle { lines },
    )
}

impl FakeHandle {
    /// Sets the raw level of a button (true = pressed).
    pub fn set(&self, button: usize, pressed: bool) {
        if let Some(b) = lock(&self.lines).buttons.get_mut(button) {
            *b = pressed;
        }
    }

    /// The current LED levels.
    pub fn leds(&self) -> Vec<bool> {
        lock(&self.lines).leds.clone()
    }

    /// Every LED change so far.
    pub fn led_changes(&self) -> Vec<(usize, bool)> {
        lock(&self.lines).led_changes.clone()
    }
}

impl Panel for FakePanel {
    fn buttons(&self) -> usize {
        lock(&self.lines).buttons.len()
    }

    fn leds(&self) -> usize {
        lock(&self.lines).leds.len()
    }

    fn read(&mut self, pressed: &mut [bool]) -> Result<(), ButtonError> {
        let lines = lock(&self.lines);
        for (out, level) in pressed.iter_mut().zip(&lines.buttons) {
            *out = *level;
        }
        Ok(())
    }

    fn set_led(&mut self, index: usize, on: bool) -> Result<(), ButtonError> {
        let mut lines = lock(&self.lines);
        let Some(led) = lines.leds.get_mut(index) else {
            return Err(ButtonError::NoSuchLed { index });
        };
        if *led != on {
            *led = on;
            lines.led_changes.push((index, on));
        }
        Ok(())
    }
}
