//! A source that is not there yet: a USB camera that enumerates after the service started, a
//! folder on a drive that is mounted later. Instead of failing the start (and, with systemd's start
//! limit, leaving the unit failed), [`open_or_wait`] returns a [`WaitingSource`] that tries to open
//! the real source on each call and, until it can, answers with the transient
//! [`SourceError::Waiting`]; the service loop then backs off as for any transient fault, while the
//! control socket, the web page and systemd's watchdog go on. Once open, every call goes to the
//! real source.
//!
//! Only the faults that mean "not there (yet)" are waited for ([`SourceError::is_absent`]); a
//! backend that is not built in, or a device that is not a camera, still fails at once.

use super::{Frame, FrameSource, SourceError};
use crate::board::{SourceConfig, SourceKind};

/// The source a board asks for, opened now or later.
pub struct WaitingSource {
    config: SourceConfig,
    what: String,
    open: Option<Box<dyn FrameSource>>,
}

/// What a source is, for "waiting for …": `camera /dev/video0`, `folder /media/leaves`.
pub fn what(config: &SourceConfig) -> String {
    match &config.kind {
        SourceKind::Folder { path, .. } => format!("folder {}", path.display()),
        SourceKind::Stdin => "stdin".into(),
        SourceKind::Camera { device, .. } => format!("camera {device}"),
    }
}

/// Opens the source; when it is absent and the board says `source.wait`, returns a source that
/// keeps trying.
///
/// # Errors
/// What [`super::open`] returns, except an absent source that is waited for.
pub fn open_or_wait(config: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
    match super::open(config) {
        Ok(source) => Ok(source),
        Err(e) if config.wait && e.is_absent() => {
            let what = what(config);
            tracing::warn!(
                "waiting for {what}: {}; the service runs and keeps trying",
                crate::learner::names::escaped(&e.to_string())
            );
            Ok(Box::new(WaitingSource {
                config: config.clone(),
                what,
                open: None,
            }))
        }
        Err(e) => Err(e),
    }
}

impl FrameSource for WaitingSource {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        let source = match &mut self.open {
            Some(source) => source,
            None => match super::open(&self.config) {
                Ok(source) => {
                    tracing::info!("{} is there: {}", self.what, source.describe());
                    self.open.insert(source)
                }
                Err(e) if e.is_absent() => {
                    return Err(SourceError::Waiting {
                        what: self.what.clone(),
                        cause: Box::new(e),
                    })
                }
                Err(e) => return Err(e),
            },
        };
        source.next_frame()
    }

    fn describe(&self) -> String {
        match &self.open {
            Some(source) => source.describe(),
            None => format!("waiting for {}", self.what),
        }
    }

    fn waiting(&self) -> bool {
        self.open.is_none()
    }
}
