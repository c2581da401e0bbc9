//! Names AWS requires where drctl would rather use tags alone.
//!
//! Pure. ELBv2 names are at most 32 characters of `[A-Za-z0-9-]`; the full
//! identity lives in the tags, so a name only has to be valid, readable at a
//! glance and distinct. It includes a hash of the env, stack, resource and
//! `drctl:spec`, so a replacement created before its old copy is deleted (a
//! changed spec) gets a different name, and two environments never collide.

/// ELBv2's limit for load balancer and target group names.
pub const ELBV2_MAX: usize = 32;
/// Hex digits of hash in a derived name.
const HASH_LEN: usize = 8;

/// A load balancer or target group name: `<env>-<name>-<hash>`, e.g.
/// `web-dr-web-3f2a9c1e`. At most 32 characters of `[A-Za-z0-9-]`, never
/// starting or ending with `-`, never starting with `internal-`.
///
/// `resource` is the `drctl:resource` value (`<kind>.<name>`); `spec` the
/// `drctl:spec` value.
pub fn elbv2_name(env: &str, stack: &str, resource: &str, spec: &str) -> String {
    let name = resource.split_once('.').map_or(resource, |(_, n)| n);
    let hash = hash_hex(&[env, stack, resource, spec]);
    let prefix = readable_prefix(env, name, ELBV2_MAX - HASH_LEN - 1);
    if prefix.is_empty() {
        format!("drctl-{hash}")
    } else {
        format!("{prefix}-{hash}")
    }
}

/// A service colour's target group name: `<env>-<name>-<colour>-<hash>`,
/// e.g. `web-dr-web-green-3f2a9c1e`. The colour is never cut off (the
/// readable prefix is); the hash covers everything, `fleet` included, so a
/// colour remade for another fleet gets another name.
pub fn colour_name(env: &str, stack: &str, resource: &str, colour: &str, fleet: &str) -> String {
    let name = resource.split_once('.').map_or(resource, |(_, n)| n);
    let hash = hash_hex(&[env, stack, resource, colour, fleet]);
    let colour = sanitize(colour);
    let prefix = readable_prefix(env, name, ELBV2_MAX - HASH_LEN - colour.len() - 2);
    if prefix.is_empty() {
        format!("{colour}-{hash}")
    } else {
        format!("{prefix}-{colour}-{hash}")
    }
}

/// `<env>-<name>`, sanitised, cut to `room` characters.
fn readable_prefix(env: &str, name: &str, room: usize) -> String {
    let mut prefix = sanitize(&format!("{env}-{name}"));
    if format!("{prefix}-")
        .to_ascii_lowercase()
        .starts_with("internal-")
    {
        // AWS reserves the prefix for internal load balancers' DNS names.
        prefix.insert_str(0, "d-");
    }
    prefix.truncate(room);
    prefix.trim_end_matches('-').to_string()
}

/// A security group's `GroupName` (unique per VPC, at most 255 characters):
/// `drctl-<env>-<stack>-<name>-<hash>`. The `drctl-` start keeps it clear of
/// the reserved `sg-` prefix.
pub fn security_group_name(env: &str, stack: &str, resource: &str, spec: &str) -> String {
    let name = resource.split_once('.').map_or(resource, |(_, n)| n);
    let hash = hash_hex(&[env, stack, resource, spec]);
    let mut readable = sanitize(&format!("drctl-{env}-{stack}-{name}"));
    readable.truncate(255 - HASH_LEN - 1);
    format!("{}-{hash}", readable.trim_end_matches('-'))
}

/// An idempotency token (at most 64 ASCII characters) for one part of an
/// operation, e.g. one subnet's RunInstances within a fleet's create: the
/// same `base` and `part` give the same token.
pub fn client_token(base: &str, part: &str) -> String {
    let token = format!("{base}-{part}");
    if token.len() <= 64 && token.is_ascii() {
        token
    } else {
        format!(
            "drctl-{}-{}",
            hash_hex(&[base, part]),
            hash_hex(&[part, base])
        )
    }
}

/// `[A-Za-z0-9-]` only: other characters become `-`, runs of `-` collapse,
/// and none is left at either end.
fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end_matches('-').to_string()
}

/// FNV-1a (64 bit) over the parts, separated so that ("ab", "c") and
/// ("a", "bc") differ; the low 32 bits in hex. Stable across Rust versions
/// and platforms, unlike `DefaultHasher`.
fn hash_hex(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{:08x}", (hash ^ (hash >> 32)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_elbv2(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= ELBV2_MAX
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.to_ascii_lowercase().starts_with("internal-")
    }

    #[test]
    fn colour_names_keep_the_colour_within_32_characters() {
        let short = colour_name("web-dr", "web", "service.web", "green", "f1");
        assert!(short.starts_with("web-dr-web-green-"), "{short}");
        let long = colour_name(&"drill-".repeat(10), "web", "service.web", "green", "f1");
        assert!(valid_elbv2(&long) && long.contains("-green-"), "{long}");
        assert_ne!(
            short,
            colour_name("web-dr", "web", "service.web", "green", "f2")
        );
        assert_ne!(
            short,
            colour_name("web-dr", "web", "service.web", "blue", "f1")
        );
    }

    #[test]
    fn short_names_stay_readable() {
        let name = elbv2_name("web-dr", "web", "target_group.blue", "abc");
        assert!(name.starts_with("web-dr-blue-"), "{name}");
        assert_eq!(name.len(), "web-dr-blue-".len() + 8);
        assert!(valid_elbv2(&name), "{name}");
    }

    #[test]
    fn every_input_gives_a_valid_name() {
        let long = "a".repeat(100);
        let cases = [
            ("e", "s", "load_balancer.x", ""),
            (long.as_str(), "s", "load_balancer.x", "h"),
            ("env", "s", &format!("target_group.{long}"), "h"),
            ("--", "s", "target_group.__", "h"),
            ("", "", "", ""),
            ("internal", "s", "load_balancer.lb", "h"),
            ("INTERNAL", "s", "load_balancer.x", "h"),
            ("internal", "s", "load_balancer.", "h"),
            ("Internal", "s", "load_balancer.-", "h"),
            ("ünïcode", "s", "load_balancer.ñame", "h"),
            (
                "env-with-dash-at-cut-",
                "s",
                "load_balancer.xxxxxxxxxxxxxxxx",
                "h",
            ),
            ("a_b", "s", "target_group.c.d", "h"),
        ];
        for (env, stack, resource, spec) in cases {
            let name = elbv2_name(env, stack, resource, spec);
            assert!(valid_elbv2(&name), "{env:?} {resource:?} -> {name:?}");
        }
        assert_eq!(
            elbv2_name("", "", "", ""),
            format!("drctl-{}", hash_hex(&["", "", "", ""]))
        );
        assert!(elbv2_name("internal", "s", "load_balancer.lb", "h").starts_with("d-internal-"));
    }

    #[test]
    fn a_changed_spec_or_identity_changes_the_name() {
        let base = elbv2_name("prod", "web", "target_group.blue", "spec-1");
        assert_eq!(
            base,
            elbv2_name("prod", "web", "target_group.blue", "spec-1")
        );
        for other in [
            elbv2_name("prod", "web", "target_group.blue", "spec-2"),
            elbv2_name("prod-dr", "web", "target_group.blue", "spec-1"),
            elbv2_name("prod", "api", "target_group.blue", "spec-1"),
            elbv2_name("prod", "web", "load_balancer.blue", "spec-1"),
        ] {
            assert_ne!(base, other);
        }
        // Truncation keeps the hash, so long names still differ.
        let long = "x".repeat(40);
        assert_ne!(
            elbv2_name(&long, "s", "target_group.a", "1"),
            elbv2_name(&long, "s", "target_group.b", "1")
        );
    }

    #[test]
    fn separators_matter_in_the_hash() {
        assert_ne!(hash_hex(&["ab", "c"]), hash_hex(&["a", "bc"]));
    }

    #[test]
    fn security_group_names_are_valid_and_distinct() {
        let a = security_group_name("prod", "net", "security_group.web", "1");
        let b = security_group_name("prod", "net", "security_group.web", "2");
        assert!(a.starts_with("drctl-prod-net-web-"), "{a}");
        assert_ne!(a, b);
        let long = security_group_name(&"e".repeat(300), "s", "security_group.x", "1");
        assert!(long.len() <= 255);
    }

    #[test]
    fn client_tokens_are_stable_and_bounded() {
        assert_eq!(client_token("run-1-abc", "0"), "run-1-abc-0");
        let long = "t".repeat(80);
        let token = client_token(&long, "subnet-0123456789abcdef0");
        assert!(token.len() <= 64 && token.is_ascii(), "{token}");
        assert_eq!(token, client_token(&long, "subnet-0123456789abcdef0"));
        assert_ne!(token, client_token(&long, "subnet-1"));
    }
}
