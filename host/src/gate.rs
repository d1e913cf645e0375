//! The last check before a send: what intake decided may no longer hold.
//!
//! A message can wait in the queue for hours (scheduled, retried, resent),
//! and in that time the recipient may opt out, an operator may disable its
//! template, or night may fall on a marketing message. So each claimed
//! message is checked again, just before any provider call, against the
//! state as it is now: an opt-out or a disabled template that applies makes
//! it `skipped` with the reason; marketing outside the marketing hours in
//! the recipient's time zone is held to the next allowed time; a message
//! whose expiry has passed is `expired`, never sent. Pure: the
//! scheduler reads the preferences (one query per claim) and the catalog.

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::intake::opted_out;
use crate::message::{ErrorNote, MAX_MILLIS, Message, Millis};
use crate::preferences::{Consent, Preferences};
use crate::templates::{Catalog, Category};

/// Where a recipient is when their preferences do not say.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Kolkata;

/// When promotional SMS may go out in India (TRAI): 10:00 to 21:00 IST.
pub const PROMOTIONAL_SMS_HOURS: MarketingHours = MarketingHours {
    start: match NaiveTime::from_hms_opt(10, 0, 0) {
        Some(t) => t,
        None => NaiveTime::MIN,
    },
    end: match NaiveTime::from_hms_opt(21, 0, 0) {
        Some(t) => t,
        None => NaiveTime::MIN,
    },
};

/// The local hours in which marketing may go out (`CHIRP_MARKETING_HOURS`,
/// default `09:00-21:00`): from `start` up to, not including, `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketingHours {
    /// When marketing may start going out, local time.
    pub start: NaiveTime,
    /// When it stops (before `start`: the hours cross midnight).
    pub end: NaiveTime,
}

impl Default for MarketingHours {
    fn default() -> Self {
        MarketingHours {
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl MarketingHours {
    /// `09:00-21:00`; the window may cross midnight (`22:00-06:00`), and
    /// one that ends where it starts (`00:00-00:00`) is the whole day.
    pub fn parse(text: &str) -> Option<MarketingHours> {
        let (start, end) = text.trim().split_once('-')?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").ok();
        Some(MarketingHours {
            start: time(start)?,
            end: time(end)?,
        })
    }

    fn contains(&self, local: NaiveTime) -> bool {
        if self.start == self.end {
            true
        } else if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// `now` if it is inside the hours in `tz`, else the next start of the
    /// hours there.
    pub fn next_allowed(&self, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let local = now.with_timezone(&tz);
        if self.contains(local.time()) {
            return now;
        }
        let mut day = local.date_naive();
        if local.time() >= self.start {
            day = day.succ_opt().unwrap_or(day);
        }
        // The start may fall in a gap (a clock moved forward): the first
        // instant after it that exists, an hour on at most.
        (0..=60)
            .find_map(|minutes| {
                let at = day.and_time(self.start) + chrono::Duration::minutes(minutes);
                tz.from_local_datetime(&at).earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now)
    }
}

/// What to do with a claimed message now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing stands in the way.
    Send,
    /// It must not be sent: stored as `skipped`, with why.
    Skip(ErrorNote),
    /// Marketing outside its hours: due again at this time.
    Hold(Millis),
    /// Its expiry passed: stored as `expired`, with why.
    Expire(ErrorNote),
}

/// The verdict on `message` at `now`, given the recipient's `preferences`
/// as they are now and the catalog in force.
pub fn verdict(
    message: &Message,
    preferences: &Preferences,
    catalog: &Catalog,
    hours: MarketingHours,
    consent: Consent,
    now: Millis,
) -> Verdict {
    if let Some(at) = message.expires_at.filter(|_| message.is_past_expiry(now)) {
        return Verdict::Expire(ErrorNote {
            code: "expired".into(),
            message: format!(
                "its time to be sent ran out at {} before it could be sent",
                crate::message::rfc3339(at)
            ),
        });
    }
    // A message that moved on from a route the platform then said it
    // delivered on (a late receipt) goes out no second time.
    if let Some(hop) = message.hops.last()
        && (message.delivery.delivered_at.is_some() || message.delivery.read_at.is_some())
    {
        return Verdict::Skip(ErrorNote {
            code: "delivered_before_fallback".into(),
            message: format!(
                "{} reported it delivered after it moved to {}; not sent again",
                hop.from, hop.to
            ),
        });
    }
    let template = message.template.as_ref().and_then(|name| catalog.get(name));
    if let Some(def) = template
        && !def.enabled
    {
        return Verdict::Skip(ErrorNote {
            code: "template_disabled".into(),
            message: format!(
                "template {} was disabled before the message was sent",
                def.name
            ),
        });
    }
    let category = template.map_or(Category::Transactional, |def| def.category);
    let name = message.template.as_deref().unwrap_or("");
    if let Some(mut note) = opted_out(
        preferences,
        name,
        category,
        message.override_opt_out,
        consent,
    ) {
        note.message = format!("{} before the message was sent", note.message);
        return Verdict::Skip(note);
    }
    if category == Category::Marketing && message.channel() == "sms" {
        // India's rule for promotional SMS: 10:00 to 21:00 in India,
        // wherever the recipient says they are.
        if let Some(at) = Utc.timestamp_millis_opt(now).single() {
            let allowed = PROMOTIONAL_SMS_HOURS.next_allowed(at, DEFAULT_TIMEZONE);
            if allowed > at {
                return Verdict::Hold(allowed.timestamp_millis().min(MAX_MILLIS));
            }
        }
    }
    if category == Category::Marketing {
        let tz = preferences
            .timezone
            .as_deref()
            .and_then(|name| name.parse::<Tz>().ok())
            .unwrap_or(DEFAULT_TIMEZONE);
        let Some(at) = Utc.timestamp_millis_opt(now).single() else {
            return Verdict::Send;
        };
        let allowed = hours.next_allowed(at, tz);
        if allowed > at {
            return Verdict::Hold(allowed.timestamp_millis().min(MAX_MILLIS));
        }
    }
    Verdict::Send
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Status;

    fn catalog() -> Catalog {
        Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates"))
            .unwrap()
    }

    fn message(template: &str) -> Message {
        Message {
            id: "m".into(),
            status: Status::Sending,
            phone: "+919876543210".into(),
            template: Some(template.into()),
            template_version: Some(1),
            text: "t".into(),
            provider_template: None,
            reference_id: None,
            idempotency_key: "m".into(),
            provider: "myoperator".into(),
            attempts: 0,
            retry_base: 0,
            created_at: 0,
            updated_at: 0,
            due_at: None,
            expires_at: None,
            lane: Default::default(),
            fallbacks: Vec::new(),
            deliver_within_ms: None,
            hops: Vec::new(),
            sent_at: None,
            provider_message_id: None,
            last_error: None,
            override_opt_out: false,
            delivery: Default::default(),
            callbacks: Vec::new(),
            cancelled_messages: Vec::new(),
        }
    }

    /// A move from `from` to SMS through MSG91, for `code`.
    fn hop_to_sms(from: &str, code: &str) -> crate::message::Hop {
        crate::message::Hop {
            at: 0,
            from: from.into(),
            to: "msg91-sms".into(),
            channel: "sms".into(),
            reason: ErrorNote {
                code: code.into(),
                message: String::new(),
            },
        }
    }

    /// 2026-11-24 at `hour`:`minute` in India, in ms.
    fn ist(hour: u32, minute: u32) -> Millis {
        DEFAULT_TIMEZONE
            .with_ymd_and_hms(2026, 11, 24, hour, minute, 0)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    /// A delivery reported late for the route a message left stops it
    /// on the next one. (Without the check, checked once, it was sent.)
    #[test]
    fn a_late_delivery_on_the_route_left_stops_the_next() {
        let catalog = catalog();
        let prefs = Preferences::defaults_for("+919876543210");
        let hopped = Message {
            hops: vec![hop_to_sms("meta-whatsapp", "not_delivered")],
            ..message("delivery_delayed")
        };
        let at = |m: &Message| {
            verdict(
                m,
                &prefs,
                &catalog,
                MarketingHours::default(),
                Consent::default(),
                ist(12, 0),
            )
        };
        assert_eq!(at(&hopped), Verdict::Send);
        let late = Message {
            delivery: crate::status::Delivery {
                delivered_at: Some(5),
                ..Default::default()
            },
            ..hopped.clone()
        };
        assert!(
            matches!(at(&late), Verdict::Skip(note) if note.code == "delivered_before_fallback")
        );
        // Delivered with no hop is not this check's business.
        let plain = Message {
            hops: Vec::new(),
            ..late
        };
        assert_eq!(at(&plain), Verdict::Send);
    }

    /// Marketing that fell back to SMS goes out only 10:00 to 21:00 in
    /// India, whatever the recipient's own hours; on WhatsApp their hours
    /// apply.
    #[test]
    fn promotional_sms_waits_for_indias_hours() {
        let catalog = catalog();
        let prefs = Preferences::defaults_for("+919876543210");
        let whatsapp = message("churn_risk");
        let sms = Message {
            hops: vec![hop_to_sms("myoperator", "131026")],
            ..message("churn_risk")
        };
        let at = |m: &Message, now| {
            verdict(
                m,
                &prefs,
                &catalog,
                MarketingHours::default(),
                Consent::default(),
                now,
            )
        };
        assert_eq!(at(&whatsapp, ist(9, 30)), Verdict::Send);
        assert_eq!(at(&sms, ist(9, 30)), Verdict::Hold(ist(10, 0)));
        assert_eq!(at(&sms, ist(12, 0)), Verdict::Send);
        assert!(matches!(at(&sms, ist(21, 0)), Verdict::Hold(t) if t > ist(21, 0)));
    }

    /// A message is sent up to, not at, its expiry; after that nothing
    /// else is asked.
    #[test]
    fn a_message_past_its_expiry_expires_instead_of_going_out() {
        let catalog = catalog();
        let prefs = Preferences::defaults_for("+919876543210");
        let m = Message {
            expires_at: Some(ist(12, 0)),
            ..message("delivery_delayed")
        };
        let at = |now| {
            verdict(
                &m,
                &prefs,
                &catalog,
                MarketingHours::default(),
                Consent::default(),
                now,
            )
        };
        assert_eq!(at(ist(12, 0) - 1), Verdict::Send);
        assert!(matches!(at(ist(12, 0)), Verdict::Expire(note) if note.code == "expired"));
        assert!(matches!(at(ist(13, 0)), Verdict::Expire(_)));
        assert_eq!(m.due_by_expiry(ist(14, 0)), ist(12, 0));
        assert_eq!(m.due_by_expiry(ist(11, 0)), ist(11, 0));
    }

    #[test]
    fn an_opt_out_or_a_disabled_template_that_applies_now_skips() {
        let catalog = catalog();
        let mut prefs = Preferences::defaults_for("+919876543210");
        let m = message("delivery_delayed");
        assert_eq!(
            verdict(
                &m,
                &prefs,
                &catalog,
                MarketingHours::default(),
                Consent::default(),
                ist(12, 0)
            ),
            Verdict::Send
        );
        prefs.opt_out_all = true;
        assert!(matches!(
            verdict(&m, &prefs, &catalog, MarketingHours::default(), Consent::default(), ist(12, 0)),
            Verdict::Skip(note) if note.code == "opted_out"
        ));
        let overridden = Message {
            override_opt_out: true,
            ..message("delivery_delayed")
        };
        assert_eq!(
            verdict(
                &overridden,
                &prefs,
                &catalog,
                MarketingHours::default(),
                Consent::default(),
                ist(12, 0)
            ),
            Verdict::Send
        );

        let mut def = catalog.get("delivery_delayed").unwrap().clone();
        def.enabled = false;
        let disabled = catalog.with(def).unwrap();
        let prefs = Preferences::defaults_for("+919876543210");
        assert!(matches!(
            verdict(&m, &prefs, &disabled, MarketingHours::default(), Consent::default(), ist(12, 0)),
            Verdict::Skip(note) if note.code == "template_disabled"
        ));
    }

    #[test]
    fn marketing_outside_its_hours_waits_for_the_next_morning_where_the_recipient_is() {
        let catalog = catalog();
        let prefs = Preferences::defaults_for("+919876543210");
        let m = message("churn_risk");
        let hours = MarketingHours::default();
        assert_eq!(
            verdict(&m, &prefs, &catalog, hours, Consent::default(), ist(20, 59)),
            Verdict::Send
        );
        let next_nine = DEFAULT_TIMEZONE
            .with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
            .single()
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            verdict(&m, &prefs, &catalog, hours, Consent::default(), ist(23, 0)),
            Verdict::Hold(next_nine)
        );
        assert_eq!(
            verdict(&m, &prefs, &catalog, hours, Consent::default(), ist(6, 0)),
            Verdict::Hold(ist(9, 0))
        );
        // 23:00 in India is 17:30 in London: inside London's hours.
        let london = Preferences {
            timezone: Some("Europe/London".into()),
            ..prefs.clone()
        };
        assert_eq!(
            verdict(&m, &london, &catalog, hours, Consent::default(), ist(23, 0)),
            Verdict::Send
        );
        // Transactional messages go at any hour.
        assert_eq!(
            verdict(
                &message("delivery_delayed"),
                &prefs,
                &catalog,
                hours,
                Consent::default(),
                ist(3, 0)
            ),
            Verdict::Send
        );
    }

    #[test]
    fn marketing_hours_read_and_may_cross_midnight() {
        let night = MarketingHours::parse("22:00-06:00").unwrap();
        assert!(night.contains(NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
        assert!(night.contains(NaiveTime::from_hms_opt(5, 59, 0).unwrap()));
        assert!(!night.contains(NaiveTime::from_hms_opt(12, 0, 0).unwrap()));
        let always = MarketingHours::parse("00:00-00:00").unwrap();
        assert!(always.contains(NaiveTime::from_hms_opt(3, 0, 0).unwrap()));
        for bad in ["", "9-21", "09:00", "25:00-26:00", "09:00-21:00-23:00"] {
            assert_eq!(MarketingHours::parse(bad), None, "{bad}");
        }
    }
}
