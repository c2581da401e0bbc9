//! `drctl preflight` against moto, through the binary: a ready region
//! passes; an image the region lacks, an instance type a zone does not
//! offer, a denied call each fail, named; and in every test nothing is
//! created: no mutating call reaches moto without `DryRun=true` (the proxy
//! counts them), and the region's describes list what they listed before.
//!
//! Each test has a region of its own, so that "the region lists what it
//! listed before" cannot be disturbed by another test.

use std::collections::BTreeSet;

use serde_json::Value;

mod schedule;

use drctl::cloud::ec2::{DryRun, DryRunAnswer};
use drctl::cloud::AwsSettings;

use crate::notify::Receiver;
use crate::proxy::{FaultProxy, Faults};
use crate::support::{drctl_at, moto_endpoint, Repo};

/// moto's stock Amazon Linux image, in every region.
const STOCK_IMAGE: &str = "ami-1e749f67";

/// The example network and fleet (2 × `instance_type` from the stock image
/// behind a load balancer) as runbook `rb` of `env` in `region`.
fn fleet(env: &str, region: &str, instance_type: &str) -> Repo {
    let vars = format!("instance_type = \"{instance_type}\"");
    Repo::fleet_rehearsal(env, region, &vars, "\"auto\"")
}

/// `repo`'s runbook tells a webhook of `receiver`.
fn notifying(repo: &Repo, receiver: &Receiver) {
    repo.edit("runbooks/rb.toml", |text| {
        format!("{text}\n[notify]\nwebhooks = [\"{}\"]\n", receiver.url)
    });
}

/// `drctl preflight rb ARGS` through `proxy`: exit code, stdout, stderr.
fn preflight(repo: &Repo, proxy: &FaultProxy, args: &[&str]) -> (Option<i32>, String, String) {
    let state = tempfile::tempdir().unwrap();
    let out = drctl_at(repo.root(), state.path(), proxy.url())
        .args(["preflight", "rb"])
        .args(args)
        .output()
        .expect("run drctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `preflight --json`: its exit code and report.
fn report(repo: &Repo, proxy: &FaultProxy) -> (Option<i32>, Value) {
    let (code, stdout, stderr) = preflight(repo, proxy, &["--json"]);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}): {stdout}{stderr}"));
    (code, report)
}

/// The verdict and evidence of `check`'s finding about `subject`.
fn finding(report: &Value, check: &str, subject: &str) -> (String, String) {
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .unwrap_or_else(|| panic!("no check {check} in {report:#}"));
    let f = check["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == subject)
        .unwrap_or_else(|| panic!("no finding {subject} in {check:#}"));
    (
        f["verdict"].as_str().unwrap().to_string(),
        f["evidence"].as_str().unwrap().to_string(),
    )
}

/// Every finding of `verdict`, as `check subject`.
fn all_of(report: &Value, verdict: &str) -> Vec<String> {
    let mut found = Vec::new();
    for check in report["checks"].as_array().unwrap() {
        for f in check["findings"].as_array().unwrap() {
            if f["verdict"] == verdict {
                found.push(format!(
                    "{} {}",
                    check["name"].as_str().unwrap(),
                    f["subject"].as_str().unwrap()
                ));
            }
        }
    }
    found
}

async fn clients(region: &str) -> (aws_sdk_ec2::Client, aws_sdk_elasticloadbalancingv2::Client) {
    let config = AwsSettings::sandbox(moto_endpoint(), region).load().await;
    (
        aws_sdk_ec2::Client::new(&config),
        aws_sdk_elasticloadbalancingv2::Client::new(&config),
    )
}

/// Everything a rebuild could create in `region`, by id, asked of moto
/// directly (not through drctl): VPCs, subnets, gateways, route tables,
/// security groups, instances in any state, own images, load balancers,
/// target groups.
async fn inventory(region: &str) -> BTreeSet<String> {
    let (ec2, elbv2) = clients(region).await;
    let mut ids = BTreeSet::new();
    let vpcs = ec2.describe_vpcs().send().await.unwrap();
    ids.extend(
        vpcs.vpcs()
            .iter()
            .filter_map(|v| v.vpc_id())
            .map(String::from),
    );
    let subnets = ec2.describe_subnets().send().await.unwrap();
    ids.extend(
        subnets
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id())
            .map(String::from),
    );
    let gateways = ec2.describe_internet_gateways().send().await.unwrap();
    ids.extend(
        gateways
            .internet_gateways()
            .iter()
            .filter_map(|g| g.internet_gateway_id())
            .map(String::from),
    );
    let tables = ec2.describe_route_tables().send().await.unwrap();
    ids.extend(
        tables
            .route_tables()
            .iter()
            .filter_map(|t| t.route_table_id())
            .map(String::from),
    );
    let groups = ec2.describe_security_groups().send().await.unwrap();
    ids.extend(
        groups
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id())
            .map(String::from),
    );
    let reservations = ec2.describe_instances().send().await.unwrap();
    for r in reservations.reservations() {
        ids.extend(
            r.instances()
                .iter()
                .filter_map(|i| i.instance_id())
                .map(String::from),
        );
    }
    let images = ec2.describe_images().owners("self").send().await.unwrap();
    ids.extend(
        images
            .images()
            .iter()
            .filter_map(|i| i.image_id())
            .map(String::from),
    );
    let lbs = elbv2.describe_load_balancers().send().await.unwrap();
    ids.extend(
        lbs.load_balancers()
            .iter()
            .filter_map(|l| l.load_balancer_arn())
            .map(String::from),
    );
    let tgs = elbv2.describe_target_groups().send().await.unwrap();
    ids.extend(
        tgs.target_groups()
            .iter()
            .filter_map(|t| t.target_group_arn())
            .map(String::from),
    );
    ids
}

/// Nothing was created: every mutating call the proxy saw was a dry run
/// (or refused before it reached moto), and `region` lists what it listed.
async fn assert_nothing_created(proxy: &FaultProxy, region: &str, before: &BTreeSet<String>) {
    assert_no_call_took_effect(proxy);
    assert_eq!(&inventory(region).await, before, "{region} changed");
}

/// Every mutating call the proxy saw was a dry run (or refused before it
/// reached moto).
fn assert_no_call_took_effect(proxy: &FaultProxy) {
    for (action, counts) in proxy.by_action() {
        let name = action.split_once(':').map_or(action.as_str(), |(_, a)| a);
        let reads = ["Describe", "Get", "List"]
            .iter()
            .any(|r| name.starts_with(r));
        if !reads {
            assert_eq!(
                counts.forwarded_for_real(),
                0,
                "{action} reached moto without DryRun: {:?}",
                proxy.by_action()
            );
        }
    }
}

#[tokio::test]
async fn a_ready_region_passes_and_nothing_is_created() {
    // The runbook's own region is the primary; the DR region is --region.
    let region = "ap-east-1";
    let repo = fleet("pf-ready", "us-east-1", "t3.micro");
    let receiver = Receiver::start(0);
    notifying(&repo, &receiver);
    let proxy = FaultProxy::moto(Faults::none());
    let before = inventory(region).await;

    let (code, stdout, stderr) = preflight(&repo, &proxy, &["--region", region, "--json"]);
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(all_of(&report, "fail"), Vec::<String>::new());
    assert_eq!(
        (report["region"].as_str(), report["environment"].as_str()),
        (Some(region), Some("pf-ready"))
    );
    let plan = finding(&report, "plan", "plan");
    assert_eq!(plan.0, "pass");
    assert!(
        plan.1.contains("no unresolved reference, no cycle"),
        "{}",
        plan.1
    );
    let image = finding(&report, "images", STOCK_IMAGE);
    assert_eq!(image.0, "pass", "{}", image.1);
    assert!(image.1.contains("available in ap-east-1"), "{}", image.1);
    for subject in [
        "ap-east-1a",
        "ap-east-1b",
        "t3.micro in ap-east-1a",
        "t3.micro in ap-east-1b",
    ] {
        assert_eq!(finding(&report, "capacity", subject).0, "pass", "{subject}");
    }
    let lbs = finding(&report, "quotas", "load balancers");
    assert_eq!(lbs.0, "pass");
    assert!(
        lbs.1.contains("needs 1,") && lbs.1.contains("limit 20"),
        "{}",
        lbs.1
    );
    assert_eq!(finding(&report, "quotas", "target groups").0, "pass");
    // Not proved either way, so not passed.
    let instances = finding(&report, "quotas", "instances");
    assert_eq!(instances.0, "unknown");
    assert!(
        instances.1.contains("needs 2 new") && instances.1.contains("Service Quotas"),
        "{}",
        instances.1
    );
    for action in [
        "ec2:RunInstances",
        "ec2:CreateInternetGateway",
        "ec2:CreateSecurityGroup",
    ] {
        let (verdict, evidence) = finding(&report, "permissions", action);
        assert_eq!(verdict, "pass", "{action}: {evidence}");
        assert!(evidence.contains("DryRunOperation"), "{evidence}");
    }
    let lb = finding(
        &report,
        "permissions",
        "elasticloadbalancing:CreateLoadBalancer",
    );
    assert_eq!(lb.0, "unknown");
    assert!(lb.1.contains("ELBv2 has no dry run"), "{}", lb.1);
    // moto creates a VPC asked for with DryRun: drctl does not try it.
    let vpc = finding(&report, "permissions", "ec2:CreateVpc");
    assert_eq!(vpc.0, "unknown");
    assert!(vpc.1.contains("not tried"), "{}", vpc.1);
    let run = proxy.counts("ec2:RunInstances");
    assert!(run.dry_runs >= 1 && run.dry_runs == run.calls(), "{run:?}");

    // The table lists every unknown, and says nothing failed.
    let junit = repo.path("preflight.xml");
    let (code, table, _) = preflight(
        &repo,
        &proxy,
        &["--region", region, "--junit", junit.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{table}");
    assert!(table.contains("UNKNOWN ("), "{table}");
    assert!(
        table.contains("Preflight passed: nothing failed;"),
        "{table}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<skipped") && !xml.contains("<failure"),
        "{xml}"
    );
    // A passing preflight tells nobody; with --strict an unknown fails it,
    // and that is told like any failure.
    assert_eq!(receiver.events("preflight_failed"), Vec::<Value>::new());
    let (code, table, _) = preflight(&repo, &proxy, &["--region", region, "--strict"]);
    assert_eq!(code, Some(1), "{table}");
    assert!(table.contains("Preflight FAILED:"), "{table}");
    let told = receiver.events("preflight_failed");
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["failed"], serde_json::json!([]));
    assert!(told[0]["unknown"].as_u64().unwrap() > 0, "{told:?}");

    assert_nothing_created(&proxy, region, &before).await;
}

/// An image made in `region` (from a stopped instance of the stock image):
/// one that exists there only.
async fn image_only_in(region: &str) -> String {
    let (ec2, _) = clients(region).await;
    let run = ec2
        .run_instances()
        .image_id(STOCK_IMAGE)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let instance = run.instances()[0].instance_id().unwrap().to_string();
    let image = ec2
        .create_image()
        .instance_id(&instance)
        .name("golden-primary")
        .send()
        .await
        .unwrap();
    image.image_id().unwrap().to_string()
}

#[tokio::test]
async fn an_image_missing_in_the_dr_region_fails_naming_it() {
    // The DR region is shared with the ready region's test: preflights
    // create nothing, so neither changes what the other lists.
    let (primary, region) = ("ap-southeast-5", "ap-east-1");
    let golden = image_only_in(primary).await;
    let repo = fleet("pf-image", region, "t3.micro");
    repo.edit("stacks/fleet.toml", |text| {
        text.replace(STOCK_IMAGE, &golden)
    });
    let proxy = FaultProxy::moto(Faults::none());
    let before = inventory(region).await;

    let (code, report) = report(&repo, &proxy);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(all_of(&report, "fail"), [format!("images {golden}")]);
    let (_, evidence) = finding(&report, "images", &golden);
    assert!(
        evidence.starts_with("image of fleet.instances.app: "),
        "{evidence}"
    );
    assert!(evidence.contains("not found in ap-east-1"), "{evidence}");
    let (code, table, _) = preflight(&repo, &proxy, &[]);
    assert_eq!(code, Some(1));
    assert!(
        table.contains(&format!(
            "Preflight FAILED: 1 finding(s) failed:\n  images {golden}: "
        )),
        "{table}"
    );
    assert_nothing_created(&proxy, region, &before).await;
}

#[tokio::test]
async fn an_instance_type_not_offered_in_a_zone_fails_naming_both() {
    // AWS offers trn1.32xlarge in ap-southeast-4a only (and so does moto's
    // copy of its offerings); the fleet's subnets are in 4a and 4b.
    let region = "ap-southeast-4";
    let repo = fleet("pf-zones", region, "trn1.32xlarge");
    let receiver = Receiver::start(0);
    notifying(&repo, &receiver);
    let proxy = FaultProxy::moto(Faults::none());
    let before = inventory(region).await;

    let (code, report) = report(&repo, &proxy);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(
        all_of(&report, "fail"),
        ["capacity trn1.32xlarge in ap-southeast-4b"]
    );
    let (_, evidence) = finding(&report, "capacity", "trn1.32xlarge in ap-southeast-4b");
    assert!(
        evidence.starts_with("trn1.32xlarge is not offered in ap-southeast-4b, where fleet.instances.app launches it"),
        "{evidence}"
    );
    assert_eq!(
        finding(&report, "capacity", "trn1.32xlarge in ap-southeast-4a").0,
        "pass"
    );
    assert_eq!(finding(&report, "capacity", "ap-southeast-4b").0, "pass");
    // A failing preflight is told like a failed drill.
    let told = receiver.events("preflight_failed");
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        (told[0]["runbook"].as_str(), told[0]["region"].as_str()),
        (Some("rb"), Some(region))
    );
    assert_eq!(told[0]["run_id"], report["id"]);
    let failed = told[0]["failed"][0].as_str().unwrap();
    assert!(
        failed.starts_with("capacity trn1.32xlarge in ap-southeast-4b: "),
        "{failed}"
    );
    assert_nothing_created(&proxy, region, &before).await;
}

#[tokio::test]
async fn a_denied_permission_fails_naming_the_action() {
    let region = "ca-west-1";
    let repo = fleet("pf-denied", region, "t3.micro");
    let proxy = FaultProxy::moto(Faults::none().deny("ec2:RunInstances"));
    let before = inventory(region).await;

    let (code, report) = report(&repo, &proxy);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(all_of(&report, "fail"), ["permissions ec2:RunInstances"]);
    let (_, evidence) = finding(&report, "permissions", "ec2:RunInstances");
    assert!(
        evidence.contains("denied (UnauthorizedOperation)"),
        "{evidence}"
    );
    assert!(evidence.contains("fleet.instances.app"), "{evidence}");
    // The others are still tried, and allowed.
    assert_eq!(
        finding(&report, "permissions", "ec2:CreateSecurityGroup").0,
        "pass"
    );
    let run = proxy.counts("ec2:RunInstances");
    assert_eq!(
        (run.errors, run.dry_runs, run.forwarded),
        (run.calls(), run.calls(), 0),
        "{run:?}"
    );
    let (_, table, _) = preflight(&repo, &proxy, &[]);
    assert!(table.contains("permissions ec2:RunInstances: "), "{table}");
    assert_nothing_created(&proxy, region, &before).await;
}

/// The dry runs drctl tries are exactly those verified here: each answered
/// `DryRunOperation` by moto, with real ids where the call names some, and
/// none carried out.
#[tokio::test]
async fn each_dry_run_drctl_tries_is_answered_without_taking_effect() {
    let region = "mx-central-1";
    let (ec2, _) = clients(region).await;
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.77.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.77.1.0/24")
        .availability_zone("mx-central-1a")
        .send()
        .await
        .unwrap();
    let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
    let group = ec2
        .create_security_group()
        .vpc_id(&vpc)
        .group_name("pf-verify")
        .description("pf-verify")
        .send()
        .await
        .unwrap();
    let group = group.group_id().unwrap().to_string();
    let run = ec2
        .run_instances()
        .image_id(STOCK_IMAGE)
        .subnet_id(&subnet)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let instance = run.instances()[0].instance_id().unwrap().to_string();
    let before = inventory(region).await;

    let proxy = FaultProxy::moto(Faults::none());
    let settings = AwsSettings::sandbox(proxy.url(), region);
    let aws = drctl::cloud::aws::AwsProvider::new(&settings.load().await);
    let calls = [
        DryRun::RunInstances {
            image: STOCK_IMAGE.into(),
            instance_type: "t3.micro".into(),
            subnet: Some(subnet.clone()),
        },
        DryRun::RunInstances {
            image: STOCK_IMAGE.into(),
            instance_type: "t3.micro".into(),
            subnet: None,
        },
        DryRun::CreateInternetGateway,
        DryRun::CreateSecurityGroup {
            vpc: Some(vpc.clone()),
        },
        DryRun::CreateSecurityGroup { vpc: None },
        DryRun::AuthorizeSecurityGroupIngress {
            group: group.clone(),
        },
        DryRun::CreateTags {
            resources: vec![instance.clone()],
        },
        DryRun::TerminateInstances {
            ids: vec![instance.clone()],
        },
    ];
    for call in &calls {
        assert_eq!(
            aws.ec2().dry_run(call).await.unwrap(),
            DryRunAnswer::Allowed,
            "{call:?}"
        );
    }
    let tried: BTreeSet<&str> = calls.iter().map(DryRun::action).collect();
    assert_eq!(tried, DryRun::ACTIONS.iter().copied().collect());
    assert_nothing_created(&proxy, region, &before).await;
    // Nor changed: the instance runs untagged, the group has no rule.
    let described = ec2
        .describe_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    let described = &described.reservations()[0].instances()[0];
    assert_eq!(
        described.state().unwrap().name().unwrap().as_str(),
        "running"
    );
    assert!(described
        .tags()
        .iter()
        .all(|t| t.key() != Some("drctl:preflight")));
    let groups = ec2
        .describe_security_groups()
        .group_ids(&group)
        .send()
        .await
        .unwrap();
    assert!(groups.security_groups()[0].ip_permissions().is_empty());
}

#[test]
fn bad_input_exits_2_and_calls_nothing() {
    let repo = fleet("pf-bad", "ap-east-1", "t3.micro");
    repo.edit("runbooks/rb.toml", |text| {
        format!("{text}\nbogus_key = 1\n")
    });
    let proxy = FaultProxy::moto(Faults::none());
    let (code, stdout, stderr) = preflight(&repo, &proxy, &[]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("bogus_key"), "{stderr}");
    // A bad `[preflight]` table is named by file, line and key.
    repo.edit("runbooks/rb.toml", |text| {
        text.replace(
            "\nbogus_key = 1\n",
            "\n[preflight]\nschedule = \"every hour\"\nsheduled = 1\n",
        )
    });
    let (code, stdout, stderr) = preflight(&repo, &proxy, &[]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("rb.toml:"), "{stderr}");
    assert!(
        stderr.contains("preflight.schedule")
            && stderr.contains("invalid cron expression `every hour`"),
        "{stderr}"
    );
    assert!(stderr.contains("preflight.sheduled"), "{stderr}");
    assert_eq!(proxy.total().calls(), 0, "{:?}", proxy.by_action());
}

/// The README's example runbook, its service's cutover included (a step
/// reading its own resource's earlier step), has nothing failing, and
/// makes no call that takes effect (the region is shared with other tests,
/// so its inventory is not compared).
#[tokio::test]
async fn the_example_web_runbook_has_nothing_failing_and_creates_nothing() {
    let region = "ca-central-1";
    let repo = crate::bake::example_repo();
    let proxy = FaultProxy::moto(Faults::none());
    let state = tempfile::tempdir().unwrap();
    let out = drctl_at(repo.path(), state.path(), proxy.url())
        .args(["preflight", "web-dr-drill", "--region", region, "--json"])
        .output()
        .expect("run drctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert!(all_of(&report, "fail").is_empty(), "{report:#}");
    assert_no_call_took_effect(&proxy);
}
