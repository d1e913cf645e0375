//! Layout 1, as chirp wrote stores before layouts were numbered: its tables
//! and indexes, and a writer of such a store of any size. The upgrade to
//! today's layout ([`super::schema`]) is tested against it and timed on
//! stores far larger than a checked-in fixture (`chirp-bench` scenario 12).

use super::database::Database;
use super::link::ServerAccess;
use super::{EmbeddedMemory, Store, StoreError, checked};

/// Layout 1's tables and indexes: leases and caller keys indexed on
/// `message`, waiting messages found through an index, attempts with
/// random ids found through an index on their message.
pub(super) const TABLES: &str = "
    DEFINE TABLE message SCHEMALESS;
    DEFINE INDEX message_due ON message FIELDS due_at;
    DEFINE INDEX message_lease ON message FIELDS lease_until;
    DEFINE INDEX message_idempotency ON message FIELDS idempotency_key UNIQUE;
    DEFINE INDEX message_phone ON message FIELDS phone;
    DEFINE INDEX message_reference ON message FIELDS reference_id;
    DEFINE INDEX message_waiting ON message FIELDS waiting_for;
    DEFINE INDEX attempt_message ON attempt FIELDS message_id;
";

/// Messages written per transaction.
const CHUNK: usize = 1_000;

/// Writes a layout 1 store of `messages` messages at `url` (which must not
/// hold a store yet), shaped like a busy one: of every 20 messages, 14
/// sent (one attempt), 2 failed (three attempts), 2 scheduled ahead, 1
/// leased to a worker (one attempt) and 1 waiting for its provider; every
/// other message under a caller key. Ids are ULIDs a millisecond apart.
pub async fn write_layout_1_store(url: &str, messages: usize) -> Result<(), StoreError> {
    let db = Database::open(url, &ServerAccess::default(), EmbeddedMemory::default()).await?;
    checked(db.query(TABLES).await?)?;
    let first_ms: u64 = 1_700_000_000_000;
    for start in (0..messages).step_by(CHUNK) {
        let mut rows = String::new();
        let mut attempts = String::new();
        for n in start..(start + CHUNK).min(messages) {
            let at = first_ms + n as u64;
            let id = ulid::Ulid::from_parts(at, n as u128).to_string();
            let key = if n % 2 == 0 {
                format!("order-{n}")
            } else {
                id.clone()
            };
            let (state, tries) = match n % 20 {
                0..14 => (
                    format!("status: 'sent', sent_at: {at}, provider_message_id: 'wamid.{n}'"),
                    1,
                ),
                14 | 15 => (
                    "status: 'failed', error_code: 'HTTP_400', error_message: 'refused'".into(),
                    3,
                ),
                16 | 17 => (format!("status: 'queued', due_at: {}", at + 86_400_000), 0),
                18 => (
                    format!(
                        "status: 'sending', lease_until: {}, lease: 'old'",
                        at + 30_000
                    ),
                    1,
                ),
                _ => (
                    format!(
                        "status: 'queued', due_at: {at}, waiting_for: 'myoperator', \
                     error_code: 'PROVIDER_NOT_LOADED'"
                    ),
                    0,
                ),
            };
            rows.push_str(&format!(
                "{{ id: message:⟨{id}⟩, phone: '+9198{:08}', text: 'Order {n} is confirmed.', \
                 template: 'order_confirmation', reference_id: 'ref-{n}', idempotency_key: '{key}', \
                 provider: 'myoperator', attempts: {tries}, created_at: {at}, updated_at: {at}, {state} }},",
                n % 100_000_000
            ));
            for number in 1..=tries {
                attempts.push_str(&format!(
                    "{{ message_id: '{id}', number: {number}, started_at: {at}, \
                     provider: 'myoperator', provider_version: '0.1.0', outcome: 'sent', \
                     provider_message_id: 'wamid.{n}', latency_ms: 12 }},"
                ));
            }
        }
        checked(
            db.query_without_deadline(format!(
                "BEGIN TRANSACTION;
                 INSERT INTO message [{rows}] RETURN NONE;
                 INSERT INTO attempt [{attempts}] RETURN NONE;
                 COMMIT TRANSACTION;"
            ))
            .await?,
        )?;
    }
    Store::over(db).close().await
}
