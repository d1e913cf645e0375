//! How the API writes the domain's named values (a message's status, a
//! plugin's world and origin, the engine's allocator): each as its name, a
//! JSON string, and in the OpenAPI document as an enum of every name the
//! domain type has, so the document follows the domain without a list of
//! its own.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::plugins::World;
use crate::plugins::engine::{Allocator, Origin};
use crate::status::{DeliveryStatus, Status};
use crate::templates::Category;
use crate::webhooks::Reported;

/// `Serialize` (unless the type is also a file's or the store's, which
/// derive it with the same names), `PartialSchema` and `ToSchema` for a
/// domain enum with `ALL` and `as_str`.
macro_rules! written_as_its_name {
    ($type:ty, $name:literal, $description:literal) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        written_as_its_name!(schema $type, $name, $description);
    };
    (schema $type:ty, $name:literal, $description:literal) => {
        impl utoipa::PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some(<$type>::ALL.map(<$type>::as_str)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

written_as_its_name!(Status, "Status", "Where the message is in the queue.");
written_as_its_name!(
    DeliveryStatus,
    "DeliveryStatus",
    "What the platform's receipts add up to, once sent: a read is also a delivery, and a later failure does not hide a read."
);
written_as_its_name!(
    Reported,
    "ReceiptState",
    "What one receipt from the platform said."
);
written_as_its_name!(
    World,
    "World",
    "What a plugin does: sends messages, or decides events."
);
written_as_its_name!(Origin, "Origin", "Where a plugin's machine code came from.");
written_as_its_name!(
    Allocator,
    "Allocator",
    "How plugin instances get their memory."
);
written_as_its_name!(
    schema Category,
    "Category",
    "Service messages, or promotion (opt-outs of marketing and its hours apply)."
);
