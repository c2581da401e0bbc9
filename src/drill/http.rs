//! The `http` check's GET: HTTP/1.1 over a plain TCP connection, with one
//! deadline for resolving, connecting and the answer. A name that does not
//! resolve (as in the sandbox, whose load balancers' names are not in DNS)
//! is an answer of its own, so the check can say *skipped* rather than fail
//! or, worse, pass.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The status the server answered with.
    Status(u16),
    /// The check cannot be made from here (the name does not resolve, an
    /// https URL); why.
    CannotCheck(String),
}

/// GET `url`, within `timeout`.
pub async fn get(url: &str, timeout: Duration) -> Result<Answer, String> {
    let last_lookup_error = std::sync::Mutex::new(None);
    match tokio::time::timeout(timeout, get_now(url, &last_lookup_error)).await {
        Ok(answer) => answer,
        Err(_) => match last_lookup_error
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
        {
            Some(why) => Ok(Answer::CannotCheck(format!(
                "{why} within {}",
                humantime::format_duration(timeout)
            ))),
            None => Err(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            )),
        },
    }
}

async fn get_now(
    url: &str,
    last_lookup_error: &std::sync::Mutex<Option<String>>,
) -> Result<Answer, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Ok(Answer::CannotCheck(
                "https checks are not supported yet (only http://)".into(),
            ))
        }
        _ => return Err("the URL must start with http://".into()),
    }
    let host = uri.host().ok_or("the URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    // A load balancer's name takes a while to appear in DNS: keep asking
    // (the caller's timeout ends it), and only then call it unresolvable.
    let mut pause = Duration::from_millis(250);
    let addrs: Vec<_> = loop {
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addrs) => break addrs.collect(),
            Err(e) => {
                *last_lookup_error.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("{host} does not resolve ({e})"));
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    };
    let Some(addr) = addrs.first() else {
        return Ok(Answer::CannotCheck(format!(
            "{host} resolves to no address"
        )));
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(
            hyper::header::HOST,
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header(hyper::header::USER_AGENT, "drctl-drill-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"));
    driver.abort();
    Ok(Answer::Status(response?.status().as_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_the_status_a_server_answers_with() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            socket
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let answer = get(
            &format!("http://127.0.0.1:{port}/health"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(answer, Ok(Answer::Status(503)));
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_not_a_failure_nor_a_pass() {
        let answer = get("http://no-such-host.invalid/", Duration::from_secs(1)).await;
        assert!(matches!(answer, Ok(Answer::CannotCheck(_))), "{answer:?}");
    }
}
