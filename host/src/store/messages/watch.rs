//! Sends waiting for their `delivered`: `delivery_watch:[when, message]`,
//! written with a send's completion when the message has a route left and
//! its provider reports receipts; read back when due, and the message
//! moved to its next route if the platform never said `delivered`.

use std::ops::Bound;

use surrealdb::types::{Array, RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue, Value};

use super::complete::RouteChangeRow;
use super::rows::{MARKETING, MARKETING_LANE};
use crate::callbacks::Report;
use crate::message::{Millis, RouteChange};
use crate::status::{Status, Transition};
use crate::store::callbacks::change_rows;
use crate::store::{Store, StoreError};

/// A watch that came due: which message, and the watch's own id.
#[derive(Debug, Clone)]
pub struct DueWatch {
    /// The message sent.
    pub message_id: String,
    /// The watch, to forget it.
    id: RecordId,
}

impl Store {
    /// Up to `limit` watches due at `now`, oldest first.
    pub async fn undelivered_due(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<DueWatch>, StoreError> {
        let bound = |at: Millis| -> RecordIdKey {
            let key: Vec<Value> = vec![at.into_value()];
            Array::from(key).into()
        };
        let range = RecordId::new(
            "delivery_watch",
            RecordIdKeyRange {
                start: Bound::Included(bound(0)),
                end: Bound::Excluded(bound(now.saturating_add(1))),
            },
        );
        let ids: Vec<RecordId> = self
            .db
            .query("SELECT VALUE id FROM $range LIMIT $limit")
            .bind(("range", range))
            .bind(("limit", limit as i64))
            .await?
            .take(0)?;
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                let RecordIdKey::Array(key) = &id.key else {
                    return None;
                };
                let message_id = match key.get(1) {
                    Some(Value::String(s)) => s.clone(),
                    _ => return None,
                };
                Some(DueWatch { message_id, id })
            })
            .collect())
    }

    /// Moves a sent message to its next route (`change`, with `report` for
    /// its callbacks) if the platform has said neither `delivered` nor
    /// `read`, and forgets the watch, in one transaction. Returns whether
    /// it moved: a receipt that landed first keeps it where it is.
    pub async fn fall_back_undelivered(
        &self,
        watch: &DueWatch,
        change: Option<RouteChange>,
        report: Option<Report>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let callbacks = report
            .as_ref()
            .map(|r| change_rows(&r.change, &r.endpoints))
            .unwrap_or_default();
        let change: Option<RouteChangeRow> = change.map(Into::into);
        self.write(async {
            let mut response = self
                .db
                .query(
                    "{
                         LET $moved = IF $change = NONE { [] } ELSE {
                             UPDATE type::record('message', $id) SET status = $to,
                                 due_at = IF lane = $marketing { $now + $offset } ELSE { $now },
                                 provider = $change.provider, wa_template = $change.wa_template,
                                 wa_language = $change.wa_language,
                                 wa_parameters = $change.wa_parameters, fallbacks = $change.rest,
                                 hops = $change.hops, retry_base = attempts, updated_at = $now
                             WHERE status IN $from AND delivered_at = NONE AND read_at = NONE
                             RETURN VALUE id
                         };
                         IF array::len($moved) > 0 AND array::len($callbacks) > 0 {
                             INSERT IGNORE INTO callback $callbacks RETURN NONE;
                         };
                         DELETE $watch RETURN NONE;
                         RETURN array::len($moved) > 0;
                     }",
                )
                .bind(("id", watch.message_id.clone()))
                .bind(("watch", watch.id.clone()))
                .bind(("change", change))
                .bind(("callbacks", callbacks))
                .bind(("from", vec![Status::Sent.as_str()]))
                .bind(("to", Transition::FallBack.to().as_str()))
                .bind(("marketing", MARKETING))
                .bind(("offset", MARKETING_LANE))
                .bind(("now", now))
                .await?;
            let moved: Option<bool> = response.take(0)?;
            Ok(moved.unwrap_or(false))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ErrorNote, Route};
    use crate::store::messages::tests::{memory_store, message};

    /// A watch comes due at its time; a receipt that landed first keeps
    /// the message on its route, and either way the watch is forgotten.
    #[tokio::test]
    async fn an_undelivered_send_moves_on_and_a_delivered_one_stays() {
        let store = memory_store().await;
        let mut sent = Vec::new();
        for n in 0..2 {
            let mut m = message(n, 1_000);
            m.fallbacks = vec![Route {
                channel: "sms".into(),
                provider: "msg91-sms".into(),
                template: None,
            }];
            store
                .insert_batch(std::slice::from_ref(&m))
                .await
                .expect("insert");
            store
                .db
                .query(format!(
                    "UPDATE type::record('message', $id) SET status = 'sent', due_at = NONE{}",
                    if n == 1 { ", delivered_at = 1500" } else { "" }
                ))
                .bind(("id", m.id.clone()))
                .await
                .expect("sent");
            store
                .db
                .query("UPSERT $watch")
                .bind(("watch", super::super::complete::watch_id(2_000, &m.id)))
                .await
                .expect("watch");
            sent.push(m.id);
        }
        assert!(
            store
                .undelivered_due(1_999, 10)
                .await
                .expect("due")
                .is_empty()
        );
        let due = store.undelivered_due(2_000, 10).await.expect("due");
        assert_eq!(due.len(), 2);
        for watch in &due {
            let message = store
                .message(&watch.message_id)
                .await
                .expect("read")
                .expect("there");
            let why = ErrorNote {
                code: "not_delivered".into(),
                message: "no delivered".into(),
            };
            let moved = store
                .fall_back_undelivered(watch, message.next_route(why, 2_000), None, 2_000)
                .await
                .expect("fall back");
            assert_eq!(moved, watch.message_id == sent[0], "{}", watch.message_id);
        }
        let moved = store.message(&sent[0]).await.expect("read").expect("there");
        assert_eq!(moved.status, Status::Queued);
        assert_eq!(moved.provider, "msg91-sms");
        assert_eq!(moved.due_at, Some(2_000));
        assert_eq!(moved.hops.len(), 1);
        let stayed = store.message(&sent[1]).await.expect("read").expect("there");
        assert_eq!(stayed.status, Status::Sent);
        assert!(
            store
                .undelivered_due(10_000, 10)
                .await
                .expect("due")
                .is_empty()
        );
    }
}
