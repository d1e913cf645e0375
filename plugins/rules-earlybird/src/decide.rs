//! EarlyBird's mapping from business events to message templates, as pure
//! functions of the event (the host passes the time in), unit-tested
//! natively.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

/// Where EarlyBird's customers are, unless their profile says otherwise.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Kolkata;
/// Marketing goes out only between these local hours.
pub const QUIET_HOURS_END: u32 = 9;
pub const QUIET_HOURS_START: u32 = 21;
/// The evening before a delivery, when its reminder goes out.
pub const REMINDER_HOUR: u32 = 18;

/// The event kinds these rules handle, and the templates each leads to.
pub const KINDS: [(&str, &[&str]); 9] = [
    (
        "order.created",
        &["order_confirmation", "delivery_reminder"],
    ),
    ("subscription.created", &["subscription_confirmation"]),
    ("delivery.confirmed", &["delivery_confirmed"]),
    ("payment.recorded", &["payment_confirmation"]),
    ("subscription.paused", &["pause_confirmation"]),
    ("delivery.delayed", &["delivery_delayed"]),
    ("product.launched", &["new_product"]),
    ("payment.due", &["payment_reminder"]),
    ("customer.churn_risk", &["churn_risk"]),
];

/// What an event takes back of what earlier events of its reference asked
/// for, and why: a paused subscription gets no delivery reminders, a
/// recorded payment no payment reminders.
pub fn cancels(kind: &str) -> Vec<(Vec<&'static str>, &'static str)> {
    match kind {
        "subscription.paused" => vec![(vec!["delivery_reminder"], "subscription paused")],
        "payment.recorded" => vec![(vec!["payment_reminder"], "payment recorded")],
        _ => Vec::new(),
    }
}

/// The route EarlyBird escalates to: its MSG91 account, under the name
/// its operator gives the component's file.
pub const SMS_ROUTE: &str = "sms:msg91-sms";

/// The fallback chain of each template `kind` leads to where EarlyBird's
/// policy sets one: order, delivery and payment messages reach the
/// customer by SMS when WhatsApp cannot; marketing never escalates,
/// whatever its template says. Templates not named keep their own.
pub fn routes(kind: &str) -> Vec<(&'static str, Vec<&'static str>)> {
    let templates = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&[][..], |(_, t)| *t);
    templates
        .iter()
        .filter_map(|&template| match template {
            "order_confirmation"
            | "delivery_reminder"
            | "delivery_confirmed"
            | "delivery_delayed"
            | "payment_confirmation"
            | "payment_reminder" => Some((template, vec![SMS_ROUTE])),
            "new_product" | "churn_risk" => Some((template, Vec::new())),
            _ => None,
        })
        .collect()
}

/// The variables each template needs from the event's payload.
fn variables_of(template: &str) -> &'static [&'static str] {
    match template {
        "order_confirmation" => &["order_id", "delivery_date", "total_amount"],
        "delivery_reminder" | "delivery_confirmed" => &["delivery_date"],
        "subscription_confirmation" => &["product", "start_date"],
        "payment_confirmation" => &["amount", "month", "payment_method"],
        "pause_confirmation" => &["resume_date"],
        "delivery_delayed" => &["eta_time"],
        "new_product" => &["product", "availability_date"],
        "payment_reminder" => &["amount", "period"],
        _ => &[],
    }
}

fn is_marketing(template: &str) -> bool {
    matches!(template, "churn_risk" | "new_product")
}

/// The recipient, as far as the rules care.
#[derive(Debug, Clone, Default)]
pub struct Recipient {
    pub language: Option<String>,
    pub timezone: Option<String>,
    pub opt_outs: Vec<String>,
}

/// One decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Send {
        template: String,
        language: String,
        variables: Map<String, Value>,
        not_before_ms: Option<u64>,
    },
    Skip {
        template: String,
        reason: String,
    },
}

/// The decisions for one event.
pub fn decide(
    kind: &str,
    payload: &Map<String, Value>,
    recipient: &Recipient,
    now_ms: u64,
) -> Result<Vec<Decision>, String> {
    let templates = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let known: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            format!("unknown event kind {kind:?}; known: {}", known.join(", "))
        })?;
    let tz: Tz = match &recipient.timezone {
        None => DEFAULT_TIMEZONE,
        Some(name) => name
            .parse()
            .map_err(|_| format!("customer.timezone {name:?} is not an IANA time zone"))?,
    };
    let now = Utc
        .timestamp_millis_opt(now_ms as i64)
        .single()
        .ok_or("now-ms is out of range")?;
    let language = recipient.language.clone().unwrap_or_else(|| "en".into());

    let mut decisions = Vec::new();
    for template in templates {
        let mut variables = Map::new();
        for name in variables_of(template) {
            match payload.get(*name) {
                Some(v) if !v.is_null() => {
                    variables.insert((*name).to_string(), v.clone());
                }
                _ => return Err(format!("data.{name} is required for {kind}")),
            }
        }
        if let Some(reason) = opted_out(template, &recipient.opt_outs) {
            decisions.push(Decision::Skip {
                template: template.to_string(),
                reason,
            });
            continue;
        }
        let not_before = if is_marketing(template) {
            outside_quiet_hours(now, tz)
        } else if *template == "delivery_reminder" {
            reminder_time(&variables, now, tz)?
        } else {
            None
        };
        decisions.push(Decision::Send {
            template: template.to_string(),
            language: language.clone(),
            variables,
            not_before_ms: not_before.map(|t| t.timestamp_millis() as u64),
        });
    }
    Ok(decisions)
}

fn opted_out(template: &str, opt_outs: &[String]) -> Option<String> {
    let has = |s: &str| opt_outs.iter().any(|o| o == s);
    if has("all") {
        Some("recipient opted out of all messages".into())
    } else if is_marketing(template) && has("marketing") {
        Some("recipient opted out of marketing".into())
    } else if has(template) {
        Some(format!("recipient opted out of {template}"))
    } else {
        None
    }
}

/// The next instant inside 09:00-21:00 local time, or `None` if `now` is
/// inside already.
pub fn outside_quiet_hours(now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&tz);
    let hour = chrono::Timelike::hour(&local);
    if (QUIET_HOURS_END..QUIET_HOURS_START).contains(&hour) {
        return None;
    }
    let day = if hour >= QUIET_HOURS_START {
        local.date_naive().succ_opt()?
    } else {
        local.date_naive()
    };
    at_local(day, QUIET_HOURS_END, tz)
}

/// The last day a time chirp stores may fall on (the host keeps times up
/// to 9999-12-31T23:59:59.999Z).
pub const LAST_DAY: (i32, u32, u32) = (9999, 12, 31);

/// A delivery reminder goes out at 18:00 local time the evening before an
/// ISO `delivery_date`; at once if that is past or the date is not ISO. A
/// date after 9999-12-31 is an error naming the field: no time chirp can
/// store lies there.
pub fn reminder_time(
    variables: &Map<String, Value>,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<Option<DateTime<Utc>>, String> {
    let Some(date) = variables.get("delivery_date").and_then(Value::as_str) else {
        return Ok(None);
    };
    let Ok(day) = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d") else {
        return Ok(None);
    };
    let (year, month, last) = LAST_DAY;
    if NaiveDate::from_ymd_opt(year, month, last).is_none_or(|last| day > last) {
        return Err(format!(
            "data.delivery_date {date:?} is after {year}-{month}-{last}, the last date chirp keeps"
        ));
    }
    let Some(at) = day
        .pred_opt()
        .and_then(|eve| at_local(eve, REMINDER_HOUR, tz))
    else {
        return Ok(None);
    };
    Ok((at > now).then_some(at))
}

fn at_local(day: NaiveDate, hour: u32, tz: Tz) -> Option<DateTime<Utc>> {
    let time = NaiveTime::from_hms_opt(hour, 0, 0)?;
    tz.from_local_datetime(&day.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-11-24 at `hour`:`minute` in India (UTC+05:30), in ms.
    fn ist(hour: u32, minute: u32) -> u64 {
        let t = DEFAULT_TIMEZONE
            .with_ymd_and_hms(2026, 11, 24, hour, minute, 0)
            .single()
            .unwrap();
        t.timestamp_millis() as u64
    }

    fn payload(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn sent_templates(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter_map(|d| match d {
                Decision::Send { template, .. } => Some(template.as_str()),
                Decision::Skip { .. } => None,
            })
            .collect()
    }

    #[test]
    fn every_kind_maps_to_its_templates() {
        let everything = payload(json!({
            "order_id": "A-1", "delivery_date": "2026-11-20", "total_amount": 240,
            "product": "Toned milk 1L", "start_date": "1 Dec", "amount": 1200, "month": "November",
            "payment_method": "UPI", "resume_date": "5 Dec", "eta_time": "8:30 AM",
            "availability_date": "1 Dec", "period": "November"
        }));
        for (kind, templates) in KINDS {
            let d = decide(kind, &everything, &Recipient::default(), ist(12, 0)).unwrap();
            assert_eq!(sent_templates(&d), templates.to_vec(), "{kind}");
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = decide(
            "payment.recorded",
            &payload(json!({"amount": 10, "month": "Nov"})),
            &Recipient::default(),
            ist(12, 0),
        )
        .unwrap_err();
        assert!(err.contains("data.payment_method"), "{err}");
        assert!(decide("order.cancelled", &Map::new(), &Recipient::default(), 0).is_err());
    }

    #[test]
    fn marketing_opt_out_skips_churn_risk_but_not_service_messages() {
        let r = Recipient {
            opt_outs: vec!["marketing".into()],
            ..Recipient::default()
        };
        let d = decide("customer.churn_risk", &Map::new(), &r, ist(12, 0)).unwrap();
        assert!(matches!(&d[..], [Decision::Skip { template, reason }]
            if template == "churn_risk" && reason.contains("marketing")));
        let d = decide(
            "delivery.delayed",
            &payload(json!({"eta_time": "9 AM"})),
            &r,
            ist(12, 0),
        )
        .unwrap();
        assert_eq!(sent_templates(&d), ["delivery_delayed"]);
    }

    #[test]
    fn marketing_at_night_is_held_until_nine() {
        let d = decide(
            "customer.churn_risk",
            &Map::new(),
            &Recipient::default(),
            ist(23, 0),
        )
        .unwrap();
        let Decision::Send { not_before_ms, .. } = &d[0] else {
            panic!("{d:?}")
        };
        let next_nine = DEFAULT_TIMEZONE
            .with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
            .single()
            .unwrap();
        assert_eq!(*not_before_ms, Some(next_nine.timestamp_millis() as u64));
        // Early morning waits for the same day's 09:00; daytime goes at once.
        let d = decide(
            "customer.churn_risk",
            &Map::new(),
            &Recipient::default(),
            ist(6, 30),
        )
        .unwrap();
        assert!(matches!(&d[0], Decision::Send { not_before_ms: Some(t), .. } if *t == ist(9, 0)));
        let d = decide(
            "customer.churn_risk",
            &Map::new(),
            &Recipient::default(),
            ist(20, 59),
        )
        .unwrap();
        assert!(matches!(
            &d[0],
            Decision::Send {
                not_before_ms: None,
                ..
            }
        ));
    }

    #[test]
    fn the_recipients_timezone_decides_quiet_hours() {
        let r = Recipient {
            timezone: Some("Europe/London".into()),
            ..Recipient::default()
        };
        // 23:00 in India is 17:30 in London: inside London's hours.
        let d = decide("customer.churn_risk", &Map::new(), &r, ist(23, 0)).unwrap();
        assert!(matches!(
            &d[0],
            Decision::Send {
                not_before_ms: None,
                ..
            }
        ));
    }

    #[test]
    fn the_delivery_reminder_goes_the_evening_before() {
        let d = decide(
            "order.created",
            &payload(json!({"order_id": "A-1", "delivery_date": "2026-11-26", "total_amount": 1})),
            &Recipient::default(),
            ist(10, 0),
        )
        .unwrap();
        let eve = DEFAULT_TIMEZONE
            .with_ymd_and_hms(2026, 11, 25, 18, 0, 0)
            .single()
            .unwrap();
        assert!(matches!(
            &d[0],
            Decision::Send {
                not_before_ms: None,
                ..
            }
        ));
        assert!(
            matches!(&d[1], Decision::Send { not_before_ms: Some(t), .. }
            if *t == eve.timestamp_millis() as u64)
        );
    }

    #[test]
    fn a_delivery_date_past_9999_is_an_error_naming_the_field() {
        for date in [
            "10000-01-01",
            "+10000-01-01",
            "262143-12-31",
            "+262143-12-31",
        ] {
            let data =
                payload(json!({"order_id": "A-1", "delivery_date": date, "total_amount": 1}));
            match decide("order.created", &data, &Recipient::default(), ist(10, 0)) {
                Err(err) => assert!(err.contains("data.delivery_date"), "{date}: {err}"),
                // chrono may not read the date at all: then it is not a date,
                // and the reminder goes at once.
                Ok(d) => assert!(
                    matches!(
                        &d[1],
                        Decision::Send {
                            not_before_ms: None,
                            ..
                        }
                    ),
                    "{date}: {d:?}"
                ),
            }
        }
        let data =
            payload(json!({"order_id": "A-1", "delivery_date": "9999-12-31", "total_amount": 1}));
        let d = decide("order.created", &data, &Recipient::default(), ist(10, 0)).unwrap();
        assert!(matches!(
            &d[1],
            Decision::Send {
                not_before_ms: Some(_),
                ..
            }
        ));
        let data =
            payload(json!({"order_id": "A-1", "delivery_date": "-0001-01-01", "total_amount": 1}));
        assert!(decide("order.created", &data, &Recipient::default(), ist(10, 0)).is_ok());
    }

    #[test]
    fn opting_out_of_all_skips_everything() {
        let r = Recipient {
            opt_outs: vec!["all".into()],
            ..Recipient::default()
        };
        let d = decide(
            "delivery.confirmed",
            &payload(json!({"delivery_date": "today"})),
            &r,
            ist(12, 0),
        )
        .unwrap();
        assert!(matches!(&d[0], Decision::Skip { .. }));
    }

    #[test]
    fn a_pause_takes_back_reminders_and_a_payment_its_reminder() {
        assert_eq!(
            cancels("subscription.paused"),
            [(vec!["delivery_reminder"], "subscription paused")]
        );
        assert_eq!(cancels("payment.recorded")[0].0, ["payment_reminder"]);
        assert!(cancels("order.created").is_empty());
        // Only templates the rules know.
        for (kind, _) in KINDS {
            for (templates, _) in cancels(kind) {
                for t in templates {
                    assert!(KINDS.iter().any(|(_, ts)| ts.contains(&t)), "{t}");
                }
            }
        }
    }

    #[test]
    fn orders_deliveries_and_payments_escalate_to_sms_and_marketing_never() {
        assert_eq!(
            routes("order.created"),
            [
                ("order_confirmation", vec![SMS_ROUTE]),
                ("delivery_reminder", vec![SMS_ROUTE])
            ]
        );
        assert_eq!(
            routes("payment.due"),
            [("payment_reminder", vec![SMS_ROUTE])]
        );
        assert_eq!(routes("product.launched"), [("new_product", vec![])]);
        assert_eq!(routes("customer.churn_risk"), [("churn_risk", vec![])]);
        assert!(routes("subscription.paused").is_empty());
        assert!(routes("no.such.kind").is_empty());
    }
}
