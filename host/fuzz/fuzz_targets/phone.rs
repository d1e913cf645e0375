//! The phone parser on any string: it never panics, what it accepts is
//! E.164 (a `+` and 8 to 15 digits, no leading zero), and masking keeps
//! the length and shows at most the country code and the last four digits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let masked = chirp::phone::mask(text);
    assert_eq!(masked.chars().count(), text.chars().count());
    if let Ok(phone) = chirp::phone::Phone::parse(text) {
        let digits = &phone.as_str()[1..];
        assert!(phone.as_str().starts_with('+'));
        assert!((8..=15).contains(&digits.len()));
        assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        assert!(!digits.starts_with('0'));
        let hidden = masked.chars().filter(|c| *c == '*').count();
        assert!(hidden >= digits.len().saturating_sub(4 + 2));
    }
});
