//! Recipient phone numbers: E.164, checked once at the edge.
//!
//! A [`Phone`] can only be built through [`Phone::parse`], so everything past
//! the API holds a number that a provider can dial.

use std::fmt;

/// A phone number in E.164 form (`+` and 8 to 15 digits). Indian numbers
/// (`+91`) are further checked to be ten-digit mobiles starting 6-9, the
/// only numbers WhatsApp Business reaches there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

/// Why a string is not a phone number chirp can send to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("must start with + and the country code (E.164), e.g. +919876543210")]
    /// It does not start with `+`.
    MissingPlus,
    #[error("may contain only digits after the +")]
    /// Something other than digits follows the `+`.
    NotDigits,
    #[error("must have 8 to 15 digits after the + (E.164)")]
    /// Fewer than 8 or more than 15 digits.
    Length,
    #[error("a country code cannot start with 0")]
    /// The country code starts with 0.
    LeadingZero,
    #[error("an Indian (+91) number has ten digits starting with 6, 7, 8 or 9")]
    /// A `+91` number that is not a ten-digit mobile.
    IndianMobile,
}

/// What [`Phone::parse`] accepts, as a regular expression (for the API's
/// document): `+` and 8 to 15 digits not starting with 0; after `+91`,
/// ten digits starting 6-9.
pub const PATTERN: &str = r"^\+([1-8][0-9]{7,14}|9[02-9][0-9]{6,13}|91[6-9][0-9]{9})$";

impl Phone {
    /// The number `text` names, if chirp can send to it.
    pub fn parse(text: &str) -> Result<Phone, PhoneError> {
        let digits = text.strip_prefix('+').ok_or(PhoneError::MissingPlus)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::NotDigits);
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(PhoneError::Length);
        }
        if digits.starts_with('0') {
            return Err(PhoneError::LeadingZero);
        }
        if let Some(national) = digits.strip_prefix("91") {
            let valid = national.len() == 10 && matches!(national.as_bytes()[0], b'6'..=b'9');
            if !valid {
                return Err(PhoneError::IndianMobile);
            }
        }
        Ok(Phone(text.to_string()))
    }

    /// The number, `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the last four digits hidden, for logs:
    /// `+91******3210`.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Masks any phone-like string for logging (`+91******3210`).
pub fn mask(phone: &str) -> String {
    let keep_head = if phone.starts_with("+91") { 3 } else { 2 };
    phone
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_head || i + 4 >= phone.chars().count() {
                c
            } else {
                '*'
            }
        })
        .collect()
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_indian_mobiles_and_other_e164_numbers() {
        for ok in [
            "+919876543210",
            "+916000000000",
            "+14155550100",
            "+447911123456",
        ] {
            assert_eq!(Phone::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_what_cannot_be_dialled() {
        let cases = [
            ("9876543210", PhoneError::MissingPlus),
            ("+91 98765 43210", PhoneError::NotDigits),
            ("+91-9876543210", PhoneError::NotDigits),
            ("+1234567", PhoneError::Length),
            ("+1234567890123456", PhoneError::Length),
            ("+0123456789", PhoneError::LeadingZero),
            ("+915876543210", PhoneError::IndianMobile),
            ("+91987654321", PhoneError::IndianMobile),
            ("+9198765432101", PhoneError::IndianMobile),
            ("", PhoneError::MissingPlus),
            ("+", PhoneError::Length),
        ];
        for (text, expected) in cases {
            assert_eq!(Phone::parse(text), Err(expected), "{text:?}");
        }
    }

    proptest::proptest! {
        /// The pattern the API's document states and the parser agree on
        /// every string, near-misses included.
        #[test]
        fn the_documented_pattern_is_the_parser(
            text in r"\+?(91|9|[0-9])?[0-9 -]{0,16}",
        ) {
            let pattern = regex::Regex::new(PATTERN).unwrap();
            proptest::prop_assert_eq!(pattern.is_match(&text), Phone::parse(&text).is_ok(), "{:?}", text);
        }
    }

    #[test]
    fn masks_all_but_country_code_and_last_four() {
        assert_eq!(mask("+919876543210"), "+91******3210");
        assert_eq!(mask("+14155550100"), "+1******0100");
    }
}
