//! A customer's personal data as a whole: what chirp holds for one phone,
//! read out for the customer (access) or erased for good (erasure), and
//! the keyed hash that names an erased phone afterwards.
//!
//! **Invariant:** every field of the store that can hold a phone number or
//! what a message said is either erased by [`crate::store::Store::erase`]
//! and read by [`crate::store::Store::customer_data`], or named as holding
//! nothing personal; a test of the store fails on any field that is
//! neither (`store/messages/customers/tests.rs`).

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::message::{Attempt, Message, Millis};
use crate::preferences::Preferences;
use crate::store::StoredReceipt;

/// A message a customer sent, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// What they wrote.
    pub text: String,
    /// When, by the platform's clock.
    pub at: Millis,
    /// The platform's id of the message it replied to, if any.
    pub reply_to: Option<String>,
    /// The plugin that received it.
    pub plugin: String,
}

/// What a message's phone becomes when its customer is erased.
pub const ERASED_PHONE: &str = "erased";

/// The key of the hashes that name erased phones.
#[derive(Clone)]
pub struct ErasureKey([u8; crate::keyfile::KEY_BYTES]);

impl std::fmt::Debug for ErasureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasureKey(<hidden>)")
    }
}

impl ErasureKey {
    /// The key in `path` (`CHIRP_ERASURE_KEY`), made if missing.
    pub fn open(path: &Path) -> Result<ErasureKey, String> {
        crate::keyfile::read_or_create(path).map(ErasureKey)
    }

    /// A key for tests.
    pub fn from_bytes(bytes: [u8; crate::keyfile::KEY_BYTES]) -> ErasureKey {
        ErasureKey(bytes)
    }

    /// The name of `phone` in erasure records: HMAC-SHA256 under this key,
    /// hex. The same phone always gets the same name, and without the key
    /// a name cannot be tried against the few billion phone numbers there
    /// are.
    pub fn name_of(&self, phone: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"chirp-erased-phone\n");
        mac.update(phone.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Everything chirp holds for one phone.
#[derive(Debug, Clone)]
pub struct CustomerData {
    /// Their saved preferences, if they saved any.
    pub preferences: Option<Preferences>,
    /// Their messages, newest first, each with its audit trail: attempts
    /// and the platform's receipts.
    pub messages: Vec<(Message, Vec<Attempt>, Vec<StoredReceipt>)>,
    /// What they wrote to the business, oldest first.
    pub inbound: Vec<InboundMessage>,
    /// When they were erased before, if they were (messages since are
    /// theirs again).
    pub erased_at: Option<Millis>,
}

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// Messages whose phone, text, variables, reference and errors were
    /// removed (their state, times, template, provider and codes stay, for
    /// statistics and the audit).
    pub messages: usize,
    /// Of those, messages that were still queued or scheduled: cancelled,
    /// never to be sent.
    pub cancelled: usize,
    /// Attempts whose error messages and platform ids were removed.
    pub attempts: usize,
    /// Whether saved preferences were deleted.
    pub preferences: bool,
    /// Caller keys whose request fingerprints (hashes that include the
    /// phone) were removed.
    pub keys: usize,
    /// Messages the customer sent that were deleted.
    pub inbound: usize,
}
