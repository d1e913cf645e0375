//! `/console`: the queue now, what the last hour and day came to (as
//! server-drawn charts), each provider's outcomes, the plugins' states and
//! the store's health.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use super::session::Operator;
use super::{context, error_page, render};
use crate::api::AppState;
use crate::message::{Millis, now_millis};

/// One bar of a chart: a status and its count, and its width in the
/// chart's 300 units.
#[derive(Serialize)]
struct Bar {
    key: String,
    count: u64,
    width: u64,
    y: usize,
}

/// A chart of messages by status over a window, and the statistics
/// the API gives for it.
#[derive(Serialize)]
struct Window {
    title: &'static str,
    bars: Vec<Bar>,
    height: usize,
    statistics: serde_json::Value,
}

async fn window(
    state: &AppState,
    title: &'static str,
    span: Millis,
) -> Result<Window, crate::api::ApiError> {
    let now = now_millis();
    let stats = state.store.statistics(now - span, now).await?;
    let most = stats.by_status.iter().map(|c| c.count).max().unwrap_or(0);
    let bars: Vec<Bar> = stats
        .by_status
        .iter()
        .enumerate()
        .map(|(i, c)| Bar {
            key: c.key.clone(),
            count: c.count,
            width: (c.count * 300).checked_div(most).unwrap_or(0),
            y: i * 24,
        })
        .collect();
    let view: crate::api::statistics::StatisticsView = stats.into();
    let statistics = serde_json::to_value(view).unwrap_or_default();
    let height = bars.len().max(1) * 24;
    Ok(Window {
        title,
        bars,
        height,
        statistics,
    })
}

/// `GET /console`.
pub async fn page(State(state): State<AppState>, operator: Operator) -> Response {
    let (hour, day) = match (
        window(&state, "Last hour", 3_600_000).await,
        window(&state, "Last 24 hours", 86_400_000).await,
    ) {
        (Ok(hour), Ok(day)) => (hour, day),
        (Err(e), _) | (_, Err(e)) => return error_page(Some(&operator), &e),
    };
    let store_ok = state.store.ping().await.is_ok();
    let plugins = crate::api::plugins::rows(&state);
    let breakers = crate::api::plugins::breakers(&state);
    render::page(
        "overview.html",
        context(
            &operator,
            "overview",
            minijinja::context! {
                queue_depth => hour.statistics["queue_depth"].as_u64(),
                oldest_queued_age_ms => hour.statistics["oldest_queued_age_ms"].as_i64(),
                windows => minijinja::Value::from_serialize([&hour, &day]),
                store_ok,
                plugins => minijinja::Value::from_serialize(&plugins),
                breakers => minijinja::Value::from_serialize(&breakers),
            },
        ),
    )
}
