//! ApiVersions (key 18), v0-v4 (v4, from Kafka 3.9, only relaxes feature version floors).
//!
//! The answer is `SERVED_APIS`. An ApiVersions request of a version we do not serve gets
//! a v0 body with UNSUPPORTED_VERSION and our ranges, so the client can retry with one we
//! do (KIP-511); the connection stays open.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::errors::{code, Error};
use super::{RequestContext, Versions, SERVED_APIS};
use crate::broker::Broker;

pub const VERSIONS: Versions = Versions::new(0, 4);

pub async fn handle(
    _broker: &Broker,
    _ctx: &RequestContext,
    _req: ApiVersionsRequest,
) -> Option<ApiVersionsResponse> {
    Some(response(0))
}

pub fn unsupported_version() -> ApiVersionsResponse {
    response(code(Error::UnsupportedVersion))
}

fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SERVED_APIS
        .iter()
        .map(|(key, v)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(v.min)
                .with_max_version(v.max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_throttle_time_ms(0)
}
