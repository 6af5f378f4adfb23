//! Request headers and response encoding.
//!
//! A request frame is `RequestHeader` (v0-v2; v2 is the flexible, tagged-field form)
//! followed by the body. Which header version a request uses depends on its API key and
//! version; `kafka-protocol` knows the table. ApiVersions is special (KIP-511): a client
//! may send a version newer than the broker knows, and the broker must still answer, so
//! its body is only decoded when the version is one we serve.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::splice::{SplicingBuf, SPLICE_MIN};

/// A decoded request: its header and, when the version is served, its body.
#[derive(Debug)]
pub struct DecodedRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    /// `None` for an ApiVersions request of a version we do not serve (answered with
    /// UNSUPPORTED_VERSION rather than parsed).
    pub body: Option<RequestKind>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request frame shorter than a request header")]
    Short,
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {api_key:?}")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes a request frame. `served` says which versions of an API this broker serves;
/// anything else is an error (the connection is closed, as Kafka does), except for
/// ApiVersions, which is always answered.
pub fn decode_request(
    mut frame: Bytes,
    served: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Result<DecodedRequest, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::Short);
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApiKey(raw_key))?;
    let range = served(api_key);
    let in_range = matches!(range, Some((min, max)) if (min..=max).contains(&version));

    if api_key == ApiKey::ApiVersions && !in_range {
        // KIP-511: decode only the fixed header fields (v1 layout: key, version,
        // correlation id, client id); the body may be from a future version.
        let header = RequestHeader::decode(&mut frame, 1).map_err(|e| RequestError::Malformed {
            api_key,
            version,
            reason: e.to_string(),
        })?;
        return Ok(DecodedRequest {
            api_key,
            header,
            body: None,
        });
    }
    if range.is_none() || !in_range {
        return Err(RequestError::UnsupportedVersion { api_key, version });
    }
    let malformed = |e: anyhow::Error| RequestError::Malformed {
        api_key,
        version,
        reason: format!("{e:#}"),
    };
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    Ok(DecodedRequest {
        api_key,
        header,
        body: Some(body),
    })
}

/// An encoded response frame (size prefix, header, body) as one or more chunks: large
/// Fetch record sets are referenced, not copied (see `splice`).
#[derive(Debug)]
pub struct ResponseFrame {
    pub chunks: Vec<Bytes>,
}

impl ResponseFrame {
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one contiguous buffer (tests and small responses).
    pub fn to_bytes(&self) -> Bytes {
        match self.chunks.as_slice() {
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        }
    }
}

/// Encodes a whole response frame (size prefix, header, body).
///
/// ApiVersions responses always use response header v0 (KIP-511), whatever the version.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<ResponseFrame> {
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    if let ResponseKind::Fetch(fetch) = body {
        let candidates: Vec<Bytes> = fetch
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| p.records.clone())
            .filter(|r| r.len() >= SPLICE_MIN)
            .collect();
        if !candidates.is_empty() {
            let mut buf = SplicingBuf::new(candidates);
            buf.put_i32(0); // size placeholder
            header.encode(&mut buf, header_version)?;
            fetch.encode(&mut buf, version)?;
            let size = i32::try_from(buf.len() - 4)?;
            buf.head_mut()[..4].copy_from_slice(&size.to_be_bytes());
            return Ok(ResponseFrame {
                chunks: buf.into_chunks(),
            });
        }
    }
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0); // size placeholder
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    let size = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(ResponseFrame {
        chunks: vec![buf.freeze()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn frame(api_key: ApiKey, version: i16, body: &RequestKind) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    fn all(_: ApiKey) -> Option<(i16, i16)> {
        Some((0, 12))
    }

    #[test]
    fn decodes_flexible_and_legacy_headers() {
        for version in [0, 9, 12] {
            let f = frame(
                ApiKey::Metadata,
                version,
                &RequestKind::Metadata(MetadataRequest::default()),
            );
            let req = decode_request(f, all).unwrap();
            assert_eq!(req.header.correlation_id, 7);
            assert_eq!(req.header.request_api_version, version);
            assert!(matches!(req.body, Some(RequestKind::Metadata(_))));
        }
    }

    #[test]
    fn future_api_versions_is_answered_not_rejected() {
        let f = frame(
            ApiKey::ApiVersions,
            4,
            &RequestKind::ApiVersions(ApiVersionsRequest::default()),
        );
        let req = decode_request(f, |_| Some((0, 3))).unwrap();
        assert!(req.body.is_none());
        assert_eq!(req.header.correlation_id, 7);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_request(Bytes::from_static(&[0, 3]), all).is_err());
        assert!(decode_request(Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1]), all).is_err());
        let mut f = frame(
            ApiKey::Metadata,
            12,
            &RequestKind::Metadata(MetadataRequest::default()),
        )
        .to_vec();
        f.truncate(f.len() - 2);
        assert!(decode_request(Bytes::from(f), all).is_err());
        assert!(decode_request(
            frame(
                ApiKey::Metadata,
                12,
                &RequestKind::Metadata(MetadataRequest::default())
            ),
            |_| None
        )
        .is_err());
    }
}
