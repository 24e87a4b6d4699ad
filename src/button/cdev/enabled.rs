//! Buttons and LEDs through the Linux GPIO character device (`/dev/gpiochipN`) with gpiocdev
//! (`--features gpio-cdev`): the portable backend for Jetson boards, the Pi 5 and anything else with
//! a GPIO chip. Pins are line offsets on the chip (see `gpioinfo`), not header numbers.

use gpiocdev::line::{Bias, Value};
use gpiocdev::Request;

use crate::board::ButtonsConfig;

use super::{ButtonError, Panel};

/// Buttons and LEDs on one GPIO chip.
pub struct CdevPanel {
    inputs: Request,
    input_offsets: Vec<u32>,
    outputs: Option<Request>,
    output_offsets: Vec<u32>,
    chip: String,
}

impl CdevPanel {
    /// Requests the lines of `config` from `config.chip`.
    ///
    /// # Errors
    /// [`ButtonError::Gpio`] when the chip cannot be opened or a line is busy.
    pub fn open(config: &ButtonsConfig) -> Result<Self, ButtonError> {
        let chip = config.chip.display().to_string();
        let fault = |e: gpiocdev::Error| ButtonError::Gpio {
            device: chip.clone(),
            problem: e.to_string(),
        };
        let input_offsets: Vec<u32> = config
            .class_pins
            .iter()
            .chain(config.mode_pin.iter())
            .copied()
            .collect();
        let mut builder = Request::builder();
        builder
            .on_chip(&config.chip)
            .with_consumer("fieldtune")
            .with_lines(&input_offsets)
            .as_input()
            .with_bias(if config.active_low {
                Bias::PullUp
            } else {
                Bias::PullDown
            });
        if config.active_low {
            builder.as_active_low();
        }
        let inputs = builder.request().map_err(fault)?;
        let outputs = if config.led_pins.is_empty() {
            None
        } else {
            Some(
                Request::builder()
                    .on_chip(&config.chip)
                    .with_consumer("fieldtune")
                    .with_lines(&config.led_pins)
                    .as_output(Value::Inactive)
                    .request()
                    .map_err(fault)?,
            )
        };
        Ok(CdevPanel {
            inputs,
            input_offsets,
            outputs,
            output_offsets: config.led_pins.clone(),
            chip,
        })
    }

    fn fault(&self, e: gpiocdev::Error) -> ButtonError {
        ButtonError::Gpio {
            device: self.chip.clone(),
            problem: e.to_string(),
        }
    }
}

impl Panel for CdevPanel {
    fn buttons(&self) -> usize {
        self.input_offsets.len()
    }

    fn leds(&self) -> usize {
        self.output_offsets.len()
    }

    fn read(&mut self, pressed: &mut [bool]) -> Result<(), ButtonError> {
        for (out, &offset) in pressed.iter_mut().zip(&self.input_offsets) {
            // Active-low is applied by the kernel (as_active_low), so Active = pressed.
            *out = self.inputs.value(offset).map_err(|e| self.fault(e))? == Value::Active;
        }
        Ok(())
    }

    fn set_led(&mut self, index: usize, on: bool) -> Result<(), ButtonError> {
        let offset = *self
            .output_offsets
            .get(index)
            .ok_or(ButtonError::NoSuchLed { index })?;
        let Some(outputs) = self.outputs.as_ref() else {
            return Err(ButtonError::NoSuchLed { index });
        };
        let value = if on { Value::Active } else { Value::Inactive };
        outputs
            .set_value(offset, value)
            .map(|_| ())
            .map_err(|e| self.fault(e))
    }
}
