//! The query protocol both EC2 and ELBv2 speak: form bodies (read, changed,
//! re-encoded), EC2 filters, and the model's own calls to moto.

use std::io;

use super::xml::{self, Element};
use crate::proxy::{Request, Response, Service};

/// A form body, decoded, in its original order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        let body = String::from_utf8_lossy(body);
        Form(
            body.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    pub fn of(pairs: &[(&str, &str)]) -> Form {
        Form(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        self.0
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The members of a list, in index order: `InstanceId.N` is
    /// `list("InstanceId.", "")`, `Targets.member.N.Id` is
    /// `list("Targets.member.", ".Id")`. The index of each comes with it.
    pub fn list(&self, prefix: &str, suffix: &str) -> Vec<(u32, String)> {
        let mut found: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(prefix)?.strip_suffix(suffix)?;
                Some((n.parse().ok()?, v.clone()))
            })
            .collect();
        found.sort();
        found
    }

    /// Removes the EC2 filters named `name` (`Filter.N.Name`, `Filter.N.Value.M`)
    /// and numbers the others from 1 again; returns each removed filter's
    /// values. moto then answers unfiltered on that name, and the model
    /// filters on the states it shows instead.
    pub fn take_filters(&mut self, name: &str) -> Vec<Vec<String>> {
        let taken: Vec<u32> = self
            .list("Filter.", ".Name")
            .into_iter()
            .filter(|(_, v)| v == name)
            .map(|(n, _)| n)
            .collect();
        let values = taken
            .iter()
            .map(|n| {
                self.list(&format!("Filter.{n}.Value."), "")
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect()
            })
            .collect();
        let kept: Vec<u32> = self
            .list("Filter.", ".Name")
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| !taken.contains(n))
            .collect();
        let mut pairs = Vec::new();
        for (k, v) in std::mem::take(&mut self.0) {
            let index = k
                .strip_prefix("Filter.")
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(n, rest)| Some((n.parse::<u32>().ok()?, rest)));
            match index {
                None => pairs.push((k, v)),
                Some((n, _)) if taken.contains(&n) => {}
                Some((n, rest)) => {
                    let new = kept
                        .iter()
                        .position(|k| *k == n)
                        .map_or(n, |i| i as u32 + 1);
                    pairs.push((format!("Filter.{new}.{rest}"), v));
                }
            }
        }
        self.0 = pairs;
        values
    }
}

/// Whether `value` passes every filter (each a list of alternatives, with
/// EC2's `*` and `?` wildcards).
pub fn passes(filters: &[Vec<String>], value: &str) -> bool {
    filters
        .iter()
        .all(|alternatives| alternatives.iter().any(|p| glob(p, value)))
}

fn glob(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The region of a SigV4-signed request, from its credential scope.
pub fn region(request: &Request) -> Option<String> {
    // Credential=AKID/20260101/us-west-2/ec2/aws4_request
    let scope = request
        .header("authorization")?
        .split("Credential=")
        .nth(1)?;
    scope.split('/').nth(2).map(str::to_string)
}

/// Calls the model makes to moto itself, on the client's connection and in
/// its name: the client's Authorization header names the region, and moto
/// does not check signatures, so the service in its scope is simply swapped.
pub struct Moto<'a> {
    pub template: &'a Request,
    pub send: &'a mut dyn FnMut(&Request) -> io::Result<Response>,
}

impl Moto<'_> {
    /// Sends `request` as it is.
    pub fn forward(&mut self, request: &Request) -> io::Result<Response> {
        (self.send)(request)
    }

    /// One call; the answer's root element, or what went wrong.
    pub fn call(&mut self, service: Service, params: &[(&str, &str)]) -> Result<Element, String> {
        let (scope, version) = match service {
            Service::Ec2 => ("ec2", "2016-11-15"),
            Service::Elbv2 => ("elasticloadbalancing", "2015-12-01"),
            Service::S3 | Service::Other => unreachable!("the model calls EC2 and ELBv2 only"),
        };
        let mut form = Form::of(&[("Version", version)]);
        form.0
            .extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut request = self.template.clone();
        request.method = "POST".into();
        request.target = "/".into();
        request.close = false;
        request.body = form.encode();
        for (name, value) in &mut request.headers {
            if name.eq_ignore_ascii_case("authorization") {
                *value = with_scope_service(value, scope);
            } else if name.eq_ignore_ascii_case("content-type") {
                *value = "application/x-www-form-urlencoded; charset=utf-8".into();
            }
        }
        let action = form.get("Action").unwrap_or("?").to_string();
        let response = (self.send)(&request).map_err(|e| format!("{action}: {e}"))?;
        let body = String::from_utf8_lossy(&response.body);
        if response.status != 200 {
            return Err(format!("{action}: HTTP {}: {body}", response.status));
        }
        xml::parse(&body)
            .map(|d| d.root)
            .map_err(|e| format!("{action}: {e}"))
    }

    /// An ELBv2 Describe call followed through every `NextMarker`; the
    /// elements at `path` under the result, from all pages.
    pub fn elbv2_all(
        &mut self,
        params: &[(&str, &str)],
        path: &str,
    ) -> Result<Vec<Element>, String> {
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut page: Vec<(&str, &str)> = params.to_vec();
            if let Some(m) = &marker {
                page.push(("Marker", m));
            }
            let root = self.call(Service::Elbv2, &page)?;
            let result = root
                .elements()
                .next()
                .cloned()
                .unwrap_or(Element::new("none"));
            found.extend(result.all(path).into_iter().cloned());
            marker = Some(result.text_at("NextMarker")).filter(|m| !m.is_empty());
            if marker.is_none() {
                return Ok(found);
            }
        }
    }
}

fn with_scope_service(authorization: &str, service: &str) -> String {
    let Some((head, scope)) = authorization.split_once("Credential=") else {
        return authorization.to_string();
    };
    let mut parts: Vec<&str> = scope.splitn(5, '/').collect();
    if parts.len() == 5 {
        parts[3] = service;
    }
    format!("{head}Credential={}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_encode() {
        let form = Form::parse(
            b"Action=DescribeTargetHealth&TargetGroupArn=arn%3Aaws%3Aelb%3Aus-east-1%3A1%3Atargetgroup%2Ftg%2F1&X=a+b",
        );
        assert_eq!(
            form.get("TargetGroupArn"),
            Some("arn:aws:elb:us-east-1:1:targetgroup/tg/1")
        );
        assert_eq!(form.get("X"), Some("a b"));
        assert_eq!(Form::parse(&form.encode()), form);
    }

    #[test]
    fn lists_come_in_index_order() {
        let form = Form::parse(
            b"Targets.member.2.Id=i-2&Targets.member.1.Id=i-1&Targets.member.1.Port=80&InstanceId.10=c&InstanceId.2=b",
        );
        assert_eq!(
            form.list("Targets.member.", ".Id"),
            [(1, "i-1".to_string()), (2, "i-2".to_string())]
        );
        assert_eq!(
            form.list("Targets.member.", ".Port"),
            [(1, "80".to_string())]
        );
        assert_eq!(
            form.list("InstanceId.", ""),
            [(2, "b".to_string()), (10, "c".to_string())]
        );
    }

    #[test]
    fn a_taken_filter_leaves_the_others_numbered_from_one() {
        let mut form = Form::parse(
            b"Action=DescribeInstances&Filter.1.Name=instance-state-name&Filter.1.Value.1=running\
              &Filter.1.Value.2=pending&Filter.2.Name=tag%3Adrctl%3Aenv&Filter.2.Value.1=prod\
              &Filter.3.Name=instance-state-name&Filter.3.Value.1=run*",
        );
        let taken = form.take_filters("instance-state-name");
        assert_eq!(taken, [vec!["running", "pending"], vec!["run*"]]);
        assert_eq!(
            form,
            Form::of(&[
                ("Action", "DescribeInstances"),
                ("Filter.1.Name", "tag:drctl:env"),
                ("Filter.1.Value.1", "prod"),
            ])
        );
        assert!(passes(&taken, "running"));
        assert!(!passes(&taken, "pending"), "both filters must pass");
        assert!(passes(&[], "anything"));
        assert!(passes(&[vec!["s?opp*".into()]], "stopping"));
        assert!(!passes(&[vec!["stop".into()]], "stopped"));
    }

    #[test]
    fn the_scope_names_another_service_and_keeps_the_region() {
        let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=0";
        assert_eq!(
            with_scope_service(auth, "ec2"),
            "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=0"
        );
    }
}
