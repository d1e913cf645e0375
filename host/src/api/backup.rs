//! `GET /api/backup`: a consistent copy of the embedded store, as
//! SurrealQL, streamed to an admin while chirp runs and accepts (`chirp
//! backup FILE` calls it). `chirp restore FILE` brings a copy back into a
//! new store while chirp is stopped.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::{ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(backup))
}

#[utoipa::path(
    get,
    path = "/api/backup",
    tag = "operations",
    description = "A consistent copy of the embedded store as SurrealQL, from one read of it \
        (admin). `chirp restore FILE` brings it back into a new store. A SurrealDB server is \
        backed up with its own export (`503` here).",
    responses((status = 200, description = "The backup", content_type = "application/sql", body = String)),
)]
async fn backup(Admin(admin): Admin, State(state): State<AppState>) -> Result<Response, ApiError> {
    let stream = state.store.backup().await?;
    tracing::info!(by = %admin.subject, "backup started");
    let body = Body::from_stream(stream.map(|chunk| chunk.map_err(std::io::Error::other)));
    Ok(([(header::CONTENT_TYPE, "application/sql")], body).into_response())
}
