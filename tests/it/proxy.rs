//! A fault-injecting HTTP/1.1 proxy in front of moto: the faults moto cannot
//! produce (throttling, 5xx, dropped connections, latency, one chosen error),
//! answered in each API's own error format so the real SDK classifies and
//! retries them as it would against AWS.
//!
//! Blocking threads, not tokio: the tests drive `drctl` with
//! `Command::output()` from `#[tokio::test]`s, which would starve a proxy
//! living on the test's own runtime. Faults are drawn from a seeded
//! splitmix64, so one sequence of requests always meets the same faults.
//!
//! The service is read from the SigV4 credential scope (`…/ec2/aws4_request`,
//! `…/elasticloadbalancing/aws4_request`), falling back to the query
//! protocol's `Version=`; the action from `Action=` in the form body.
//!
//! [`FaultProxy::moto_as_aws`] adds a model of AWS's resource states
//! ([`crate::aws_model`]) behind the faults: a request that meets no fault
//! is forwarded through the model, which rewrites moto's answers.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::aws_model::{AwsModel, AwsTimes};

/// The AWS API a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Ec2,
    Elbv2,
    /// Anything else (moto's own `/moto-api`, other services): answered with
    /// EC2-shaped errors.
    Other,
}

impl Service {
    fn prefix(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Elbv2 => "elbv2",
            Service::Other => "other",
        }
    }
}

/// What the proxy does to a request instead of forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The service's throttling error: EC2 `RequestLimitExceeded` (HTTP 503),
    /// ELBv2 `Throttling` (HTTP 400).
    Throttle,
    /// An HTTP 5xx with the service's internal-error body.
    Status(u16),
    /// Close the connection without answering; moto never sees the request.
    Drop,
    /// This AWS error code, HTTP 400, in the service's format.
    Error(String),
}

/// Latency, seeded random faults and one-shot faults; swapped whole with
/// [`FaultProxy::set_faults`].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    seed: u64,
    latency: Option<(Duration, Duration)>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// Empty: every action. `Action` matches it in any service,
    /// `elbv2:Action` in one.
    actions: Vec<String>,
    when: When,
    fault: Fault,
}

#[derive(Debug, Clone, Copy)]
enum When {
    /// The `n`th matching call (1-based) since these faults were set.
    Nth(u32),
    /// Each matching call with this probability.
    Chance(f64),
}

impl Faults {
    /// No faults, no latency: a transparent proxy that counts.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Faults drawn from `seed`.
    pub fn seeded(seed: u64) -> Faults {
        Faults {
            seed,
            ..Faults::default()
        }
    }

    /// Every request, faulted or not, waits between `min` and `max` first.
    pub fn latency(mut self, min: Duration, max: Duration) -> Faults {
        assert!(min <= max, "latency range {min:?}..{max:?}");
        self.latency = Some((min, max));
        self
    }

    /// The `n`th call (1-based) of `action` meets `fault`; calls faulted by
    /// other rules count too.
    pub fn nth(mut self, action: &str, n: u32, fault: Fault) -> Faults {
        assert!(n >= 1, "calls are counted from 1");
        self.rules.push(Rule {
            actions: vec![action.to_string()],
            when: When::Nth(n),
            fault,
        });
        self
    }

    /// Each call of `actions` (every action when empty) meets `fault` with
    /// `probability`.
    pub fn chance(mut self, actions: &[&str], probability: f64, fault: Fault) -> Faults {
        assert!((0.0..=1.0).contains(&probability), "{probability}");
        self.rules.push(Rule {
            actions: actions.iter().map(|a| a.to_string()).collect(),
            when: When::Chance(probability),
            fault,
        });
        self
    }
}

/// Calls of one action (or all) that the proxy forwarded and faulted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub forwarded: u32,
    pub throttled: u32,
    /// Answered with a 5xx or a chosen AWS error.
    pub errors: u32,
    pub dropped: u32,
}

impl Counts {
    pub fn faulted(&self) -> u32 {
        self.throttled + self.errors + self.dropped
    }

    pub fn calls(&self) -> u32 {
        self.forwarded + self.faulted()
    }

    fn add(&mut self, other: Counts) {
        self.forwarded += other.forwarded;
        self.throttled += other.throttled;
        self.errors += other.errors;
        self.dropped += other.dropped;
    }
}

/// The proxy, listening on a free loopback port until dropped.
pub struct FaultProxy {
    url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    /// AWS's state behaviour, for [`FaultProxy::moto_as_aws`].
    model: Option<AwsModel>,
    state: Mutex<State>,
    stopping: AtomicBool,
    /// Open client connections, to cut on drop.
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
}

struct State {
    plan: Plan,
    counts: BTreeMap<(Service, String), Counts>,
    /// Requests seen, for request ids.
    requests: u64,
}

/// The faults set, and how far along their sequences are.
struct Plan {
    faults: Faults,
    /// Whether a random fault fires.
    rng: SplitMix64,
    /// A stream of its own, so that latency does not move the faults.
    latency_rng: SplitMix64,
    /// Matching calls seen per rule, for [`When::Nth`].
    seen: Vec<u32>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str, faults: Faults) -> FaultProxy {
        FaultProxy::start_with(upstream, faults, None)
    }

    fn start_with(upstream: &str, faults: Faults, model: Option<AwsModel>) -> FaultProxy {
        let authority = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/');
        let upstream = authority
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("upstream {authority} does not resolve"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            upstream,
            model,
            state: Mutex::new(State {
                plan: Plan::new(faults),
                counts: BTreeMap::new(),
                requests: 0,
            }),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fault-proxy".into())
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn proxy thread")
        };
        FaultProxy {
            url: format!("http://{addr}"),
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// A proxy in front of the tests' moto server.
    pub fn moto(faults: Faults) -> FaultProxy {
        FaultProxy::start(crate::support::moto_endpoint(), faults)
    }

    /// A proxy in front of the tests' moto server that shows what AWS would:
    /// instances `pending` before `running`, images `pending`, load balancers
    /// `provisioning`, targets `unused` / `initial` / `draining`, on the
    /// durations of `times`. No faults until [`FaultProxy::set_faults`].
    pub fn moto_as_aws(times: AwsTimes) -> FaultProxy {
        FaultProxy::start_with(
            crate::support::moto_endpoint(),
            Faults::none(),
            Some(AwsModel::new(times)),
        )
    }

    /// The AWS model of a [`FaultProxy::moto_as_aws`] proxy: its overrides
    /// and time scale.
    pub fn aws(&self) -> &AwsModel {
        self.shared
            .model
            .as_ref()
            .expect("a proxy started with FaultProxy::moto_as_aws")
    }

    /// `http://127.0.0.1:PORT`, for `--endpoint-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// From the next request on; the `nth` rules count afresh and the random
    /// draws restart from the new seed. Counts are kept.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.state().plan = Plan::new(faults);
    }

    /// Calls of `action` (`DescribeVpcs` in any service, or
    /// `elbv2:DescribeTags` in one) since the start or the last reset.
    pub fn counts(&self, action: &str) -> Counts {
        let state = self.shared.state();
        let mut sum = Counts::default();
        for ((service, name), c) in &state.counts {
            if matches(action, *service, name) {
                sum.add(*c);
            }
        }
        sum
    }

    /// All calls.
    pub fn total(&self) -> Counts {
        let mut sum = Counts::default();
        self.shared
            .state()
            .counts
            .values()
            .for_each(|c| sum.add(*c));
        sum
    }

    /// Per `service:Action`, for assertion messages.
    pub fn by_action(&self) -> BTreeMap<String, Counts> {
        self.shared
            .state()
            .counts
            .iter()
            .map(|((s, a), c)| (format!("{}:{a}", s.prefix()), *c))
            .collect()
    }

    pub fn reset_counts(&self) {
        self.shared.state().counts.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop, then cut the connections still open.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for conn in self.shared.conns.lock().unwrap().values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the counts from the others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Plan {
    fn new(faults: Faults) -> Plan {
        Plan {
            rng: SplitMix64(faults.seed),
            latency_rng: SplitMix64(faults.seed ^ 0x6c61_7465_6e63_7900),
            seen: vec![0; faults.rules.len()],
            faults,
        }
    }

    /// This request's latency and fault. Every rule that matches counts the
    /// call (and draws, if random) whether or not it fires, so one rule's
    /// outcome does not shift another's sequence.
    fn decide(&mut self, service: Service, action: &str) -> (Duration, Option<Fault>) {
        let latency = match self.faults.latency {
            Some((min, max)) => min + (max - min).mul_f64(self.latency_rng.unit()),
            None => Duration::ZERO,
        };
        let mut chosen = None;
        for (i, rule) in self.faults.rules.iter().enumerate() {
            if !rule.actions.is_empty() && !rule.actions.iter().any(|a| matches(a, service, action))
            {
                continue;
            }
            self.seen[i] += 1;
            let fires = match rule.when {
                When::Nth(n) => self.seen[i] == n,
                When::Chance(p) => self.rng.unit() < p,
            };
            if fires && chosen.is_none() {
                chosen = Some(rule.fault.clone());
            }
        }
        (latency, chosen)
    }
}

impl State {
    /// This request's latency, fault and request number, counted.
    fn decide(&mut self, service: Service, action: &str) -> (Duration, Option<Fault>, u64) {
        self.requests += 1;
        let (latency, fault) = self.plan.decide(service, action);
        let counts = self
            .counts
            .entry((service, action.to_string()))
            .or_default();
        match &fault {
            None => counts.forwarded += 1,
            Some(Fault::Throttle) => counts.throttled += 1,
            Some(Fault::Status(_) | Fault::Error(_)) => counts.errors += 1,
            Some(Fault::Drop) => counts.dropped += 1,
        }
        (latency, fault, self.requests)
    }
}

/// `pattern` is `Action` (any service) or `ec2:Action` / `elbv2:Action`.
fn matches(pattern: &str, service: Service, action: &str) -> bool {
    match pattern.split_once(':') {
        Some((prefix, name)) => prefix == service.prefix() && name == action,
        None => pattern == action,
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough to
/// decide faults.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------
// Connections

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            shared.conns.lock().unwrap().insert(id, clone);
        }
        let shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("fault-proxy-{id}"))
            .spawn(move || {
                // An error here is the client or moto going away: the
                // connection ends, as it would with a real endpoint.
                let _ = serve(stream, &shared);
                shared.conns.lock().unwrap().remove(&id);
            });
        if spawned.is_err() {
            return;
        }
    }
}

/// One client connection: requests in turn (keep-alive), each forwarded over
/// one upstream connection reopened when moto closes it.
fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    let mut upstream: Option<Upstream> = None;
    loop {
        let Some(request) = read_request(&mut reader, &mut writer)? else {
            return Ok(());
        };
        let service = request.service();
        let action = request.action();
        let (latency, fault, n) = shared.state().decide(service, &action);
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let response = match fault {
            Some(Fault::Drop) => {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(fault) => fault_response(&fault, service, &format!("fault-proxy-{n}")),
            None => match &shared.model {
                Some(model) => model.exchange(&request, service, &action, &mut |r: &Request| {
                    forward(&mut upstream, shared.upstream, r)
                })?,
                None => forward(&mut upstream, shared.upstream, &request)?,
            },
        };
        writer.write_all(&response.encode(request.close))?;
        writer.flush()?;
        if request.close {
            return Ok(());
        }
    }
}

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

    fn form(&self, key: &str) -> Option<String> {
        let body = std::str::from_utf8(&self.body).ok()?;
        let query = self.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        body.split('&')
            .chain(query.split('&'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    }

    fn service(&self) -> Service {
        // Credential=AKID/20260101/us-west-2/ec2/aws4_request
        let scope = self
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3));
        match scope {
            Some("ec2") => return Service::Ec2,
            Some("elasticloadbalancing") => return Service::Elbv2,
            _ => {}
        }
        match self.form("Version").as_deref() {
            Some("2016-11-15") => Service::Ec2,
            Some("2015-12-01") => Service::Elbv2,
            _ => Service::Other,
        }
    }

    fn action(&self) -> String {
        self.form("Action").unwrap_or_else(|| {
            let path = self.target.split('?').next().unwrap_or("");
            format!("{} {path}", self.method)
        })
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
    fn encode(&self, close: bool) -> Vec<u8> {
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

fn is_framing(name: &str) -> bool {
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

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    header(headers, name)
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// The next request, or `None` when the client closed between requests.
fn read_request(
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

type Head = (String, Vec<(String, String)>);

/// The start line and headers, or `None` at a clean end of stream.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
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
fn read_body(
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

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

struct Upstream {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// `request` sent to moto and its whole response read. A reused connection
/// that moto closed in the meantime is reopened once, before any response
/// byte arrived (so moto never saw the request).
fn forward(
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
fn read_response(
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

// ---------------------------------------------------------------------------
// Error bodies, as each API writes them

pub(crate) fn fault_response(fault: &Fault, service: Service, request_id: &str) -> Response {
    let (status, code, message, receiver) = match (fault, service) {
        (Fault::Throttle, Service::Elbv2) => (400, "Throttling", "Rate exceeded", false),
        (Fault::Throttle, _) => (
            503,
            "RequestLimitExceeded",
            "Request limit exceeded.",
            false,
        ),
        (Fault::Status(503), Service::Elbv2) => {
            (503, "ServiceUnavailable", "Service is unavailable.", true)
        }
        (Fault::Status(503), _) => (503, "Unavailable", "The server is overloaded.", true),
        (Fault::Status(s), Service::Elbv2) => (*s, "InternalFailure", "Internal failure.", true),
        (Fault::Status(s), _) => (*s, "InternalError", "An internal error has occurred.", true),
        (Fault::Error(code), _) => (400, code.as_str(), "Injected by the test proxy.", false),
        (Fault::Drop, _) => unreachable!("a dropped request has no response"),
    };
    let body = match service {
        Service::Elbv2 => format!(
            "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
             <Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>{request_id}</RequestId></ErrorResponse>",
            if receiver { "Receiver" } else { "Sender" }
        ),
        Service::Ec2 | Service::Other => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
             <Code>{code}</Code><Message>{message}</Message></Error></Errors>\
             <RequestID>{request_id}</RequestID></Response>"
        ),
    };
    Response {
        status,
        reason: reason(status).to_string(),
        headers: vec![
            ("content-type".into(), "text/xml".into()),
            ("x-amzn-requestid".into(), request_id.to_string()),
        ],
        body: body.into_bytes(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}
