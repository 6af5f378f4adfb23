//! SaslHandshake (key 17, v0-v1) and SaslAuthenticate (key 36, v0-v2).
//!
//! On a SASL listener the connection's authenticator (`security::sasl`) answers these
//! before authentication (see `broker::connection`); the handlers here only see the ones
//! sent where no SASL exchange is expected — a non-SASL listener, or an authenticated
//! connection without re-authentication — and answer ILLEGAL_SASL_STATE, as Kafka does.

use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;

pub mod handshake {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 1);
}

pub mod authenticate {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 2);
}

pub async fn sasl_handshake(
    _broker: &Broker,
    _ctx: &RequestContext,
    _req: SaslHandshakeRequest,
) -> Option<SaslHandshakeResponse> {
    Some(handshake_response(code(Error::IllegalSaslState), &[]))
}

pub async fn sasl_authenticate(
    _broker: &Broker,
    _ctx: &RequestContext,
    _req: SaslAuthenticateRequest,
) -> Option<SaslAuthenticateResponse> {
    Some(authenticate_error(
        Error::IllegalSaslState,
        "Unexpected SaslAuthenticate request: no SASL exchange is in progress",
    ))
}

pub fn handshake_response(error_code: i16, mechanisms: &[&'static str]) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(error_code)
        .with_mechanisms(
            mechanisms
                .iter()
                .map(|m| StrBytes::from_static_str(m))
                .collect(),
        )
}

pub fn authenticate_error(err: Error, message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(code(err))
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

pub fn authenticate_ok(bytes: Vec<u8>, session_lifetime_ms: i64) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_auth_bytes(bytes.into())
        .with_session_lifetime_ms(session_lifetime_ms)
}
