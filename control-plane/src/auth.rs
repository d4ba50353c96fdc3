//! Optional authentication of the admin APIs (REST gateway and admin gRPC service), off by default: a bearer token
//! (`--rest-auth-token`) and/or HTTP basic credentials (`--rest-basic-auth user:pass`). A request without valid
//! credentials gets 401 (gRPC `UNAUTHENTICATED`) with Kafka Connect's error body. `GET /health` stays open for
//! load balancers and probes; the agent streams are not covered (they are the cluster's own traffic).

use base64::Engine;

use crate::api::{ApiError, ApiErrorKind};

/// Accepted credentials; a request needs one of them.
#[derive(Clone, Default)]
pub struct Credentials {
    /// `Authorization: Bearer <token>`.
    token: Option<String>,
    /// The expected `Authorization: Basic <base64(user:pass)>` value, encoded once.
    basic: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets themselves.
        f.debug_struct("Credentials")
            .field("token", &self.token.is_some())
            .field("basic", &self.basic.is_some())
            .finish()
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Credentials {
    /// `None` when neither is given (authentication off). `basic` is `user:password`.
    pub fn new(token: Option<String>, basic: Option<String>) -> Result<Option<Credentials>, String> {
        let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        let basic = match basic.map(|b| b.trim().to_string()).filter(|b| !b.is_empty()) {
            None => None,
            Some(pair) if pair.contains(':') => Some(base64::engine::general_purpose::STANDARD.encode(pair)),
            Some(_) => return Err("--rest-basic-auth must be user:password".to_string()),
        };
        Ok((token.is_some() || basic.is_some()).then_some(Credentials { token, basic }))
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let Some(value) = authorization.map(str::trim) else {
            return Err(ApiError::new(
                ApiErrorKind::Unauthorized,
                "Authentication required: send an Authorization header (Bearer token or Basic credentials)",
            ));
        };
        let (scheme, given) = value.split_once(' ').unwrap_or((value, ""));
        let expected = if scheme.eq_ignore_ascii_case("bearer") {
            self.token.as_deref()
        } else if scheme.eq_ignore_ascii_case("basic") {
            self.basic.as_deref()
        } else {
            None
        };
        match expected {
            Some(expected) if constant_time_eq(expected.as_bytes(), given.trim().as_bytes()) => Ok(()),
            _ => Err(ApiError::new(ApiErrorKind::Unauthorized, "Invalid credentials")),
        }
    }

    /// The `WWW-Authenticate` challenge of a 401.
    pub fn challenge(&self) -> &'static str {
        if self.basic.is_some() { "Basic realm=\"sluice\"" } else { "Bearer realm=\"sluice\"" }
    }
}

/// A tonic interceptor for the admin gRPC service: the same check on the `authorization` metadata.
pub fn grpc_interceptor(
    credentials: Option<Credentials>,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |request: tonic::Request<()>| {
        if let Some(credentials) = &credentials {
            let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
            credentials.check(header).map_err(crate::admin_grpc::status_of)?;
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_basic_credentials() {
        assert!(Credentials::new(None, Some(" ".into())).expect("empty").is_none());
        assert!(Credentials::new(None, Some("nocolon".into())).is_err());
        let credentials = Credentials::new(Some("s3cret".into()), Some("admin:pw".into())).expect("ok").expect("on");
        assert!(credentials.check(Some("Bearer s3cret")).is_ok());
        assert!(credentials.check(Some("bearer  s3cret ")).is_ok());
        assert!(credentials.check(Some("Basic YWRtaW46cHc=")).is_ok());
        let missing = credentials.check(None).expect_err("missing");
        assert_eq!(missing.kind, ApiErrorKind::Unauthorized);
        for wrong in ["Bearer s3cre", "Basic YWRtaW46cHg=", "Digest x", "s3cret", ""] {
            assert_eq!(credentials.check(Some(wrong)).expect_err(wrong).message, "Invalid credentials");
        }
        assert!(!format!("{credentials:?}").contains("s3cret"));
    }
}
