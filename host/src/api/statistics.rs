//! `GET /api/notifications/statistics`: counts, rates and latencies of the
//! messages accepted in a range, and the queue as it is now.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{QueryParams, parse_time};
use super::{ApiError, AppState};
use crate::message::Millis;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(statistics))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RangeParams {
    /// Accepted at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Accepted before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
}

/// `GET /api/notifications/statistics?from=&to=`: counts, rates and
/// latencies of the messages accepted in the range (default: all time),
/// and the queue as it is now.
#[utoipa::path(
    get,
    path = "/api/notifications/statistics",
    tag = "notifications",
    params(RangeParams),
    responses((status = 200, description = "Success", body = crate::store::Statistics)),
)]
async fn statistics(
    _caller: Caller,
    State(state): State<AppState>,
    QueryParams(range): QueryParams<RangeParams>,
) -> Result<Json<crate::store::Statistics>, ApiError> {
    let from = range
        .from
        .map(|t| parse_time("from", &t))
        .transpose()?
        .unwrap_or(0);
    let to = range
        .to
        .map(|t| parse_time("to", &t))
        .transpose()?
        .unwrap_or(Millis::MAX);
    if from >= to {
        return Err(ApiError::invalid(
            "to",
            "invalid_range",
            "to must be after from",
        ));
    }
    Ok(Json(state.store.statistics(from, to).await?))
}
