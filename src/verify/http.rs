//! The `http` check's GET: HTTP/1.1 over TCP, or over TLS for `https://`
//! (rustls on ring, the system's trusted roots, the server's name checked),
//! with one deadline for resolving, connecting and the answer. A name that
//! does not resolve (as in the sandbox, whose load balancers' names are not
//! in DNS) is an answer of its own, so the check can say *skipped* rather
//! than fail or, worse, pass.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::{self, pki_types::ServerName, RootCertStore};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The status the server answered with.
    Status(u16),
    /// The check cannot be made from here (the name does not resolve); why.
    CannotCheck(String),
}

/// The system's trusted roots (as the SDK's client reads them; honours
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`), read once.
pub(crate) fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            Arc::new(roots)
        })
        .clone()
}

/// GET `url`, within `timeout`.
pub async fn get(url: &str, timeout: Duration) -> Result<Answer, String> {
    get_trusting(url, timeout, system_roots()).await
}

/// GET `url`, within `timeout`, trusting `roots` for https.
pub async fn get_trusting(
    url: &str,
    timeout: Duration,
    roots: Arc<RootCertStore>,
) -> Result<Answer, String> {
    let last_lookup_error = std::sync::Mutex::new(None);
    match tokio::time::timeout(timeout, get_now(url, &last_lookup_error, roots)).await {
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
    roots: Arc<RootCertStore>,
) -> Result<Answer, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("the URL must start with http:// or https://".into()),
    };
    let host = uri.host().ok_or("the URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
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
    if !tls {
        return exchange(stream, &uri, &host, addr).await;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The name in the URL is the name the certificate must carry.
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS with {host} ({addr}): {e}"))?;
    exchange(stream, &uri, &host, addr).await
}

/// One GET over an open connection; the answer's status.
async fn exchange<S>(
    stream: S,
    uri: &hyper::Uri,
    host: &str,
    addr: &std::net::SocketAddr,
) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(
            hyper::header::HOST,
            uri.authority().map_or(host, |a| a.as_str()),
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

    /// A test CA and a certificate it issued for `localhost` and 127.0.0.1
    /// (valid until 2126), with its key: made with openssl for these tests.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBlzCCAT2gAwIBAgIUaHaXCcCck3YD1If0O7qWtF3FtugwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNZHJjdGwgdGVzdCBDQTAgFw0yNjExMjIwODM2MDJaGA8yMTI2
MTAyOTA4MzYwMlowGDEWMBQGA1UEAwwNZHJjdGwgdGVzdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABPrRTmOoXnzEj9hEBy+NrgpsEpuC5C2sO+8aCSJL+a7b
OWw74WXi953wqXf2B7d9DiEGLa8Fn7lU3aRYF1xpGm6jYzBhMB0GA1UdDgQWBBSx
rf+bbhls0by4iCl+Mjare6O/nDAfBgNVHSMEGDAWgBSxrf+bbhls0by4iCl+Mjar
e6O/nDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwICBDAKBggqhkjOPQQD
AgNIADBFAiEA2Ddybh/ln7JuzogOqPIxDeqkkIgXoRxWJAWfq3ZdzGgCIGincXlR
Ybhk4EW4tIF4lVWyzbCBBB+CejiRXqub9fgX
-----END CERTIFICATE-----\n";
    const LOCALHOST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBwzCCAWmgAwIBAgIUOxXhbpIayzquul7dEbpfQ1qtgUUwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNZHJjdGwgdGVzdCBDQTAgFw0yNjExMjIwODM2MDJaGA8yMTI2
MTAyOTA4MzYwMlowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEgK1YEml2vbSTXQEgT1u52FNDJ1BK5tBVliaZxS2l71daSrfT
CK5wZuzsVa+lJW4RT8XXTvEGTlCEkh6nGqL0MKOBkjCBjzAaBgNVHREEEzARggls
b2NhbGhvc3SHBH8AAAEwDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYD
VR0lBAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYEFAQJFK5KFux+6p4aRZdWvagRLFEm
MB8GA1UdIwQYMBaAFLGt/5tuGWzRvLiIKX4yNqt7o7+cMAoGCCqGSM49BAMCA0gA
MEUCIQDhv1lPQC9A5Tb3nDhjII2LZmiW6KLBxRX/0zpP7wYDdQIgVMOBDFoXA2ld
B/9ftsJxJI6tgV6MfPROsyG4O/s3uW0=
-----END CERTIFICATE-----\n";
    const LOCALHOST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoS5EPwbv/y6RgN+y
DE66PmLOEY2w98b3WSsd2bXULpKhRANCAASArVgSaXa9tJNdASBPW7nYU0MnUErm
0FWWJpnFLaXvV1pKt9MIrnBm7OxVr6UlbhFPxddO8QZOUISSHqcaovQw
-----END PRIVATE KEY-----\n";

    /// An https server on a free port answering every request with 204.
    async fn tls_server() -> u16 {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let cert = CertificateDer::from_pem_slice(LOCALHOST_CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(LOCALHOST_KEY.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        port
    }

    fn test_roots() -> Arc<RootCertStore> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = RootCertStore::empty();
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(TEST_CA.as_bytes()).unwrap();
        roots.add(ca).unwrap();
        Arc::new(roots)
    }

    #[tokio::test]
    async fn https_checks_the_certificate_and_reads_the_status() {
        let port = tls_server().await;
        let url = format!("https://localhost:{port}/health");
        let answer = get_trusting(&url, Duration::from_secs(5), test_roots()).await;
        assert_eq!(answer, Ok(Answer::Status(204)));
        // The system's roots do not trust the test CA: a failure, not a pass.
        let answer = get(&url, Duration::from_secs(5)).await;
        let why = answer.expect_err("an untrusted certificate fails the check");
        assert!(why.starts_with("TLS with localhost"), "{why}");
    }
}
