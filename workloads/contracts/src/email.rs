//! The one rule for an email address as an identity: what is accepted, and the one canonical
//! form an account is stored and looked up by. The gateway checks sign-ups with it (a 422
//! before any call) and auth stores and finds users by its output, so both sides agree by
//! construction.
//!
//! ```text
//!  raw ─▶ trim ─▶ refuse Cc / Cf / invisible fillers ─▶ NFKC ─▶ lower-case ─▶ NFKC ─▶ shape
//!  " Ａlice@Example.com " ─────────────────────────────▶ "Alice@Example.com" ─▶ "alice@example.com"
//! ```
//!
//! - **Trim** first (Unicode white space at either end, as a pasted address often has).
//! - **Refuse** control (Cc) and format (Cf) characters anywhere inside: zero-width space and
//!   joiners (U+200B–U+200D), bidi marks and overrides (U+200E/F, U+202A–E, U+2066–9), the BOM,
//!   soft hyphen... and the few other default-ignorable characters that draw nothing
//!   ([`is_invisible`]: Hangul fillers, variation selectors, the combining grapheme joiner). An
//!   address that looks like another but differs by something invisible is how lookalike
//!   accounts are made, so it is refused with a message naming the code point rather than
//!   silently stripped (stripping would sign a user in as someone whose address they did not
//!   type).
//! - **NFKC** folds compatibility forms to one spelling: fullwidth `Ａ` → `A`, `＠` → `@`,
//!   ligatures `ﬁ` → `fi`, and composes combining sequences (`e` + U+0301 → `é`).
//! - **Lower-case** with Unicode's full mapping (`Ä` → `ä`, `Σ` → `σ`), then NFKC again so the
//!   result is normalized even where lower-casing made a decomposed sequence (`İ` → `i̇`).
//!   The whole address is lower-cased, local part included: no mail provider a shop cares
//!   about has case-sensitive mailboxes, and two accounts differing by case are a support
//!   problem, never a feature.
//! - **Shape** (unchanged from before): at most [`MAX_EMAIL_BYTES`] bytes, no white space,
//!   one `@` with a non-empty local part and a domain holding a dot, not at either end.
//!
//! The canonical form is a fixed point: `canonical_email(canonical_email(x)) ==
//! canonical_email(x)` (checked for every code point by a test).
//!
//! Every address the rule before this one accepted that is plain ASCII keeps its stored form:
//! that rule trimmed and lower-cased ASCII letters only, and for ASCII text NFKC is the
//! identity (no ASCII character has a decomposition or composes with another) and Unicode
//! lower-casing maps exactly `A`–`Z` to `a`–`z`; ASCII has no Cf characters and its Cc ones
//! were already refused. Non-ASCII addresses stored by the old rule may differ (it kept `Ä`
//! and zero-width characters as typed); auth keeps those accounts reachable by a second
//! lookup under the old form (`storefront_auth::domain::legacy_email`).

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The longest address accepted, in bytes of its canonical form (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Why an address was refused. Messages name the field and say what to change; they do not
/// echo the address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// A control, format or invisible character inside the address.
    #[error(
        "email must not contain {what} characters: found U+{code:04X} at character {position}",
        code = u32::from(*found)
    )]
    Forbidden {
        found: char,
        /// 1-based, counted in characters of the trimmed input.
        position: usize,
        what: &'static str,
    },
    /// Longer than [`MAX_EMAIL_BYTES`].
    #[error("email must be at most {MAX_EMAIL_BYTES} bytes")]
    TooLong,
    /// Not `local@domain.tld`, or with white space inside.
    #[error("email must look like name@example.com (one @, a dot in the domain, no spaces)")]
    Shape,
}

/// What kind of forbidden character `c` is, if it is one.
fn forbidden(c: char) -> Option<&'static str> {
    match c.general_category() {
        GeneralCategory::Control => Some("control"),
        GeneralCategory::Format => Some("invisible formatting"),
        _ if is_invisible(c) => Some("invisible"),
        _ => None,
    }
}

/// The default-ignorable characters (Unicode's `Default_Ignorable_Code_Point`) that are not
/// Cf: they draw nothing, so an address holding one looks like one without it.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{034F}'                      // combining grapheme joiner
        | '\u{115F}' | '\u{1160}'       // Hangul choseong / jungseong fillers
        | '\u{17B4}' | '\u{17B5}'       // Khmer inherent vowels
        | '\u{180B}'..='\u{180F}'       // Mongolian free variation selectors
        | '\u{3164}' | '\u{FFA0}'       // Hangul filler, halfwidth Hangul filler
        | '\u{FE00}'..='\u{FE0F}'       // variation selectors
        | '\u{E0100}'..='\u{E01EF}'     // variation selectors supplement
    )
}

/// The canonical form of `raw`, or why it is not an acceptable address (module docs).
pub fn canonical_email(raw: &str) -> Result<String, EmailError> {
    let trimmed = raw.trim();
    let hit = trimmed
        .chars()
        .enumerate()
        .find_map(|(i, c)| forbidden(c).map(|what| (i + 1, c, what)));
    if let Some((position, found, what)) = hit {
        return Err(EmailError::Forbidden {
            found,
            position,
            what,
        });
    }
    let folded: String = trimmed.nfkc().collect::<String>().to_lowercase();
    let email: String = folded.nfkc().collect::<String>().trim().to_string();
    if email.len() > MAX_EMAIL_BYTES {
        return Err(EmailError::TooLong);
    }
    // NFKC can turn a visible compatibility character into a space or a control (U+2003 →
    // U+0020): refused here, as the shape check always did.
    let shaped = !email
        .chars()
        .any(|c| c.is_whitespace() || forbidden(c).is_some())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if shaped {
        Ok(email)
    } else {
        Err(EmailError::Shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_addresses_keep_the_form_the_old_rule_stored() {
        for (raw, stored) in [
            ("  Ann@Example.COM ", "ann@example.com"),
            ("ann@example.com", "ann@example.com"),
            (
                "\tBOB.Smith+shop@Mail.Example.org\n",
                "bob.smith+shop@mail.example.org",
            ),
            ("o'neil@x.io", "o'neil@x.io"),
        ] {
            assert_eq!(canonical_email(raw).as_deref(), Ok(stored), "{raw:?}");
        }
        // Every printable ASCII character in the local part: the new form is the old one
        // (trim, ASCII lower-case).
        for b in 0x21u8..=0x7e {
            if b == b'@' {
                continue;
            }
            let raw = format!("{}X@Example.com", char::from(b));
            let old = raw.trim().to_ascii_lowercase();
            assert_eq!(canonical_email(&raw), Ok(old), "{raw:?}");
        }
    }

    #[test]
    fn compatibility_forms_fold_to_one_address() {
        for (raw, canonical) in [
            // Fullwidth letters and at sign.
            ("Ａlice@Example.com", "alice@example.com"),
            ("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "alice@example.com"),
            // A ligature and a Kelvin sign.
            ("ﬁn@example.com", "fin@example.com"),
            ("\u{212A}im@example.com", "kim@example.com"),
            // Combining sequences compose: e + U+0301 is é, the same account as é typed whole.
            ("Jose\u{0301}@example.com", "jos\u{e9}@example.com"),
            ("jos\u{c9}@example.com", "jos\u{e9}@example.com"),
            // Non-ASCII upper case is lower-cased now.
            ("ÄNNE@Example.de", "änne@example.de"),
            // A superscript capital folds to a plain letter before lower-casing.
            ("\u{1D2C}nn@example.com", "ann@example.com"),
        ] {
            assert_eq!(canonical_email(raw).as_deref(), Ok(canonical), "{raw:?}");
        }
    }

    #[test]
    fn control_format_and_invisible_characters_are_refused_by_name() {
        for (raw, found, what) in [
            (
                "al\u{200D}ice@example.com",
                '\u{200D}',
                "invisible formatting",
            ), // ZWJ
            (
                "al\u{200B}ice@example.com",
                '\u{200B}',
                "invisible formatting",
            ), // ZWSP
            (
                "alice\u{200F}@example.com",
                '\u{200F}',
                "invisible formatting",
            ), // RTL mark
            (
                "\u{202E}moc.elpmaxe@ecila",
                '\u{202E}',
                "invisible formatting",
            ), // RTL override
            (
                "\u{FEFF}alice@example.com",
                '\u{FEFF}',
                "invisible formatting",
            ), // BOM
            (
                "ali\u{00AD}ce@example.com",
                '\u{00AD}',
                "invisible formatting",
            ), // soft hyphen
            ("ali\u{0007}ce@example.com", '\u{0007}', "control"), // BEL
            ("alice@exa\u{0000}mple.com", '\u{0000}', "control"), // NUL
            ("alice@example.com\u{0085}x", '\u{0085}', "control"), // NEL inside
            ("ali\u{3164}ce@example.com", '\u{3164}', "invisible"), // Hangul filler
            ("alice\u{FE0F}@example.com", '\u{FE0F}', "invisible"), // VS16
        ] {
            match canonical_email(raw) {
                Err(e @ EmailError::Forbidden { .. }) => {
                    let EmailError::Forbidden {
                        found: f, what: w, ..
                    } = e.clone()
                    else {
                        unreachable!()
                    };
                    assert_eq!((f, w), (found, what), "{raw:?}");
                    let message = e.to_string();
                    assert!(
                        message.starts_with("email must not contain")
                            && message.contains(&format!("U+{:04X}", u32::from(found))),
                        "{message}"
                    );
                }
                other => panic!("{raw:?} was {other:?}"),
            }
        }
        let e = canonical_email("ab\u{200D}c@example.com").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "email must not contain invisible formatting characters: found U+200D at character 3"
        );
    }

    #[test]
    fn shapes_and_lengths_are_checked_after_folding() {
        for bad in [
            "",
            "   ",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "a b@x.io",
            "a@b@c.io",
            "a@b＠c.io",
            "a@.io",
            "a@io.",
            // An em space folds to a plain space inside the address.
            "a\u{2003}b@x.io",
        ] {
            assert_eq!(canonical_email(bad), Err(EmailError::Shape), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL_BYTES));
        assert_eq!(canonical_email(&long), Err(EmailError::TooLong));
        // Exactly the limit is accepted, one byte more is not.
        let at_limit = format!("{}@example.com", "a".repeat(MAX_EMAIL_BYTES - 12));
        assert!(canonical_email(&at_limit).is_ok());
        assert_eq!(
            canonical_email(&format!("b{at_limit}")),
            Err(EmailError::TooLong)
        );
    }

    /// Every code point of the planes where case, compatibility forms and invisible
    /// characters live (0 and 1, the compatibility ideographs of plane 2, the tags and
    /// variation selectors of plane 14); the rest are ideographs or unassigned.
    #[test]
    fn the_canonical_form_is_a_fixed_point_for_every_code_point() {
        let planes = (0..0x2_0000u32)
            .chain(0x2_F800..=0x2_FA1F)
            .chain(0xE_0000..=0xE_01EF);
        let mut accepted = 0;
        for c in planes.filter_map(char::from_u32) {
            let Ok(once) = canonical_email(&format!("{c}x@example.com")) else {
                continue;
            };
            accepted += 1;
            assert_eq!(
                canonical_email(&once).as_deref(),
                Ok(once.as_str()),
                "U+{:04X}",
                u32::from(c)
            );
            assert!(
                !once
                    .chars()
                    .any(|c| forbidden(c).is_some() || c.is_whitespace()),
                "{once:?}"
            );
        }
        assert!(
            accepted > 100_000,
            "most code points are letters: {accepted}"
        );
    }
}
