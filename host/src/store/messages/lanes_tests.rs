//! The queue's two lanes in the store: disjoint ranges of one due index,
//! each claimed on its own, oldest first, and every due time read back as
//! the time itself.

use super::tests::{memory_store, message};
use super::*;
use crate::message::{Lane, Millis, NewMessage, Status};

fn marketing(n: i64, due: Millis) -> NewMessage {
    NewMessage {
        lane: Lane::Marketing,
        ..message(n, due)
    }
}

fn failed(leased: &crate::message::Leased, now: Millis) -> Completion {
    Completion {
        report: None,
        hop: None,
        watch_at: None,
        message_id: leased.message.id.clone(),
        lease: leased.lease.clone(),
        patch: MessagePatch {
            status: Status::Failed,
            attempts: 1,
            updated_at: now,
            due_at: None,
            sent_at: None,
            provider_message_id: None,
            error_code: Some("http_401".into()),
            error_message: Some("no".into()),
            waiting_for: None,
            lane: leased.message.lane,
        },
        attempt: None,
    }
}

/// A thousand marketing messages due before a transactional one do not
/// stand in its way: the transactional claim finds it at once, the
/// marketing claim finds only marketing, and a message keeps its lane
/// through a retry and a resend.
#[tokio::test]
async fn each_lane_is_claimed_on_its_own_and_keeps_its_messages() {
    let store = memory_store().await;
    let blast: Vec<NewMessage> = (0..1_000).map(|n| marketing(n, 1_000 + n)).collect();
    store.insert_batch(&blast).await.expect("blast");
    let urgent = message(5_000, 3_000);
    store
        .insert_batch(std::slice::from_ref(&urgent))
        .await
        .expect("urgent");

    assert_eq!(store.next_due([0, 0]).await.expect("next"), Some(1_000));
    let read = store
        .message(&blast[0].id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!((read.due_at, read.lane), (Some(1_000), Lane::Marketing));
    assert_eq!(store.count_due(10_000).await.expect("count").queued, 1_001);

    let claimed = store
        .claim_due(Lane::Transactional, 10_000, 0, 10, 60_000, "a")
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message.id, urgent.id);
    assert_eq!(claimed[0].message.due_at, Some(3_000));

    let claimed = store
        .claim_due(Lane::Marketing, 10_000, 0, 3, 60_000, "b")
        .await
        .expect("claim");
    let due: Vec<Option<Millis>> = claimed.iter().map(|l| l.message.due_at).collect();
    assert_eq!(due, [Some(1_000), Some(1_001), Some(1_002)]);
    assert!(claimed.iter().all(|l| l.message.lane == Lane::Marketing));

    // A retry puts it back in its own lane, due when the retry says.
    let mut retry = failed(&claimed[0], 11_000);
    retry.patch.status = Status::Queued;
    retry.patch.due_at = Some(20_000);
    // A failure, then an admin's resend: back in the marketing lane too.
    store
        .complete(vec![retry, failed(&claimed[1], 11_000)])
        .await
        .expect("complete");
    let retried = store
        .message(&claimed[0].message.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(retried.due_at, Some(20_000));
    let (resent, moved) = store
        .requeue_failed(&claimed[1].message.id, 12_000)
        .await
        .expect("resend")
        .expect("there");
    assert!(moved);
    assert_eq!(resent.due_at, Some(12_000));
    let none = store
        .claim_due(Lane::Transactional, 30_000, 0, 10, 90_000, "c")
        .await
        .expect("claim");
    // Only the two leases that ran out (taken back in the transactional
    // range, whatever their lane); no queued marketing message.
    assert!(none.iter().all(|l| l.lease_expired), "{none:?}");
    let again = store
        .claim_due(Lane::Marketing, 12_000, 0, 1_000, 90_000, "d")
        .await
        .expect("claim");
    assert!(again.iter().any(|l| l.message.id == claimed[1].message.id));
    assert!(!again.iter().any(|l| l.message.id == claimed[0].message.id));

    // Waiting for its provider, then released when it loads: still in
    // the marketing lane.
    let waiting = &again[0];
    let mut wait = failed(waiting, 13_000);
    wait.patch.status = Status::Queued;
    wait.patch.due_at = Some(50_000);
    wait.patch.waiting_for = Some("myoperator".into());
    store.complete(vec![wait]).await.expect("complete");
    assert_eq!(
        store
            .release_waiting("myoperator", 14_000)
            .await
            .expect("release"),
        1
    );
    let released = store
        .message(&waiting.message.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        (released.due_at, released.lane),
        (Some(14_000), Lane::Marketing)
    );
    let none = store
        .claim_due(Lane::Transactional, 14_000, 0, 10, 90_000, "e")
        .await
        .expect("claim");
    assert!(!none.iter().any(|l| l.message.id == waiting.message.id));
}
