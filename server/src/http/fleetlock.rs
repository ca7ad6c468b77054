//! Routes: none yet.

use super::Api;
use axum::Router;

/// The routes of this module.
pub fn routes() -> Router<Api> {
    Router::new()
}
