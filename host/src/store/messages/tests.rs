//! The message tables' queries, on `mem://` and `surrealkv://`.

use super::*;
use crate::message::{Attempt, ErrorNote, Millis, NewMessage, Outcome, Status};
use crate::phone::Phone;
use crate::store::Store;
use crate::store::{EmbeddedMemory, ServerAccess};

/// An empty store in memory.
pub(crate) async fn memory_store() -> Store {
    Store::open(
        "mem://",
        &ServerAccess::default(),
        EmbeddedMemory::default(),
    )
    .await
    .expect("store")
}

/// A plain message with the caller key `key-{n}`, due at `due`.
pub(crate) fn message(n: i64, due: Millis) -> NewMessage {
    let id = ulid::Ulid::new().to_string();
    NewMessage {
        idempotency_key: format!("key-{n}"),
        id,
        phone: Phone::parse("+919876543210").expect("phone"),
        template: None,
        template_version: None,
        text: format!("message {n}"),
        provider_template: None,
        reference_id: None,
        provider: "myoperator".into(),
        created_at: due,
        not_before: due,
        expires_at: None,
        lane: Default::default(),
        fallbacks: Vec::new(),
        deliver_within_ms: None,
        skip: None,
        override_opt_out: false,
        fingerprint: format!("request-{n}"),
        callbacks: Vec::new(),
    }
}

#[tokio::test]
async fn claims_start_at_the_floor_and_report_when_each_was_due() {
    let store = memory_store().await;
    let batch: Vec<NewMessage> = (0..6).map(|n| message(n, 1_000 + n * 100)).collect();
    store.insert_batch(&batch).await.expect("insert");
    store
        .insert_batch(&[message(0, 1_000)])
        .await
        .expect("an idempotent replay");

    // From a floor of 1,250 only the three due at 1,300..1,500 qualify.
    let claimed = store
        .claim_due(
            crate::message::Lane::Transactional,
            10_000,
            1_250,
            10,
            20_000,
            "lease-a",
        )
        .await
        .expect("claim");
    let mut due: Vec<Millis> = claimed.iter().filter_map(|l| l.message.due_at).collect();
    due.sort();
    assert_eq!(due, vec![1_300, 1_400, 1_500]);
    assert!(claimed.iter().all(|l| l.message.status == Status::Sending));
    assert!(
        claimed
            .iter()
            .all(|l| l.lease == "lease-a" && !l.lease_expired)
    );
    // Leased messages are due again when their lease runs out.
    assert_eq!(
        store.next_due([1_250, 0]).await.expect("next"),
        Some(20_000)
    );

    // From 0 the rest are found, oldest first.
    assert_eq!(store.next_due([0, 0]).await.expect("next"), Some(1_000));
    let claimed = store
        .claim_due(
            crate::message::Lane::Transactional,
            10_000,
            0,
            2,
            20_000,
            "lease-b",
        )
        .await
        .expect("claim");
    let mut due: Vec<Millis> = claimed.iter().filter_map(|l| l.message.due_at).collect();
    due.sort();
    assert_eq!(due, vec![1_000, 1_100]);
}

fn sent(message_id: &str, lease: &str, now: Millis) -> Completion {
    Completion {
        report: None,
        hop: None,
        watch_at: None,
        message_id: message_id.into(),
        lease: lease.into(),
        patch: MessagePatch {
            status: Status::Sent,
            attempts: 1,
            updated_at: now,
            due_at: None,
            sent_at: Some(now),
            provider_message_id: Some(format!("sent-under-{lease}")),
            error_code: None,
            error_message: None,
            waiting_for: None,
            lane: Default::default(),
        },
        attempt: None,
    }
}

#[tokio::test]
async fn a_lease_that_runs_out_is_taken_back_and_only_its_new_holder_completes() {
    let store = memory_store().await;
    store
        .insert_batch(&[message(0, 1_000), message(1, 1_000)])
        .await
        .expect("insert");
    let first = store
        .claim_due(
            crate::message::Lane::Transactional,
            1_000,
            0,
            10,
            5_000,
            "lease-a",
        )
        .await
        .expect("claim");
    assert_eq!(first.len(), 2);
    let reading = store
        .message(&first[0].message.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(reading.status, Status::Sending);
    assert_eq!(
        reading.due_at, None,
        "no next attempt is shown while sending"
    );

    // Before the lease runs out nothing is due; at its end both are.
    assert!(
        store
            .claim_due(
                crate::message::Lane::Transactional,
                4_999,
                0,
                10,
                9_000,
                "lease-b"
            )
            .await
            .expect("claim")
            .is_empty()
    );
    let counts = store.count_due(5_000).await.expect("count");
    assert_eq!(
        counts,
        DueCounts {
            queued: 0,
            lease_expired: 2
        }
    );
    let second = store
        .claim_due(
            crate::message::Lane::Transactional,
            5_000,
            0,
            10,
            9_000,
            "lease-b",
        )
        .await
        .expect("claim");
    assert_eq!(second.len(), 2);
    assert!(
        second
            .iter()
            .all(|l| l.lease_expired && l.lease == "lease-b")
    );
    assert!(second.iter().all(|l| l.message.due_at == Some(5_000)));

    // The first holder's completion comes too late and changes nothing;
    // the second holder's completes the message.
    let id = first[0].message.id.clone();
    store
        .complete(vec![sent(&id, "lease-a", 6_000)])
        .await
        .expect("complete");
    let reading = store.message(&id).await.expect("read").expect("exists");
    assert_eq!(reading.status, Status::Sending);
    store
        .complete(vec![sent(&id, "lease-b", 6_001)])
        .await
        .expect("complete");
    let reading = store.message(&id).await.expect("read").expect("exists");
    assert_eq!(reading.status, Status::Sent);
    assert_eq!(
        reading.provider_message_id.as_deref(),
        Some("sent-under-lease-b")
    );
    // Sent, it is due never again; the other one is due at its lease's end.
    assert_eq!(store.next_due([0, 0]).await.expect("next"), Some(9_000));
    assert_eq!(
        store
            .count_due(i64::MAX)
            .await
            .expect("count")
            .lease_expired,
        1
    );
}

#[tokio::test]
async fn a_completion_applied_twice_records_its_attempt_once() {
    // A completion sent to a server whose answer is lost may have been
    // written; the scheduler sends it again, and that must succeed.
    let store = memory_store().await;
    store
        .insert_batch(&[message(1, 1_000)])
        .await
        .expect("insert");
    let leased = store
        .claim_due(
            crate::message::Lane::Transactional,
            2_000,
            0,
            1,
            60_000,
            "lease-a",
        )
        .await
        .expect("claim");
    let id = leased[0].message.id.clone();
    let mut completion = sent(&id, "lease-a", 3_000);
    completion.attempt = Some(Attempt {
        message_id: id.clone(),
        number: 1,
        started_at: 2_500,
        provider: "myoperator".into(),
        provider_version: "0.1.0".into(),
        outcome: Outcome::Sent {
            provider_message_id: Some("wamid-1".into()),
        },
        latency_ms: 5,
    });
    store
        .complete(vec![completion.clone()])
        .await
        .expect("first");
    store.complete(vec![completion]).await.expect("again");
    assert_eq!(store.attempts(&id).await.expect("attempts").len(), 1);
    let message = store.message(&id).await.expect("read").expect("stored");
    assert_eq!(message.status, Status::Sent);
    assert_eq!(message.attempts, 1);
}

#[tokio::test]
async fn each_message_reads_its_own_attempts_in_order_even_two_with_one_number() {
    let store = memory_store().await;
    let attempt = |message_id: &str, number: u32, started_at: Millis| Attempt {
        message_id: message_id.into(),
        number,
        started_at,
        provider: "myoperator".into(),
        provider_version: "0.1.0".into(),
        outcome: Outcome::Retryable {
            error: ErrorNote {
                code: "TIMEOUT".into(),
                message: "timed out".into(),
            },
            retry_after: None,
        },
        latency_ms: 1,
    };
    let with = |lease: &str, a: Attempt| {
        let mut c = sent(&a.message_id, lease, a.started_at);
        c.attempt = Some(a);
        c
    };
    store
        .complete(vec![
            with("lease-2", attempt("m1", 2, 300)),
            with("lease-1", attempt("m1", 1, 100)),
            // The first lease ran out mid-attempt; its successor made
            // attempt 1 again.
            with("lease-1b", attempt("m1", 1, 200)),
            with("lease-1", attempt("m10", 1, 150)),
            with("lease-1", attempt("m", 1, 50)),
        ])
        .await
        .expect("record");
    let trail: Vec<(u32, Millis)> = store
        .attempts("m1")
        .await
        .expect("attempts")
        .iter()
        .map(|a| (a.number, a.started_at))
        .collect();
    assert_eq!(trail, vec![(1, 100), (1, 200), (2, 300)]);
    assert_eq!(store.attempts("m10").await.expect("attempts").len(), 1);
    assert_eq!(store.attempts("m").await.expect("attempts").len(), 1);
    assert!(store.attempts("m2").await.expect("attempts").is_empty());
}

#[tokio::test]
async fn a_caller_key_answers_its_first_message_and_generated_keys_store_nothing_extra() {
    let store = memory_store().await;
    let first = message(7, 1_000);
    let mut generated = message(8, 1_000);
    generated.idempotency_key = generated.id.clone();
    let stored = store
        .insert_batch(&[first.clone(), generated.clone()])
        .await
        .expect("insert");
    assert!(stored.iter().all(|i| !i.replayed));

    // The same key again, in a later batch and twice within one batch.
    let again = message(7, 2_000);
    let replays = store
        .insert_batch(&[again.clone(), again])
        .await
        .expect("replay");
    for replay in &replays {
        assert_eq!(replay.id, first.id);
        assert!(replay.replayed);
        assert_eq!(replay.status, Status::Queued);
    }
    let keys: Vec<String> = store
        .db
        .query("SELECT VALUE record::id(id) FROM idempotency")
        .await
        .expect("query")
        .take(0)
        .expect("keys");
    assert_eq!(keys, vec!["key-7".to_string()]);
}

/// A key used again for another request stores nothing and says so,
/// in a later batch and within one; and an event (a group) with one
/// such key stores none of its messages. Without the fingerprint check
/// (checked once) the second request was answered with the first
/// message, as if it had been sent for it.
#[tokio::test]
async fn a_key_used_again_for_another_request_stores_nothing() {
    let store = memory_store().await;
    let first = message(1, 1_000);
    store
        .insert_batch(std::slice::from_ref(&first))
        .await
        .expect("insert");
    let other = NewMessage {
        fingerprint: "another request".into(),
        ..message(1, 1_000)
    };
    let answer = store
        .insert_batch(std::slice::from_ref(&other))
        .await
        .expect("answer");
    assert!(answer[0].key_reused && !answer[0].replayed, "{answer:?}");
    assert_ne!(answer[0].id, first.id, "the first message is not revealed");
    let replay = store
        .insert_batch(&[message(1, 2_000)])
        .await
        .expect("replay");
    assert!(replay[0].replayed && replay[0].id == first.id);

    let both = store
        .insert_batch(&[
            message(2, 1_000),
            NewMessage {
                fingerprint: "x".into(),
                ..message(2, 1_000)
            },
        ])
        .await
        .expect("one batch");
    assert!(!both[0].key_reused && both[1].key_reused, "{both:?}");

    let event = [message(3, 1_000), other];
    let answer = store.insert_groups(&event, &[2]).await.expect("group");
    assert!(answer.iter().all(|a| a.key_reused), "{answer:?}");
    assert!(store.message(&event[0].id).await.expect("read").is_none());
}

/// A fresh store on each embedded engine, with its URL: `mem://`, and
/// `surrealkv://` in `dir`. Races are worth trying on both, since each
/// engine detects conflicts its own way.
async fn stores_on_both_engines(dir: &std::path::Path) -> Vec<(String, Store)> {
    let mut stores = Vec::new();
    for url in [
        "mem://".to_string(),
        format!("surrealkv://{}", dir.display()),
    ] {
        let store = Store::open(&url, &ServerAccess::default(), EmbeddedMemory::default())
            .await
            .expect("store");
        stores.push((url, store));
    }
    stores
}

/// Two committers racing with one new caller key: whichever commits
/// second is refused by the store and inserts again, finding the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_racing_on_one_new_key_store_one_message_and_answer_both_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (url, store) in stores_on_both_engines(dir.path()).await {
        for n in 0..40 {
            // Each batch also holds a message of its own, which must
            // be stored whichever way the race goes.
            let left = [message(n, 1_000), message(1_000 + n, 1_000)];
            let right = [message(n, 1_000), message(2_000 + n, 1_000)];
            let (left_stored, right_stored) =
                tokio::join!(store.insert_batch(&left), store.insert_batch(&right));
            let (left_stored, right_stored) = (
                left_stored.expect("left batch"),
                right_stored.expect("right batch"),
            );
            assert_eq!(left_stored[0].id, right_stored[0].id, "{url}, key {n}");
            assert_eq!(
                [left_stored[0].replayed, right_stored[0].replayed]
                    .iter()
                    .filter(|replayed| !**replayed)
                    .count(),
                1,
                "{url}, key {n}: exactly one batch stored it"
            );
            for own in [&left_stored[1], &right_stored[1]] {
                assert!(!own.replayed);
                assert!(store.message(&own.id).await.expect("read").is_some());
            }
        }
        let counts: Vec<i64> = store
            .db
            .query("RETURN [count(SELECT id FROM message), count(SELECT id FROM idempotency)]")
            .await
            .expect("count")
            .take(0)
            .expect("counts");
        assert_eq!(counts, vec![40 * 3, 40 * 3], "{url}");
    }
}

/// Two resends of one failed message at once: the store's optimistic
/// transactions refuse one, which runs again and finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_resends_at_once_requeue_a_failed_message_once_and_both_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (url, store) in stores_on_both_engines(dir.path()).await {
        for n in 0..30 {
            let stored = store
                .insert_batch(&[message(n, 1_000)])
                .await
                .expect("insert");
            let id = stored[0].id.clone();
            store
                .db
                .query("UPDATE type::record('message', $id) SET status = 'failed', due_at = NONE")
                .bind(("id", id.clone()))
                .await
                .expect("fail it")
                .check()
                .expect("fail it");
            let (left, right) = tokio::join!(
                store.requeue_failed(&id, 2_000),
                store.requeue_failed(&id, 2_000)
            );
            let requeued = [left, right].map(|answer| {
                let (message, requeued) = answer.expect("answered").expect("exists");
                assert_eq!(message.status, Status::Queued, "{url}");
                requeued
            });
            assert_eq!(
                requeued.iter().filter(|r| **r).count(),
                1,
                "{url}, round {n}: {requeued:?}"
            );
        }
    }
}

#[tokio::test]
async fn loading_a_provider_releases_only_the_messages_still_waiting_for_it() {
    let store = memory_store().await;
    let batch: Vec<NewMessage> = (0..3).map(|n| message(n, 1_000)).collect();
    store.insert_batch(&batch).await.expect("insert");
    let claimed = store
        .claim_due(
            crate::message::Lane::Transactional,
            1_000,
            0,
            10,
            5_000,
            "lease",
        )
        .await
        .expect("claim");
    let deferred: Vec<Completion> = claimed
        .iter()
        .map(|l| {
            let mut c = sent(&l.message.id, "lease", 1_100);
            c.patch.status = Status::Queued;
            c.patch.sent_at = None;
            c.patch.due_at = Some(31_000);
            c.patch.waiting_for = Some("myoperator".into());
            c
        })
        .collect();
    store.complete(deferred).await.expect("defer");
    // One of them is delivered some other way before the provider loads
    // (here: claimed and sent once its recheck came due).
    let rechecked = store
        .claim_due(
            crate::message::Lane::Transactional,
            31_000,
            0,
            1,
            40_000,
            "recheck",
        )
        .await
        .expect("claim");
    let delivered = rechecked[0].message.id.clone();
    store
        .complete(vec![sent(&delivered, "recheck", 31_500)])
        .await
        .expect("complete");

    assert_eq!(
        store
            .release_waiting("other", 32_000)
            .await
            .expect("release"),
        0
    );
    assert_eq!(
        store
            .release_waiting("myoperator", 32_000)
            .await
            .expect("release"),
        2
    );
    assert_eq!(store.count_due(32_000).await.expect("count").queued, 2);
    assert_eq!(
        store
            .release_waiting("myoperator", 33_000)
            .await
            .expect("release"),
        0
    );
    let delivered = store
        .message(&delivered)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(delivered.status, Status::Sent);
}
