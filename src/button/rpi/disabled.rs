//! The Raspberry Pi GPIO panel in a build without the `rpi` feature: same signatures as the rppal
//! backend, and an error that says how to rebuild.

use crate::board::ButtonsConfig;

use super::{ButtonError, Panel};

/// Buttons and LEDs on the Raspberry Pi header (not built in).
#[derive(Debug)]
pub struct RpiPanel {
    _never: (),
}

impl RpiPanel {
    /// Always fails in this build.
    ///
    /// # Errors
    /// [`ButtonError::NotEnabled`].
    pub fn open(_config: &ButtonsConfig) -> Result<Self, ButtonError> {
        Err(ButtonError::NotEnabled {
            what: "Raspberry Pi GPIO (rppal)",
            feature: "rpi",
        })
    }
}

impl Panel for RpiPanel {
    fn buttons(&self) -> usize {
        0
    }
    fn leds(&self) -> usize {
        0
    }
    fn read(&mut self, _pressed: &mut [bool]) -> Result<(), ButtonError> {
        Err(ButtonError::NotEnabled {
            what: "Raspberry Pi GPIO (rppal)",
            feature: "rpi",
        })
    }
    fn set_led(&mut self, _index: usize, _on: bool) -> Result<(), ButtonError> {
        Err(ButtonError::NotEnabled {
            what: "Raspberry Pi GPIO (rppal)",
            feature: "rpi",
        })
    }
}
