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

/// Sets up `options` for TLS as `security` says: the CA file's certificates (or the system's
/// roots), and the client certificate and key when given.
///
/// # Errors
/// [`MqttError::TlsFile`] naming a file that cannot be read or holds no usable PEM.
#[cfg(feature = "mqtt-tls")]
pub(super) fn configure(options: &mut MqttOptions, security: &Security) -> Result<(), MqttError> {
    use std::sync::Arc;

    use rumqttc::{TlsConfiguration, Transport};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let Security::Tls {
        ca_file,
        client_cert,
    } = security
    else {
        return Ok(());
    };
    let bad = |path: &std::path::Path, problem: String| MqttError::TlsFile {
        path: path.to_path_buf(),
        problem,
    };
    let read = |path: &std::path::Path| {
        crate::bounded_file::read_text(path, 1 << 20).map_err(|e| bad(path, e.to_string()))
    };
    let certs = |path: &std::path::Path| -> Result<Vec<CertificateDer<'static>>, MqttError> {
        let text = read(path)?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut text.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(path, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad(path, "holds no PEM certificate".into()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| bad(path, format!("unusable CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(MqttError::NotBuilt(
                    "mqtt.broker is mqtts:// but this system has no CA certificates: set mqtt.ca_file, or install ca-certificates",
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::TlsFile {
            path: Default::default(),
            problem: e.to_string(),
        })?
        .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certs(cert)?;
            let key_text = read(key)?;
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_text.as_bytes())
                .map_err(|e| bad(key, format!("not a PEM private key: {e}")))?
                .ok_or_else(|| bad(key, "holds no PEM private key".into()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| {
                    bad(
                        cert,
                        format!("client certificate or key not usable (an X.509 v3 certificate and its key are needed): {e}"),
                    )
                })?
        }
    };
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(config),
    )));
    Ok(())
}
