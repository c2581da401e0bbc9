//! One webhook POST, retried with bounded back-off. Blocking on purpose:
//! a notification is sent from a journal append (which is blocking I/O
//! already), on threads of its own, under one deadline the caller keeps.
//! HTTP/1.1 over TCP, or over TLS (rustls on ring, the system's roots, the
//! server's name checked) for `https://`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_rustls::rustls::{self, pki_types::ServerName, RootCertStore};

/// How hard a delivery tries.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub attempts: u32,
    /// The first pause between attempts; it doubles.
    pub backoff: Duration,
    /// One attempt's bound (connect, send, the answer's status line).
    pub attempt_timeout: Duration,
    /// All attempts together.
    pub deadline: Duration,
}

/// Three attempts within four seconds: a dead or hanging receiver costs a
/// run at most that, per notification.
pub const POLICY: Policy = Policy {
    attempts: 3,
    backoff: Duration::from_millis(250),
    attempt_timeout: Duration::from_millis(1500),
    deadline: Duration::from_secs(4),
};

/// A webhook whose last delivery in this process failed: one short try,
/// so a receiver that is down costs a run [`POLICY`]'s deadline once, not
/// at every notification; one that answers again gets the full policy.
pub const ONE_TRY: Policy = Policy {
    attempts: 1,
    backoff: Duration::from_millis(0),
    attempt_timeout: Duration::from_millis(500),
    deadline: Duration::from_millis(500),
};

/// How a delivery ended: the attempts made, and the status or the last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub attempts: u32,
    pub result: Result<u16, String>,
}

/// POSTs `body` to `url` with `headers` until a 2xx, a 4xx other than 408
/// and 429 (the receiver will not change its mind), or the policy's end.
pub fn post(
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
    policy: Policy,
    roots: &Arc<RootCertStore>,
) -> Delivery {
    let start = Instant::now();
    let mut pause = policy.backoff;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = policy.deadline.saturating_sub(start.elapsed());
        let result = once(url, headers, body, policy.attempt_timeout.min(left), roots);
        let retry = match &result {
            Ok(status) => *status >= 500 || *status == 408 || *status == 429,
            Err(_) => true,
        };
        let result = match result {
            Ok(status) if (200..300).contains(&status) => Ok(status),
            Ok(status) => Err(format!("HTTP {status}")),
            Err(e) => Err(e),
        };
        let out_of_time = start.elapsed() + pause + Duration::from_millis(100) >= policy.deadline;
        if result.is_ok() || !retry || attempts >= policy.attempts || out_of_time {
            return Delivery { attempts, result };
        }
        std::thread::sleep(pause);
        pause *= 2;
    }
}

/// Where a URL points, and the request line's target.
struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn target(url: &str) -> Result<Target, String> {
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (_, Some(rest)) => (false, rest),
        _ => return Err("not an http:// or https:// URL".into()),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    let default = if tls { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse() {
            Ok(port) => (h, port),
            Err(_) => (authority, default),
        },
        _ => (authority, default),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Target {
        tls,
        host,
        port,
        path,
    })
}

/// The URL without its path and query, which may hold a token (Slack's
/// do): what journals and messages show of a webhook.
pub fn shown(url: &str) -> String {
    match target(url) {
        Ok(t) => format!(
            "{}://{}:{}",
            if t.tls { "https" } else { "http" },
            t.host,
            t.port
        ),
        Err(_) => "(not a URL)".into(),
    }
}

/// One attempt, within `timeout`: the answer's status.
fn once(
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
    roots: &Arc<RootCertStore>,
) -> Result<u16, String> {
    if timeout.is_zero() {
        return Err("no time left".into());
    }
    let t = target(url)?;
    let start = Instant::now();
    let addr = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| format!("{} does not resolve ({e})", t.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", t.host))?;
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let left = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: drctl/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        t.path,
        if (t.tls && t.port == 443) || (!t.tls && t.port == 80) {
            t.host.clone()
        } else {
            format!("{}:{}", t.host, t.port)
        },
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    if !t.tls {
        return exchange(stream, &bytes, addr);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(t.host.clone()).map_err(|e| format!("{}: {e}", t.host))?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| format!("TLS with {}: {e}", t.host))?;
    exchange(rustls::StreamOwned::new(connection, stream), &bytes, addr)
}

/// Sends the request and reads the status line of the answer.
fn exchange(
    mut stream: impl Read + Write,
    request: &[u8],
    addr: std::net::SocketAddr,
) -> Result<u16, String> {
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("no answer from {addr}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| format!("{addr} answered with no HTTP status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_where_and_what_and_show_no_path() {
        let t = target("https://hooks.slack.com/services/T0/B0/XYZ").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("hooks.slack.com", 443));
        assert_eq!(t.path, "/services/T0/B0/XYZ");
        let t = target("http://127.0.0.1:8080?x=1").unwrap();
        assert_eq!((t.port, t.path.as_str()), (8080, "/?x=1"));
        assert_eq!(
            shown("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com:443"
        );
    }

    #[test]
    fn a_refused_connection_is_retried_a_bounded_number_of_times() {
        // A port nobody listens on: bind one, then close it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let policy = Policy {
            attempts: 3,
            backoff: Duration::from_millis(1),
            attempt_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(4),
        };
        let roots = Arc::new(RootCertStore::empty());
        let delivery = post(
            &format!("http://127.0.0.1:{port}/x"),
            &[],
            b"{}",
            policy,
            &roots,
        );
        assert_eq!(delivery.attempts, 3);
        let error = delivery.result.unwrap_err();
        assert!(error.starts_with("cannot connect to 127.0.0.1"), "{error}");
    }
}
