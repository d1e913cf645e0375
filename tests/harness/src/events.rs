//! EarlyBird's events as its backend posts them: each type and the
//! templates the rules component must answer it with, and one set of data
//! that satisfies every type.

use serde_json::{Value, json};

/// Each EarlyBird event type and the templates it must lead to.
pub const EARLYBIRD_EVENTS: [(&str, &[&str]); 9] = [
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

/// Event data with every field any EarlyBird event needs.
pub fn earlybird_event_data(delivery_date: &str) -> Value {
    json!({
        "order_id": "A-1", "delivery_date": delivery_date, "total_amount": 240,
        "product": "Toned milk 1L", "start_date": "1 Dec", "amount": 1200, "month": "November",
        "payment_method": "UPI", "resume_date": "5 Dec", "eta_time": "8:30 AM",
        "availability_date": "1 Dec", "period": "November"
    })
}
