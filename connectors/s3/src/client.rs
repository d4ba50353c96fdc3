//! A small S3 client: AWS Signature V4 (HMAC-SHA256 from `ring`, already in the tree through rustls) over the
//! workspace's reqwest. Just what the sink needs: HEAD bucket, PUT object, multipart uploads (create, part,
//! complete, abort, list). Endpoint, region and credentials follow the AWS SDKs' standard environment.

use std::time::Duration;

use ring::{digest, hmac};

use sluice_connect_api::date_format::civil_from_days;
use sluice_connect_api::error::ConnectError;

/// Access key, secret and optional session token.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl Credentials {
    /// The AWS SDKs' default chain, minus container/instance metadata: explicit keys, then `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, then the shared credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) with profile `AWS_PROFILE` (default `default`).
    pub fn resolve(access_key: Option<&str>, secret_key: Option<&str>) -> Option<Credentials> {
        if let (Some(a), Some(s)) = (access_key, secret_key)
            && !a.is_empty()
            && !s.is_empty()
        {
            return Some(Credentials { access_key: a.into(), secret_key: s.into(), session_token: None });
        }
        if let (Some(a), Some(s)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Some(Credentials { access_key: a, secret_key: s, session_token: env("AWS_SESSION_TOKEN") });
        }
        let file =
            env("AWS_SHARED_CREDENTIALS_FILE").or_else(|| env("HOME").map(|h| format!("{h}/.aws/credentials")))?;
        let text = std::fs::read_to_string(file).ok()?;
        parse_profile(&text, &env("AWS_PROFILE").unwrap_or_else(|| "default".into()))
    }
}

/// The keys of `[profile]` in an AWS shared credentials file.
pub fn parse_profile(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut a, mut s, mut t) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') && line.ends_with(']') {
            let name = line[1..line.len() - 1].trim();
            in_profile = name == profile || name.strip_prefix("profile ").map(str::trim) == Some(profile);
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => a = Some(v),
                "aws_secret_access_key" => s = Some(v),
                "aws_session_token" => t = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials { access_key: a?, secret_key: s?, session_token: t })
}

/// The endpoint: `store.url` (no scheme means `https://`), else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`,
/// else AWS's regional endpoint. Path-style addressing always (as `s3.path.style.access.enabled=true`).
pub fn resolve_endpoint(store_url: Option<&str>, region: &str) -> String {
    let raw = store_url
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let url = if raw.contains("://") { raw } else { format!("https://{raw}") };
    url.trim_end_matches('/').to_string()
}

/// An S3 error answer or a transport failure.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("{method} {url}: HTTP {status} {code}: {message}")]
    Status { method: String, url: String, status: u16, code: String, message: String },
    #[error("{method} {url}: {source}")]
    Transport {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl S3Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Status { status, .. } => Some(*status),
            S3Error::Transport { .. } => None,
        }
    }
    pub fn code(&self) -> &str {
        match self {
            S3Error::Status { code, .. } => code,
            S3Error::Transport { .. } => "",
        }
    }

    /// The whole chain of causes (reqwest's own message hides the TLS or connection cause in its sources).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            let m = e.to_string();
            if !text.contains(&m) {
                text.push_str(": ");
                text.push_str(&m);
            }
            source = e.source();
        }
        text
    }

    /// A TLS failure that retrying cannot fix (the server's certificate is not trusted or does not match).
    pub fn is_tls_trust(&self) -> bool {
        matches!(self, S3Error::Transport { .. }) && {
            let c = self.chain();
            c.contains("certificate") || c.contains("UnknownIssuer") || c.contains("NotValidForName")
        }
    }
}

/// `AWS_CA_BUNDLE`: the AWS SDKs' and CLI's variable naming a PEM file of extra certificate authorities to trust
/// for HTTPS (Confluent's connector has no key for it: the JVM's trust store plays that role there).
pub fn ca_bundle() -> Result<Vec<reqwest::Certificate>, ConnectError> {
    let Some(path) = env("AWS_CA_BUNDLE") else { return Ok(Vec::new()) };
    let pem = std::fs::read(&path).map_err(|e| {
        ConnectError::fatal(format!("reading AWS_CA_BUNDLE {path:?} (a PEM file of CA certificates)"), e)
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ConnectError::fatal(format!("AWS_CA_BUNDLE {path:?} is not a PEM file of certificates"), e))?;
    if certs.is_empty() {
        return Err(ConnectError::Data(format!("AWS_CA_BUNDLE {path:?} holds no PEM certificate")));
    }
    Ok(certs)
}

#[derive(Clone)]
pub struct S3Client {
    http: reqwest::Client,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    creds: Credentials,
    /// Extra `x-amz-*` headers on object creation (tagging, server-side encryption).
    pub put_headers: Vec<(String, String)>,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sign(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it (`/` kept when `keep_slash`).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// (`YYYYMMDDTHHMMSSZ`, `YYYYMMDD`) of a Unix time in milliseconds.
pub fn amz_dates(millis: i64) -> (String, String) {
    let secs = millis.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let date = format!("{y:04}{m:02}{d:02}");
    (format!("{date}T{:02}{:02}{:02}Z", sod / 3600, sod / 60 % 60, sod % 60), date)
}

/// The SigV4 `Authorization` header value for a request.
#[allow(clippy::too_many_arguments)]
pub fn authorization(
    creds: &Credentials,
    region: &str,
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
    amz_date: &str,
    date: &str,
) -> String {
    let mut sorted: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())).collect();
    sorted.sort();
    let canonical_headers: String = sorted.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = sorted.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical =
        format!("{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed}\n{payload_hash}");
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let k = hmac_sign(format!("AWS4{}", creds.secret_key).as_bytes(), date.as_bytes());
    let k = hmac_sign(&k, region.as_bytes());
    let k = hmac_sign(&k, b"s3");
    let k = hmac_sign(&k, b"aws4_request");
    let sig = hex(&hmac_sign(&k, to_sign.as_bytes()));
    format!("AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}", creds.access_key)
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The text of the first `<tag>…</tag>` in an XML answer.
pub fn xml_tag<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl S3Client {
    /// A client for `endpoint` (http:// or https://). HTTPS trusts the Mozilla roots (webpki-roots), the system's
    /// store (`/etc/ssl/certs`, `SSL_CERT_FILE` / `SSL_CERT_DIR`) and the CAs of `AWS_CA_BUNDLE`.
    pub fn new(endpoint: String, region: String, bucket: String, creds: Credentials) -> Result<Self, ConnectError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .use_rustls_tls();
        for cert in ca_bundle()? {
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| ConnectError::fatal("building the HTTP client", e))?;
        Ok(S3Client { http, endpoint, region, bucket, creds, put_headers: Vec::new() })
    }

    async fn request(
        &self,
        method: reqwest::Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(String, String)],
        body: impl Into<bytes::Bytes>,
    ) -> Result<(reqwest::header::HeaderMap, String), S3Error> {
        let (headers, body) = self.request_bytes(method, key, query, extra, body).await?;
        Ok((headers, String::from_utf8_lossy(&body).into_owned()))
    }

    /// A signed request; the answer's body as bytes (objects may be binary: gzip, Avro).
    async fn request_bytes(
        &self,
        method: reqwest::Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(String, String)],
        body: impl Into<bytes::Bytes>,
    ) -> Result<(reqwest::header::HeaderMap, bytes::Bytes), S3Error> {
        // `Bytes`: the caller may keep the body for a retry without copying it (objects are megabytes).
        let body: bytes::Bytes = body.into();
        let path = match key {
            Some(k) => format!("/{}/{}", uri_encode(&self.bucket, false), uri_encode(k, true)),
            None => format!("/{}", uri_encode(&self.bucket, false)),
        };
        let mut q: Vec<(String, String)> =
            query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
        q.sort();
        let canonical_query: String = q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let url = if canonical_query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{canonical_query}", self.endpoint)
        };
        let host = {
            let rest = self.endpoint.split_once("://").map_or(self.endpoint.as_str(), |(_, r)| r);
            rest.split('/').next().unwrap_or(rest).to_string()
        };
        let payload_hash = sha256_hex(&body);
        let (amz_date, date) = amz_dates(now_millis());
        let mut headers = vec![
            ("host".to_string(), host),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
            ("x-amz-date".to_string(), amz_date.clone()),
        ];
        if let Some(t) = &self.creds.session_token {
            headers.push(("x-amz-security-token".into(), t.clone()));
        }
        headers.extend(extra.iter().cloned());
        let auth = authorization(
            &self.creds,
            &self.region,
            method.as_str(),
            &path,
            &canonical_query,
            &headers,
            &payload_hash,
            &amz_date,
            &date,
        );
        let mut req = self.http.request(method.clone(), &url).header("authorization", auth);
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let transport = |source| S3Error::Transport { method: method.to_string(), url: url.clone(), source };
        let resp = req.body(body).send().await.map_err(transport)?;
        let status = resp.status();
        let resp_headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let code = xml_tag(&text, "Code").unwrap_or("").to_string();
            let message = xml_tag(&text, "Message").unwrap_or(status.canonical_reason().unwrap_or("")).to_string();
            return Err(S3Error::Status { method: method.to_string(), url, status: status.as_u16(), code, message });
        }
        Ok((resp_headers, bytes))
    }

    /// Creates the bucket (fine if this identity owns it already).
    pub async fn create_bucket(&self) -> Result<(), S3Error> {
        match self.request(reqwest::Method::PUT, None, &[], &[], Vec::new()).await {
            Err(e) if matches!(e.code(), "BucketAlreadyOwnedByYou" | "BucketAlreadyExists") => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Deletes the (empty) bucket.
    pub async fn delete_bucket(&self) -> Result<(), S3Error> {
        self.request(reqwest::Method::DELETE, None, &[], &[], Vec::new()).await.map(|_| ())
    }

    pub async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        self.request(reqwest::Method::DELETE, Some(key), &[], &[], Vec::new()).await.map(|_| ())
    }

    /// HEAD the bucket: Ok if it exists and the credentials may use it.
    pub async fn head_bucket(&self) -> Result<(), S3Error> {
        self.request(reqwest::Method::HEAD, None, &[], &[], Vec::new()).await.map(|_| ())
    }

    pub async fn put_object(&self, key: &str, body: impl Into<bytes::Bytes>) -> Result<(), S3Error> {
        let extra = self.put_headers.clone();
        self.request(reqwest::Method::PUT, Some(key), &[], &extra, body).await.map(|_| ())
    }

    /// The object as text (lossy UTF-8).
    pub async fn get_object(&self, key: &str) -> Result<String, S3Error> {
        self.request(reqwest::Method::GET, Some(key), &[], &[], Vec::new()).await.map(|(_, t)| t)
    }

    /// The object's bytes.
    pub async fn get_object_bytes(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        self.request_bytes(reqwest::Method::GET, Some(key), &[], &[], Vec::new()).await.map(|(_, b)| b.to_vec())
    }

    /// Sets the object's tags (PutObjectTagging).
    pub async fn put_tags(&self, key: &str, tags: &[(&str, String)]) -> Result<(), S3Error> {
        let mut xml = String::from("<Tagging><TagSet>");
        for (k, v) in tags {
            xml.push_str(&format!("<Tag><Key>{}</Key><Value>{}</Value></Tag>", xml_escape(k), xml_escape(v)));
        }
        xml.push_str("</TagSet></Tagging>");
        self.request(reqwest::Method::PUT, Some(key), &[("tagging", "")], &[], xml.into_bytes()).await.map(|_| ())
    }

    /// The object's tags (GetObjectTagging), as (key, value) pairs.
    pub async fn get_tags(&self, key: &str) -> Result<Vec<(String, String)>, S3Error> {
        let (_, text) = self.request(reqwest::Method::GET, Some(key), &[("tagging", "")], &[], Vec::new()).await?;
        let mut out = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("<Tag>") {
            let end = rest[start..].find("</Tag>").map_or(rest.len(), |e| start + e);
            if let (Some(k), Some(v)) = (xml_tag(&rest[start..end], "Key"), xml_tag(&rest[start..end], "Value")) {
                out.push((xml_unescape(k), xml_unescape(v)));
            }
            rest = &rest[end..];
        }
        Ok(out)
    }

    pub async fn create_multipart(&self, key: &str) -> Result<String, S3Error> {
        let extra = self.put_headers.clone();
        let (_, text) = self.request(reqwest::Method::POST, Some(key), &[("uploads", "")], &extra, Vec::new()).await?;
        Ok(xml_tag(&text, "UploadId").unwrap_or_default().to_string())
    }

    /// Uploads a part; returns its ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: impl Into<bytes::Bytes>,
    ) -> Result<String, S3Error> {
        let n = number.to_string();
        let (headers, _) = self
            .request(reqwest::Method::PUT, Some(key), &[("partNumber", &n), ("uploadId", upload_id)], &[], body)
            .await?;
        Ok(headers.get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string())
    }

    pub async fn complete_multipart(&self, key: &str, upload_id: &str, etags: &[String]) -> Result<(), S3Error> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            xml.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, xml_escape(etag)));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let (_, text) =
            self.request(reqwest::Method::POST, Some(key), &[("uploadId", upload_id)], &[], xml.into_bytes()).await?;
        // S3 may answer 200 with an error document.
        if let Some(code) = xml_tag(&text, "Code") {
            return Err(S3Error::Status {
                method: "POST".into(),
                url: key.into(),
                status: 500,
                code: code.into(),
                message: xml_tag(&text, "Message").unwrap_or("").into(),
            });
        }
        Ok(())
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        match self.request(reqwest::Method::DELETE, Some(key), &[("uploadId", upload_id)], &[], Vec::new()).await {
            Err(e) if e.status() == Some(404) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Unfinished multipart uploads under a prefix: (key, upload id).
    pub async fn list_multipart(&self, prefix: &str) -> Result<Vec<(String, String)>, S3Error> {
        let (_, text) =
            self.request(reqwest::Method::GET, None, &[("uploads", ""), ("prefix", prefix)], &[], Vec::new()).await?;
        let mut out = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("<Upload>") {
            let end = rest[start..].find("</Upload>").map_or(rest.len(), |e| start + e);
            let upload = &rest[start..end];
            if let (Some(k), Some(id)) = (xml_tag(upload, "Key"), xml_tag(upload, "UploadId")) {
                out.push((xml_unescape(k), xml_unescape(id)));
            }
            rest = &rest[end..];
        }
        Ok(out)
    }

    /// Object keys under a prefix (ListObjectsV2, all pages).
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                q.push(("continuation-token", t));
            }
            let (_, text) = self.request(reqwest::Method::GET, None, &q, &[], Vec::new()).await?;
            let mut rest = text.as_str();
            while let Some(start) = rest.find("<Contents>") {
                let end = rest[start..].find("</Contents>").map_or(rest.len(), |e| start + e);
                if let Some(k) = xml_tag(&rest[start..end], "Key") {
                    keys.push(xml_unescape(k));
                }
                rest = &rest[end..];
            }
            match xml_tag(&text, "NextContinuationToken") {
                Some(t) if xml_tag(&text, "IsTruncated") == Some("true") => token = Some(xml_unescape(t)),
                _ => return Ok(keys),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's SigV4 documentation example ("GET Object" in "Signature Calculations for the Authorization Header:
    /// Transferring Payload in a Single Chunk", Amazon S3 API reference, sig-v4-header-based-auth).
    #[test]
    fn sigv4_matches_the_aws_documentation_example() {
        let creds = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let headers = vec![
            ("Host".to_string(), "examplebucket.s3.amazonaws.com".to_string()),
            ("Range".to_string(), "bytes=0-9".to_string()),
            ("x-amz-content-sha256".to_string(), empty.to_string()),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        let auth =
            authorization(&creds, "us-east-1", "GET", "/test.txt", "", &headers, empty, "20130524T000000Z", "20130524");
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn dates_and_profiles() {
        assert_eq!(amz_dates(1_369_353_600_000), ("20130524T000000Z".into(), "20130524".into()));
        let c = parse_profile("[default]\naws_access_key_id=a\naws_secret_access_key=b\n[profile x]\naws_access_key_id = c\naws_secret_access_key = d\n", "x").unwrap();
        assert_eq!((c.access_key.as_str(), c.secret_key.as_str()), ("c", "d"));
        assert_eq!(
            uri_encode("topics/t/partition=0/t+0+0000000000.json", true),
            "topics/t/partition%3D0/t%2B0%2B0000000000.json"
        );
    }
}
