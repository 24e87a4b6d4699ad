//! The one error type of the head module: every way hyper-parameters, data sets or head operations
//! can be refused, each message naming the offending key or input and the fix.

use thiserror::Error;

/// Everything the head module can refuse. Nothing in `head` panics on bad input; it returns one of these.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum HeadError {
    /// `learning_rate` must be a finite number > 0.
    #[error("hyper-parameter `learning_rate` = {0} must be finite and > 0 (the default 0.01 suits standardised features)")]
    InvalidLearningRate(f32),
    /// `online_learning_rate` must be a finite number > 0.
    #[error("hyper-parameter `online_learning_rate` = {0} must be finite and > 0 (default 0.02)")]
    InvalidOnlineLearningRate(f32),
    /// `momentum` must lie in [0, 1).
    #[error(
        "hyper-parameter `momentum` = {0} must be in [0, 1) (0 disables momentum, default 0.9)"
    )]
    InvalidMomentum(f32),
    /// `weight_decay` must be finite and >= 0.
    #[error("hyper-parameter `weight_decay` = {0} must be finite and >= 0 (default 0.1)")]
    InvalidWeightDecay(f32),
    /// `batch_size` must be >= 1.
    #[error("hyper-parameter `batch_size` = {0} must be >= 1 (default 64)")]
    InvalidBatchSize(usize),
    /// `epochs` must be >= 1.
    #[error("hyper-parameter `epochs` = {0} must be >= 1 (default 40)")]
    InvalidEpochs(usize),
    /// `warmup_epochs` must be smaller than `epochs`.
    #[error("hyper-parameter `warmup_epochs` = {warmup} must be smaller than `epochs` = {epochs}")]
    InvalidWarmup {
        /// The requested warm-up length.
        warmup: usize,
        /// The requested number of epochs.
        epochs: usize,
    },
    /// `validation_fraction` must lie in (0, 0.5].
    #[error("hyper-parameter `validation_fraction` = {0} must be in (0, 0.5] (default 0.15)")]
    InvalidValidationFraction(f32),
    /// `target_acceptance` must lie in (0, 1].
    #[error("hyper-parameter `target_acceptance` = {0} must be in (0, 1] (default 0.95: 95 % of known images accepted)")]
    InvalidTargetAcceptance(f32),
    /// An MLP needs at least one hidden unit.
    #[error("head kind `mlp` needs `hidden` >= 1, got {0} (try 256)")]
    InvalidHiddenWidth(usize),
    /// A data set with no rows.
    #[error("data set `{0}` is empty: it needs at least one labelled feature vector")]
    EmptyDataset(&'static str),
    /// Feature vectors of the wrong length.
    #[error("feature length {got} does not match the head's {expected}: the features come from another backbone; re-embed the images with the head's backbone")]
    DimensionMismatch {
        /// The head's (or data set's) feature length.
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// Number of labels differs from number of feature rows.
    #[error("data set `{name}` has {rows} feature rows but {labels} labels: they must pair up one to one")]
    LabelCountMismatch {
        /// Which data set.
        name: &'static str,
        /// Feature rows.
        rows: usize,
        /// Labels.
        labels: usize,
    },
    /// A label that names no class.
    #[error("label {label} is out of range: there are only {classes} classes (labels are 0-based indices into the class list)")]
    LabelOutOfRange {
        /// The label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// NaN or infinity in a feature vector.
    #[error("feature row {row} of `{name}` contains NaN or infinity: the feature file is corrupt; delete it and re-embed")]
    NonFiniteFeature {
        /// Which data set.
        name: &'static str,
        /// Row index.
        row: usize,
    },
    /// The validation set's class list differs from the training set's.
    #[error("the validation set's classes {val:?} differ from the training set's {train:?}: both must list the same classes in the same order")]
    ClassListMismatch {
        /// Training classes.
        train: Vec<String>,
        /// Validation classes.
        val: Vec<String>,
    },
    /// A class name that is empty.
    #[error("a class name must not be empty")]
    EmptyClassName,
    /// A class name that is already used.
    #[error("class `{0}` already exists: pick another name, or `learn` more examples of the existing class")]
    DuplicateClass(String),
    /// `add_class` called without examples.
    #[error("`add_class(\"{0}\")` needs at least one example feature vector")]
    NoExamples(String),
    /// An operation that needs classes on a head that has none.
    #[error("the head has no classes yet: add one with `add_class` first")]
    NoClasses,
    /// Training produced NaN or infinity.
    #[error("training diverged at epoch {epoch} (loss is not finite): lower `learning_rate` (now {learning_rate})")]
    Diverged {
        /// The epoch where it happened (1-based).
        epoch: usize,
        /// The learning rate in use.
        learning_rate: f32,
    },
}
