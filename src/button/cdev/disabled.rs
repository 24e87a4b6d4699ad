//! The GPIO character-device panel in a build without the `gpio-cdev` feature: same signatures as the gpiocdev
//! backend, and an error that says how to rebuild.

use crate::board::ButtonsConfig;

use super::{ButtonError, Panel};

/// Buttons and LEDs on a GPIO character device (not built in).
#[derive(Debug)]
pub struct CdevPanel {
    _never: (),
}

impl CdevPanel {
    /// Always fails in this build.
    ///
    /// # Errors
    /// [`ButtonError::NotEnabled`].
    pub fn open(_config: &ButtonsConfig) -> Result<Self, ButtonError> {
        Err(ButtonError::NotEnabled {
            what: "the GPIO character device (gpiocdev)",
            feature: "gpio-cdev",
        })
    }
}

impl Panel for CdevPanel {
    fn buttons(&self) -> usize {
        0
    }
    fn leds(&self) -> usize {
        0
    }
    fn read(&mut self, _pressed: &mut [bool]) -> Result<(), ButtonError> {
        Err(ButtonError::NotEnabled {
            what: "the GPIO character device (gpiocdev)",
            feature: "gpio-cdev",
        })
    }
    fn set_led(&mut self, _index: usize, _on: bool) -> Result<(), ButtonError> {
        Err(ButtonError::NotEnabled {
            what: "the GPIO character device (gpiocdev)",
            feature: "gpio-cdev",
        })
    }
}
