//! The store-wide classification of personal data: every field of every
//! table, listed as erased (and exported) or as holding nothing personal,
//! and a test that fails on a field no one has classified and on any trace
//! of an erased customer left anywhere in the store.

use std::collections::{BTreeMap, BTreeSet};

use super::super::tests::{memory_store, message};
use super::*;
use crate::message::{Attempt, ErrorNote, NewMessage, Outcome, ProviderTemplate};
use crate::phone::Phone;
use crate::preferences::Preferences;
use crate::store::{Completion, MessagePatch};
use crate::webhooks::{InboundEvent, Reported, StatusEvent, WebhookEvent};

const ANA: &str = "+919876543210";
const BEN: &str = "+14155550100";

/// Every field the store keeps, by table, and whether it can hold a
/// phone number or what a message said. A field not listed here fails
/// [`every_field_is_classified_and_erasure_leaves_no_trace`]: a new one
/// must be erased, exported, or said to hold nothing personal.
const FIELDS: &[(&str, &[&str], &[&str])] = &[
    // (table, personal fields, fields that hold nothing personal)
    (
        "message",
        &[
            "phone",
            "text",
            "wa_parameters",
            "reference_id",
            "error_message",
            "provider_message_id",
            "fallbacks",
            "hops",
        ],
        &[
            "id",
            "status",
            "template",
            "template_version",
            "wa_template",
            "wa_language",
            "idempotency_key",
            "provider",
            "attempts",
            "created_at",
            "updated_at",
            "due_at",
            "sent_at",
            "error_code",
            "retry_base",
            "override_opt_out",
            "lease",
            "delivered_at",
            "read_at",
            "delivery_failed_at",
            "delivery_error_code",
            "callbacks",
            "cancelled_messages",
            "expires_at",
            "lane",
            "deliver_within_ms",
        ],
    ),
    (
        "attempt",
        &["error_message", "provider_message_id"],
        &[
            "id",
            "message_id",
            "number",
            "started_at",
            "provider",
            "provider_version",
            "outcome",
            "error_code",
            "retry_after_ms",
            "latency_ms",
        ],
    ),
    (
        "preference",
        &[
            "id",
            "phone",
            "opt_out_all",
            "opt_out_marketing",
            "opt_out_templates",
            "language",
            "timezone",
            "opt_in_source",
            "opt_in_at",
            "opt_in_wording",
            "opt_out_source",
            "opt_out_at",
            "updated_at",
        ],
        &[],
    ),
    // The key is the caller's (documented: keep personal data out of
    // keys); the fingerprint hashes the phone with the request.
    ("idempotency", &["fingerprint"], &["id", "message"]),
    ("waiting", &[], &["id", "provider"]),
    ("erasure", &[], &["id", "at"]),
    ("retention", &[], &["id", "last"]),
    // `<pass>/<message id>`: an unfinished message a pass will come
    // back to.
    ("retention_held", &[], &["id"]),
    (
        "template",
        &[],
        &["id", "name", "version", "def", "saved_at"],
    ),
    (
        "template_version",
        &[],
        &["id", "name", "version", "def", "saved_at"],
    ),
    ("store_layout", &[], &["id", "version"]),
    // Webhooks: what a provider accepted, before it is applied ...
    (
        "webhook_inbox",
        &[
            "phone",
            "text",
            "reply_to",
            "provider_message_id",
            "error_message",
        ],
        &[
            "id",
            "plugin",
            "event_id",
            "received_at",
            "at",
            "state",
            "error_code",
        ],
    ),
    // ... a message's receipts (id: [message, state, time]; a
    // platform's event id may hold its message id) ...
    (
        "receipt",
        &["error_message", "event_id"],
        &["id", "plugin", "error_code", "received_at"],
    ),
    // ... receipts for platform ids no message has: no phone, and
    // forgotten after CHIRP_WEBHOOK_UNMATCHED_FOR ...
    (
        "receipt_unmatched",
        &[],
        &[
            "id",
            "plugin",
            "event_id",
            "error_code",
            "error_message",
            "received_at",
        ],
    ),
    // ... what customers wrote (id: [phone, time, event]) ...
    (
        "inbound",
        &["id", "text", "reply_to"],
        &["plugin", "received_at"],
    ),
    // ... and the message a platform id names (id: [plugin, id]).
    ("sent_id", &["id"], &["message"]),
    // Status callbacks (id: [message, endpoint, time, state]): the
    // caller's reference and the reason (an error can quote the
    // customer) are personal; the posts hold the receiver's answers.
    (
        "callback",
        &["reference_id", "reason"],
        &[
            "id",
            "message",
            "endpoint",
            "webhook_id",
            "state",
            "at",
            "template",
            "error_code",
            "due_at",
            "outcome",
            "attempts",
            "first_tried_at",
            "delivered_at",
        ],
    ),
    (
        "callback_attempt",
        &[],
        &["id", "at", "status", "latency_ms", "error"],
    ),
    // The endpoints: the operator's and admins' data, no customer's.
    (
        "callback_endpoint",
        &[],
        &[
            "id",
            "url",
            "scope",
            "secrets",
            "description",
            "created_at",
            "created_by",
        ],
    ),
    // Settings an admin changed, and their audit: no customer's data.
    ("setting", &[], &["id", "chosen"]),
    (
        "setting_change",
        &[],
        &["id", "setting", "from", "to", "at", "by"],
    ),
];

/// A message for `phone` with personal data in every field that can
/// hold it, under caller key `key`.
fn personal(phone: &str, key: &str, secret: &str) -> NewMessage {
    NewMessage {
        phone: Phone::parse(phone).unwrap(),
        idempotency_key: key.into(),
        template: Some("order_confirmation".into()),
        template_version: Some(1),
        text: format!("text of {secret}"),
        provider_template: Some(ProviderTemplate {
            name: "order_confirmation".into(),
            language: "en".into(),
            parameters: vec![format!("variable of {secret}")],
        }),
        reference_id: Some(format!("reference of {secret}")),
        fingerprint: format!("fingerprint of {secret}"),
        callbacks: vec!["endpoint-1".into()],
        ..message(0, 1_000)
    }
}

/// Every row of every table, as text, and the fields seen per table.
async fn dump(store: &Store) -> (String, BTreeMap<String, BTreeSet<String>>) {
    let tables: Vec<String> = store
        .db
        .query("RETURN object::keys((INFO FOR DB).tables)")
        .await
        .unwrap()
        .take(0)
        .unwrap();
    assert!(tables.contains(&"message".to_string()), "{tables:?}");
    let mut text = String::new();
    let mut fields = BTreeMap::new();
    for table in tables {
        let rows: Vec<surrealdb::types::Value> = store
            .db
            .query("SELECT * FROM type::table($t)")
            .bind(("t", table.clone()))
            .await
            .unwrap()
            .take(0)
            .unwrap();
        text.push_str(&format!("{table}: {rows:?}\n"));
        let keys: Vec<Vec<String>> = store
            .db
            .query("SELECT VALUE object::keys($this) FROM type::table($t)")
            .bind(("t", table.clone()))
            .await
            .unwrap()
            .take(0)
            .unwrap();
        fields
            .entry(table)
            .or_insert_with(BTreeSet::new)
            .extend(keys.into_iter().flatten());
    }
    (text, fields)
}

/// Every field the store holds is classified; erasing Ana leaves none
/// of her phone, texts, variables, references, errors or platform ids
/// anywhere in the store, and leaves Ben's. (Before the erasure the
/// same search finds each of them: the test can fail.)
#[tokio::test]
async fn every_field_is_classified_and_erasure_leaves_no_trace() {
    let store = memory_store().await;
    let scheduled = NewMessage {
        not_before: 9_000_000,
        ..personal(ANA, "ana-2", "ana-scheduled")
    };
    let ana = personal(ANA, "ana-1", "ana-secret");
    let ben = personal(BEN, "ben-1", "ben-secret");
    store
        .insert_batch(&[ana.clone(), scheduled, ben.clone()])
        .await
        .unwrap();
    // Ana's first message and Ben's go out, each with an attempt whose
    // error is personal.
    let claimed = store
        .claim_due(
            crate::message::Lane::Transactional,
            2_000,
            0,
            10,
            60_000,
            "lease",
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let completions = claimed
        .iter()
        .map(|leased| {
            let who = if leased.message.phone == ANA {
                "ana"
            } else {
                "ben"
            };
            Completion {
                message_id: leased.message.id.clone(),
                lease: leased.lease.clone(),
                report: None,
                hop: None,
                watch_at: None,
                // Ana's was sent, with a platform id; Ben's waits for
                // a retry.
                patch: MessagePatch {
                    status: if who == "ana" {
                        Status::Sent
                    } else {
                        Status::Queued
                    },
                    attempts: 1,
                    updated_at: 2_000,
                    due_at: (who == "ben").then_some(3_000),
                    sent_at: (who == "ana").then_some(2_000),
                    provider_message_id: (who == "ana").then(|| "wamid.ana-secret".into()),
                    error_code: Some("HTTP_500".into()),
                    error_message: Some(format!("error of {who}-secret")),
                    waiting_for: None,
                    lane: Default::default(),
                },
                attempt: Some(Attempt {
                    message_id: leased.message.id.clone(),
                    number: 1,
                    started_at: 2_000,
                    provider: "myoperator".into(),
                    provider_version: "0.1.0".into(),
                    outcome: Outcome::Retryable {
                        error: ErrorNote {
                            code: "HTTP_500".into(),
                            message: format!("attempt error of {who}-secret"),
                        },
                        retry_after: None,
                    },
                    latency_ms: 5,
                }),
            }
        })
        .collect();
    store.complete(completions).await.unwrap();
    for phone in [ANA, BEN] {
        store
            .save_preferences(Preferences {
                opt_out_marketing: true,
                language: Some("hi".into()),
                ..Preferences::defaults_for(phone)
            })
            .await
            .unwrap();
    }

    // The platform reports: Ana's message failed after all (a receipt
    // on her message), a receipt for an id no message has, and Ana
    // and Ben wrote back; one more of Ana's waits in the inbox.
    let status = |id: &str, state, error: Option<&str>| {
        WebhookEvent::Status(StatusEvent {
            event_id: format!("event-{id}"),
            provider_message_id: id.into(),
            state,
            at: 4_000,
            error: error.map(|e| ErrorNote {
                code: "131026".into(),
                message: e.into(),
            }),
        })
    };
    let reply = |phone: &str, text: &str| {
        WebhookEvent::Inbound(InboundEvent {
            event_id: format!("event-{text}"),
            from: Phone::parse(phone).unwrap(),
            text: text.into(),
            at: 4_500,
            reply_to: Some(format!("wamid.{text}")),
        })
    };
    store
        .enqueue_webhook_events(
            "myoperator",
            &[
                status(
                    "wamid.ana-secret",
                    Reported::Failed,
                    Some("receipt error of ana-secret"),
                ),
                status("wamid.nobody", Reported::Delivered, None),
                reply(ANA, "reply of ana-secret"),
                reply(BEN, "reply of ben-secret"),
            ],
            4_600,
        )
        .await
        .unwrap();
    let inbox = store.webhook_inbox(100).await.unwrap();
    let (applied, unmatched) = store.apply_webhook_events(&inbox).await.unwrap();
    assert_eq!(
        (applied.receipts, applied.inbound, unmatched.len()),
        (1, 2, 1)
    );
    store
        .enqueue_webhook_events("myoperator", &[reply(ANA, "inbox of ana-secret")], 4_700)
        .await
        .unwrap();

    let (before, fields) = dump(&store).await;
    let ana_traces = [
        ANA,
        "ana-secret",
        "ana-scheduled",
        "error of ana",
        "wamid.ana",
    ];
    for trace in ana_traces {
        assert!(before.contains(trace), "{trace} not found before erasure");
    }
    let mut unclassified = Vec::new();
    for (table, seen) in &fields {
        let known = FIELDS.iter().find(|(t, ..)| t == table);
        for field in seen {
            let classified = known.is_some_and(|(_, personal, other)| {
                personal.contains(&field.as_str()) || other.contains(&field.as_str())
            });
            if !classified {
                unclassified.push(format!("{table}.{field}"));
            }
        }
    }
    assert!(
        unclassified.is_empty(),
        "fields no one has said are erased, exported or not personal: {unclassified:?}"
    );

    let key = crate::customers::ErasureKey::from_bytes([7; 32]);
    let name = key.name_of(ANA);
    let erased = store.erase(ANA, &name, 5_000).await.unwrap();
    assert_eq!(
        erased,
        Erased {
            messages: 2,
            cancelled: 1,
            attempts: 1,
            preferences: true,
            keys: 2,
            inbound: 1,
        }
    );
    let (after, _) = dump(&store).await;
    for trace in ana_traces {
        assert!(
            !after.contains(trace),
            "{trace} survived the erasure:\n{after}"
        );
    }
    for trace in [BEN, "ben-secret", "error of ben", "reply of ben"] {
        assert!(after.contains(trace), "{trace} was erased with Ana");
    }
    assert!(after.contains(&name), "the erasure is not recorded");

    // What stays of Ana's messages is what the audit needs.
    let data = store.customer_data(ERASED_PHONE, &name).await.unwrap();
    assert_eq!(data.messages.len(), 2);
    let statuses: BTreeSet<Status> = data.messages.iter().map(|(m, ..)| m.status).collect();
    assert_eq!(statuses, BTreeSet::from([Status::Sent, Status::Cancelled]));
    assert!(data.messages.iter().all(|(m, ..)| m.template.is_some()));
    let trail: usize = data.messages.iter().map(|(_, a, _)| a.len()).sum();
    assert_eq!(trail, 1, "the audit trail lost an attempt");
    // The receipt stays, without its explanation; the delivery facts
    // stay on the message.
    let receipts: Vec<_> = data.messages.iter().flat_map(|(_, _, r)| r).collect();
    assert_eq!(receipts.len(), 1, "the audit trail lost a receipt");
    assert_eq!(
        receipts[0].error.as_ref().map(|e| e.message.as_str()),
        Some("")
    );
    assert!(
        data.messages
            .iter()
            .any(|(m, ..)| m.delivery.failed.is_some())
    );

    // Access: Ben's data, whole; Ana's, nothing but the erasure.
    let ben_data = store.customer_data(BEN, &key.name_of(BEN)).await.unwrap();
    assert_eq!(ben_data.messages.len(), 1);
    assert_eq!(ben_data.messages[0].0.text, "text of ben-secret");
    assert_eq!(ben_data.messages[0].1.len(), 1);
    assert_eq!(ben_data.inbound.len(), 1);
    assert_eq!(ben_data.inbound[0].text, "reply of ben-secret");
    assert!(ben_data.preferences.is_some());
    assert_eq!(ben_data.erased_at, None);
    let ana_data = store.customer_data(ANA, &name).await.unwrap();
    assert!(ana_data.messages.is_empty() && ana_data.preferences.is_none());
    assert_eq!(ana_data.erased_at, Some(5_000));
}
