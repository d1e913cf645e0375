//! The `message` and `attempt` tables' rows, as chirp writes and reads
//! them, and the ids of attempts.

use std::ops::Bound;

use surrealdb::types::{Array, RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue, Value};

use crate::message::{
    Attempt, ErrorNote, Hop, Lane, Message, Millis, NewMessage, Outcome, ProviderTemplate, Route,
    Status,
};
use crate::store::StoreError;

/// The fields of a message as chirp reads them back.
pub(super) const MESSAGE_FIELDS: &str = "id, status, phone, template, template_version, text, wa_template, \
     wa_language, wa_parameters, reference_id, idempotency_key, provider, attempts, created_at, \
     updated_at, due_at, sent_at, provider_message_id, error_code, error_message, retry_base, \
     override_opt_out, delivered_at, read_at, delivery_failed_at, delivery_error_code, callbacks, \
     cancelled_messages, expires_at, lane, fallbacks, hops, deliver_within_ms";

/// Where the marketing lane's due times lie in the `message_due` index:
/// a queued marketing message's `due_at` is stored this far past its due
/// time, so the two lanes take disjoint ranges of one index
/// (transactional `0..=MAX_MILLIS`, marketing `MARKETING_LANE..`), and a
/// claim reads either lane's due messages, oldest first, without walking
/// the other's. 2^48 ms lies past `MAX_MILLIS`. Only rows know it:
/// [`MessageRow::into_message`] gives back the due time itself.
pub(in crate::store) const MARKETING_LANE: Millis = 1 << 48;

/// Where `lane`'s due times start in the index.
pub(in crate::store) fn lane_offset(lane: Lane) -> Millis {
    match lane {
        Lane::Transactional => 0,
        Lane::Marketing => MARKETING_LANE,
    }
}

/// A due time as stored -> the due time itself, whatever its lane.
pub(in crate::store) fn unshifted(stored_due: Millis) -> Millis {
    if stored_due >= MARKETING_LANE {
        stored_due - MARKETING_LANE
    } else {
        stored_due
    }
}

/// The stored due times of `lane` from `floor` up to `now`: transactional
/// times never reach into the marketing lane's range.
pub(in crate::store) fn lane_range(lane: Lane, floor: Millis, now: Millis) -> (Millis, Millis) {
    let clamp = |t: Millis| t.clamp(0, crate::message::MAX_MILLIS);
    let offset = lane_offset(lane);
    (clamp(floor) + offset, clamp(now) + offset)
}

/// How rows spell a lane; transactional is written as no field.
pub(in crate::store) const MARKETING: &str = "marketing";

#[derive(Debug, Clone, SurrealValue)]
pub(super) struct MessageRow {
    pub(super) id: RecordId,
    pub(super) status: String,
    pub(super) phone: String,
    pub(super) template: Option<String>,
    pub(super) template_version: Option<i64>,
    pub(super) text: String,
    pub(super) wa_template: Option<String>,
    pub(super) wa_language: Option<String>,
    pub(super) wa_parameters: Option<Vec<String>>,
    pub(super) reference_id: Option<String>,
    pub(super) idempotency_key: String,
    pub(super) provider: String,
    pub(super) attempts: i64,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) due_at: Option<i64>,
    pub(super) sent_at: Option<i64>,
    pub(super) provider_message_id: Option<String>,
    pub(super) error_code: Option<String>,
    pub(super) error_message: Option<String>,
    pub(super) retry_base: Option<i64>,
    /// Written only when set.
    pub(super) override_opt_out: Option<bool>,
    /// The delivery receipts' facts (`crate::status::Delivery`), written
    /// only by the receipts' applier.
    pub(super) delivered_at: Option<i64>,
    pub(super) read_at: Option<i64>,
    pub(super) delivery_failed_at: Option<i64>,
    pub(super) delivery_error_code: Option<String>,
    /// The callback endpoints it reports to; written only when there are
    /// some.
    pub(in crate::store) callbacks: Option<Vec<String>>,
    /// The earlier messages the event that made this one cancelled.
    pub(super) cancelled_messages: Option<Vec<String>>,
    /// After this it is never sent; written only when set.
    pub(super) expires_at: Option<i64>,
    /// `marketing` for the marketing lane; none: transactional.
    pub(super) lane: Option<String>,
    /// The routes it may still fall back to; written only when there are
    /// some.
    pub(in crate::store) fallbacks: Option<Vec<RouteRow>>,
    /// The routes it left; written only by a hop.
    pub(in crate::store) hops: Option<Vec<HopRow>>,
    /// Written only with fallbacks.
    pub(super) deliver_within_ms: Option<i64>,
}

/// A [`Route`] as stored.
#[derive(Debug, Clone, SurrealValue)]
pub(in crate::store) struct RouteRow {
    pub(in crate::store) channel: String,
    pub(in crate::store) provider: String,
    pub(in crate::store) wa_template: Option<String>,
    pub(in crate::store) wa_language: Option<String>,
    pub(in crate::store) wa_parameters: Option<Vec<String>>,
}

impl From<&Route> for RouteRow {
    fn from(r: &Route) -> RouteRow {
        let t = r.template.as_ref();
        RouteRow {
            channel: r.channel.clone(),
            provider: r.provider.clone(),
            wa_template: t.map(|t| t.name.clone()),
            wa_language: t.map(|t| t.language.clone()),
            wa_parameters: t.map(|t| t.parameters.clone()),
        }
    }
}

impl From<RouteRow> for Route {
    fn from(r: RouteRow) -> Route {
        Route {
            channel: r.channel,
            provider: r.provider,
            template: provider_template(r.wa_template, r.wa_language, r.wa_parameters),
        }
    }
}

/// A [`Hop`] as stored.
#[derive(Debug, Clone, SurrealValue)]
pub(in crate::store) struct HopRow {
    pub(in crate::store) at: i64,
    pub(in crate::store) from: String,
    pub(in crate::store) to: String,
    pub(in crate::store) channel: String,
    pub(in crate::store) code: String,
    pub(in crate::store) reason: String,
}

impl From<&Hop> for HopRow {
    fn from(h: &Hop) -> HopRow {
        HopRow {
            at: h.at,
            from: h.from.clone(),
            to: h.to.clone(),
            channel: h.channel.clone(),
            code: h.reason.code.clone(),
            reason: h.reason.message.clone(),
        }
    }
}

fn provider_template(
    name: Option<String>,
    language: Option<String>,
    parameters: Option<Vec<String>>,
) -> Option<ProviderTemplate> {
    match (name, language) {
        (Some(name), Some(language)) => Some(ProviderTemplate {
            name,
            language,
            parameters: parameters.unwrap_or_default(),
        }),
        _ => None,
    }
}

impl MessageRow {
    pub(super) fn from_new(m: &NewMessage) -> MessageRow {
        let wa = m.provider_template.as_ref();
        let skipped = m.skip.as_ref();
        MessageRow {
            id: RecordId::new("message", m.id.as_str()),
            status: m.initial_status().as_str().into(),
            phone: m.phone.as_str().into(),
            template: m.template.clone(),
            template_version: m.template_version.map(i64::from),
            text: m.text.clone(),
            wa_template: wa.map(|t| t.name.clone()),
            wa_language: wa.map(|t| t.language.clone()),
            wa_parameters: wa.map(|t| t.parameters.clone()),
            reference_id: m.reference_id.clone(),
            idempotency_key: m.idempotency_key.clone(),
            provider: m.provider.clone(),
            attempts: 0,
            created_at: m.created_at,
            updated_at: m.created_at,
            due_at: skipped
                .is_none()
                .then_some(m.not_before + lane_offset(m.lane)),
            sent_at: None,
            provider_message_id: None,
            error_code: skipped.map(|s| s.code.clone()),
            error_message: skipped.map(|s| s.message.clone()),
            retry_base: None,
            override_opt_out: m.override_opt_out.then_some(true),
            delivered_at: None,
            read_at: None,
            delivery_failed_at: None,
            delivery_error_code: None,
            callbacks: (!m.callbacks.is_empty()).then(|| m.callbacks.clone()),
            cancelled_messages: None,
            expires_at: m.expires_at,
            lane: (m.lane == Lane::Marketing).then(|| MARKETING.to_string()),
            fallbacks: (!m.fallbacks.is_empty())
                .then(|| m.fallbacks.iter().map(RouteRow::from).collect()),
            hops: None,
            deliver_within_ms: m.deliver_within_ms,
        }
    }

    pub(super) fn into_message(self) -> Result<Message, StoreError> {
        let status = self
            .status
            .parse()
            .map_err(|e: crate::status::UnknownStatus| StoreError::Corrupt(e.to_string()))?;
        let provider_template =
            provider_template(self.wa_template, self.wa_language, self.wa_parameters);
        // While a message is `sending`, `due_at` holds when its lease runs
        // out; callers see no next attempt until the attempt is recorded.
        let due_at = if status == Status::Sending {
            None
        } else {
            self.due_at.map(unshifted)
        };
        let lane = match self.lane.as_deref() {
            Some(MARKETING) => Lane::Marketing,
            _ => Lane::Transactional,
        };
        let last_error = self.error_code.map(|code| ErrorNote {
            code,
            message: self.error_message.unwrap_or_default(),
        });
        let id = match self.id.key {
            RecordIdKey::String(id) => id,
            other => return Err(StoreError::Corrupt(format!("message id {other:?}"))),
        };
        Ok(Message {
            id,
            status,
            phone: self.phone,
            template: self.template,
            template_version: self.template_version.map(|v| v.max(0) as u32),
            text: self.text,
            provider_template,
            reference_id: self.reference_id,
            idempotency_key: self.idempotency_key,
            provider: self.provider,
            attempts: self.attempts.max(0) as u32,
            retry_base: self.retry_base.unwrap_or(0).max(0) as u32,
            created_at: self.created_at,
            updated_at: self.updated_at,
            due_at,
            expires_at: self.expires_at,
            lane,
            deliver_within_ms: self.deliver_within_ms,
            fallbacks: self
                .fallbacks
                .unwrap_or_default()
                .into_iter()
                .map(Route::from)
                .collect(),
            hops: self
                .hops
                .unwrap_or_default()
                .into_iter()
                .map(|h| Hop {
                    at: h.at,
                    from: h.from,
                    to: h.to,
                    channel: h.channel,
                    reason: ErrorNote {
                        code: h.code,
                        message: h.reason,
                    },
                })
                .collect(),
            sent_at: self.sent_at,
            provider_message_id: self.provider_message_id,
            last_error,
            override_opt_out: self.override_opt_out.unwrap_or(false),
            delivery: crate::status::Delivery {
                delivered_at: self.delivered_at,
                read_at: self.read_at,
                failed: self.delivery_failed_at.zip(self.delivery_error_code),
            },
            callbacks: self.callbacks.unwrap_or_default(),
            cancelled_messages: self.cancelled_messages.unwrap_or_default(),
        })
    }
}

/// An attempt as the `attempt` table keeps it. Its record id is
/// `[message_id, number, tag]` ([`attempt_id`]), so a message's audit
/// trail is a range of ids and the table needs no index.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct AttemptRow {
    /// Set when inserting; reads omit it.
    pub(super) id: Option<RecordId>,
    pub(super) message_id: String,
    pub(super) number: i64,
    pub(super) started_at: i64,
    pub(super) provider: String,
    pub(super) provider_version: String,
    pub(super) outcome: String,
    pub(super) provider_message_id: Option<String>,
    pub(super) error_code: Option<String>,
    pub(super) error_message: Option<String>,
    pub(super) retry_after_ms: Option<i64>,
    pub(super) latency_ms: i64,
}

/// The record id of an attempt: its message, its number, and a tag that
/// tells apart two attempts with the same number (the lease it was made
/// under: a lease that ran out and its successor can both record one).
pub(super) fn attempt_id(message_id: &str, number: u32, tag: &str) -> RecordId {
    let key: Vec<Value> = vec![
        message_id.to_string().into_value(),
        i64::from(number).into_value(),
        tag.to_string().into_value(),
    ];
    RecordId::new("attempt", Array::from(key))
}

/// The string key of a message's record id (message ids are ULIDs).
pub(in crate::store) fn message_key(id: &RecordId) -> String {
    match &id.key {
        RecordIdKey::String(key) => key.clone(),
        other => format!("{other:?}"),
    }
}

/// Every attempt id of one message.
pub(super) fn attempts_of(message_id: &str) -> RecordId {
    let bound = |number: i64| -> RecordIdKey {
        let key: Vec<Value> = vec![message_id.to_string().into_value(), number.into_value()];
        Array::from(key).into()
    };
    RecordId::new(
        "attempt",
        RecordIdKeyRange {
            start: Bound::Included(bound(i64::MIN)),
            end: Bound::Excluded(bound(i64::MAX)),
        },
    )
}

impl AttemptRow {
    pub(super) fn from_attempt(a: &Attempt, lease: &str) -> AttemptRow {
        let provider_message_id = a.outcome.provider_message_id().cloned();
        let retry_after_ms = a
            .outcome
            .retry_after_ms()
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        let error = a.outcome.error();
        AttemptRow {
            id: Some(attempt_id(&a.message_id, a.number, lease)),
            message_id: a.message_id.clone(),
            number: a.number.into(),
            started_at: a.started_at,
            provider: a.provider.clone(),
            provider_version: a.provider_version.clone(),
            outcome: a.outcome.label().into(),
            provider_message_id,
            error_code: error.map(|e| e.code.clone()),
            error_message: error.map(|e| e.message.clone()),
            retry_after_ms,
            latency_ms: a.latency_ms as i64,
        }
    }

    pub(super) fn into_attempt(self) -> Result<Attempt, StoreError> {
        let error = ErrorNote {
            code: self.error_code.unwrap_or_default(),
            message: self.error_message.unwrap_or_default(),
        };
        let outcome = match self.outcome.as_str() {
            "sent" => Outcome::Sent {
                provider_message_id: self.provider_message_id,
            },
            "retryable" => Outcome::Retryable {
                error,
                retry_after: self
                    .retry_after_ms
                    .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
            },
            "permanent" => Outcome::Permanent { error },
            other => return Err(StoreError::Corrupt(format!("attempt outcome {other:?}"))),
        };
        Ok(Attempt {
            message_id: self.message_id,
            number: self.number.max(0) as u32,
            started_at: self.started_at,
            provider: self.provider,
            provider_version: self.provider_version,
            outcome,
            latency_ms: self.latency_ms.max(0) as u64,
        })
    }
}
