//! Reads MSG91's SMS delivery reports, as its webhook sends them:
//! version 3 (`application/json`, one report `{requestId, number, status,
//! desc, date, ...}` or a list of them) and version 2
//! (`application/x-www-form-urlencoded`, `data=` a JSON list of
//! `{requestId, report: [{date, number, status, desc, failedReason}]}`).
//!
//! MSG91 signs nothing; the operator puts a secret in the webhook URL it
//! gives MSG91 (`...?token=<webhook-token>`), and a request without it is
//! refused. Statuses, as MSG91 documents them: 1 delivered; 2 failed; 9
//! NDNC (a promotional SMS to a do-not-disturb number); 16 and 25
//! rejected; 17 blocked number. Any other status is not a final report
//! and is passed over. `date` is India's time (`2024-05-22 09:58:16`).
//!
//! Pure functions, so every documented shape is unit-tested natively.

use serde::Deserialize;
use serde_json::Value;

/// The most reports taken from one request.
pub const MAX_REPORTS: usize = 1_000;

/// Why a request is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not from MSG91: the URL's token is missing or wrong.
    Unauthenticated(String),
    /// A shape this plugin does not know.
    Malformed(String),
}

/// What a report says of one SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// On the phone.
    Delivered,
    /// Not delivered: MSG91's status and what it said.
    Failed(String, String),
}

/// One delivery report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// MSG91's request id, as the send returned it.
    pub request_id: String,
    /// What happened.
    pub state: State,
    /// When, in ms since the Unix epoch.
    pub at: u64,
    /// The same for the same report every time MSG91 sends it.
    pub event_id: String,
}

/// Checks the URL's `token` against the operator's, in constant time.
pub fn authenticate(query: &[(String, String)], expected: &str) -> Result<(), Refusal> {
    let given = query
        .iter()
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.as_bytes())
        .ok_or_else(|| Refusal::Unauthenticated("the URL carries no token".into()))?;
    if expected.is_empty() || !same(given, expected.as_bytes()) {
        return Err(Refusal::Unauthenticated("wrong token".into()));
    }
    Ok(())
}

/// Compares in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A version 3 report, or a version 2 report's entry with its request id.
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "requestId", default)]
    request_id: Option<String>,
    status: Field,
    #[serde(default)]
    desc: Option<String>,
    #[serde(rename = "failedReason", default)]
    failed_reason: Option<String>,
    date: String,
}

/// A version 2 request's element.
#[derive(Deserialize)]
struct Request {
    #[serde(rename = "requestId")]
    request_id: String,
    #[serde(default)]
    report: Vec<Entry>,
}

/// A field MSG91 writes as a string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Field {
    String(String),
    Number(i64),
}

/// The reports in a request body (`content_type` as sent).
pub fn reports(body: &[u8], content_type: Option<&str>) -> Result<Vec<Report>, Refusal> {
    let malformed = |why: &str| Refusal::Malformed(why.into());
    let form = content_type.is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let mut entries: Vec<(String, Entry)> = Vec::new();
    if form {
        let text = std::str::from_utf8(body).map_err(|_| malformed("the form is not UTF-8"))?;
        let data = text
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == "data")
            .map(|(_, value)| percent_decode(value))
            .ok_or_else(|| malformed("the form has no data"))?
            .ok_or_else(|| malformed("data is not percent-encoded UTF-8"))?;
        let requests: Vec<Request> = serde_json::from_str(&data)
            .map_err(|e| Refusal::Malformed(format!("data is not a list of requests: {e}")))?;
        for request in requests {
            for entry in request.report {
                entries.push((request.request_id.clone(), entry));
            }
        }
    } else {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Refusal::Malformed(format!("not JSON: {e}")))?;
        let list = match value {
            Value::Array(list) => list,
            one => vec![one],
        };
        for item in list {
            let entry: Entry = serde_json::from_value(item)
                .map_err(|e| Refusal::Malformed(format!("not a delivery report: {e}")))?;
            let id = entry
                .request_id
                .clone()
                .ok_or_else(|| malformed("a report without requestId"))?;
            entries.push((id, entry));
        }
    }
    if entries.len() > MAX_REPORTS {
        return Err(Refusal::Malformed(format!(
            "{} reports; at most {MAX_REPORTS} a request",
            entries.len()
        )));
    }
    let mut out = Vec::new();
    for (request_id, entry) in entries {
        if request_id.is_empty() || request_id.len() > 128 {
            return Err(malformed("a requestId of 1 to 128 characters"));
        }
        let status = match entry.status {
            Field::String(s) => s,
            Field::Number(n) => n.to_string(),
        };
        let why = || {
            let desc = entry.desc.clone().unwrap_or_default();
            match entry.failed_reason.as_deref().filter(|r| !r.is_empty()) {
                Some(reason) => format!("{desc}: {reason}"),
                None => desc,
            }
        };
        let state = match status.as_str() {
            "1" => State::Delivered,
            "2" | "9" | "16" | "17" | "25" => State::Failed(
                format!("msg91_dlr_{status}"),
                why().chars().take(512).collect(),
            ),
            _ => continue,
        };
        let at = india_time(&entry.date).ok_or_else(|| {
            Refusal::Malformed(format!("date {:?} is not YYYY-MM-DD HH:MM:SS", entry.date))
        })?;
        out.push(Report {
            event_id: format!("msg91:{request_id}:{status}:{at}"),
            request_id,
            state,
            at,
        });
    }
    Ok(out)
}

/// `%xx` and `+` decoded; `None` if that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `2024-05-22 09:58:16` in India (UTC+05:30), in ms since the epoch.
fn india_time(text: &str) -> Option<u64> {
    let (date, time) = text.trim().split_once(' ')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next()??);
    if d.next().is_some()
        || t.next().is_some()
        || !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..61).contains(&second)
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - (5 * 3_600 + 30 * 60);
    u64::try_from(seconds).ok().map(|s| s * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(token: &str) -> Vec<(String, String)> {
        vec![("token".into(), token.into())]
    }

    /// (With the comparison switched off, checked once, a wrong token was
    /// taken and this failed.)
    #[test]
    fn only_the_operators_token_is_taken() {
        assert_eq!(authenticate(&query("s3cret"), "s3cret"), Ok(()));
        assert!(matches!(
            authenticate(&query("s3cres"), "s3cret"),
            Err(Refusal::Unauthenticated(_))
        ));
        assert!(matches!(
            authenticate(&query(""), ""),
            Err(Refusal::Unauthenticated(_))
        ));
        assert!(matches!(
            authenticate(&[], "s3cret"),
            Err(Refusal::Unauthenticated(_))
        ));
    }

    /// MSG91's documented version 3 sample.
    #[test]
    fn a_version_3_report_is_read() {
        let body = br#"{"date":"2024-05-22 09:58:16","number":"9195XXXX6558","senderId":"uXXXXm","amount":"0.01","requestId":"346XXXXXXXXXXXX130","INMSID":"0","CRQID":"0","credit":"1","userId":"27XXXX","campaignName":"Sendhttp","status":"1","desc":"DELIVERED"}"#;
        let reports = reports(body, Some("application/json")).unwrap();
        assert_eq!(
            reports,
            [Report {
                request_id: "346XXXXXXXXXXXX130".into(),
                state: State::Delivered,
                // 2024-05-22T04:28:16Z
                at: 1_716_352_096_000,
                event_id: "msg91:346XXXXXXXXXXXX130:1:1716352096000".into(),
            }]
        );
    }

    /// MSG91's documented version 2 sample, form-encoded as it is sent,
    /// with a failure beside the delivery.
    #[test]
    fn a_version_2_form_is_read() {
        let data = r#"[{"senderId":"uXXXXm","requestId":"346XXXXXXXXXXXX130","report":[{"date":"2024-05-22 10:06:20","amount":"0.01","clientid":"","INMSID":"0","CRQID":"0","ctCode":"900","number":"9195XXXX6558","credit":"1","status":"1","desc":"DELIVERED","failedReason":""},{"date":"2024-05-22 10:06:21","number":"9195XXXX6559","status":"17","desc":"BLOCKED","failedReason":"number blocked"}],"userId":"27XXXX","campaignName":"Sendhttp"}]"#;
        let encoded: String = data
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                b' ' => "+".into(),
                other => format!("%{other:02X}"),
            })
            .collect();
        let body = format!("data={encoded}");
        let reports = reports(body.as_bytes(), Some("application/x-www-form-urlencoded")).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].state, State::Delivered);
        assert_eq!(
            reports[1].state,
            State::Failed("msg91_dlr_17".into(), "BLOCKED: number blocked".into())
        );
    }

    #[test]
    fn interim_statuses_pass_and_strange_shapes_are_refused() {
        let pending =
            br#"[{"requestId":"r1","status":"8","desc":"SUBMITTED","date":"2024-05-22 10:00:00"}]"#;
        assert_eq!(reports(pending, None).unwrap(), []);
        for bad in [
            &br#"{"status":"1","desc":"DELIVERED","date":"2024-05-22 10:00:00"}"#[..],
            br#"{"requestId":"r1","status":"1","date":"22/05/2024"}"#,
            br#"{"requestId":"r1","status":"1","date":"2024-13-22 10:00:00"}"#,
            b"<xml/>",
        ] {
            assert!(
                matches!(reports(bad, None), Err(Refusal::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            reports(b"data=%ZZ", Some("application/x-www-form-urlencoded")),
            Err(Refusal::Malformed(_))
        ));
        let many: Vec<String> = (0..=MAX_REPORTS)
            .map(|i| format!(r#"{{"requestId":"r{i}","status":"1","date":"2024-05-22 10:00:00"}}"#))
            .collect();
        let body = format!("[{}]", many.join(","));
        assert!(matches!(
            reports(body.as_bytes(), None),
            Err(Refusal::Malformed(_))
        ));
    }
}
