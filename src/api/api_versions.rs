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

#[cfg(test)]
mod tests {
    use super::super::SERVED_APIS;
    use kafka_protocol::messages::ApiKey;

    /// `validVersions` of every API a ZooKeeper-mode Kafka 3.9 broker serves
    /// (`clients/src/main/resources/common/message/*Request.json`, listener `zkBroker`).
    const KAFKA_39: &[(i16, i16, i16)] = &[
        (0, 0, 11),
        (1, 0, 17),
        (2, 0, 9),
        (3, 0, 12),
        (4, 0, 7),
        (5, 0, 4),
        (6, 0, 8),
        (7, 0, 3),
        (8, 0, 9),
        (9, 0, 9),
        (10, 0, 6),
        (11, 0, 9),
        (12, 0, 4),
        (13, 0, 5),
        (14, 0, 5),
        (15, 0, 5),
        (16, 0, 5),
        (17, 0, 1),
        (18, 0, 4),
        (19, 0, 7),
        (20, 0, 6),
        (21, 0, 2),
        (22, 0, 5),
        (23, 0, 4),
        (24, 0, 5),
        (25, 0, 4),
        (26, 0, 4),
        (27, 0, 1),
        (28, 0, 4),
        (29, 0, 3),
        (30, 0, 3),
        (31, 0, 3),
        (32, 0, 4),
        (33, 0, 2),
        (34, 0, 2),
        (35, 0, 4),
        (36, 0, 2),
        (37, 0, 3),
        (38, 0, 3),
        (39, 0, 2),
        (40, 0, 2),
        (41, 0, 3),
        (42, 0, 2),
        (43, 0, 2),
        (44, 0, 1),
        (45, 0, 0),
        (46, 0, 0),
        (47, 0, 0),
        (48, 0, 1),
        (49, 0, 1),
        (50, 0, 0),
        (51, 0, 0),
        (56, 0, 3),
        (57, 0, 1),
        (58, 0, 0),
        (60, 0, 1),
        (61, 0, 0),
        (65, 0, 0),
        (66, 0, 1),
        (67, 0, 0),
        (68, 0, 0),
        (69, 0, 0),
    ];

    #[test]
    fn every_served_api_has_kafka_39s_range() {
        for (key, v) in SERVED_APIS {
            let (_, min, max) = KAFKA_39
                .iter()
                .find(|(k, _, _)| *k == *key as i16)
                .unwrap_or_else(|| panic!("{key:?} is not a Kafka 3.9 ZooKeeper-mode API"));
            assert_eq!((v.min, v.max), (*min, *max), "{key:?}");
            // The vendored messages must decode and encode that whole range.
            let crate_range = key.valid_versions();
            assert!(
                crate_range.min <= *min && crate_range.max >= *max,
                "{key:?}: {crate_range:?}"
            );
        }
        assert!(SERVED_APIS.iter().any(|(k, _)| *k == ApiKey::Produce));
    }
}
