//! Who may open an agent stream, and as which agent id. An agent stream receives task configs (secrets included) and
//! changes statuses and offsets, so it is refused unless the client proves it is one of the cluster's agents:
//!
//! - **mutual TLS** (recommended): the gRPC port verifies client certificates against `--agent-tls-client-ca`; a
//!   certificate's subject common name (CN) names the agent ids it may use (by default exactly its CN, or the
//!   patterns `--agent-cert-ids CN=pattern` gives it);
//! - a shared **join token** (`--agent-token`), sent as `authorization: Bearer <token>`, for simple setups: whoever
//!   holds it may act as any agent id;
//! - `--insecure-agents` accepts every stream, for loopback and tests only.
//!
//! Once in, a stream acts only as the id it was authorized for: the stream service fences every report against that
//! agent's own assignment and epochs.

use std::net::SocketAddr;

use tonic::Status;
use tonic::metadata::MetadataMap;

/// The agent-stream authentication policy of one replica.
#[derive(Clone, Default)]
pub struct AgentAuth {
    /// Every stream is accepted (`--insecure-agents`).
    insecure: bool,
    /// The shared join token.
    token: Option<String>,
    /// Client certificates are verified by the TLS layer and their CN maps to agent ids.
    certificates: bool,
    /// `(CN, agent-id pattern)` rules; a CN without a rule may use the agent id equal to itself.
    cert_ids: Vec<(String, String)>,
}

impl std::fmt::Debug for AgentAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.debug_struct("AgentAuth")
            .field("insecure", &self.insecure)
            .field("token", &self.token.is_some())
            .field("certificates", &self.certificates)
            .field("cert_ids", &self.cert_ids)
            .finish()
    }
}

/// What a client presented, read from the request before its first message.
#[derive(Debug, Clone, Default)]
pub struct PresentedCredentials {
    /// The bearer token of the `authorization` metadata.
    token: Option<String>,
    /// The CN of the client certificate the TLS layer verified (`None`: no certificate, or no CN in it).
    certificate_cn: Option<String>,
    /// Whether a verified client certificate was presented at all.
    has_certificate: bool,
    /// The client's address, for the log.
    pub peer: Option<SocketAddr>,
}

impl AgentAuth {
    /// Accepts every stream (`--insecure-agents`).
    pub fn insecure() -> AgentAuth {
        AgentAuth { insecure: true, ..AgentAuth::default() }
    }

    /// A join token and/or client certificates (`certificates`: the gRPC port verifies them against a client CA).
    /// `cert_ids` are `CN=pattern` entries (`*` matches any run of characters). With none of the three, every
    /// stream is refused.
    pub fn new(token: Option<String>, certificates: bool, cert_ids: &[String]) -> Result<AgentAuth, String> {
        let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        let mut rules = Vec::new();
        for entry in cert_ids.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let Some((cn, pattern)) = entry.split_once('=') else {
                return Err(format!("--agent-cert-ids: `{entry}` is not CN=agent-id-pattern"));
            };
            let (cn, pattern) = (cn.trim(), pattern.trim());
            if cn.is_empty() || pattern.is_empty() {
                return Err(format!("--agent-cert-ids: `{entry}` is not CN=agent-id-pattern"));
            }
            rules.push((cn.to_string(), pattern.to_string()));
        }
        if !rules.is_empty() && !certificates {
            return Err("--agent-cert-ids needs --agent-tls-client-ca (client certificates)".to_string());
        }
        Ok(AgentAuth { insecure: false, token, certificates, cert_ids: rules })
    }

    /// Whether any agent can get in at all (else the replica serves admin requests only).
    pub fn accepts_anyone(&self) -> bool {
        self.insecure || self.token.is_some() || self.certificates
    }

    /// Reads the credentials of a request (metadata and the TLS peer certificate).
    pub fn presented<T>(&self, request: &tonic::Request<T>) -> PresentedCredentials {
        let certificate = if self.certificates { request.peer_certs() } else { None };
        let leaf = certificate.as_ref().and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()));
        PresentedCredentials {
            token: bearer_token(request.metadata()),
            certificate_cn: leaf.as_deref().and_then(subject_common_name),
            has_certificate: leaf.is_some(),
            peer: request.remote_addr(),
        }
    }

    /// Whether `presented` may act as `agent_id`: `UNAUTHENTICATED` without a valid credential,
    /// `PERMISSION_DENIED` for a certificate that does not cover this id.
    pub fn authorize(&self, presented: &PresentedCredentials, agent_id: &str) -> Result<(), Status> {
        if self.insecure {
            return Ok(());
        }
        if !self.accepts_anyone() {
            return Err(Status::unauthenticated(
                "this control plane accepts no agents: start it with --agent-token, --agent-tls-client-ca, or \
                 --insecure-agents (loopback and tests only)",
            ));
        }
        if let (Some(expected), Some(given)) = (&self.token, &presented.token)
            && constant_time_eq(expected.as_bytes(), given.as_bytes())
        {
            return Ok(());
        }
        if presented.has_certificate {
            let Some(cn) = &presented.certificate_cn else {
                return Err(Status::permission_denied("the client certificate has no subject CN to map to agent ids"));
            };
            if self.certificate_may_use(cn, agent_id) {
                return Ok(());
            }
            return Err(Status::permission_denied(format!(
                "the client certificate CN={cn} may not act as agent `{agent_id}` (see --agent-cert-ids)"
            )));
        }
        if presented.token.is_some() {
            return Err(Status::unauthenticated("invalid agent token"));
        }
        Err(Status::unauthenticated(
            "agent credentials required: a client certificate (--tls-cert/--tls-key) or the join token \
             (--agent-token)",
        ))
    }

    fn certificate_may_use(&self, cn: &str, agent_id: &str) -> bool {
        let mut rules = self.cert_ids.iter().filter(|(rule_cn, _)| rule_cn == cn).peekable();
        if rules.peek().is_none() {
            return cn == agent_id;
        }
        rules.any(|(_, pattern)| glob_match(pattern, agent_id))
    }
}

fn bearer_token(metadata: &MetadataMap) -> Option<String> {
    let value = metadata.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `*` matches any run of characters (also none); everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut middle = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match middle.find(part) {
            Some(at) => middle = &middle[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// One DER element: `(tag, content, rest)`.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (length, &rest[count..])
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

/// The first common name (OID 2.5.4.3) of an X.509 certificate's subject. The certificate was verified by the TLS
/// layer already; this only reads it (and gives `None` for anything it does not understand).
pub fn subject_common_name(certificate_der: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    let (tag, certificate, _) = der_element(certificate_der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // version [0] EXPLICIT (optional), serialNumber, signature, issuer, validity, then subject.
    let (tag, _, after) = der_element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    for _ in 0..4 {
        rest = der_element(rest)?.2;
    }
    let (tag, subject, _) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut names = subject;
    while !names.is_empty() {
        let (_, set, next) = der_element(names)?;
        names = next;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, next) = der_element(attributes)?;
            attributes = next;
            let (oid_tag, oid, value) = der_element(attribute)?;
            if oid_tag == 0x06 && oid == [0x55, 0x04, 0x03] {
                let (value_tag, text, _) = der_element(value)?;
                // UTF8String, PrintableString, T61String, IA5String.
                if matches!(value_tag, 0x0c | 0x13 | 0x14 | 0x16) {
                    return std::str::from_utf8(text).ok().map(str::to_string);
                }
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(t: &str) -> PresentedCredentials {
        PresentedCredentials { token: Some(t.into()), ..Default::default() }
    }

    fn certificate(cn: Option<&str>) -> PresentedCredentials {
        PresentedCredentials { certificate_cn: cn.map(str::to_string), has_certificate: true, ..Default::default() }
    }

    #[test]
    fn nothing_configured_refuses_every_stream() {
        let auth = AgentAuth::default();
        assert!(!auth.accepts_anyone());
        for presented in [PresentedCredentials::default(), token("x"), certificate(Some("agent-1"))] {
            let refused = auth.authorize(&presented, "agent-1").expect_err("refused");
            assert!(
                matches!(refused.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied),
                "{refused:?}"
            );
        }
        assert!(AgentAuth::insecure().authorize(&PresentedCredentials::default(), "any").is_ok());
    }

    #[test]
    fn join_token() {
        let auth = AgentAuth::new(Some("j0in".into()), false, &[]).expect("auth");
        assert!(auth.authorize(&token("j0in"), "agent-7").is_ok());
        let wrong = auth.authorize(&token("j0im"), "agent-7").expect_err("wrong");
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert_eq!(wrong.message(), "invalid agent token");
        let none = auth.authorize(&PresentedCredentials::default(), "agent-7").expect_err("none");
        assert_eq!(none.code(), tonic::Code::Unauthenticated);
        assert!(!format!("{auth:?}").contains("j0in"));
    }

    #[test]
    fn certificates_map_their_cn_to_agent_ids() {
        let rules = vec!["fleet-a=agent-a-*".to_string(), "fleet-a=spare".to_string()];
        let auth = AgentAuth::new(None, true, &rules).expect("auth");
        assert!(auth.authorize(&certificate(Some("agent-1")), "agent-1").is_ok());
        let other = auth.authorize(&certificate(Some("agent-1")), "agent-2").expect_err("other id");
        assert_eq!(other.code(), tonic::Code::PermissionDenied);
        assert!(auth.authorize(&certificate(Some("fleet-a")), "agent-a-17").is_ok());
        assert!(auth.authorize(&certificate(Some("fleet-a")), "spare").is_ok());
        // A CN with rules may use only what they say, not its own name.
        assert!(auth.authorize(&certificate(Some("fleet-a")), "fleet-a").is_err());
        assert!(auth.authorize(&certificate(Some("fleet-a")), "agent-b-1").is_err());
        assert!(auth.authorize(&certificate(None), "agent-1").is_err());
        assert!(auth.authorize(&PresentedCredentials::default(), "agent-1").is_err());
        assert!(AgentAuth::new(None, false, &rules).is_err());
        assert!(AgentAuth::new(None, true, &["nocn".to_string()]).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("a-*", "a-1"));
        assert!(glob_match("a-*", "a-"));
        assert!(!glob_match("a-*", "b-1"));
        assert!(glob_match("*-x-*", "1-x-2"));
        assert!(!glob_match("*-x-*", "1-y-2"));
        assert!(glob_match("*", "anything"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn reads_the_subject_cn_of_a_certificate() {
        // openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Sluice/CN=agent-1" -days 1
        let pem = include_str!("../tests/fixtures/agent-1-cert.pem");
        let der = tokio_rustls::rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|c: tokio_rustls::rustls::pki_types::CertificateDer<'static>| c.as_ref().to_vec())
            .expect("pem");
        assert_eq!(subject_common_name(&der).as_deref(), Some("agent-1"));
        assert_eq!(subject_common_name(&der[..20]), None);
        assert_eq!(subject_common_name(b""), None);
    }
}
