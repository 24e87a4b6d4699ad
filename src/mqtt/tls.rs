//! TLS for the broker connection (`mqtts://`): with the `mqtt-tls` cargo feature, rustls with the
//! CA of `mqtt.ca_file` (or the system's roots) and an optional client certificate; without it,
//! a board that asks for TLS is refused at start, saying how to build it.

use rumqttc::MqttOptions;

use super::config::Security;
use super::MqttError;

/// Sets up `options` for TLS as `security` says.
///
/// # Errors
/// [`MqttError::NotBuilt`] without the `mqtt-tls` feature.
#[cfg(not(feature = "mqtt-tls"))]
pub(super) fn configure(_options: &mut MqttOptions, _security: &Security) -> Result<(), MqttError> {
    Err(MqttError::NotBuilt(
        "mqtt.broker is mqtts:// but this fieldtune was built without TLS: build with --features mqtt-tls, or use mqtt:// on a trusted network",
    ))
}
