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
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::aws_model::{AwsModel, AwsTimes};

mod errors;
mod http;

pub(crate) use errors::fault_response;

pub use http::read_answer;
use http::{forward, read_request, Upstream};
pub(crate) use http::{Request, Response};

/// The AWS API a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Ec2,
    Elbv2,
    /// S3's REST API (a run store in a bucket): the action is the
    /// operation's name, worked out from the method, path and query.
    S3,
    /// Anything else (moto's own `/moto-api`, other services): answered with
    /// EC2-shaped errors.
    Other,
}

impl Service {
    fn prefix(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Elbv2 => "elbv2",
            Service::S3 => "s3",
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
    /// EC2's `UnauthorizedOperation` (HTTP 403): the caller may not make
    /// this call. AWS decides it before it looks at `DryRun`, so a dry run
    /// is denied alike.
    Deny,
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
    /// Every matching call.
    Always,
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

    /// Every call of `action` (e.g. `ec2:RunInstances`), dry run or not, is
    /// answered `UnauthorizedOperation`: a policy that denies it.
    pub fn deny(mut self, action: &str) -> Faults {
        self.rules.push(Rule {
            actions: vec![action.to_string()],
            when: When::Always,
            fault: Fault::Deny,
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
    /// Of all these calls, those carrying `DryRun=true` (EC2's flag: AWS
    /// answers without carrying the call out).
    pub dry_runs: u32,
    /// Of the forwarded ones, those carrying `DryRun=true`.
    pub forwarded_dry_runs: u32,
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
        self.dry_runs += other.dry_runs;
        self.forwarded_dry_runs += other.forwarded_dry_runs;
    }

    /// Calls that reached moto without `DryRun=true`: for a mutating
    /// action, the calls that may have taken effect.
    pub fn forwarded_for_real(&self) -> u32 {
        self.forwarded - self.forwarded_dry_runs
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
    /// Held while a request is forwarded, when requests go one at a time.
    one_at_a_time: Option<Mutex<()>>,
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
        FaultProxy::start_with(upstream, faults, None, false)
    }

    /// A proxy in front of the tests' moto server that forwards one request
    /// at a time. S3 applies a conditional write atomically; moto's threaded
    /// server checks the condition and writes in two steps, so two racing
    /// writers can both win there. One at a time, moto is as atomic as S3.
    pub fn moto_one_at_a_time() -> FaultProxy {
        FaultProxy::start_with(crate::support::moto_endpoint(), Faults::none(), None, true)
    }

    fn start_with(
        upstream: &str,
        faults: Faults,
        model: Option<AwsModel>,
        one_at_a_time: bool,
    ) -> FaultProxy {
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
            one_at_a_time: one_at_a_time.then(|| Mutex::new(())),
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
            false,
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
                When::Always => true,
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
    fn decide(
        &mut self,
        service: Service,
        action: &str,
        dry_run: bool,
    ) -> (Duration, Option<Fault>, u64) {
        self.requests += 1;
        let (latency, fault) = self.plan.decide(service, action);
        let counts = self
            .counts
            .entry((service, action.to_string()))
            .or_default();
        if dry_run {
            counts.dry_runs += 1;
        }
        if dry_run && fault.is_none() {
            counts.forwarded_dry_runs += 1;
        }
        match &fault {
            None => counts.forwarded += 1,
            Some(Fault::Throttle) => counts.throttled += 1,
            Some(Fault::Status(_) | Fault::Error(_) | Fault::Deny) => counts.errors += 1,
            Some(Fault::Drop) => counts.dropped += 1,
        }
        (latency, fault, self.requests)
    }
}

/// `pattern` is `Action` (any service), `ec2:Action` / `elbv2:Action` /
/// `s3:Action`, or `ec2:*` (every action of one service).
fn matches(pattern: &str, service: Service, action: &str) -> bool {
    match pattern.split_once(':') {
        Some((prefix, "*")) => prefix == service.prefix(),
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
        let dry_run = request.form("DryRun").as_deref() == Some("true");
        let (latency, fault, n) = shared.state().decide(service, &action, dry_run);
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
                None if shared.one_at_a_time.is_some() => {
                    let _turn = shared.one_at_a_time.as_ref().map(|m| m.lock());
                    forward(&mut upstream, shared.upstream, &request)?
                }
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
