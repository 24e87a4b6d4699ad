//! Classification heads on top of frozen backbone features, with our own maths: a linear softmax head
//! and a one-hidden-layer ReLU MLP, forward and backward written by hand on ndarray, trained by
//! mini-batch SGD, grown on the device one class and one sample at a time, calibrated, and able to
//! say "unknown".
//!
//! Typical use:
//! ```no_run
//! # use fieldtune::head::*;
//! # fn demo(train: &Dataset, val: &Dataset, x: ndarray::ArrayView1<f32>) -> Result<(), HeadError> {
//! let hyper = HyperParams::builder().epochs(40).check()?;
//! let (mut head, report) = Head::train(train, Some(val), HeadKind::Linear, &hyper, &mut |e| {
//!     println!("epoch {} loss {:.4} val acc {:?}", e.epoch, e.train_loss, e.val_accuracy)
//! })?;
//! let p = head.predict(x);          // p.class == None means "unknown"
//! head.learn(x, 0)?;                // a button press: "this is class 0"
//! # let _ = (report, p); Ok(()) }
//! ```
//!
//! Files: [`hyper`] (validated hyper-parameters), [`dataset`] (labelled features), [`standardize`],
//! [`params`] (weights, forward/backward, one-sample step, bounded batch step), [`batch`] (the reused buffers of a training step), [`kernels`] (the products of the output layer), [`loss`], [`sgd`] (momentum + schedule),
//! [`train`] (the training procedure, `Head::train` / `Head::retrain`), [`finetune`] (a head
//! trained elsewhere fine-tuned on a device's samples, `Head::fine_tune`), [`prototypes`] (the unknown
//! score), [`calibration`] (temperature + threshold), [`classifier`] (the [`Head`] and everything
//! done to it between trainings), [`baseline`] (nearest class mean). Imports run one way:
//! `train` uses `classifier`, never the reverse.
//!
//! Troubleshooting:
//! - "training diverged" → lower `learning_rate`.
//! - A head grown from empty never says "unknown" at first: its threshold is infinite until
//!   `calibrate`, `train`, or 20 `learn` calls on classes that already had examples set one.
//! - A run of presses of one class makes the head predict that class everywhere → label through
//!   [`Head::learn_rehearsed`] (a bounded step that also rehearses stored samples of the other
//!   classes) instead of [`Head::learn`] (a plain, unbounded SGD step).
//! - Many known images reported unknown → recalibrate on fresh validation data, or lower
//!   `target_acceptance`'s complement (raise `target_acceptance`).

pub mod baseline;
pub mod batch;
pub mod calibration;
pub mod classifier;
pub mod dataset;
pub mod error;
pub mod fewshot;
pub mod finetune;
pub mod hyper;
pub mod kernels;
pub mod loss;
pub mod params;
pub mod pool;
pub mod prototypes;
pub mod sgd;
pub mod standardize;
pub mod train;
pub mod wide;

use serde::{Deserialize, Serialize};

pub use calibration::Calibration;
pub use classifier::{Head, Prediction};
pub use dataset::Dataset;
pub use error::HeadError;
pub use hyper::{HyperParams, HyperParamsBuilder};
pub use train::{EpochReport, TrainReport, ValidationSource};

/// Which head: a linear softmax layer, or an MLP with one ReLU hidden layer of `hidden` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HeadKind {
    /// `softmax(W z + b)`.
    Linear,
    /// `softmax(W₂ relu(W₁ z + b₁) + b₂)`.
    Mlp {
        /// Hidden units.
        hidden: usize,
    },
}

impl HeadKind {
    /// Hidden width of the MLP when the user does not choose one.
    pub const DEFAULT_MLP_HIDDEN: usize = 128;

    /// The MLP with the default width.
    pub fn default_mlp() -> HeadKind {
        HeadKind::Mlp {
            hidden: Self::DEFAULT_MLP_HIDDEN,
        }
    }
}
