//! The `send-message` body reader on any bytes, as they would arrive: JSON
//! parsing, then field-by-field reading. It never panics; what it accepts
//! has a valid phone and exactly one of template and text; what it refuses
//! says why, mostly naming the field.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(bytes) else {
        return;
    };
    match chirp::api::SendRequest::read(body) {
        Ok(request) => {
            assert!(chirp::phone::Phone::parse(request.phone.as_str()).is_ok());
            if let chirp::api::Content::Text(text) = &request.content {
                assert!(!text.trim().is_empty());
            }
        }
        Err(error) => {
            assert!(!error.message.is_empty());
            assert!(error.status.is_client_error());
        }
    }
});
