//! Meta's documented webhook examples (statuses and messages), signed and
//! not.

use super::*;

const NUMBER: &str = "106540352242922";

/// A `statuses[]` notification shaped as Meta documents it.
fn statuses(items: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{NUMBER}"}},"statuses":[{items}]}},"field":"messages"}}]}}]}}"#
    )
}

const DELIVERED: &str = r#"{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA","status":"delivered","timestamp":"1750263773","recipient_id":"16505551234","conversation":{"id":"6ceb9d929c1a1e1f7d1d2a4e1b1f1c1d","origin":{"type":"utility"}},"pricing":{"billable":true,"pricing_model":"PMP","category":"utility"}}"#;
const READ: &str = r#"{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA","status":"read","timestamp":"1750263800","recipient_id":"16505551234"}"#;
const FAILED: &str = r#"{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI4MjZGRDA0OUE2OTQ3RkEyMzcA","status":"failed","timestamp":"1750263900","recipient_id":"16505551234","errors":[{"code":131050,"title":"Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.","message":"Unable to deliver the message.","error_data":{"details":"This recipient has chosen to stop receiving marketing messages"},"href":"https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]}"#;

const INBOUND: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"context":{"from":"15550783881","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"},"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"STOP"}}]},"field":"messages"}]}]}"#;

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[test]
fn statuses_become_receipts_with_stable_event_ids() {
    let body = statuses(&[DELIVERED, READ, FAILED].join(","));
    let events = events(body.as_bytes(), NUMBER).unwrap();
    assert_eq!(events.len(), 3);
    let Event::Status(delivered) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(delivered.state, State::Delivered);
    assert_eq!(delivered.at, 1_750_263_773_000);
    assert_eq!(
        delivered.message_id,
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"
    );
    let Event::Status(failed) = &events[2] else {
        panic!("{events:?}")
    };
    let (code, message) = failed.error.clone().unwrap();
    assert_eq!(code, "131050");
    assert!(message.contains("stop receiving marketing"), "{message}");
    // The same receipt sent again has the same id; another state another.
    let again = super::events(body.as_bytes(), NUMBER).unwrap();
    assert_eq!(again, events);
    let Event::Status(read) = &events[1] else {
        panic!()
    };
    assert_ne!(read.event_id, delivered.event_id);
}

#[test]
fn a_customers_message_comes_with_its_sender_and_what_it_answers() {
    let events = events(INBOUND.as_bytes(), NUMBER).unwrap();
    assert_eq!(
        events,
        vec![Event::Inbound(Inbound {
            from: "+16505551234".into(),
            text: "STOP".into(),
            at: 1_749_416_383_000,
            event_id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=".into(),
            reply_to: Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA".into()),
        })]
    );
}

#[test]
fn another_numbers_events_and_other_fields_are_not_ours() {
    assert!(events(INBOUND.as_bytes(), "999").unwrap().is_empty());
    let other_field = INBOUND.replace(r#""field":"messages""#, r#""field":"account_update""#);
    assert!(events(other_field.as_bytes(), NUMBER).unwrap().is_empty());
    assert!(matches!(
        events(br#"{"object":"page","entry":[]}"#, NUMBER),
        Err(Refusal::Malformed(_))
    ));
    assert!(matches!(
        events(b"not json", NUMBER),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn only_a_body_signed_with_the_app_secret_passes() {
    let body = statuses(DELIVERED);
    let good = sign(body.as_bytes(), "app-secret");
    assert_eq!(
        verify_signature(Some(&good), body.as_bytes(), "app-secret"),
        Ok(())
    );
    for header in [
        None,
        Some(sign(body.as_bytes(), "another secret")),
        Some(good.replace("sha256=", "sha1=")),
        Some("sha256=zz".into()),
        Some(sign(format!("{body} ").as_bytes(), "app-secret")),
    ] {
        assert!(
            matches!(
                verify_signature(header.as_deref(), body.as_bytes(), "app-secret"),
                Err(Refusal::Unauthenticated(_))
            ),
            "{header:?}"
        );
    }
}

#[test]
fn the_subscription_check_echoes_the_challenge_for_the_right_token() {
    let query = |mode: &str, token: &str, challenge: &str| {
        vec![
            ("hub.mode".to_string(), mode.to_string()),
            ("hub.verify_token".to_string(), token.to_string()),
            ("hub.challenge".to_string(), challenge.to_string()),
        ]
    };
    assert_eq!(
        challenge(&query("subscribe", "tok", "1158201444"), "tok"),
        Ok("1158201444".into())
    );
    assert!(matches!(
        challenge(&query("subscribe", "wrong", "1"), "tok"),
        Err(Refusal::Unauthenticated(_))
    ));
    assert!(matches!(
        challenge(&query("unsubscribe", "tok", "1"), "tok"),
        Err(Refusal::Malformed(_))
    ));
    assert!(matches!(
        challenge(&query("subscribe", "tok", &"9".repeat(300)), "tok"),
        Err(Refusal::Malformed(_))
    ));
}
