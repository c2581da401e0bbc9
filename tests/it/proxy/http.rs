//! The proxy's HTTP/1.1: requests read from a client (keep-alive,
//! `Expect: 100-continue`, chunked or sized bodies), forwarded to moto over
//! one reused connection, and responses written back with our own framing.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use super::Service;

/// One HTTP request; the AWS model reads and rewrites it, and sends its own
/// to moto.
#[derive(Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The client asked to close after this response.
    pub(crate) close: bool,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub(super) fn form(&self, key: &str) -> Option<String> {
        let body = std::str::from_utf8(&self.body).ok()?;
        let query = self.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        body.split('&')
            .chain(query.split('&'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    }

    pub(super) fn service(&self) -> Service {
        // Credential=AKID/20260101/us-west-2/ec2/aws4_request
        let scope = self
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3));
        match scope {
            Some("ec2") => return Service::Ec2,
            Some("elasticloadbalancing") => return Service::Elbv2,
            Some("s3") => return Service::S3,
            _ => {}
        }
        match self.form("Version").as_deref() {
            Some("2016-11-15") => Service::Ec2,
            Some("2015-12-01") => Service::Elbv2,
            _ => Service::Other,
        }
    }

    pub(super) fn action(&self) -> String {
        if self.service() == Service::S3 {
            return self.s3_operation();
        }
        self.form("Action").unwrap_or_else(|| {
            let path = self.target.split('?').next().unwrap_or("");
            format!("{} {path}", self.method)
        })
    }
}

impl Request {
    /// The S3 operation of a path-style request (`/bucket/` or
    /// `/bucket/key`), as the API reference names it.
    fn s3_operation(&self) -> String {
        let (path, query) = self.target.split_once('?').unwrap_or((&self.target, ""));
        // `/bucket/` (a listing, HeadBucket) names no key.
        let has_key = path
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(_, key)| !key.is_empty());
        let listing = query.split('&').any(|p| p == "list-type=2");
        let name = match (self.method.as_str(), has_key) {
            ("PUT", true) if self.header("x-amz-copy-source").is_some() => "CopyObject",
            ("PUT", true) => "PutObject",
            ("GET", true) => "GetObject",
            ("HEAD", true) => "HeadObject",
            ("DELETE", true) => "DeleteObject",
            ("PUT", false) => "CreateBucket",
            ("HEAD", false) => "HeadBucket",
            ("GET", false) if listing => "ListObjectsV2",
            ("GET", false) => "ListObjects",
            ("POST", false) if query.contains("delete") => "DeleteObjects",
            (method, _) => return format!("{method} {path}"),
        };
        name.to_string()
    }
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// HTTP/1.1 with our own framing: a Content-Length, no chunking.
    pub(super) fn encode(&self, close: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            if !is_framing(name) {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str(&format!("content-length: {}\r\n", self.body.len()));
        if close {
            out.push_str("connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

pub(super) fn is_framing(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "expect",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(super) fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    header(headers, name)
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// The next request, or `None` when the client closed between requests.
pub(super) fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
) -> io::Result<Option<Request>> {
    let Some((start, headers)) = read_head(reader)? else {
        return Ok(None);
    };
    let mut parts = start.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {start:?}")));
    };
    if has_token(&headers, "expect", "100-continue") {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = read_body(reader, &headers, None)?;
    let close = has_token(&headers, "connection", "close")
        || (version == "HTTP/1.0" && !has_token(&headers, "connection", "keep-alive"));
    Ok(Some(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
        close,
    }))
}

pub(super) type Head = (String, Vec<(String, String)>);

/// The start line and headers, or `None` at a clean end of stream.
pub(super) fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut start = String::new();
    if reader.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
        if headers.len() > 200 {
            return Err(invalid("too many headers".into()));
        }
    }
    Ok(Some((start.trim_end().to_string(), headers)))
}

/// A body framed by chunked encoding or Content-Length; for responses with
/// neither (`until_eof`), everything up to the end of the stream.
pub(super) fn read_body(
    reader: &mut impl BufRead,
    headers: &[(String, String)],
    until_eof: Option<&mut bool>,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if has_token(headers, "transfer-encoding", "chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = size.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let at = body.len();
            body.resize(at + size, 0);
            reader.read_exact(&mut body[at..])?;
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf)?;
        }
    }
    if let Some(len) = header(headers, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| invalid(format!("bad content-length {len:?}")))?;
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if let Some(eof) = until_eof {
        reader.read_to_end(&mut body)?;
        *eof = true;
    }
    Ok(body)
}

pub(super) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

pub(super) struct Upstream {
    pub(super) reader: BufReader<TcpStream>,
    pub(super) writer: TcpStream,
}

/// `request` sent to moto and its whole response read. A reused connection
/// that moto closed in the meantime is reopened once, before any response
/// byte arrived (so moto never saw the request).
pub(super) fn forward(
    upstream: &mut Option<Upstream>,
    addr: SocketAddr,
    request: &Request,
) -> io::Result<Response> {
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (name, value) in &request.headers {
        if !is_framing(name) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", request.body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&request.body);

    let reused = upstream.is_some();
    let attempt = |upstream: &mut Option<Upstream>| -> io::Result<Option<Response>> {
        if upstream.is_none() {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            *upstream = Some(Upstream {
                reader: BufReader::new(stream.try_clone()?),
                writer: stream,
            });
        }
        let conn = upstream.as_mut().expect("connected above");
        conn.writer.write_all(&bytes)?;
        read_response(&mut conn.reader, request.method == "HEAD")
    };
    let response = match attempt(upstream) {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) if reused => {
            *upstream = None;
            attempt(upstream)?.ok_or_else(|| invalid("moto closed without answering".into()))?
        }
        Ok(None) => return Err(invalid("moto closed without answering".into())),
        Err(e) => return Err(e),
    };
    let keep = !has_token(&response.headers, "connection", "close");
    if !keep {
        *upstream = None;
    }
    Ok(response)
}

/// The response, or `None` if the stream ended before its first byte.
pub(super) fn read_response(
    reader: &mut BufReader<TcpStream>,
    head_only: bool,
) -> io::Result<Option<Response>> {
    loop {
        let Some((start, headers)) = read_head(reader)? else {
            return Ok(None);
        };
        let mut parts = start.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {start:?}")))?;
        let reason = parts.next().unwrap_or("").to_string();
        if (100..200).contains(&status) {
            continue;
        }
        let mut eof = false;
        let body = if head_only || status == 204 || status == 304 {
            Vec::new()
        } else {
            read_body(reader, &headers, Some(&mut eof))?
        };
        let mut headers = headers;
        if eof || (version == "HTTP/1.0" && !has_token(&headers, "connection", "keep-alive")) {
            headers.push(("connection".into(), "close".into()));
        }
        return Ok(Some(Response {
            status,
            reason,
            headers,
            body,
        }));
    }
}

/// The status and body of the next response on `reader`, for tests that
/// speak HTTP themselves.
pub fn read_answer(reader: &mut BufReader<TcpStream>) -> io::Result<(u16, String)> {
    let response =
        read_response(reader, false)?.ok_or_else(|| invalid("closed without answering".into()))?;
    Ok((
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    ))
}
