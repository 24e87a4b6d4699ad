//! Class names that are safe to show: what a name may be, how it is normalised, and how many
//! classes a device may have. Every way a class gets a name (a label over the socket, a button's
//! `class-N`, a rename, an imported state, a trained head file's folder names) goes through
//! [`NameRules::normalize`], so a name is always bounded, printable and unique.
//!
//! A name is Unicode text of 1 to `max_chars` characters (board key `store.max_class_name_chars`,
//! default 48), normalised to NFC (so `é` typed as one character or as `e` + accent is the same
//! class), with no control, format (bidi overrides, zero-width), private-use, noncharacter or
//! line-separator characters and no white space at either end. Surrogates cannot occur: names are
//! Rust strings, and the control socket refuses non-UTF-8 and JSON lone-surrogate escapes.
//! A device holds at most `max_classes` live classes (`store.max_classes`, default 32): each
//! class costs retrain time, flash and a place in `status`.
//!
//! # Troubleshooting
//! - "holds U+202E (a format character …)": the name was pasted with invisible characters; type
//!   it again.
//! - "is taken by class …": two names that look the same after NFC are the same class; label with
//!   the existing name or pick another.
//! - "the device already has 32 classes": delete a class (`fieldtune class delete NAME`) or raise
//!   `store.max_classes` in the board file.

use unicode_normalization::UnicodeNormalization;

/// Why a class name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but white space.
    #[error("class name is empty; use 1 to {max} printable characters")]
    Empty {
        /// The longest name allowed.
        max: usize,
    },
    /// Longer than the limit (after NFC).
    #[error("class name {shown} is {chars} characters long; use at most {max} (store.max_class_name_chars)")]
    TooLong {
        /// The name, escaped and cut.
        shown: String,
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// Starts or ends with white space.
    #[error("class name {shown} starts or ends with white space; remove it")]
    Whitespace {
        /// The name, escaped and cut.
        shown: String,
    },
    /// Holds a character that cannot be shown as what it is.
    #[error("class name {shown} holds U+{code:04X} ({what}), which terminals and pages do not show as it is; type the name again without it")]
    Forbidden {
        /// The name, escaped and cut.
        shown: String,
        /// The character's code point.
        code: u32,
        /// What kind of character it is.
        what: &'static str,
    },
    /// Equal after NFC to another live class.
    #[error("class name {shown} is taken by class {existing} (the same after Unicode normalisation); use that class or another name")]
    Taken {
        /// The name, escaped and cut.
        shown: String,
        /// The class that has it, escaped.
        existing: String,
    },
    /// A new class would exceed `max_classes`.
    #[error("cannot create class {shown}: the device already has {max} classes, its limit (store.max_classes); delete one (`fieldtune class delete NAME`) or raise store.max_classes")]
    TooManyClasses {
        /// The name, escaped and cut.
        shown: String,
        /// The limit.
        max: usize,
    },
}

/// What a class name may be and how many classes there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRules {
    /// Longest name, in characters after NFC.
    pub max_chars: usize,
    /// Most live classes.
    pub max_classes: usize,
}

impl NameRules {
    /// The defaults: 48 characters, 32 classes.
    pub const DEFAULT: NameRules = NameRules {
        max_chars: 48,
        max_classes: 32,
    };

    /// The longest `max_chars` a board may set (and the bound for imported states and head files,
    /// whose target board is not known when they are read).
    pub const LONGEST: usize = 64;

    /// The most classes a board may allow.
    pub const MOST_CLASSES: usize = 1024;

    /// The broadest rules a board may set: what imports and head files are held to.
    pub const BROADEST: NameRules = NameRules {
        max_chars: Self::LONGEST,
        max_classes: Self::MOST_CLASSES,
    };

    /// Normalises `name` to NFC and checks it.
    ///
    /// # Errors
    /// [`NameError`] saying what is wrong, with the name escaped.
    pub fn normalize(&self, name: &str) -> Result<String, NameError> {
        // Bound the work before normalising: NFC never shortens a name by more than a few
        // characters per character, and a 1 MiB name must cost nothing.
        let raw_chars = name.chars().take(4 * self.max_chars + 16).count();
        if raw_chars > 4 * self.max_chars + 8 {
            return Err(NameError::TooLong {
                shown: shown(name),
                chars: name.chars().count(),
                max: self.max_chars,
            });
        }
        let nfc: String = name.nfc().collect();
        if nfc.trim().is_empty() {
            return Err(NameError::Empty {
                max: self.max_chars,
            });
        }
        if let Some((c, what)) = nfc.chars().find_map(|c| forbidden(c).map(|w| (c, w))) {
            return Err(NameError::Forbidden {
                shown: shown(&nfc),
                code: u32::from(c),
                what,
            });
        }
        let chars = nfc.chars().count();
        if chars > self.max_chars {
            return Err(NameError::TooLong {
                shown: shown(&nfc),
                chars,
                max: self.max_chars,
            });
        }
        if nfc.trim() != nfc {
            return Err(NameError::Whitespace { shown: shown(&nfc) });
        }
        Ok(nfc)
    }
}

impl Default for NameRules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Whether two names are the same class name (equal after NFC).
pub fn same_name(a: &str, b: &str) -> bool {
    a == b || a.nfc().eq(b.nfc())
}

/// Checks that `name` (already normalised) is not the name of any of `existing`.
///
/// # Errors
/// [`NameError::Taken`] naming the class that has it.
pub fn check_unique<'a>(
    name: &str,
    mut existing: impl Iterator<Item = &'a str>,
) -> Result<(), NameError> {
    match existing.find(|other| same_name(name, other)) {
        Some(other) => Err(NameError::Taken {
            shown: shown(name),
            existing: shown(other),
        }),
        None => Ok(()),
    }
}

/// A name (or any stored text) as it is safe to print: quoted, with control, format and other
/// invisible characters escaped, and cut at 80 characters.
pub fn shown(name: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in name.chars().enumerate() {
        if i == 80 {
            out.push('…');
            break;
        }
        if forbidden(c).is_some() || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Escapes stored text for a terminal without quoting it (names in tables and lists).
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if forbidden(c).is_some() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// What kind of character `c` is when it must not be in a name.
fn forbidden(c: char) -> Option<&'static str> {
    let u = u32::from(c);
    if c.is_control() {
        return Some("a control character");
    }
    let format = matches!(u,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    if format {
        return Some("a format character: bidi control, zero-width or invisible");
    }
    if matches!(u, 0x2028 | 0x2029) {
        return Some("a line or paragraph separator");
    }
    if matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD) {
        return Some("a private-use character");
    }
    if matches!(u, 0xFDD0..=0xFDEF) || (u & 0xFFFE) == 0xFFFE {
        return Some("a noncharacter");
    }
    // Variation selectors and combining grapheme joiner alone are fine inside text; invisible
    // fillers that render as blanks are not.
    if matches!(
        u,
        0x115F | 0x1160 | 0x3164 | 0xFFA0 | 0x034F | 0x17B4 | 0x17B5
    ) {
        return Some("an invisible filler");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfc_makes_two_spellings_one_name() {
        let rules = NameRules::DEFAULT;
        let composed = rules.normalize("Caf\u{e9}").unwrap();
        let decomposed = rules.normalize("Cafe\u{301}").unwrap();
        assert_eq!(composed, decomposed);
        assert!(check_unique(&decomposed, ["Caf\u{e9}"].into_iter()).is_err());
    }

    #[test]
    fn unsafe_names_are_refused_with_the_name_escaped() {
        let rules = NameRules::DEFAULT;
        for bad in [
            "\u{1b}]0;pwned\u{7}",
            "a\u{0}b",
            "evil\u{202e}gpj",
            "zero\u{200b}width",
            " lead",
            "",
            "   ",
        ] {
            let e = rules.normalize(bad).unwrap_err().to_string();
            assert!(!e.contains('\u{1b}') && !e.contains('\u{202e}'), "{e}");
        }
        let long = "x".repeat(49);
        assert!(matches!(
            rules.normalize(&long),
            Err(NameError::TooLong { chars: 49, .. })
        ));
        let huge = "x".repeat(1 << 20);
        assert!(rules.normalize(&huge).unwrap_err().to_string().len() < 400);
        assert_eq!(rules.normalize("Gray Leaf Spot").unwrap(), "Gray Leaf Spot");
        assert_eq!(rules.normalize("葉枯病").unwrap(), "葉枯病");
    }
}
