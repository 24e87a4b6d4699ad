//! The one way a head is fitted to labelled features, on the device and in `fieldtune train`:
//! [`Head::train`] with the head's kind and hyper-parameters (its hold-out, early stopping,
//! calibration and refit rules), extended to the states a device passes through on its way
//! there: no class yet (an empty head) and a single class (imprinted, since softmax training
//! needs two). A device started from an imported head (`fieldtune state import --head`)
//! fine-tunes that head instead ([`Head::fine_tune`]).

use crate::head::{Dataset, Head, HeadError, HeadKind, HyperParams};

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
