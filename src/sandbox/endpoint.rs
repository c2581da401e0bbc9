//! Whether a moto endpoint answers HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// True when an HTTP GET of `{endpoint}/moto-api/` gets an HTTP response,
/// whatever its status. Plain `http://` endpoints only; bounded by short
/// connect and read timeouts, so it returns within a few seconds.
pub fn endpoint_answers(endpoint: &str) -> bool {
    let Some(authority) = http_authority(endpoint) else {
        return false;
    };
    let Ok(addrs) = authority.to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|addr| http_get_answers(addr, &authority))
}

/// `host:port` of an `http://` URL, with port 80 when none is given.
fn http_authority(endpoint: &str) -> Option<String> {
    let scheme_len = "http://".len();
    if endpoint.len() < scheme_len || !endpoint[..scheme_len].eq_ignore_ascii_case("http://") {
        return None;
    }
    let rest = &endpoint[scheme_len..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Userinfo is never part of a moto endpoint; refuse rather than guess.
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    // "[::1]" has colons but no port; "[::1]:5000" and "host:5000" have one.
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[..i].ends_with('[') && !authority.ends_with(']'),
        None => false,
    };
    Some(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

fn http_get_answers(addr: SocketAddr, authority: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_err()
        || stream
            .set_write_timeout(Some(Duration::from_secs(1)))
            .is_err()
    {
        return false;
    }
    let request =
        format!("GET /moto-api/ HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    let mut filled = 0;
    while filled < head.len() {
        match stream.read(&mut head[filled..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => filled += n,
        }
    }
    &head == b"HTTP/"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn endpoint_answers_false_on_a_closed_port() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        assert!(!endpoint_answers(&format!("http://127.0.0.1:{port}")));
    }

    #[test]
    fn endpoint_answers_true_on_any_http_status() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).expect("read");
            stream
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .expect("write");
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        assert!(endpoint_answers(&format!("http://127.0.0.1:{port}/")));
        let request = server.join().expect("server thread");
        assert!(
            request.starts_with("GET /moto-api/ HTTP/1.0\r\n"),
            "{request}"
        );
    }

    #[test]
    fn endpoint_answers_false_when_not_http() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let _ = stream.write_all(b"SSH-2.0-OpenSSH\r\n");
        });
        assert!(!endpoint_answers(&format!("http://127.0.0.1:{port}")));
        server.join().expect("server thread");
        assert!(!endpoint_answers("https://127.0.0.1:443"));
        assert!(!endpoint_answers("127.0.0.1:5000"));
    }

    #[test]
    fn authority_parsing() {
        let cases = [
            ("http://127.0.0.1:5000", Some("127.0.0.1:5000")),
            ("HTTP://localhost:5000/moto-api/", Some("localhost:5000")),
            ("http://localhost", Some("localhost:80")),
            ("http://[::1]:5000", Some("[::1]:5000")),
            ("http://[::1]", Some("[::1]:80")),
            ("http://h:1?x", Some("h:1")),
            ("http://", None),
            ("http://user@h:1", None),
            ("https://h:1", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(http_authority(input).as_deref(), want, "{input}");
        }
    }
}
