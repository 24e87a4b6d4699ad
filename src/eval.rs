//! Classification metrics: accuracy, balanced accuracy, per-class precision and recall, the
//! confusion matrix and the unknown rate.
//!
//! `accuracy` is closed-set top-1 accuracy (the class with the highest probability, whether or not
//! the input was flagged unknown), the figure comparable with other tools; `accepted_accuracy`
//! counts an input flagged unknown as wrong, and `unknown_rate` says how often that happened.

use serde::Serialize;

/// Precision and recall of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Class name.
    pub name: String,
    /// Images of this class.
    pub support: usize,
    /// Of the images predicted as this class, the fraction that are (0 when none was predicted).
    pub precision: f64,
    /// Of the images of this class, the fraction predicted as it.
    pub recall: f64,
}

/// Metrics of one set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Number of images.
    pub n: usize,
    /// Closed-set top-1 accuracy.
    pub accuracy: f64,
    /// Mean of the per-class recalls (classes with images only).
    pub balanced_accuracy: f64,
    /// Fraction flagged unknown.
    pub unknown_rate: f64,
    /// Fraction predicted right and not flagged unknown.
    pub accepted_accuracy: f64,
    /// Per-class precision and recall.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` (closed-set).
    pub confusion: Vec<Vec<usize>>,
}

/// One prediction: the top class and whether it was flagged unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Predicted {
    /// The most probable class.
    pub top: usize,
    /// Whether the input was judged unlike every known class.
    pub unknown: bool,
}

/// Computes the metrics of `predicted` against `labels`.
pub fn metrics(classes: &[String], labels: &[usize], predicted: &[Predicted]) -> Metrics {
    let k = classes.len();
    let n = labels.len().min(predicted.len());
    let mut confusion = vec![vec![0usize; k]; k];
    let (mut correct, mut unknown, mut accepted_correct) = (0usize, 0usize, 0usize);
    for (&label, p) in labels.iter().zip(predicted) {
        if label < k && p.top < k {
            confusion[label][p.top] += 1;
        }
        correct += usize::from(label == p.top);
        unknown += usize::from(p.unknown);
        accepted_correct += usize::from(label == p.top && !p.unknown);
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let support: usize = confusion[c].iter().sum();
            let predicted_as: usize = confusion.iter().map(|row| row[c]).sum();
            ClassMetrics {
                name: classes[c].clone(),
                support,
                precision: ratio(confusion[c][c], predicted_as),
                recall: ratio(confusion[c][c], support),
            }
        })
        .collect();
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|c| c.support > 0).collect();
    let balanced_accuracy = if present.is_empty() {
        0.0
    } else {
        present.iter().map(|c| c.recall).sum::<f64>() / present.len() as f64
    };
    Metrics {
        n,
        accuracy: ratio(correct, n),
        balanced_accuracy,
        unknown_rate: ratio(unknown, n),
        accepted_accuracy: ratio(accepted_correct, n),
        per_class,
        confusion,
    }
}

impl Metrics {
    /// A human-readable report: headline figures, per-class table, confusion matrix.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "n {}  accuracy {:.2} %  balanced {:.2} %  unknown {:.2} %  accepted-and-right {:.2} %",
            self.n,
            100.0 * self.accuracy,
            100.0 * self.balanced_accuracy,
            100.0 * self.unknown_rate,
            100.0 * self.accepted_accuracy
        );
        let width = self
            .per_class
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(out, "  {:<width$}  support  precision  recall", "class");
        for c in &self.per_class {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>7}  {:>8.2} %  {:>5.2} %",
                c.name,
                c.support,
                100.0 * c.precision,
                100.0 * c.recall
            );
        }
        let _ = writeln!(out, "  confusion (rows: true, columns: predicted)");
        for (c, row) in self.confusion.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>5}")).collect();
            let _ = writeln!(
                out,
                "  {:<width$} {}",
                self.per_class[c].name,
                cells.join("")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_small_case_by_hand() {
        let classes = vec!["a".to_string(), "b".to_string()];
        let labels = [0, 0, 0, 1];
        let p = |top, unknown| Predicted { top, unknown };
        let predicted = [p(0, false), p(0, true), p(1, false), p(1, false)];
        let m = metrics(&classes, &labels, &predicted);
        assert_eq!(m.n, 4);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        assert!((m.balanced_accuracy - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        assert!((m.unknown_rate - 0.25).abs() < 1e-12);
        assert!((m.accepted_accuracy - 0.5).abs() < 1e-12);
        assert_eq!(m.confusion, vec![vec![2, 1], vec![0, 1]]);
        assert!((m.per_class[1].precision - 0.5).abs() < 1e-12);
    }
}
