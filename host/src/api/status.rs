//! How the API writes a message's [`Status`]: its name as a JSON string,
//! and in the OpenAPI document an enum of every name the state machine
//! has, so the document follows the machine without a list of its own.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::status::Status;

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for Status {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Where the message is in the queue."))
            .enum_values(Some(Status::ALL.map(Status::as_str)))
            .into()
    }
}

impl utoipa::ToSchema for Status {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Status")
    }
}
