//! The one way a head is fitted to labelled features, on the device and in `fieldtune train`:
//! [`Head::train`] with the head's kind and hyper-parameters (its hold-out, early stopping,
//! calibration and refit rules), extended to the states a device passes through on its way
//! there: no class yet (an empty head) and a single class (imprinted, since softmax training
//! needs two). A device started from an imported head (`fieldtune state import --head`)
//! fine-tunes that head instead ([`Head::fine_tune`]).
//!
//! With views of the labelled frames stored (a label's mirror image and crop, see
//! [`crate::augment`]), the rows are split as `fieldtune train --augment` splits them
//! ([`crate::augment::with_views`]: the hold-out is drawn from the frames themselves, and only the
//! frames kept for fitting bring their views; only once every class has
//! [`crate::augment::MIN_PER_CLASS_FOR_VIEWS`] samples) and [`fit_split`] trains on that split.
//! A device fine-tuning an imported head trains on the frames alone.

use crate::head::{Dataset, Head, HeadError, HeadKind, HyperParams};

/// What a head is fitted to: the training rows and, when views of the samples are among them,
/// the validation rows after them in the same matrix (samples only, drawn before the views were
/// added; see [`crate::augment::with_views_from`]).
#[derive(Debug, Clone)]
pub struct TrainingData {
    /// Rows fitted on, then (from `val_from`) the rows validated on.
    pub rows: Dataset,
    /// Where the validation rows start; `None`: no validation rows of its own, [`fit_head`]'s
    /// own rules.
    pub val_from: Option<usize>,
}

/// Fits a head to `data`: [`fit_head`] when it has no validation rows of its own (or fewer than
/// two classes, or an imported head to fine-tune: then on all its rows), else
/// [`Head::train_joined`] with them.
///
/// # Errors
/// As [`fit_head`].
pub fn fit_split(
    data: TrainingData,
    kind: HeadKind,
    hyper: &HyperParams,
    prior: Option<&Head>,
) -> Result<Head, HeadError> {
    let TrainingData { rows, val_from } = data;
    match val_from {
        // Consumed: the device's largest matrix is held once while the head trains.
        Some(val_from) if prior.is_none() && rows.classes.len() >= 2 => {
            Head::train_joined(rows, val_from, kind, hyper).map(|(head, _)| head)
        }
        _ => fit_head(&rows, kind, hyper, prior),
    }
}

/// Fits a head to `data` (which may be empty or hold one class); with `prior`, fine-tunes it on
/// `data` with its own hyper-parameters (its kind wins over `kind`).
///
/// # Errors
/// What [`Head::train`], [`Head::fine_tune`] or [`Head::add_class`] reports (divergence, bad
/// features).
pub fn fit_head(
    data: &Dataset,
    kind: HeadKind,
    hyper: &HyperParams,
    prior: Option<&Head>,
) -> Result<Head, HeadError> {
    if let Some(prior) = prior {
        return prior.fine_tune(data, prior.hyper());
    }
    match data.classes.len() {
        0 => Ok(Head::new(data.dim(), kind, hyper.clone())),
        1 => {
            let mut head = Head::new(data.dim(), kind, hyper.clone());
            head.add_class(&data.classes[0], data.features.view())?;
            Ok(head)
        }
        _ => Head::train(data, None, kind, hyper, &mut |_| {}).map(|(head, _)| head),
    }
}
