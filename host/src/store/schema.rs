//! The store's tables and indexes, and the upgrade of a store written by an
//! older chirp to the layout this one reads.
//!
//! Why a module of its own: the layout is a contract with every store chirp
//! has ever written. Changing it means saying here what changed and moving
//! existing data across, once, when chirp opens the store.
//!
//! **Invariant:** every index on `message` costs each write of a message (in
//! SurrealDB 3.3.5 each index mutation reads the index's build state in a
//! transaction of its own, and a `NONE` value gets an entry too; see
//! BENCHMARKS.md), so `message` has an index only where a query needs one
//! and nothing keyed by record id can do the job:
//! - `message_due` (`due_at`): the scheduler's claims. `due_at` is set while
//!   a message is `queued` (when it is due) and while it is `sending` (when
//!   its lease runs out and it is due again), so one index serves the queue
//!   and the taking back of expired leases; it is `NONE` once a message is
//!   `sent` or `failed`.
//! - `message_phone`, `message_reference`: the history's filters.
//!
//! Outside `message`, `callback_due` (`due_at` of status callbacks waiting
//! to be posted) is the callbacks' sender's queue.
//!
//! Idempotency keys given by callers live in `idempotency`, one record per
//! key whose id is the key (a direct read, and a second insert of a key
//! fails). Keys chirp generates equal the message id and need no record.
//! Messages waiting for a provider that is not loaded are listed in
//! `waiting`, keyed by message id. An attempt's record id is
//! `[message_id, number, tag]`, so a message's audit trail is a range of
//! ids and `attempt` needs no index either.

use std::ops::Bound;

use surrealdb::types::{RecordId, RecordIdKey, RecordIdKeyRange};

use super::database::Database;
use super::{StoreError, checked};

/// The layout this chirp reads and writes.
///
/// - 1: leases in `message.lease_until` and idempotency keys in a unique
///   index, each with an index on `message`, and an index on
///   `message.waiting_for`; attempts with random ids, found through an
///   index on `attempt.message_id`.
/// - 2: leases folded into `due_at`; the `idempotency` and `waiting` tables;
///   attempts keyed by message.
/// - 3: a queued marketing message's `due_at` lies in the marketing lane's
///   range (`messages::rows::MARKETING_LANE`). Nothing moves from 2: a
///   message queued before waits in the transactional lane. An older
///   chirp would never find the marketing lane's messages due, so it must
///   refuse such a store, and does: it reads only layouts up to its own.
const LAYOUT: i64 = 3;

/// Tables and indexes. `IF NOT EXISTS` makes start-up idempotent.
const SCHEMA: &str = "
DEFINE TABLE IF NOT EXISTS message SCHEMALESS;
DEFINE INDEX IF NOT EXISTS message_due ON message FIELDS due_at;
DEFINE INDEX IF NOT EXISTS message_phone ON message FIELDS phone;
DEFINE INDEX IF NOT EXISTS message_reference ON message FIELDS reference_id;
DEFINE TABLE IF NOT EXISTS idempotency SCHEMALESS;
DEFINE TABLE IF NOT EXISTS waiting SCHEMALESS;
DEFINE TABLE IF NOT EXISTS template SCHEMALESS;
DEFINE TABLE IF NOT EXISTS template_version SCHEMALESS;
DEFINE INDEX IF NOT EXISTS template_version_name ON template_version FIELDS name, version;
DEFINE TABLE IF NOT EXISTS preference SCHEMALESS;
DEFINE TABLE IF NOT EXISTS attempt SCHEMALESS;
DEFINE TABLE IF NOT EXISTS store_layout SCHEMALESS;
DEFINE TABLE IF NOT EXISTS erasure SCHEMALESS;
DEFINE TABLE IF NOT EXISTS retention SCHEMALESS;
DEFINE TABLE IF NOT EXISTS retention_held SCHEMALESS;
DEFINE TABLE IF NOT EXISTS webhook_inbox SCHEMALESS;
DEFINE TABLE IF NOT EXISTS receipt SCHEMALESS;
DEFINE TABLE IF NOT EXISTS receipt_unmatched SCHEMALESS;
DEFINE TABLE IF NOT EXISTS inbound SCHEMALESS;
DEFINE TABLE IF NOT EXISTS sent_id SCHEMALESS;
DEFINE TABLE IF NOT EXISTS delivery_watch SCHEMALESS;
DEFINE TABLE IF NOT EXISTS setting SCHEMALESS;
DEFINE TABLE IF NOT EXISTS setting_change SCHEMALESS;
DEFINE TABLE IF NOT EXISTS callback_endpoint SCHEMALESS;
DEFINE TABLE IF NOT EXISTS callback SCHEMALESS;
DEFINE INDEX IF NOT EXISTS callback_due ON callback FIELDS due_at;
DEFINE TABLE IF NOT EXISTS callback_attempt SCHEMALESS;
";

/// Layout 1 to 2, first step, run until it moves nothing: re-keys up to
/// [`ATTEMPTS_PER_MOVE`] attempts with random ids (layout 1's) to
/// `[message_id, number, old id]`, in one transaction. Attempts are moved
/// in chunks because a store may hold millions; a crash between chunks
/// leaves the rest for the next start.
const MOVE_OLD_ATTEMPTS: &str = "{
    LET $old = (SELECT * FROM attempt WHERE type::is_string(record::id(id)) LIMIT $limit);
    FOR $a IN $old {
        CREATE type::record('attempt', [$a.message_id, $a.number, record::id($a.id)])
            CONTENT object::remove($a, 'id') RETURN NONE;
        DELETE $a.id;
    };
    RETURN array::len($old);
}";

/// How many attempts [`MOVE_OLD_ATTEMPTS`] moves per transaction.
const ATTEMPTS_PER_MOVE: i64 = 5_000;

/// Layout 1 to 2, second step, run on chunks of [`MESSAGES_PER_MOVE`]
/// messages in id order until it reads none: for the chunk in `$range`
/// (the ids after the last chunk's), in one transaction, leased messages get their lease in
/// `due_at`, waiting messages are listed in `waiting`, and caller-given
/// idempotency keys (those that differ from the message id) get their
/// record. Every write is idempotent (`INSERT IGNORE`, and a moved lease is
/// cleared), so a crash part way is made good by the next start, which
/// walks every chunk again. Returns the chunk's last id, or `NONE`.
///
/// In chunks because one transaction is bounded by SurrealKV's memtable:
/// moving the keys of 100,000 messages at once failed with "Memtable arena
/// is full" (`chirp-bench` scenario 12), and chirp could not start.
const MOVE_MESSAGES: &str = "{
    LET $chunk = (SELECT id, status, lease_until, waiting_for, idempotency_key FROM $range
        ORDER BY id LIMIT $limit);
    FOR $m IN $chunk {
        IF $m.status = 'sending' AND $m.lease_until != NONE {
            UPDATE $m.id SET due_at = $m.lease_until, lease_until = NONE RETURN NONE;
        };
    };
    INSERT IGNORE INTO waiting (SELECT type::record('waiting', record::id(id)) AS id,
        waiting_for AS provider FROM $chunk WHERE waiting_for != NONE) RETURN NONE;
    INSERT IGNORE INTO idempotency (SELECT type::record('idempotency', idempotency_key) AS id,
        id AS message FROM $chunk WHERE idempotency_key != record::id(id)) RETURN NONE;
    RETURN IF array::len($chunk) = 0 { NONE } ELSE { record::id($chunk[array::len($chunk) - 1].id) };
}";

/// How many messages [`MOVE_MESSAGES`] moves per transaction.
const MESSAGES_PER_MOVE: i64 = 2_000;

/// Layout 1 to 3, last step, in one transaction: the old indexes go and
/// the layout is stamped (2 to 3 moves nothing).
const LAYOUT_1_TO_2: &str = "
BEGIN TRANSACTION;
REMOVE INDEX IF EXISTS message_lease ON message;
REMOVE INDEX IF EXISTS message_idempotency ON message;
REMOVE INDEX IF EXISTS message_waiting ON message;
REMOVE INDEX IF EXISTS attempt_message ON attempt;
UPSERT store_layout:current SET version = 3;
COMMIT TRANSACTION;
";

/// Makes sure the tables exist and the store has this chirp's layout,
/// upgrading an older one.
pub(super) async fn prepare(db: &Database) -> Result<(), StoreError> {
    checked(db.query(SCHEMA).await?)?;
    let version: Option<i64> = db
        .query("RETURN store_layout:current.version")
        .await?
        .take(0)?;
    match version {
        Some(LAYOUT) => Ok(()),
        Some(2) => {
            checked(
                db.query("UPSERT store_layout:current SET version = $layout")
                    .bind(("layout", LAYOUT))
                    .await?,
            )?;
            tracing::info!(from = 2, to = LAYOUT, "the store's layout is upgraded");
            Ok(())
        }
        Some(newer) if newer > LAYOUT => Err(StoreError::Corrupt(format!(
            "the store has layout {newer}, written by a newer chirp; this one reads layout {LAYOUT}"
        ))),
        // No version: a new store, or one written before layouts were
        // numbered (layout 1). The upgrade does nothing to an empty one
        // but stamp its layout, and says nothing of it.
        _ => {
            let holds_messages: bool = db
                .query("RETURN count(SELECT id FROM message LIMIT 1) + count(SELECT id FROM attempt LIMIT 1) > 0")
                .await?
                .take::<Option<bool>>(0)?
                .unwrap_or(true);
            if !holds_messages {
                checked(db.query(LAYOUT_1_TO_2).await?)?;
                tracing::debug!(layout = LAYOUT, "a new store");
                return Ok(());
            }
            tracing::info!(from = 1, to = LAYOUT, "upgrading the store's layout");
            let mut attempts_moved = 0;
            loop {
                let moved: i64 = db
                    .query_without_deadline(MOVE_OLD_ATTEMPTS)
                    .bind(("limit", ATTEMPTS_PER_MOVE))
                    .await?
                    .take::<Option<i64>>(0)?
                    .unwrap_or(0);
                if moved == 0 {
                    break;
                }
                attempts_moved += moved;
                tracing::info!(attempts_moved, "attempts re-keyed by message");
            }
            let mut after: Option<String> = None;
            let mut messages_moved = 0;
            loop {
                let range = RecordId::new(
                    "message",
                    RecordIdKeyRange {
                        start: after.clone().map_or(Bound::Unbounded, |id| {
                            Bound::Excluded(RecordIdKey::String(id))
                        }),
                        end: Bound::Unbounded,
                    },
                );
                let last: Option<String> = db
                    .query_without_deadline(MOVE_MESSAGES)
                    .bind(("range", range))
                    .bind(("limit", MESSAGES_PER_MOVE))
                    .await?
                    .take(0)?;
                let Some(last) = last else { break };
                messages_moved += MESSAGES_PER_MOVE;
                if messages_moved % (MESSAGES_PER_MOVE * 25) == 0 {
                    tracing::info!(messages_moved, "messages' leases, waits and keys moved");
                }
                after = Some(last);
            }
            checked(db.query_without_deadline(LAYOUT_1_TO_2).await?)?;
            tracing::info!(to = LAYOUT, "the store's layout is upgraded");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Status;
    use crate::store::{EmbeddedMemory, ServerAccess, Store};

    /// An empty database in memory, its schema not yet prepared.
    async fn memory_database() -> Database {
        Database::open(
            "mem://",
            &ServerAccess::default(),
            EmbeddedMemory::default(),
        )
        .await
        .expect("open")
    }

    /// Rows as chirp wrote them before layouts were numbered (in
    /// [`super::super::layout_1::TABLES`]): a message
    /// leased until 5,000, one waiting for its provider, one sent; caller
    /// keys on the first and last.
    const LAYOUT_1_STORE: &str = "
        CREATE attempt CONTENT { message_id: 'done', number: 1, started_at: 1500,
            provider: 'myoperator', provider_version: '0.1.0', outcome: 'retryable',
            error_code: 'HTTP_500', error_message: 'server error', latency_ms: 12 };
        CREATE attempt CONTENT { message_id: 'done', number: 2, started_at: 1900,
            provider: 'myoperator', provider_version: '0.1.0', outcome: 'sent',
            provider_message_id: 'wamid.1', latency_ms: 9 };
        CREATE attempt CONTENT { message_id: 'leased', number: 1, started_at: 1200,
            provider: 'myoperator', provider_version: '0.1.0', outcome: 'retryable',
            error_code: 'TIMEOUT', error_message: 'timed out', latency_ms: 5000 };
        CREATE message:leased CONTENT { status: 'sending', phone: '+919876543210', text: 'a',
            idempotency_key: 'order-1', provider: 'myoperator', attempts: 0, created_at: 1000,
            updated_at: 1000, lease_until: 5000, lease: 'old-lease' };
        CREATE message:waits CONTENT { status: 'queued', phone: '+919876543210', text: 'b',
            idempotency_key: 'waits', provider: 'myoperator', attempts: 0, created_at: 1000,
            updated_at: 1000, due_at: 31000, waiting_for: 'myoperator',
            error_code: 'PROVIDER_NOT_LOADED', error_message: 'not loaded' };
        CREATE message:done CONTENT { status: 'sent', phone: '+919876543210', text: 'c',
            idempotency_key: 'order-3', provider: 'myoperator', attempts: 1, created_at: 1000,
            updated_at: 2000, sent_at: 2000 };
    ";

    /// A new message under the caller key `key`.
    fn replay_of(key: &str) -> crate::message::NewMessage {
        let mut message = crate::store::messages::tests::message(0, 9_000);
        message.idempotency_key = key.into();
        message
    }

    /// The names of the indexes defined on `table`.
    async fn index_names(db: &Database, table: &str) -> Vec<String> {
        db.query(format!(
            "RETURN object::keys((INFO FOR TABLE {table}).indexes)"
        ))
        .await
        .expect("info")
        .take(0)
        .expect("indexes")
    }

    #[tokio::test]
    async fn a_layout_1_store_keeps_its_leases_waiting_messages_and_keys() {
        let db = memory_database().await;
        checked(
            db.query(super::super::layout_1::TABLES)
                .await
                .expect("old tables"),
        )
        .expect("old tables");
        db.query(LAYOUT_1_STORE)
            .await
            .expect("old store")
            .check()
            .expect("old store");
        prepare(&db).await.expect("upgrade");
        prepare(&db).await.expect("a second start changes nothing");
        assert_eq!(
            index_names(&db, "message").await,
            vec!["message_due", "message_phone", "message_reference"]
        );
        let attempt_indexes = index_names(&db, "attempt").await;
        assert!(attempt_indexes.is_empty(), "{attempt_indexes:?}");
        let store = Store::over(db);

        // The audit trails survive, in order, found by message.
        let trail = store.attempts("done").await.expect("attempts");
        let numbers: Vec<(u32, i64)> = trail.iter().map(|a| (a.number, a.started_at)).collect();
        assert_eq!(numbers, vec![(1, 1500), (2, 1900)]);
        assert!(matches!(
            &trail[1].outcome,
            crate::message::Outcome::Sent { provider_message_id: Some(id) } if id == "wamid.1"
        ));
        assert_eq!(store.attempts("leased").await.expect("attempts").len(), 1);
        assert!(store.attempts("waits").await.expect("attempts").is_empty());

        // The lease still runs out at 5,000 and is taken back then.
        assert!(
            store
                .claim_due(
                    crate::message::Lane::Transactional,
                    4_999,
                    0,
                    10,
                    9_000,
                    "new"
                )
                .await
                .expect("claim")
                .is_empty()
        );
        let claimed = store
            .claim_due(
                crate::message::Lane::Transactional,
                5_000,
                0,
                10,
                9_000,
                "new",
            )
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].message.id, "leased");
        assert!(claimed[0].lease_expired);

        // The waiting message is released when its provider loads.
        assert_eq!(
            store
                .release_waiting("myoperator", 6_000)
                .await
                .expect("release"),
            1
        );

        // Old caller keys still answer their first message.
        let answers = store
            .insert_batch(&[replay_of("order-1"), replay_of("order-3")])
            .await
            .expect("replay");
        assert_eq!(answers[0].id, "leased");
        assert_eq!(answers[1].id, "done");
        assert_eq!(answers[1].status, Status::Sent);
        assert!(answers.iter().all(|a| a.replayed));
    }

    /// A layout 1 store of 4,100 messages on disk (three chunks of the
    /// upgrade's moves), as the upgrade benchmark writes one: after the
    /// upgrade, every attempt is found by
    /// its message, every waiting message is released, every leased one
    /// is taken back when its lease runs out, and every caller key answers.
    #[tokio::test]
    async fn a_large_layout_1_store_upgrades_whole() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("surrealkv://{}", dir.path().join("store").display());
        super::super::write_layout_1_store(&url, 4_100)
            .await
            .unwrap();
        let store = Store::open(&url, &ServerAccess::default(), EmbeddedMemory::default())
            .await
            .unwrap();
        let count = |sql: &'static str| {
            let store = &store;
            async move {
                store
                    .db
                    .query(sql)
                    .await
                    .unwrap()
                    .take::<Option<i64>>(0)
                    .unwrap()
                    .unwrap_or(0)
            }
        };
        assert_eq!(count("RETURN count(SELECT id FROM message)").await, 4_100);
        // 14 x 1 + 2 x 3 + 1 x 1 attempts per 20 messages.
        assert_eq!(count("RETURN count(SELECT id FROM attempt)").await, 4_305);
        assert_eq!(
            count("RETURN count(SELECT id FROM attempt WHERE type::is_string(record::id(id)))")
                .await,
            0
        );
        assert_eq!(
            count("RETURN count(SELECT id FROM idempotency)").await,
            2_050
        );
        let failed = ulid::Ulid::from_parts(1_700_000_000_014, 14).to_string();
        assert_eq!(store.attempts(&failed).await.unwrap().len(), 3);
        assert_eq!(store.release_waiting("myoperator", 0).await.unwrap(), 205);
        let last_lease = 1_700_000_000_000 + 4_100 + 30_000;
        let taken_back = store
            .claim_due(
                crate::message::Lane::Transactional,
                last_lease,
                0,
                10_000,
                last_lease + 1,
                "new",
            )
            .await
            .unwrap();
        // The leased (205), the waiting now released (205); the scheduled
        // are a day ahead.
        assert_eq!(taken_back.len(), 410);
        assert_eq!(taken_back.iter().filter(|l| l.lease_expired).count(), 205);
        for n in [18u64, 1_998, 2_038, 4_098] {
            let replay = store
                .insert_batch(&[replay_of(&format!("order-{n}"))])
                .await
                .unwrap();
            assert!(replay[0].replayed, "order-{n}");
            assert_eq!(
                replay[0].id,
                ulid::Ulid::from_parts(1_700_000_000_000 + n, n.into()).to_string()
            );
        }
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_store_from_a_newer_chirp_is_refused() {
        let db = memory_database().await;
        db.query("UPSERT store_layout:current SET version = 99")
            .await
            .expect("write")
            .check()
            .expect("write");
        let refused = prepare(&db).await;
        assert!(
            matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("layout 99")),
            "{refused:?}"
        );
    }

    /// A layout 2 store is stamped 3 and nothing else changes: what it
    /// queued waits in the transactional lane.
    #[tokio::test]
    async fn a_layout_2_store_is_stamped_3() {
        let db = memory_database().await;
        prepare(&db).await.expect("new");
        db.query("UPSERT store_layout:current SET version = 2")
            .await
            .expect("write")
            .check()
            .expect("write");
        prepare(&db).await.expect("upgrade");
        let version: Option<i64> = db
            .query("RETURN store_layout:current.version")
            .await
            .expect("read")
            .take(0)
            .expect("read");
        assert_eq!(version, Some(LAYOUT));
        assert_eq!(LAYOUT, 3);
    }
}
