//! Buttons and LEDs on the Raspberry Pi header through rppal (`--features rpi`). Inputs use the
//! internal pull-up/pull-down that matches `buttons.active_low`; pins are BCM numbers.
//!
//! rppal resets pins when they are dropped; that only helps because the service stops through its
//! own loop (SIGTERM is handled, not fatal), so the drop actually runs.

use rppal::gpio::{Gpio, InputPin, Level, OutputPin};

use crate::board::ButtonsConfig;

use super::{ButtonError, Panel};

/// Buttons and LEDs on the Raspberry Pi header.
pub struct RpiPanel {
    inputs: Vec<InputPin>,
    outputs: Vec<OutputPin>,
    active_low: bool,
}

fn gpio_error(pin: Option<u32>, e: impl std::fmt::Display) -> ButtonError {
    ButtonError::Gpio {
        device: match pin {
            Some(p) => format!("BCM {p}"),
            None => "/dev/gpiomem".into(),
        },
        problem: e.to_string(),
    }
}

impl RpiPanel {
    /// Claims the pins of `config` (class buttons, then the mode button; LEDs).
    ///
    /// # Errors
    /// [`ButtonError::Gpio`] when the GPIO cannot be opened or a pin is taken.
    pub fn open(config: &ButtonsConfig) -> Result<Self, ButtonError> {
        let gpio = Gpio::new().map_err(|e| gpio_error(None, e))?;
        let pin = |p: u32| -> Result<rppal::gpio::Pin, ButtonError> {
            let n = u8::try_from(p).map_err(|e| gpio_error(Some(p), e))?;
            gpio.get(n).map_err(|e| gpio_error(Some(p), e))
        };
        let mut inputs = Vec::new();
        for &p in config.class_pins.iter().chain(config.mode_pin.iter()) {
            let input = if config.active_low {
                pin(p)?.into_input_pullup()
            } else {
                pin(p)?.into_input_pulldown()
            };
            inputs.push(input);
        }
        let mut outputs = Vec::new();
        for &p in &config.led_pins {
            outputs.push(pin(p)?.into_output_low());
        }
        Ok(RpiPanel {
            inputs,
            outputs,
            active_low: config.active_low,
        })
    }
}

impl Panel for RpiPanel {
    fn buttons(&self) -> usize {
        self.inputs.len()
    }

    fn leds(&self) -> usize {
        self.outputs.len()
    }

    fn read(&mut self, pressed: &mut [bool]) -> Result<(), ButtonError> {
        for (out, input) in pressed.iter_mut().zip(&self.inputs) {
            *out = (input.read() == Level::Low) == self.active_low;
        }
        Ok(())
    }

    fn set_led(&mut self, index: usize, on: bool) -> Result<(), ButtonError> {
        let output = self
            .outputs
            .get_mut(index)
            .ok_or(ButtonError::NoSuchLed { index })?;
        output.write(if on { Level::High } else { Level::Low });
        Ok(())
    }
}
