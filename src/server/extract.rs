//! Query-string and path extractors whose refusals are problem+json (axum's
//! own answer in plain text), so every 4xx of the API has one documented shape.

use crate::vocab::ProblemCode;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// A query string parsed as `T` (unknown parameters refused where `T` says so).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r| Problem::bad_request(ProblemCode::BadQuery, r.body_text()))
    }
}

/// Path parameters parsed as `T`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|r| Problem::bad_request(ProblemCode::BadPath, r.body_text()))
    }
}
