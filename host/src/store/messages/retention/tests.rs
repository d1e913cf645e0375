//! Retention's passes on a store: redaction, deletion, and messages held
//! while still in the queue.

use super::super::tests::{memory_store, message};
use super::*;
use crate::message::NewMessage;
use crate::preferences::Preferences;
use crate::store::Completion;
use crate::store::MessagePatch;

const DAY: Millis = 86_400_000;

/// A finished message accepted `age` days before day 1,000, of
/// `template`, with a caller key.
fn old(n: i64, age: i64, template: &str) -> NewMessage {
    let at = (1_000 - age) * DAY;
    NewMessage {
        id: ulid::Ulid::from_parts(at as u64, n as u128).to_string(),
        template: Some(template.into()),
        reference_id: Some(format!("reference {n}")),
        created_at: at,
        not_before: at,
        ..message(n, at)
    }
}

/// Transactional messages lose their text after 90 days, marketing
/// after 30, and all go after 400 days with their attempts and keys; a
/// message not finished is left alone, and a second run finds nothing
/// to do. Preferences without an opt-out are forgotten after 400 days
/// idle; an opt-out is kept.
#[tokio::test]
async fn finished_messages_are_redacted_then_deleted_and_opt_outs_kept() {
    let store = memory_store().await;
    let messages = [
        old(1, 10, "order_confirmation"),  // fresh: kept whole
        old(2, 60, "churn_risk"),          // marketing, 60 days: redacted
        old(3, 60, "order_confirmation"),  // transactional, 60 days: kept
        old(4, 120, "order_confirmation"), // 120 days: redacted
        old(5, 500, "order_confirmation"), // 500 days: deleted
        old(6, 500, "order_confirmation"), // 500 days, still queued: left
    ];
    store.insert_batch(&messages).await.unwrap();
    // All but the last are finished (sent).
    let claimed = store
        .claim_due(
            crate::message::Lane::Transactional,
            1_000 * DAY,
            0,
            10,
            1_001 * DAY,
            "lease",
        )
        .await
        .unwrap();
    let completions: Vec<Completion> = claimed
        .iter()
        .filter(|l| l.message.id != messages[5].id)
        .map(|l| Completion {
            report: None,
            hop: None,
            watch_at: None,
            message_id: l.message.id.clone(),
            lease: l.lease.clone(),
            patch: MessagePatch {
                status: Status::Sent,
                attempts: 1,
                updated_at: l.message.created_at,
                due_at: None,
                sent_at: Some(l.message.created_at),
                provider_message_id: Some("wamid".into()),
                error_code: None,
                error_message: None,
                waiting_for: None,
                lane: Default::default(),
            },
            attempt: None,
        })
        .collect();
    store.complete(completions).await.unwrap();
    for (phone, opt_out) in [("+919811111111", true), ("+919822222222", false)] {
        store
            .save_preferences(Preferences {
                opt_out_marketing: opt_out,
                ..Preferences::defaults_for(phone)
            })
            .await
            .unwrap();
    }

    let config = crate::config::PrivacyConfig {
        erasure_key: "unused".into(),
        redact_after: std::time::Duration::from_secs(90 * 86_400),
        redact_marketing_after: std::time::Duration::from_secs(30 * 86_400),
        delete_after: std::time::Duration::from_secs(400 * 86_400),
        retention_interval: std::time::Duration::from_secs(3600),
    };
    let marketing = vec!["churn_risk".to_string()];
    let now = 1_000 * DAY;
    // One run of every pass, in batches of 2: what it redacted and
    // what it deleted.
    let run = || async {
        let mut run = (0, 0);
        for pass in crate::retention::passes(&config, &marketing, now) {
            let mut count = |changed| match pass.action {
                Action::Redact => run.0 += changed,
                Action::Delete => run.1 += changed,
            };
            let mut after = None;
            loop {
                let (changed, last) = store.retention_revisit(&pass, now, after, 2).await.unwrap();
                count(changed);
                let Some(last) = last else { break };
                after = Some(last);
            }
            loop {
                let (changed, done) = store.retention_batch(&pass, now, 2).await.unwrap();
                count(changed);
                if done {
                    break;
                }
            }
        }
        run
    };
    let runs = [run().await, run().await];
    // Redacted: messages 2, 4 and 5 (5 on its way to deletion);
    // deleted: 5. The second run finds nothing to do.
    assert_eq!(runs, [(3, 1), (0, 0)]);

    let mut texts = Vec::new();
    for m in &messages {
        texts.push(
            store
                .message(&m.id)
                .await
                .unwrap()
                .map(|m| (m.text, m.reference_id)),
        );
    }
    let text = |n: usize| texts[n].clone();
    let whole = |n: usize| {
        Some((
            format!("message {}", n + 1),
            Some(format!("reference {}", n + 1)),
        ))
    };
    assert_eq!(text(0), whole(0));
    assert_eq!(text(1), Some((String::new(), None)));
    assert_eq!(text(2), whole(2));
    assert_eq!(text(3), Some((String::new(), None)));
    assert_eq!(text(4), None, "a message past 400 days stayed");
    assert_eq!(text(5), whole(5), "an unfinished message was touched");

    // Message 6 finishes after its passes went by: it was held, and
    // the next run redacts and deletes it. (Without the held list,
    // checked once, the third run found nothing and its text stayed.)
    // (Its first lease, never completed, ran out at day 1,001.)
    let claimed = store
        .claim_due(
            crate::message::Lane::Transactional,
            1_001 * DAY,
            0,
            10,
            1_002 * DAY,
            "lease 2",
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .complete(vec![Completion {
            report: None,
            hop: None,
            watch_at: None,
            message_id: messages[5].id.clone(),
            lease: claimed[0].lease.clone(),
            patch: MessagePatch {
                status: Status::Failed,
                attempts: 1,
                updated_at: now,
                due_at: None,
                sent_at: None,
                provider_message_id: None,
                error_code: Some("HTTP_400".into()),
                error_message: Some("message 6's error".into()),
                waiting_for: None,
                lane: Default::default(),
            },
            attempt: None,
        }])
        .await
        .unwrap();
    assert_eq!(run().await, (1, 1));
    assert!(store.message(&messages[5].id).await.unwrap().is_none());
    let held: Vec<surrealdb::types::Value> = store
        .db
        .query("SELECT * FROM retention_held")
        .await
        .unwrap()
        .take(0)
        .unwrap();
    assert!(held.is_empty(), "{held:?}");
    assert_eq!(run().await, (0, 0));

    // Preferences (saved just now): nothing is idle before now; after
    // now, the one without an opt-out goes and the opt-out stays.
    let saved_at = crate::message::now_millis();
    assert_eq!(
        store.forget_idle_preferences(saved_at - DAY).await.unwrap(),
        0
    );
    assert_eq!(
        store.forget_idle_preferences(saved_at + DAY).await.unwrap(),
        1
    );
    let kept = store
        .saved_preferences(&["+919811111111".into(), "+919822222222".into()])
        .await
        .unwrap();
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["+919811111111"]);
}
